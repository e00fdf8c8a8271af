"""The gateway's counters and their Prometheus text exposition on ``/metrics``.

``GatewayMetrics`` counts protocol calls by result, time spent per call and refusals by code
(thread-safe: the HTTP server answers on a thread per connection); ``render`` writes them with
the node's own numbers (``protocol.NodeMetrics``) in the text format 0.0.4.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from edoc_axis.gateway.protocol import NodeMetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


class GatewayMetrics:
    """Counters of one gateway since it started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        self._rejections: dict[str, int] = {}
        self._seconds: dict[str, float] = {}

    def count(self, call: str, result: str, seconds: float) -> None:
        """One answered protocol call (``result`` OK or FAIL) and the time it took."""
        with self._lock:
            key = (call, result)
            self._requests[key] = self._requests.get(key, 0) + 1
            self._seconds[call] = self._seconds.get(call, 0.0) + seconds

    def refused(self, code: str) -> None:
        """One refusal with ``code``."""
        with self._lock:
            self._rejections[code] = self._rejections.get(code, 0) + 1

    def render(self, node: NodeMetrics | None) -> bytes:
        """Prometheus text exposition of these counters and the node's numbers (None: the node
        did not answer; its lines are left out)."""
        lines: list[str] = []

        def metric(
            name: str, kind: str, help_text: str, samples: Iterable[tuple[str, Any]]
        ) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {value}" for labels, value in samples)

        with self._lock:
            requests = sorted(self._requests.items())
            rejections = sorted(self._rejections.items())
            seconds = sorted(self._seconds.items())
        if node is not None:
            metric(
                "edoc_axis_packages_in_total",
                "counter",
                "Packages received from the axis.",
                [("", node.packages_in)],
            )
            metric(
                "edoc_axis_packages_out_total",
                "counter",
                "Packages submitted for sending.",
                [("", node.packages_out)],
            )
            metric(
                "edoc_axis_outbox_depth",
                "gauge",
                "Messages waiting in the outbox for the broker.",
                [("", node.outbox_depth)],
            )
            metric(
                "edoc_axis_queue_lag_seconds",
                "gauge",
                "Age of the oldest unsent outbox message.",
                [("", node.queue_lag_seconds)],
            )
        node_rejections = sorted((node.rejections if node else {}).items())
        metric(
            "edoc_axis_rejections_total",
            "counter",
            "Refused requests and packages by code.",
            [(f'{{source="api",code="{_label(c)}"}}', n) for c, n in rejections]
            + [(f'{{source="node",code="{_label(c)}"}}', n) for c, n in node_rejections],
        )
        metric(
            "edoc_axis_dms_requests_total",
            "counter",
            "DMS protocol calls by result.",
            [(f'{{call="{c}",result="{r}"}}', n) for (c, r), n in requests],
        )
        metric(
            "edoc_axis_dms_request_seconds_total",
            "counter",
            "Time spent answering DMS protocol calls.",
            [(f'{{call="{c}"}}', f"{s:.6f}") for c, s in seconds],
        )
        if node is not None and node.broker_connected is not None:
            metric(
                "edoc_axis_broker_connected",
                "gauge",
                "1 when the broker link is up.",
                [("", int(node.broker_connected))],
            )
        return ("\n".join(lines) + "\n").encode("utf-8")
