"""Attachments of a document package: files zipped and base64-encoded, linked by ``cid:`` ids.

Writing (``add_attachment``) follows what the installed base expects: the national client SDK's
parser unzips an attachment only when its ``ContentType`` is ``application/zip`` and otherwise
hands the DMS the decoded bytes as they are. So a file is packed as a ZIP archive of exactly one
member, the file itself, and both the ``Attachment`` and its manifest ``Reference`` are labelled
``application/zip``. ``AttachmentName`` is the original file name, and the ZIP member carries the
same name: the file's own type travels as that name's extension, which is all the installed base
uses (it saves the file under its name). ``Description`` stays the caller's; no element is added.

Reading (``extract_attachment``, ``write_attachment``) accepts the three conventions seen in the
wild, and says which one it met (``Unpacked.packing``):

- ``"zip"``: labelled ``application/zip`` (or ``application/x-zip-compressed``,
  ``application/x-zip``). The archive is a wrapper: the member named like the attachment, else
  its only member, is the file. An archive of several files none of which is named like the
  attachment is a ZIP sent as itself and is returned as it is (``"plain"``). A label that
  claims a ZIP over bytes that are not one is refused.
- ``"zip-mislabelled"``: labelled with the inner file's type (what this module wrote before) or
  not labelled. Unwrapped only when the bytes start as a ZIP archive with exactly one file member
  named like the attachment, or with the same extension (other than ``.zip``): a .docx, .xlsx or
  .odt sent unzipped is itself a ZIP, but of many members, and is never unpacked.
- ``"plain"``: anything else is the file, as decoded.

"Named like" compares base names after Unicode NFC normalisation, ignoring case, and also reads a
UTF-8 member name stored without the ZIP UTF-8 flag. The name returned is ``AttachmentName``
unless the member unwrapped is plainly another file (another name and extension); then it is the
member's. Only one level is unwrapped. An archive
whose central directory is larger than a wrapper's could be (``MAX_WRAPPER_MEMBERS`` entries,
``MAX_WRAPPER_DIRECTORY`` bytes) is not opened as a wrapper at all. The chosen member is
decompressed in chunks straight into the caller's sink and refused (``ATTACHMENT_INVALID``) as
soon as it passes ``max_bytes``, so a zip bomb costs at most that much.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import lzma
import mimetypes
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from typing import Literal, Protocol

from edoc_axis.errors import ErrorCode, MalformedPackage

MAX_ATTACHMENT_BYTES = 256 * 1024 * 1024  # one extracted file; zip bombs stop here
ZIP_CONTENT_TYPE = "application/zip"
ZIP_CONTENT_TYPES = frozenset(
    {ZIP_CONTENT_TYPE, "application/x-zip-compressed", "application/x-zip"}
)
MAX_WRAPPER_MEMBERS = 64  # entries; a wrapper has one, a .docx sent as itself has a dozen or so
MAX_WRAPPER_DIRECTORY = 1024 * 1024  # bytes of ZIP central directory parsed at most
CHUNK_BYTES = 1024 * 1024  # decompressed per read

Packing = Literal["zip", "zip-mislabelled", "plain"]

_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_ZIP_END_RECORD = b"PK\x05\x06"
_ZIP_UTF8_FLAG = 0x800
_WHITESPACE = b" \t\r\n\f\v"
# What zipfile lets through from a damaged or hostile archive (fuzzed: tests/test_attachment.py).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,  # an unsupported compression method
    RuntimeError,  # an encrypted member
    OSError,
    EOFError,
    ValueError,  # among them UnicodeDecodeError of a member name
    struct.error,
    zlib.error,
    lzma.LZMAError,
)


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


@dataclass(frozen=True, slots=True)
class Unpacked:
    """What ``write_attachment`` wrote: the file's name, size, type and how it was packed."""

    name: str
    size: int
    packing: Packing

    @property
    def content_type(self) -> str:
        """The file's own type, guessed from its name (the label may just say ZIP)."""
        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"


class Attached(Protocol):
    """What an attachment is added to (``package.DocumentPackage`` is one)."""

    attachments: list[Attachment]
    manifest: list[Reference]


class Sink(Protocol):
    """Where an extracted file goes: a binary file, ``io.BytesIO``, or a byte counter."""

    def write(self, data: bytes, /) -> object: ...


def add_attachment(
    pkg: Attached, filename: str, data: bytes, *, description: str | None = None
) -> Attachment:
    """Zip ``data`` as ``filename``, base64 it, and link it from the manifest by a ``cid:`` id.

    Labelled ``application/zip`` on both sides (see the module docstring). The ContentId derives
    from the content, so building the same package twice gives the same bytes. ``filename`` is
    a bare file name; ``ValueError`` if it names a folder. (A file too large to hold three times
    in memory: ``streamed``.)
    """
    check_filename(filename)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(wrapper_info(filename), data)
    digest = hashlib.sha256(filename.encode() + b"\0" + data).hexdigest()[:24]
    return link_attachment(pkg, filename, digest,
                           base64.b64encode(buffer.getvalue()).decode("ascii"), description)


def check_filename(filename: str) -> None:
    """``ValueError`` unless ``filename`` is a bare file name (no folder)."""
    if not filename or "/" in filename or "\\" in filename or filename in (".", ".."):
        raise ValueError(f"an attachment needs a bare file name, not {filename!r}")


def wrapper_info(filename: str) -> zipfile.ZipInfo:
    """The ZIP entry a file is wrapped in: fixed date (same file, same bytes), deflated, 644."""
    info = zipfile.ZipInfo(filename, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16  # unzip on Unix would otherwise create mode 000
    return info


def link_attachment(
    pkg: Attached, filename: str, digest: str, encoded: str, description: str | None
) -> Attachment:
    """Add the attachment (``encoded``: its base64) and its manifest reference, by a ContentId
    made from ``digest`` (unique in the package)."""
    taken = {a.content_id for a in pkg.attachments} | {r.content_id for r in pkg.manifest}
    content_id, n = f"cid:{digest}", 1
    while content_id in taken:
        n += 1
        content_id = f"cid:{digest}-{n}"
    attachment = Attachment(
        content_id=content_id,
        attachment_name=filename,
        description=description,
        content_type=ZIP_CONTENT_TYPE,
        encoded=encoded,
    )
    pkg.attachments.append(attachment)
    pkg.manifest.append(Reference(content_id, ZIP_CONTENT_TYPE, description, filename))
    return attachment


def extract_attachment(
    att: Attachment, *, max_bytes: int = MAX_ATTACHMENT_BYTES
) -> tuple[str, bytes]:
    """Decode an attachment back to ``(file name, the file's original bytes)``.

    Any of the three conventions of the module docstring. Raises ``MalformedPackage``
    (``ATTACHMENT_INVALID``) on bad base64, a broken archive, or a file larger than ``max_bytes``.
    """
    sink = io.BytesIO()
    unpacked = write_attachment(att, sink, max_bytes=max_bytes)
    return unpacked.name, sink.getvalue()


def write_attachment(
    att: Attachment, sink: Sink, *, max_bytes: int = MAX_ATTACHMENT_BYTES
) -> Unpacked:
    """Write an attachment's original file into ``sink`` in chunks and say what it was.

    On ``ATTACHMENT_INVALID`` part of the file may already be in ``sink``: discard it.
    """
    name = att.attachment_name or att.content_id.removeprefix("cid:")
    raw = _decode(att)
    labelled_zip = _is_zip_label(att.content_type)
    if not labelled_zip and not raw.startswith(_ZIP_LOCAL_HEADER):
        return _write_plain(att, name, raw, sink, max_bytes)
    if not _directory_fits(raw):
        if labelled_zip and not zipfile.is_zipfile(io.BytesIO(raw)):
            raise _bad_attachment(att, f"labelled {att.content_type} but not a ZIP archive")
        return _write_plain(att, name, raw, sink, max_bytes)
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except _ZIP_ERRORS as exc:
        if not labelled_zip:  # starts like a ZIP but is none: a file of its own
            return _write_plain(att, name, raw, sink, max_bytes)
        raise _bad_attachment(att, f"labelled {att.content_type} but not a ZIP archive") from exc
    with archive:
        member = _wrapped_member(att, archive, name, labelled_zip)
        if member is None:
            return _write_plain(att, name, raw, sink, max_bytes)
        size = _copy_member(att, archive, member, sink, max_bytes)
    packing: Packing = "zip" if labelled_zip else "zip-mislabelled"
    return Unpacked(_unwrapped_name(name, att.attachment_name, member), size, packing)


def _decode(att: Attachment) -> bytes:
    try:
        data = att.encoded.encode("ascii").translate(None, _WHITESPACE)
        return base64.b64decode(data, validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise _bad_attachment(att, f"not valid base64: {exc}") from exc


def _is_zip_label(content_type: str | None) -> bool:
    label = (content_type or "").split(";", 1)[0].strip().lower()
    return label in ZIP_CONTENT_TYPES


def _write_plain(att: Attachment, name: str, raw: bytes, sink: Sink, max_bytes: int) -> Unpacked:
    if len(raw) > max_bytes:
        raise _bad_attachment(att, f"the file is over {max_bytes} bytes")
    sink.write(raw)
    return Unpacked(name, len(raw), "plain")


def _directory_fits(raw: bytes) -> bool:
    """Whether the end record announces a central directory no bigger than a wrapper's.

    Read before ``zipfile`` parses the directory, which it does whole, entry by entry.
    """
    at = raw.rfind(_ZIP_END_RECORD, max(0, len(raw) - 22 - 65535))
    if at < 0 or len(raw) < at + 22:
        return False
    entries = int.from_bytes(raw[at + 10 : at + 12], "little")
    size = int.from_bytes(raw[at + 12 : at + 16], "little")
    return entries <= MAX_WRAPPER_MEMBERS and size <= MAX_WRAPPER_DIRECTORY


def _wrapped_member(
    att: Attachment, archive: zipfile.ZipFile, name: str, labelled_zip: bool
) -> zipfile.ZipInfo | None:
    """The member that is the attached file, or None when the archive is the file itself."""
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) > MAX_WRAPPER_MEMBERS:  # the end record understated the entry count
        return None
    named = [info for info in members if _named_like(info, name)]
    if labelled_zip:
        if not members:
            raise _bad_attachment(att, "the ZIP archive is empty")
        if named:
            return named[0]
        return members[0] if len(members) == 1 else None
    if len(members) != 1:
        return None
    if named or _same_extension(members[0], name):
        return members[0]
    return None


def _copy_member(
    att: Attachment, archive: zipfile.ZipFile, member: zipfile.ZipInfo, sink: Sink, max_bytes: int
) -> int:
    if member.file_size > max_bytes:
        raise _bad_attachment(att, f"extracted file is over {max_bytes} bytes")
    size = 0
    try:
        stream = archive.open(member)
    except _ZIP_ERRORS as exc:
        raise _bad_attachment(att, f"broken ZIP archive: {exc}") from exc
    with stream:
        while True:
            try:
                chunk = stream.read(CHUNK_BYTES)
            except _ZIP_ERRORS as exc:  # the sink's own errors (a full disk) pass through
                raise _bad_attachment(att, f"broken ZIP archive: {exc}") from exc
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise _bad_attachment(att, f"extracted file is over {max_bytes} bytes")
            sink.write(chunk)
    return size


def _base_name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _member_name(member: zipfile.ZipInfo) -> str:
    """The member's base name; zipfile reads a name without the UTF-8 flag as cp437, but many
    producers wrote UTF-8 there anyway."""
    name = member.filename
    if not member.flag_bits & _ZIP_UTF8_FLAG:
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            name = name.encode("cp437").decode("utf-8")
    return _base_name(name)


def _comparable(name: str) -> str:
    return unicodedata.normalize("NFC", _base_name(name)).casefold()


def _named_like(member: zipfile.ZipInfo, name: str) -> bool:
    return _comparable(_member_name(member)) == _comparable(name)


def _extension(name: str) -> str:
    base = _comparable(name)
    return base.rsplit(".", 1)[-1] if "." in base.strip(".") else ""


def _same_extension(member: zipfile.ZipInfo, name: str) -> bool:
    extension = _extension(_member_name(member))
    return extension not in ("", "zip") and extension == _extension(name)


def _unwrapped_name(name: str, declared: str | None, member: zipfile.ZipInfo) -> str:
    """The sender's AttachmentName when the member is that file, else the member's own name."""
    if declared and (_named_like(member, declared) or _same_extension(member, declared)):
        return declared
    return _member_name(member) or name


def _bad_attachment(att: Attachment, reason: str) -> MalformedPackage:
    return MalformedPackage(
        f"attachment {att.content_id}: {reason}",
        code=ErrorCode.ATTACHMENT_INVALID,
        element="/edXML/AttachmentEncoded/Attachment",
    )
