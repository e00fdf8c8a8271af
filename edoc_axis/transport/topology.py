"""The broker layout of the axis: exchange and queue names, queue arguments, permissions, limits.

Pure data, no connection: provisioning it (RabbitMQ definitions, ``rabbitmqctl``, declares) is
:mod:`edoc_axis.transport.provision`; using it is the :class:`~edoc_axis.transport.link.Link`.
Everything here must work on RabbitMQ 3.10 and 4.x alike: durable quorum queues only, an
explicit ``x-delivery-limit`` everywhere (4.x otherwise defaults to 20), no classic mirroring.

Bounds (issue 11, hole 6): every queue has a length and a byte bound. An agency's inbound queue
refuses more (``reject-publish``: the publisher's confirm is a nack, its node keeps the message
and publishes it again later); its dead-letter queue drops its oldest (``drop-head``: a flood
of refused messages cannot grow it, and every refusal is also recorded in the node's store).
Quorum queues check the bound as they enqueue, so a queue may pass it by a message or so.

Queue names (hole 7): RabbitMQ answers a passive ``queue.declare`` (depth, consumers) without
checking any permission, so any agency can read the depth of a queue whose name it knows. With
a ``queue_token`` -- a secret the broker administrator derives per agency (:func:`queue_token`)
and gives only to that agency -- the names end in it, and nobody else can name them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlparse

from edoc_axis.errors import ErrorCode, PackageTooLarge

MIB = 1024 * 1024
# RabbitMQ 4.x refuses messages above 16 MiB by default; 3.10 allows more, we never rely on it.
MAX_MESSAGE_BYTES = 16 * MIB
# Default bounds: an inbound queue holds days of a busy agency's traffic, a dead-letter queue
# what an operator can still look through.
QUEUE_MAX_LENGTH = 10_000
QUEUE_MAX_BYTES = 1024 * MIB
DEAD_QUEUE_MAX_LENGTH = 1_000
DEAD_QUEUE_MAX_BYTES = 128 * MIB
# A queue token: 120 bits of HMAC-SHA256, base32, lower case (a valid part of a queue name).
QUEUE_TOKEN_BYTES = 15

# Dead-letter queues are only peeked and replayed, never rejected on purpose; a huge limit keeps
# 4.x's default of 20 returns from silently dropping a dead letter that was peeked many times.
DEAD_QUEUE_DELIVERY_LIMIT = 1_000_000

PERMISSIONS_CONFIGURE_NONE = "^$"


@dataclass(frozen=True, slots=True)
class Topology:
    """Names and limits of the axis on the broker (the same for every node of one axis)."""

    exchange: str = "edoc.axis"
    dead_exchange: str = "edoc.dlx"
    queue_prefix: str = "edoc.in."
    dead_prefix: str = "edoc.dead."
    delivery_limit: int = 5
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_length: int = QUEUE_MAX_LENGTH
    max_bytes: int = QUEUE_MAX_BYTES
    dead_max_length: int = DEAD_QUEUE_MAX_LENGTH
    dead_max_bytes: int = DEAD_QUEUE_MAX_BYTES
    # The queue names' secret suffix (one agency's; "" for the guessable names of a dev bench).
    queue_token: str = ""

    def queue_for(self, organ_id: str) -> str:
        """The agency's inbound quorum queue, e.g. ``edoc.in.000.00.00.H01`` (plus ``.<token>``)."""
        return f"{self.queue_prefix}{organ_id}{self._suffix()}"

    def dead_queue_for(self, organ_id: str) -> str:
        """The agency's dead-letter queue, fed by :attr:`dead_exchange` with the OrganId key."""
        return f"{self.dead_prefix}{organ_id}{self._suffix()}"

    def _suffix(self) -> str:
        return f".{self.queue_token}" if self.queue_token else ""

    def queue_arguments(self) -> dict[str, Any]:
        """Arguments of an agency's inbound queue (must match exactly on every declaration)."""
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_exchange,
            "x-max-length": self.max_length,
            "x-max-length-bytes": self.max_bytes,
            "x-overflow": "reject-publish",
        }

    def dead_queue_arguments(self) -> dict[str, Any]:
        """Arguments of an agency's dead-letter queue (quorum, no further dead-lettering)."""
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": DEAD_QUEUE_DELIVERY_LIMIT,
            "x-max-length": self.dead_max_length,
            "x-max-length-bytes": self.dead_max_bytes,
            "x-overflow": "drop-head",
        }

    def bound_policies(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(name, pattern, definition) of the policies bounding every axis queue, including
        queues declared before they had bounds (a redeclaration never changes arguments; a
        policy applies at once). Where a queue has both, the smaller bound holds."""
        return [
            ("edoc-inbound-bounds", f"^{re.escape(self.queue_prefix)}",
             {"max-length": self.max_length, "max-length-bytes": self.max_bytes,
              "overflow": "reject-publish"}),
            ("edoc-dead-bounds", f"^{re.escape(self.dead_prefix)}",
             {"max-length": self.dead_max_length, "max-length-bytes": self.dead_max_bytes,
              "overflow": "drop-head"}),
        ]

    def check_size(self, body: bytes, *, package_id: str | None = None) -> None:
        """Refuse a message body the broker would refuse (4.x: 16 MiB) before publishing it."""
        self.check_size_of(len(body), package_id=package_id)

    def check_size_of(self, size: int, *, package_id: str | None = None) -> None:
        """Refuse a message body of ``size`` bytes the broker would refuse
        (``PACKAGE_TOO_LARGE_FOR_BROKER``) before anything is parsed or published."""
        if size > self.max_message_bytes:
            raise PackageTooLarge(
                f"message of {size} bytes exceeds the broker limit of "
                f"{self.max_message_bytes} bytes (chunked transfer of large packages is not "
                "there yet)",
                code=ErrorCode.PACKAGE_TOO_LARGE_FOR_BROKER,
                package_id=package_id,
            )


def queue_token(key: bytes, organ_id: str) -> str:
    """The queue token of ``organ_id`` under the administrator's naming ``key`` (stable: the
    same key gives the same names on every provisioning)."""
    digest = hmac.new(key, b"edoc-axis queue name\x00" + organ_id.encode("utf-8"),
                      hashlib.sha256).digest()
    return base64.b32encode(digest[:QUEUE_TOKEN_BYTES]).decode("ascii").lower()


def read_pattern(topology: Topology, organ_id: str) -> str:
    """The read-permission regex of one agency: its own inbound and dead-letter queues only."""
    return (
        f"^({re.escape(topology.queue_for(organ_id))}|"
        f"{re.escape(topology.dead_queue_for(organ_id))})$"
    )


def write_pattern(topology: Topology) -> str:
    """The write-permission regex of every agency: the axis exchange only."""
    return f"^{re.escape(topology.exchange)}$"


def vhost_of(url: str) -> str:
    """The vhost an AMQP URL names (``/`` when the path is empty)."""
    path = urlparse(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def url_with_vhost(url: str, vhost: str) -> str:
    """The same AMQP URL pointing at another vhost."""
    return urlparse(url)._replace(path="/" + quote(vhost, safe="")).geturl()
