"""Attachments too large to hold in memory: zipped in chunks, base64-streamed into the package.

``add_attachment`` holds the file, its ZIP and its base64 at once (about 3.5 times the file).
For a scan of hundreds of MB the work goes in three streamed steps instead, each in bounded
memory whatever the file's size:

1. ``zip_stream`` wraps the file in the same one-member ZIP ``add_attachment`` writes (same
   entry, same bytes) into a seekable binary file the caller provides (a temporary file), and
   returns the same ContentId digest, computed as the file goes by.
2. ``link_placeholder`` links the attachment into the package with a unique placeholder token
   as its base64 text, so the package (small now) can be built, checked and validated as usual.
3. ``write_package`` writes the built bytes to ``out`` with each placeholder replaced by the
   base64 of its ZIP, read and encoded in chunks.

The result is byte for byte what ``add_attachment`` + ``write.build`` give for the same files.
The caller owns every file: this module reads and writes only the binary objects it is given.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import zipfile
from collections.abc import Mapping
from typing import BinaryIO

from edoc_axis.edxml.attachment import (
    CHUNK_BYTES,
    Attached,
    Attachment,
    check_filename,
    link_attachment,
    wrapper_info,
)

B64_CHUNK = 3 * 256 * 1024  # bytes of ZIP per base64 step: a multiple of 3, so no padding between


def zip_stream(filename: str, source: BinaryIO, size: int, dest: BinaryIO) -> str:
    """Zip ``size`` bytes of ``source`` as ``filename`` into ``dest`` (seekable, at its start),
    in chunks; return the ContentId digest ``add_attachment`` would use for the same file.

    ``ValueError`` for a file name with a folder, or when ``source`` does not hold ``size``
    bytes (the file changed while it was read)."""
    check_filename(filename)
    hasher = hashlib.sha256(filename.encode() + b"\0")
    info = wrapper_info(filename)
    info.file_size = size  # as ZipFile.writestr sets it: the same header, ZIP64 or not
    seen = 0
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open(info, "w") as member:
        while chunk := source.read(CHUNK_BYTES):
            seen += len(chunk)
            hasher.update(chunk)
            member.write(chunk)
    if seen != size:
        raise ValueError(f"{filename}: read {seen} bytes, expected {size} (did the file change?)")
    return hasher.hexdigest()[:24]


def link_placeholder(
    pkg: Attached, filename: str, digest: str, *, description: str | None = None
) -> tuple[Attachment, str]:
    """Link an attachment whose base64 is still to come; returns it and its placeholder token
    (valid base64 characters, a multiple of 4 long, random: it occurs nowhere else)."""
    token = f"EdocAxisPlaceholder{secrets.token_hex(16)}0"  # 19 + 32 + 1 = 52 characters
    return link_attachment(pkg, filename, digest, token, description), token


def write_package(data: bytes, zips: Mapping[str, BinaryIO], out: BinaryIO) -> int:
    """Write ``data`` (built with placeholder tokens, see ``link_placeholder``) to ``out`` with
    each token replaced by the base64 of its ZIP in ``zips`` (read from the current position);
    returns the bytes written. ``ValueError`` when a token is not exactly once in ``data``."""
    view = memoryview(data)
    spots = []
    for token, stream in zips.items():
        marked = b">" + token.encode("ascii") + b"<"  # the whole text of one element
        at = data.find(marked)
        if at < 0 or data.find(marked, at + 1) >= 0:
            raise ValueError(f"placeholder {token} is not exactly once in the package")
        spots.append((at + 1, at + 1 + len(token), stream))
    written = 0
    position = 0
    for start, end, stream in sorted(spots, key=lambda spot: spot[0]):
        written += out.write(view[position:start])
        while chunk := stream.read(B64_CHUNK):
            written += out.write(base64.b64encode(chunk))
        position = end
    written += out.write(view[position:])
    return written
