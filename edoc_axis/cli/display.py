"""How the commands show times and tables to a person.

One convention for every time the CLI prints: ISO 8601 in Vietnam time with its offset written
out (``2026-12-02T09:32:36+07:00``), because edXML times are Vietnam local time and the store's
and audit log's UTC times are turned into the same zone, so two times on one screen compare at a
glance. Tables have a header row, and a list with nothing in it says so rather than printing
nothing. ``--json`` output keeps the stored values; ``jsonable`` makes broker headers
(``x-death``: longs, datetimes, bytes) printable as JSON.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import click

from edoc_axis.edxml.identifier import VN_TZ, parse_timestamp


def shown_time(moment: dt.datetime) -> str:
    """``moment`` in Vietnam time, to the second, with the offset: 2026-12-02T09:32:36+07:00."""
    if moment.tzinfo is None:  # the store and the audit log write UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(VN_TZ).isoformat(timespec="seconds")


def stored_time(text: str | None) -> str:
    """A time as the store or audit log keeps it (ISO 8601, UTC), shown in Vietnam time."""
    if not text:
        return "-"
    try:
        return shown_time(dt.datetime.fromisoformat(text))
    except ValueError:
        return text  # not a time we wrote: shown as it is rather than hidden


def edxml_time(text: str | None) -> str:
    """An edXML timestamp (``yyyy/MM/dd HH:mm:ss``, Vietnam time) in the CLI's convention."""
    if not text:
        return "-"
    try:
        return shown_time(parse_timestamp(text))
    except ValueError:
        return text  # a malformed timestamp is shown as the package carries it


def echo_table(header: Sequence[str], rows: Sequence[Sequence[object]], *, empty: str,
               indent: str = "") -> None:
    """Print ``rows`` in columns under ``header``; when there are none, print ``empty``."""
    if not rows:
        click.echo(indent + empty)
        return
    cells = [[str(value) for value in row] for row in rows]
    widths = [max(len(line[i]) for line in [list(header), *cells]) for i in range(len(header))]
    for line in [list(header), *cells]:
        click.echo(indent + "  ".join(cell.ljust(width) for cell, width in zip(line, widths,
                                                                          strict=True)).rstrip())


def jsonable(value: Any) -> Any:
    """``value`` (broker headers as pika decodes them) as plain JSON values: times in the CLI's
    convention, bytes as text (base64 when not UTF-8), anything else as text."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dt.datetime):
        return shown_time(value)
    if isinstance(value, bytes):
        return _bytes_text(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # Decimal and anything else pika may hand over


def _bytes_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode("ascii")
