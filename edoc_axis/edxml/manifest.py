"""The rules linking a document's manifest to its attachments, and the base64 they carry.

Each manifest ``Reference`` must be matched by exactly one ``Attachment`` and listed once;
each ``Attachment`` must be listed (``MANIFEST_UNMATCHED``, ``ATTACHMENT_UNMATCHED``). Ids are
compared without the ``cid:`` scheme, which producers write on one side only. The encoded
content must be base64 (``BASE64_INVALID``); line breaks inside it are normal. Part of the
business rules (``rule.check_rules`` runs them; ``rule.RULE_CODES`` documents the codes).
"""

from __future__ import annotations

from collections import Counter

from lxml import etree

from edoc_axis.edxml.finding import Findings, element_text
from edoc_axis.edxml.model import q
from edoc_axis.errors import ErrorCode

_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_WHITESPACE = (b" ", b"\t", b"\r", b"\n")


def check_manifest(out: Findings, envelope: etree._Element, encoded: etree._Element | None) -> None:
    """Match the manifest of ``envelope`` against the attachments in ``encoded``."""
    references = envelope.findall(f"{q('edXMLBody')}/{q('edXMLManifest')}/{q('Reference')}")
    attachments = encoded.findall(q("Attachment")) if encoded is not None else []
    by_cid: dict[str, list[etree._Element]] = {}
    for att in attachments:
        cid_el = att.find(q("ContentId"))
        by_cid.setdefault(_cid(cid_el), []).append(att)
        for el in att.iterfind(q("ContentTransferEncoded")):
            check_base64(out, el)
    referenced: Counter[str] = Counter()
    for ref in references:
        cid_el = ref.find(q("ContentId"))
        cid = _cid(cid_el)
        referenced[cid] += 1
        matches = len(by_cid.get(cid, ()))
        if matches != 1:
            what = "no Attachment" if matches == 0 else f"{matches} Attachments"
            out.add(
                ErrorCode.MANIFEST_UNMATCHED,
                f"manifest Reference {cid!r} is matched by {what}; exactly one required",
                cid_el if cid_el is not None else ref,
            )
        elif referenced[cid] == 2:
            out.add(
                ErrorCode.MANIFEST_UNMATCHED,
                f"manifest lists ContentId {cid!r} more than once",
                cid_el if cid_el is not None else ref,
            )
    for cid, group in by_cid.items():
        if cid not in referenced:
            for att in group:
                cid_el = att.find(q("ContentId"))
                out.add(
                    ErrorCode.ATTACHMENT_UNMATCHED,
                    f"Attachment {cid!r} is not listed in the manifest",
                    cid_el if cid_el is not None else att,
                )


def check_base64(out: Findings, el: etree._Element) -> None:
    """``ContentTransferEncoded`` must be base64, white space allowed, length a multiple of 4."""
    # Bytes operations only (C speed, at most one copy): attachments run to megabytes.
    try:
        data = (el.text or "").encode("ascii")
    except UnicodeEncodeError:
        data = b"\x80"
    if any(space in data for space in _WHITESPACE):
        data = data.translate(None, b"".join(_WHITESPACE))
    leftover = data.translate(None, _BASE64_ALPHABET)
    if leftover not in (b"", b"=", b"==") or not data.endswith(leftover):
        out.add(ErrorCode.BASE64_INVALID, "ContentTransferEncoded has non-base64 characters", el)
    elif len(data) % 4:
        out.add(
            ErrorCode.BASE64_INVALID,
            "ContentTransferEncoded is truncated: its length is not a multiple of 4",
            el,
        )


def _cid(el: etree._Element | None) -> str:
    # Compare ids without the "cid:" URL scheme: producers differ on writing it on both sides.
    return element_text(el).removeprefix("cid:") if el is not None else ""
