"""The delivery state machine, pure: which state a status code or a broker outcome moves a
delivery (one sent document, one recipient) to, and when a status is only a repeat.

ARCHITECTURE "States of a delivery": ``queued -> sent -> arrived (01) -> accepted (03) ->
assigned (04) -> processing (05) -> completed (06)``, or ``rejected (02)``, ``failed``; take-back
``13 -> 15 | 16``. A state only moves forward (statuses may overtake each other on the wire:
a 01 often lands before the broker's confirm), but every status the recipient sends is kept in
the delivery's history, except an exact repeat of a code that is not repeatable. No store, no
I/O: the node reads the delivery and its history, asks here, and writes what it is told.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

# Delivery state reached by each status code, and the order states may only move forward in.
STATE_BY_CODE = {
    "01": "arrived", "02": "rejected", "03": "accepted", "04": "assigned", "05": "processing",
    "06": "completed", "13": "recall_requested", "15": "recalled", "16": "recall_refused",
}
STATE_RANK = {
    "queued": 0, "sent": 1, "failed": 1, "arrived": 2, "rejected": 3, "accepted": 3,
    "assigned": 4, "processing": 5, "completed": 6, "recall_requested": 7, "recalled": 8,
    "recall_refused": 8,
}
# The codes a clerk may set: a recipient's answers to the sender, and the sender's take-back.
# 01 is no clerk's to set: the node answers it itself when a document is stored.
RECIPIENT_CODES = frozenset({"02", "03", "04", "05", "06", "15", "16"})
SENDER_CODES = frozenset({"13"})
# Codes that may be sent and recorded again (a document can be "being processed" many times).
REPEATABLE_CODES = frozenset({"05"})

Side = Literal["sender", "recipient"]


@dataclass(frozen=True, slots=True)
class Transition:
    """What one status does to a delivery.

    ``repeat``: the history already holds this code and it is not repeatable: record nothing.
    Otherwise ``state`` joins the history, and the delivery's state becomes ``state`` when
    ``moves`` (a status that arrives after a later one is kept in the history only).
    """

    state: str
    repeat: bool = False
    moves: bool = False


def side(code: str) -> Side | None:
    """Who sends status ``code`` about a document: its sender (13) or a recipient (01-06, 15,
    16); None for a code that is no status of the standard."""
    if code in SENDER_CODES:
        return "sender"
    return "recipient" if code in STATE_BY_CODE else None


def on_status(current: str, code: str, history: Collection[str] = ()) -> Transition:
    """The transition of a delivery in state ``current`` on status ``code``, given the status
    codes already in its ``history``. Raises ValueError for a code that is no status."""
    state = STATE_BY_CODE.get(code)
    if state is None:
        raise ValueError(f"unknown status code {code!r}")
    if code in history and code not in REPEATABLE_CODES:
        return Transition(state, repeat=True)
    return Transition(state, moves=STATE_RANK[state] >= STATE_RANK[current])


def on_published(current: str, ok: bool) -> str | None:
    """The state the broker's outcome moves a delivery in state ``current`` to: ``sent`` when
    confirmed, ``failed`` when refused for good; None when the delivery is already past it
    (the recipient's 01 can be recorded before the broker's confirm)."""
    state = "sent" if ok else "failed"
    return state if STATE_RANK[current] < STATE_RANK[state] else None
