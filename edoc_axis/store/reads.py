"""Every read of the store, written once, on whichever connection the reader stands for.

``Store`` (this thread's connection), ``Transaction`` (inside its ``BEGIN IMMEDIATE``, seeing
its own writes) and ``Store.snapshot()`` (one consistent read transaction) are all ``Reads``:
a query method exists only here. The audit tables' queries are ``audit_rows``
(:mod:`edoc_axis.store.audit_rows`).
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from typing import Any, BinaryIO, Literal

from edoc_axis.errors import NotFound
from edoc_axis.store.audit_rows import AuditRows
from edoc_axis.store.bodies import BodyFiles
from edoc_axis.store.records import (
    DELIVERY_SELECT,
    INBOX_SELECT,
    PACKAGE_COLUMNS,
    Delivery,
    Direction,
    HistoryEntry,
    InboxEntry,
    Kind,
    OutboxItem,
    PackageRecord,
    Pickup,
    Rejection,
    package_from_row,
)
from edoc_axis.store.transfers import TransferRows


class Reads:
    """The store's queries; a subclass says which connection they run on (``_db``)."""

    __slots__ = ()

    @property
    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    @property
    def _files(self) -> BodyFiles:
        raise NotImplementedError

    def _body_of(self, blob: bytes, file: str | None) -> bytes:
        return self._files.read(file) if file is not None else bytes(blob)

    @property
    def audit_rows(self) -> AuditRows:
        """The audit chain's tables, read on the same connection."""
        return AuditRows(self._db)

    def _package_where(self, where: str, params: Sequence[Any]) -> PackageRecord | None:
        """The newest package matching a fixed WHERE clause (values only through placeholders)."""
        row = self._db.execute(
            f"SELECT {PACKAGE_COLUMNS} FROM packages p WHERE {where}"  # noqa: S608 fixed clauses
            " ORDER BY p.id DESC LIMIT 1",
            tuple(params),
        ).fetchone()
        return package_from_row(row) if row else None

    # --- packages, outbox, deliveries, inbox, rejections ----------------------------------

    def package(self, package_id: str) -> PackageRecord:
        """A stored package by id (raises NotFound)."""
        record = self._package_where("p.package_id = ?", (package_id,))
        if record is None:
            raise NotFound(f"no package {package_id!r} in the store", package_id=package_id)
        return record

    def _body_row(self, package_id: str) -> tuple[bytes, str | None]:
        row = self._db.execute(
            "SELECT b.body, b.file FROM package_bodies b JOIN packages p ON p.id = b.package"
            " WHERE p.package_id = ?",
            (package_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no package {package_id!r} in the store", package_id=package_id)
        return row[0], row[1]

    def body(self, package_id: str) -> bytes:
        """The exact stored bytes of a package, in memory (raises NotFound)."""
        return self._body_of(*self._body_row(package_id))

    def open_body(self, package_id: str) -> BinaryIO:
        """A binary reader over a package's exact stored bytes, from the start: the file
        itself for a large body, so copying it (``shutil.copyfileobj``) streams (raises
        NotFound). Close it when done."""
        blob, file = self._body_row(package_id)
        return self._files.open(file) if file is not None else io.BytesIO(blob)

    def body_files_in_use(self) -> set[str]:
        """The digests of every body kept as a file (for ``Store.sweep_body_files``)."""
        return {str(r[0]) for r in self._db.execute(
            "SELECT DISTINCT file FROM package_bodies WHERE file IS NOT NULL")}

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
        rows = self._db.execute(
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
        ids = [int(r[0]) for r in self._db.execute(
            "SELECT id FROM outbox WHERE state = 'pending' ORDER BY id LIMIT ?",
            (limit + len(exclude),),
        ).fetchall() if r[0] not in exclude][:limit]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            "SELECT o.id, o.recipient, p.package_id, p.message_id, p.kind, p.sender,"  # noqa: S608
            " p.document_id, p.sha256, b.body, o.attempts, b.file FROM outbox o"
            " JOIN packages p ON p.id = o.package JOIN package_bodies b ON b.package = p.id"
            f" WHERE o.id IN ({marks}) ORDER BY o.id",
            ids,
        ).fetchall()
        return [
            OutboxItem(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7],
                       self._body_of(r[8], r[10]), r[9])
            for r in rows
        ]

    def outbox_counts(self) -> dict[str, int]:
        """Number of outbox rows per state (pending is the relay's backlog)."""
        rows = self._db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
        counts = {"pending": 0, "confirmed": 0, "failed": 0}
        counts.update({str(r[0]): int(r[1]) for r in rows})
        return counts

    def deliveries(self, document_id: str | None = None, *, limit: int = 1000) -> list[Delivery]:
        """Deliveries of sent documents (all, or of one DocumentId), oldest first."""
        if document_id is None:
            rows = self._db.execute(
                f"{DELIVERY_SELECT} ORDER BY d.id LIMIT ?", (limit,)
            ).fetchall()
        else:
            rows = self._db.execute(
                f"{DELIVERY_SELECT} WHERE d.document_id = ? ORDER BY d.id LIMIT ?",
                (document_id, limit),
            ).fetchall()
        return [Delivery(*r) for r in rows]

    def history(self, delivery: int) -> list[HistoryEntry]:
        """A delivery's full timeline, oldest first."""
        rows = self._db.execute(
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
        rows = self._db.execute(
            f"{INBOX_SELECT} WHERE {' AND '.join(where)} ORDER BY i.id LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [InboxEntry(*r) for r in rows]

    def inbox_entry(self, package_id: str) -> InboxEntry:
        """One received package's inbox row (raises NotFound)."""
        row = self._db.execute(
            f"{INBOX_SELECT} WHERE p.package_id = ?", (package_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no received package {package_id!r}", package_id=package_id)
        return InboxEntry(*row)

    def received_documents(self, document_id: str) -> list[InboxEntry]:
        """Inbox rows of received documents with this DocumentId, oldest first."""
        rows = self._db.execute(
            f"{INBOX_SELECT} WHERE i.document_id = ? AND i.kind = 'edoc' ORDER BY i.id",
            (document_id,),
        ).fetchall()
        return [InboxEntry(*r) for r in rows]

    def rejections(self, *, limit: int = 1000) -> list[Rejection]:
        """Refused messages, oldest first."""
        rows = self._db.execute(
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
        rows = self._db.execute(
            f"SELECT {PACKAGE_COLUMNS} FROM packages p WHERE {where}"  # noqa: S608 fixed clauses
            " ORDER BY p.id DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [package_from_row(r) for r in reversed(rows)]

    def outbox_states(self, package_id: str) -> list[tuple[str, str, str]]:
        """(recipient, outbox state, updated_at) of each message of one stored package."""
        rows = self._db.execute(
            "SELECT o.recipient, o.state, o.updated_at FROM outbox o"
            " JOIN packages p ON p.id = o.package WHERE p.package_id = ? ORDER BY o.id",
            (package_id,),
        ).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def package_counts(self) -> dict[str, int]:
        """Stored packages per direction (``in``, ``out``)."""
        rows = self._db.execute(
            "SELECT direction, count(*) FROM packages GROUP BY direction"
        ).fetchall()
        counts = {"in": 0, "out": 0}
        counts.update({str(r[0]): int(r[1]) for r in rows})
        return counts

    def oldest_pending_outbox(self) -> str | None:
        """When the oldest message still waiting for the broker was queued (ISO), or None."""
        row = self._db.execute(
            "SELECT created_at FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1"
        ).fetchone()
        return str(row[0]) if row else None

    def rejection_counts(self) -> dict[str, int]:
        """Refused incoming messages per error code."""
        rows = self._db.execute("SELECT code, count(*) FROM rejections GROUP BY code").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def count(self, table: Literal["packages", "inbox", "deliveries", "rejections"]) -> int:
        """Rows in one of the main tables (for health output and tests)."""
        return int(self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608

    def package_digest(self, package_id: str) -> tuple[str, str] | None:
        """(DocumentId, SHA-256 of the stored bytes) of a package, or None when not stored."""
        row = self._db.execute(
            "SELECT document_id, sha256 FROM packages WHERE package_id = ?", (package_id,)
        ).fetchone()
        return (str(row[0]), str(row[1])) if row is not None else None

    def signed_bodies(self, sha256: str) -> Iterator[bytes]:
        """Stored bytes recorded under this SHA-256: packages first, then refused messages (the
        caller rehashes them: the recorded hash is only a column)."""
        for sql in (
            "SELECT b.body, b.file FROM packages p JOIN package_bodies b ON b.package = p.id"
            " WHERE p.sha256 = ?",
            "SELECT body, NULL FROM rejections WHERE sha256 = ?",
        ):
            for row in self._db.execute(sql, (sha256,)).fetchall():
                yield self._body_of(row[0], row[1])

    # --- lookups the journeys make inside their transactions --------------------------------

    def package_by_message(self, direction: Direction, sender: str, message_id: str) -> (
        PackageRecord | None
    ):
        """The package with this broker message id from ``sender``, if stored."""
        return self._package_where(
            "p.direction = ? AND p.sender = ? AND p.message_id = ?",
            (direction, sender, message_id),
        )

    def package_by_key(
        self, direction: Direction, sender: str, document_id: str, business_op: int, digest: str
    ) -> PackageRecord | None:
        """The document with this dedupe key (sender, DocumentId, business op, digest)."""
        return self._package_where(
            "p.kind = 'edoc' AND p.direction = ? AND p.sender = ? AND p.document_id = ?"
            " AND p.business_op = ? AND p.dedupe_digest = ?",
            (direction, sender, document_id, business_op, digest),
        )

    def latest_document(
        self, direction: Direction, document_id: str, *, sender: str | None = None,
        business_op: int | None = None,
    ) -> PackageRecord | None:
        """The most recent document package with this DocumentId (optionally by sender/op)."""
        where = "p.kind = 'edoc' AND p.direction = ? AND p.document_id = ?"
        params: list[Any] = [direction, document_id]
        if sender is not None:
            where += " AND p.sender = ?"
            params.append(sender)
        if business_op is not None:
            where += " AND p.business_op = ?"
            params.append(business_op)
        return self._package_where(where, params)

    def delivery_for(self, document_id: str, recipient: str) -> Delivery | None:
        """The latest delivery of DocumentId to ``recipient`` (newest package wins)."""
        row = self._db.execute(
            f"{DELIVERY_SELECT} WHERE d.document_id = ? AND d.recipient = ?"
            " ORDER BY d.id DESC LIMIT 1",
            (document_id, recipient),
        ).fetchone()
        return Delivery(*row) if row else None

    def deliveries_of(self, package: int) -> list[Delivery]:
        """Every delivery of one sent package."""
        rows = self._db.execute(
            f"{DELIVERY_SELECT} WHERE d.package = ? ORDER BY d.id", (package,)
        ).fetchall()
        return [Delivery(*r) for r in rows]

    def history_codes(self, delivery: int) -> set[str]:
        """Status codes already recorded for a delivery (for idempotent repeats)."""
        rows = self._db.execute(
            "SELECT DISTINCT status_code FROM delivery_history"
            " WHERE delivery = ? AND status_code IS NOT NULL",
            (delivery,),
        ).fetchall()
        return {r[0] for r in rows}

    def outbox_targets(
        self, tokens: Collection[int]
    ) -> list[tuple[int, str, str, int, str, str, str]]:
        """(token, package kind, recipient, package row, package id, DocumentId, SHA-256) for
        outbox rows."""
        if not tokens:
            return []
        marks = ",".join("?" * len(tokens))
        rows = self._db.execute(
            "SELECT o.id, p.kind, o.recipient, p.id, p.package_id, p.document_id, p.sha256"  # noqa: S608
            f" FROM outbox o JOIN packages p ON p.id = o.package WHERE o.id IN ({marks})",
            tuple(tokens),
        ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), str(r[5]), str(r[6]))
                for r in rows]

    def sent_status(self, document_id: str, to: str, code: str) -> PackageRecord | None:
        """A status with ``code`` this node already sent about DocumentId to agency ``to``."""
        return self._package_where(
            "p.kind = 'status' AND p.direction = 'out' AND p.document_id = ?"
            " AND p.recipients = ? AND p.status_code = ?",
            (document_id, to, code),
        )


class Snapshot(Reads):
    """The reads on one connection's current transaction (``Store.snapshot()``); no writes."""

    __slots__ = ("_conn", "_files_of")

    def __init__(self, conn: sqlite3.Connection, files: BodyFiles) -> None:
        self._conn = conn
        self._files_of = files

    @property
    def _db(self) -> sqlite3.Connection:
        return self._conn

    @property
    def transfers(self) -> TransferRows:
        """The chunks of large packages received so far (written only in a transaction)."""
        return TransferRows(self._conn)

    @property
    def _files(self) -> BodyFiles:
        return self._files_of
