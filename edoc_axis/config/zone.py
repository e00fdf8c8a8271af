"""Time zones by name: the zone a DMS's zone-less SDK timestamps are read in (``[api] timezone``).

An IANA name (``Asia/Ho_Chi_Minh``, ``UTC``) or a fixed offset (``+07:00``, ``UTC-5``). Hosts
without the tz database still know Vietnam's zone and UTC.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, timedelta, timezone, tzinfo

from edoc_axis.edxml.identifier import VN_TZ

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{1,2})(?::?(\d{2}))?$")
# Vietnam has kept UTC+7 without daylight saving since 1975: the fixed offset is exact, and
# serves hosts without the tz database.
_FIXED_ZONES = {"Asia/Ho_Chi_Minh": VN_TZ, "Asia/Saigon": VN_TZ, "UTC": UTC}


def timezone_named(name: str) -> tzinfo:
    """The zone an SDK timestamp is read in: an IANA name (``Asia/Ho_Chi_Minh``, ``UTC``) or a
    fixed offset (``+07:00``); raises ValueError naming what is accepted."""
    text = name.strip()
    offset = _OFFSET.match(text)
    if offset:
        sign, hours, minutes = offset.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta > timedelta(hours=14):
            raise ValueError(f"offset {text!r} is beyond ±14:00")
        return timezone(-delta if sign == "-" else delta, text)
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        if text in _FIXED_ZONES:
            return _FIXED_ZONES[text]
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as {DEFAULT_TIMEZONE} or UTC, "
            "or an offset such as +07:00)"
        ) from None
