#!/usr/bin/env python3
"""Parses, model builds and SHA-256 computations of one package per hop, in process.

Two nodes (000.00.00.G22 sends, 000.00.00.H41 receives) on a throwaway PKI and store, no
broker: what one node's relay would publish is handed to the other's ``handle_batch`` as the
Link would. Per hop, one package each time, the work counted:

  parses   hardened parses of bytes (``edxml.parser.PARSE_STATS.parses``)
  models   model builds from a tree (``PARSE_STATS.model_builds``)
  hashes   hashlib.sha256 over package bytes (edXML bodies), counted by wrapping hashlib
  all sha  every hashlib.sha256 call (the audit chain's entry hashes too)

Hops: submit signed / unsigned (``Node.submit``), gateway sendEdoc (``NodeBackend.submit``),
receive a document (checks, 01 signed, stored), the 01 alone (``Receipts.arrived``), the 01
received at the sender, and a clerk's ``set_status`` 03.

    .venv/bin/python scripts/bench_parses.py [--size 5120]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_node import deliver

from edoc_axis import directory
from edoc_axis.config.settings import BrokerSettings, KeySettings, Settings, TrustSettings
from edoc_axis.edxml.attachment import add_attachment
from edoc_axis.edxml.model import (
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    PromulgationInfo,
    TraceHeader,
)
from edoc_axis.edxml.parser import PARSE_STATS
from edoc_axis.edxml.write import build
from edoc_axis.gateway.backend import NodeBackend
from edoc_axis.log import configure_logging
from edoc_axis.node.node import Node
from edoc_axis.ops import pki
from edoc_axis.trust import certificate as trust
from edoc_axis.trust.signature import sign

SENDER, RECIPIENT = "000.00.00.G22", "000.00.00.H41"


@dataclass
class Work:
    """Work counted between two points."""

    parses: int = 0
    models: int = 0
    hashes: int = 0
    all_sha: int = 0

    def row(self) -> str:
        return f"{self.parses:7d} {self.models:7d} {self.hashes:7d} {self.all_sha:8d}"


@dataclass
class Counter:
    """Counts hashlib.sha256 calls while installed; PARSE_STATS does the rest."""

    hashes: int = 0
    all_sha: int = 0
    real: Callable[..., Any] = field(default=hashlib.sha256)

    def __call__(self, data: Any = b"", **kwargs: Any) -> Any:
        self.all_sha += 1
        if b"<edXML" in bytes(memoryview(data)[:400]):
            self.hashes += 1
        return self.real(data, **kwargs)

    @contextmanager
    def measure(self) -> Iterator[Work]:
        work = Work()
        parses, models = PARSE_STATS.snapshot()
        hashes, all_sha = self.hashes, self.all_sha
        yield work
        work.parses = PARSE_STATS.parses - parses
        work.models = PARSE_STATS.model_builds - models
        work.hashes = self.hashes - hashes
        work.all_sha = self.all_sha - all_sha


def document(number: int, size: int = 0) -> DocumentPackage:
    """A document SENDER -> RECIPIENT, padded to about ``size`` bytes by an attachment."""
    pkg = DocumentPackage(
        sender=Organization(SENDER, "Văn phòng Chính phủ"),
        recipients=[Organization(RECIPIENT, "UBND tỉnh Nghệ An")],
        code=Code(str(number), "VPCP-TTĐT"),
        promulgation=PromulgationInfo("Hà Nội", "2024/05/06"),
        document_type=DocumentType("1", "2", "Công văn"),
        subject="Thử nghiệm đếm lần phân tích",
        document_id=f"{SENDER},2024/05/06,{number}/VPCP-TTĐT",
        trace_headers=[TraceHeader(SENDER, "2024/05/06 08:00:00")])
    filler = max(0, size - 3000) * 3 // 4
    if filler:
        add_attachment(pkg, "phu-luc.bin", bytes(range(256)) * (filler // 256 + 1))
    return pkg


class Lab:
    """Two in-process nodes on a throwaway PKI, directory and stores (no broker)."""

    def __init__(self, base: Path) -> None:
        ca_key, ca_cert = pki.init_ca("parse-count CA")
        (base / "ca.pem").write_bytes(pki.cert_to_pem(ca_cert))
        (base / "crl.pem").write_bytes(pki.crl_to_pem(pki.make_crl(ca_key, ca_cert)))
        self.keys: dict[str, tuple[trust.PrivateKey, Any]] = {}
        agencies = []
        for organ_id in (SENDER, RECIPIENT):
            key, cert = pki.issue_agency_certificate(ca_key, ca_cert, organ_id, organ_id)
            (base / f"{organ_id}.key").write_bytes(pki.key_to_pem(key))
            (base / f"{organ_id}.pem").write_bytes(pki.cert_to_pem(cert))
            self.keys[organ_id] = (key, cert)
            agencies.append(directory.Agency(organ_id, organ_id.replace(".", ""), organ_id,
                                             None, f"user-{organ_id}",
                                             (trust.fingerprint(cert),)))
        (base / "directory.toml").write_text(
            "".join(directory.render_agency(a) + "\n" for a in agencies), encoding="utf-8")
        self.nodes = {}
        for organ_id in (SENDER, RECIPIENT):
            settings = Settings(
                organ_id=organ_id, data_dir=base / organ_id,
                directory_path=base / "directory.toml",
                broker=BrokerSettings(
                    url=f"amqp://user-{organ_id}:secret@127.0.0.1:5672/unused"),
                keys=KeySettings(base / f"{organ_id}.key", base / f"{organ_id}.pem"),
                trust=TrustSettings((base / "ca.pem",), (base / "crl.pem",)))
            self.nodes[organ_id] = Node.from_settings(settings)

    def signed(self, pkg: DocumentPackage) -> bytes:
        key, cert = self.keys[SENDER]
        return sign(build(pkg), key, cert)

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()


def run(lab: Lab, counter: Counter, size: int) -> list[tuple[str, Work]]:
    g22, h41 = lab.nodes[SENDER], lab.nodes[RECIPIENT]
    backend = NodeBackend(g22)
    rows: list[tuple[str, Work]] = []
    try:
        # Warm-up (schemas compiled, caches filled), then drain: not counted.
        g22.submit(lab.signed(document(1, size)))
        h41.handle_batch(deliver(g22))
        g22.handle_batch(deliver(h41))

        data = lab.signed(document(2, size))
        with counter.measure() as work:
            g22.submit(data)
        rows.append(("submit, signed", work))
        unsigned = build(document(3, size))
        with counter.measure() as work:
            g22.submit(unsigned)
        rows.append(("submit, unsigned (signed here)", work))
        data = lab.signed(document(4, size))
        with counter.measure() as work:
            backend.submit(data, "edoc", SENDER, [RECIPIENT])
        rows.append(("gateway sendEdoc (signed)", work))

        messages = deliver(g22)
        first, rest = messages[0], messages[1:]
        with counter.measure() as work:
            h41.handle_batch([first])
        rows.append(("receive a document (+ 01 signed)", work))
        h41.handle_batch(rest)
        received = h41.store.packages(direction="in", kind="edoc")[-1]
        from edoc_axis.edxml.read import parse  # a model for the 01 alone (not counted)

        model = parse(h41.store.body(received.package_id))
        assert isinstance(model, DocumentPackage)
        with counter.measure() as work:
            h41.receipts.arrived(model)
        rows.append(("  of which: 01 built + signed", work))

        statuses = deliver(h41)
        with counter.measure() as work:
            g22.handle_batch(statuses[:1])
        rows.append(("01 received at the sender", work))
        g22.handle_batch(statuses[1:])

        with counter.measure() as work:
            h41.set_status(received.document_id, "03")
        rows.append(("set_status 03 (built + signed)", work))
    finally:
        backend.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=5 * 1024, help="document size in bytes")
    args = parser.parse_args()
    configure_logging("warning")
    counter = Counter()
    hashlib.sha256 = counter  # type: ignore[assignment]
    base = Path(tempfile.mkdtemp(prefix="edoc-parses-"))
    lab = Lab(base)
    try:
        rows = run(lab, counter, args.size)
    finally:
        hashlib.sha256 = counter.real
        lab.close()
        shutil.rmtree(base, ignore_errors=True)
    print(f"per package of ~{args.size} bytes, one package per hop")
    print(f"{'hop':38s} {'parses':>7s} {'models':>7s} {'hashes':>7s} {'all sha':>8s}")
    for name, work in rows:
        print(f"{name:38s} {work.row()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
