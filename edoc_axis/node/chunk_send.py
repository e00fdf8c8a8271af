"""Sending a large package as chunks: one outbox row expands into N confirmed publishes.

The relay hands one message per outbox row; a body over ``broker.chunk_bytes`` is cut into chunk
messages (transport.chunk) whose tokens map back to the row. The row is settled only when all
its chunks are: confirmed when every chunk is confirmed, failed when one is refused for good
(unroutable), pending again (the relay's backoff) when one is nacked. A row fetched again
publishes only the chunks not yet confirmed. At most ``MAX_INFLIGHT`` chunks of a row are
in flight at once, each cut from the body only when handed out: the sender holds the body and a
few chunks, not a second copy of the package. State is per process: after a restart of the
sender every chunk is published again, and the recipient ignores those it already recorded.
Runs in the Link's thread only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from edoc_axis.transport.chunk import ChunkPlan, row_of
from edoc_axis.transport.message import Confirmation, OutgoingMessage

MAX_INFLIGHT = 8  # chunks of one row published and not yet confirmed


@dataclass(slots=True)
class _Transfer:
    """The chunks of one outbox row, and how far their publishing got."""

    plan: ChunkPlan
    due: deque[int] = field(default_factory=deque)  # indexes to hand to the Link
    inflight: set[int] = field(default_factory=set)
    confirmed: set[int] = field(default_factory=set)
    failure: Confirmation | None = None  # the first chunk failure, settled once none is in flight


class ChunkSender:
    """Expands large outgoing messages into chunks and folds their confirmations back."""

    def __init__(self, chunk_bytes: int) -> None:
        self.chunk_bytes = chunk_bytes
        self._transfers: dict[int, _Transfer] = {}

    def due(self, limit: int) -> list[OutgoingMessage]:
        """Up to ``limit`` chunks of transfers under way, not yet handed to the Link."""
        out: list[OutgoingMessage] = []
        for transfer in self._transfers.values():
            while transfer.due and len(out) < limit and len(transfer.inflight) < MAX_INFLIGHT:
                index = transfer.due.popleft()
                transfer.inflight.add(index)
                out.append(transfer.plan.chunk(index))
            if len(out) >= limit:
                break
        return out

    def expand(self, messages: list[OutgoingMessage], limit: int) -> list[OutgoingMessage]:
        """``messages`` with every body over ``chunk_bytes`` replaced by its chunks not yet
        confirmed; at most ``limit`` in all now, the rest handed by later :meth:`due` calls."""
        out: list[OutgoingMessage] = []
        for message in messages:
            if len(message.body) <= self.chunk_bytes:
                out.append(message)
                continue
            transfer = self._transfers.get(message.token)
            if transfer is None:
                transfer = self._transfers[message.token] = _Transfer(
                    ChunkPlan(message, self.chunk_bytes))
            transfer.failure = None
            transfer.due = deque(i for i in range(transfer.plan.count)
                                 if i not in transfer.confirmed and i not in transfer.inflight)
        return out + self.due(max(0, limit - len(out)))

    def settle(self, confirmations: list[Confirmation]) -> list[Confirmation]:
        """The confirmations the relay should see: row tokens as they are, and for chunks one
        confirmation of their row once all its chunks are settled (or one failed for good and
        none is left in flight)."""
        out: list[Confirmation] = []
        for conf in confirmations:
            place = row_of(conf.token)
            if place is None:
                out.append(conf)
                continue
            row, index = place
            transfer = self._transfers.get(row)
            if transfer is None:
                continue
            transfer.inflight.discard(index)
            if conf.ok:
                transfer.confirmed.add(index)
            elif transfer.failure is None or not conf.retryable:
                # Stop handing this row's chunks: a nack retries the row (after the relay's
                # backoff) with the chunks still unconfirmed; a permanent failure fails it.
                if transfer.failure is None or transfer.failure.retryable:
                    transfer.failure = conf
                transfer.due.clear()
            if transfer.inflight or transfer.due:
                continue
            if len(transfer.confirmed) == transfer.plan.count:
                del self._transfers[row]
                out.append(Confirmation(row, ok=True))
            elif transfer.failure is not None:
                failure = transfer.failure
                if not failure.retryable:
                    del self._transfers[row]
                out.append(Confirmation(row, ok=False, returned=failure.returned,
                                        reason=failure.reason, code=failure.code))
        return out
