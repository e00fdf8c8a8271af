"""Hardened parsing of untrusted XML bytes into an lxml tree.

Every byte from outside is hostile: this module is the only way edoc_axis turns bytes into XML.
It refuses, before or while parsing and in bounded time and memory: DOCTYPE declarations (and so
internal or external entities, billion-laughs expansions and external DTDs), oversize input,
absurd nesting or element counts, encodings other than UTF-8, and bytes that are not XML at all.
libxml2 runs with entity resolution, DTD loading and network access disabled as a second line.
The bounds are ``limits.XmlLimits``.

libxml2 runs with huge-tree parsing on: without it any text node over 10 MB is refused, and one
attachment (a base64 text node) of a 50 MB package is far larger. Huge trees lift libxml2's own
safety limits (text size, depth 256 -> 2048, dictionary growth), so the door's own bounds carry
the load: the size prescan, no DOCTYPE/ENTITY (no expansion can grow the input), the element
count prescan (before the tree is built), and the depth check (after it, on a tree the element
count already bounds).
"""

from __future__ import annotations

import functools
import re

from lxml import etree

from edoc_axis.edxml.limits import DEFAULT_LIMITS, XmlLimits
from edoc_axis.errors import ErrorCode, HostileInput, MalformedPackage

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_FIRST_NON_SPACE = re.compile(rb"[^ \t\r\n]")
_XML_DECL = re.compile(rb"<\?xml[^>]{0,200}?\?>", re.DOTALL)
_DECL_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]{1,40})["']""")


class ParseStats:
    """How often untrusted bytes were parsed (``parse_xml``) and a model read from a tree
    (``read.from_tree``), so tests and benches can check a package is read once per hop.

    Process-wide and unlocked: exact when one thread reads, approximate under contention.
    """

    __slots__ = ("model_builds", "parses")

    def __init__(self) -> None:
        self.parses = 0
        self.model_builds = 0

    def snapshot(self) -> tuple[int, int]:
        """``(parses, model_builds)`` now; subtract two snapshots to count the work between."""
        return self.parses, self.model_builds


PARSE_STATS = ParseStats()


def _make_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=True,  # attachments are text nodes of tens of MB; the bounds are our own
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        collect_ids=False,
    )


def _prescan(data: bytes, limits: XmlLimits) -> None:
    """Cheap checks on the raw bytes that bound everything the real parser will do."""
    if len(data) > limits.max_bytes:
        raise HostileInput(
            f"input is {len(data)} bytes, over the limit of {limits.max_bytes} bytes",
            code=ErrorCode.XML_TOO_LARGE,
        )
    if data.startswith(_UTF16_BOMS):
        raise HostileInput(
            "input is UTF-16 encoded; edXML packages must be UTF-8", code=ErrorCode.XML_ENCODING
        )
    # Work on offsets, not slices: a slice or strip() would copy a package of many megabytes.
    start = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    first = _FIRST_NON_SPACE.search(data, start)
    if first is None:
        raise MalformedPackage("input is empty", code=ErrorCode.XML_EMPTY)
    if data.find(b"\x00", start, start + 4096) != -1:
        raise MalformedPackage(
            "input contains NUL bytes: binary data or a UTF-16/32 encoding, not UTF-8 XML",
            code=ErrorCode.XML_NOT_XML,
        )
    if first.group(0) != b"<":
        raise MalformedPackage(
            "input does not start with '<': not an XML document", code=ErrorCode.XML_NOT_XML
        )
    decl = _XML_DECL.match(data, first.start())
    if decl:
        enc = _DECL_ENCODING.search(decl.group(0))
        if enc and enc.group(1).decode("ascii").upper().replace("_", "-") not in ("UTF-8", "UTF8"):
            raise HostileInput(
                f"declared encoding {enc.group(1).decode('ascii')!r} is not allowed; "
                "edXML packages must be UTF-8",
                code=ErrorCode.XML_ENCODING,
            )
    # XML is case-sensitive: '<!DOCTYPE' and '<!ENTITY' are the only spellings a parser accepts.
    # Refusing any DOCTYPE closes XXE, billion laughs and external DTD fetches in one rule.
    if b"<!DOCTYPE" in data:
        raise HostileInput(
            "a DOCTYPE declaration is not allowed (no DTDs or entities in edXML)",
            code=ErrorCode.XML_DOCTYPE,
        )
    if b"<!ENTITY" in data:
        raise HostileInput("entity declarations are not allowed", code=ErrorCode.XML_ENTITY)
    # Every element costs at least one '<'; counting them bounds the tree before it is built.
    if data.count(b"<") > 2 * limits.max_elements + 16:
        raise HostileInput(
            f"more than {limits.max_elements} elements: refusing to build the tree",
            code=ErrorCode.XML_TOO_MANY_ELEMENTS,
        )


@functools.lru_cache(maxsize=8)
def _too_deep_xpath(max_depth: int) -> etree.XPath:
    # One compiled XPath step per level, evaluated in C: ten times faster than a Python walk.
    return etree.XPath("(/" + "/*" * (max_depth + 1) + ")[1]")


def _check_depth(tree: etree._ElementTree, limits: XmlLimits) -> None:
    found = _too_deep_xpath(limits.max_depth)(tree)
    if isinstance(found, list) and found:
        node = found[0]
        raise HostileInput(
            f"elements nested deeper than {limits.max_depth} levels",
            code=ErrorCode.XML_TOO_DEEP,
            line=getattr(node, "sourceline", None),
        )


def parse_xml(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._ElementTree:
    """Parse untrusted bytes into an lxml tree, or raise ``HostileInput``/``MalformedPackage``.

    Comments and processing instructions are kept in the tree (signature verification must see
    exactly the bytes that were signed); callers read content through element APIs that skip them.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("parse_xml takes bytes")
    data = bytes(data)
    _prescan(data, limits)
    parser = _make_parser()
    PARSE_STATS.parses += 1
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise _classify_syntax_error(exc) from exc
    tree = root.getroottree()
    if tree.docinfo.doctype:  # defence in depth: the prescan should have refused it
        raise HostileInput("a DOCTYPE declaration is not allowed", code=ErrorCode.XML_DOCTYPE)
    _check_depth(tree, limits)
    return tree


def _classify_syntax_error(exc: etree.XMLSyntaxError) -> Exception:
    msg = str(exc.msg or exc)
    line = exc.lineno or None
    lowered = msg.lower()
    if "depth" in lowered:
        return HostileInput(
            f"elements nested too deeply ({msg})", code=ErrorCode.XML_TOO_DEEP, line=line
        )
    if "utf-8" in lowered or "encoding" in lowered or "char 0x" in lowered:
        return HostileInput(
            f"input is not valid UTF-8 ({msg})", code=ErrorCode.XML_ENCODING, line=line
        )
    if "entity" in lowered:
        return HostileInput(f"entity reference refused ({msg})", code=ErrorCode.XML_ENTITY,
                            line=line)
    if "huge" in lowered or "too large" in lowered:
        return HostileInput(f"input too large ({msg})", code=ErrorCode.XML_TOO_LARGE, line=line)
    return MalformedPackage(f"not well-formed XML: {msg}", code=ErrorCode.XML_MALFORMED, line=line)
