#!/usr/bin/env python3
"""Benchmark of the DMS gateway: sendEdoc requests/s and latency, with several clients.

Default: MEASURES THE HTTP+AUTH LAYER ONLY: the backend is a do-nothing in-memory stand-in (it
counts packages and returns an id), so no validation, signature, store or broker work is included.

``--node``: the real node behind the gateway (``gateway.backend.NodeBackend``): every call is
a distinct ~``--size`` byte edXML document from 000.00.00.G22 to 000.00.00.H41, parsed, schema-
and rule-checked, signed with a fresh RSA-2048 dev key (sign_unsigned_submissions), stored with
its delivery and outbox rows (SQLite, synchronous=FULL) in a temporary folder. With
``--broker-url`` the node's Link also runs and relays the outbox to RabbitMQ meanwhile (the URL's
user needs configure rights on the vhost; the topology is declared there); without it the
packages stay queued in the outbox.

Each client thread has its own keep-alive connection and signs every call (HMAC, SHA-256 of the
body) like a DMS would.

    .venv/bin/python scripts/bench_api.py --clients 8 --seconds 10 --size 5120 [--sdk-quirks]
    .venv/bin/python scripts/bench_api.py --node [--broker-url amqp://guest:guest@127.0.0.1/%2F]
"""

from __future__ import annotations

import argparse
import base64
import itertools
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edoc_axis import directory
from edoc_axis.config.settings import (
    ApiSettings,
    BrokerSettings,
    DmsSystemSettings,
    KeySettings,
    Settings,
    TrustSettings,
)
from edoc_axis.gateway.backend import HostedGateway, host
from edoc_axis.gateway.client import DmsClient
from edoc_axis.gateway.protocol import (
    AckState,
    AgencyItem,
    Kind,
    NodeMetrics,
    ReceivedItem,
    SentItem,
)
from edoc_axis.gateway.server import DmsServer
from edoc_axis.log import configure_logging
from edoc_axis.node.node import Node
from edoc_axis.node.runner import Runner
from edoc_axis.ops import pki
from edoc_axis.transport.provision import declare_topology
from edoc_axis.transport.topology import Topology
from edoc_axis.trust.certificate import fingerprint

ORGAN = "000.00.00.G22"
PEER = "000.00.00.H41"
SECRET = "bench-secret-0123456789"  # noqa: S105 - a throwaway bench system
DOCUMENT = """<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope><edXMLHeader>\
<MessageHeader><From><OrganId>{sender}</OrganId><OrganName>Văn phòng Chính phủ</OrganName>\
<OrganAdd>Hà Nội</OrganAdd><Email>vanthu@example.gov.vn</Email></From><To><OrganId>{to}</OrganId>\
<OrganName>UBND tỉnh Nghệ An</OrganName><OrganAdd>Vinh</OrganAdd><Email>vt@example.gov.vn</Email>\
</To><DocumentId>{sender},2024/05/06,{number}/VPCP-TTĐT</DocumentId><Code><CodeNumber>{number}\
</CodeNumber><CodeNotation>VPCP-TTĐT</CodeNotation></Code><PromulgationInfo><Place>Hà Nội</Place>\
<PromulgationDate>2024/05/06</PromulgationDate></PromulgationInfo><DocumentType><Type>1</Type>\
<TypeDetail>2</TypeDetail><TypeName>Công văn</TypeName></DocumentType><Subject>Về việc đo hiệu năng\
</Subject></MessageHeader><TraceHeaderList><TraceHeader><OrganId>{sender}</OrganId><Timestamp>\
2024/05/06 08:00:00</Timestamp></TraceHeader></TraceHeaderList></edXMLHeader><edXMLBody>\
<edXMLManifest version="1.0"><Reference><ContentId>cid:1</ContentId><ContentType>application/zip\
</ContentType><AttachmentName>vanban.zip</AttachmentName></Reference></edXMLManifest></edXMLBody>\
</edXMLEnvelope><AttachmentEncoded><Attachment><ContentId>cid:1</ContentId><AttachmentName>\
vanban.zip</AttachmentName><ContentType>application/zip</ContentType><ContentTransferEncoded>\
{attachment}</ContentTransferEncoded></Attachment></AttachmentEncoded></edXML>
"""


class CountingBackend:
    """Accepts every package instantly (stand-in for the node; not the node)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def submit(
        self, data: bytes, kind: Kind, declared_from: str, declared_to: list[str] | None
    ) -> str:
        return f"BENCH-{next(self._ids)}"

    def received(self, agency: str, kind: Kind) -> list[ReceivedItem]:
        return []

    def fetch(self, agency: str, doc_id: str) -> bytes:
        return b""

    def acknowledge(
        self, agency: str, doc_id: str, state: AckState, description: str | None
    ) -> None:
        return None

    def sent(self, agency: str, kind: Kind, doc_id: str | None) -> list[SentItem]:
        return []

    def agencies(self) -> list[AgencyItem]:
        return []

    def metrics(self) -> NodeMetrics:
        return NodeMetrics()


def document_maker(size: int) -> Callable[[int], bytes]:
    """Distinct edXML documents of about ``size`` bytes (DocumentId numbered by the argument)."""
    bare = len(DOCUMENT.format(sender=ORGAN, to=PEER, number=0, attachment="").encode())
    raw = os.urandom(max(0, (size - bare) * 3 // 4))
    attachment = base64.b64encode(raw).decode()
    return lambda n: DOCUMENT.format(sender=ORGAN, to=PEER, number=n,
                                     attachment=attachment).encode()


def real_node(folder: Path, clients: int, broker_url: str | None) -> tuple[Node, Any, Any]:
    """A G22 node in ``folder`` with dev keys, a two-agency directory and one DMS system;
    returns (node, runner or None, hosted gateway)."""
    ca_key, ca_cert = pki.init_ca("bench CA")
    key, cert = pki.issue_agency_certificate(ca_key, ca_cert, ORGAN, "Văn phòng Chính phủ")
    (folder / "ca.pem").write_bytes(pki.cert_to_pem(ca_cert))
    (folder / "crl.pem").write_bytes(pki.crl_to_pem(pki.make_crl(ca_key, ca_cert)))
    (folder / "key.pem").write_bytes(pki.key_to_pem(key))
    (folder / "cert.pem").write_bytes(pki.cert_to_pem(cert))
    url = broker_url or "amqp://guest:guest@127.0.0.1:5672/%2F"
    user = BrokerSettings(url=url).user
    agencies = [directory.Agency(ORGAN, "G22", "Văn phòng Chính phủ", None, user,
                                 (fingerprint(cert),)),
                directory.Agency(PEER, "H41", "UBND tỉnh Nghệ An", None, "bench-peer")]
    (folder / "directory.toml").write_text(
        "".join(directory.render_agency(a) + "\n" for a in agencies), encoding="utf-8")
    settings = Settings(
        organ_id=ORGAN, data_dir=folder / "data", directory_path=folder / "directory.toml",
        broker=BrokerSettings(url=url),
        keys=KeySettings(key=folder / "key.pem", cert=folder / "cert.pem"),
        trust=TrustSettings(anchors=(folder / "ca.pem",), crls=(folder / "crl.pem",)),
        api=ApiSettings(listen="127.0.0.1:0"),
        dms=(DmsSystemSettings("bench", SECRET, ORGAN),))
    node = Node.from_settings(settings)
    runner = None
    if broker_url:
        declare_topology(broker_url, Topology(), [ORGAN, PEER])
        runner = Runner(node)
    hosted = host(node, runner.link if runner else None)
    assert hosted is not None
    if runner is not None:
        runner.start()
    return node, runner, hosted


def main() -> None:  # noqa: PLR0915 - one linear benchmark
    # Per-request info/debug events would swamp the numbers (and cost time); warnings only.
    configure_logging("warning")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=5 * 1024, help="package bytes")
    parser.add_argument("--sdk-quirks", action="store_true")
    parser.add_argument("--node", action="store_true", help="the real node behind the gateway")
    parser.add_argument("--broker-url", help="--node: also run the Link against this broker")
    args = parser.parse_args()

    system = DmsSystemSettings("bench", SECRET, ORGAN)
    tmp: tempfile.TemporaryDirectory[str] | None = None
    node: Node | None = None
    runner: Runner | None = None
    hosted: HostedGateway | None = None
    make_document = document_maker(args.size)
    if args.node:
        tmp = tempfile.TemporaryDirectory(prefix="bench-api-")
        node, runner, hosted = real_node(Path(tmp.name), args.clients, args.broker_url)
        assert hosted is not None
        server = hosted.server
    else:
        api = ApiSettings(listen="127.0.0.1:0")
        server = DmsServer(CountingBackend(), [system], api)
        server.start()
    numbers = itertools.count(1)
    latencies: list[list[float]] = [[] for _ in range(args.clients)]
    errors: list[BaseException] = []
    deadline = time.perf_counter() + args.seconds

    def run(slot: int) -> None:
        body_base = os.urandom(args.size // 2).hex().encode()[: args.size - 16]
        with DmsClient(
            server.url, system.systemid, system.secret, sdk_quirks=args.sdk_quirks
        ) as client:
            for n in itertools.count():
                if time.perf_counter() >= deadline:
                    return
                # a distinct body per call: an identical signed send is answered from the
                # gateway's ledger without being submitted again
                if args.node:
                    data = make_document(next(numbers))
                else:
                    data = body_base + f"{slot:04d}{n:012d}".encode()
                started = time.perf_counter()
                try:
                    client.send_edoc(data, from_organ=ORGAN, to=[PEER])
                except BaseException as exc:
                    errors.append(exc)
                    return
                latencies[slot].append(time.perf_counter() - started)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(args.clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    relay = ""
    if node is not None and hosted is not None:
        hosted.stop()
        if runner is not None:
            relay_deadline = time.monotonic() + 60
            while node.store.outbox_counts()["pending"] and time.monotonic() < relay_deadline:
                time.sleep(0.05)
            relay = f", outbox relayed {time.perf_counter() - began - elapsed:.1f} s after"
            runner.stop()
        stored = node.store.count("packages")
        node.close()
    else:
        server.stop()

    flat = sorted(x for per in latencies for x in per)
    if errors or not flat:
        raise SystemExit(f"bench failed: {errors[:3]!r}")
    p50 = statistics.median(flat) * 1000
    p99 = flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000
    if node is not None:
        what = "with the Link relaying to the broker" if runner else "no broker (outbox only)"
        print(f"DMS gateway on the real node: validate, sign, store; {what}{relay}")
        print(f"packages stored: {stored}")
    else:
        print("DMS gateway HTTP+auth layer only (in-memory stand-in backend, loopback)")
    print(
        f"clients={args.clients} package={len(make_document(0)) if args.node else args.size} B "
        f"quirks={args.sdk_quirks} seconds={elapsed:.1f}"
    )
    print(
        f"sendEdoc: {len(flat)} requests, {len(flat) / elapsed:.0f} req/s, "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {flat[-1] * 1000:.2f} ms"
    )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
