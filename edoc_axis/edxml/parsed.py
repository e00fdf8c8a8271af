"""One package read once: its bytes, their SHA-256, the parsed tree and the typed model.

A hop (submit, receive, receipt) reads a package once, with ``read_package`` or through
``schema.accept``, and hands the ``ParsedPackage`` on to the rules, signature checks, the store
and the audit, so that nothing parses, models or hashes the same bytes again.

The bytes sit behind ``Body`` so that a large package can later live in a file instead of in
memory: code that only streams or measures them uses ``size`` and ``open()``, which a
file-backed body will offer alike; ``data`` is for callers that need them in memory.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import BinaryIO, Literal

from lxml import etree

from edoc_axis.edxml.limits import DEFAULT_LIMITS, XmlLimits
from edoc_axis.edxml.model import Package
from edoc_axis.edxml.parser import parse_xml
from edoc_axis.edxml.read import from_tree


@dataclass(frozen=True, slots=True)
class Body:
    """The bytes of one package (held in memory)."""

    data: bytes

    @property
    def size(self) -> int:
        """Length in bytes."""
        return len(self.data)

    def open(self) -> BinaryIO:
        """A fresh binary reader over the bytes, from the start."""
        return io.BytesIO(self.data)


@dataclass(frozen=True, slots=True)
class ParsedPackage:
    """A package as read once: ``body``, its ``sha256`` (hex), the hardened-parsed ``root``
    element and the ``model`` read from it.

    The tree and the model are shared, not copied: treat them as read-only. A hop that changes
    the package (signing it, adding a trace header) makes a new value from the new bytes.
    """

    body: Body
    sha256: str
    root: etree._Element
    model: Package

    @property
    def data(self) -> bytes:
        """The package bytes, in memory."""
        return self.body.data

    @property
    def kind(self) -> Literal["edoc", "status"]:
        """``edoc`` (a document package) or ``status``."""
        return self.model.kind

    @property
    def signed(self) -> bool:
        """True when the package carries a Signature (checked or not)."""
        return self.model.signed


def read_package(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> ParsedPackage:
    """Read untrusted bytes: one hardened parse, one model, one hash; no schema or rules.

    Raises what ``parser.parse_xml`` and ``read.from_tree`` raise (``HostileInput``,
    ``MalformedPackage``). To judge the package as well, and get the validator's code for a
    tree the model cannot be read from (no From, a non-integer BussinessDocType), give the bytes
    to ``schema.accept``, which returns this value too.
    """
    return parsed_from_tree(data, parse_xml(data, limits).getroot())


def parsed_from_tree(data: bytes, root: etree._Element) -> ParsedPackage:
    """The value for ``data`` that ``parser.parse_xml`` has already parsed into ``root``: the
    model is read and the bytes hashed here, nothing is parsed again."""
    body = Body(bytes(data))
    return ParsedPackage(body, hashlib.sha256(body.data).hexdigest(), root, from_tree(root))
