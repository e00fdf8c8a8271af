"""Dead-letter admin: peek at an agency's dead letters and replay one to its queue.

Short blocking connections (:func:`~edoc_axis.transport.connection.blocking_channel`); nothing
here runs inside a node's :class:`~edoc_axis.transport.link.Link`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions

from edoc_axis.errors import BrokerUnavailable
from edoc_axis.transport.connection import blocking_channel
from edoc_axis.transport.message import APP_ID, BROKER_HEADERS, DEATH_HEADER, REPLAYED_USER_HEADER
from edoc_axis.transport.topology import Topology


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


def _dead_letter(method: Any, properties: Any, body: bytes) -> DeadLetter:
    headers = dict(properties.headers or {})
    deaths = headers.get(DEATH_HEADER) or [{}]
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
    with blocking_channel(url) as channel:
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
    with blocking_channel(url) as channel:
        channel.confirm_delivery()
        queue = topology.dead_queue_for(organ_id)
        for _ in range(scan_limit):
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return False
            if properties.message_id != message_id:
                continue  # left unacked: returns to the dead queue when the channel closes
            headers = {k: v for k, v in (properties.headers or {}).items()
                       if not k.startswith(BROKER_HEADERS)}
            if user_id is not None and properties.user_id and properties.user_id != user_id:
                headers[REPLAYED_USER_HEADER] = properties.user_id
            replay = pika.BasicProperties(
                content_type=properties.content_type, delivery_mode=pika.DeliveryMode.Persistent,
                message_id=properties.message_id, type=properties.type, headers=headers or None,
                user_id=user_id if user_id is not None else properties.user_id,
                timestamp=int(time.time()), app_id=APP_ID)
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
