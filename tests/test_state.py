"""The delivery state machine, without a broker or a store."""

from __future__ import annotations

import pytest

from edoc_axis.edxml.model import STATUS_CODES
from edoc_axis.node import state
from edoc_axis.node.state import (
    RECIPIENT_CODES,
    SENDER_CODES,
    STATE_BY_CODE,
    STATE_RANK,
    Transition,
    on_published,
    on_status,
)

# The happy path of ARCHITECTURE "States of a delivery", one status after another.
FORWARD = [("01", "arrived"), ("03", "accepted"), ("04", "assigned"), ("05", "processing"),
           ("06", "completed"), ("13", "recall_requested"), ("15", "recalled")]


def test_every_status_of_the_standard_has_a_state_and_a_side() -> None:
    """Each status code of QCVN 102 reaches a ranked state and is sent by the side it names."""
    assert set(STATE_BY_CODE) == set(STATUS_CODES)
    for code, (sender_or_recipient, _) in STATUS_CODES.items():
        assert STATE_BY_CODE[code] in STATE_RANK
        assert state.side(code) == sender_or_recipient
    assert state.side("07") is None
    assert set(STATUS_CODES) - {"01"} == RECIPIENT_CODES | SENDER_CODES


def test_statuses_in_order_move_the_delivery_forward() -> None:
    """From ``sent``, each status of the forward path moves the delivery to its state."""
    current = "sent"
    history: list[str] = []
    for code, expected in FORWARD:
        assert on_status(current, code, history) == Transition(expected, moves=True)
        current = expected
        history.append(code)


def test_a_status_that_overtakes_another_is_kept_but_never_moves_back() -> None:
    """A 01 landing after a 03 joins the history; the state stays ``accepted``."""
    assert on_status("accepted", "01", ["03"]) == Transition("arrived", moves=False)
    assert on_status("completed", "04", ["01", "03", "06"]) == Transition("assigned")


def test_a_status_before_the_broker_confirm_moves_the_delivery() -> None:
    """A 01 may be recorded while the delivery is still ``queued`` (confirm not yet seen)."""
    assert on_status("queued", "01") == Transition("arrived", moves=True)


def test_equal_rank_states_replace_each_other() -> None:
    """Accepted and rejected rank alike: the later status wins, as do recalled and refused."""
    assert on_status("accepted", "02", ["01", "03"]).moves
    assert on_status("rejected", "03", ["01", "02"]).moves
    assert on_status("recalled", "16", ["13", "15"]).moves


def test_a_repeated_status_is_a_repeat_except_processing() -> None:
    """A code already in the history is a repeat (record nothing); 05 may come again."""
    assert on_status("arrived", "01", ["01"]) == Transition("arrived", repeat=True)
    assert on_status("completed", "03", ["01", "03", "06"]).repeat
    again = on_status("processing", "05", ["01", "03", "05"])
    assert again == Transition("processing", moves=True)


def test_an_unknown_code_is_refused() -> None:
    """A code that is no status of the standard is refused, never mapped to a state."""
    with pytest.raises(ValueError, match="'07'"):
        on_status("sent", "07")


def test_broker_outcomes_move_only_a_delivery_not_yet_past_them() -> None:
    """Confirmed: queued -> sent; refused: queued -> failed; after a 01 neither changes it."""
    assert on_published("queued", ok=True) == "sent"
    assert on_published("queued", ok=False) == "failed"
    assert on_published("sent", ok=True) is None
    assert on_published("arrived", ok=True) is None
    assert on_published("arrived", ok=False) is None
    assert on_published("failed", ok=True) is None
