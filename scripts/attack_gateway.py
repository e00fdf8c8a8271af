#!/usr/bin/env python3
"""Attack the DMS gateway of a real node and print how it holds (issue 11, "Done when").

A node (``bench_api.real_node``: dev keys, SQLite store, no broker, packages stay queued) serves
its gateway in a child process, so that its memory is measured alone. From other loopback
addresses (attackers are other hosts) this script then keeps, for ``--seconds``:

- ``--slow`` slow-loris connections (default 300, spread over 10 addresses), each sending one
  byte of a request head every ``--trickle`` seconds and reconnecting when the gateway closes it;
- ``--uploads`` concurrent unauthenticated uploads (default 64, over 4 addresses): sendEdoc heads
  with a wrong HMAC announcing ``--upload-mb`` MB (default 15), then the body in 64 KiB writes;
  each reconnects 0.1 s after its connection ends.

Meanwhile, from 127.0.0.1, it asks ``/healthz`` every 0.5 s and sends one valid sendEdoc (a
real signed-by-the-node package) every 2 s, and samples the node's RSS. It prints the numbers;
nothing is asserted (run it against any version of the gateway).

    .venv/bin/python scripts/attack_gateway.py [--seconds 20] [--slow 300] [--uploads 64]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_api import ORGAN, PEER, SECRET, document_maker, real_node

from edoc_axis.gateway.client import DmsClient
from edoc_axis.log import configure_logging

HEAD = b"POST /sendEdoc HTTP/1.1\r\nHost: gateway\r\nX-Slow: "


def serve(folder: Path) -> None:
    """Child: run the node's gateway until stdin closes; print its URL."""
    configure_logging("error")
    node, _runner, hosted = real_node(folder, 1, None)
    print(hosted.url, flush=True)
    sys.stdin.read()
    hosted.stop()
    node.close()


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of ``pid`` in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


class SlowLoris(threading.Thread):
    """Keeps ``count`` connections trickling a request head; reconnects the ones cut."""

    def __init__(self, address: tuple[str, int], count: int, trickle: float,
                 stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.address, self.count, self.trickle, self.stop = address, count, trickle, stop
        self.sources = [f"127.0.0.{2 + i % 10}" for i in range(count)]
        self.cut = 0  # connections the gateway ended (answered or closed)
        self.refused = 0  # connections that could not be opened
        self.open_now = 0

    def _connect(self, slot: int) -> socket.socket | None:
        try:
            sock = socket.create_connection(self.address, timeout=2,
                                            source_address=(self.sources[slot], 0))
            sock.sendall(HEAD)
            sock.setblocking(False)
            return sock
        except OSError:
            self.refused += 1
            return None

    def run(self) -> None:
        socks: list[socket.socket | None] = [self._connect(i) for i in range(self.count)]
        while not self.stop.wait(self.trickle):
            live = [s for s in socks if s is not None]
            readable, _, _ = select.select(live, [], [], 0) if live else ([], [], [])
            for slot, sock in enumerate(socks):
                if sock is None:
                    socks[slot] = self._connect(slot)
                    continue
                try:
                    if sock in readable:
                        raise ConnectionResetError  # an answer (408/503) or the end
                    sock.send(b"a")
                except OSError:
                    self.cut += 1
                    sock.close()
                    socks[slot] = self._connect(slot)
            self.open_now = sum(s is not None for s in socks)
        for sock in socks:
            if sock is not None:
                sock.close()


def upload(address: tuple[str, int], source: str, *, megabytes: int, stop: threading.Event,
           stats: dict[str, int], lock: threading.Lock) -> None:
    """One attacker: unauthenticated sendEdoc of ``megabytes`` MB, again and again."""
    size = megabytes * 1_000_000
    stamp = "01012026T000000+0000"
    signed = json.dumps({"XroadVnpt-systemid": "bench", "XroadVnpt-timestamp": stamp,
                         "XroadVnpt-from": ORGAN}, separators=(",", ":"))
    head = (f"POST /sendEdoc HTTP/1.1\r\nHost: gateway\r\nContent-Length: {size}\r\n"
            "Content-Type: application/octet-stream\r\nXroadVnpt-systemid: bench\r\n"
            f"XroadVnpt-timestamp: {stamp}\r\nXroadVnpt-from: {ORGAN}\r\n"
            "XroadVnpt-sign-header-key: systemid;timestamp;from\r\n"
            f"XroadVnpt-sign-header: {signed}\r\nXroadVnpt-hash-header: {'0' * 64}\r\n\r\n")
    chunk = b"\0" * 65536
    while not stop.is_set():
        sent = 0
        answer = b""
        try:
            with socket.create_connection(address, timeout=5,
                                          source_address=(source, 0)) as sock:
                sock.sendall(head.encode())
                while sent < size and not stop.is_set():
                    if select.select([sock], [], [], 0)[0]:  # answered before the body ended
                        break
                    sock.sendall(chunk)
                    sent += len(chunk)
                answer = sock.recv(200)
        except OSError:
            pass
        with lock:
            stats["attempts"] += 1
            stats["body_bytes_sent"] += sent
            if b" 401 " in answer[:20]:
                stats["answered_401"] += 1
        stop.wait(0.1)


def probe_health(url: str) -> tuple[int | str, float]:
    """GET /healthz on a fresh connection: (status or error, seconds)."""
    host_port = url.split("://", 1)[1]
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection(host_port, timeout=5)
        conn.request("GET", "/healthz")
        status: int | str = conn.getresponse().status
        conn.close()
    except OSError as exc:
        status = type(exc).__name__
    return status, time.perf_counter() - started


def body_bytes_read(url: str) -> float | None:
    """``edoc_axis_dms_body_bytes_total`` of sendEdoc from /metrics, None when not exposed."""
    conn = http.client.HTTPConnection(url.split("://", 1)[1], timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith('edoc_axis_dms_body_bytes_total{call="sendEdoc"}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--slow", type=int, default=300)
    parser.add_argument("--trickle", type=float, default=1.0)
    parser.add_argument("--uploads", type=int, default=64)
    parser.add_argument("--upload-mb", type=int, default=15)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    configure_logging("error")
    with tempfile.TemporaryDirectory(prefix="attack-gateway-") as tmp:
        child = subprocess.Popen([sys.executable, __file__, "--serve", tmp],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            run(args, child)
        finally:
            if child.stdin is not None:
                child.stdin.close()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGKILL)
                child.wait()


def run(args: argparse.Namespace, child: subprocess.Popen[str]) -> None:  # noqa: PLR0915
    assert child.stdout is not None
    url = child.stdout.readline().strip()
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    address = (host, int(port))
    make_document = document_maker(5 * 1024)
    numbers = itertools.count(1)
    with DmsClient(url, "bench", SECRET) as client:  # warm-up: one valid call before the attack
        client.send_edoc(make_document(next(numbers)), from_organ=ORGAN, to=[PEER])
    rss_before, _ = memory_mb(child.pid)
    print(f"gateway {url} (node pid {child.pid}); node RSS before the attack {rss_before:.0f} MB")

    stop = threading.Event()
    slow = SlowLoris(address, args.slow, args.trickle, stop)
    slow.start()
    stats = {"attempts": 0, "body_bytes_sent": 0, "answered_401": 0}
    lock = threading.Lock()
    uploaders = [threading.Thread(target=upload, daemon=True,
                                  args=(address, f"127.0.1.{1 + i % 4}"),
                                  kwargs={"megabytes": args.upload_mb, "stop": stop,
                                          "stats": stats, "lock": lock})
                 for i in range(args.uploads)]
    for thread in uploaders:
        thread.start()

    health: list[tuple[int | str, float]] = []
    sends: list[tuple[str, float]] = []
    rss_samples: list[float] = []
    began = time.monotonic()
    next_send = began + 2.0
    while time.monotonic() - began < args.seconds:
        health.append(probe_health(url))
        rss_samples.append(memory_mb(child.pid)[0])
        if time.monotonic() >= next_send:
            next_send += 2.0
            started = time.perf_counter()
            try:
                with DmsClient(url, "bench", SECRET, timeout=10) as client:
                    client.send_edoc(make_document(next(numbers)), from_organ=ORGAN, to=[PEER])
                outcome = "OK"
            except Exception as exc:  # reported, not raised
                outcome = f"{type(exc).__name__}: {str(exc)[:80]}"
            sends.append((outcome, time.perf_counter() - started))
        time.sleep(0.5)
    held = slow.open_now
    stop.set()
    slow.join(10)
    for thread in uploaders:
        thread.join(10)
    _, rss_peak = memory_mb(child.pid)

    ok_health = [took for status, took in health if status == 200]
    print(f"attack: {args.seconds:.0f} s, {args.slow} slow connections (one byte every "
          f"{args.trickle:g} s), {args.uploads} unauthenticated {args.upload_mb} MB uploads")
    print(f"/healthz: {len(ok_health)}/{len(health)} answered 200; latency p50 "
          f"{statistics.median(ok_health) * 1000 if ok_health else float('nan'):.0f} ms, max "
          f"{max(ok_health) * 1000 if ok_health else float('nan'):.0f} ms; other answers: "
          f"{sorted({str(s) for s, _ in health if s != 200})}")
    ok_sends = [took for outcome, took in sends if outcome == "OK"]
    print(f"valid sendEdoc: {len(ok_sends)}/{len(sends)} succeeded; latency max "
          f"{max(ok_sends) * 1000 if ok_sends else float('nan'):.0f} ms; failures: "
          f"{[o for o, _ in sends if o != 'OK'][:3]}")
    print(f"slow connections: {held} open at the end, {slow.cut} ended by the gateway, "
          f"{slow.refused} connects failed")
    print(f"uploads: {stats['attempts']} attempts, {stats['answered_401']} read a 401; the "
          f"attackers wrote {stats['body_bytes_sent'] / 1e6:.0f} MB of body into their sockets "
          f"({stats['body_bytes_sent'] / 1e6 / max(stats['attempts'], 1):.2f} MB per attempt)")
    read = body_bytes_read(url)
    print("request body bytes the gateway read (its metric, valid sends included): "
          + (f"{read / 1e6:.2f} MB" if read is not None else "not reported by this version"))
    print(f"node RSS: before {rss_before:.0f} MB, max sampled {max(rss_samples):.0f} MB, "
          f"peak (VmHWM) {rss_peak:.0f} MB")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
