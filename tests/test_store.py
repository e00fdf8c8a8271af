"""The node's SQLite store: durability settings, migrations, dedupe keys, outbox, history, inbox."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from edoc_axis.errors import ConfigError, NotFound, StoreBusy
from edoc_axis.store import Store
from edoc_axis.store.migrations import MIGRATIONS
from edoc_axis.store.records import Event, NewPackage
from edoc_axis.store.transaction import Transaction


def _pkg(
    package_id: str,
    *,
    direction: str = "out",
    kind: str = "edoc",
    sender: str = "000.00.00.G01",
    recipients: tuple[str, ...] = ("000.00.00.H01", "000.00.00.H02"),
    document_id: str = "000.00.00.G01,2024/01/02,1/QD",
    body: bytes = b"<edXMLEnvelope/>",
    business_op: int = 0,
    message_id: str | None = None,
    status_code: str | None = None,
) -> NewPackage:
    digest = hashlib.sha256(body).hexdigest()
    return NewPackage(
        package_id=package_id,
        direction=direction,  # type: ignore[arg-type]
        kind=kind,  # type: ignore[arg-type]
        sender=sender,
        recipients=recipients,
        document_id=document_id,
        body=body,
        sha256=digest,
        dedupe_digest=digest,
        message_id=message_id or package_id,
        business_op=business_op,
        status_code=status_code,
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A fresh store file."""
    s = Store(tmp_path / "node.sqlite3")
    yield s  # type: ignore[misc]
    s.close()


def test_pragmas_make_commits_durable(store: Store) -> None:
    """The store runs in WAL mode with synchronous=FULL, foreign keys and a busy timeout."""
    conn = store.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_migrations_set_user_version_and_are_idempotent(tmp_path: Path) -> None:
    """Opening a store twice applies migrations once and records their number."""
    path = tmp_path / "n.sqlite3"
    Store(path).close()
    again = Store(path)
    assert again.schema_version == len(MIGRATIONS)
    again.close()


def test_package_bytes_kept_exactly(store: Store) -> None:
    """A stored package comes back byte-for-byte, with its metadata."""
    body = "<edXMLEnvelope>Văn bản</edXMLEnvelope>".encode()
    with store.transaction() as txn:
        txn.add_package(_pkg("p1", body=body))
    assert store.body("p1") == body
    record = store.package("p1")
    assert record.recipients == ("000.00.00.H01", "000.00.00.H02")
    assert record.sha256 == hashlib.sha256(body).hexdigest()
    assert record.size == len(body)
    with pytest.raises(NotFound):
        store.package("nope")


def test_dedupe_indexes_refuse_a_second_copy(store: Store) -> None:
    """The same message id, or the same (sender, DocumentId, op, digest), cannot be stored twice."""
    with store.transaction() as txn:
        txn.add_package(_pkg("p1", direction="in"))
    with store.transaction() as txn:
        assert txn.add_package(_pkg("p2", direction="in", message_id="p1", body=b"<x/>")) is None
        assert txn.add_package(_pkg("p3", direction="in")) is None
        # a revoke (op 1) of the same DocumentId is a different package
        txn.add_package(_pkg("p4", direction="in", business_op=1))
        assert txn.package_by_message("in", "000.00.00.G01", "p1") is not None
        key = hashlib.sha256(b"<edXMLEnvelope/>").hexdigest()
        found = txn.package_by_key("in", "000.00.00.G01", "000.00.00.G01,2024/01/02,1/QD", 0, key)
        assert found is not None
        assert found.package_id == "p1"
    assert store.count("packages") == 2


def test_failed_transaction_rolls_back_everything(store: Store) -> None:
    """Nothing of a transaction that raises is kept."""
    with pytest.raises(RuntimeError), store.transaction() as txn:
        row = txn.add_package(_pkg("p1"))
        assert row is not None
        txn.add_outbox(row, "000.00.00.H01")
        raise RuntimeError("boom")
    assert store.count("packages") == 0
    assert store.pending_outbox(10) == []


def test_savepoint_isolates_one_item_of_a_batch(store: Store) -> None:
    """A failing item inside a batch transaction rolls back alone; the others commit."""
    with store.transaction() as txn:
        txn.add_package(_pkg("p1", direction="in"))
        with pytest.raises(RuntimeError), txn.savepoint():
            txn.add_package(_pkg("p2", direction="in", message_id="m2", body=b"<y/>"))
            raise RuntimeError("bad item")
        txn.add_package(_pkg("p3", direction="in", message_id="m3", body=b"<x/>"))
    assert [p.package_id for p in store.packages()] == ["p1", "p3"]


def test_outbox_pending_until_confirmed(store: Store) -> None:
    """Outbox rows stay pending (skipping in-flight tokens) until a broker outcome is recorded."""
    with store.transaction() as txn:
        row = txn.add_package(_pkg("p1"))
        assert row is not None
        t1 = txn.add_outbox(row, "000.00.00.H01")
        t2 = txn.add_outbox(row, "000.00.00.H02")
    items = store.pending_outbox(10)
    assert [i.token for i in items] == [t1, t2]
    assert items[0].body == b"<edXMLEnvelope/>"
    assert [i.token for i in store.pending_outbox(10, exclude={t1})] == [t2]
    assert [i.token for i in store.pending_outbox(1, exclude={t1})] == [t2]
    with store.transaction() as txn:
        txn.finish_outbox(t1, "confirmed", None)
        txn.finish_outbox(t2, "failed", "NO_ROUTE")
    assert store.pending_outbox(10) == []
    assert store.outbox_counts() == {"pending": 0, "confirmed": 1, "failed": 1}


def test_delivery_history_is_kept(store: Store) -> None:
    """A delivery keeps every step with the status package that caused it."""
    with store.transaction() as txn:
        row = txn.add_package(_pkg("p1"))
        assert row is not None
        d = txn.add_delivery(row, "000.00.00.G01,2024/01/02,1/QD", "000.00.00.H01", "queued")
        status = txn.add_package(
            _pkg("s1", direction="in", kind="status", sender="000.00.00.H01",
                 recipients=("000.00.00.G01",), body=b"<status/>", status_code="01")
        )
        txn.set_delivery_state(d, "arrived", status_code="01", reason=None)
        txn.add_history(d, "arrived", status_code="01", status_package=status)
        assert txn.history_codes(d) == {"01"}
        found = txn.delivery_for("000.00.00.G01,2024/01/02,1/QD", "000.00.00.H01")
        assert found is not None
        assert found.id == d
    (delivery,) = store.deliveries("000.00.00.G01,2024/01/02,1/QD")
    assert delivery.state == "arrived"
    assert delivery.status_code == "01"
    steps = store.history(delivery.id)
    assert [(h.state, h.status_code, h.status_package_id) for h in steps] == [
        ("queued", None, None),
        ("arrived", "01", "s1"),
    ]


def test_inbox_pickup_states(store: Store) -> None:
    """Received packages appear as new and move through processing/done/fail."""
    with store.transaction() as txn:
        row = txn.add_package(_pkg("p1", direction="in"))
        assert row is not None
        txn.add_inbox(row, "edoc", "000.00.00.G01", "000.00.00.G01,2024/01/02,1/QD")
    assert [e.package_id for e in store.inbox(pickup="new")] == ["p1"]
    with store.transaction() as txn:
        assert txn.set_pickup("p1", "done")
        assert not txn.set_pickup("missing", "done")
    assert store.inbox(pickup="new") == []
    assert store.inbox_entry("p1").pickup == "done"
    assert [e.package_id for e in store.received_documents("000.00.00.G01,2024/01/02,1/QD")] == [
        "p1"
    ]
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as txn:
        store.conn.execute("UPDATE inbox SET pickup = 'lost'")  # bypassing set_pickup


def test_event_hook_runs_inside_the_transaction(tmp_path: Path) -> None:
    """The audit hook writes in the same transaction: a rollback removes its writes too."""
    seen: list[str] = []

    def hook(txn: Transaction, event: Event) -> None:
        seen.append(event.kind)
        txn.add_rejection(message_id=None, broker_user=None, claimed_sender=None,
                          identified_sender=None, document_id=None, code=event.kind,
                          reason="hook", sha256="0", body=b"")

    store = Store(tmp_path / "n.sqlite3", on_event=hook)
    with pytest.raises(RuntimeError), store.transaction() as txn:
        txn.emit(Event("submitted", package_id="p1"))
        raise RuntimeError("boom")
    with store.transaction() as txn:
        txn.emit(Event("received", package_id="p2"))
    assert seen == ["submitted", "received"]
    assert [r.code for r in store.rejections()] == ["received"]
    store.close()


def test_connections_are_per_thread_and_another_writer_waits(store: Store, tmp_path: Path) -> None:
    """Each thread has its own connection; a second process-like writer waits, then commits."""
    other = Store(store.path)
    ids: list[int] = []

    def write() -> None:
        ids.append(id(other.conn))
        with other.transaction() as txn:
            txn.add_package(_pkg("from-thread", message_id="m-thread", body=b"<t/>"))

    with store.transaction() as txn:
        txn.add_package(_pkg("p1"))
        worker = threading.Thread(target=write)
        worker.start()
        worker.join(0.3)
        assert worker.is_alive()  # blocked on the write lock, not failed
    worker.join(10)
    assert ids[0] != id(store.conn)
    assert {p.package_id for p in store.packages()} == {"p1", "from-thread"}
    other.close()


def test_lock_held_too_long_is_store_busy(store: Store) -> None:
    """A writer that cannot get the lock within the busy timeout gets StoreBusy, not a crash."""
    store.conn.execute("PRAGMA busy_timeout = 50")
    _assert_busy_while_locked(store)


def _assert_busy_while_locked(store: Store) -> None:
    """While another connection holds the write lock, a transaction raises StoreBusy."""
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreBusy), store.transaction():
            pass
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_waiting_for_the_write_lock_keeps_the_busy_timeout(store: Store) -> None:
    """The write lock is polled with the busy timeout off; afterwards (taken or not) every
    other statement has the connection's busy timeout again."""
    configured = store.conn.execute("PRAGMA busy_timeout").fetchone()[0]
    blocker = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.05, lambda: blocker.execute("ROLLBACK"))
    release.start()
    try:
        with store.transaction() as txn:  # waits the 50 ms out, then writes
            txn.add_package(_pkg("after-wait"))
    finally:
        release.join()
        blocker.close()
    assert store.package("after-wait") is not None
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == configured
    store.conn.execute("PRAGMA busy_timeout = 50")
    _assert_busy_while_locked(store)
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 50


def test_warnings_are_stored_with_the_package(store: Store) -> None:
    """A package's accepted warnings come back as stored; a package without any has none."""
    warning = {"code": "EMPTY_ELEMENT", "severity": "warning", "message": "ResponseFor is empty",
               "element": "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/ResponseFor",
               "value": "", "line": 7}
    with store.transaction() as txn:
        txn.add_package(replace(_pkg("warned", direction="in"), warnings=(warning,)))
        txn.add_package(_pkg("clean", body=b"<other/>"))
    assert store.package("warned").warnings == (warning,)
    assert store.package("clean").warnings == ()
    row = store.conn.execute("SELECT warnings FROM packages WHERE package_id = 'clean'").fetchone()
    assert row[0] is None


def test_migration_3_adds_warnings_to_an_existing_store(tmp_path: Path) -> None:
    """A store at migration 2 gains the warnings column; its packages read back with none."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    for statements in MIGRATIONS[:2]:
        for statement in statements:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO packages (package_id, direction, kind, sender, recipients, document_id,"
        " message_id, sha256, dedupe_digest, size, created_at) VALUES"
        " ('old', 'in', 'edoc', 'S', 'R', 'D', 'm', 'h', 'h', 1, '2026-01-01')")
    conn.commit()
    conn.close()
    store = Store(path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        assert store.package("old").warnings == ()
    finally:
        store.close()


def test_one_read_interface_on_the_store_a_transaction_and_a_snapshot(store: Store) -> None:
    """Every read exists once: a transaction reads its own uncommitted writes with the same
    methods the Store and a snapshot offer, and another thread sees them only after commit."""
    body = b"<edXMLEnvelope>one read interface</edXMLEnvelope>"
    seen_elsewhere: list[bool] = []

    def look_from_another_thread() -> None:
        seen_elsewhere.append(store.package_digest("p1") is not None)

    with store.transaction() as txn:
        txn.add_package(_pkg("p1", body=body))
        assert txn.package("p1").sha256 == hashlib.sha256(body).hexdigest()
        assert list(txn.signed_bodies(hashlib.sha256(body).hexdigest())) == [body]
        other = threading.Thread(target=look_from_another_thread)
        other.start()
        other.join()
    assert seen_elsewhere == [False]
    digest = (_pkg("p1").document_id, hashlib.sha256(body).hexdigest())
    assert store.package_digest("p1") == digest
    assert store.latest_document("out", _pkg("p1").document_id) == store.package("p1")
    with store.snapshot() as view:
        assert view.package_digest("p1") == digest
        assert view.body("p1") == body
        assert view.audit_rows.head() is None


def test_read_only_open_refuses_a_missing_store_and_creates_nothing(tmp_path: Path) -> None:
    """Opening read-only (or without create) where no store is: STORE_NOT_FOUND, no file made."""
    for kwargs in ({"read_only": True}, {"create": False}):
        missing = tmp_path / "absent" / "node.sqlite3"
        with pytest.raises(ConfigError) as caught:
            Store(missing, **kwargs)
        assert caught.value.code == "STORE_NOT_FOUND"
        assert str(missing) in caught.value.message
        assert not missing.parent.exists()
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database " * 100)
    with pytest.raises(ConfigError) as caught:
        Store(junk, read_only=True)
    assert caught.value.code == "STORE_NOT_FOUND"
    assert "not an edoc-axis store" in caught.value.message
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()
    with pytest.raises(ConfigError):
        Store(empty, read_only=True)


def test_read_only_store_reads_and_never_writes(tmp_path: Path) -> None:
    """A read-only store reads what a writer stored and refuses any write."""
    path = tmp_path / "node.sqlite3"
    writer = Store(path)
    with writer.transaction() as txn:
        txn.add_package(_pkg("p1"))
    reader = Store(path, read_only=True)
    try:
        assert reader.package("p1").package_id == "p1"
        assert reader.schema_version == len(MIGRATIONS)
        with pytest.raises(ValueError, match="read-only"), reader.transaction():
            pass
        with pytest.raises(sqlite3.OperationalError):
            reader.conn.execute("DELETE FROM packages")
    finally:
        reader.close()
        writer.close()
