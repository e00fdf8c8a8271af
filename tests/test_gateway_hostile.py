"""The DMS gateway under the attacks of issue 11 (holes 2-5): each one reproduced on a real socket.

The gateway runs over ``InMemoryNode`` (see test_api) with short deadlines, so each attack takes
a second or two; ``scripts/attack_gateway.py`` runs them at scale against the real node.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs
from test_api import ORGAN_A, PACKAGE, SYSTEM_A, InMemoryNode, assert_fail, client_a, start

from edoc_axis.gateway.client import DmsClient
from edoc_axis.gateway.guard import ServerLimits
from edoc_axis.gateway.sdk import format_sdk_timestamp, sha256_hex, sign_headers
from edoc_axis.gateway.server import DmsServer

LIMITS = ServerLimits(max_connections_per_client=64, idle_timeout=3.0, header_timeout=1.0,
                      request_timeout=1.5)
MiB = 1024 * 1024


@pytest.fixture
def node() -> InMemoryNode:
    """A fresh in-memory test double of the node."""
    return InMemoryNode()


@pytest.fixture
def server(node: InMemoryNode) -> Iterator[DmsServer]:
    """The gateway with short deadlines (LIMITS), stopped afterwards."""
    srv = start(node, server_options={"limits": LIMITS})
    yield srv
    srv.stop()


def request_head(path: str, headers: list[tuple[str, str]], length: int) -> bytes:
    """An HTTP/1.1 POST head announcing ``length`` body bytes."""
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def read_answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Read until the server closes; (HTTP status, JSON body)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def send_raw(server: DmsServer, data: bytes) -> tuple[int, dict[str, Any]]:
    """Write ``data`` on a fresh connection and read the whole answer."""
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(data)
        return read_answer(sock)


def health(server: DmsServer) -> tuple[int, float]:
    """GET /healthz on a fresh connection: (status, seconds taken)."""
    started = time.monotonic()
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _answer = read_answer(sock)
    return status, time.monotonic() - started


def signed_headers(sign_header: str, secret: str = SYSTEM_A.secret) -> list[tuple[str, str]]:
    """The auth headers for an arbitrary sign-header string, HMAC over it with ``secret``."""
    stamp = sign_header.split('"XroadVnpt-timestamp":"', 1)[1].split('"', 1)[0]
    return [("XroadVnpt-systemid", SYSTEM_A.systemid),
            ("XroadVnpt-timestamp", stamp),
            ("XroadVnpt-sign-header-key", "systemid;timestamp;deep"),
            ("XroadVnpt-sign-header", sign_header),
            ("XroadVnpt-hash-header", sign_headers(secret, sign_header))]


def deep_sign_header(depth: int, extra: str = "") -> str:
    """A sign-header whose ``deep`` entry nests ``depth`` JSON arrays."""
    stamp = format_sdk_timestamp(datetime.now(UTC))
    return ('{"XroadVnpt-systemid":"' + SYSTEM_A.systemid + '","XroadVnpt-timestamp":"' + stamp
            + '","XroadVnpt-deep' + extra + '":' + "[" * depth + "]" * depth + "}")


# --- hole 2: JSON nested thousands deep in signed headers ----------------------------------------


@pytest.mark.parametrize("depth", [5_000, 10_000])
def test_deep_json_in_a_signed_sign_header_is_a_400(server: DmsServer, depth: int) -> None:
    """A correctly signed sign-header nesting JSON 5,000-10,000 deep is HEADER_JSON_TOO_DEEP
    (400), with no crash and no traceback in the log."""
    with capture_logs() as logs:
        status, answer = send_raw(server, request_head(
            "/getAgenciesList", signed_headers(deep_sign_header(depth)), 0))
    assert status == 400
    assert_fail(answer, "HEADER_JSON_TOO_DEEP")
    assert not [e for e in logs if e.get("exc_info") or e["event"] == "dms_call_crashed"]


def test_deep_json_in_an_unverified_sign_header_is_a_400(server: DmsServer) -> None:
    """Without the secret: a sign-header whose bytes are not UTF-8 (the path that looks for the
    SDK's low-byte writing parses it before any HMAC holds) and nests 5,000 deep is a 400."""
    sign_header = deep_sign_header(5_000, extra="\xe3")
    head = request_head("/getAgenciesList", signed_headers(sign_header, "not-the-secret"), 0)
    with capture_logs() as logs:
        status, answer = send_raw(server, head.replace("\xe3".encode(), b"\xe3"))
    assert status == 400
    assert_fail(answer, "HEADER_JSON_TOO_DEEP")
    assert not [e for e in logs if e.get("exc_info")]


def test_deep_json_in_the_to_header_is_a_400(server: DmsServer, node: InMemoryNode) -> None:
    """sendEdoc signed by the real DMS with a ``to`` list nested 10,000 deep: a 400, nothing
    submitted."""
    deep = "[" * 10_000 + "]" * 10_000
    headers = client_a(server).prepare(
        {"from": ORGAN_A, "to": deep, "servicetype": "eDoc", "messagetype": "edoc",
         "hash-file": sha256_hex(PACKAGE)}, "application/octet-stream")
    status, answer = send_raw(server, request_head("/sendEdoc", headers, len(PACKAGE)) + PACKAGE)
    assert status == 400
    assert_fail(answer, "HEADER_JSON_TOO_DEEP")
    assert node.submitted == []


# --- hole 3: the body of an unauthenticated request is never read --------------------------------


def test_unauthenticated_upload_is_refused_from_its_headers(server: DmsServer) -> None:
    """A 15 MB sendEdoc without the secret is refused (401) as soon as its headers arrive: the
    client sends no body byte and still gets its answer, the gateway reads none."""
    headers = DmsClient(server.url, SYSTEM_A.systemid, "not-the-secret").prepare(
        {"from": ORGAN_A, "servicetype": "eDoc", "messagetype": "edoc", "hash-file": "0" * 64},
        "application/octet-stream")
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request_head("/sendEdoc", headers, 15 * MiB))
        status, answer = read_answer(sock)  # the server answers and closes: no body was needed
    assert status == 401
    assert_fail(answer, "AUTH_BAD_HMAC")
    registry = server.gateway.metrics.registry
    assert registry.get_sample_value("edoc_axis_dms_body_bytes_total",
                                     {"call": "sendEdoc"}) is None  # not one byte counted


def test_authenticated_upload_reads_its_body(server: DmsServer, node: InMemoryNode) -> None:
    """The same call with the secret is read and submitted, its bytes counted."""
    client_a(server).send_edoc(PACKAGE, from_organ=ORGAN_A)
    assert node.submitted[0][1] == PACKAGE
    assert server.gateway.metrics.registry.get_sample_value(
        "edoc_axis_dms_body_bytes_total", {"call": "sendEdoc"}) == len(PACKAGE)


# --- hole 4: slow clients ------------------------------------------------------------------------


def test_slow_loris_is_cut_at_the_header_deadline(server: DmsServer) -> None:
    """Twenty clients trickling their headers a byte at a time are answered 408 and closed at
    the header deadline (1 s here), while /healthz keeps answering at once."""
    closed_after: list[float] = []
    answers: list[bytes] = []

    def trickle() -> None:
        with socket.create_connection(server.address, timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(b"POST /sendEdoc HTTP/1.1\r\nHost: x\r\n")
            sock.settimeout(0.2)
            for byte in b"X-Slow: " + b"a" * 100:
                try:
                    sock.sendall(bytes([byte]))
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                answers.append(data)
                break
            closed_after.append(time.monotonic() - started)

    threads = [threading.Thread(target=trickle) for _ in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    statuses = [health(server) for _ in range(3)]
    for thread in threads:
        thread.join(15)
    assert all(status == 200 and took < 1.0 for status, took in statuses)
    assert len(closed_after) == 20 and all(0.9 < t < 3.0 for t in closed_after), closed_after
    assert answers and all(a.startswith(b"HTTP/1.1 408") and b"REQUEST_TIMEOUT" in a
                           for a in answers)


def test_idle_connection_is_closed_after_the_idle_timeout(server: DmsServer) -> None:
    """A connection that never sends a byte is closed silently after idle_timeout (3 s here)."""
    with socket.create_connection(server.address, timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(65536) == b""
        assert 2.5 < time.monotonic() - started < 6


def test_connections_per_client_address_are_capped(node: InMemoryNode) -> None:
    """Past max_connections_per_client from one address, a new connection from it gets 429
    TOO_MANY_CONNECTIONS at once; another address is still served."""
    srv = start(node, server_options={"limits": ServerLimits(max_connections_per_client=3)})
    held = [socket.create_connection(srv.address, timeout=5) for _ in range(3)]
    try:
        time.sleep(0.2)  # the three are admitted
        with socket.create_connection(srv.address, timeout=5) as extra:
            status, answer = read_answer(extra)
        assert status == 429
        assert_fail(answer, "TOO_MANY_CONNECTIONS")
        other = socket.create_connection(srv.address, timeout=5,
                                         source_address=("127.0.0.2", 0))
        with other:
            other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_answer(other)[0] == 200
    finally:
        for sock in held:
            sock.close()
        srv.stop()


# --- hole 5: a body shorter than its Content-Length ----------------------------------------------


def _signed_send(server: DmsServer) -> bytes:
    headers = client_a(server).prepare(
        {"from": ORGAN_A, "servicetype": "eDoc", "messagetype": "edoc",
         "hash-file": sha256_hex(PACKAGE)}, "application/octet-stream")
    return request_head("/sendEdoc", headers, len(PACKAGE))


def test_body_ended_early_is_a_json_error(server: DmsServer, node: InMemoryNode) -> None:
    """A client that stops sending (half-close) after part of its announced body gets 400
    BODY_INCOMPLETE in the protocol's JSON, not a dropped connection."""
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(_signed_send(server) + PACKAGE[:100])
        sock.shutdown(socket.SHUT_WR)
        status, answer = read_answer(sock)
    assert status == 400
    assert_fail(answer, "BODY_INCOMPLETE")
    assert "100 of the" in answer["ErrorDesc"] and answer["DocId"] == ""
    assert node.submitted == []


def test_body_stalled_is_a_json_timeout(server: DmsServer, node: InMemoryNode) -> None:
    """A client that sends part of its body and then waits gets 408 REQUEST_TIMEOUT at the
    request deadline (1.5 s here)."""
    with socket.create_connection(server.address, timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(_signed_send(server) + PACKAGE[:100])
        status, answer = read_answer(sock)
        took = time.monotonic() - started
    assert status == 408 and 1.2 < took < 4
    assert_fail(answer, "REQUEST_TIMEOUT")
    assert node.submitted == []
