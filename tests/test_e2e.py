"""End to end: nodes as separate `edoc-axis run` processes on the real broker.

After each scenario every document is in every intended inbox exactly once and the sender holds
a receipt (status 01) from every recipient.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from conftest import Axis
from test_node import G22, H41, H42, make_document, publish_raw, wait_for

from edoc_axis.config.load import load_settings
from edoc_axis.node.node import Node
from edoc_axis.store import Store
from edoc_axis.trust.signature import sign

pytestmark = pytest.mark.broker

EDOC_AXIS = [sys.executable, "-m", "edoc_axis"]


class NodeProcess:
    """One `edoc-axis run` process with its config and log file."""

    def __init__(self, axis: Axis, organ_id: str) -> None:
        self.organ_id = organ_id
        self.config = axis.config(organ_id)
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
def spawn(axis: Axis) -> Iterator[Callable[[str], NodeProcess]]:
    """Start `edoc-axis run` processes; every one still running is terminated afterwards."""
    made: list[NodeProcess] = []

    def start(organ_id: str) -> NodeProcess:
        node = NodeProcess(axis, organ_id).start()
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

