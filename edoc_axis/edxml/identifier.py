"""Identifier and time conventions of edXML: OrganId, DocumentId, dates and timestamps.

OrganIds are ``NNN.NN.NN.Xnn`` (QCVN 102:2016, with the looser last group real traffic uses),
DocumentIds ``<OrganId>,<yyyy/MM/dd>,<CodeNumber>/<CodeNotation>``, dates ``yyyy/MM/dd`` and
timestamps ``yyyy/MM/dd HH:mm:ss`` in Vietnam time (UTC+7). Pure functions, no XML.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

VN_TZ = timezone(timedelta(hours=7), "ICT")

DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"

_ORGAN_ID_STRICT = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}", re.ASCII)
# Real traffic also ends in a letter and two letters/digits (001.00.20.TT2). ASCII digits only.
_ORGAN_ID_LENIENT = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z][A-Z0-9]{2}", re.ASCII)
_DATE = re.compile(r"\d{4}/\d{2}/\d{2}", re.ASCII)
_DMY_DATE = re.compile(r"\d{1,2}/\d{1,2}/\d{4}", re.ASCII)
_TIMESTAMP = re.compile(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}", re.ASCII)


def format_date(value: date) -> str:
    """``yyyy/MM/dd``."""
    return f"{value.year:04d}/{value.month:02d}/{value.day:02d}"


def parse_date(text: str) -> date:
    """Read a ``yyyy/MM/dd`` date; a ``dd/MM/yyyy`` date raises ValueError saying so."""
    text = text.strip()
    if _DMY_DATE.fullmatch(text):
        raise ValueError(f"date {text!r} is written dd/MM/yyyy; edXML dates are yyyy/MM/dd")
    if not _DATE.fullmatch(text):
        raise ValueError(f"date {text!r} is not in the format yyyy/MM/dd")
    try:  # the pattern matched, so the slices are digits; date() checks the calendar
        return date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        raise ValueError(f"date {text!r} is not a real calendar date") from None


def format_timestamp(moment: datetime) -> str:
    """``yyyy/MM/dd HH:mm:ss`` in Vietnam time; a naive datetime is taken as Vietnam time."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(VN_TZ)
    return moment.strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    """Read a ``yyyy/MM/dd HH:mm:ss`` timestamp as an aware datetime in Vietnam time."""
    text = text.strip()
    if not _TIMESTAMP.fullmatch(text):
        hint = ""
        if _DMY_DATE.fullmatch(text.split(" ", 1)[0]):
            hint = " (the date part is dd/MM/yyyy)"
        raise ValueError(f"timestamp {text!r} is not in the format yyyy/MM/dd HH:mm:ss{hint}")
    try:
        return datetime(
            int(text[0:4]),
            int(text[5:7]),
            int(text[8:10]),
            int(text[11:13]),
            int(text[14:16]),
            int(text[17:19]),
            tzinfo=VN_TZ,
        )
    except ValueError:
        raise ValueError(f"timestamp {text!r} is not a real date and time") from None


def make_document_id(organ_id: str, when: date | str, code_number: str, code_notation: str) -> str:
    """The conventional DocumentId: ``<OrganId>,<yyyy/MM/dd>,<CodeNumber>/<CodeNotation>``."""
    day = when if isinstance(when, str) else format_date(when)
    return f"{organ_id},{day},{code_number}/{code_notation}"


def document_id_sender(document_id: str) -> str | None:
    """The sender's OrganId of a conventional DocumentId, or None for other ids (UUIDs...)."""
    parts = document_id.strip().split(",", 2)
    if len(parts) == 3 and is_valid_organ_id(parts[0]) and _DATE.fullmatch(parts[1]):
        return parts[0]
    return None


def is_valid_organ_id(value: str, *, strict: bool = False) -> bool:
    """``NNN.NN.NN.Xnn`` (strict) or, leniently, a last group of a letter and two letters/digits."""
    pattern = _ORGAN_ID_STRICT if strict else _ORGAN_ID_LENIENT
    return pattern.fullmatch(value) is not None


def organ_level(value: str) -> int:
    """1 for ``000.00.00.X``, 2 for ``000.00.YY.X``, 3 for ``000.ZZ.YY.X``, otherwise 4."""
    groups = _organ_groups(value)
    if groups[0] != "000":
        return 4
    if groups[1] != "00":
        return 3
    return 2 if groups[2] != "00" else 1


def organ_parent(value: str) -> str | None:
    """The parent agency: zero the leftmost non-zero group; None for a level-1 agency."""
    groups = _organ_groups(value)
    for index in range(3):
        if groups[index].strip("0"):
            groups[index] = "0" * len(groups[index])
            return ".".join(groups)
    return None


def _organ_groups(value: str) -> list[str]:
    if not is_valid_organ_id(value):
        raise ValueError(f"{value!r} is not an OrganId (NNN.NN.NN.XXX)")
    return value.split(".")
