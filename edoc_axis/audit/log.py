"""The audit chain of one node's store: every store event chained in its own transaction.

``AuditLog.on_event`` is the store's ``on_event`` hook: it turns each ``Event`` of the node into
a ``next_entry`` linked to the head, appends it in the same transaction, and when the
``CheckpointPolicy`` is due appends the signed checkpoint and its chain entry too; between
entries a running node asks ``seal_if_due`` on a timer (``audit.sealing``), and a process that
wrote entries seals them before it lets go of the store (``seal_written``). Signing is a
``Sealer`` callable built around the agency key (``key_sealer``), so the log never holds the key
itself. Reads stream entries and checkpoints in ``seq`` order for ``verify_chain`` and the
evidence modules. The SQL is the store's (``store.audit_rows``); this module decides what an
event becomes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from cryptography import x509

from edoc_axis.audit.chain import (
    OUTGOING_KINDS,
    AuditEntry,
    Kind,
    format_time,
    genesis_hash,
    next_entry,
)
from edoc_axis.audit.checkpoint import Checkpoint, CheckpointPolicy, seal
from edoc_axis.config.settings import Settings
from edoc_axis.store import Store
from edoc_axis.store.audit_rows import ArchiveRecord
from edoc_axis.store.reads import Reads
from edoc_axis.store.records import Event
from edoc_axis.store.transaction import Transaction
from edoc_axis.trust.certificate import PrivateKey, fingerprint

Sealer = Callable[[AuditEntry], tuple[Checkpoint, AuditEntry]]
"""Sign ``head`` now: ``seal(head, key, cert, organ_id, genesis=...)`` with the node's key."""

# Node event kind -> audit kind. A duplicate delivery is recorded as ``received`` with
# ``duplicate`` in its detail (the stored bytes are the original's).
EVENT_KINDS: dict[str, str] = {
    "submitted": Kind.SUBMITTED, "published": Kind.PUBLISHED,
    "publish_failed": Kind.PUBLISH_FAILED, "received": Kind.RECEIVED,
    "duplicate_received": Kind.RECEIVED, "status_sent": Kind.STATUS_SENT,
    "status_received": Kind.STATUS_RECEIVED, "rejected": Kind.REJECTED,
    "dead_lettered": Kind.DEAD_LETTERED, "replayed": Kind.REPLAYED,
    # Chunked transfers (node.chunk_receive): a refused chunk and an abandoned partial transfer
    # are refusals of what a counterpart sent (detail = error code).
    "chunk_refused": Kind.REJECTED, "transfer_abandoned": Kind.REJECTED,
}


class SigningIdentity(Protocol):
    """The agency's signing key and certificate (with its intermediates), as the node loads
    them: what sealing checkpoints and evidence bundles need."""

    @property
    def key(self) -> PrivateKey: ...

    @property
    def cert(self) -> x509.Certificate: ...

    @property
    def chain(self) -> tuple[x509.Certificate, ...]: ...


def key_sealer(key: PrivateKey, cert: x509.Certificate, organ_id: str) -> Sealer:
    """A ``Sealer`` signing with the agency key and certificate (the log gets only this)."""
    genesis = genesis_hash(organ_id)

    def sign_head(head: AuditEntry) -> tuple[Checkpoint, AuditEntry]:
        return seal(head, key, cert, organ_id, genesis=genesis)

    return sign_head


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(row[0], row[1], row[2], row[3], row[4], bytes(row[5]), bytes(row[6]))


def _entry_row(e: AuditEntry) -> tuple[object, ...]:
    """An entry's values in the store's column order (``ENTRY_FIELDS``)."""
    return (e.seq, e.at, e.kind, e.package_id, e.document_id, e.counterpart, e.content_sha256,
            e.signer, e.detail, e.prev_hash, e.entry_hash)


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
        self.genesis = genesis_hash(organ_id)
        self.policy = policy or CheckpointPolicy()
        self.sealer = sealer
        self.own_fingerprint = own_fingerprint
        self._written = False  # this object appended entries not yet sealed

    @classmethod
    def of_settings(
        cls, settings: Settings, store: Store, identity: SigningIdentity | None = None
    ) -> AuditLog:
        """The chain of ``store`` with the settings' checkpoint policy; sealed with
        ``identity`` (and recording its fingerprint as the signer of what it sends) if given."""
        policy = CheckpointPolicy(settings.audit.every_entries, settings.audit.every_seconds)
        if identity is None:
            return cls(store, settings.organ_id, policy=policy)
        return cls(store, settings.organ_id, policy=policy,
                   sealer=key_sealer(identity.key, identity.cert, settings.organ_id),
                   own_fingerprint=fingerprint(identity.cert))

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
            stored = txn.package_digest(event.package_id)
            if stored is not None:
                document_id = document_id or stored[0]
                content = content or stored[1]
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
        entry = next_entry(head, kind=kind, genesis=self.genesis, **fields)
        txn.audit_rows.add_entry(_entry_row(entry))
        self._written = True
        if self.sealer is not None and self.policy.due(self.last_checkpoint(txn), entry):
            self._seal(txn, entry)
        return entry

    def _seal(self, txn: Transaction, head: AuditEntry) -> Checkpoint:
        if self.sealer is None:
            raise ValueError("this audit log has no sealer (the node's key)")
        checkpoint, entry = self.sealer(head)
        txn.audit_rows.add_checkpoint((
            checkpoint.seq, checkpoint.head_hash, checkpoint.at, checkpoint.organ_id,
            checkpoint.algorithm, checkpoint.signature, checkpoint.cert_der,
        ))
        txn.audit_rows.add_entry(_entry_row(entry))
        self._written = False
        return checkpoint

    def seal_now(self) -> Checkpoint | None:
        """Force a checkpoint of the current head (None when the head is already sealed)."""
        with self.store.transaction() as txn:
            head = self.head(txn)
            if head is None or head.kind == Kind.CHECKPOINT:
                return None
            return self._seal(txn, head)

    def seal_if_due(self, now: dt.datetime | None = None) -> Checkpoint | None:
        """Seal the head when the policy is due at ``now`` without a new entry (a running
        node's timer); None when there is no key, nothing unsealed, or it is not due yet. Only
        reads unless there is something to seal."""
        if self.sealer is None:
            return None
        moment = now or dt.datetime.now(dt.UTC)
        if not self.policy.due(self.last_checkpoint(), self.head(), now=moment):
            return None
        with self.store.transaction() as txn:
            head = self.head(txn)
            if head is None or not self.policy.due(self.last_checkpoint(txn), head, now=moment):
                return None
            return self._seal(txn, head)

    def seal_written(self) -> Checkpoint | None:
        """Seal the head if this object appended entries that are still unsealed (``send``
        or ``dlq replay`` while the node is stopped); None otherwise, or without a key."""
        if self.sealer is None or not self._written:
            return None
        checkpoint = self.seal_now()
        self._written = False
        return checkpoint

    def record(self, event: Event) -> None:
        """Record an event that has no other store write (e.g. a dead letter replayed)."""
        with self.store.transaction() as txn:
            self.on_event(txn, event)

    # --- reading -----------------------------------------------------------------------------

    def head(self, txn: Reads | None = None) -> AuditEntry | None:
        """The newest entry (live log), or None."""
        row = (txn or self.store).audit_rows.head()
        return AuditEntry.from_row(row) if row else None

    def last_checkpoint(self, txn: Reads | None = None) -> Checkpoint | None:
        """The newest checkpoint, or None."""
        row = (txn or self.store).audit_rows.last_checkpoint()
        return _checkpoint(row) if row else None

    def entries(self, first: int | None = None, last: int | None = None) -> Iterator[AuditEntry]:
        """Live entries with ``first <= seq <= last``, ascending, streamed."""
        for row in self.store.audit_rows.entries(first, last):
            yield AuditEntry(*row)

    def entries_between(self, since: str, until: str) -> Iterator[AuditEntry]:
        """Live entries with ``since <= at < until`` (audit time strings), ascending."""
        for row in self.store.audit_rows.entries_between(since, until):
            yield AuditEntry(*row)

    def count_between(self, since: str, until: str) -> int:
        """How many live entries ``entries_between`` yields."""
        return self.store.audit_rows.count_between(since, until)

    def span(self) -> tuple[int, int] | None:
        """(first, last) seq of the live log, or None when empty."""
        return self.store.audit_rows.span()

    def document_entries(self, document_id: str) -> list[AuditEntry]:
        """Every live entry about one DocumentId, ascending."""
        return [AuditEntry(*r) for r in self.store.audit_rows.document_entries(document_id)]

    def checkpoints(
        self, first: int | None = None, last: int | None = None
    ) -> Iterator[Checkpoint]:
        """Checkpoints with ``first <= seq <= last``, ascending, streamed."""
        for row in self.store.audit_rows.checkpoints(first, last):
            yield _checkpoint(row)

    def checkpoint_seqs(self) -> list[int]:
        """Every stored checkpoint's seq, ascending."""
        return self.store.audit_rows.checkpoint_seqs()

    def archives(self) -> list[ArchiveRecord]:
        """Archive files recorded so far, oldest first."""
        return self.store.audit_rows.archives()

    def start_point(self, first: int | None = None) -> tuple[int, str]:
        """(start seq, prev hash) to verify the live log from (entry ``first``, by default the
        first live one): after the last archive, or from the genesis."""
        if first is not None and first > 1:
            prev_hash = self.store.audit_rows.entry_hash(first - 1)
            if prev_hash is not None:
                return first, prev_hash
        archives = self.archives()
        if archives:
            return archives[-1].last_seq + 1, archives[-1].head_hash
        return 1, self.genesis

    def signed_bytes(self, sha256: str) -> bytes | None:
        """The stored signed package (or refused message) whose bytes hash to ``sha256``."""
        for body in self.store.signed_bodies(sha256):
            if hashlib.sha256(body).hexdigest() == sha256:
                return body
        return None

    def move_to_archive(self, record: ArchiveRecord) -> AuditEntry:
        """Drop entries and checkpoints up to ``record.last_seq`` (already written to the file)
        and chain an ``archived`` entry naming the file's SHA-256, in one transaction."""
        with self.store.transaction() as txn:
            txn.audit_rows.archive(record)
            return self.append(
                txn, Kind.ARCHIVED, content_sha256=record.sha256,
                detail=json.dumps({"first_seq": record.first_seq, "last_seq": record.last_seq,
                                   "file": record.path.rsplit("/", 1)[-1]}, sort_keys=True),
            )

    def archive_end(self, before: dt.datetime) -> int | None:
        """The newest checkpointed seq whose entry is older than ``before`` (an archive may end
        there), or None."""
        return self.store.audit_rows.archive_end(format_time(before))
