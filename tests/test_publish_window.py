"""The Link's publish window without a broker: delivery tags to outbox tokens, settlement,
returns, and republication order after a lost channel."""

from __future__ import annotations

from edoc_axis.transport.message import OutgoingMessage
from edoc_axis.transport.window import PublishWindow


def message(token: int, routing_key: str = "000.00.00.H41") -> OutgoingMessage:
    """An outgoing message whose message id is derived from its token."""
    return OutgoingMessage(token, f"pkg-{token}", routing_key, b"<x/>", "edoc")


def test_multiple_confirm_settles_every_earlier_tag_and_frees_the_tokens() -> None:
    """A ``multiple`` ack settles all tags up to it, oldest first; a single one just its own."""
    window = PublishWindow(4)
    for token in (10, 11, 12, 13):
        window.published(message(token))
    assert window.free() == 0 and window.holds(12)
    assert [f.message.token for f in window.settle(3, multiple=True)] == [10, 11, 12]
    assert not window.holds(10) and window.holds(13) and window.unconfirmed == 1
    assert window.settle(3, multiple=False) == []
    assert [f.message.token for f in window.settle(4, multiple=False)] == [13]
    assert window.held == 0 and window.free() == 4


def test_lost_channel_republishes_in_order_within_the_window() -> None:
    """Unconfirmed messages go back ahead of those still retained, keep their order, stay held,
    and come out only as the window has room; delivery tags restart on the new channel."""
    window = PublishWindow(2)
    window.published(message(1))
    window.published(message(2))
    window.channel_lost()
    assert window.retained == 2 and window.held == 2 and window.unconfirmed == 0
    window.channel_opened()
    first = window.next_retained()
    assert first is not None and first.token == 1
    window.published(first)  # tag 1 of the new channel; 2 is still retained
    window.channel_lost()
    window.channel_opened()
    order = []
    while (retained := window.next_retained()) is not None:
        window.published(retained)
        order.append(retained.token)
    assert order == [1, 2] and window.free() == 0 and window.held == 2
    assert [f.message.token for f in window.settle(1, multiple=False)] == [1]


def test_return_marks_the_oldest_matching_flight_once() -> None:
    """basic.return (no delivery tag) marks the oldest unmarked flight with that routing key and
    message id; a return matching nothing is reported as such."""
    window = PublishWindow(8)
    window.published(message(1, "A"))
    window.published(message(1, "B"))
    window.published(message(1, "B"))
    assert window.mark_returned("B", "pkg-1", "unroutable")
    assert window.mark_returned("B", "pkg-1", "unroutable again")
    assert not window.mark_returned("B", "pkg-1", "a third")
    assert not window.mark_returned("C", "pkg-1", "nobody")
    reasons = [f.returned_reason for f in window.settle(3, multiple=True)]
    assert reasons == [None, "unroutable", "unroutable again"]


def test_a_token_refused_before_publishing_is_released() -> None:
    """``release`` forgets a token that never reached the broker (too large)."""
    window = PublishWindow(1)
    window.published(message(5))
    window.release(5)
    assert not window.holds(5) and window.unconfirmed == 1
