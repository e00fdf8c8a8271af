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

from edoc_axis.errors import BrokerUnavailable, ErrorCode
from edoc_axis.transport.connection import Endpoint, blocking_channel
from edoc_axis.transport.message import (
    ANONYMOUS_PUBLISHER,
    APP_ID,
    BROKER_HEADERS,
    DEATH_HEADER,
    REPLAYED_USER_HEADER,
)
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


def dead_letters(url: str | Endpoint, topology: Topology, organ_id: str,
                 limit: int = 100) -> list[DeadLetter]:
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


def replay_headers(headers: dict[str, Any], user_id: str | None, own_user: str) -> dict[str, Any]:
    """The headers a replay of a dead letter travels with.

    The dead letter's own, without the broker's and without any copied
    ``x-edoc-replay-of-user``: that header is written from the broker's record of the sender,
    the dead letter's ``user_id`` (``""``, anonymous, when it had none). Only a dead letter under
    ``own_user`` -- a replay this agency made before -- keeps the publisher that replay recorded.
    """
    kept = {k: v for k, v in headers.items()
            if not k.startswith(BROKER_HEADERS) and k != REPLAYED_USER_HEADER}
    recorded = headers.get(REPLAYED_USER_HEADER)
    if user_id == own_user and isinstance(recorded, (str, bytes)):
        origin = recorded.decode("utf-8", "replace") if isinstance(recorded, bytes) else recorded
    else:
        origin = user_id or ANONYMOUS_PUBLISHER
    kept[REPLAYED_USER_HEADER] = origin
    return kept


def replay_dead_letter(
    url: str | Endpoint, topology: Topology, organ_id: str, message_id: str, user_id: str,
    *, scan_limit: int = 10_000,
) -> bool:
    """Move the first dead letter with ``message_id`` back to the agency's queue; False if absent.

    The message is republished (confirmed) before its dead copy is acked, so a failure leaves it
    in the dead queue. It goes out under ``user_id``, the agency's own broker user (RabbitMQ
    insists), with the original publisher in ``x-edoc-replay-of-user`` as the broker recorded
    it (:func:`replay_headers`): the agency's node judges the original publisher, and a message
    that had no ``user_id`` stays anonymous.
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
            headers = replay_headers(dict(properties.headers or {}), properties.user_id, user_id)
            replay = pika.BasicProperties(
                content_type=properties.content_type, delivery_mode=pika.DeliveryMode.Persistent,
                message_id=properties.message_id, type=properties.type, headers=headers,
                user_id=user_id, timestamp=int(time.time()), app_id=APP_ID)
            try:
                channel.basic_publish(topology.exchange, organ_id, body, properties=replay,
                                      mandatory=True)
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                raise BrokerUnavailable(f"replay of {message_id} not accepted: {exc!r}",
                                        code=ErrorCode.BROKER_REPLAY_FAILED, agency=organ_id,
                                        package_id=message_id) from exc
            channel.basic_ack(method.delivery_tag)
            return True
    return False
