"""Tests of edxml.parser, the one hardened door for untrusted XML: each refusal code, the limits,
what it lets through unchanged, and the parse counter."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HOSTILE_PACKAGES, expected_code, make_document

from edoc_axis.edxml.attachment import add_attachment
from edoc_axis.edxml.limits import DEFAULT_LIMITS, DEFAULT_MAX_BYTES, XmlLimits
from edoc_axis.edxml.parser import PARSE_STATS, parse_xml
from edoc_axis.edxml.write import build
from edoc_axis.errors import EdocAxisError, HostileInput, MalformedPackage


def _refused(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> EdocAxisError:
    with pytest.raises((HostileInput, MalformedPackage)) as refused:
        parse_xml(data, limits)
    return refused.value


@pytest.mark.parametrize("path", HOSTILE_PACKAGES, ids=lambda path: path.name)
def test_hostile_corpus_is_refused_at_the_door(path: Path) -> None:
    """Each hostile corpus file is refused with the code its name announces: HostileInput, or
    MalformedPackage for binary data that is not XML at all (XML_NOT_XML)."""
    error = _refused(path.read_bytes())
    expected = MalformedPackage if error.code == "XML_NOT_XML" else HostileInput
    assert type(error) is expected and error.code == expected_code(path)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b'<!DOCTYPE edXML SYSTEM "http://example.org/x.dtd"><edXML/>', "XML_DOCTYPE"),
        (b'<!ENTITY x "y"><edXML/>', "XML_ENTITY"),
        (b"<edXML>&undeclared;</edXML>", "XML_ENTITY"),
        (b"\xff\xfe<\x00e\x00/\x00>\x00", "XML_ENCODING"),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?><edXML/>', "XML_ENCODING"),
        (b"<edXML>\xff</edXML>", "XML_ENCODING"),
        (b"<edXML>\x00</edXML>", "XML_NOT_XML"),
    ],
    ids=["doctype", "entity-declaration", "entity-reference", "utf16-bom", "latin1-declared",
         "invalid-utf8", "nul-byte"],
)
def test_hostile_bytes_get_their_code(data: bytes, code: str) -> None:
    """DTDs, entities and other encodings are HostileInput, binary data (a NUL byte) is not XML at
    all (MalformedPackage), each with its code."""
    error = _refused(data)
    expected = MalformedPackage if code == "XML_NOT_XML" else HostileInput
    assert type(error) is expected and error.code == code


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "XML_EMPTY"),
        (b"\xef\xbb\xbf \r\n\t", "XML_EMPTY"),
        (b"edXML", "XML_NOT_XML"),
        (b"<edXML><a></edXML>", "XML_MALFORMED"),
        (b"<edXML/><edXML/>", "XML_MALFORMED"),
    ],
    ids=["empty", "bom-and-spaces", "no-markup", "unclosed", "two-roots"],
)
def test_unreadable_bytes_are_malformed(data: bytes, code: str) -> None:
    """Empty, non-XML and ill-formed bytes are MalformedPackage, each with its code."""
    error = _refused(data)
    assert type(error) is MalformedPackage and error.code == code


def test_malformed_xml_names_its_line() -> None:
    """A syntax error reports the line libxml2 found it on."""
    assert _refused(b"<edXML>\n<a>\n</b>\n</edXML>").line == 3


def test_oversize_input_is_refused_by_the_configured_limit() -> None:
    """Bytes over max_bytes are refused before parsing; the default is 50 MiB."""
    data = build(make_document(content="x" * 400)) + b" " * 2_000_000
    started = time.perf_counter()
    error = _refused(data, XmlLimits(max_bytes=1_000_000))
    assert time.perf_counter() - started < 0.5
    assert error.code == "XML_TOO_LARGE"
    assert parse_xml(data).getroot() is not None
    assert DEFAULT_LIMITS.max_bytes == DEFAULT_MAX_BYTES == 50 * 1024 * 1024


def test_absurd_nesting_is_refused_fast() -> None:
    """100,000 nested elements are refused quickly."""
    data = b"<edXML>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</edXML>"
    started = time.perf_counter()
    error = _refused(data)
    assert time.perf_counter() - started < 0.5
    assert error.code == "XML_TOO_DEEP"


def test_depth_limit_is_the_configured_one() -> None:
    """Nesting one level past max_depth is refused; at max_depth it passes."""
    at_limit = b"<a>" * 4 + b"</a>" * 4
    assert parse_xml(at_limit, XmlLimits(max_depth=4)).getroot().tag == "a"
    assert _refused(at_limit, XmlLimits(max_depth=3)).code == "XML_TOO_DEEP"


def test_element_flood_is_refused_fast() -> None:
    """A flat flood of elements beyond the element limit is refused before building a tree."""
    data = b"<edXML>" + b"<a/>" * 300_000 + b"</edXML>"
    started = time.perf_counter()
    error = _refused(data)
    assert time.perf_counter() - started < 0.5
    assert error.code == "XML_TOO_MANY_ELEMENTS"
    assert _refused(b"<a>" + b"<b/>" * 50 + b"</a>", XmlLimits(max_elements=10)).code == (
        "XML_TOO_MANY_ELEMENTS"
    )


def test_what_passes_is_kept_as_sent(sample_document: bytes) -> None:
    """A UTF-8 BOM, a utf8 declaration, comments and PIs pass; comments and PIs stay in the
    tree (a signature covers them); character references are resolved, nothing else."""
    data = b'\xef\xbb\xbf<?xml version="1.0" encoding="utf8"?><a><!--c--><?pi x?>&amp;&#233;</a>'
    root = parse_xml(data).getroot()
    assert [type(node).__name__ for node in root] == ["_Comment", "_ProcessingInstruction"]
    assert root[-1].tail == "&é"
    assert parse_xml(bytearray(sample_document)).getroot().tag.endswith("edXML")
    assert parse_xml(memoryview(sample_document)).getroot().tag.endswith("edXML")
    with pytest.raises(TypeError):
        parse_xml(sample_document.decode())  # type: ignore[arg-type]


def test_parse_stats_count_each_parse(sample_document: bytes) -> None:
    """PARSE_STATS counts the parses lxml runs; a refusal by the pre-scan costs none."""
    parses, builds = PARSE_STATS.snapshot()
    parse_xml(sample_document)
    parse_xml(sample_document)
    _refused(b"<!DOCTYPE x><edXML/>")
    assert PARSE_STATS.snapshot() == (parses + 2, builds)


def test_limits_and_the_lxml_free_modules_load_no_lxml() -> None:
    """edxml's __init__, limits, identifier, model and profile import without lxml."""
    code = (
        "import sys\n"
        "import edoc_axis.edxml, edoc_axis.edxml.limits, edoc_axis.edxml.identifier\n"
        "import edoc_axis.edxml.model, edoc_axis.edxml.profile\n"
        "print('lxml' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


def test_a_30_mb_attachment_parses_with_huge_tree() -> None:
    """A package whose one attachment is a 30 MB file (a 40 MB base64 text node, over libxml2's
    10 MB text-node limit without huge trees) parses under the default limits."""
    doc = make_document(content="x" * 400)
    payload = os.urandom(30 * 1024 * 1024)
    add_attachment(doc, "scan.pdf", payload)
    data = build(doc)
    assert len(data) > 40 * 1024 * 1024
    root = parse_xml(data).getroot()
    assert max(len(text) for text in root.itertext()) > 40 * 1024 * 1024


@pytest.mark.parametrize("depth", [60, 1000])
def test_huge_tree_keeps_the_depth_bound(depth: int) -> None:
    """With huge trees libxml2 lets nesting reach 2048: the door's own depth bound still refuses
    nesting past max_depth, below (60) and above (1000) libxml2's former 256."""
    data = b"<edXML>" + b"<a>" * depth + b"</a>" * depth + b"</edXML>"
    assert _refused(data).code == "XML_TOO_DEEP"


def test_huge_tree_keeps_the_size_and_element_bounds() -> None:
    """A text node larger than max_bytes is refused before parsing, and a flood of elements
    inside a big package still meets the element bound, with huge trees on."""
    big_text = b"<edXML><a>" + b"A" * (2 * 1024 * 1024) + b"</a></edXML>"
    assert _refused(big_text, XmlLimits(max_bytes=1024 * 1024)).code == "XML_TOO_LARGE"
    assert parse_xml(big_text).getroot().tag == "edXML"
    flood = b"<edXML><a>" + b"A" * (12 * 1024 * 1024) + b"</a>" + b"<b/>" * 300 + b"</edXML>"
    assert _refused(flood, XmlLimits(max_elements=100)).code == "XML_TOO_MANY_ELEMENTS"


def test_huge_tree_still_refuses_dtds_and_entities() -> None:
    """No DOCTYPE, entity declaration or undeclared entity gets through with huge trees on."""
    assert _refused(b"<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>").code == "XML_DOCTYPE"
    assert _refused(b"<a>&x;</a>").code == "XML_ENTITY"
    big = b"<edXML>" + b"A" * (11 * 1024 * 1024) + b"&x;</edXML>"
    assert _refused(big).code == "XML_ENTITY"
