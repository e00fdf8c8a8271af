"""The broker layout of the axis: exchange and queue names, queue arguments, permissions, limits.

Pure data, no connection: provisioning it (RabbitMQ definitions, ``rabbitmqctl``, declares) is
:mod:`edoc_axis.transport.provision`; using it is the :class:`~edoc_axis.transport.link.Link`.
Everything here must work on RabbitMQ 3.10 and 4.x alike: durable quorum queues only, an
explicit ``x-delivery-limit`` everywhere (4.x otherwise defaults to 20), no classic mirroring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlparse

from edoc_axis.errors import PackageTooLarge

# RabbitMQ 4.x refuses messages above 16 MiB by default; 3.10 allows more, we never rely on it.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

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

    def queue_for(self, organ_id: str) -> str:
        """The agency's inbound quorum queue, e.g. ``edoc.in.000.00.00.H01``."""
        return f"{self.queue_prefix}{organ_id}"

    def dead_queue_for(self, organ_id: str) -> str:
        """The agency's dead-letter queue, fed by :attr:`dead_exchange` with the OrganId key."""
        return f"{self.dead_prefix}{organ_id}"

    def queue_arguments(self) -> dict[str, Any]:
        """Arguments of an agency's inbound queue (must match exactly on every declaration)."""
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_exchange,
        }

    @staticmethod
    def dead_queue_arguments() -> dict[str, Any]:
        """Arguments of an agency's dead-letter queue (quorum, no further dead-lettering)."""
        return {"x-queue-type": "quorum", "x-delivery-limit": DEAD_QUEUE_DELIVERY_LIMIT}

    def check_size(self, body: bytes, *, package_id: str | None = None) -> None:
        """Refuse a message body the broker would refuse (4.x: 16 MiB) before publishing it."""
        if len(body) > self.max_message_bytes:
            raise PackageTooLarge(
                f"message of {len(body)} bytes exceeds the broker limit of "
                f"{self.max_message_bytes} bytes",
                code="PACKAGE_TOO_LARGE",
                package_id=package_id,
            )


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
