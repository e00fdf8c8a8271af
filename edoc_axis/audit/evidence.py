"""Evidence that leaves the node: the file container shared by bundles and archives.

Both are zip files of JSON Lines (``audit.export``) plus a ``manifest.json`` naming their
format, verified with ``verify_chain`` and a trust anchor only, on a machine with no access to
the node's database: one document's evidence bundle (``audit.bundle``) and archive files of old
entries (``audit.archive``). A file to verify comes from anywhere, so it is opened with bounds
(``MAX_MEMBERS``, ``MAX_BUNDLE_BYTES`` uncompressed) and every defect is an ``EdocAxisError``
with a stable code.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import IO, Any

from edoc_axis.errors import EdocAxisError, ErrorCode

MAX_MEMBERS = 10_000
MAX_BUNDLE_BYTES = 1 << 30  # uncompressed total a bundle may claim


def evidence_error(message: str, code: ErrorCode) -> EdocAxisError:
    """The error of an evidence file that does not hold (``code`` names how)."""
    return EdocAxisError(message, code=code)


def open_zip(data: bytes | IO[bytes]) -> zipfile.ZipFile:
    """The zip file of ``data``, refused (``AUDIT_BUNDLE_MALFORMED``) when unreadable or when its
    members claim absurd sizes (a zip bomb)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise evidence_error(f"not a readable zip file ({exc})",
                             ErrorCode.AUDIT_BUNDLE_MALFORMED) from exc
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS or sum(i.file_size for i in infos) > MAX_BUNDLE_BYTES:
        raise evidence_error("the zip file is absurdly large", ErrorCode.AUDIT_BUNDLE_MALFORMED)
    return zf


def read_member(zf: zipfile.ZipFile, name: str) -> bytes:
    """One member's bytes; a missing or damaged member is ``AUDIT_BUNDLE_MALFORMED``."""
    try:
        return zf.read(name)
    except KeyError as exc:
        raise evidence_error(f"the file has no {name}", ErrorCode.AUDIT_BUNDLE_MALFORMED) from exc
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise evidence_error(f"{name} is damaged ({exc})",
                             ErrorCode.AUDIT_BUNDLE_MALFORMED) from exc


def read_manifest(zf: zipfile.ZipFile, expected_format: str) -> dict[str, Any]:
    """``manifest.json`` as an object, which must name ``expected_format``."""
    try:
        manifest = json.loads(read_member(zf, "manifest.json"))
    except ValueError as exc:
        raise evidence_error(
            f"manifest.json is not JSON ({exc})", ErrorCode.AUDIT_BUNDLE_MALFORMED
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != expected_format:
        raise evidence_error(f"not an {expected_format} file", ErrorCode.AUDIT_BUNDLE_MALFORMED)
    return manifest
