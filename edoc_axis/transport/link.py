"""The Link: one supervised broker connection that publishes with confirms and consumes.

pika is not thread-safe and never reconnects by itself, so a :class:`Link` runs one
``SelectConnection`` in the thread that calls :meth:`Link.run`; other threads talk to it only
through ``add_callback_threadsafe`` (:meth:`Link.wake`, :meth:`Link.stop`). What it carries is
in :mod:`edoc_axis.transport.message`, the broker layout in :mod:`edoc_axis.transport.topology`;
admin work (provisioning, dead letters) uses short blocking connections elsewhere in the package.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import pika.spec

from edoc_axis.errors import ErrorCode
from edoc_axis.log import get_logger
from edoc_axis.transport.connection import Endpoint, parameters
from edoc_axis.transport.message import (
    APP_ID,
    CONTENT_TYPE,
    DELIVERY_COUNT_HEADER,
    Confirmation,
    IncomingMessage,
    Outcome,
    OutgoingMessage,
)
from edoc_axis.transport.supervisor import Supervisor
from edoc_axis.transport.topology import Topology
from edoc_axis.transport.window import Flight, PublishWindow

log = get_logger(__name__)


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


class Link(Supervisor):
    """Owner of one broker connection: publishes the outbox with confirms, consumes one queue.

    Call :meth:`run` in a dedicated thread; it reconnects with capped, jittered exponential
    backoff until :meth:`stop`. Messages in flight when a connection or channel dies are kept and
    republished after reconnecting (duplicates are possible; the receiving node dedupes), and
    ``fetch_outgoing`` is asked only for free window slots. Tokens already held by the Link are
    skipped if ``fetch_outgoing`` hands them out again.
    """

    def __init__(
        self,
        url: str | Endpoint,
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
        name = name or f"edoc-axis {user_id} {'consume ' + queue if queue else 'publish'}"
        super().__init__(
            parameters(url, heartbeat=heartbeat,
                       blocked_connection_timeout=blocked_connection_timeout,
                       connection_attempts=1, socket_timeout=10,
                       client_properties={"connection_name": name}),
            name=name, backoff_initial=backoff_initial, backoff_max=backoff_max)
        self.topology = topology
        self.queue = queue
        self.user_id = user_id
        self._handle_batch = handle_batch
        self._fetch_outgoing = fetch_outgoing
        self._on_confirmed = on_confirmed
        self._prefetch = prefetch
        self._poll_interval, self._stop_timeout = poll_interval, stop_timeout
        self.stats = LinkStats()
        self._ready = False
        self._ready_since = 0.0
        self._consumer_tag: str | None = None
        self._window = PublishWindow(window)
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
        return self._window.held

    def wake(self) -> None:
        """Tell the Link the outbox has new rows (from any thread)."""
        self._call_soon(self._pump)

    # --- the channel's work (Link thread only) -----------------------------------------------

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        self._window.channel_opened()
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
                 republishing=self._window.retained)
        self._more_outgoing = True
        self._tick()

    def _resume(self) -> None:
        self._pump()

    def _on_stopped(self) -> None:
        self._emit_confirms()
        log.info("link_stopped", link=self.name, unconfirmed=self._window.held)

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
        self._window.channel_lost()
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
        waiting = self._window.unconfirmed > 0 and channel is not None and channel.is_open
        if waiting and time.monotonic() < deadline:
            connection.ioloop.call_later(0.02, lambda: self._await_confirms(deadline))
            return
        self._close_connection()

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
        while (retained := self._window.next_retained()) is not None:
            self._publish(channel, retained, republish=True)
        free = self._window.free()
        if free <= 0 or self._window.retained:
            return
        try:
            messages = self._fetch_outgoing(free)
        except Exception as exc:
            log.exception("outbox_fetch_failed", link=self.name, error=repr(exc))
            return
        self._more_outgoing = len(messages) >= free
        for message in messages:
            if not self._window.holds(message.token):
                self._publish(channel, message)
        self._emit_confirms()

    def _publish(self, channel: Any, message: OutgoingMessage, *, republish: bool = False) -> None:
        if len(message.body) > self.topology.max_message_bytes:
            self.stats.too_large += 1
            self._window.release(message.token)
            self._confirms.append(Confirmation(
                message.token, ok=False, code=ErrorCode.PACKAGE_TOO_LARGE,
                reason=f"too large: {len(message.body)} bytes exceeds the broker limit of "
                       f"{self.topology.max_message_bytes} bytes"))
            return
        properties = pika.BasicProperties(
            content_type=CONTENT_TYPE, delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message.message_id, user_id=self.user_id, type=message.type,
            headers=dict(message.headers) or None, timestamp=int(time.time()),
            app_id=APP_ID)
        channel.basic_publish(self.topology.exchange, message.routing_key, message.body,
                              properties=properties, mandatory=True)
        self._window.published(message)
        self.stats.published += 1
        if republish:
            self.stats.republished += 1

    def _on_return(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        reason = (f"unroutable: no queue for {method.routing_key} "
                  f"({method.reply_code} {method.reply_text})")
        if not self._window.mark_returned(method.routing_key, properties.message_id, reason):
            log.warning("broker_return_unmatched", link=self.name, routing_key=method.routing_key)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        for flight in self._window.settle(method.delivery_tag, method.multiple):
            self._settle(flight, acked)
        if not self._confirm_flush_scheduled and self._connection is not None:
            self._confirm_flush_scheduled = True
            self._connection.ioloop.add_callback_threadsafe(self._after_confirms)

    def _settle(self, flight: Flight, acked: bool) -> None:
        token = flight.message.token
        if flight.returned_reason is not None:
            self.stats.returned += 1
            confirmation = Confirmation(token, ok=False, returned=True,
                                        reason=flight.returned_reason, code=ErrorCode.UNROUTABLE)
        elif acked:
            self.stats.confirmed += 1
            self._attempt = 0
            confirmation = Confirmation(token, ok=True)
        else:
            self.stats.nacked += 1
            confirmation = Confirmation(token, ok=False, code=ErrorCode.BROKER_NACK,
                                        reason="nacked: the broker did not accept the message")
        self._confirms.append(confirmation)

    def _after_confirms(self) -> None:
        self._confirm_flush_scheduled = False
        self._emit_confirms()
        if self._more_outgoing or self._window.retained:
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
        count = headers.get(DELIVERY_COUNT_HEADER, 0)
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
