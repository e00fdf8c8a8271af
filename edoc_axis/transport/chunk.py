"""Chunk messages: one large package cut into confirmed pieces, and the header each carries.

A package over ``broker.chunk_bytes`` travels as ``count`` messages of type ``chunk``. Each names
its transfer (the package's message id), its index, the count, its own SHA-256, and the whole
package's size and SHA-256; the package's own type (``edoc`` / ``status``) and headers ride along
so the recipient rebuilds the one message the single-message path would have carried. Pure
values, no pika: the node splits (node.chunk_send) and assembles (node.chunk_receive).

A chunk's publish token is derived from its outbox row's token (a negative number, so it never
collides with a row id): :func:`chunk_token` / :func:`row_of` convert without any table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edoc_axis.transport.message import OutgoingMessage

CHUNK_TYPE = "chunk"
MIB = 1024 * 1024
DEFAULT_CHUNK_BYTES = 4 * MIB
MIN_CHUNK_BYTES = 64 * 1024
MAX_CHUNK_BYTES = 15 * MIB  # under RabbitMQ 4.x's 16 MiB default, with room for properties
_INDEX_BITS = 20  # chunks per transfer < 2**20 (200 MiB / 64 KiB = 3200)

TRANSFER = "edoc-transfer"
INDEX = "edoc-chunk-index"
COUNT = "edoc-chunk-count"
CHUNK_SHA256 = "edoc-chunk-sha256"
TOTAL_SIZE = "edoc-total-size"
TOTAL_SHA256 = "edoc-total-sha256"
INNER_TYPE = "edoc-type"
CHUNK_HEADERS = (TRANSFER, INDEX, COUNT, CHUNK_SHA256, TOTAL_SIZE, TOTAL_SHA256, INNER_TYPE)


@dataclass(frozen=True, slots=True)
class ChunkHeader:
    """What one chunk message says about itself and its transfer."""

    transfer: str
    index: int
    count: int
    sha256: str
    total_size: int
    total_sha256: str
    inner_type: str

    @classmethod
    def read(cls, headers: Mapping[str, Any]) -> ChunkHeader:
        """The chunk header of a message's AMQP headers; ValueError when absent or inconsistent."""
        def text(name: str) -> str:
            value = headers.get(name)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if not isinstance(value, str) or not value:
                raise ValueError(f"chunk header {name} missing")
            return value

        def number(name: str) -> int:
            value = text(name)
            if not value.isascii() or not value.isdigit() or len(value) > 12:
                raise ValueError(f"chunk header {name} is not a count")
            return int(value)

        header = cls(text(TRANSFER), number(INDEX), number(COUNT), text(CHUNK_SHA256).lower(),
                     number(TOTAL_SIZE), text(TOTAL_SHA256).lower(), text(INNER_TYPE))
        if not 0 <= header.index < header.count or header.count >= 1 << _INDEX_BITS:
            raise ValueError(f"chunk {header.index} of {header.count} is out of range")
        if header.inner_type not in ("edoc", "status"):
            raise ValueError(f"chunk of a {header.inner_type!r} package")
        return header


def chunk_count(size: int, chunk_bytes: int) -> int:
    """How many chunks a body of ``size`` bytes travels in."""
    return max(1, -(-size // chunk_bytes))


def chunk_token(row_token: int, index: int) -> int:
    """The publish token of chunk ``index`` of the outbox row ``row_token`` (negative)."""
    return -((row_token << _INDEX_BITS) | index) - 1


def row_of(token: int) -> tuple[int, int] | None:
    """(row token, chunk index) of a chunk token; None for an ordinary (row) token."""
    if token >= 0:
        return None
    value = -token - 1
    return value >> _INDEX_BITS, value & ((1 << _INDEX_BITS) - 1)


def split(message: OutgoingMessage, chunk_bytes: int) -> list[OutgoingMessage]:
    """``message`` as its chunk messages, in order (each a slice of the body)."""
    plan = ChunkPlan(message, chunk_bytes)
    return [plan.chunk(index) for index in range(plan.count)]


class ChunkPlan:
    """How one message is cut: its chunks made one at a time, when they are to be published
    (the whole SHA-256 is computed once; a chunk's bytes exist only while it is in flight)."""

    def __init__(self, message: OutgoingMessage, chunk_bytes: int) -> None:
        self.message = message
        self.chunk_bytes = chunk_bytes
        self.count = chunk_count(len(message.body), chunk_bytes)
        self.total_sha256 = hashlib.sha256(message.body).hexdigest()

    def chunk(self, index: int) -> OutgoingMessage:
        """Chunk message ``index``."""
        message, size = self.message, self.chunk_bytes
        piece = message.body[index * size:(index + 1) * size]
        headers = dict(message.headers)
        headers.update({
            TRANSFER: message.message_id, INDEX: str(index), COUNT: str(self.count),
            CHUNK_SHA256: hashlib.sha256(piece).hexdigest(),
            TOTAL_SIZE: str(len(message.body)), TOTAL_SHA256: self.total_sha256,
            INNER_TYPE: message.type})
        return OutgoingMessage(
            token=chunk_token(message.token, index),
            message_id=f"{message.message_id}.{index}", routing_key=message.routing_key,
            body=piece, type=CHUNK_TYPE, headers=headers)
