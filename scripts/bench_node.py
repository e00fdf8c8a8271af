#!/usr/bin/env python3
"""Node benchmark: two `edoc-axis run` processes on the local RabbitMQ, signed documents end to end.

In a throwaway vhost with a throwaway PKI, sender 000.00.00.G22 and recipient 000.00.00.H41:

  pipeline   N signed documents are submitted while the nodes are stopped (outbox preloaded);
             the nodes start and the clock runs until every status 01 is recorded at the sender
             (relay -> broker -> recipient verify+store+sign 01 -> sender verify+record).
  e2e        N documents submitted as fast as one submitting process can (validate + verify +
             store), concurrently with the running nodes; clock from first submit to last 01.
  latency    documents submitted at a fixed rate (default 50/s); per document the time from
             submit() call to the 01 being recorded at the sender: p50 / p99.
  baseline   raw pika publish (confirms) and consume (acks) of same-size bodies, from
             scripts/bench_transport.py, in the same vhost and run.

    .venv/bin/python scripts/bench_node.py [--count 1000] [--big-count 40] [--rate 50]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from cryptography import x509

from edoc_axis import directory
from edoc_axis.config.load import load_settings
from edoc_axis.config.render import write_config
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
from edoc_axis.edxml.write import build
from edoc_axis.log import configure_logging
from edoc_axis.node.node import Node
from edoc_axis.ops import pki
from edoc_axis.store import Store
from edoc_axis.transport import provision, topology
from edoc_axis.trust import certificate as trust
from edoc_axis.trust.signature import sign

ROOT = Path(__file__).resolve().parent.parent
SENDER, RECIPIENT, BASELINE = "000.00.00.G22", "000.00.00.H41", "000.00.00.B01"


def rabbitmqctl(*args: str, check: bool = True) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([exe, "-q", *args], check=check, capture_output=True, timeout=120)



def signed_documents(
    key: trust.PrivateKey, cert: x509.Certificate, count: int, start: int, size: int = 0
) -> list[bytes]:
    """``count`` signed documents SENDER -> RECIPIENT numbered from ``start``, about ``size``
    bytes each (an attachment of random bytes pads them; 0: no attachment)."""
    out = []
    for n in range(start, start + count):
        pkg = DocumentPackage(
            sender=Organization(SENDER, "Văn phòng Chính phủ"),
            recipients=[Organization(RECIPIENT, "UBND tỉnh Nghệ An")],
            code=Code(str(n), "VPCP-TTĐT"),
            promulgation=PromulgationInfo("Hà Nội", "2024/05/06"),
            document_type=DocumentType("1", "2", "Công văn"),
            subject="Thử nghiệm hiệu năng", document_id=f"{SENDER},2024/05/06,{n}/VPCP-TTĐT",
            trace_headers=[TraceHeader(SENDER, "2024/05/06 08:00:00")])
        filler = max(0, size - 3000) * 3 // 4
        if filler:
            add_attachment(pkg, "phu-luc.bin", os.urandom(filler))
        out.append(sign(build(pkg), key, cert))
    return out

class Bench:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.vhost = f"edoc-bench-{uuid.uuid4().hex[:8]}"
        self.admin_url = f"amqp://guest:guest@127.0.0.1:5672/{quote(self.vhost, safe='')}"
        rabbitmqctl("add_vhost", self.vhost)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        ca_key, ca_cert = pki.init_ca("bench CA")
        (base / "ca.pem").write_bytes(pki.cert_to_pem(ca_cert))
        (base / "crl.pem").write_bytes(pki.crl_to_pem(pki.make_crl(ca_key, ca_cert)))
        self.keys: dict[str, tuple[trust.PrivateKey, x509.Certificate]] = {}
        self.accounts, agencies = [], []
        for organ_id in (SENDER, RECIPIENT):
            key, cert = pki.issue_agency_certificate(ca_key, ca_cert, organ_id, organ_id)
            (base / f"{organ_id}.key").write_bytes(pki.key_to_pem(key))
            (base / f"{organ_id}.pem").write_bytes(pki.cert_to_pem(cert))
            self.keys[organ_id] = (key, cert)
            account = provision.BrokerAccount(organ_id, f"bench-{organ_id}-{self.vhost}",
                                              uuid.uuid4().hex)
            self.accounts.append(account)
            agencies.append(directory.Agency(organ_id, organ_id.replace(".", ""), organ_id, None,
                                             account.user, (trust.fingerprint(cert),)))
        (base / "directory.toml").write_text(
            "".join(directory.render_agency(a) + "\n" for a in agencies), encoding="utf-8")
        layout = topology.Topology()
        try:
            provision.provision(self.admin_url, self.accounts, layout, self.vhost)
        except Exception:  # rabbitmqctl may not read the temp file: provision step by step
            provision.declare_topology(self.admin_url, layout, [SENDER, RECIPIENT])
            for a in self.accounts:
                rabbitmqctl("add_user", a.user, a.password)
                rabbitmqctl("set_permissions", "-p", self.vhost, a.user, "^$",
                            topology.write_pattern(layout),
                            topology.read_pattern(layout, a.organ_id))
        provision.declare_topology(self.admin_url, layout, [BASELINE])
        self.procs: list[subprocess.Popen[bytes]] = []

    def config(self, organ_id: str, run: str) -> Path:
        account = next(a for a in self.accounts if a.organ_id == organ_id)
        url = (f"amqp://{quote(account.user, safe='')}:{account.password}@127.0.0.1:5672/"
               f"{quote(self.vhost, safe='')}")
        settings = Settings(
            organ_id=organ_id, data_dir=self.base / run / organ_id,
            directory_path=self.base / "directory.toml",
            broker=BrokerSettings(url=url),
            keys=KeySettings(self.base / f"{organ_id}.key", self.base / f"{organ_id}.pem"),
            trust=TrustSettings((self.base / "ca.pem",), (self.base / "crl.pem",)))
        path = self.base / run / f"{organ_id}.toml"
        write_config(path, settings, force=True)
        return path

    def start(self, paths: list[Path]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDOC_AXIS_")}
        for path in paths:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "edoc_axis", "run", "-c", str(path)], env=env,
                stdout=subprocess.DEVNULL, stderr=(path.parent / "log").open("ab")))

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            proc.wait(30)
        self.procs = []

    def close(self) -> None:
        self.stop()
        rabbitmqctl("delete_vhost", self.vhost, check=False)
        for a in self.accounts:
            rabbitmqctl("delete_user", a.user, check=False)

    def documents(self, count: int, size: int, start: int) -> list[bytes]:
        key, cert = self.keys[SENDER]
        return signed_documents(key, cert, count, start, size)


def receipts(store: Store) -> dict[str, float]:
    """DocumentId -> time (epoch) its 01 was recorded at the sender."""
    done = {}
    for d in store.deliveries(limit=10**6):
        if d.state == "arrived":
            done[d.document_id] = datetime.fromisoformat(d.updated_at).timestamp()
    return done


def wait_all(store: Store, count: int, timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = receipts(store)
        if len(done) >= count:
            return done
        time.sleep(0.05)
    raise SystemExit(f"timed out: {len(receipts(store))}/{count} receipts")


def run_pipeline(bench: Bench, docs: list[bytes], name: str) -> float:
    sender_cfg, recipient_cfg = bench.config(SENDER, name), bench.config(RECIPIENT, name)
    submitter = Node.from_settings(load_settings(sender_cfg, env={}))
    for data in docs:
        submitter.submit(data)
    start = time.time()
    bench.start([sender_cfg, recipient_cfg])
    done = wait_all(submitter.store, len(docs), 600)
    bench.stop()
    submitter.close()
    return len(docs) / (max(done.values()) - start)


def run_e2e(
    bench: Bench, docs: list[bytes], name: str, rate: float | None
) -> tuple[float, list[float]]:
    sender_cfg, recipient_cfg = bench.config(SENDER, name), bench.config(RECIPIENT, name)
    submitter = Node.from_settings(load_settings(sender_cfg, env={}))
    bench.start([sender_cfg, recipient_cfg])
    time.sleep(2.0)  # let both links connect before the clock starts
    started: dict[str, float] = {}
    t0 = time.time()
    for i, data in enumerate(docs):
        if rate:
            delay = t0 + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        begin = time.time()
        started[submitter.submit(data).document_id] = begin
    done = wait_all(submitter.store, len(docs), 600)
    bench.stop()
    submitter.close()
    latencies = sorted(done[d] - started[d] for d in started)
    return len(docs) / (max(done.values()) - t0), latencies


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def baseline(bench: Bench, size: int, count: int) -> tuple[float, float]:
    spec = importlib.util.spec_from_file_location(
        "bench_transport", ROOT / "scripts" / "bench_transport.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pub = module.raw_publish_rate(bench.admin_url, BASELINE, count, size, 256)
    queue = topology.Topology().queue_for(BASELINE)
    con = module.raw_consume_rate(bench.admin_url, queue, count, 256)
    return pub, con


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="5 KB documents per run")
    parser.add_argument("--big-count", type=int, default=40, help="1 MB documents per run")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    args = parser.parse_args()
    configure_logging("warning")
    base = Path(tempfile.mkdtemp(prefix="edoc-bench-"))
    bench = Bench(base)
    try:
        runs = (("5 KB", 5 * 1024, args.count), ("1 MB", 1024 * 1024, args.big_count))
        for label, size, count in runs:
            docs = bench.documents(count, size, 1)
            print(f"--- {label} signed documents (actual {len(docs[0])} bytes), n={count}")
            rate = run_pipeline(bench, docs, f"pipe-{size}")
            print(f"pipeline (outbox preloaded, relay->receive->01 recorded): {rate:8.1f} docs/s")
            docs = bench.documents(count, size, 100_000)
            rate, lat = run_e2e(bench, docs, f"e2e-{size}", None)
            print(f"end to end (submit + relay + receive + 01 recorded):   {rate:8.1f} docs/s"
                  f"   (p50 {pct(lat, .5):.0f} ms, p99 {pct(lat, .99):.0f} ms under full load)")
            if size < 100_000:
                n = int(args.rate * args.latency_seconds)
                docs = bench.documents(n, size, 200_000)
                _, lat = run_e2e(bench, docs, f"lat-{size}", args.rate)
                print(f"latency at {args.rate:.0f} docs/s (n={n}): p50 {pct(lat, .5):.1f} ms, "
                      f"p99 {pct(lat, .99):.1f} ms, max {lat[-1] * 1000:.1f} ms")
            pub, con = baseline(bench, len(docs[0]), max(200, count * 2))
            print(f"raw pika baseline: publish {pub:8.1f} msg/s, consume {con:8.1f} msg/s;"
                  f" node end to end / min(raw) = {rate / min(pub, con):.3f}")
    finally:
        bench.close()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
