"""Package bodies kept as files: content-addressed by SHA-256, written durably, swept when orphaned.

A package's bytes at or above the store's threshold (``BODY_FILE_BYTES`` by default) are not a
SQLite blob: they live in ``<bodies>/<ab>/<abcdef...>`` (the hex SHA-256 of the bytes, sharded
by its first two digits), and the ``package_bodies`` row names the digest. Identical bodies share
one file. A file is written to a temporary name in ``<bodies>/tmp``, fsynced, renamed into place
and its directory fsynced, all before the transaction that references it commits: a committed
row never names a file that a power cut can lose. A crash between the file and the commit leaves
an orphan, which is harmless (nothing references it) and removed by ``BodyFiles.sweep``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from edoc_axis.errors import ErrorCode, StoreBusy

BODY_FILE_BYTES = 1024 * 1024  # bodies this large or larger are files, smaller ones blobs
SWEEP_GRACE_SECONDS = 3600.0  # a file younger than this may belong to a transaction in flight
_TMP = "tmp"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_digest(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


class BodyFiles:
    """The folder of body files beside one store; ``threshold`` decides what goes there."""

    def __init__(self, root: Path, threshold: int = BODY_FILE_BYTES) -> None:
        self.root = Path(root)
        self.threshold = threshold

    def wants(self, size: int) -> bool:
        """Whether a body of ``size`` bytes is kept as a file."""
        return size >= self.threshold

    def path_of(self, digest: str) -> Path:
        """Where the body with this hex SHA-256 lives."""
        if not _is_digest(digest):
            raise ValueError(f"not a hex SHA-256: {digest!r}")
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Write ``data`` durably (file and directory fsynced) unless an identical body is
        already there; returns its hex SHA-256 (computed here: the name is the content)."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        if target.is_file() and target.stat().st_size == len(data):
            os.utime(target)  # fresh again: a sweep in flight leaves it to this transaction
            return digest
        tmp_dir = self.root / _TMP
        tmp_dir.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=digest[:8] + ".")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        _fsync_dir(self.root)
        return digest

    def open(self, digest: str) -> BinaryIO:
        """A binary reader over the stored body (raises ``StoreBusy``, ``STORE_BODY_MISSING``,
        when the file is gone: the store's folder was damaged or partly restored)."""
        path = self.path_of(digest)
        try:
            return path.open("rb")
        except FileNotFoundError as exc:
            raise StoreBusy(f"the package body file {path} is missing",
                            code=ErrorCode.STORE_BODY_MISSING) from exc

    def read(self, digest: str) -> bytes:
        """The stored body's bytes, in memory."""
        with self.open(digest) as stream:
            return stream.read()

    def _files(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for shard in self.root.iterdir():
            if shard.is_dir():
                yield from (p for p in shard.iterdir() if p.is_file())

    def sweep(self, referenced: Callable[[], set[str]],
              older_than: float = SWEEP_GRACE_SECONDS) -> list[Path]:
        """Remove body files no row references and temporary files, older than ``older_than``
        seconds (younger ones may belong to a transaction that has not committed yet); returns
        what was removed. ``referenced`` is asked after the candidates are listed."""
        cutoff = time.time() - older_than
        candidates = [p for p in self._files() if p.stat().st_mtime <= cutoff]
        keep = referenced()
        removed: list[Path] = []
        for path in candidates:
            if path.parent.name == _TMP or path.name not in keep:
                try:
                    if path.stat().st_mtime > cutoff:  # reused by a put() since it was listed
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed.append(path)
        return removed
