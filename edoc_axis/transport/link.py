"""AMQP transport of a node: one supervised connection that publishes with confirms and consumes.

The only module importing pika. pika is not thread-safe and never reconnects by itself, so a
:class:`Link` runs one ``SelectConnection`` in the thread that calls :meth:`Link.run`; other
threads talk to it only through ``add_callback_threadsafe`` (:meth:`Link.wake`,
:meth:`Link.stop`). The broker layout (names, users, definitions) is in :mod:`transport.topology`
and re-exported here. Admin and DLQ helpers (:func:`declare_topology`, :func:`check_queues`,
:func:`dead_letters`, :func:`replay_dead_letter`) use short blocking connections.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
import pika.spec

from edoc_axis.errors import BrokerUnavailable, ConfigError, NotFound
from edoc_axis.log import get_logger
from edoc_axis.transport.topology import (
    MAX_MESSAGE_BYTES,
    BrokerAccount,
    Topology,
    definitions,
    password_hash,
    provision,
)

__all__ = [
    "MAX_MESSAGE_BYTES", "BrokerAccount", "Confirmation", "DeadLetter", "IncomingMessage", "Link",
    "LinkStats", "Outcome", "OutgoingMessage", "Topology", "check_queues", "dead_letters",
    "declare_topology", "definitions", "password_hash", "provision", "replay_dead_letter",
]

log = get_logger(__name__)

CONTENT_TYPE = "application/xml"
# Broker-managed headers that must not travel with a replayed dead letter.
_BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")
REPLAYED_USER_HEADER = "x-edoc-replay-of-user"


class Outcome(enum.Enum):
    """What to do with a delivered message once the node has handled it."""

    ACK = "ack"  # stored durably: remove from the queue
    REJECT = "reject"  # permanently invalid: dead-letter it, never redeliver
    RETRY = "retry"  # temporary failure: requeue; counts toward the queue's delivery limit


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to publish; ``token`` is the node's outbox row id, echoed in confirmations."""

    token: int
    message_id: str
    routing_key: str
    body: bytes
    type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One delivery handed to the node. ``user_id`` is broker-verified (the publisher's user)."""

    body: bytes
    message_id: str | None
    user_id: str | None
    type: str | None
    headers: dict[str, Any]
    redelivered: bool
    delivery_count: int
    routing_key: str


@dataclass(frozen=True, slots=True)
class Confirmation:
    """The broker's answer for one published token.

    ``code`` tells failures apart: ``UNROUTABLE`` (returned: no queue for the recipient, permanent),
    ``PACKAGE_TOO_LARGE`` (refused before publishing, permanent), ``BROKER_NACK`` (the broker
    could not take it now: retryable).
    """

    token: int
    ok: bool
    returned: bool = False
    reason: str | None = None
    code: str | None = None

    @property
    def retryable(self) -> bool:
        """True when publishing the same message again later may succeed."""
        return not self.ok and self.code == "BROKER_NACK"


@dataclass(slots=True)
class LinkStats:
    """Counters of one Link (read from any thread; written only by the Link's thread)."""

    connects: int = 0
    published: int = 0
    confirmed: int = 0
    returned: int = 0
    nacked: int = 0
    too_large: int = 0
    republished: int = 0
    delivered: int = 0
    acked: int = 0
    rejected: int = 0
    requeued: int = 0
    batches: int = 0
    handler_errors: int = 0


@dataclass(slots=True)
class _Flight:
    message: OutgoingMessage
    returned_reason: str | None = None


def _parameters(url: str, **settings: Any) -> Any:
    try:
        params = pika.URLParameters(url)
    except Exception as exc:  # pika raises assorted errors for a bad URL
        raise ConfigError(f"invalid broker URL: {exc}", code="BROKER_URL_INVALID") from exc
    for name, value in settings.items():
        setattr(params, name, value)
    return params


class Link:
    """Owner of one broker connection: publishes the outbox with confirms, consumes one queue.

    Call :meth:`run` in a dedicated thread; it reconnects with capped, jittered exponential
    backoff until :meth:`stop`. Messages in flight when a connection or channel dies are kept and
    republished after reconnecting (duplicates are possible; the receiving node dedupes), and
    ``fetch_outgoing`` is asked only for free window slots. Tokens already held by the Link are
    skipped if ``fetch_outgoing`` hands them out again.
    """

    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        user_id: str,
        queue: str | None = None,
        handle_batch: Callable[[list[IncomingMessage]], list[Outcome]] | None = None,
        fetch_outgoing: Callable[[int], list[OutgoingMessage]] | None = None,
        on_confirmed: Callable[[list[Confirmation]], None] | None = None,
        prefetch: int = 64,
        window: int = 256,
        heartbeat: int = 30,
        blocked_connection_timeout: float = 60,
        poll_interval: float = 0.1,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        stop_timeout: float = 5.0,
        name: str | None = None,
    ) -> None:
        if queue is not None and handle_batch is None:
            raise ValueError("a consuming Link (queue=...) needs handle_batch")
        if (fetch_outgoing is None) != (on_confirmed is None):
            raise ValueError("fetch_outgoing and on_confirmed go together")
        self.topology = topology
        self.queue = queue
        self.user_id = user_id
        self.name = name or f"edoc-axis {user_id} {'consume ' + queue if queue else 'publish'}"
        self._params = _parameters(
            url, heartbeat=heartbeat, blocked_connection_timeout=blocked_connection_timeout,
            connection_attempts=1, socket_timeout=10,
            client_properties={"connection_name": self.name})
        self._handle_batch = handle_batch
        self._fetch_outgoing = fetch_outgoing
        self._on_confirmed = on_confirmed
        self._prefetch, self._window = prefetch, window
        self._poll_interval, self._stop_timeout = poll_interval, stop_timeout
        self._backoff_initial, self._backoff_max = backoff_initial, backoff_max
        self.stats = LinkStats()
        self.last_error: str | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connection: Any = None
        self._channel: Any = None
        self._ready = False
        self._ready_since = 0.0
        self._blocked = False
        self._attempt = 0
        self._stop_started = False
        self._consumer_tag: str | None = None
        self._next_tag = 0
        self._inflight: OrderedDict[int, _Flight] = OrderedDict()
        self._retained: deque[OutgoingMessage] = deque()
        self._held: set[int] = set()  # tokens in flight or retained for republication
        self._more_outgoing = True
        self._confirms: list[Confirmation] = []
        self._batch: list[tuple[Any, int, IncomingMessage]] = []
        self._flush_scheduled = False
        self._confirm_flush_scheduled = False

    # --- public, thread-safe ----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the channel is open, confirming and (when consuming) consuming."""
        return self._ready

    def in_flight(self) -> int:
        """How many published messages await their confirmation (or republication)."""
        return len(self._held)

    def wake(self) -> None:
        """Tell the Link the outbox has new rows (from any thread)."""
        self._call_soon(self._pump)

    def stop(self) -> None:
        """Ask :meth:`run` to stop consuming, wait briefly for confirms, close and return."""
        self._stopping.set()
        self._call_soon(self._begin_stop)

    def run(self) -> None:
        """Connect, work, and reconnect with backoff until :meth:`stop` (blocks)."""
        while not self._stopping.is_set():
            self._run_connection()
            if self._stopping.is_set():
                break
            delay = self._next_backoff()
            log.info("broker_reconnect_scheduled", link=self.name, delay=round(delay, 2),
                     error=self.last_error)
            self._stopping.wait(delay)
        self._emit_confirms()
        log.info("link_stopped", link=self.name, unconfirmed=len(self._held))

    # --- connection lifecycle (Link thread only) ---------------------------------------------

    def _call_soon(self, callback: Callable[[], None]) -> None:
        with self._lock:
            connection = self._connection
        if connection is not None:
            connection.ioloop.add_callback_threadsafe(callback)

    def _next_backoff(self) -> float:
        self._attempt += 1
        ceiling = min(self._backoff_max, self._backoff_initial * 2.0 ** (self._attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto

    def _run_connection(self) -> None:
        connection = pika.SelectConnection(
            self._params, on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_connection_closed)
        with self._lock:
            self._connection = connection
        if self._stopping.is_set():
            connection.ioloop.add_callback_threadsafe(self._begin_stop)
        try:
            connection.ioloop.start()
        except Exception as exc:
            # A bug or an unexpected pika state must not end the supervisor: drop this
            # connection (unacked deliveries return, in-flight messages are republished).
            self.last_error = f"link failed: {exc!r}"
            log.exception("broker_link_failed", link=self.name, error=repr(exc))
            if connection.is_open:
                try:
                    connection.close()
                    connection.ioloop.start()  # until the close completes
                except Exception:  # noqa: S110 - already failing; the socket goes with it
                    pass
        finally:
            with self._lock:
                self._connection = None
            self._lose_channel()
            self._stop_started = False
            connection.ioloop.close()  # its wake-up socket pair

    def _on_open_error(self, connection: Any, error: Any) -> None:
        self.last_error = f"cannot connect: {error!r}"
        log.warning("broker_connect_failed", link=self.name, error=repr(error))
        connection.ioloop.stop()

    def _on_connection_closed(self, connection: Any, reason: Any) -> None:
        if not self._stopping.is_set():
            self.last_error = f"connection closed: {reason!r}"
            log.warning("broker_connection_lost", link=self.name, reason=repr(reason))
        self._lose_channel()
        connection.ioloop.stop()

    def _on_connection_open(self, connection: Any) -> None:
        if self._stopping.is_set():
            connection.close()
            return
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        self._open_channel()

    def _on_blocked(self, _connection: Any, _frame: Any) -> None:
        self._blocked = True
        log.warning("broker_blocked_publishing", link=self.name)

    def _on_unblocked(self, _connection: Any, _frame: Any) -> None:
        self._blocked = False
        log.info("broker_unblocked_publishing", link=self.name)
        self._pump()

    def _open_channel(self) -> None:
        connection = self._connection
        if connection is None or not connection.is_open or self._stopping.is_set():
            return
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        self._next_tag = 0
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.add_on_cancel_callback(self._on_cancelled)
        if self._fetch_outgoing is not None:
            channel.confirm_delivery(ack_nack_callback=self._on_confirm,
                                     callback=lambda _frame: self._set_qos(channel))
        else:
            self._set_qos(channel)

    def _set_qos(self, channel: Any) -> None:
        if self.queue is None:
            self._on_ready(channel)
            return
        # A passive declare needs no configure permission (verified on RabbitMQ 3.10): it turns
        # a missing queue into a clear 404 before consuming, and never creates anything.
        channel.basic_qos(prefetch_count=self._prefetch, callback=lambda _frame: (
            channel.queue_declare(self.queue, passive=True,
                                  callback=lambda _ok: self._consume(channel))))

    def _consume(self, channel: Any) -> None:
        self._consumer_tag = channel.basic_consume(
            self.queue, self._on_message, auto_ack=False,
            callback=lambda _frame: self._on_ready(channel))

    def _on_ready(self, channel: Any) -> None:
        if channel is not self._channel:
            return
        self._ready, self._ready_since = True, time.monotonic()
        self.stats.connects += 1
        log.info("broker_link_ready", link=self.name, queue=self.queue,
                 republishing=len(self._retained))
        self._more_outgoing = True
        self._tick()

    def _on_channel_closed(self, channel: Any, reason: Any) -> None:
        if channel is not self._channel:
            return
        self._lose_channel()
        if self._stopping.is_set():
            self._close_connection()
            return
        code = getattr(reason, "reply_code", None)
        text = getattr(reason, "reply_text", repr(reason))
        self.last_error = f"channel closed: ({code}) {text}"
        hint = {404: "queue or exchange missing: provision the broker topology",
                403: "permission refused: check the broker user's permissions",
                406: "refused by the broker (user_id must equal the connection's user)"}
        log.warning("broker_channel_closed", link=self.name, code=code, reason=text,
                    hint=hint.get(code) if isinstance(code, int) else None)
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.ioloop.call_later(self._next_backoff(), self._open_channel)

    def _on_cancelled(self, _frame: Any) -> None:
        log.warning("broker_consumer_cancelled", link=self.name, queue=self.queue)
        if self._channel is not None and self._channel.is_open:
            self._channel.close()  # reopened (and re-consumed) by _on_channel_closed

    def _lose_channel(self) -> None:
        """Forget the channel: its in-flight messages go back to be republished first."""
        self._ready = False
        self._channel = None
        self._consumer_tag = None
        self._batch.clear()  # unacked deliveries return to the queue with the channel
        self._flush_scheduled = False
        self._confirm_flush_scheduled = False
        if self._inflight:
            self._retained.extendleft(f.message for f in reversed(self._inflight.values()))
            self._inflight.clear()
        self._emit_confirms()

    def _begin_stop(self) -> None:
        if self._stop_started:
            return
        self._stop_started = True
        if self._batch:
            self._flush_batch()  # settle what was delivered while the channel is still open
        channel = self._channel
        if channel is not None and channel.is_open and self._consumer_tag is not None:
            channel.basic_cancel(self._consumer_tag)
            self._consumer_tag = None
        self._await_confirms(time.monotonic() + self._stop_timeout)

    def _await_confirms(self, deadline: float) -> None:
        connection = self._connection
        if connection is None:
            return
        channel = self._channel
        waiting = bool(self._inflight) and channel is not None and channel.is_open
        if waiting and time.monotonic() < deadline:
            connection.ioloop.call_later(0.02, lambda: self._await_confirms(deadline))
            return
        self._close_connection()

    def _close_connection(self) -> None:
        connection = self._connection
        if connection is None:
            return
        if connection.is_closed:
            connection.ioloop.stop()
        elif not connection.is_closing:
            try:
                connection.close()
            except pika.exceptions.ConnectionWrongStateError:
                connection.ioloop.stop()

    # --- publishing --------------------------------------------------------------------------

    def _tick(self) -> None:
        channel = self._channel
        if not self._ready or channel is None or self._connection is None:
            return
        if self._attempt and time.monotonic() - self._ready_since > 5.0:
            self._attempt = 0  # stable for a while: the next failure starts backoff afresh
        self._pump()
        self._connection.ioloop.call_later(self._poll_interval, self._tick_if(channel))

    def _tick_if(self, channel: Any) -> Callable[[], None]:
        return lambda: self._tick() if channel is self._channel else None

    def _pump(self) -> None:
        """Fill the free window slots: retained messages first, then fresh outbox rows."""
        channel = self._channel
        if (self._fetch_outgoing is None or not self._ready or self._blocked or channel is None
                or not channel.is_open or self._stop_started):
            return
        while self._retained and len(self._inflight) < self._window:
            self._publish(channel, self._retained.popleft(), republish=True)
        free = self._window - len(self._inflight)
        if free <= 0 or self._retained:
            return
        try:
            messages = self._fetch_outgoing(free)
        except Exception as exc:
            log.exception("outbox_fetch_failed", link=self.name, error=repr(exc))
            return
        self._more_outgoing = len(messages) >= free
        for message in messages:
            if message.token not in self._held:
                self._publish(channel, message)
        self._emit_confirms()

    def _publish(self, channel: Any, message: OutgoingMessage, *, republish: bool = False) -> None:
        if len(message.body) > self.topology.max_message_bytes:
            self.stats.too_large += 1
            self._held.discard(message.token)
            self._confirms.append(Confirmation(
                message.token, ok=False, code="PACKAGE_TOO_LARGE",
                reason=f"too large: {len(message.body)} bytes exceeds the broker limit of "
                       f"{self.topology.max_message_bytes} bytes"))
            return
        properties = pika.BasicProperties(
            content_type=CONTENT_TYPE, delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message.message_id, user_id=self.user_id, type=message.type,
            headers=dict(message.headers) or None, timestamp=int(time.time()),
            app_id="edoc-axis")
        channel.basic_publish(self.topology.exchange, message.routing_key, message.body,
                              properties=properties, mandatory=True)
        self._next_tag += 1
        self._inflight[self._next_tag] = _Flight(message)
        self._held.add(message.token)
        self.stats.published += 1
        if republish:
            self.stats.republished += 1

    def _on_return(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        # basic.return precedes the ack of the same message; match it to the oldest flight with
        # the same routing key and message id that is not yet marked.
        for flight in self._inflight.values():
            message = flight.message
            if (flight.returned_reason is None and message.routing_key == method.routing_key
                    and message.message_id == properties.message_id):
                flight.returned_reason = (f"unroutable: no queue for {method.routing_key} "
                                          f"({method.reply_code} {method.reply_text})")
                return
        log.warning("broker_return_unmatched", link=self.name, routing_key=method.routing_key)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        if method.multiple:
            while self._inflight and next(iter(self._inflight)) <= method.delivery_tag:
                self._settle(self._inflight.popitem(last=False)[1], acked)
        else:
            flight = self._inflight.pop(method.delivery_tag, None)
            if flight is not None:
                self._settle(flight, acked)
        if not self._confirm_flush_scheduled and self._connection is not None:
            self._confirm_flush_scheduled = True
            self._connection.ioloop.add_callback_threadsafe(self._after_confirms)

    def _settle(self, flight: _Flight, acked: bool) -> None:
        token = flight.message.token
        self._held.discard(token)
        if flight.returned_reason is not None:
            self.stats.returned += 1
            confirmation = Confirmation(token, ok=False, returned=True,
                                        reason=flight.returned_reason, code="UNROUTABLE")
        elif acked:
            self.stats.confirmed += 1
            self._attempt = 0
            confirmation = Confirmation(token, ok=True)
        else:
            self.stats.nacked += 1
            confirmation = Confirmation(token, ok=False, code="BROKER_NACK",
                                        reason="nacked: the broker did not accept the message")
        self._confirms.append(confirmation)

    def _after_confirms(self) -> None:
        self._confirm_flush_scheduled = False
        self._emit_confirms()
        if self._more_outgoing or self._retained:
            self._pump()

    def _emit_confirms(self) -> None:
        if not self._confirms or self._on_confirmed is None:
            return
        confirms, self._confirms = self._confirms, []
        try:
            self._on_confirmed(confirms)
        except Exception as exc:
            log.exception("confirm_handler_failed", link=self.name, error=repr(exc))

    # --- consuming ---------------------------------------------------------------------------

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        headers = dict(properties.headers or {})
        count = headers.get("x-delivery-count", 0)
        message = IncomingMessage(
            body=body, message_id=properties.message_id, user_id=properties.user_id,
            type=properties.type, headers=headers, redelivered=bool(method.redelivered),
            delivery_count=count if isinstance(count, int) else 0,
            routing_key=method.routing_key)
        self.stats.delivered += 1
        self._batch.append((channel, method.delivery_tag, message))
        if not self._flush_scheduled:
            # Runs after every delivery read in this ioloop turn: one batch = one node commit.
            self._flush_scheduled = True
            self._connection.ioloop.add_callback_threadsafe(self._flush_batch)

    def _flush_batch(self) -> None:
        self._flush_scheduled = False
        batch, self._batch = self._batch, []
        if not batch:
            return
        channel = batch[0][0]
        if channel is not self._channel or not channel.is_open:
            return  # the channel died: the broker redelivers these
        messages = [message for _, _, message in batch]
        self.stats.batches += 1
        try:
            outcomes = list(self._handle_batch(messages)) if self._handle_batch else []
            if len(outcomes) != len(messages):
                raise ValueError(f"{len(outcomes)} outcomes for {len(messages)} messages")
        except Exception as exc:
            self.stats.handler_errors += 1
            log.exception("batch_handler_failed", link=self.name, size=len(batch),
                          error=repr(exc))
            outcomes = [Outcome.RETRY] * len(batch)
        try:
            self._settle_deliveries(channel, [tag for _, tag, _ in batch], outcomes)
        except (pika.exceptions.ChannelWrongStateError,
                pika.exceptions.ConnectionWrongStateError) as exc:
            # The channel closed while the node handled the batch: the broker redelivers these
            # messages and the node's dedupe answers them again.
            log.warning("delivery_settlement_lost", link=self.name, size=len(batch),
                        error=repr(exc))

    def _settle_deliveries(self, channel: Any, tags: list[int], outcomes: list[Outcome]) -> None:
        # Earlier tags are all settled by the time a run ends, so "multiple" covers just the run.
        for outcome, run in _runs(tags, outcomes):
            last = run[-1]
            if outcome is Outcome.ACK:
                channel.basic_ack(last, multiple=True)
                self.stats.acked += len(run)
            elif outcome is Outcome.REJECT:
                if len(run) == 1:
                    channel.basic_reject(last, requeue=False)
                else:
                    channel.basic_nack(last, multiple=True, requeue=False)
                self.stats.rejected += len(run)
            else:
                channel.basic_nack(last, multiple=True, requeue=True)
                self.stats.requeued += len(run)
        self._emit_confirms()


def _runs(tags: list[int], outcomes: list[Outcome]) -> Iterator[tuple[Outcome, list[int]]]:
    start = 0
    for index in range(1, len(tags) + 1):
        if index == len(tags) or outcomes[index] is not outcomes[start]:
            yield outcomes[start], tags[start:index]
            start = index


# --- admin and dead-letter helpers (short blocking connections) ---------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message in an agency's dead-letter queue, with why and where it died (from x-death)."""

    message_id: str | None
    body: bytes
    headers: dict[str, Any]
    user_id: str | None
    type: str | None
    routing_key: str | None
    reason: str | None  # rejected | delivery_limit | expired | maxlen
    queue: str | None
    count: int


@contextmanager
def _blocking_channel(url: str) -> Iterator[Any]:
    params = _parameters(url, connection_attempts=1, socket_timeout=10, heartbeat=30)
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.ProbableAuthenticationError as exc:
        raise ConfigError(f"broker refused the credentials: {exc}",
                          code="BROKER_AUTH_FAILED") from exc
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailable(f"cannot connect to the broker: {exc!r}") from exc
    try:
        yield connection.channel()
    except pika.exceptions.ChannelClosedByBroker as exc:
        code = "BROKER_ACCESS_REFUSED" if exc.reply_code == 403 else "BROKER_CHANNEL_CLOSED"
        if exc.reply_code == 404:
            raise NotFound(f"broker: {exc.reply_text}", code="BROKER_NOT_FOUND") from exc
        raise BrokerUnavailable(f"broker refused: {exc.reply_text}", code=code) from exc
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailable(f"broker operation failed: {exc!r}") from exc
    finally:
        if connection.is_open:
            connection.close()


def declare_topology(url: str, topology: Topology, organ_ids: Iterable[str]) -> None:
    """Declare exchanges, queues and bindings with pika (needs configure rights; idempotent)."""
    with _blocking_channel(url) as channel:
        for exchange in (topology.exchange, topology.dead_exchange):
            channel.exchange_declare(exchange, exchange_type="direct", durable=True)
        for organ_id in organ_ids:
            queue, dead = topology.queue_for(organ_id), topology.dead_queue_for(organ_id)
            channel.queue_declare(queue, durable=True, arguments=topology.queue_arguments())
            channel.queue_declare(dead, durable=True, arguments=topology.dead_queue_arguments())
            channel.queue_bind(queue, topology.exchange, routing_key=organ_id)
            channel.queue_bind(dead, topology.dead_exchange, routing_key=organ_id)


def check_queues(url: str, topology: Topology, organ_ids: Iterable[str]) -> dict[str, int]:
    """Message count per existing agency queue, by passive declares (no configure right needed).

    Raises :class:`NotFound` (code ``BROKER_NOT_FOUND``) naming the first missing queue.
    """
    counts: dict[str, int] = {}
    with _blocking_channel(url) as channel:
        channel.exchange_declare(topology.exchange, passive=True)
        for organ_id in organ_ids:
            for queue in (topology.queue_for(organ_id), topology.dead_queue_for(organ_id)):
                counts[queue] = channel.queue_declare(queue, passive=True).method.message_count
    return counts


def _dead_letter(method: Any, properties: Any, body: bytes) -> DeadLetter:
    headers = dict(properties.headers or {})
    deaths = headers.get("x-death") or [{}]
    first = deaths[0] if isinstance(deaths, list) and deaths else {}
    keys = first.get("routing-keys") or [method.routing_key]
    return DeadLetter(
        message_id=properties.message_id, body=body, headers=headers,
        user_id=properties.user_id, type=properties.type, routing_key=keys[0],
        reason=first.get("reason"), queue=first.get("queue"), count=int(first.get("count", 1)))


def dead_letters(url: str, topology: Topology, organ_id: str, limit: int = 100) -> list[DeadLetter]:
    """Peek at up to ``limit`` dead letters of an agency without removing any.

    Messages are fetched unacknowledged and returned to the queue when the channel closes (the
    dead queue's delivery limit is huge, so peeking never drops them).
    """
    found: list[DeadLetter] = []
    with _blocking_channel(url) as channel:
        queue = topology.dead_queue_for(organ_id)
        while len(found) < limit:
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            found.append(_dead_letter(method, properties, body))
    return found


def replay_dead_letter(
    url: str, topology: Topology, organ_id: str, message_id: str, user_id: str | None = None,
    *, scan_limit: int = 10_000,
) -> bool:
    """Move the first dead letter with ``message_id`` back to the agency's queue; False if absent.

    The message is republished (confirmed) before its dead copy is acked, so a failure leaves it
    in the dead queue. With ``user_id`` (the caller's own broker user, which RabbitMQ insists on)
    the original publisher's user travels in the ``x-edoc-replay-of-user`` header; only the
    agency's own user can publish with that user_id, so its node may trust the header.
    """
    with _blocking_channel(url) as channel:
        channel.confirm_delivery()
        queue = topology.dead_queue_for(organ_id)
        for _ in range(scan_limit):
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return False
            if properties.message_id != message_id:
                continue  # left unacked: returns to the dead queue when the channel closes
            headers = {k: v for k, v in (properties.headers or {}).items()
                       if not k.startswith(_BROKER_HEADERS)}
            if user_id is not None and properties.user_id and properties.user_id != user_id:
                headers[REPLAYED_USER_HEADER] = properties.user_id
            replay = pika.BasicProperties(
                content_type=properties.content_type, delivery_mode=pika.DeliveryMode.Persistent,
                message_id=properties.message_id, type=properties.type, headers=headers or None,
                user_id=user_id if user_id is not None else properties.user_id,
                timestamp=int(time.time()), app_id="edoc-axis")
            try:
                channel.basic_publish(topology.exchange, organ_id, body, properties=replay,
                                      mandatory=True)
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                raise BrokerUnavailable(f"replay of {message_id} not accepted: {exc!r}",
                                        code="BROKER_REPLAY_FAILED", agency=organ_id,
                                        package_id=message_id) from exc
            channel.basic_ack(method.delivery_tag)
            return True
    return False
