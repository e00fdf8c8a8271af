"""One write transaction of the store: every write the node makes, and the audit hook."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from edoc_axis.store.audit_rows import AuditWrites
from edoc_axis.store.bodies import BodyFiles
from edoc_axis.store.reads import Snapshot
from edoc_axis.store.records import (
    Event,
    Kind,
    NewPackage,
    Pickup,
    encode_warnings,
    now_iso,
)


class Transaction(Snapshot):
    """The writes of one ``BEGIN IMMEDIATE`` ... ``COMMIT``; its reads (``Reads``) see them."""

    __slots__ = ("_audit", "_hook", "at")

    def __init__(self, conn: sqlite3.Connection, hook: EventHook | None,
                 files: BodyFiles) -> None:
        super().__init__(conn, files)
        self._hook = hook
        self._audit = AuditWrites(conn)
        self.at = now_iso()

    @property
    def audit_rows(self) -> AuditWrites:
        """The audit chain's tables, read and appended inside this transaction."""
        return self._audit

    def emit(self, event: Event) -> None:
        """Hand an event to the audit hook, inside this transaction."""
        if self._hook is not None:
            self._hook(self, event)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested scope: its writes roll back alone if it raises (one bad message in a batch)."""
        self._conn.execute("SAVEPOINT item")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK TO item")
            self._conn.execute("RELEASE item")
            raise
        self._conn.execute("RELEASE item")

    def add_package(self, pkg: NewPackage) -> int | None:
        """Store a package and its bytes; returns the row id, or None on a dedupe clash.

        A clash (same package id, same message id from that sender, or the same document key)
        means the package is already stored: the caller treats it as a duplicate.
        """
        cur = self._conn.execute(
            "INSERT INTO packages (package_id, direction, kind, sender, recipients, document_id,"
            " business_op, related_package, status_code, description, message_id, broker_user,"
            " sha256, dedupe_digest, size, created_at, warnings, subject, notation)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (
                pkg.package_id, pkg.direction, pkg.kind, pkg.sender, " ".join(pkg.recipients),
                pkg.document_id, pkg.business_op, pkg.related_package, pkg.status_code,
                pkg.description, pkg.message_id, pkg.broker_user, pkg.sha256,
                pkg.dedupe_digest, len(pkg.body), self.at, encode_warnings(pkg.warnings),
                pkg.subject, pkg.notation,
            ),
        )
        if cur.rowcount == 0:
            return None
        row_id = int(cur.lastrowid or 0)
        if self._files.wants(len(pkg.body)):
            # Written and fsynced now, before the COMMIT that makes this row reference it.
            digest = self._files.put(pkg.body)
            self._conn.execute(
                "INSERT INTO package_bodies (package, body, file) VALUES (?, X'', ?)",
                (row_id, digest),
            )
        else:
            self._conn.execute(
                "INSERT INTO package_bodies (package, body) VALUES (?, ?)", (row_id, pkg.body)
            )
        return row_id

    def set_summary(self, package_id: str, subject: str, notation: str) -> None:
        """Fill the subject and notation of a package stored without them (migration 5)."""
        self._conn.execute(
            "UPDATE packages SET subject = ?, notation = ? WHERE package_id = ?",
            (subject, notation, package_id),
        )

    def add_delivery(self, package: int, document_id: str, recipient: str, state: str) -> int:
        """Open a delivery of a sent package to one recipient, with its first history entry."""
        cur = self._conn.execute(
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
        self._conn.execute(
            "INSERT INTO delivery_history (delivery, state, status_code, status_package,"
            " description, at) VALUES (?,?,?,?,?,?)",
            (delivery, state, status_code, status_package, description, self.at),
        )

    def set_delivery_state(
        self, delivery: int, state: str, *, status_code: str | None, reason: str | None
    ) -> None:
        """Move a delivery to ``state`` (the node decides whether that is a move forward)."""
        self._conn.execute(
            "UPDATE deliveries SET state = ?, status_code = coalesce(?, status_code),"
            " reason = ?, updated_at = ? WHERE id = ?",
            (state, status_code, reason, self.at, delivery),
        )

    def add_outbox(self, package: int, recipient: str) -> int:
        """Queue one message of a stored package to one recipient; returns its token."""
        cur = self._conn.execute(
            "INSERT INTO outbox (package, recipient, created_at, updated_at) VALUES (?,?,?,?)",
            (package, recipient, self.at, self.at),
        )
        return int(cur.lastrowid or 0)

    def finish_outbox(self, token: int, state: str, reason: str | None) -> None:
        """Record a broker outcome for one outbox row (confirmed, failed, or still pending)."""
        self._conn.execute(
            "UPDATE outbox SET state = ?, attempts = attempts + 1, reason = ?, updated_at = ?"
            " WHERE id = ?",
            (state, reason, self.at, token),
        )

    def add_inbox(self, package: int, kind: Kind, sender: str, document_id: str) -> int:
        """Make a received package visible to the DMS (pickup state ``new``)."""
        cur = self._conn.execute(
            "INSERT INTO inbox (package, kind, sender, document_id, received_at, updated_at)"
            " VALUES (?,?,?,?,?,?)",
            (package, kind, sender, document_id, self.at, self.at),
        )
        return int(cur.lastrowid or 0)

    def set_pickup(self, package_id: str, pickup: Pickup, note: str | None = None) -> bool:
        """Record the DMS's pickup acknowledgement; False when no inbox row has that package."""
        cur = self._conn.execute(
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
        cur = self._conn.execute(
            "INSERT INTO rejections (message_id, broker_user, claimed_sender, identified_sender,"
            " document_id, code, reason, sha256, at, body) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                message_id, broker_user, claimed_sender, identified_sender, document_id,
                code, reason, sha256, self.at, body,
            ),
        )
        return int(cur.lastrowid or 0)


EventHook = Callable[[Transaction, Event], None]
