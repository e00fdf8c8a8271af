"""Resilience on the real broker: a multi-agency stream survives a RabbitMQ restart and a SIGKILL.

Three nodes run as separate ``edoc-axis run`` processes; documents (each to the two other
agencies) are submitted with ``edoc-axis send`` in a background stream while the RabbitMQ
application is stopped and started once, and then a receiving node is killed with SIGKILL and
restarted. Afterwards every inbox and every receipt log is reconciled with what was sent.

Restarting the broker application affects every vhost on the machine: one restart per run.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AXIS_AGENCIES, Axis
from test_e2e import EDOC_AXIS, NodeProcess
from test_node import G22, H41, H42, make_document, wait_for

from edoc_axis.errors import EdocAxisError
from edoc_axis.transport.provision import check_queues
from edoc_axis.transport.topology import Topology

pytestmark = pytest.mark.broker

DOCUMENTS_PER_SENDER = 50  # 150 documents, 300 deliveries, 300 receipts
CHUNK = 10  # files per `edoc-axis send`


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def restart_broker_app(admin_url: str, timeout: float = 90) -> float:
    """``rabbitmqctl stop_app`` then ``start_app``; wait until the node runs and every axis queue
    answers a passive declare (quorum queues elect a leader after the restart). Returns seconds."""
    started = time.monotonic()
    subprocess.run([_tool("rabbitmqctl"), "-q", "stop_app"], check=True, capture_output=True,
                   timeout=timeout)
    subprocess.run([_tool("rabbitmqctl"), "-q", "start_app"], check=True, capture_output=True,
                   timeout=timeout)
    wait_for(lambda: subprocess.run([_tool("rabbitmq-diagnostics"), "-q", "check_running"],
                                    check=False, capture_output=True,
                                    timeout=30).returncode == 0,
             timeout, "rabbitmq running")

    def queues_up() -> bool:
        try:
            check_queues(admin_url, Topology(), AXIS_AGENCIES)
        except EdocAxisError:
            return False
        return True

    wait_for(queues_up, timeout, "axis queues available after the restart")
    return time.monotonic() - started


class Stream:
    """Submits documents with `edoc-axis send` in a background thread, CHUNK files at a time,
    round-robin over the senders; each document goes to every other agency. Chunks are released
    with :meth:`allow` so the test decides what is submitted before, during and after a fault."""

    def __init__(self, nodes: dict[str, NodeProcess], per_sender: int) -> None:
        self.nodes = nodes
        self.chunks = [(organ_id, range(start, start + CHUNK))
                       for start in range(1000, 1000 + per_sender, CHUNK)
                       for organ_id in nodes]
        self.sent: dict[str, list[str]] = {organ_id: [] for organ_id in nodes}
        self.done_chunks = 0
        self.errors: list[str] = []
        self._allowed = 0
        self._gate = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def start(self) -> Stream:
        """Start submitting."""
        self._thread.start()
        return self

    def allow(self, chunks: int) -> None:
        """Let the stream submit up to ``chunks`` chunks in all."""
        with self._gate:
            self._allowed = min(chunks, len(self.chunks))
            self._gate.notify_all()

    def join(self, timeout: float) -> None:
        """Wait for every chunk to be submitted."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not finish submitting"
        assert not self.errors, self.errors

    def _run(self) -> None:
        for index, (organ_id, numbers) in enumerate(self.chunks):
            with self._gate:
                if not self._gate.wait_for(lambda i=index: i < self._allowed, timeout=120):
                    self.errors.append(f"chunk {index} was never released")
                    return
            node = self.nodes[organ_id]
            recipients = tuple(o for o in self.nodes if o != organ_id)
            folder = node.config.parent / "outgoing"
            folder.mkdir(exist_ok=True)
            files = []
            for n in numbers:
                path = folder / f"doc{n}.xml"
                path.write_bytes(make_document(organ_id, recipients, n))
                files.append(str(path))
            out = subprocess.run([*EDOC_AXIS, "send", "--json", "-c", str(node.config), *files],
                                 capture_output=True, text=True, timeout=60, check=False)
            if out.returncode != 0:
                self.errors.append(f"send at {organ_id} exit {out.returncode}: {out.stderr}")
                return
            results = json.loads(out.stdout)
            if any(r.get("duplicate") or list(r["recipients"]) != list(recipients)
                   for r in results):
                self.errors.append(f"unexpected send results at {organ_id}: {results}")
            self.sent[organ_id].extend(str(r["document_id"]) for r in results)
            self.done_chunks += 1


def stored_documents(nodes: dict[str, NodeProcess]) -> int:
    """Documents stored in all inboxes together."""
    total = 0
    for node in nodes.values():
        store = node.store()
        total += len(store.inbox(kind="edoc", limit=100_000))
        store.close()
    return total


def reconcile(nodes: dict[str, NodeProcess], sent: dict[str, list[str]], admin_url: str,
              timeout: float) -> None:
    """Wait for every receipt, then compare every inbox and receipt log with what was sent."""
    expected = {organ_id: {(doc, sender) for sender, docs in sent.items() if sender != organ_id
                           for doc in docs} for organ_id in nodes}

    def receipts_complete() -> bool:
        for organ_id, node in nodes.items():
            store = node.store()
            arrived = {(d.document_id, d.recipient) for d in store.deliveries(limit=100_000)
                       if d.state == "arrived"}
            store.close()
            if len(arrived) != len(sent[organ_id]) * (len(nodes) - 1):
                return False
        return True

    wait_for(receipts_complete, timeout, "status 01 from every recipient at every sender")
    for organ_id, node in nodes.items():
        store = node.store()
        documents = Counter((e.document_id, e.sender)
                            for e in store.inbox(kind="edoc", limit=100_000))
        receipts = Counter((e.document_id, e.sender) for e in store.inbox(kind="status",
                                                                         limit=100_000))
        deliveries = store.deliveries(limit=100_000)
        histories = {d.id: store.history(d.id) for d in deliveries}
        rejections = store.rejections()
        outbox = store.outbox_counts()
        store.close()
        assert set(documents) == expected[organ_id], f"{organ_id}: inbox differs from sent"
        assert max(documents.values()) == 1, f"{organ_id}: a document stored twice"
        assert {(d.document_id, d.recipient) for d in deliveries} == {
            (doc, r) for doc in sent[organ_id] for r in nodes if r != organ_id}
        assert set(receipts) == {(d.document_id, d.recipient) for d in deliveries}, organ_id
        assert max(receipts.values()) == 1, f"{organ_id}: a receipt recorded twice"
        for delivery in deliveries:
            codes = [h.status_code for h in histories[delivery.id] if h.status_code]
            assert codes == ["01"], f"{organ_id}: {delivery.document_id} history {codes}"
        assert rejections == [], f"{organ_id}: unexplained rejections {rejections}"
        assert outbox["failed"] == 0, f"{organ_id}: failed publications {outbox}"
    dead = {q: n for q, n in check_queues(admin_url, Topology(), AXIS_AGENCIES).items()
            if q.startswith(Topology().dead_prefix) and n}
    assert dead == {}, f"dead letters: {dead}"


def log_events(log: Path, event: str) -> int:
    """How many times a JSON log line with this event was written."""
    return sum(1 for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
               if f'"event": "{event}"' in line or f'"event":"{event}"' in line)


@pytest.fixture
def three_nodes(axis: Axis) -> Iterator[dict[str, NodeProcess]]:
    """`edoc-axis run` for G22, H41 and H42; whatever still runs is killed afterwards."""
    nodes = {organ_id: NodeProcess(axis, organ_id).start() for organ_id in (G22, H41, H42)}
    yield nodes
    for node in nodes.values():
        if node.proc is not None:
            node.proc.kill()
            node.proc.wait(10)


def test_stream_survives_broker_restart_and_receiver_kill(
    three_nodes: dict[str, NodeProcess], axis: Axis,
) -> None:
    """Broker app restarted, then a receiver SIGKILLed mid-stream: every document in every
    intended inbox once, every 01 at every sender once, no dead letters."""
    nodes = three_nodes
    stream = Stream(nodes, DOCUMENTS_PER_SENDER).start()
    total = len(stream.chunks)  # 15 chunks of 10 documents
    stream.allow(4)
    wait_for(lambda: stream.done_chunks >= 4 and stored_documents(nodes) >= 10, 30,
             "the stream under way")
    stream.allow(8)  # submitted while the broker goes down and comes back
    restart_broker_app(axis.admin_url)

    stream.allow(11)
    before_kill = stored_documents(nodes)
    wait_for(lambda: stored_documents(nodes) >= before_kill + 10, 30, "traffic after restart")
    victim = nodes[H42]
    assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
    stream.allow(total)
    wait_for(lambda: stream.done_chunks >= 13, 30, "submissions while the receiver is down")
    victim.start()

    stream.join(60)
    reconcile(nodes, stream.sent, axis.admin_url, timeout=60)
    for organ_id in (G22, H41):  # alive throughout: reconnected after the broker restart
        assert log_events(nodes[organ_id].log, "broker_connection_lost") >= 1, organ_id
        assert log_events(nodes[organ_id].log, "broker_link_ready") >= 2, organ_id
