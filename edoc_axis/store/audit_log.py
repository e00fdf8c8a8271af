"""The audit chain's rows in the node's store: appended inside the event's transaction, read back.

``AuditLog.on_event`` is the store's ``on_event`` hook: it turns each ``Event`` of the node into
an ``audit.next_entry`` linked to the head row, inserts it in the same transaction, and when the
``CheckpointPolicy`` is due inserts the signed checkpoint and its chain entry too. Signing is a
``Sealer`` callable the node builds around its key, so the store never holds the key itself.
Reads stream rows in ``seq`` order for ``audit.verify_chain`` and the evidence modules.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edoc_axis.audit import chain as audit
from edoc_axis.audit.chain import AuditEntry, Checkpoint, CheckpointPolicy, Kind
from edoc_axis.store.records import Event
from edoc_axis.store.transaction import Transaction

if TYPE_CHECKING:  # the Store imports nothing of this module; only annotations need it
    from edoc_axis.store import Store

Sealer = Callable[[AuditEntry], tuple[Checkpoint, AuditEntry]]
"""Sign ``head`` now: ``audit.seal(head, key, cert, organ_id, genesis=...)`` with the node's key."""

# Node event kind -> audit kind. A duplicate delivery is recorded as ``received`` with
# ``duplicate`` in its detail (the stored bytes are the original's).
EVENT_KINDS: dict[str, str] = {
    "submitted": Kind.SUBMITTED, "published": Kind.PUBLISHED,
    "publish_failed": Kind.PUBLISH_FAILED, "received": Kind.RECEIVED,
    "duplicate_received": Kind.RECEIVED, "status_sent": Kind.STATUS_SENT,
    "status_received": Kind.STATUS_RECEIVED, "rejected": Kind.REJECTED,
    "dead_lettered": Kind.DEAD_LETTERED, "replayed": Kind.REPLAYED,
}
OUTGOING_KINDS = frozenset({Kind.SUBMITTED.value, Kind.STATUS_SENT.value})
INCOMING_KINDS = frozenset({Kind.RECEIVED.value, Kind.STATUS_RECEIVED.value})

ENTRY_COLUMNS = (
    "seq, at, kind, package_id, document_id, counterpart, content_sha256, signer, detail,"
    " prev_hash, entry_hash"
)
CHECKPOINT_COLUMNS = "seq, head_hash, at, organ_id, algorithm, signature, cert_der"


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """One archive file: entries ``first_seq..last_seq`` moved out of the live log."""

    first_seq: int
    last_seq: int
    head_hash: str
    sha256: str
    path: str


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(row[0], row[1], row[2], row[3], row[4], bytes(row[5]), bytes(row[6]))


def _detail(event: Event) -> str | None:
    detail = {k: v for k, v in event.detail.items() if k != "signer" and v not in (None, "")}
    if event.kind == "duplicate_received":
        detail["duplicate"] = True
        if event.sha256:
            detail["sha256"] = event.sha256
    return json.dumps(detail, sort_keys=True, separators=(",", ":")) if detail else None


class AuditLog:
    """The audit chain of one node's store (``attach`` makes it the store's event hook)."""

    def __init__(
        self,
        store: Store,
        organ_id: str,
        *,
        policy: CheckpointPolicy | None = None,
        sealer: Sealer | None = None,
        own_fingerprint: str | None = None,
    ) -> None:
        self.store = store
        self.organ_id = organ_id
        self.genesis = audit.genesis_hash(organ_id)
        self.policy = policy or CheckpointPolicy()
        self.sealer = sealer
        self.own_fingerprint = own_fingerprint

    def attach(self) -> AuditLog:
        """Make this log the store's ``on_event`` hook; returns self."""
        self.store.on_event = self.on_event
        return self

    # --- writing (inside the caller's transaction) -------------------------------------------

    def on_event(self, txn: Transaction, event: Event) -> None:
        """The store hook: one entry for the event (and a checkpoint when due)."""
        kind = EVENT_KINDS.get(event.kind)
        if kind is None:
            raise ValueError(f"no audit kind for node event {event.kind!r}")
        document_id, content = event.document_id, event.sha256
        if event.kind == "duplicate_received":
            content = None  # the duplicate's own bytes are not stored; the detail keeps the hash
        elif event.package_id and (document_id is None or content is None):
            row = txn.execute(
                "SELECT document_id, sha256 FROM packages WHERE package_id = ?",
                (event.package_id,),
            ).fetchone()
            if row is not None:
                document_id = document_id or row[0]
                content = content or row[1]
        signer = event.detail.get("signer")
        if not signer and kind in OUTGOING_KINDS:
            signer = self.own_fingerprint
        self.append(
            txn, kind, package_id=event.package_id, document_id=document_id,
            counterpart=event.counterpart, content_sha256=content,
            signer=signer if isinstance(signer, str) else None, detail=_detail(event),
        )

    def append(self, txn: Transaction, kind: str, **fields: str | None) -> AuditEntry:
        """Append one entry after the head; seal when the policy says so. Returns the entry."""
        head = self.head(txn)
        entry = audit.next_entry(head, kind=kind, genesis=self.genesis, **fields)
        self._insert(txn, entry)
        if self.sealer is not None and self.policy.due(self.last_checkpoint(txn), entry):
            self._seal(txn, entry)
        return entry

    def _insert(self, txn: Transaction, entry: AuditEntry) -> None:
        txn.execute(
            f"INSERT INTO audit_entry ({ENTRY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
            (
                entry.seq, entry.at, entry.kind, entry.package_id, entry.document_id,
                entry.counterpart, entry.content_sha256, entry.signer, entry.detail,
                entry.prev_hash, entry.entry_hash,
            ),
        )

    def _seal(self, txn: Transaction, head: AuditEntry) -> Checkpoint:
        if self.sealer is None:
            raise ValueError("this audit log has no sealer (the node's key)")
        checkpoint, entry = self.sealer(head)
        txn.execute(
            f"INSERT INTO audit_checkpoint ({CHECKPOINT_COLUMNS}) VALUES (?,?,?,?,?,?,?)",  # noqa: S608
            (
                checkpoint.seq, checkpoint.head_hash, checkpoint.at, checkpoint.organ_id,
                checkpoint.algorithm, checkpoint.signature, checkpoint.cert_der,
            ),
        )
        self._insert(txn, entry)
        return checkpoint

    def seal_now(self) -> Checkpoint | None:
        """Force a checkpoint of the current head (None when the head is already sealed)."""
        with self.store.transaction() as txn:
            head = self.head(txn)
            if head is None or head.kind == Kind.CHECKPOINT:
                return None
            return self._seal(txn, head)

    def record(self, event: Event) -> None:
        """Record an event that has no other store write (e.g. a dead letter replayed)."""
        with self.store.transaction() as txn:
            self.on_event(txn, event)

    # --- reading -----------------------------------------------------------------------------

    def head(self, txn: Transaction | None = None) -> AuditEntry | None:
        """The newest entry (live log), or None."""
        run = txn.execute if txn is not None else self.store.conn.execute
        row = run(
            f"SELECT {ENTRY_COLUMNS} FROM audit_entry ORDER BY seq DESC LIMIT 1"  # noqa: S608
        ).fetchone()
        return AuditEntry.from_row(row) if row else None

    def last_checkpoint(self, txn: Transaction | None = None) -> Checkpoint | None:
        """The newest checkpoint, or None."""
        run = txn.execute if txn is not None else self.store.conn.execute
        row = run(
            f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoint"  # noqa: S608
            " ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return _checkpoint(row) if row else None

    def entries(self, first: int | None = None, last: int | None = None) -> Iterator[AuditEntry]:
        """Live entries with ``first <= seq <= last``, ascending, streamed."""
        cursor = self.store.conn.execute(
            f"SELECT {ENTRY_COLUMNS} FROM audit_entry WHERE seq >= ? AND seq <= ?"  # noqa: S608
            " ORDER BY seq",
            (first or 0, last if last is not None else 1 << 62),
        )
        for row in cursor:
            yield AuditEntry(*row)

    def entries_between(self, since: str, until: str) -> Iterator[AuditEntry]:
        """Live entries with ``since <= at < until`` (audit time strings), ascending."""
        cursor = self.store.conn.execute(
            f"SELECT {ENTRY_COLUMNS} FROM audit_entry WHERE at >= ? AND at < ?"  # noqa: S608
            " ORDER BY seq",
            (since, until),
        )
        for row in cursor:
            yield AuditEntry(*row)

    def count_between(self, since: str, until: str) -> int:
        """How many live entries ``entries_between`` yields."""
        row = self.store.conn.execute(
            "SELECT count(*) FROM audit_entry WHERE at >= ? AND at < ?", (since, until)
        ).fetchone()
        return int(row[0])

    def span(self) -> tuple[int, int] | None:
        """(first, last) seq of the live log, or None when empty."""
        row = self.store.conn.execute("SELECT min(seq), max(seq) FROM audit_entry").fetchone()
        return None if row[0] is None else (int(row[0]), int(row[1]))

    def document_entries(self, document_id: str) -> list[AuditEntry]:
        """Every live entry about one DocumentId, ascending."""
        rows = self.store.conn.execute(
            f"SELECT {ENTRY_COLUMNS} FROM audit_entry WHERE document_id = ?"  # noqa: S608
            " ORDER BY seq",
            (document_id,),
        ).fetchall()
        return [AuditEntry(*r) for r in rows]

    def checkpoints(
        self, first: int | None = None, last: int | None = None
    ) -> Iterator[Checkpoint]:
        """Checkpoints with ``first <= seq <= last``, ascending, streamed."""
        cursor = self.store.conn.execute(
            f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoint"  # noqa: S608
            " WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (first or 0, last if last is not None else 1 << 62),
        )
        for row in cursor:
            yield _checkpoint(row)

    def checkpoint_seqs(self) -> list[int]:
        """Every stored checkpoint's seq, ascending."""
        rows = self.store.conn.execute("SELECT seq FROM audit_checkpoint ORDER BY seq")
        return [int(r[0]) for r in rows]

    def archives(self) -> list[ArchiveRecord]:
        """Archive files recorded so far, oldest first."""
        rows = self.store.conn.execute(
            "SELECT first_seq, last_seq, head_hash, sha256, path FROM audit_archive"
            " ORDER BY last_seq"
        ).fetchall()
        return [ArchiveRecord(*r) for r in rows]

    def start_point(self, first: int | None = None) -> tuple[int, str]:
        """(start seq, prev hash) to verify the live log from (entry ``first``, by default the
        first live one): after the last archive, or from the genesis."""
        if first is not None and first > 1:
            row = self.store.conn.execute(
                "SELECT entry_hash FROM audit_entry WHERE seq = ?", (first - 1,)
            ).fetchone()
            if row is not None:
                return first, str(row[0])
        archives = self.archives()
        if archives:
            return archives[-1].last_seq + 1, archives[-1].head_hash
        return 1, self.genesis

    def signed_bytes(self, sha256: str) -> bytes | None:
        """The stored signed package (or refused message) whose bytes hash to ``sha256``."""
        for sql in (
            "SELECT b.body FROM packages p JOIN package_bodies b ON b.package = p.id"
            " WHERE p.sha256 = ?",
            "SELECT body FROM rejections WHERE sha256 = ?",
        ):
            for row in self.store.conn.execute(sql, (sha256,)):
                body = bytes(row[0])
                if hashlib.sha256(body).hexdigest() == sha256:
                    return body
        return None

    def move_to_archive(self, record: ArchiveRecord) -> AuditEntry:
        """Drop entries and checkpoints up to ``record.last_seq`` (already written to the file)
        and chain an ``archived`` entry naming the file's SHA-256, in one transaction."""
        with self.store.transaction() as txn:
            txn.execute(
                "INSERT INTO audit_archive (last_seq, first_seq, head_hash, sha256, path)"
                " VALUES (?,?,?,?,?)",
                (record.last_seq, record.first_seq, record.head_hash, record.sha256, record.path),
            )
            txn.execute("DELETE FROM audit_entry WHERE seq <= ?", (record.last_seq,))
            txn.execute("DELETE FROM audit_checkpoint WHERE seq <= ?", (record.last_seq,))
            return self.append(
                txn, Kind.ARCHIVED, content_sha256=record.sha256,
                detail=json.dumps({"first_seq": record.first_seq, "last_seq": record.last_seq,
                                   "file": record.path.rsplit("/", 1)[-1]}, sort_keys=True),
            )

    def archive_end(self, before: dt.datetime) -> int | None:
        """The newest checkpointed seq whose entry is older than ``before`` (an archive may end
        there), or None."""
        row = self.store.conn.execute(
            "SELECT max(c.seq) FROM audit_checkpoint c JOIN audit_entry e ON e.seq = c.seq"
            " WHERE e.at < ? AND c.head_hash = e.entry_hash",
            (audit.format_time(before),),
        ).fetchone()
        return None if row[0] is None else int(row[0])
