"""The node's durable memory: every package in and out, deliveries, statuses, inbox and outbox.

SQLite in WAL mode with ``synchronous=FULL`` (a commit survives a power cut), a busy timeout
(``edoc-axis send`` in another process writes the same file while ``edoc-axis run`` works),
foreign keys, and migrations numbered by ``PRAGMA user_version``. Each thread gets its own
connection. Writes happen only inside ``Store.transaction()`` (``BEGIN IMMEDIATE``), so a batch
of broker deliveries is stored in one commit (group commit) before anything is acknowledged.
This module knows tables, not the journey: ``node`` decides what to write and when.

Hook for the audit chain: ``Store(on_event=...)`` is called as ``hook(txn, event)`` inside the
transaction that records the fact, so an audit entry commits (or rolls back) with it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from edoc_axis.errors import NotFound, StoreBusy
from edoc_axis.store.migrations import MIGRATIONS
from edoc_axis.store.records import (
    DELIVERY_SELECT,
    INBOX_SELECT,
    PACKAGE_COLUMNS,
    PICKUP_STATES,
    Delivery,
    Direction,
    Event,
    HistoryEntry,
    InboxEntry,
    Kind,
    NewPackage,
    OutboxItem,
    PackageRecord,
    Pickup,
    Rejection,
    now_iso,
    package_from_row,
)
from edoc_axis.store.transaction import EventHook, Transaction, one_package

BUSY_TIMEOUT_MS = 10_000

__all__ = [
    "PICKUP_STATES",
    "Delivery",
    "Direction",
    "Event",
    "EventHook",
    "HistoryEntry",
    "InboxEntry",
    "Kind",
    "NewPackage",
    "OutboxItem",
    "PackageRecord",
    "Pickup",
    "Rejection",
    "Store",
    "Transaction",
    "now_iso",
]


def _busy(exc: sqlite3.Error) -> StoreBusy:
    return StoreBusy(f"the store is busy or unavailable: {exc}", code="STORE_BUSY")


class Store:
    """The node's SQLite file; safe to share between threads (one connection per thread)."""

    def __init__(self, path: Path, *, on_event: EventHook | None = None) -> None:
        self.path = Path(path)
        self.on_event = on_event
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    # connections

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise _busy(exc) from exc
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this store opened (call once, at shutdown)."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def _migrate(self) -> None:
        conn = self.conn
        with self.transaction():
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            for number, statements in enumerate(MIGRATIONS, start=1):
                if number <= version:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        """The applied migration number (PRAGMA user_version)."""
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on error; lock trouble -> StoreBusy."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _busy(exc) from exc
        try:
            yield Transaction(conn, self.on_event)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.execute("ROLLBACK")
            raise _busy(exc) from exc

    @contextmanager
    def snapshot(self) -> Iterator[Transaction]:
        """A read-only view (deferred ``BEGIN``): the Transaction's reads on one snapshot.

        Do not write through it; writes belong in ``transaction()``.
        """
        conn = self.conn
        try:
            conn.execute("BEGIN")
        except sqlite3.OperationalError as exc:
            raise _busy(exc) from exc
        try:
            yield Transaction(conn, None)
        finally:
            conn.execute("ROLLBACK")

    # reads

    def package(self, package_id: str) -> PackageRecord:
        """A stored package by id (raises NotFound)."""
        record = one_package(self.conn, "p.package_id = ?", (package_id,))
        if record is None:
            raise NotFound(f"no package {package_id!r} in the store", package_id=package_id)
        return record

    def body(self, package_id: str) -> bytes:
        """The exact stored bytes of a package (raises NotFound)."""
        row = self.conn.execute(
            "SELECT b.body FROM package_bodies b JOIN packages p ON p.id = b.package"
            " WHERE p.package_id = ?",
            (package_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no package {package_id!r} in the store", package_id=package_id)
        return bytes(row[0])

    def packages(
        self,
        *,
        direction: Direction | None = None,
        kind: Kind | None = None,
        document_id: str | None = None,
        limit: int = 1000,
    ) -> list[PackageRecord]:
        """Stored packages, oldest first, filtered."""
        where: list[str] = ["1=1"]
        params: list[object] = []
        for column, value in (("direction", direction), ("kind", kind),
                              ("document_id", document_id)):
            if value is not None:
                where.append(f"p.{column} = ?")
                params.append(value)
        rows = self.conn.execute(
            f"SELECT {PACKAGE_COLUMNS} FROM packages p WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY p.id LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [package_from_row(r) for r in rows]

    def pending_outbox(self, limit: int, exclude: Collection[int] = ()) -> list[OutboxItem]:
        """Up to ``limit`` pending messages, oldest first, skipping tokens in ``exclude``.

        Tokens are chosen first without touching bodies (cheap enough to poll often); only the
        chosen rows' bodies are read.
        """
        ids = [int(r[0]) for r in self.conn.execute(
            "SELECT id FROM outbox WHERE state = 'pending' ORDER BY id LIMIT ?",
            (limit + len(exclude),),
        ).fetchall() if r[0] not in exclude][:limit]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            "SELECT o.id, o.recipient, p.package_id, p.message_id, p.kind, p.sender,"  # noqa: S608
            " p.document_id, p.sha256, b.body, o.attempts FROM outbox o"
            " JOIN packages p ON p.id = o.package JOIN package_bodies b ON b.package = p.id"
            f" WHERE o.id IN ({marks}) ORDER BY o.id",
            ids,
        ).fetchall()
        return [
            OutboxItem(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bytes(r[8]), r[9])
            for r in rows
        ]

    def outbox_counts(self) -> dict[str, int]:
        """Number of outbox rows per state (pending is the relay's backlog)."""
        rows = self.conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
        counts = {"pending": 0, "confirmed": 0, "failed": 0}
        counts.update({str(r[0]): int(r[1]) for r in rows})
        return counts

    def deliveries(self, document_id: str | None = None, *, limit: int = 1000) -> list[Delivery]:
        """Deliveries of sent documents (all, or of one DocumentId), oldest first."""
        if document_id is None:
            rows = self.conn.execute(
                f"{DELIVERY_SELECT} ORDER BY d.id LIMIT ?", (limit,)
            ).fetchall()
        else:
            rows = self.conn.execute(
                f"{DELIVERY_SELECT} WHERE d.document_id = ? ORDER BY d.id LIMIT ?",
                (document_id, limit),
            ).fetchall()
        return [Delivery(*r) for r in rows]

    def history(self, delivery: int) -> list[HistoryEntry]:
        """A delivery's full timeline, oldest first."""
        rows = self.conn.execute(
            "SELECT h.id, h.delivery, h.state, h.status_code, p.package_id, h.description, h.at"
            " FROM delivery_history h LEFT JOIN packages p ON p.id = h.status_package"
            " WHERE h.delivery = ? ORDER BY h.id",
            (delivery,),
        ).fetchall()
        return [HistoryEntry(*r) for r in rows]

    def inbox(
        self,
        *,
        pickup: Pickup | None = None,
        kind: Kind | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[InboxEntry]:
        """Received packages for the DMS, oldest first (``after`` = last seen inbox id)."""
        where: list[str] = ["i.id > ?"]
        params: list[object] = [after]
        if pickup is not None:
            where.append("i.pickup = ?")
            params.append(pickup)
        if kind is not None:
            where.append("i.kind = ?")
            params.append(kind)
        rows = self.conn.execute(
            f"{INBOX_SELECT} WHERE {' AND '.join(where)} ORDER BY i.id LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [InboxEntry(*r) for r in rows]

    def inbox_entry(self, package_id: str) -> InboxEntry:
        """One received package's inbox row (raises NotFound)."""
        row = self.conn.execute(
            f"{INBOX_SELECT} WHERE p.package_id = ?", (package_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no received package {package_id!r}", package_id=package_id)
        return InboxEntry(*row)

    def received_documents(self, document_id: str) -> list[InboxEntry]:
        """Inbox rows of received documents with this DocumentId, oldest first."""
        rows = self.conn.execute(
            f"{INBOX_SELECT} WHERE i.document_id = ? AND i.kind = 'edoc' ORDER BY i.id",
            (document_id,),
        ).fetchall()
        return [InboxEntry(*r) for r in rows]

    def rejections(self, *, limit: int = 1000) -> list[Rejection]:
        """Refused messages, oldest first."""
        rows = self.conn.execute(
            "SELECT id, message_id, broker_user, claimed_sender, identified_sender, document_id,"
            " code, reason, sha256, at FROM rejections ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return [Rejection(*r) for r in rows]

    # reads for the DMS gateway and /metrics (edoc_axis.gateway.backend)

    def recent_packages(
        self, *, direction: Direction, kind: Kind, package_id: str | None = None,
        limit: int = 1000,
    ) -> list[PackageRecord]:
        """The newest ``limit`` packages of one direction and kind (or one by id), oldest first."""
        where = "p.direction = ? AND p.kind = ?"
        params: list[object] = [direction, kind]
        if package_id is not None:
            where += " AND p.package_id = ?"
            params.append(package_id)
        rows = self.conn.execute(
            f"SELECT {PACKAGE_COLUMNS} FROM packages p WHERE {where}"  # noqa: S608 fixed clauses
            " ORDER BY p.id DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [package_from_row(r) for r in reversed(rows)]

    def outbox_states(self, package_id: str) -> list[tuple[str, str, str]]:
        """(recipient, outbox state, updated_at) of each message of one stored package."""
        rows = self.conn.execute(
            "SELECT o.recipient, o.state, o.updated_at FROM outbox o"
            " JOIN packages p ON p.id = o.package WHERE p.package_id = ? ORDER BY o.id",
            (package_id,),
        ).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def package_counts(self) -> dict[str, int]:
        """Stored packages per direction (``in``, ``out``)."""
        rows = self.conn.execute(
            "SELECT direction, count(*) FROM packages GROUP BY direction"
        ).fetchall()
        counts = {"in": 0, "out": 0}
        counts.update({str(r[0]): int(r[1]) for r in rows})
        return counts

    def oldest_pending_outbox(self) -> str | None:
        """When the oldest message still waiting for the broker was queued (ISO), or None."""
        row = self.conn.execute(
            "SELECT created_at FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1"
        ).fetchone()
        return str(row[0]) if row else None

    def rejection_counts(self) -> dict[str, int]:
        """Refused incoming messages per error code."""
        rows = self.conn.execute("SELECT code, count(*) FROM rejections GROUP BY code").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def count(self, table: Literal["packages", "inbox", "deliveries", "rejections"]) -> int:
        """Rows in one of the main tables (for health output and tests)."""
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


