#!/usr/bin/env python3
"""Benchmark the audit chain: append rate, and verification over a long synthetic chain.

Usage: .venv/bin/python scripts/bench_audit.py [--entries 1000000] [--receipts 20000]

1. append: ``next_entry`` (+ ``seal`` whenever the policy is due) per second, the pure cost the
   store pays inside its transaction;
2. verify: ``verify_chain`` over ``--entries`` synthetic entries with a checkpoint every 1,000
   (chain and checkpoints only; target >= 200,000 entries/s);
3. verify with receipts: the same with a receipt callback that verifies one RSA-2048 signature
   per entry (the cryptographic core of a stored receipt check) over ``--receipts`` entries, and
   the real ``signature.verify`` rate of a signed edXML status for comparison.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import time
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from edoc_axis.audit.chain import AuditEntry, Kind, genesis_hash, next_entry
from edoc_axis.audit.checkpoint import Checkpoint, CheckpointPolicy, seal, trusted_anchors
from edoc_axis.audit.verification import verify_chain
from edoc_axis.ops import pki
from edoc_axis.trust import signature
from edoc_axis.trust.chain import TrustStore

G22, H41 = "000.00.00.G22", "000.00.00.H41"
STATUS = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope><edXMLHeader>'
    b"<MessageHeader><From><OrganId>000.00.00.H41</OrganId><OrganName>UBND</OrganName>"
    b"<OrganAdd>Vinh</OrganAdd><Email>a@b.vn</Email></From><ResponseFor><OrganId>000.00.00.G22"
    b"</OrganId><Code>1/VPCP</Code><PromulgationDate>2024/05/06</PromulgationDate><DocumentId>"
    b"000.00.00.G22,2024/05/06,1/VPCP</DocumentId></ResponseFor><StatusCode>01</StatusCode>"
    b"<Timestamp>2024/05/06 09:00:00</Timestamp></MessageHeader></edXMLHeader></edXMLEnvelope>"
    b"</edXML>"
)


def build_chain(
    n: int, key: Any, cert: Any, policy: CheckpointPolicy
) -> tuple[list[AuditEntry], list[Checkpoint], float]:
    """``n`` entries appended as the store would; returns them, the checkpoints and entries/s."""
    genesis = genesis_hash(G22)
    at = dt.datetime.now(dt.UTC)
    entries: list[AuditEntry] = []
    checkpoints: list[Checkpoint] = []
    head: AuditEntry | None = None
    last: Checkpoint | None = None
    started = time.perf_counter()
    for i in range(n):
        head = next_entry(
            head, kind=Kind.STATUS_RECEIVED, genesis=genesis, at=at, package_id=f"pkg-{i}",
            document_id=f"{G22},2025/03/01,{i}/VPCP", counterpart=H41,
            content_sha256=hashlib.sha256(i.to_bytes(8, "big")).hexdigest(), detail="01",
        )
        entries.append(head)
        if policy.due(last, head, now=at):
            last, head = seal(head, key, cert, G22, genesis=genesis, at=at)
            checkpoints.append(last)
            entries.append(head)
    return entries, checkpoints, len(entries) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--receipts", type=int, default=20_000)
    args = parser.parse_args()

    ca_key, ca = pki.init_ca()
    key, cert = pki.issue_agency_certificate(ca_key, ca, G22, "VPCP")
    h41_key, h41_cert = pki.issue_agency_certificate(ca_key, ca, H41, "UBND")
    store = TrustStore([ca], crls=[pki.make_crl(ca_key, ca)])
    check = trusted_anchors(store, G22)
    policy = CheckpointPolicy(every_entries=1000, every_seconds=1e9)

    entries, checkpoints, append_rate = build_chain(args.entries, key, cert, policy)
    print(f"append (next_entry + seal every 1000, RSA-2048): {append_rate:,.0f} entries/s "
          f"({1e6 / append_rate:.1f} us/entry)")

    genesis = genesis_hash(G22)
    started = time.perf_counter()
    report = verify_chain(
        iter(entries), start_prev_hash=genesis, trust=check, checkpoints=iter(checkpoints),
        policy=policy,
    )
    elapsed = time.perf_counter() - started
    assert report.ok, report.first
    print(f"verify_chain, chain + {report.checkpoints} checkpoints: {report.entries:,} entries in "
          f"{elapsed:.2f} s = {report.entries / elapsed:,.0f} entries/s")

    payload = b"x" * 64
    sig = key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    public = cert.public_key()

    def rsa_receipt(_: AuditEntry) -> str | None:
        public.verify(sig, payload, padding.PKCS1v15(), hashes.SHA256())
        return None

    sample = entries[: args.receipts]
    started = time.perf_counter()
    report = verify_chain(
        iter(sample), start_prev_hash=genesis, trust=check,
        checkpoints=iter(c for c in checkpoints if c.seq <= len(sample)),
        receipt_verifier=rsa_receipt,
    )
    elapsed = time.perf_counter() - started
    print(f"verify_chain + one RSA-2048 verify per receipt: {report.receipts:,} receipts in "
          f"{elapsed:.2f} s = {report.entries / elapsed:,.0f} entries/s (one core)")

    signed = signature.sign(STATUS, h41_key, h41_cert)
    rounds = 300
    started = time.perf_counter()
    for _ in range(rounds):
        signature.verify(signed, store)
    rate = rounds / (time.perf_counter() - started)
    print(f"signature.verify of a signed edXML status (XML-DSig, cached chain): {rate:,.0f}/s "
          "(one core) -> the receipt-checking audit verify is bounded by this rate")


if __name__ == "__main__":
    main()
