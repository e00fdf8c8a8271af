"""Export of the audit chain: JSON Lines that read back to the same entries and checkpoints, CSV."""

from __future__ import annotations

import csv
import io

import pytest
from audit_samples import Log

from edoc_axis.audit.export import (
    checkpoints_from_jsonl,
    csv_rows,
    entries_from_jsonl,
    to_jsonl,
    write_export,
)
from edoc_axis.errors import EdocAxisError


def test_export_round_trips_as_jsonl_and_csv(log: Log) -> None:
    """JSONL lines read back to equal entries and checkpoints; CSV has a header and None as ''."""
    lines = list(to_jsonl(log.entries))
    assert list(entries_from_jsonl(lines)) == log.entries
    assert list(checkpoints_from_jsonl(to_jsonl(log.checkpoints))) == log.checkpoints
    buf = io.StringIO()
    csv.writer(buf).writerows(csv_rows(log.entries[:3]))
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert rows[0]["seq"] == "1" and rows[0]["detail"] == "" and len(rows) == 3
    with pytest.raises(EdocAxisError):
        list(entries_from_jsonl(['{"seq": "1"}']))


def test_write_export_writes_one_line_per_entry_and_reports_each(log: Log) -> None:
    """``audit export`` writes a line per entry (CSV after its header) and counts them."""
    for fmt, header in (("jsonl", 0), ("csv", 1)):
        out, seen = io.StringIO(), []
        assert write_export(iter(log.entries), fmt, out, seen.append) == len(log.entries)
        assert len(out.getvalue().splitlines()) == len(log.entries) + header
        assert seen == [1] * len(log.entries)
    assert list(entries_from_jsonl(io.StringIO(_jsonl(log)).readlines())) == log.entries


def _jsonl(log: Log) -> str:
    out = io.StringIO()
    write_export(log.entries, "jsonl", out)
    return out.getvalue()
