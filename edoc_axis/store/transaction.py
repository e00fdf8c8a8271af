"""One write transaction of the store, and the reads that must see its own writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from edoc_axis.store.records import (
    DELIVERY_SELECT,
    PACKAGE_COLUMNS,
    Delivery,
    Direction,
    Event,
    Kind,
    NewPackage,
    PackageRecord,
    Pickup,
    encode_warnings,
    now_iso,
    package_from_row,
)


class Transaction:
    """The writes of one ``BEGIN IMMEDIATE`` ... ``COMMIT``; reads see the transaction's state."""

    def __init__(self, conn: sqlite3.Connection, hook: EventHook | None) -> None:
        self.conn = conn
        self._hook = hook
        self.at = now_iso()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement inside this transaction (for the audit hook's own tables)."""
        return self.conn.execute(sql, params)

    def emit(self, event: Event) -> None:
        """Hand an event to the audit hook, inside this transaction."""
        if self._hook is not None:
            self._hook(self, event)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested scope: its writes roll back alone if it raises (one bad message in a batch)."""
        self.conn.execute("SAVEPOINT item")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO item")
            self.conn.execute("RELEASE item")
            raise
        self.conn.execute("RELEASE item")

    def add_package(self, pkg: NewPackage) -> int | None:
        """Store a package and its bytes; returns the row id, or None on a dedupe clash.

        A clash (same package id, same message id from that sender, or the same document key)
        means the package is already stored: the caller treats it as a duplicate.
        """
        cur = self.conn.execute(
            "INSERT INTO packages (package_id, direction, kind, sender, recipients, document_id,"
            " business_op, related_package, status_code, description, message_id, broker_user,"
            " sha256, dedupe_digest, size, created_at, warnings)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (
                pkg.package_id, pkg.direction, pkg.kind, pkg.sender, " ".join(pkg.recipients),
                pkg.document_id, pkg.business_op, pkg.related_package, pkg.status_code,
                pkg.description, pkg.message_id, pkg.broker_user, pkg.sha256,
                pkg.dedupe_digest, len(pkg.body), self.at, encode_warnings(pkg.warnings),
            ),
        )
        if cur.rowcount == 0:
            return None
        row_id = int(cur.lastrowid or 0)
        self.conn.execute(
            "INSERT INTO package_bodies (package, body) VALUES (?, ?)", (row_id, pkg.body)
        )
        return row_id

    def add_delivery(self, package: int, document_id: str, recipient: str, state: str) -> int:
        """Open a delivery of a sent package to one recipient, with its first history entry."""
        cur = self.conn.execute(
            "INSERT INTO deliveries (package, document_id, recipient, state, updated_at)"
            " VALUES (?,?,?,?,?)",
            (package, document_id, recipient, state, self.at),
        )
        delivery = int(cur.lastrowid or 0)
        self.add_history(delivery, state)
        return delivery

    def add_history(
        self,
        delivery: int,
        state: str,
        *,
        status_code: str | None = None,
        status_package: int | None = None,
        description: str | None = None,
    ) -> None:
        """Append one step to a delivery's history (never updated, never deleted)."""
        self.conn.execute(
            "INSERT INTO delivery_history (delivery, state, status_code, status_package,"
            " description, at) VALUES (?,?,?,?,?,?)",
            (delivery, state, status_code, status_package, description, self.at),
        )

    def set_delivery_state(
        self, delivery: int, state: str, *, status_code: str | None, reason: str | None
    ) -> None:
        """Move a delivery to ``state`` (the node decides whether that is a move forward)."""
        self.conn.execute(
            "UPDATE deliveries SET state = ?, status_code = coalesce(?, status_code),"
            " reason = ?, updated_at = ? WHERE id = ?",
            (state, status_code, reason, self.at, delivery),
        )

    def add_outbox(self, package: int, recipient: str) -> int:
        """Queue one message of a stored package to one recipient; returns its token."""
        cur = self.conn.execute(
            "INSERT INTO outbox (package, recipient, created_at, updated_at) VALUES (?,?,?,?)",
            (package, recipient, self.at, self.at),
        )
        return int(cur.lastrowid or 0)

    def finish_outbox(self, token: int, state: str, reason: str | None) -> None:
        """Record a broker outcome for one outbox row (confirmed, failed, or still pending)."""
        self.conn.execute(
            "UPDATE outbox SET state = ?, attempts = attempts + 1, reason = ?, updated_at = ?"
            " WHERE id = ?",
            (state, reason, self.at, token),
        )

    def add_inbox(self, package: int, kind: Kind, sender: str, document_id: str) -> int:
        """Make a received package visible to the DMS (pickup state ``new``)."""
        cur = self.conn.execute(
            "INSERT INTO inbox (package, kind, sender, document_id, received_at, updated_at)"
            " VALUES (?,?,?,?,?,?)",
            (package, kind, sender, document_id, self.at, self.at),
        )
        return int(cur.lastrowid or 0)

    def set_pickup(self, package_id: str, pickup: Pickup, note: str | None = None) -> bool:
        """Record the DMS's pickup acknowledgement; False when no inbox row has that package."""
        cur = self.conn.execute(
            "UPDATE inbox SET pickup = ?, pickup_note = ?, updated_at = ?"
            " WHERE package = (SELECT id FROM packages WHERE package_id = ?)",
            (pickup, note, self.at, package_id),
        )
        return cur.rowcount > 0

    def add_rejection(
        self,
        *,
        message_id: str | None,
        broker_user: str | None,
        claimed_sender: str | None,
        identified_sender: str | None,
        document_id: str | None,
        code: str,
        reason: str,
        sha256: str,
        body: bytes,
    ) -> int:
        """Record why a received message was refused (its bytes are kept as evidence)."""
        cur = self.conn.execute(
            "INSERT INTO rejections (message_id, broker_user, claimed_sender, identified_sender,"
            " document_id, code, reason, sha256, at, body) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                message_id, broker_user, claimed_sender, identified_sender, document_id,
                code, reason, sha256, self.at, body,
            ),
        )
        return int(cur.lastrowid or 0)

    # reads that must see this transaction's own writes

    def package_by_message(self, direction: Direction, sender: str, message_id: str) -> (
        PackageRecord | None
    ):
        """The package with this broker message id from ``sender``, if stored."""
        return one_package(
            self.conn,
            "p.direction = ? AND p.sender = ? AND p.message_id = ?",
            (direction, sender, message_id),
        )

    def package_by_key(
        self, direction: Direction, sender: str, document_id: str, business_op: int, digest: str
    ) -> PackageRecord | None:
        """The document with this dedupe key (sender, DocumentId, business op, digest)."""
        return one_package(
            self.conn,
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
        return one_package(self.conn, where, params)

    def delivery_for(self, document_id: str, recipient: str) -> Delivery | None:
        """The latest delivery of DocumentId to ``recipient`` (newest package wins)."""
        row = self.conn.execute(
            f"{DELIVERY_SELECT} WHERE d.document_id = ? AND d.recipient = ?"
            " ORDER BY d.id DESC LIMIT 1",
            (document_id, recipient),
        ).fetchone()
        return Delivery(*row) if row else None

    def deliveries_of(self, package: int) -> list[Delivery]:
        """Every delivery of one sent package."""
        rows = self.conn.execute(
            f"{DELIVERY_SELECT} WHERE d.package = ? ORDER BY d.id", (package,)
        ).fetchall()
        return [Delivery(*r) for r in rows]

    def history_codes(self, delivery: int) -> set[str]:
        """Status codes already recorded for a delivery (for idempotent repeats)."""
        rows = self.conn.execute(
            "SELECT DISTINCT status_code FROM delivery_history"
            " WHERE delivery = ? AND status_code IS NOT NULL",
            (delivery,),
        ).fetchall()
        return {r[0] for r in rows}

    def outbox_targets(self, tokens: Collection[int]) -> list[tuple[int, str, str, int, str]]:
        """(token, package kind, recipient, package row, package id) for outbox rows."""
        if not tokens:
            return []
        marks = ",".join("?" * len(tokens))
        rows = self.conn.execute(
            "SELECT o.id, p.kind, o.recipient, p.id, p.package_id FROM outbox o"  # noqa: S608
            f" JOIN packages p ON p.id = o.package WHERE o.id IN ({marks})",
            tuple(tokens),
        ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4])) for r in rows]

    def sent_status(self, document_id: str, to: str, code: str) -> PackageRecord | None:
        """A status with ``code`` this node already sent about DocumentId to agency ``to``."""
        return one_package(
            self.conn,
            "p.kind = 'status' AND p.direction = 'out' AND p.document_id = ?"
            " AND p.recipients = ? AND p.status_code = ?",
            (document_id, to, code),
        )



EventHook = Callable[[Transaction, Event], None]


def one_package(
    conn: sqlite3.Connection, where: str, params: Sequence[Any]
) -> PackageRecord | None:
    """The newest package matching a fixed WHERE clause (values only through placeholders)."""
    row = conn.execute(
        f"SELECT {PACKAGE_COLUMNS} FROM packages p WHERE {where}"  # noqa: S608 fixed clauses
        " ORDER BY p.id DESC LIMIT 1",
        tuple(params),
    ).fetchone()
    return package_from_row(row) if row else None
