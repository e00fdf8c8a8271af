#!/usr/bin/env python3
"""Audit chain through the real store: appends/s, and the added cost on the node's own path.

No broker needed (everything in-process, throwaway PKI in a temp folder):

  store      AuditLog.on_event appends through a real Store (WAL, synchronous=FULL): one event
             per transaction (the node's submit/status path) and 100 events per transaction
             (a received batch), checkpoints sealed by the policy (every 1,000 entries, RSA-2048).
  node       the node's CPU path for the same signed documents with and without the audit hook:
             sender submit() (validate + verify + store), recipient handle_batch() (identity,
             schema, verify, dedupe, store, sign 01, in batches of 50), and sender
             handle_batch() of those 01 receipts (verify + delivery state). The broker hop is
             the same with or without the hook, so this is an upper bound of the relative cost.

    .venv/bin/python scripts/bench_audit_node.py [--events 20000] [--docs 300]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from bench_node import RECIPIENT, SENDER, signed_documents

from edoc_axis import directory
from edoc_axis.audit.log import AuditLog, key_sealer
from edoc_axis.config.settings import BrokerSettings, KeySettings, Settings, TrustSettings
from edoc_axis.log import configure_logging
from edoc_axis.node.node import Node
from edoc_axis.node.wiring import load_identity
from edoc_axis.ops import pki
from edoc_axis.store import Store
from edoc_axis.store.records import Event
from edoc_axis.transport.message import IncomingMessage
from edoc_axis.trust import certificate as trust


def setup(base: Path) -> dict[str, Settings]:
    """A CA, two agencies, a directory and node settings under ``base``."""
    ca_key, ca_cert = pki.init_ca("Bench CA")
    (base / "ca.pem").write_bytes(pki.cert_to_pem(ca_cert))
    (base / "crl.pem").write_bytes(pki.crl_to_pem(pki.make_crl(ca_key, ca_cert)))
    agencies, out = [], {}
    for organ_id in (SENDER, RECIPIENT):
        key, cert = pki.issue_agency_certificate(ca_key, ca_cert, organ_id, organ_id)
        (base / f"{organ_id}.key").write_bytes(pki.key_to_pem(key))
        (base / f"{organ_id}.pem").write_bytes(pki.cert_to_pem(cert))
        agencies.append(directory.Agency(organ_id, organ_id.replace(".", ""), organ_id, None,
                                         f"user-{organ_id}", (trust.fingerprint(cert),)))
    (base / "directory.toml").write_text(
        "".join(directory.render_agency(a) + "\n" for a in agencies), encoding="utf-8")
    for organ_id in (SENDER, RECIPIENT):
        out[organ_id] = Settings(
            organ_id=organ_id, data_dir=base / organ_id, directory_path=base / "directory.toml",
            broker=BrokerSettings(url=f"amqp://user-{organ_id}:x@127.0.0.1:5672/bench"),
            keys=KeySettings(base / f"{organ_id}.key", base / f"{organ_id}.pem"),
            trust=TrustSettings((base / "ca.pem",), (base / "crl.pem",)))
    return out


def bench_store(settings: Settings, events: int) -> None:
    """Appends/s through the store, one event per transaction and 100 per transaction."""
    for per_txn in (1, 100):
        store = Store(settings.data_dir / f"store-{per_txn}.sqlite3")
        identity = load_identity(settings)
        log = AuditLog(store, settings.organ_id, sealer=key_sealer(
            identity.key, identity.cert, settings.organ_id)).attach()
        started = time.perf_counter()
        for start in range(0, events, per_txn):
            with store.transaction() as txn:
                for i in range(start, min(events, start + per_txn)):
                    txn.emit(Event("status_received", f"pkg-{i}", f"{SENDER},2024/05/06,{i}/X",
                                   RECIPIENT, f"{i:064x}", {"code": "01"}))
        elapsed = time.perf_counter() - started
        checkpoints = sum(1 for _ in log.checkpoints())
        print(f"store append, {per_txn:>3} per transaction: {events / elapsed:9,.0f} entries/s "
              f"({events} entries, {checkpoints} checkpoints signed)")
        store.close()


def documents(settings: Settings, count: int, start: int) -> list[bytes]:
    """Signed documents from the sender to the recipient."""
    identity = load_identity(settings)
    return signed_documents(identity.key, identity.cert, count, start)


def message(body: bytes, user: str, n: int, kind: str) -> IncomingMessage:
    """A broker delivery as the Link would hand it to the node."""
    return IncomingMessage(body, f"m-{kind}-{n}", user, kind, {}, False, 0, "x")


def run_node(settings: dict[str, Settings], docs: list[bytes], audited: bool,
             run: str) -> dict[str, float]:
    """Seconds for submit, receive (+01) and receipt handling of ``docs``."""
    nodes = {}
    for organ_id, base in settings.items():
        node = Node.from_settings(dataclasses.replace(base, data_dir=base.data_dir / run))
        if not audited:
            node.store.on_event = None
        nodes[organ_id] = node
    sender, recipient = nodes[SENDER], nodes[RECIPIENT]
    times: dict[str, float] = {}
    started = time.perf_counter()
    for body in docs:
        sender.submit(body)
    times["submit"] = time.perf_counter() - started
    stored = [item.body for item in sender.store.pending_outbox(len(docs) + 10)]
    started = time.perf_counter()
    for i in range(0, len(stored), 50):
        batch = [message(b, f"user-{SENDER}", i + j, "edoc") for j, b in
                 enumerate(stored[i:i + 50])]
        recipient.handle_batch(batch)
    times["receive"] = time.perf_counter() - started
    receipts = [item.body for item in recipient.store.pending_outbox(len(docs) + 10)]
    started = time.perf_counter()
    for i in range(0, len(receipts), 50):
        batch = [message(b, f"user-{RECIPIENT}", i + j, "status") for j, b in
                 enumerate(receipts[i:i + 50])]
        sender.handle_batch(batch)
    times["receipts"] = time.perf_counter() - started
    assert len(sender.store.inbox(kind="status", limit=len(docs) + 10)) == len(docs)
    for node in nodes.values():
        node.close()
    return times


def main() -> int:
    """Run both benchmarks and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    configure_logging("error")
    with tempfile.TemporaryDirectory(prefix="bench-audit-node-") as tmp:
        settings = setup(Path(tmp))
        bench_store(settings[SENDER], args.events)
        best: dict[bool, dict[str, float]] = {}
        for r in range(args.rounds):
            for audited in (False, True):  # alternate, keep the best of each (noise)
                docs = documents(settings[SENDER], args.docs, 1 + (2 * r + audited) * args.docs)
                times = run_node(settings, docs, audited, f"run-{r}-{int(audited)}")
                prev = best.get(audited)
                best[audited] = times if prev is None else {
                    k: min(v, prev[k]) for k, v in times.items()}
        print(f"node path, {args.docs} signed documents (best of {args.rounds}):")
        total = {a: sum(best[a].values()) for a in best}
        for stage in ("submit", "receive", "receipts"):
            plain, audited_t = best[False][stage], best[True][stage]
            print(f"  {stage:<9} without audit {args.docs / plain:8,.0f}/s   with audit "
                  f"{args.docs / audited_t:8,.0f}/s   added {100 * (audited_t / plain - 1):+5.1f}%")
        print(f"  whole path: {1000 * total[False] / args.docs:.2f} ms -> "
              f"{1000 * total[True] / args.docs:.2f} ms per document "
              f"({100 * (total[True] / total[False] - 1):+.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
