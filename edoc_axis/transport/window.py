"""The publish window of a Link: what it published and the broker has not yet confirmed.

Publisher confirms name a delivery tag (1, 2, ... per channel, ``multiple`` covering every
earlier tag); the node thinks in outbox tokens. A :class:`PublishWindow` maps one to the other,
keeps what was in flight when a channel died for republication first (in the original order),
and remembers every token it holds so a token handed out again is not published twice. Pure
bookkeeping, no pika: the Link's thread owns it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from edoc_axis.transport.message import OutgoingMessage


@dataclass(slots=True)
class Flight:
    """One published message awaiting its confirmation; ``returned_reason`` once returned."""

    message: OutgoingMessage
    returned_reason: str | None = None


class PublishWindow:
    """Up to ``size`` unconfirmed messages on the current channel, plus those to republish."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._inflight: OrderedDict[int, Flight] = OrderedDict()
        self._retained: deque[OutgoingMessage] = deque()
        self._held: set[int] = set()  # tokens in flight or retained for republication
        self._next_tag = 0

    @property
    def unconfirmed(self) -> int:
        """Messages published on the current channel and not yet confirmed."""
        return len(self._inflight)

    @property
    def held(self) -> int:
        """Tokens held: unconfirmed or retained for republication."""
        return len(self._held)

    @property
    def retained(self) -> int:
        """Messages waiting to be republished (they go before any fresh outbox row)."""
        return len(self._retained)

    def free(self) -> int:
        """How many more messages the window takes now."""
        return self.size - len(self._inflight)

    def holds(self, token: int) -> bool:
        """Whether ``token`` is already unconfirmed or retained (do not publish it again)."""
        return token in self._held

    def next_retained(self) -> OutgoingMessage | None:
        """The oldest retained message when the window has room for it, else None."""
        if self._retained and len(self._inflight) < self.size:
            return self._retained.popleft()
        return None

    def published(self, message: OutgoingMessage) -> None:
        """Record a ``basic_publish`` on the current channel (it gets the next delivery tag)."""
        self._next_tag += 1
        self._inflight[self._next_tag] = Flight(message)
        self._held.add(message.token)

    def release(self, token: int) -> None:
        """Forget a token that was never published (refused before publishing)."""
        self._held.discard(token)

    def mark_returned(self, routing_key: str, message_id: str | None, reason: str) -> bool:
        """Mark the oldest unmarked flight with this routing key and message id as returned.

        ``basic.return`` precedes the confirmation of the same message, and carries no delivery
        tag. False when nothing matches.
        """
        for flight in self._inflight.values():
            message = flight.message
            if (flight.returned_reason is None and message.routing_key == routing_key
                    and message.message_id == message_id):
                flight.returned_reason = reason
                return True
        return False

    def settle(self, delivery_tag: int, multiple: bool) -> list[Flight]:
        """The flights one confirmation settles (all up to the tag when ``multiple``), oldest
        first; their tokens are no longer held."""
        settled: list[Flight] = []
        if multiple:
            while self._inflight and next(iter(self._inflight)) <= delivery_tag:
                settled.append(self._inflight.popitem(last=False)[1])
        else:
            flight = self._inflight.pop(delivery_tag, None)
            if flight is not None:
                settled.append(flight)
        for flight in settled:
            self._held.discard(flight.message.token)
        return settled

    def channel_opened(self) -> None:
        """A new channel numbers its delivery tags from 1 again."""
        self._next_tag = 0

    def channel_lost(self) -> None:
        """The channel died: its unconfirmed messages are retained, ahead of older retained."""
        if self._inflight:
            self._retained.extendleft(f.message for f in reversed(self._inflight.values()))
            self._inflight.clear()
