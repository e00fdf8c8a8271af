"""One package read once: its bytes, their SHA-256, the parsed tree, and the typed model.

A hop (submit, receive, receipt) reads a package once, with ``read_package`` or through
``schema.accept``, and hands the ``ParsedPackage`` on to the rules, signature checks, the store
and the audit, so that nothing parses, models or hashes the same bytes again.

The model is read from the tree on first use, not before: a hop that verifies a signature
reads its one model from the *signed* content the verifier hands back instead, and what it
needs to know before that (the kind, the claimed sender, the addressees) is in ``claims``,
read from the tree without a model.

The bytes sit behind ``Body`` so that a large package can later live in a file instead of in
memory: code that only streams or measures them uses ``size`` and ``open()``, which a
file-backed body will offer alike; ``data`` is for callers that need them in memory.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from lxml import etree

from edoc_axis.edxml.limits import DEFAULT_LIMITS, XmlLimits
from edoc_axis.edxml.model import DSIG_NS, Package, q
from edoc_axis.edxml.parser import parse_xml
from edoc_axis.edxml.read import detect_kind, from_tree


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
class Claims:
    """What a package says about itself, read from its tree without building the model: what
    a hop checks before (or without) verifying a signature. Nothing here is verified.

    ``addressees`` are the To/OrganId of a document, or the ResponseFor/OrganId of a status;
    ``document_id`` is a document's DocumentId, or the ResponseFor/DocumentId of a status
    (``""`` when absent); ``signed`` is True when the header carries a Signature.
    """

    kind: Literal["edoc", "status"]
    sender: str
    addressees: tuple[str, ...]
    document_id: str
    signed: bool


@dataclass(frozen=True, slots=True)
class ParsedPackage:
    """A package as read once: ``body``, its ``sha256`` (hex), the hardened-parsed ``root``
    element, its ``kind``, and the ``model`` read from the tree on first use.

    The tree and the model are shared, not copied: treat them as read-only. A hop that changes
    the package (signing it, adding a trace header) makes a new value from the new bytes.
    """

    body: Body
    sha256: str
    root: etree._Element
    kind: Literal["edoc", "status"]
    _model: Package | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def data(self) -> bytes:
        """The package bytes, in memory."""
        return self.body.data

    @property
    def model(self) -> Package:
        """The model read from ``root``, built on first use and kept (two threads asking at
        once may both build it; either result is the same). Raises ``MalformedPackage`` for a
        tree the reader cannot model (``schema.accept`` refuses those first)."""
        model = self._model
        if model is None:
            model = from_tree(self.root)
            object.__setattr__(self, "_model", model)  # a cache: the value stays the same
        return model

    @property
    def signed(self) -> bool:
        """True when the package carries a Signature (checked or not)."""
        return _signature_in_header(self.root)

    @property
    def claims(self) -> Claims:
        """What the package says about itself (kind, sender, addressees, DocumentId, signed),
        from the tree, without the model."""
        header = _header(self.root)
        addressees: tuple[str, ...]
        if self.kind == "status":
            response = _child(header, "ResponseFor")
            addressees = (_text(response, "OrganId"),)
            document_id = _text(response, "DocumentId")
        else:
            tos = header.iterchildren(q("To")) if header is not None else ()
            addressees = tuple(_text(to, "OrganId") for to in tos)
            document_id = _text(header, "DocumentId")
        return Claims(self.kind, _text(_child(header, "From"), "OrganId"), addressees,
                      document_id, self.signed)


def read_package(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> ParsedPackage:
    """Read untrusted bytes: one hardened parse and one hash; no schema or rules, and the model
    only when asked for.

    Raises what ``parser.parse_xml`` raises (``HostileInput``, ``MalformedPackage``), and
    ``MalformedPackage`` (``PACKAGE_NOT_EDXML``, ``PACKAGE_STRUCTURE``) for a tree that is no
    edXML package of either kind. To judge the package as well, give the bytes (or this value)
    to ``schema.accept``.
    """
    return parsed_from_tree(data, parse_xml(data, limits).getroot())


def parsed_from_tree(data: bytes, root: etree._Element) -> ParsedPackage:
    """The value for ``data`` that ``parser.parse_xml`` has already parsed into ``root``: the
    bytes are hashed here, nothing is parsed again, the model is read on first use."""
    body = Body(bytes(data))
    return ParsedPackage(body, hashlib.sha256(body.data).hexdigest(), root, detect_kind(root))


def _header(root: etree._Element) -> etree._Element | None:
    node: etree._Element | None = root
    for name in ("edXMLEnvelope", "edXMLHeader", "MessageHeader"):
        node = node.find(q(name)) if node is not None else None
    return node


def _child(el: etree._Element | None, name: str) -> etree._Element | None:
    return el.find(q(name)) if el is not None else None


def _text(el: etree._Element | None, name: str) -> str:
    """Stripped text of ``el``'s first child ``name``, as the model reads it ("" if absent)."""
    child = _child(el, name)
    return "" if child is None else (child.text or "").strip()


def _signature_in_header(root: etree._Element) -> bool:
    envelope = root.find(q("edXMLEnvelope"))
    block = envelope.find(q("edXMLHeader")) if envelope is not None else None
    if block is None:
        return False
    return (block.find(q("Signature")) is not None
            or block.find(f"{{{DSIG_NS}}}Signature") is not None)
