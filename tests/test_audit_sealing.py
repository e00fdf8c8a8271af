"""Sealing a running node's chain without a broker: the timer seals an idle head within the
interval in its own thread and never writes a checkpoint for nothing, a stop seals the rest, a
failed tick is retried, and a process seals only what it wrote."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edoc_axis.audit.chain import Kind
from edoc_axis.audit.checkpoint import CheckpointPolicy, trusted_fingerprints
from edoc_axis.audit.log import AuditLog, key_sealer
from edoc_axis.audit.sealing import SealTimer, seal_before_exit
from edoc_axis.audit.verification import verify_chain
from edoc_axis.errors import StoreBusy
from edoc_axis.store import Store
from edoc_axis.trust.certificate import fingerprint

G22 = "000.00.00.G22"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh store file."""
    s = Store(tmp_path / "node.sqlite3")
    yield s
    s.close()


def signed_log(store: Store, pki: Any, every_seconds: float) -> AuditLog:
    """G22's audit log on ``store`` with the agency key and a time-based policy."""
    g22 = pki.agencies[G22]
    return AuditLog(store, G22, policy=CheckpointPolicy(1000, every_seconds),
                    sealer=key_sealer(g22.key, g22.cert, G22))


def publish(log: AuditLog, n: int = 1) -> None:
    """Append ``n`` entries in one transaction, as an event of the node would."""
    with log.store.transaction() as txn:
        for i in range(n):
            log.append(txn, Kind.PUBLISHED, package_id=f"p{i}", counterpart="000.00.00.H41")


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def head_kind(log: AuditLog) -> str | None:
    """The kind of the newest entry."""
    head = log.head()
    return head.kind if head else None


def test_idle_head_is_sealed_by_the_timer_within_the_interval(store: Store, pki: Any) -> None:
    """Entries written and then left alone are sealed by the timer's own thread within the
    interval plus one timer period; the chain verifies with nothing unsealed."""
    log = signed_log(store, pki, every_seconds=1)
    publish(log)  # the first entry is sealed at once (no checkpoint yet)
    publish(log, 2)
    assert head_kind(log) == Kind.PUBLISHED
    written = time.monotonic()
    timer = SealTimer(log).start()
    try:
        wait_until(lambda: head_kind(log) == Kind.CHECKPOINT, 10, "the timer's checkpoint")
        assert time.monotonic() - written < log.policy.overdue_seconds
    finally:
        timer.stop()
    report = verify_chain(log.entries(), start_prev_hash=log.genesis, checkpoints=log.checkpoints(),
                          trust=trusted_fingerprints([fingerprint(pki.agencies[G22].cert)], G22),
                          policy=log.policy)
    assert report.ok and report.unsealed == 0, report.problems


def test_timer_seals_only_an_unsealed_head_once_due(store: Store, pki: Any) -> None:
    """``seal_if_due`` writes nothing when the head is sealed, nor before the interval has
    passed; after it, one checkpoint."""
    log = signed_log(store, pki, every_seconds=300)
    assert log.seal_if_due() is None  # empty log
    publish(log)
    assert head_kind(log) == Kind.CHECKPOINT
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert log.seal_if_due(later) is None  # nothing unsealed: no checkpoint for nothing
    publish(log)
    assert log.seal_if_due() is None  # unsealed, but the interval has not passed
    checkpoint = log.seal_if_due(later)
    assert checkpoint is not None and head_kind(log) == Kind.CHECKPOINT
    assert log.seal_if_due(later) is None
    assert len(log.checkpoint_seqs()) == 2


def test_stop_seals_what_the_timer_left(store: Store, pki: Any) -> None:
    """A long interval leaves the tail to the stop, which seals it (a clean stop)."""
    log = signed_log(store, pki, every_seconds=300)
    timer = SealTimer(log).start()
    publish(log)
    publish(log, 3)
    assert head_kind(log) == Kind.PUBLISHED
    checkpoint = timer.stop()
    assert checkpoint is not None and head_kind(log) == Kind.CHECKPOINT
    assert checkpoint.seq == 5  # the first entry, its checkpoint entry, then three


def test_a_failed_tick_is_logged_and_retried(store: Store, pki: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A store busy at one tick does not end the timer: the next tick seals."""
    log = signed_log(store, pki, every_seconds=0.2)
    publish(log)
    publish(log)
    real = log.seal_if_due
    failures = threading.Event()

    def busy_once(now: dt.datetime | None = None) -> Any:
        if not failures.is_set():
            failures.set()
            raise StoreBusy("the store is busy", code="STORE_BUSY")
        return real(now)

    monkeypatch.setattr(log, "seal_if_due", busy_once)
    timer = SealTimer(log).start()
    try:
        wait_until(lambda: head_kind(log) == Kind.CHECKPOINT, 10, "a seal after the failure")
    finally:
        timer.stop()
    assert failures.is_set()


def test_a_process_seals_only_what_it_wrote(store: Store, pki: Any) -> None:
    """``seal_before_exit(only_written=True)``: a writer seals its own entries; a process that
    only read leaves the store untouched."""
    writer = signed_log(store, pki, every_seconds=300)
    publish(writer)
    publish(writer)
    reader = signed_log(store, pki, every_seconds=300)
    assert seal_before_exit(reader, only_written=True) is None
    assert head_kind(reader) == Kind.PUBLISHED
    assert seal_before_exit(writer, only_written=True) is not None
    assert head_kind(writer) == Kind.CHECKPOINT
    assert seal_before_exit(writer, only_written=True) is None
