"""Export of the audit chain: JSON Lines (the bundle and archive format, read back too) and CSV.

One compact JSON object per line, streamed; CSV has a header row of ``ENTRY_FIELDS`` and ""
for None, for spreadsheets. ``write_export`` is ``edoc-axis audit export``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from edoc_axis.audit.chain import ENTRY_FIELDS, AuditEntry, malformed
from edoc_axis.audit.checkpoint import Checkpoint

# --- JSON Lines -----------------------------------------------------------------------------------


def to_jsonl(items: Iterable[AuditEntry | Checkpoint]) -> Iterator[str]:
    """One compact JSON object per line (newline included), streaming."""
    for item in items:
        yield json.dumps(item.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"


def _jsonl_objects(lines: Iterable[str | bytes]) -> Iterator[dict[str, Any]]:
    """The JSON objects of ``to_jsonl`` lines (blank lines skipped); raises AUDIT_MALFORMED."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise malformed(f"line {number} is not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise malformed(f"line {number} is not an object")
        yield data


def entries_from_jsonl(lines: Iterable[str | bytes]) -> Iterator[AuditEntry]:
    """Entries back from ``to_jsonl`` lines (blank lines skipped); raises AUDIT_MALFORMED."""
    return (AuditEntry.from_dict(data) for data in _jsonl_objects(lines))


def checkpoints_from_jsonl(lines: Iterable[str | bytes]) -> Iterator[Checkpoint]:
    """Checkpoints back from ``to_jsonl`` lines; raises AUDIT_MALFORMED."""
    return (Checkpoint.from_dict(data) for data in _jsonl_objects(lines))


def csv_rows(entries: Iterable[AuditEntry]) -> Iterator[list[str]]:
    """A header row (``ENTRY_FIELDS``), then one row per entry ("" for None); for csv.writer."""
    yield list(ENTRY_FIELDS)
    for e in entries:
        yield ["" if (v := getattr(e, name)) is None else str(v) for name in ENTRY_FIELDS]


def write_export(entries: Iterable[AuditEntry], fmt: str, out: IO[str],
                 progress: Callable[[int], None] | None = None) -> int:
    """Write ``entries`` to ``out`` as ``csv`` or (any other ``fmt``) JSON Lines; returns how
    many were written, calling ``progress(1)`` after each."""
    count = 0
    if fmt == "csv":
        writer = csv.writer(out)
        rows = csv_rows(entries)
        writer.writerow(next(rows))
        for row in rows:
            writer.writerow(row)
            count += 1
            if progress is not None:
                progress(1)
    else:
        for line in to_jsonl(entries):
            out.write(line)
            count += 1
            if progress is not None:
                progress(1)
    return count
