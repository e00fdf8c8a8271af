"""End to end: nodes as separate `edoc-axis run` processes on the real broker.

After each scenario every document is in every intended inbox exactly once and the sender holds
a receipt (status 01) from every recipient.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Axis
from test_auditor import rewrite, rows
from test_node import G22, H41, H42, make_document, publish_raw, wait_for

from edoc_axis.audit.chain import AuditEntry, genesis_hash, next_entry, parse_time
from edoc_axis.audit.checkpoint import CheckpointPolicy
from edoc_axis.cli import main as cli_main
from edoc_axis.config.load import load_settings
from edoc_axis.config.render import write_config
from edoc_axis.config.settings import AuditSettings
from edoc_axis.errors import EXIT_INVALID
from edoc_axis.node.node import Node
from edoc_axis.store import Store
from edoc_axis.store.audit_rows import ENTRY_COLUMNS
from edoc_axis.trust.signature import sign

pytestmark = pytest.mark.broker

EDOC_AXIS = [sys.executable, "-m", "edoc_axis"]


class NodeProcess:
    """One `edoc-axis run` process with its config and log file."""

    def __init__(self, axis: Axis, organ_id: str, audit: AuditSettings | None = None) -> None:
        self.organ_id = organ_id
        self.config = axis.config(organ_id)
        if audit is not None:
            write_config(self.config, replace(load_settings(self.config, env={}), audit=audit),
                         force=True)
        self.settings = load_settings(self.config, env={})
        self.log = self.config.parent / "node.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NodeProcess:
        """Start (or restart) the process."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDOC_AXIS_")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*EDOC_AXIS, "--log-level", "info", "run", "-c",
                                          str(self.config)], stdout=log, stderr=log, env=env)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal the process and wait for it to exit; returns its exit code."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def store(self) -> Store:
        """The node's store, opened from the test process (another connection on the file)."""
        return Store(self.settings.store_path)


@pytest.fixture
def spawn(axis: Axis) -> Iterator[Callable[..., NodeProcess]]:
    """Start `edoc-axis run` processes (``audit=`` another checkpoint policy); every one still
    running is terminated afterwards."""
    made: list[NodeProcess] = []

    def start(organ_id: str, audit: AuditSettings | None = None) -> NodeProcess:
        node = NodeProcess(axis, organ_id, audit).start()
        made.append(node)
        return node

    yield start
    for node in made:
        if node.proc is not None:
            node.proc.kill()
            node.proc.wait(10)


def submit_many(node: NodeProcess, recipients: tuple[str, ...], numbers: range) -> list[str]:
    """Submit documents into a node's store from this process (like `edoc-axis send`)."""
    submitter = Node.from_settings(node.settings)
    try:
        return [submitter.submit(make_document(node.organ_id, recipients, n)).document_id
                for n in numbers]
    finally:
        submitter.close()


def assert_complete(sender: NodeProcess, recipients: dict[str, NodeProcess],
                    documents: list[str], timeout: float = 40) -> None:
    """Wait until every recipient has every document once and the sender every receipt."""
    sent = sender.store()

    def receipts_done() -> bool:
        deliveries = sent.deliveries(limit=100_000)
        arrived = {(d.document_id, d.recipient) for d in deliveries
                   if d.state in {"arrived", "accepted", "processing"}}
        return all((doc, r) in arrived for doc in documents for r in recipients)

    wait_for(receipts_done, timeout, "every receipt at the sender")
    for organ_id, node in recipients.items():
        store = node.store()
        counts = Counter(e.document_id for e in store.inbox(kind="edoc", limit=100_000))
        store.close()
        assert set(counts) == set(documents), f"{organ_id} inbox differs"
        assert max(counts.values()) == 1, f"{organ_id} holds a document twice"
    sent.close()


def test_multi_recipient_delivery_with_receipts_and_clean_shutdown(
    spawn: Callable[[str], NodeProcess],
) -> None:
    """`send` queues while the node runs; both recipients get every document; SIGTERM exits 0."""
    g22, h41, h42 = spawn(G22), spawn(H41), spawn(H42)
    files = []
    for n in range(3):
        path = g22.config.parent / f"doc{n}.xml"
        path.write_bytes(make_document(G22, (H41, H42), 100 + n))
        files.append(str(path))
    out = subprocess.run([*EDOC_AXIS, "send", "-c", str(g22.config), *files],
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.count(f"-> {H41}, {H42}") == 3
    documents = submit_many(g22, (H41, H42), range(200, 230))
    documents += [line.split()[1] for line in out.stdout.splitlines()]
    assert_complete(g22, {H41: h41, H42: h42}, documents)
    track = subprocess.run([*EDOC_AXIS, "track", "-c", str(g22.config), documents[0], "--json"],
                           capture_output=True, text=True, timeout=60, check=True)
    assert '"arrived"' in track.stdout
    for node in (g22, h41, h42):
        assert node.stop() == 0


def test_unknown_recipient_fails_clearly(spawn: Callable[[str], NodeProcess],
                                         axis: Axis) -> None:
    """`send` to an agency missing from the directory exits 65 naming it; nothing is queued."""
    path = axis.dir / "unknown.xml"
    path.write_bytes(make_document(G22, (H41, "000.00.00.X99"), 300))
    config = axis.config(G22)
    out = subprocess.run([*EDOC_AXIS, "send", "-c", str(config), str(path)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 65
    assert "AGENCY_UNKNOWN" in out.stderr
    assert "000.00.00.X99" in out.stderr


def test_recipient_offline_then_back(spawn: Callable[[str], NodeProcess], axis: Axis) -> None:
    """Documents sent while the recipient is down arrive, with receipts, once it starts."""
    g22 = spawn(G22)
    h41 = NodeProcess(axis, H41)
    documents = submit_many(g22, (H41,), range(400, 420))
    store = g22.store()
    wait_for(lambda: all(d.state == "sent" for d in store.deliveries(limit=1000))
             and len(store.deliveries(limit=1000)) == 20, 30, "broker confirms")
    store.close()
    h41.start()
    try:
        assert_complete(g22, {H41: h41}, documents)
    finally:
        h41.stop()


def test_receiver_killed_mid_stream_loses_nothing(spawn: Callable[[str], NodeProcess]) -> None:
    """SIGKILL of the receiving node mid-stream, then restart: nothing lost, nothing twice."""
    g22, h41 = spawn(G22), spawn(H41)
    documents = submit_many(g22, (H41,), range(500, 620))
    store = h41.store()
    wait_for(lambda: store.count("inbox") >= 10, 30, "some documents stored")
    store.close()
    assert h41.stop(signal.SIGKILL) == -signal.SIGKILL
    h41.start()
    assert_complete(g22, {H41: h41}, documents, timeout=60)


def test_duplicated_messages_are_stored_once(spawn: Callable[[str], NodeProcess],
                                             axis: Axis) -> None:
    """Messages published again (same id, or the same package under a new id) are stored once."""
    g22, h41 = spawn(G22), spawn(H41)
    documents = submit_many(g22, (H41,), range(700, 710))
    assert_complete(g22, {H41: h41}, documents)
    sent = g22.store()
    for record in sent.packages(direction="out", kind="edoc"):
        body = sent.body(record.package_id)
        publish_raw(axis, G22, H41, body, record.package_id)
        publish_raw(axis, G22, H41, body, f"again-{record.package_id}")
    sent.close()
    received = h41.store()
    wait_for(lambda: received.outbox_counts()["confirmed"] >= 30, 30, "receipts re-sent")
    received.close()
    assert_complete(g22, {H41: h41}, documents)


def test_spoofed_sender_is_dead_lettered(spawn: Callable[[str], NodeProcess],
                                         axis: Axis) -> None:
    """Wrong user_id, or a signature by another agency: rejected, dead-lettered, 02 to the
    identified publisher; the genuine traffic still completes."""
    g22, h41, h42 = spawn(G22), spawn(H41), spawn(H42)
    g22_id, h42_id = axis.pki.agencies[G22], axis.pki.agencies[H42]
    publish_raw(axis, H42, H41, sign(make_document(G22, (H41,), 800), g22_id.key, g22_id.cert),
                "spoof-user")
    publish_raw(axis, G22, H41, sign(make_document(G22, (H41,), 801), h42_id.key, h42_id.cert),
                "spoof-signature")
    documents = submit_many(g22, (H41,), range(802, 805))
    assert_complete(g22, {H41: h41}, documents)
    store = h41.store()
    wait_for(lambda: len(store.rejections()) == 2, 30, "two rejections")
    codes = {r.message_id: r.code for r in store.rejections()}
    store.close()
    assert codes["spoof-user"] == "SENDER_SPOOFED"
    assert codes["spoof-signature"] != "SENDER_SPOOFED"
    for node in (g22, h42):
        notices = node.store()
        wait_for(lambda s=notices: [e for e in s.inbox(kind="status") if e.status_code == "02"],
                 30, f"02 at {node.organ_id}")
        notices.close()
    out = subprocess.run([*EDOC_AXIS, "dlq", "list", "-c", str(h41.config), "--json"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert "spoof-user" in out.stdout
    assert "SENDER_SPOOFED" in out.stdout



# --- the audit chain of processes that stop (issue 11, hole 8) -----------------------------------

SHORT_SEALING = AuditSettings(every_entries=1000, every_seconds=1)


def audit_verify(config: Path) -> tuple[int, dict[str, Any], str]:
    """`edoc-axis audit verify --json` in this process: (exit code, report, stderr)."""
    result = CliRunner().invoke(cli_main, ["audit", "verify", "-c", str(config), "--json"],
                                catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout), result.stderr


def exchange(spawn: Callable[..., NodeProcess], audit: AuditSettings | None = None,
             ) -> dict[str, NodeProcess]:
    """G22 sends two documents to H41 and H42 (one through `edoc-axis send`); every receipt is
    back. The three nodes are left running."""
    g22, h41, h42 = spawn(G22, audit), spawn(H41, audit), spawn(H42, audit)
    path = g22.config.parent / "doc.xml"
    path.write_bytes(make_document(G22, (H41, H42), 900))
    out = subprocess.run([*EDOC_AXIS, "send", "-c", str(g22.config), str(path)],
                         capture_output=True, text=True, timeout=60, check=True)
    documents = [out.stdout.split()[1], *submit_many(g22, (H41, H42), range(901, 902))]
    assert_complete(g22, {H41: h41, H42: h42}, documents)
    return {G22: g22, H41: h41, H42: h42}


def test_clean_stop_seals_every_entry(spawn: Callable[..., NodeProcess]) -> None:
    """With the default policy, SIGTERM and SIGINT stop a node only after sealing: every entry
    of every node is under a checkpoint, and `audit verify` holds."""
    nodes = exchange(spawn)
    for node, sig in zip(nodes.values(), (signal.SIGTERM, signal.SIGINT, signal.SIGTERM),
                         strict=True):
        assert node.stop(sig) == 0
        code, report, err = audit_verify(node.config)
        assert code == 0, (node.organ_id, report, err)
        assert report["entries"] >= 5
        assert report["unsealed"] == 0, (node.organ_id, report)
        store = node.store()
        head = store.audit_rows.head()
        store.close()
        assert head is not None and head[2] == "checkpoint"


def test_idle_running_node_seals_within_the_interval(spawn: Callable[..., NodeProcess]) -> None:
    """A node that goes idle seals its tail on its timer (interval 1 s) while still running."""
    nodes = exchange(spawn, SHORT_SEALING)
    for node in nodes.values():
        wait_for(lambda n=node: audit_verify(n.config)[1]["unsealed"] == 0, 10,
                 f"{node.organ_id} sealed while idle")
        assert node.proc is not None and node.proc.poll() is None


def _copy_store(source: Path, target_config: Path) -> Path:
    """Copy a node's store (SQLite backup) into the data folder of another config."""
    target = load_settings(target_config, env={}).store_path
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return target


def _rehashed(entries: list[AuditEntry]) -> list[AuditEntry]:
    """Entries renumbered from 1 and every hash recomputed (what an attacker without the key
    can do to make the chain self-consistent again)."""
    out: list[AuditEntry] = []
    for n, e in enumerate(entries, start=1):
        draft = replace(e, seq=n, prev_hash=out[-1].entry_hash if out else genesis_hash(G22))
        out.append(replace(draft, entry_hash=draft.computed_hash()))
    return out


def _status(entries: list[AuditEntry]) -> int:
    """The index of the first status_received entry."""
    return next(i for i, e in enumerate(entries) if e.kind == "status_received")


def _edit(e: AuditEntry) -> AuditEntry:
    return replace(e, detail=(e.detail or "").replace('"01"', '"03"'))


def _truncate_with_checkpoints(entries: list[AuditEntry], conn: sqlite3.Connection) -> None:
    end = _status(entries) + 1  # a status entry is the new end: no checkpoint entry after it
    conn.execute("DELETE FROM audit_checkpoint WHERE seq >= ?", (entries[end].seq - 1,))
    rewrite(conn, entries[:end])


def _append_forged(entries: list[AuditEntry], conn: sqlite3.Connection) -> None:
    forged = next_entry(entries[-1], kind="status_received", genesis=genesis_hash(G22),
                        at=entries[_status(entries)].at, document_id="forged", counterpart=H41,
                        detail='{"code":"03"}')
    rewrite(conn, [*entries, forged])


ATTACKS: dict[str, Callable[[list[AuditEntry], sqlite3.Connection], None]] = {
    "edit a status": lambda es, conn: rewrite(
        conn, [_edit(e) if i == _status(es) else e for i, e in enumerate(es)]),
    "edit a status, recompute the tail": lambda es, conn: rewrite(conn, _rehashed(
        [_edit(e) if i == _status(es) else e for i, e in enumerate(es)])),
    "insert an entry, recompute": lambda es, conn: rewrite(conn, _rehashed(
        [*es[:_status(es)], _edit(es[_status(es)]), *es[_status(es):]])),
    "delete an entry, recompute": lambda es, conn: rewrite(
        conn, _rehashed([e for i, e in enumerate(es) if i != _status(es)])),
    "reorder two entries, recompute": lambda es, conn: rewrite(conn, _rehashed(
        [*es[:_status(es) - 1], es[_status(es)], es[_status(es) - 1], *es[_status(es) + 1:]])),
    "truncate the tail": lambda es, conn: rewrite(conn, es[:-3]),
    "truncate the tail and its checkpoints": _truncate_with_checkpoints,
    "append a forged entry": _append_forged,
    "recompute everything without checkpoints": lambda es, conn: (
        conn.execute("DELETE FROM audit_checkpoint"),
        rewrite(conn, _rehashed([e for e in es if e.kind != "checkpoint"]))),
}


def test_tampering_with_a_cleanly_stopped_node_is_caught(
    spawn: Callable[..., NodeProcess], axis: Axis
) -> None:
    """Nine attacks by someone with the store file and no key, on the log of a node stopped
    cleanly (recompute hashes, insert, delete, reorder, truncate, append, drop checkpoints):
    `audit verify` exits 65 on every one, once the tail is older than the interval."""
    g22 = exchange(spawn, SHORT_SEALING)[G22]
    assert g22.stop() == 0
    with closing(sqlite3.connect(g22.settings.store_path)) as conn:
        newest = AuditEntry(*conn.execute(
            f"SELECT {ENTRY_COLUMNS} FROM audit_entry ORDER BY seq DESC LIMIT 1").fetchone())  # noqa: S608
    overdue = CheckpointPolicy(1000, SHORT_SEALING.every_seconds).overdue_seconds
    wait_for(lambda: (dt.datetime.now(dt.UTC) - parse_time(newest.at)).total_seconds()
             > overdue + 0.5, 20, "the exchange older than the sealing interval")
    code, report, _ = audit_verify(g22.config)
    assert code == 0 and report["unsealed"] == 0, report
    for n, (name, attack) in enumerate(ATTACKS.items()):
        config = axis.config(G22, f"attack-{n}")
        write_config(config, replace(load_settings(config, env={}), audit=SHORT_SEALING),
                     force=True)
        with closing(sqlite3.connect(_copy_store(g22.settings.store_path, config),
                                     isolation_level=None)) as conn:
            attack(rows(conn), conn)
        code, report, _ = audit_verify(config)
        assert code == EXIT_INVALID, (name, report)
        assert report["problems"], name


def test_killed_node_leaves_an_unsealed_tail_that_verify_reports_once_old(
    spawn: Callable[..., NodeProcess],
) -> None:
    """SIGKILL leaves the tail unsealed: fresh, `audit verify` only notes it (a running node
    looks the same); older than the interval it is AUDIT_UNSEALED_TAIL, exit 65, naming how many
    entries, since when and `edoc-axis audit seal`; after the seal verify holds again."""
    nodes = exchange(spawn)
    g22 = nodes[G22]
    assert g22.stop(signal.SIGKILL) == -signal.SIGKILL
    code, report, _ = audit_verify(g22.config)
    assert code == 0 and report["unsealed"] >= 2, report
    unsealed = report["unsealed"]
    # age it: the same log judged under a 1 s interval
    write_config(g22.config, replace(g22.settings, audit=SHORT_SEALING), force=True)
    code, report, _ = wait_for(
        lambda: (found := audit_verify(g22.config))[0] == EXIT_INVALID and found, 20,
        "the unsealed tail reported")
    problem = report["problems"][0]
    assert problem["code"] == "AUDIT_UNSEALED_TAIL"
    assert f"{unsealed} entries" in problem["message"]
    assert "edoc-axis audit seal" in problem["message"]
    sealed = subprocess.run([*EDOC_AXIS, "audit", "seal", "-c", str(g22.config)],
                            capture_output=True, text=True, timeout=60, check=True)
    assert "sealed seq" in sealed.stdout
    code, report, _ = audit_verify(g22.config)
    assert code == 0 and report["unsealed"] == 0, report
