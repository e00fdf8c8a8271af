"""The audit chain's tables: named queries over ``audit_entry``, ``audit_checkpoint`` and
``audit_archive``, on one connection.

Rows come back as plain tuples in column order (``ENTRY_COLUMNS``, ``CHECKPOINT_COLUMNS``): the
audit subsystem owns what an entry or a checkpoint means and builds its values from them (the
store imports nothing of it). Reads are :class:`AuditRows` (``Store.audit_rows``, also inside a
snapshot or a transaction); writes are :class:`AuditWrites`, only a ``Transaction``'s, so an
entry commits or rolls back with the event it records. Ranges stream from the cursor: verifying
millions of entries needs constant memory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

ENTRY_COLUMNS = (
    "seq, at, kind, package_id, document_id, counterpart, content_sha256, signer, detail,"
    " prev_hash, entry_hash"
)
CHECKPOINT_COLUMNS = "seq, head_hash, at, organ_id, algorithm, signature, cert_der"
_LAST = 1 << 62  # "no upper bound" for seq ranges

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """One archive file: entries ``first_seq..last_seq`` moved out of the live log."""

    first_seq: int
    last_seq: int
    head_hash: str
    sha256: str
    path: str


class AuditRows:
    """Reads of the audit tables on one connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def head(self) -> Row | None:
        """The newest live entry's row, or None."""
        row: Row | None = self._conn.execute(
            f"SELECT {ENTRY_COLUMNS} FROM audit_entry ORDER BY seq DESC LIMIT 1"  # noqa: S608
        ).fetchone()
        return row

    def last_checkpoint(self) -> Row | None:
        """The newest checkpoint's row, or None."""
        row: Row | None = self._conn.execute(
            f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoint"  # noqa: S608
            " ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return row

    def entries(self, first: int | None = None, last: int | None = None) -> Iterator[Row]:
        """Live entry rows with ``first <= seq <= last`` (either bound open), ascending."""
        return iter(self._conn.execute(
            f"SELECT {ENTRY_COLUMNS} FROM audit_entry WHERE seq >= ? AND seq <= ?"  # noqa: S608
            " ORDER BY seq",
            (first or 0, last if last is not None else _LAST),
        ))

    def entries_between(self, since: str, until: str) -> Iterator[Row]:
        """Live entry rows with ``since <= at < until`` (audit time strings), ascending."""
        return iter(self._conn.execute(
            f"SELECT {ENTRY_COLUMNS} FROM audit_entry WHERE at >= ? AND at < ?"  # noqa: S608
            " ORDER BY seq",
            (since, until),
        ))

    def count_between(self, since: str, until: str) -> int:
        """How many rows ``entries_between`` yields."""
        row = self._conn.execute(
            "SELECT count(*) FROM audit_entry WHERE at >= ? AND at < ?", (since, until)
        ).fetchone()
        return int(row[0])

    def span(self) -> tuple[int, int] | None:
        """(first, last) seq of the live log, or None when empty."""
        row = self._conn.execute("SELECT min(seq), max(seq) FROM audit_entry").fetchone()
        return None if row[0] is None else (int(row[0]), int(row[1]))

    def entry_hash(self, seq: int) -> str | None:
        """The stored ``entry_hash`` of live entry ``seq``, or None."""
        row = self._conn.execute(
            "SELECT entry_hash FROM audit_entry WHERE seq = ?", (seq,)
        ).fetchone()
        return str(row[0]) if row is not None else None

    def document_entries(self, document_id: str) -> list[Row]:
        """Every live entry row about one DocumentId, ascending."""
        rows: list[Row] = self._conn.execute(
            f"SELECT {ENTRY_COLUMNS} FROM audit_entry WHERE document_id = ?"  # noqa: S608
            " ORDER BY seq",
            (document_id,),
        ).fetchall()
        return rows

    def checkpoints(self, first: int | None = None, last: int | None = None) -> Iterator[Row]:
        """Checkpoint rows with ``first <= seq <= last`` (either bound open), ascending."""
        return iter(self._conn.execute(
            f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoint"  # noqa: S608
            " WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (first or 0, last if last is not None else _LAST),
        ))

    def checkpoint_seqs(self) -> list[int]:
        """Every stored checkpoint's seq, ascending."""
        rows = self._conn.execute("SELECT seq FROM audit_checkpoint ORDER BY seq")
        return [int(r[0]) for r in rows]

    def archives(self) -> list[ArchiveRecord]:
        """Archive files recorded so far, oldest first."""
        rows = self._conn.execute(
            "SELECT first_seq, last_seq, head_hash, sha256, path FROM audit_archive"
            " ORDER BY last_seq"
        ).fetchall()
        return [ArchiveRecord(*r) for r in rows]

    def archive_end(self, before: str) -> int | None:
        """The newest checkpointed seq whose entry is older than ``before`` (an audit time
        string) and whose checkpoint signs that entry's hash, or None."""
        row = self._conn.execute(
            "SELECT max(c.seq) FROM audit_checkpoint c JOIN audit_entry e ON e.seq = c.seq"
            " WHERE e.at < ? AND c.head_hash = e.entry_hash",
            (before,),
        ).fetchone()
        return None if row[0] is None else int(row[0])


class AuditWrites(AuditRows):
    """Reads and writes of the audit tables inside one transaction (``Transaction.audit_rows``)."""

    __slots__ = ()

    def add_entry(self, row: Sequence[object]) -> None:
        """Insert one entry; ``row`` holds the values in ``ENTRY_COLUMNS`` order."""
        self._conn.execute(
            f"INSERT INTO audit_entry ({ENTRY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
            row,
        )

    def add_checkpoint(self, row: Sequence[object]) -> None:
        """Insert one checkpoint; ``row`` holds the values in ``CHECKPOINT_COLUMNS`` order."""
        self._conn.execute(
            f"INSERT INTO audit_checkpoint ({CHECKPOINT_COLUMNS}) VALUES (?,?,?,?,?,?,?)",  # noqa: S608
            row,
        )

    def archive(self, record: ArchiveRecord) -> None:
        """Record an archive file and drop the entries and checkpoints it holds (up to
        ``record.last_seq``) from the live log."""
        self._conn.execute(
            "INSERT INTO audit_archive (last_seq, first_seq, head_hash, sha256, path)"
            " VALUES (?,?,?,?,?)",
            (record.last_seq, record.first_seq, record.head_hash, record.sha256, record.path),
        )
        self._conn.execute("DELETE FROM audit_entry WHERE seq <= ?", (record.last_seq,))
        self._conn.execute("DELETE FROM audit_checkpoint WHERE seq <= ?", (record.last_seq,))
