"""The Link on the real RabbitMQ: confirms in a window, returns, consumer batches and outcomes,
dead letters, reconnect without loss, user_id enforcement."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest

from edoc_axis.errors import PackageTooLarge
from edoc_axis.transport.deadletter import dead_letters, replay_dead_letter
from edoc_axis.transport.link import Link
from edoc_axis.transport.message import Confirmation, IncomingMessage, Outcome, OutgoingMessage
from edoc_axis.transport.provision import check_queues, declare_topology
from edoc_axis.transport.topology import Topology

pytestmark = pytest.mark.broker

TOPOLOGY = Topology()


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``condition`` until true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Outbox:
    """A node-like outbox: rows stay pending until confirmed; handed-out rows are not re-fetched."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[int, OutgoingMessage] = {}
        self.handed: set[int] = set()
        self.confirmations: list[Confirmation] = []
        self.max_request = 0
        self.before_fetch: Callable[[], None] = lambda: None

    def add(self, *messages: OutgoingMessage) -> None:
        with self.lock:
            for message in messages:
                self.pending[message.token] = message

    def fetch(self, n: int) -> list[OutgoingMessage]:
        self.before_fetch()
        with self.lock:
            self.max_request = max(self.max_request, n)
            out = [m for t, m in self.pending.items() if t not in self.handed][:n]
            self.handed.update(m.token for m in out)
            return out

    def confirmed(self, confirmations: list[Confirmation]) -> None:
        with self.lock:
            self.confirmations.extend(confirmations)
            for c in confirmations:
                if not c.retryable:
                    self.pending.pop(c.token, None)
                self.handed.discard(c.token)

    def done(self) -> bool:
        with self.lock:
            return not self.pending


class Inbox:
    """A node-like consumer: records batches, answers each message with ``decide(message)``."""

    def __init__(self, decide: Callable[[IncomingMessage], Outcome] = lambda m: Outcome.ACK):
        self.decide = decide
        self.batches: list[list[IncomingMessage]] = []
        self.lock = threading.Lock()

    def handle(self, batch: list[IncomingMessage]) -> list[Outcome]:
        with self.lock:
            self.batches.append(batch)
        return [self.decide(m) for m in batch]

    def messages(self) -> list[IncomingMessage]:
        with self.lock:
            return [m for batch in self.batches for m in batch]


@pytest.fixture
def agencies(broker_url: str) -> Callable[..., list[str]]:
    """Fresh OrganIds (queues declared in the session vhost) so tests never share queues."""

    def make(count: int = 1, topology: Topology = TOPOLOGY) -> list[str]:
        ids = [f"T{uuid.uuid4().hex[:10]}" for _ in range(count)]
        declare_topology(broker_url, topology, ids)
        return ids

    return make


@pytest.fixture
def running() -> Iterator[Callable[[Link], Link]]:
    """Run Links in threads; stop and join them after the test."""
    started: list[tuple[Link, threading.Thread]] = []

    def start(link: Link) -> Link:
        thread = threading.Thread(target=link.run, name=link.name, daemon=True)
        thread.start()
        started.append((link, thread))
        return link

    yield start
    for link, _ in started:
        link.stop()
    for _, thread in started:
        thread.join(15)
        assert not thread.is_alive(), "Link.run did not return after stop()"


def outgoing(token: int, to: str, size: int = 64, kind: str = "edoc") -> OutgoingMessage:
    return OutgoingMessage(token=token, message_id=f"pkg-{token}", routing_key=to,
                           body=bytes([token % 251]) * size, type=kind,
                           headers={"edoc-from": "sender", "edoc-to": to})


def publisher(url: str, outbox: Outbox, **kw: Any) -> Link:
    return Link(url, kw.pop("topology", TOPOLOGY), user_id="guest",
                fetch_outgoing=outbox.fetch, on_confirmed=outbox.confirmed, **kw)


def consumer(url: str, queue: str, inbox: Inbox, **kw: Any) -> Link:
    return Link(url, kw.pop("topology", TOPOLOGY), user_id="guest", queue=queue,
                handle_batch=inbox.handle, **kw)


def admin_publish(url: str, routing_key: str, count: int, **props: Any) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    for i in range(count):
        channel.basic_publish(TOPOLOGY.exchange, routing_key, f"body-{i}".encode(),
                              pika.BasicProperties(message_id=f"m-{i}", delivery_mode=2,
                                                   user_id="guest", type="edoc", **props),
                              mandatory=True)
    connection.close()


def queue_depth(url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def test_publish_confirms_pipelined_in_window(broker_url: str, agencies: Any, running: Any) -> None:
    """Many messages are all confirmed, in publish order, never more than `window` in flight."""
    [to] = agencies()
    outbox = Outbox()
    outbox.add(*(outgoing(t, to, size=5000) for t in range(1, 1001)))
    link = running(publisher(broker_url, outbox, window=32))
    seen_in_flight: list[int] = []
    wait_for(lambda: seen_in_flight.append(link.in_flight()) is None and outbox.done(),
             what="all confirmations")
    tokens = [c.token for c in outbox.confirmations]
    assert tokens == list(range(1, 1001))
    assert all(c.ok and not c.returned for c in outbox.confirmations)
    assert max(seen_in_flight) <= 32 and outbox.max_request <= 32
    assert link.stats.published == 1000 and link.stats.confirmed == 1000
    wait_for(lambda: queue_depth(broker_url, TOPOLOGY.queue_for(to)) == 1000, what="queue depth")


def test_unroutable_message_is_returned(broker_url: str, agencies: Any, running: Any) -> None:
    """A message for an agency without a queue comes back as returned, its neighbours confirm."""
    [to] = agencies()
    outbox = Outbox()
    outbox.add(outgoing(1, to), outgoing(2, "000.00.00.NOWHERE"), outgoing(3, to))
    running(publisher(broker_url, outbox))
    wait_for(outbox.done, what="confirmations")
    by_token = {c.token: c for c in outbox.confirmations}
    assert by_token[1].ok and by_token[3].ok
    returned = by_token[2]
    assert (returned.ok, returned.returned, returned.code) == (False, True, "UNROUTABLE")
    assert returned.reason is not None
    assert returned.reason.startswith("unroutable: no queue for 000.00.00.NOWHERE")
    assert not returned.retryable


def test_too_large_refused_before_publishing(broker_url: str, agencies: Any,
                                             running: Any) -> None:
    """A body over the broker's message limit is refused with a clear reason, never published."""
    [to] = agencies()
    small = Topology(max_message_bytes=1000)
    with pytest.raises(PackageTooLarge, match="exceeds the broker limit of 1000"):
        small.check_size(b"x" * 1001)
    outbox = Outbox()
    outbox.add(outgoing(1, to, size=1001), outgoing(2, to, size=1000))
    link = running(publisher(broker_url, outbox, topology=small))
    wait_for(outbox.done, what="confirmations")
    by_token = {c.token: c for c in outbox.confirmations}
    assert by_token[1].code == "PACKAGE_TOO_LARGE" and not by_token[1].ok
    assert by_token[1].reason is not None and "1001 bytes" in by_token[1].reason
    assert by_token[2].ok
    assert link.stats.published == 1


def test_consumer_batches_and_acks(broker_url: str, agencies: Any, running: Any) -> None:
    """Deliveries come in batches with their properties, and acked ones leave the queue."""
    [me] = agencies()
    admin_publish(broker_url, me, 300, headers={"edoc-from": "X"})
    inbox = Inbox()
    link = running(consumer(broker_url, TOPOLOGY.queue_for(me), inbox, prefetch=100))
    wait_for(lambda: len(inbox.messages()) == 300, what="300 deliveries")
    wait_for(lambda: link.stats.acked == 300, what="acks")
    first = inbox.messages()[0]
    assert (first.message_id, first.user_id, first.type) == ("m-0", "guest", "edoc")
    assert first.headers["edoc-from"] == "X" and first.routing_key == me
    assert first.delivery_count == 0 and not first.redelivered
    assert max(len(b) for b in inbox.batches) > 1, "deliveries were not batched"
    assert len(inbox.batches) < 300
    assert queue_depth(broker_url, TOPOLOGY.queue_for(me)) == 0


def test_reject_dead_letters_with_x_death(broker_url: str, agencies: Any, running: Any) -> None:
    """REJECT sends the message to the agency's dead queue with the reason in x-death."""
    [me] = agencies()
    admin_publish(broker_url, me, 4)
    inbox = Inbox(lambda m: Outcome.REJECT if m.message_id in {"m-1", "m-2"} else Outcome.ACK)
    link = running(consumer(broker_url, TOPOLOGY.queue_for(me), inbox))
    wait_for(lambda: link.stats.rejected == 2 and link.stats.acked == 2, what="settlement")
    wait_for(lambda: queue_depth(broker_url, TOPOLOGY.dead_queue_for(me)) == 2, what="dead")
    dead = dead_letters(broker_url, TOPOLOGY, me)
    assert sorted(d.message_id or "" for d in dead) == ["m-1", "m-2"]
    assert {d.reason for d in dead} == {"rejected"}
    assert {d.queue for d in dead} == {TOPOLOGY.queue_for(me)}
    assert dead[0].routing_key == me and dead[0].body.startswith(b"body-")


def test_retry_beyond_delivery_limit_dead_letters(broker_url: str, agencies: Any,
                                                  running: Any) -> None:
    """RETRY requeues with a growing x-delivery-count until the limit dead-letters it."""
    strict = Topology(delivery_limit=2)
    [me] = agencies(topology=strict)
    admin_publish(broker_url, me, 1)
    inbox = Inbox(lambda m: Outcome.RETRY)
    running(consumer(broker_url, strict.queue_for(me), inbox, topology=strict))
    wait_for(lambda: queue_depth(broker_url, strict.dead_queue_for(me)) == 1, what="dead letter")
    counts = [m.delivery_count for m in inbox.messages()]
    assert counts[:3] == [0, 1, 2] and len(counts) == 3
    assert all(m.redelivered for m in inbox.messages()[1:])
    [dead] = dead_letters(broker_url, strict, me)
    assert dead.reason == "delivery_limit" and dead.message_id == "m-0"


def test_handler_failure_requeues(broker_url: str, agencies: Any, running: Any) -> None:
    """If handle_batch raises, nothing is acked: the batch is redelivered and can then succeed."""
    [me] = agencies()
    admin_publish(broker_url, me, 3)
    calls: list[int] = []

    def flaky(batch: list[IncomingMessage]) -> list[Outcome]:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("store is down")
        return [Outcome.ACK] * len(batch)

    link = Link(broker_url, TOPOLOGY, user_id="guest", queue=TOPOLOGY.queue_for(me),
                handle_batch=flaky)
    running(link)
    wait_for(lambda: link.stats.acked == 3, what="acks after the failure")
    assert link.stats.handler_errors == 1 and link.stats.requeued >= 1
    assert queue_depth(broker_url, TOPOLOGY.queue_for(me)) == 0


def _close_all_connections(vhost: str) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([exe, "-q", "close_all_connections", "-p", vhost, "test: simulated drop"],
                   check=True, capture_output=True, timeout=60)


def test_reconnect_loses_nothing(broker_url: str, broker_vhost: str, agencies: Any,
                                 running: Any) -> None:
    """Connections killed mid-stream: both Links reconnect, republish, re-consume; none lost."""
    [to] = agencies()
    total = 3000
    outbox = Outbox()
    outbox.add(*(outgoing(t, to, size=2000) for t in range(1, total + 1)))
    inbox = Inbox()
    killed = threading.Event()

    def kill_mid_stream() -> None:
        # Runs in the publishing Link's thread right before it publishes a fresh batch, so
        # that batch is written to a connection the broker has already closed: it can only
        # arrive if the Link republishes it after reconnecting.
        if not killed.is_set() and len(outbox.confirmations) > 300 and inbox.messages():
            killed.set()
            _close_all_connections(broker_vhost)

    outbox.before_fetch = kill_mid_stream
    pub = running(publisher(broker_url, outbox, window=64, backoff_initial=0.1))
    sub = running(consumer(broker_url, TOPOLOGY.queue_for(to), inbox, backoff_initial=0.1))
    wait_for(killed.is_set, what="the kill")
    wait_for(lambda: pub.stats.connects >= 2 and sub.stats.connects >= 2, what="reconnects")
    wait_for(outbox.done, timeout=60, what="every message confirmed")
    expected = {f"pkg-{t}" for t in range(1, total + 1)}
    wait_for(lambda: {m.message_id for m in inbox.messages()} >= expected, timeout=60,
             what="every message consumed")
    assert all(c.ok for c in outbox.confirmations)
    assert pub.stats.republished > 0, "nothing was in flight at the kill"
    assert pub.stats.published == total + pub.stats.republished


def test_spoofed_user_id_is_refused(broker_url: str, agencies: Any, running: Any) -> None:
    """The broker refuses a user_id that is not the connection's user; nothing is delivered."""
    [to] = agencies()
    outbox = Outbox()
    outbox.add(outgoing(1, to))
    link = Link(broker_url, TOPOLOGY, user_id="someone-else", fetch_outgoing=outbox.fetch,
                on_confirmed=outbox.confirmed, backoff_initial=5.0)
    running(link)
    wait_for(lambda: link.last_error is not None and "406" in link.last_error, what="refusal")
    assert "user_id" in (link.last_error or "")
    assert not outbox.confirmations
    assert queue_depth(broker_url, TOPOLOGY.queue_for(to)) == 0


def test_missing_queue_is_reported(broker_url: str, running: Any) -> None:
    """Consuming a queue that was never provisioned fails clearly (404), declaring nothing."""
    queue = TOPOLOGY.queue_for("000.00.00.MISSING")
    link = running(consumer(broker_url, queue, Inbox(), backoff_initial=5.0))
    wait_for(lambda: link.last_error is not None, what="error")
    assert "404" in (link.last_error or "") and queue in (link.last_error or "")
    assert not link.connected
    with pytest.raises(Exception, match="BROKER_NOT_FOUND"):
        check_queues(broker_url, TOPOLOGY, ["000.00.00.MISSING"])


def test_dead_letter_peek_keeps_and_replay_moves_one(broker_url: str, agencies: Any,
                                                     running: Any) -> None:
    """Peeking twice shows the same dead letters; replay moves exactly one back to the queue."""
    [me] = agencies()
    admin_publish(broker_url, me, 3)
    link = running(consumer(broker_url, TOPOLOGY.queue_for(me), Inbox(lambda m: Outcome.REJECT)))
    wait_for(lambda: link.stats.rejected == 3, what="rejections")
    link.stop()
    wait_for(lambda: queue_depth(broker_url, TOPOLOGY.dead_queue_for(me)) == 3, what="dead")
    first = dead_letters(broker_url, TOPOLOGY, me)
    second = dead_letters(broker_url, TOPOLOGY, me)
    assert sorted(d.message_id or "" for d in first) == ["m-0", "m-1", "m-2"]
    assert sorted(d.message_id or "" for d in second) == ["m-0", "m-1", "m-2"]
    assert len(dead_letters(broker_url, TOPOLOGY, me, limit=2)) == 2
    assert replay_dead_letter(broker_url, TOPOLOGY, me, "m-1", "guest")
    assert not replay_dead_letter(broker_url, TOPOLOGY, me, "m-404", "guest")
    assert sorted(d.message_id or "" for d in dead_letters(broker_url, TOPOLOGY, me)) == [
        "m-0", "m-2"]
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    method, properties, body = connection.channel().basic_get(TOPOLOGY.queue_for(me),
                                                              auto_ack=True)
    connection.close()
    assert method is not None and properties.message_id == "m-1" and body == b"body-1"
    assert "x-death" not in (properties.headers or {})


def test_stop_waits_for_confirms_and_returns(broker_url: str, agencies: Any) -> None:
    """stop() from another thread ends run() promptly after the outstanding confirms."""
    [to] = agencies()
    outbox = Outbox()
    outbox.add(*(outgoing(t, to) for t in range(1, 201)))
    link = publisher(broker_url, outbox)
    thread = threading.Thread(target=link.run, daemon=True)
    thread.start()
    wait_for(lambda: len(outbox.confirmations) > 0, what="first confirmation")
    link.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert link.in_flight() == 0 or not link.connected
    assert {c.token for c in outbox.confirmations} <= set(range(1, 201))


def test_unreachable_broker_backs_off_and_stops() -> None:
    """With no broker to reach, run() keeps retrying with backoff and still stops promptly."""
    outbox = Outbox()
    outbox.add(outgoing(1, "nowhere"))
    link = Link("amqp://guest:guest@127.0.0.1:1/%2F", TOPOLOGY, user_id="guest",
                fetch_outgoing=outbox.fetch, on_confirmed=outbox.confirmed,
                backoff_initial=0.05, backoff_max=0.2)
    thread = threading.Thread(target=link.run, daemon=True)
    thread.start()
    wait_for(lambda: link.last_error is not None and "BROKER_UNAVAILABLE" in link.last_error
             and "127.0.0.1:1" in link.last_error, what="connection failure")
    link.stop()
    thread.join(5)
    assert not thread.is_alive() and not link.connected and not outbox.confirmations
