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
  cpu        CPU seconds per document of each process over the e2e run (the submitting
             process, the two nodes, and the broker, which other users of it share), from
             /proc; and in process, broker out of the loop, each journey's CPU per document
             (the stable number to compare changes by on a loaded machine).
  ceiling    the signature work no node can avoid, on these documents: sign the document,
             verify it at the recipient, sign the 01, verify the 01 (signxml, trees already
             parsed), CPU per operation; the throughput it alone allows on this machine's
             cores, and the e2e rate as a share of it.

The load average is printed first and last: the machine is shared, and wall-clock rates move
with it (CPU per document much less).

    .venv/bin/python scripts/bench_node.py [--count 1000] [--big-count 40] [--rate 50]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pika
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
from edoc_axis.edxml.parser import parse_xml
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.status import new_status
from edoc_axis.edxml.write import build
from edoc_axis.log import configure_logging
from edoc_axis.node.node import Node
from edoc_axis.ops import pki
from edoc_axis.store import Store
from edoc_axis.transport import provision, topology
from edoc_axis.transport.message import Confirmation, IncomingMessage
from edoc_axis.trust import certificate as trust
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.signature import sign, sign_tree, verify_tree

ROOT = Path(__file__).resolve().parent.parent
SENDER, RECIPIENT, BASELINE = "000.00.00.G22", "000.00.00.H41", "000.00.00.B01"


def rabbitmqctl(*args: str, check: bool = True) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([exe, "-q", *args], check=check, capture_output=True, timeout=120)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid() -> int | None:
    """The Erlang VM listening on 127.0.0.1:5672 (the broker the bench uses), if found."""
    try:
        found = subprocess.run(["ss", "-ltnpH", "sport = :5672"], capture_output=True,
                               text=True, check=False, timeout=10).stdout
    except OSError:
        return None
    match = re.search(r"pid=(\d+)", found)
    return int(match.group(1)) if match else None


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


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
                rabbitmqctl("add_user", a.user, a.password or "")
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

    def wait_ready(self, organ_ids: list[str], timeout: float = 120.0) -> None:
        """Until every started node consumes its queue (imports done, link up): on a loaded
        machine that can take longer than any fixed sleep."""
        layout = topology.Topology()
        deadline = time.monotonic() + timeout
        connection = pika.BlockingConnection(pika.URLParameters(self.admin_url))
        try:
            channel = connection.channel()
            for organ_id in organ_ids:
                queue = layout.queue_for(organ_id)
                while not channel.queue_declare(queue, passive=True).method.consumer_count:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{organ_id}: the node did not start consuming")
                    time.sleep(0.1)
        finally:
            connection.close()

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
    # The receipts carry their own times: polling seldom costs the nodes no CPU and no accuracy.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = receipts(store)
        if len(done) >= count:
            return done
        time.sleep(0.25)
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
) -> tuple[float, list[float], dict[str, float]]:
    """Docs/s, latencies, and CPU seconds per document of each process over the run."""
    sender_cfg, recipient_cfg = bench.config(SENDER, name), bench.config(RECIPIENT, name)
    submitter = Node.from_settings(load_settings(sender_cfg, env={}))
    bench.start([sender_cfg, recipient_cfg])
    bench.wait_ready([SENDER, RECIPIENT])  # the clock starts with both links up
    time.sleep(0.5)
    broker = broker_pid()
    pids = {"sender node": bench.procs[0].pid, "recipient node": bench.procs[1].pid,
            "broker": broker or 0}
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    cpu0["submitter"] = time.process_time()
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
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    cpu["submitter"] = time.process_time() - cpu0["submitter"]
    if broker is None or broker_pid() != broker or cpu["broker"] < 0:
        del cpu["broker"]  # not found, or restarted by someone else meanwhile: unknown
    bench.stop()
    submitter.close()
    latencies = sorted(done[d] - started[d] for d in started)
    return (len(docs) / (max(done.values()) - t0), latencies,
            {name: seconds / len(docs) for name, seconds in cpu.items()})


def deliver(source: Node) -> list[IncomingMessage]:
    """What ``source``'s relay hands the Link now, confirmed, as the broker would deliver it."""
    out = source.fetch_outgoing(10_000)
    source.on_confirmed([Confirmation(m.token, True) for m in out])
    return [IncomingMessage(body=m.body, message_id=m.message_id, user_id=source.broker_user,
                            type=m.type, headers=dict(m.headers), redelivered=False,
                            delivery_count=1, routing_key=m.routing_key) for m in out]


def in_process(bench: Bench, docs: list[bytes], name: str) -> dict[str, float]:
    """CPU seconds per document of each journey, both nodes in this process, no broker: the
    relay's output handed to the other node's ``handle_batch`` in batches of the prefetch."""
    sender = Node.from_settings(load_settings(bench.config(SENDER, name), env={}))
    recipient = Node.from_settings(load_settings(bench.config(RECIPIENT, name), env={}))
    prefetch = recipient.settings.broker.prefetch
    cpu: dict[str, float] = {}

    def timed(label: str, work: Callable[[], object]) -> None:
        begin = time.process_time()
        work()
        cpu[label] = (time.process_time() - begin) / len(docs)

    def batches(node: Node, messages: list[IncomingMessage]) -> None:
        for i in range(0, len(messages), prefetch):
            node.handle_batch(messages[i:i + prefetch])

    try:
        timed("submit", lambda: [sender.submit(data) for data in docs])
        outgoing: list[IncomingMessage] = []
        timed("relay (document)", lambda: outgoing.extend(deliver(sender)))
        timed("receive + 01", lambda: batches(recipient, outgoing))
        statuses: list[IncomingMessage] = []
        timed("relay (01)", lambda: statuses.extend(deliver(recipient)))
        timed("01 at sender", lambda: batches(sender, statuses))
    finally:
        sender.close()
        recipient.close()
    return cpu


def signature_work(bench: Bench, data: bytes) -> dict[str, float]:
    """CPU seconds of each signature operation a document costs (trees already parsed)."""
    key, cert = bench.keys[SENDER]
    recipient_key, recipient_cert = bench.keys[RECIPIENT]
    store = TrustStore.from_pem([(bench.base / "ca.pem").read_bytes()],
                                [(bench.base / "crl.pem").read_bytes()])
    document = parse(data)
    assert isinstance(document, DocumentPackage)
    unsigned = parse_xml(build(document)).getroot()
    signed = parse_xml(data).getroot()
    status = new_status(Organization(RECIPIENT, RECIPIENT), document, "01")
    status_unsigned = parse_xml(build(status)).getroot()
    status_signed = parse_xml(sign(build(status), recipient_key, recipient_cert)).getroot()
    ops: dict[str, Callable[[], object]] = {
        "sign document": lambda: sign_tree(unsigned, key, cert),
        "verify document": lambda: verify_tree(signed, store),
        "sign 01": lambda: sign_tree(status_unsigned, recipient_key, recipient_cert),
        "verify 01": lambda: verify_tree(status_signed, store),
    }
    out = {}
    for label, op in ops.items():
        op()
        count, begin = 0, time.process_time()
        while (spent := time.process_time() - begin) < 0.5 or count < 3:
            op()
            count += 1
        out[label] = spent / count
    return out


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


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="5 KB documents per run")
    parser.add_argument("--big-count", type=int, default=40, help="1 MB documents per run")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    args = parser.parse_args()
    configure_logging("warning")
    cores = os.cpu_count() or 1
    print(f"{cores} cores, {load()}")
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
            rate, lat, cpu = run_e2e(bench, docs, f"e2e-{size}", None)
            print(f"end to end (submit + relay + receive + 01 recorded):   {rate:8.1f} docs/s"
                  f"   (p50 {pct(lat, .5):.0f} ms, p99 {pct(lat, .99):.0f} ms under full load)")
            total = sum(cpu.values())
            print(f"  CPU per document over that run (broker shared): {ms(total)} = "
                  + ", ".join(f"{name} {ms(sec)}" for name, sec in cpu.items())
                  + f"; {cores} cores / {ms(total)} = {cores / total:.0f} docs/s")
            work = signature_work(bench, docs[0])
            unavoidable = sum(work.values())
            ceiling = cores / unavoidable
            print("  signature work (signxml, CPU per operation): "
                  + ", ".join(f"{name} {ms(sec)}" for name, sec in work.items()))
            print(f"  2 signs + 2 verifies = {ms(unavoidable)} per document -> ceiling "
                  f"{ceiling:.0f} docs/s on {cores} cores; end to end is "
                  f"{100 * rate / ceiling:.0f}% of it")
            journeys = in_process(bench, bench.documents(min(count, 400), size, 300_000),
                                  f"cpu-{size}")
            print(f"  in process, no broker: {ms(sum(journeys.values()))} CPU per document = "
                  + ", ".join(f"{name} {ms(sec)}" for name, sec in journeys.items()))
            if size < 100_000:
                n = int(args.rate * args.latency_seconds)
                docs = bench.documents(n, size, 200_000)
                _, lat, _ = run_e2e(bench, docs, f"lat-{size}", args.rate)
                print(f"latency at {args.rate:.0f} docs/s (n={n}): p50 {pct(lat, .5):.1f} ms, "
                      f"p99 {pct(lat, .99):.1f} ms, max {lat[-1] * 1000:.1f} ms")
            pub, con = baseline(bench, len(docs[0]), max(200, count * 2))
            print(f"raw pika baseline: publish {pub:8.1f} msg/s, consume {con:8.1f} msg/s;"
                  f" node end to end / min(raw) = {rate / min(pub, con):.3f}")
    finally:
        bench.close()
        shutil.rmtree(base, ignore_errors=True)
    print(load())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
