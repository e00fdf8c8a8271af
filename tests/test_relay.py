"""The relay: outbox rows handed to the Link and the broker's answers recorded."""

from __future__ import annotations

import time

from conftest import Axis, build_edxml_document

from edoc_axis.node.node import Node
from edoc_axis.node.relay import NACK_RETRY_SECONDS
from edoc_axis.transport.message import Confirmation

G22, H41 = "000.00.00.G22", "000.00.00.H41"


def test_a_nacked_row_stays_pending_and_waits_before_it_is_published_again(axis: Axis) -> None:
    """A nack (the recipient's queue is full) keeps the row pending; it is handed out again
    only after a backoff that doubles with each nack, never in a tight loop."""
    node = Node.from_settings(axis.settings(G22))
    try:
        result = node.submit(build_edxml_document(G22, H41))
        [message] = node.fetch_outgoing(10)
        nack = Confirmation(message.token, ok=False, code="BROKER_NACK", reason="queue full")
        nacked_at = time.monotonic()
        node.on_confirmed([nack])
        assert node.fetch_outgoing(10) == []
        assert node.store.outbox_counts()["pending"] == 1
        while not (again := node.fetch_outgoing(10)):
            assert time.monotonic() - nacked_at < 5 * NACK_RETRY_SECONDS, "never retried"
            time.sleep(0.02)
        assert time.monotonic() - nacked_at >= NACK_RETRY_SECONDS
        assert [m.token for m in again] == [message.token]
        nacked_at = time.monotonic()
        node.on_confirmed([nack])
        while not node.fetch_outgoing(10):
            assert time.monotonic() - nacked_at < 10 * NACK_RETRY_SECONDS, "never retried"
            time.sleep(0.02)
        assert time.monotonic() - nacked_at >= 2 * NACK_RETRY_SECONDS
        assert {d.state for d in node.store.deliveries(result.document_id)} == {"queued"}
    finally:
        node.close()
