"""Benchmark of package validation (hardened parse + XSD + business rules + model).

Prints packages/s for a ~5 KB and a ~1 MB document package, and the peak Python memory
(tracemalloc) of one validation of each, relative to the package size. A second line per size
shows the work per call (hardened parses and model builds, from ``parser.PARSE_STATS``) of
``schema.accept`` on the bytes and on a ``ParsedPackage`` already read, and their rates. Run:
``.venv/bin/python scripts/bench_validate.py [--seconds 2]``.
Aims (issue "edXML packages"): >= 2,000/s at 5 KB on one core, 1 MB under 20 ms, peak < 5x size.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

from lxml import etree

from edoc_axis.edxml.attachment import add_attachment
from edoc_axis.edxml.model import (
    Business,
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    OtherInfo,
    PromulgationInfo,
    SignerInfo,
)
from edoc_axis.edxml.parsed import read_package
from edoc_axis.edxml.parser import PARSE_STATS
from edoc_axis.edxml.schema import accept, load_schema, validate
from edoc_axis.edxml.write import append_trace_header, build


def make_package(target_bytes: int) -> bytes:
    """A valid document package of about ``target_bytes`` (padding goes into one attachment)."""
    doc = DocumentPackage(
        sender=Organization("000.00.00.G22", "Văn phòng Chính phủ", "Chính phủ", "Hà Nội"),
        recipients=[Organization(f"000.00.{i:02d}.H41", f"Sở số {i}") for i in range(1, 9)],
        code=Code("12", "VPCP-TTĐT"),
        promulgation=PromulgationInfo("Hà Nội", "2024/03/05"),
        document_type=DocumentType("1", "2", "Công văn"),
        subject="Về việc thử nghiệm gửi nhận văn bản điện tử qua trục liên thông quốc gia",
        document_id="000.00.00.G22,2024/03/05,12/VPCP-TTĐT",
        content=("Đề nghị các cơ quan phối hợp thử nghiệm. " * 5).strip(),
        signer=SignerInfo("KT. BỘ TRƯỞNG", "Phó Chủ nhiệm", "Nguyễn Văn A"),
        to_places=["Như trên", "Lưu: VT"],
        other_info=OtherInfo("1", "Liên thông", "TVC", "1", "2", "false", ["Phụ lục I"]),
        steering_type="1",
        business=Business(doc_type=0, reason="Gửi mới", paper="0"),
    )
    append_trace_header(doc, "000.00.00.G22", "2024/03/05 09:15:00")
    base = len(build(doc))
    # Random bytes do not compress, so the base64 grows by 4/3 of the payload.
    payload = max(0, (target_bytes - base - 400) * 3 // 4)
    add_attachment(doc, "toan-van.pdf", os.urandom(payload))
    return build(doc)


def measure(data: bytes, seconds: float) -> tuple[float, float, int]:
    """(packages per second, milliseconds per package, peak traced bytes of one validation)."""
    assert validate(data).valid
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        validate(data)
        count += 1
    tracemalloc.start()
    validate(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return count / elapsed, 1000 * elapsed / count, peak


def per_call(data: bytes, seconds: float) -> str:
    """Parses and model builds per ``accept`` call, on bytes and on a ParsedPackage, and rates."""
    parsed = read_package(data)
    out = []
    for label, arg in (("accept(bytes)", data), ("accept(parsed)", parsed)):
        parses_before, builds_before = PARSE_STATS.snapshot()
        accept(arg)
        parses = PARSE_STATS.parses - parses_before
        builds = PARSE_STATS.model_builds - builds_before
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            accept(arg)
            count += 1
        out.append(f"{label}: {parses} parse, {builds} model, {count / elapsed:.0f}/s")
    return "; ".join(out)


def baseline(data: bytes, seconds: float) -> float:
    """Packages per second of bare lxml parse + XSD, the floor any validation sits on."""
    schema = load_schema("edoc")
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        schema.validate(etree.fromstring(data))
        count += 1
    return count / elapsed


def main() -> None:
    """Run both sizes and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per size")
    args = parser.parse_args()
    for label, size in (("5 KB", 5 * 1024), ("1 MB", 1024 * 1024)):
        data = make_package(size)
        rate, ms, peak = measure(data, args.seconds)
        floor = baseline(data, args.seconds / 2)
        print(
            f"{label}: {len(data):>8} bytes  {rate:>8.0f} packages/s  {ms:7.2f} ms/package  "
            f"peak {peak / 1024:8.1f} KiB = {peak / len(data):.2f}x size  "
            f"(bare lxml parse+XSD: {floor:.0f}/s)"
        )
        print(f"      {per_call(data, args.seconds / 2)}")


if __name__ == "__main__":
    main()
