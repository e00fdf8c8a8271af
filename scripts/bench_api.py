#!/usr/bin/env python3
"""Benchmark of the DMS gateway's HTTP + authentication layer: sendEdoc requests/s and latency.

MEASURES THE HTTP+AUTH LAYER ONLY: the backend is a do-nothing in-memory stand-in (it counts
packages and returns an id), so no validation, signature, store or broker work is included.
Each client thread has its own keep-alive connection and signs every call (HMAC, SHA-256 of the
body) like a DMS would.

    .venv/bin/python scripts/bench_api.py --clients 8 --seconds 10 --size 5120 [--sdk-quirks]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import threading
import time

from edoc_axis.api import (
    AgencyItem,
    DmsServer,
    DmsSystem,
    GatewayOptions,
    NodeMetrics,
    ReceivedItem,
    SentItem,
)
from edoc_axis.client import DmsClient

ORGAN = "000.00.00.G22"


class CountingBackend:
    """Accepts every package instantly (stand-in for the node; not the node)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def submit(self, data: bytes, kind: str, declared_from: str, declared_to: object) -> str:
        return f"BENCH-{next(self._ids)}"

    def received(self, agency: str, kind: str) -> list[ReceivedItem]:
        return []

    def fetch(self, agency: str, doc_id: str) -> bytes:
        return b""

    def acknowledge(self, agency: str, doc_id: str, state: str, description: object) -> None:
        return None

    def sent(self, agency: str, kind: str, doc_id: object) -> list[SentItem]:
        return []

    def agencies(self) -> list[AgencyItem]:
        return []

    def metrics(self) -> NodeMetrics:
        return NodeMetrics()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=5 * 1024, help="package bytes")
    parser.add_argument("--sdk-quirks", action="store_true")
    args = parser.parse_args()

    system = DmsSystem("bench", "bench-secret", ORGAN)
    options = GatewayOptions(listen="127.0.0.1:0", max_connections=args.clients + 4)
    server = DmsServer(CountingBackend(), [system], options)  # type: ignore[arg-type]
    server.start()
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
                # a distinct body per call: identical signed sends would be refused as replays
                data = body_base + f"{slot:04d}{n:012d}".encode()
                started = time.perf_counter()
                try:
                    client.send_edoc(data, from_organ=ORGAN, to=["000.00.01.H53"])
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
    server.stop()

    flat = sorted(x for per in latencies for x in per)
    if errors or not flat:
        raise SystemExit(f"bench failed: {errors[:3]!r}")
    p50 = statistics.median(flat) * 1000
    p99 = flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000
    print("DMS gateway HTTP+auth layer only (in-memory stand-in backend, loopback)")
    print(
        f"clients={args.clients} package={args.size} B quirks={args.sdk_quirks} "
        f"seconds={elapsed:.1f}"
    )
    print(
        f"sendEdoc: {len(flat)} requests, {len(flat) / elapsed:.0f} req/s, "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {flat[-1] * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
