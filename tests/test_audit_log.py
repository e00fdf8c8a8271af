"""The audit log on a store, without a broker: each event chained inside its own transaction,
sealed by the policy, read back in order, archived; the store's rows match the entry fields."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from edoc_axis.audit.chain import ENTRY_FIELDS, Kind
from edoc_axis.audit.checkpoint import CheckpointPolicy, trusted_fingerprints
from edoc_axis.audit.log import AuditLog, key_sealer
from edoc_axis.audit.verification import verify_chain
from edoc_axis.store import Store
from edoc_axis.store.audit_rows import ENTRY_COLUMNS, ArchiveRecord
from edoc_axis.store.records import Event, NewPackage
from edoc_axis.trust.certificate import fingerprint

G22, H41 = "000.00.00.G22", "000.00.00.H41"


@pytest.fixture
def store(tmp_path: Path) -> Any:
    """A fresh store file."""
    s = Store(tmp_path / "node.sqlite3")
    yield s
    s.close()


def sealed_log(store: Store, pki: Any, every: int = 3) -> AuditLog:
    """G22's audit log on ``store``, sealed every ``every`` entries, hooked to the store."""
    g22 = pki.agencies[G22]
    return AuditLog(store, G22, policy=CheckpointPolicy(every, 3600),
                    sealer=key_sealer(g22.key, g22.cert, G22),
                    own_fingerprint=fingerprint(g22.cert)).attach()


def test_store_rows_are_in_entry_field_order() -> None:
    """The store's audit_entry columns are the entry's fields, in order (rows map one to one)."""
    assert tuple(c.strip() for c in ENTRY_COLUMNS.split(",")) == ENTRY_FIELDS


def test_events_chain_in_their_transaction_and_roll_back_with_it(store: Store) -> None:
    """An event's entry commits with the transaction that emits it and vanishes with its
    rollback; the entries left form an intact chain."""
    log = AuditLog(store, G22).attach()
    with store.transaction() as txn:
        txn.emit(Event("submitted", "p1", "doc-1", None, "aa" * 32))
        txn.emit(Event("published", "p1", "doc-1", H41))
    with pytest.raises(RuntimeError), store.transaction() as txn:
        txn.emit(Event("received", "p2", "doc-2", H41, "bb" * 32))
        raise RuntimeError("the batch failed")
    entries = list(log.entries())
    assert [(e.seq, e.kind) for e in entries] == [(1, "submitted"), (2, "published")]
    head = log.head()
    assert head is not None and head.entry_hash == entries[-1].entry_hash
    report = verify_chain(entries, start_prev_hash=log.genesis, trust=trusted_fingerprints([], G22))
    assert report.ok and report.unsealed == 2


def test_event_without_a_hash_takes_it_from_the_stored_package(store: Store) -> None:
    """An event naming a stored package without its DocumentId or hash gets both from the
    store; a duplicate delivery keeps its own hash in the detail, not as the content."""
    log = AuditLog(store, G22).attach()
    body = b"<edXMLEnvelope>stored</edXMLEnvelope>"
    digest = hashlib.sha256(body).hexdigest()
    with store.transaction() as txn:
        txn.add_package(NewPackage(
            package_id="p1", direction="out", kind="edoc", sender=G22, recipients=(H41,),
            document_id="doc-1", body=body, sha256=digest, dedupe_digest=digest,
            message_id="p1"))
        txn.emit(Event("published", "p1", None, H41))
        txn.emit(Event("duplicate_received", "p1", "doc-1", H41, "cc" * 32))
    published, duplicate = log.entries()
    assert (published.document_id, published.content_sha256) == ("doc-1", digest)
    assert duplicate.kind == Kind.RECEIVED and duplicate.content_sha256 is None
    assert json.loads(duplicate.detail or "{}") == {"duplicate": True, "sha256": "cc" * 32}
    assert log.signed_bytes(digest) == body and log.signed_bytes("dd" * 32) is None


def test_policy_seals_in_the_same_transaction_and_archive_moves_rows(
    store: Store, pki: Any, tmp_path: Path
) -> None:
    """Checkpoints are appended (and chained) as the policy falls due; archiving drops the rows
    up to a checkpoint and chains an ``archived`` entry, and verification restarts after it."""
    log = sealed_log(store, pki)
    for i in range(7):
        with store.transaction() as txn:
            txn.emit(Event("status_received", f"p{i}", f"doc-{i}", H41, f"{i:064x}",
                           {"code": "01"}))
    seqs = log.checkpoint_seqs()
    assert seqs and all(e.kind == Kind.CHECKPOINT for e in log.entries() if e.seq - 1 in seqs)
    own = trusted_fingerprints([fingerprint(pki.agencies[G22].cert)], G22)
    report = verify_chain(log.entries(), start_prev_hash=log.genesis, trust=own,
                          checkpoints=log.checkpoints(), policy=log.policy)
    assert report.ok and report.checkpoints == len(seqs)
    end = seqs[1]
    head = next(log.entries(end, end))
    record = ArchiveRecord(1, end, head.entry_hash, "ee" * 32, str(tmp_path / "a.zip"))
    archived = log.move_to_archive(record)
    assert archived.kind == Kind.ARCHIVED and log.archives() == [record]
    span = log.span()
    assert span is not None and span[0] == end + 1
    assert log.start_point() == (end + 1, head.entry_hash)
    assert [c.seq for c in log.checkpoints()] == [s for s in log.checkpoint_seqs() if s > end]
