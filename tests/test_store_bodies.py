"""Large package bodies as content-addressed files beside the store: written before the commit,
read back whole or streamed, shared when identical, orphans swept."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from test_store import _pkg

from edoc_axis.errors import StoreBusy
from edoc_axis.store import Store

THRESHOLD = 64 * 1024


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A fresh store whose bodies of 64 KiB or more are files."""
    s = Store(tmp_path / "node.sqlite3", body_file_bytes=THRESHOLD)
    yield s  # type: ignore[misc]
    s.close()


def _files(store: Store) -> list[Path]:
    return sorted(p for p in store.bodies.root.rglob("*") if p.is_file())


def test_large_body_is_a_file_small_body_a_blob(store: Store) -> None:
    """A body at the threshold lives in bodies/ab/<sha256> (its blob empty), a smaller one stays
    a blob; body() returns both whole and open_body() streams both."""
    big = os.urandom(THRESHOLD)
    small = b"<edXMLEnvelope/>"
    with store.transaction() as txn:
        txn.add_package(_pkg("p-big", body=big, document_id="d1"))
        txn.add_package(_pkg("p-small", body=small, document_id="d2"))
    digest = hashlib.sha256(big).hexdigest()
    assert _files(store) == [store.bodies.root / digest[:2] / digest]
    assert store.conn.execute(
        "SELECT length(body), file FROM package_bodies ORDER BY package").fetchall() == [
        (0, digest), (len(small), None)]
    assert store.body("p-big") == big and store.body("p-small") == small
    for package_id, data in (("p-big", big), ("p-small", small)):
        with store.open_body(package_id) as stream:
            assert stream.read() == data
    with store.open_body("p-big") as stream:
        assert getattr(stream, "name", "") == str(_files(store)[0])  # the file, not a copy


def test_reads_through_outbox_digest_lookup_and_read_only(store: Store, tmp_path: Path) -> None:
    """The relay's outbox, the audit's lookup by SHA-256 and a read-only store all read a
    file-backed body as its bytes."""
    big = os.urandom(THRESHOLD + 1)
    with store.transaction() as txn:
        row = txn.add_package(_pkg("p1", body=big))
        assert row is not None
        txn.add_outbox(row, "000.00.00.H01")
    [item] = store.pending_outbox(10)
    assert item.body == big
    assert list(store.signed_bodies(hashlib.sha256(big).hexdigest())) == [big]
    reader = Store(tmp_path / "node.sqlite3", read_only=True)
    try:
        assert reader.body("p1") == big
    finally:
        reader.close()


def test_identical_bodies_share_one_file(store: Store) -> None:
    """Two packages with the same bytes reference one file."""
    big = os.urandom(THRESHOLD * 2)
    with store.transaction() as txn:
        txn.add_package(_pkg("a", body=big, document_id="d1"))
    with store.transaction() as txn:
        txn.add_package(_pkg("b", body=big, document_id="d2", direction="in"))
    assert len(_files(store)) == 1
    assert store.body("a") == store.body("b") == big


def test_a_rolled_back_transaction_leaves_a_harmless_orphan_that_sweep_removes(
    store: Store,
) -> None:
    """A crash between the file and the commit (here: a rollback) leaves an orphan file no row
    names; the sweep removes it and stale temporary files, and keeps every referenced body."""
    kept, lost = os.urandom(THRESHOLD), os.urandom(THRESHOLD)
    with store.transaction() as txn:
        txn.add_package(_pkg("kept", body=kept, document_id="d1"))
    with pytest.raises(RuntimeError), store.transaction() as txn:
        txn.add_package(_pkg("lost", body=lost, document_id="d2"))
        raise RuntimeError("crash before commit")
    stale_tmp = store.bodies.root / "tmp" / "deadbeef.partial"
    stale_tmp.write_bytes(b"half a body")
    assert len(_files(store)) == 3
    assert store.sweep_body_files() == []  # everything is younger than the grace period
    removed = store.sweep_body_files(older_than=0)
    lost_digest = hashlib.sha256(lost).hexdigest()
    assert sorted(removed) == sorted([stale_tmp, store.bodies.path_of(lost_digest)])
    assert store.body("kept") == kept
    assert [p.name for p in _files(store)] == [hashlib.sha256(kept).hexdigest()]


def test_a_missing_body_file_is_a_clear_error(store: Store) -> None:
    """A body file removed behind the store's back is STORE_BODY_MISSING, not a crash."""
    with store.transaction() as txn:
        txn.add_package(_pkg("p", body=os.urandom(THRESHOLD)))
    shutil.rmtree(store.bodies.root)
    with pytest.raises(StoreBusy) as err:
        store.body("p")
    assert err.value.code == "STORE_BODY_MISSING"
