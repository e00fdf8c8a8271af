#!/usr/bin/env python3
"""Transport throughput on the local RabbitMQ: raw pika baseline versus transport.link.Link.

Measures, in a throwaway vhost with the axis topology (durable quorum queue):
  raw publish   pika SelectConnection, persistent + mandatory, confirms pipelined in a window
  raw consume   pika basic_consume, manual acks (multiple) per ioloop turn, bounded prefetch
  link publish  Link with an in-memory outbox (fetch_outgoing / on_confirmed)
  link consume  Link with a no-op handle_batch (all ACK)

    .venv/bin/python scripts/bench_transport.py [--count 20000] [--size 5120] [--json]

The node benchmark (scripts/bench_node.py) may import ``raw_publish_rate`` / ``raw_consume_rate``
from this file (runpy/importlib) to measure the baseline in the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from typing import Any
from urllib.parse import quote

import pika

from edoc_axis.log import configure_logging
from edoc_axis.transport.link import Link
from edoc_axis.transport.message import Confirmation, IncomingMessage, Outcome, OutgoingMessage
from edoc_axis.transport.provision import declare_topology
from edoc_axis.transport.topology import Topology

TOPOLOGY = Topology()


def rabbitmqctl(*args: str) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([exe, "-q", *args], check=True, capture_output=True, timeout=60)


def raw_publish_rate(url: str, routing_key: str, count: int, size: int, window: int) -> float:
    """Messages/s published with pipelined confirms by bare pika (no outbox, no bookkeeping)."""
    body = b"x" * size
    props = pika.BasicProperties(delivery_mode=2, message_id="bench", type="edoc",
                                 content_type="application/xml")
    state = {"sent": 0, "acked": 0, "start": 0.0, "end": 0.0}
    connection: Any = None

    def fill(channel: Any) -> None:
        while state["sent"] < count and state["sent"] - state["acked"] < window:
            channel.basic_publish(TOPOLOGY.exchange, routing_key, body, props, mandatory=True)
            state["sent"] += 1

    def on_confirm(channel: Any, frame: Any) -> None:
        state["acked"] = frame.method.delivery_tag  # acks arrive in order on one channel
        if state["acked"] >= count:
            state["end"] = time.perf_counter()
            connection.close()
        else:
            fill(channel)

    def on_channel(channel: Any) -> None:
        def confirmed(_frame: Any) -> None:
            state["start"] = time.perf_counter()
            fill(channel)

        channel.confirm_delivery(lambda frame: on_confirm(channel, frame), callback=confirmed)

    connection = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_close_callback=lambda c, _r: c.ioloop.stop())
    connection.ioloop.start()
    connection.ioloop.close()
    return count / (state["end"] - state["start"])


def raw_consume_rate(url: str, queue: str, count: int, prefetch: int) -> float:
    """Messages/s consumed with manual acks (one multiple-ack per ioloop turn) by bare pika."""
    state: dict[str, Any] = {"got": 0, "last": 0, "scheduled": False, "start": 0.0, "end": 0.0}
    connection: Any = None

    def ack(channel: Any) -> None:
        state["scheduled"] = False
        channel.basic_ack(state["last"], multiple=True)
        if state["got"] >= count:
            state["end"] = time.perf_counter()
            connection.close()

    def on_message(channel: Any, method: Any, _props: Any, _body: bytes) -> None:
        if not state["got"]:
            state["start"] = time.perf_counter()
        state["got"] += 1
        state["last"] = method.delivery_tag
        if not state["scheduled"]:
            state["scheduled"] = True
            connection.ioloop.add_callback_threadsafe(lambda: ack(channel))

    def on_channel(channel: Any) -> None:
        channel.basic_qos(prefetch_count=prefetch,
                          callback=lambda _f: channel.basic_consume(queue, on_message))

    connection = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_close_callback=lambda c, _r: c.ioloop.stop())
    connection.ioloop.start()
    connection.ioloop.close()
    return count / (state["end"] - state["start"])


def link_publish_rate(url: str, routing_key: str, count: int, size: int, window: int) -> float:
    """Messages/s published by a Link from an in-memory outbox until all are confirmed."""
    body = b"x" * size
    lock = threading.Lock()
    next_token = [1]
    confirmed = [0]
    done = threading.Event()

    def fetch(n: int) -> list[OutgoingMessage]:
        with lock:
            first = next_token[0]
            last = min(count + 1, first + n)
            next_token[0] = last
        return [OutgoingMessage(t, f"bench-{t}", routing_key, body, "edoc") for t in
                range(first, last)]

    def on_confirmed(confirmations: list[Confirmation]) -> None:
        confirmed[0] += sum(1 for c in confirmations if c.ok)
        if confirmed[0] >= count:
            done.set()

    link = Link(url, TOPOLOGY, user_id="guest", fetch_outgoing=fetch, on_confirmed=on_confirmed,
                window=window)
    start = time.perf_counter()
    thread = threading.Thread(target=link.run)
    thread.start()
    done.wait(600)
    elapsed = time.perf_counter() - start
    link.stop()
    thread.join()
    return count / elapsed


def link_consume_rate(url: str, queue: str, count: int, prefetch: int) -> float:
    """Messages/s consumed by a Link whose handler acks everything."""
    got = [0]
    stamps = [0.0, 0.0]
    done = threading.Event()

    def handle(batch: list[IncomingMessage]) -> list[Outcome]:
        if not got[0]:
            stamps[0] = time.perf_counter()
        got[0] += len(batch)
        if got[0] >= count:
            stamps[1] = time.perf_counter()
            done.set()
        return [Outcome.ACK] * len(batch)

    link = Link(url, TOPOLOGY, user_id="guest", queue=queue, handle_batch=handle,
                prefetch=prefetch)
    thread = threading.Thread(target=link.run)
    thread.start()
    done.wait(600)
    link.stop()
    thread.join()
    return count / (stamps[1] - stamps[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--size", type=int, default=5120, help="body bytes (default 5 KB)")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--prefetch", type=int, default=256)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    configure_logging("warning")

    vhost = f"edoc-bench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    url = f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
    try:
        declare_topology(url, TOPOLOGY, ["RAW", "LINK"])
        results = {
            "count": args.count, "size": args.size, "window": args.window,
            "prefetch": args.prefetch,
            "raw_publish": raw_publish_rate(url, "RAW", args.count, args.size, args.window),
            "raw_consume": raw_consume_rate(url, TOPOLOGY.queue_for("RAW"), args.count,
                                            args.prefetch),
            "link_publish": link_publish_rate(url, "LINK", args.count, args.size, args.window),
            "link_consume": link_consume_rate(url, TOPOLOGY.queue_for("LINK"), args.count,
                                              args.prefetch),
        }
    finally:
        rabbitmqctl("delete_vhost", vhost)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{args.count} messages of {args.size} bytes, window {args.window}, "
              f"prefetch {args.prefetch}, durable quorum queue")
        for kind in ("publish", "consume"):
            raw, link = results[f"raw_{kind}"], results[f"link_{kind}"]
            print(f"  {kind:8s} raw pika {raw:8.0f} msg/s   Link {link:8.0f} msg/s   "
                  f"ratio {link / raw:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
