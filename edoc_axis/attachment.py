"""Attachments of a document package: files zipped and base64-encoded, linked by ``cid:`` ids.

``add_attachment`` packs a file the way deployed producers do (one ZIP member, base64 in
``AttachmentEncoded``, a manifest ``Reference`` with the same ContentId); ``extract_attachment``
unpacks one with a size cap, so a zip bomb stops at ``MAX_ATTACHMENT_BYTES``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import mimetypes
import zipfile
from dataclasses import dataclass
from typing import Protocol

from edoc_axis.errors import MalformedPackage

MAX_ATTACHMENT_BYTES = 256 * 1024 * 1024  # one extracted file; zip bombs stop here


@dataclass(slots=True)
class Reference:
    """A manifest entry pointing at an attachment by ``cid:`` ContentId."""

    content_id: str
    content_type: str | None = None
    description: str | None = None
    attachment_name: str | None = None


@dataclass(slots=True)
class Attachment:
    """An attached file: ``encoded`` is base64 (of a ZIP archive in practice)."""

    content_id: str
    attachment_name: str | None = None
    description: str | None = None
    content_type: str | None = None
    encoded: str = ""


class Attached(Protocol):
    """What an attachment is added to (``package.DocumentPackage`` is one)."""

    attachments: list[Attachment]
    manifest: list[Reference]


def add_attachment(
    pkg: Attached, filename: str, data: bytes, *, description: str | None = None
) -> Attachment:
    """Zip ``data`` as ``filename``, base64 it, and link it from the manifest by a ``cid:`` id.

    The ContentId derives from the content, so building the same package twice gives the same
    bytes. ContentType names the type of the file inside the archive.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(filename, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, data)
    digest = hashlib.sha256(filename.encode() + b"\0" + data).hexdigest()[:24]
    taken = {a.content_id for a in pkg.attachments} | {r.content_id for r in pkg.manifest}
    content_id, n = f"cid:{digest}", 1
    while content_id in taken:
        n += 1
        content_id = f"cid:{digest}-{n}"
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    attachment = Attachment(
        content_id=content_id,
        attachment_name=filename,
        description=description,
        content_type=content_type,
        encoded=base64.b64encode(buffer.getvalue()).decode("ascii"),
    )
    pkg.attachments.append(attachment)
    pkg.manifest.append(Reference(content_id, content_type, description, filename))
    return attachment


def extract_attachment(
    att: Attachment, *, max_bytes: int = MAX_ATTACHMENT_BYTES
) -> tuple[str, bytes]:
    """Decode an attachment back to ``(file name, bytes)``.

    A ZIP archive yields the member named like the attachment (else its first member); other
    content is returned as decoded. Raises ``MalformedPackage`` (``ATTACHMENT_INVALID``) on bad
    base64, a broken archive, or a member larger than ``max_bytes``.
    """
    name = att.attachment_name or att.content_id.removeprefix("cid:")
    try:
        raw = base64.b64decode("".join(att.encoded.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad_attachment(att, f"not valid base64: {exc}") from exc
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        return name, raw
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = [i for i in archive.infolist() if not i.is_dir()]
            if not members:
                raise _bad_attachment(att, "the ZIP archive is empty")
            chosen = next((i for i in members if i.filename == name), members[0])
            with archive.open(chosen) as stream:
                content = stream.read(max_bytes + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
        raise _bad_attachment(att, f"broken ZIP archive: {exc}") from exc
    if len(content) > max_bytes:
        raise _bad_attachment(att, f"extracted file is over {max_bytes} bytes")
    return chosen.filename.rsplit("/", 1)[-1], content


def _bad_attachment(att: Attachment, reason: str) -> MalformedPackage:
    return MalformedPackage(
        f"attachment {att.content_id}: {reason}",
        code="ATTACHMENT_INVALID",
        element="/edXML/AttachmentEncoded/Attachment",
    )
