"""Chunked transfers under way: which chunks of a large package the node already holds.

One ``transfer_chunk`` row per chunk staged on disk (the node writes and fsyncs the file before
the transaction that records it commits). Keyed by the publishing broker user and the transfer
id, so one agency cannot fill in or spoil another's transfer. Rows are written in a
``Transaction`` (``txn.transfers``); the store knows nothing of files or edXML.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """One recorded chunk."""

    index: int
    count: int
    sha256: str
    total_size: int
    total_sha256: str
    document_id: str | None = None  # what the headers name; None for a status's chunks


class TransferRows:
    """Named queries over ``transfer_chunk`` on one connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def record(self, broker_user: str, transfer: str, chunk: ChunkRow, at: float) -> bool:
        """Record a staged chunk; False when it was recorded before (a duplicate)."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO transfer_chunk (broker_user, transfer, idx, count, sha256,"
            " total_size, total_sha256, received_at, document_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (broker_user, transfer, chunk.index, chunk.count, chunk.sha256, chunk.total_size,
             chunk.total_sha256, at, chunk.document_id))
        return cursor.rowcount == 1

    def chunks(self, broker_user: str, transfer: str) -> list[ChunkRow]:
        """The chunks recorded for one transfer, by index."""
        rows = self._conn.execute(
            "SELECT idx, count, sha256, total_size, total_sha256, document_id FROM transfer_chunk"
            " WHERE broker_user = ? AND transfer = ? ORDER BY idx", (broker_user, transfer))
        return [ChunkRow(int(r[0]), int(r[1]), str(r[2]), int(r[3]), str(r[4]),
                         None if r[5] is None else str(r[5])) for r in rows]

    def forget(self, broker_user: str, transfer: str) -> None:
        """Delete a transfer's rows (assembled, or abandoned)."""
        self._conn.execute("DELETE FROM transfer_chunk WHERE broker_user = ? AND transfer = ?",
                           (broker_user, transfer))

    def idle_since(self, before: float) -> list[tuple[str, str]]:
        """(broker user, transfer) of transfers that received no chunk since ``before``."""
        rows = self._conn.execute(
            "SELECT broker_user, transfer FROM transfer_chunk GROUP BY broker_user, transfer"
            " HAVING max(received_at) < ?", (before,))
        return [(str(r[0]), str(r[1])) for r in rows]
