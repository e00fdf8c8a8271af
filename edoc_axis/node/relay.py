"""The relay: the outbox handed to the transport Link, and the broker's answers recorded.

Outbox rows stay pending until the broker confirms them: confirmed -> the row is done and a
document's delivery becomes ``sent``; returned or too large -> ``failed``; a nack (the
recipient's queue is full, or the broker could not take it) -> pending again, published again
after a backoff that doubles with each nack of the row. Both callbacks run in the Link's thread.
"""

from __future__ import annotations

import time

from edoc_axis.log import get_logger
from edoc_axis.node import state
from edoc_axis.node.context import Context
from edoc_axis.store.records import Event
from edoc_axis.transport.message import Confirmation, OutgoingMessage

log = get_logger(__name__)

# `edoc-axis send` in another process cannot wake the relay: it polls the outbox (one indexed
# query) this often, which bounds the extra latency of a cross-process submission.
OUTBOX_POLL_SECONDS = 0.02
# A nacked row waits this long before it is published again, doubling per nack up to the max:
# a full queue is not hammered 50 times a second.
NACK_RETRY_SECONDS = 0.5
NACK_RETRY_MAX_SECONDS = 30.0


class Relay:
    """Feeds the Link from the outbox and settles what it published."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._handed: set[int] = set()  # outbox tokens handed to the Link, not yet settled
        self._nacked: dict[int, tuple[int, float]] = {}  # token -> (nacks, not before)

    def fetch_outgoing(self, limit: int) -> list[OutgoingMessage]:
        """Up to ``limit`` pending outbox messages not already handed to the Link (nor waiting
        out a nack's backoff)."""
        now = time.monotonic()
        waiting = {token for token, (_, due) in self._nacked.items() if due > now}
        items = self.ctx.store.pending_outbox(limit, exclude=self._handed | waiting)
        self._handed.update(item.token for item in items)
        return [
            OutgoingMessage(
                token=item.token, message_id=item.message_id, routing_key=item.recipient,
                body=item.body, type=item.kind,
                headers={"edoc-from": item.sender, "edoc-to": item.recipient,
                         "edoc-document-id": item.document_id, "edoc-sha256": item.sha256})
            for item in items
        ]

    def on_confirmed(self, confirmations: list[Confirmation]) -> None:
        """Record broker outcomes: confirmed -> ``sent``; returned/too large -> ``failed``."""
        tokens = [c.token for c in confirmations]
        try:
            with self.ctx.store.transaction() as txn:
                targets = {t[0]: t for t in txn.outbox_targets(tokens)}
                for conf in confirmations:
                    target = targets.get(conf.token)
                    if target is None:
                        continue
                    _, kind, recipient, row, package_id, document_id, digest = target
                    if conf.ok:
                        txn.finish_outbox(conf.token, "confirmed", None)
                    elif conf.retryable:
                        txn.finish_outbox(conf.token, "pending", conf.reason)
                        self._back_off(conf.token, recipient)
                        continue
                    else:
                        txn.finish_outbox(conf.token, "failed", conf.reason)
                    # DocumentId and digest named here: the audit need not look the package up.
                    txn.emit(Event("published" if conf.ok else "publish_failed", package_id,
                                   document_id, recipient, digest, {"reason": conf.reason or ""}))
                    if kind != "edoc":
                        continue
                    for delivery in txn.deliveries_of(row):
                        if delivery.recipient != recipient:
                            continue
                        new_state = state.on_published(delivery.state, conf.ok)
                        if new_state is not None:
                            reason = None if conf.ok else f"{conf.code}: {conf.reason}"
                            txn.set_delivery_state(delivery.id, new_state, status_code=None,
                                                   reason=reason)
                            txn.add_history(delivery.id, new_state, description=reason)
        finally:
            # Settled or not recorded: either way the Link no longer holds these tokens, and
            # rows still pending are fetched (and published) again.
            self._handed.difference_update(tokens)
            for conf in confirmations:
                if not conf.retryable:
                    self._nacked.pop(conf.token, None)

    def _back_off(self, token: int, recipient: str) -> None:
        nacks = self._nacked.get(token, (0, 0.0))[0] + 1
        delay = min(NACK_RETRY_MAX_SECONDS, NACK_RETRY_SECONDS * 2.0 ** (nacks - 1))
        self._nacked[token] = (nacks, time.monotonic() + delay)
        log.warning("publish_nacked", recipient=recipient, nacks=nacks, retry_in=delay,
                    hint="the recipient's queue is full or the broker is short of resources")
