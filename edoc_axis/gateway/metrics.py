"""The gateway's metrics on ``/metrics``, exposed with prometheus-client.

``GatewayMetrics`` owns one registry per gateway (several gateways may live in one process, as in
the tests): protocol calls by result (``edoc_axis_dms_requests_total``), the time spent answering
them (``edoc_axis_dms_request_seconds``, a histogram per call), request body bytes the gateway
read (``edoc_axis_dms_body_bytes_total``: a request refused from its headers reads none), and,
asked of the node at each scrape, its numbers (``protocol.NodeMetrics``) with refusals by code
and source (``edoc_axis_rejections_total{source="api"|"node"}``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edoc_axis.gateway.protocol import NodeMetrics

CONTENT_TYPE = CONTENT_TYPE_LATEST


class _NodeNumbers(Collector):
    """The node's numbers and refusals by code, collected when scraped."""

    def __init__(self, node: Callable[[], NodeMetrics | None]) -> None:
        self._node = node
        self._lock = threading.Lock()
        self._refused: dict[str, int] = {}

    def describe(self) -> Iterator[Metric]:
        return iter(())  # nothing to check at registration; the node is asked only when scraped

    def refused(self, code: str) -> None:
        with self._lock:
            self._refused[code] = self._refused.get(code, 0) + 1

    def collect(self) -> Iterator[Metric]:
        node = self._node()
        with self._lock:
            refused = sorted(self._refused.items())
        rejections = CounterMetricFamily(
            "edoc_axis_rejections", "Refused requests and packages by code.",
            labels=("source", "code"))
        for code, count in refused:
            rejections.add_metric(("api", code), count)
        for code, count in sorted((node.rejections if node else {}).items()):
            rejections.add_metric(("node", code), count)
        yield rejections
        if node is None:  # the node did not answer: its lines are left out
            return
        yield CounterMetricFamily("edoc_axis_packages_in", "Packages received from the axis.",
                                  value=node.packages_in)
        yield CounterMetricFamily("edoc_axis_packages_out", "Packages submitted for sending.",
                                  value=node.packages_out)
        yield GaugeMetricFamily("edoc_axis_outbox_depth",
                                "Messages waiting in the outbox for the broker.",
                                value=node.outbox_depth)
        yield GaugeMetricFamily("edoc_axis_queue_lag_seconds",
                                "Age of the oldest unsent outbox message.",
                                value=node.queue_lag_seconds)
        if node.broker_connected is not None:
            yield GaugeMetricFamily("edoc_axis_broker_connected", "1 when the broker link is up.",
                                    value=int(node.broker_connected))


class GatewayMetrics:
    """The metrics of one gateway since it started (thread-safe)."""

    def __init__(self, node: Callable[[], NodeMetrics | None]) -> None:
        """``node`` returns the node's numbers at scrape time, or None when it does not answer."""
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "edoc_axis_dms_requests", "DMS protocol calls by result.", ("call", "result"),
            registry=self.registry)
        self._seconds = Histogram(
            "edoc_axis_dms_request_seconds", "Time spent answering DMS protocol calls.",
            ("call",), registry=self.registry)
        self._body_bytes = Counter(
            "edoc_axis_dms_body_bytes", "Request body bytes the gateway read, by call.",
            ("call",), registry=self.registry)
        self._node = _NodeNumbers(node)
        self.registry.register(self._node)

    def count(self, call: str, result: str, seconds: float) -> None:
        """One answered protocol call (``result`` OK or FAIL) and the time it took."""
        self._requests.labels(call, result).inc()
        self._seconds.labels(call).observe(seconds)

    def body_read(self, call: str, size: int) -> None:
        """``size`` bytes of a ``call``'s body were read."""
        self._body_bytes.labels(call).inc(size)

    def refused(self, code: str) -> None:
        """One refusal with ``code``."""
        self._node.refused(code)

    def render(self) -> bytes:
        """The exposition (``CONTENT_TYPE``); asks the node for its numbers."""
        return generate_latest(self.registry)
