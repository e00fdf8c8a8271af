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
_WHITESPACE = b" \t\r\n"
_CHUNK = 4 * 1024 * 1024  # characters checked at a time


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
    text = el.text or ""
    length = _base64_length(text)
    if length is None:
        out.add(ErrorCode.BASE64_INVALID, "ContentTransferEncoded has non-base64 characters", el)
    elif length % 4:
        out.add(
            ErrorCode.BASE64_INVALID,
            "ContentTransferEncoded is truncated: its length is not a multiple of 4",
            el,
        )


def _base64_length(text: str) -> int | None:
    """The number of base64 characters in ``text`` (white space aside), or None when it holds
    anything else, or '=' other than one or two at the end.

    Bytes operations in C on slices of ``_CHUNK`` characters: an attachment runs to hundreds of
    MB, and an encoded copy of it whole would double the hop's memory."""
    length = pads = 0
    for start in range(0, len(text), _CHUNK):
        try:
            data = text[start:start + _CHUNK].encode("ascii").translate(None, _WHITESPACE)
        except UnicodeEncodeError:
            return None
        length += len(data)
        leftover = data.translate(None, _BASE64_ALPHABET)
        if pads and len(leftover) != len(data):  # base64 characters after the '=' padding
            return None
        if leftover:
            if leftover.strip(b"=") or not data.endswith(leftover):
                return None
            pads += len(leftover)
            if pads > 2:
                return None
    return length


def _cid(el: etree._Element | None) -> str:
    # Compare ids without the "cid:" URL scheme: producers differ on writing it on both sides.
    return element_text(el).removeprefix("cid:") if el is not None else ""
