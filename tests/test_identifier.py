"""Tests of edxml.identifier: OrganIds (strict and lenient, level, parent), DocumentIds, dates
and timestamps in Vietnam time."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from edoc_axis.edxml.identifier import (
    VN_TZ,
    document_id_sender,
    format_date,
    format_timestamp,
    is_valid_organ_id,
    make_document_id,
    organ_level,
    organ_parent,
    parse_date,
    parse_timestamp,
)


def test_dates_and_timestamps() -> None:
    """yyyy/MM/dd and yyyy/MM/dd HH:mm:ss both ways; dd/MM/yyyy is named in the error."""
    assert format_date(date(2024, 3, 5)) == "2024/03/05"
    assert parse_date("2024/03/05") == date(2024, 3, 5)
    with pytest.raises(ValueError, match="dd/MM/yyyy"):
        parse_date("05/03/2024")
    with pytest.raises(ValueError, match="real calendar date"):
        parse_date("2024/02/30")
    moment = parse_timestamp("2024/03/05 09:15:00")
    assert moment.utcoffset() is not None and moment.utcoffset() == VN_TZ.utcoffset(None)
    assert format_timestamp(moment) == "2024/03/05 09:15:00"
    assert format_timestamp(datetime(2024, 3, 5, 23, 0, tzinfo=UTC)) == "2024/03/06 06:00:00"
    with pytest.raises(ValueError, match="dd/MM/yyyy"):
        parse_timestamp("05/03/2024 09:15:00")
    with pytest.raises(ValueError, match="yyyy/MM/dd"):
        parse_date("٢٠٢٤/03/05")


def test_document_id_convention() -> None:
    """make_document_id builds the convention; document_id_sender reads the sender back."""
    doc_id = make_document_id("000.00.00.G22", date(2024, 3, 5), "12", "VPCP-TTĐT")
    assert doc_id == "000.00.00.G22,2024/03/05,12/VPCP-TTĐT"
    assert document_id_sender(doc_id) == "000.00.00.G22"
    assert document_id_sender("5f0c9a3e-2b1d-4c7e-9a61-0d2f4b8e7c15") is None


@pytest.mark.parametrize(
    ("organ_id", "strict", "lenient"),
    [
        ("000.00.00.G22", True, True),
        ("000.00.00.H41", True, True),
        ("001.00.20.TT2", False, True),
        ("28.22.H17", False, False),
        ("01.02.G22", False, False),
        ("000.00.00.g22", False, False),
        ("000.00.00.G22 ", False, False),
        ("٠٠٠.00.00.G22", False, False),
        ("", False, False),
    ],
)
def test_organ_id_validity(organ_id: str, strict: bool, lenient: bool) -> None:
    """Strict and lenient OrganId forms; malformed ids and non-ASCII digits are refused."""
    assert is_valid_organ_id(organ_id, strict=True) is strict
    assert is_valid_organ_id(organ_id) is lenient


def test_organ_level_and_parent() -> None:
    """Levels 1-4 and the parent that zeroes the leftmost non-zero group."""
    assert organ_level("000.00.00.G22") == 1
    assert organ_level("000.00.05.H41") == 2
    assert organ_level("000.12.05.H41") == 3
    assert organ_level("001.00.20.TT2") == 4
    assert organ_parent("000.00.00.G22") is None
    assert organ_parent("000.00.05.H41") == "000.00.00.H41"
    assert organ_parent("000.12.05.H41") == "000.00.05.H41"
    assert organ_parent("001.00.20.TT2") == "000.00.20.TT2"
    with pytest.raises(ValueError, match="not an OrganId"):
        organ_level("28.22.H17")


def test_naive_moments_are_vietnam_time_and_impossible_times_are_named() -> None:
    """A naive datetime is written as is (taken as UTC+7); 25:00 is not a time."""
    assert format_timestamp(datetime(2024, 3, 5, 9, 15)) == "2024/03/05 09:15:00"
    assert parse_timestamp(" 2024/03/05 09:15:00 ").tzinfo is VN_TZ
    with pytest.raises(ValueError, match="real date and time"):
        parse_timestamp("2024/03/05 25:00:00")
    assert make_document_id("000.00.00.G22", "2024/03/05", "1", "A") == (
        "000.00.00.G22,2024/03/05,1/A"
    )


def test_document_id_sender_needs_an_organ_id_and_a_date() -> None:
    """Only <OrganId>,<yyyy/MM/dd>,<code> names a sender; other comma forms do not."""
    assert document_id_sender(" 001.00.20.TT2,2024/03/05,7/QĐ ") == "001.00.20.TT2"
    assert document_id_sender("G22,2024/03/05,7/QĐ") is None
    assert document_id_sender("000.00.00.G22,05/03/2024,7/QĐ") is None
    assert document_id_sender("000.00.00.G22,2024/03/05") is None


def test_parent_of_every_level_climbs_to_level_one() -> None:
    """Parents climb one level at a time and end at a level-1 agency."""
    organ: str | None = "001.12.05.H41"
    levels = []
    while organ is not None:
        levels.append(organ_level(organ))
        organ = organ_parent(organ)
    assert levels == [4, 3, 2, 1]
    with pytest.raises(ValueError, match="not an OrganId"):
        organ_parent("000.00.00.g22")
