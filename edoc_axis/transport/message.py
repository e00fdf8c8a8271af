"""What travels over the broker, as plain values: messages out and in, confirmations, outcomes.

No pika here: the node builds and reads these without loading the AMQP client. The ``Link``
(:mod:`edoc_axis.transport.link`) turns them into pika calls and back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from edoc_axis.errors import ErrorCode

CONTENT_TYPE = "application/xml"
APP_ID = "edoc-axis"

# Who published a replayed dead letter, as the broker recorded it: the dead letter's user_id, or
# "" when it had none (anonymous). Written by every replay, which only the replaying agency's own
# user can publish; a node reads it only on messages under its own user_id (``publisher_of``).
REPLAYED_USER_HEADER = "x-edoc-replay-of-user"
ANONYMOUS_PUBLISHER = ""
# Quorum queues count deliveries here; the queue's delivery limit dead-letters past it.
DELIVERY_COUNT_HEADER = "x-delivery-count"
# Why and where a message died (a list, newest first), added by the broker on dead-lettering.
DEATH_HEADER = "x-death"
# Broker-managed headers (prefixes) that must not travel with a replayed dead letter.
BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")


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
    code: ErrorCode | None = None

    @property
    def retryable(self) -> bool:
        """True when publishing the same message again later may succeed."""
        return not self.ok and self.code == ErrorCode.BROKER_NACK


def publisher_of(message: IncomingMessage, own_user: str) -> str | None:
    """The broker user that published ``message``, or None when nobody can say (no user_id).

    The broker-verified ``user_id``; on a message under the node's own user, the publisher its
    own dead-letter replay recorded (the broker's user_id of the original, never a header the
    original carried). A replay of an anonymous message stays anonymous.
    """
    user = message.user_id
    if user and user == own_user:
        recorded = message.headers.get(REPLAYED_USER_HEADER)
        if isinstance(recorded, bytes):
            recorded = recorded.decode("utf-8", "replace")
        if isinstance(recorded, str):
            return recorded or None
    return user or None
