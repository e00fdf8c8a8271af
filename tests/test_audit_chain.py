"""The audit chain's entries: an unambiguous encoding bound to the node, a closed set of kinds."""

from __future__ import annotations

import datetime as dt

import pytest
from audit_samples import GENESIS, H41, T0

from edoc_axis.audit.chain import format_time, genesis_hash, next_entry
from edoc_axis.errors import EdocAxisError, ErrorCode


def test_entry_encoding_is_unambiguous_and_bound_to_the_node() -> None:
    """Moving a character between fields, or another node's genesis, changes the hash."""
    a = next_entry(None, kind="received", genesis=GENESIS, at=T0, package_id="ab",
                         document_id="c")
    b = next_entry(None, kind="received", genesis=GENESIS, at=T0, package_id="a",
                         document_id="bc")
    other = next_entry(None, kind="received", genesis=genesis_hash(H41), at=T0,
                             package_id="ab", document_id="c")
    assert len({a.entry_hash, b.entry_hash, other.entry_hash}) == 3
    assert a.seq == 1 and a.prev_hash == GENESIS and a.at.endswith(".000000Z")
    assert format_time(dt.datetime(2025, 3, 1, 15, 0, tzinfo=dt.timezone(
        dt.timedelta(hours=7)))) == "2025-03-01T08:00:00.000000Z"


def test_next_entry_refuses_unknown_kinds_and_bad_hashes() -> None:
    """Only the closed set of kinds and 64-hex digests get into the chain."""
    with pytest.raises(EdocAxisError) as err:
        next_entry(None, kind="deleted_quietly", genesis=GENESIS)
    assert err.value.code == ErrorCode.AUDIT_MALFORMED
    with pytest.raises(EdocAxisError):
        next_entry(None, kind="received", genesis=GENESIS, content_sha256="ABC")
