"""The DMS client: signing exactly as the Java SDK, its quirks on demand, and error mapping."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from edoc_axis.edxml.identifier import VN_TZ
from edoc_axis.errors import EdocAxisError, RequestRefused, TemporaryFailure
from edoc_axis.gateway.client import DmsClient
from edoc_axis.gateway.sdk import format_sdk_timestamp, sdk_json, sha256_hex, sha256_hex_unpadded

FIXED = datetime(2026, 11, 26, 6, 10, 59, 201000, tzinfo=VN_TZ)


class Capture:
    """A fake axis endpoint that records requests and answers a canned JSON body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.answer: bytes = b'{"status":"OK","ErrorCode":"0","ErrorDesc":"Success","DocId":"D1"}'
        capture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                capture.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", str(len(capture.answer)))
                self.end_headers()
                self.wfile.write(capture.answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/vxp"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture() -> Iterator[Capture]:
    """A recording fake endpoint."""
    fake = Capture()
    yield fake
    fake.close()


def test_signature_is_hmac_of_compact_json(capture: Capture) -> None:
    """hash-header = hex HMAC-SHA256(secret, sign-header); sign-header is compact, case kept."""
    with DmsClient(capture.url, "sys-1", "s3cret", now=lambda: FIXED) as client:
        capture.answer = b'{"status":"OK","ErrorCode":"0","ErrorDesc":"Success","data":"AA=="}'
        client.get_edoc("D-1")
    path, headers, body = capture.requests[0]
    assert path == "/vxp/getEdoc"
    sign = headers["XroadVnpt-sign-header"]
    assert sign == (
        '{"XroadVnpt-timestamp":"26112026T061059+0201","XroadVnpt-systemid":"sys-1",'
        '"XroadVnpt-docId":"D-1"}'
    )
    expected = hmac.new(b"s3cret", sign.encode(), hashlib.sha256).hexdigest()
    assert headers["XroadVnpt-hash-header"] == expected
    assert headers["XroadVnpt-sign-header-key"] == "timestamp;systemid;docId"
    assert headers["XroadVnpt-docId"] == "D-1"
    assert body == b""


def test_plain_mode_sends_only_the_call_headers(capture: Capture) -> None:
    """Without quirks, a list call after a send carries no from or hash-file."""
    with DmsClient(capture.url, "sys-1", "s") as client:
        client.send_edoc(b"<p/>", from_organ="000.00.00.G22", to=["000.00.01.H53"])
        capture.answer = b'{"status":"OK","ErrorCode":"0","ErrorDesc":"Success","data":[]}'
        client.received()
    send_headers, send_body = capture.requests[0][1], capture.requests[0][2]
    assert send_body == b"<p/>"
    assert send_headers["XroadVnpt-hash-file"] == sha256_hex(b"<p/>")
    assert send_headers["XroadVnpt-to"] == '["000.00.01.H53"]'
    assert "XroadVnpt-from" not in capture.requests[1][1]


def test_sdk_quirks_reproduced(capture: Capture) -> None:
    """Quirk mode: sticky headers, one timestamp, signed Content-Type, unpadded hash, CRLF, {}."""
    data = b"<edXMLEnvelope/>"
    with DmsClient(capture.url, "sys-1", "s", sdk_quirks=True, now=lambda: FIXED) as client:
        client.send_edoc(data, from_organ="000.00.00.G22")
        capture.answer = b'{"status":"OK","ErrorCode":"0","ErrorDesc":"Success","data":[]}'
        client.received()
    (_, send_headers, send_body), (_, list_headers, list_body) = capture.requests
    assert send_body == data + b"\r\n"
    assert send_headers["XroadVnpt-hash-file"] == sha256_hex_unpadded(data)
    assert list_headers["XroadVnpt-hash-file"] == sha256_hex_unpadded(data)  # sticky
    assert list_headers["XroadVnpt-from"] == "000.00.00.G22"
    assert list_headers["XroadVnpt-timestamp"] == send_headers["XroadVnpt-timestamp"]
    signed = json.loads(list_headers["XroadVnpt-sign-header"])
    assert signed["XroadVnpt-Content-Type"] == "application/json"
    assert list_body == b"{}"


def test_unpadded_hex_drops_leading_zeros_per_byte() -> None:
    """0x0c renders as 'c': the SDK's Integer.toHexString per byte."""
    digest = hashlib.sha256(b"abc").digest()
    assert sha256_hex_unpadded(b"abc") == "".join(f"{b:x}" for b in digest)
    assert len(sha256_hex_unpadded(b"abc")) < 64


def test_timestamp_format_matches_the_sdk() -> None:
    """SimpleDateFormat ddMMyyyy'T'HHmmss+SSSS: millis padded to four digits."""
    assert format_sdk_timestamp(FIXED) == "26112026T061059+0201"


def test_gson_json_keeps_non_ascii() -> None:
    """Like Gson, non-ASCII is written raw (UTF-8), only U+2028/2029 escaped."""
    assert sdk_json({"XroadVnpt-description": "đã nhận\u2028"}) == (
        '{"XroadVnpt-description":"đã nhận\\u2028"}'
    )


def test_fail_answer_raises_with_code(capture: Capture) -> None:
    """A FAIL answer raises RequestRefused carrying the server's ErrorCode."""
    capture.answer = b'{"status":"FAIL","ErrorCode":"AUTH_BAD_HMAC","ErrorDesc":"no"}'
    with DmsClient(capture.url, "sys-1", "s") as client, pytest.raises(RequestRefused) as caught:
        client.agencies()
    assert caught.value.code == "AUTH_BAD_HMAC"


def test_non_json_answer(capture: Capture) -> None:
    """An answer that is not JSON is BAD_ANSWER, not a crash."""
    capture.answer = b"<html>proxy error</html>"
    with DmsClient(capture.url, "sys-1", "s") as client, pytest.raises(EdocAxisError) as caught:
        client.agencies()
    assert caught.value.code == "BAD_ANSWER"


def test_unreachable_endpoint_is_temporary() -> None:
    """Nothing listening: TemporaryFailure DMS_UNREACHABLE (retry later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = DmsClient(f"http://127.0.0.1:{port}", "s", "x")
    with client, pytest.raises(TemporaryFailure) as caught:
        client.agencies()
    assert caught.value.code == "DMS_UNREACHABLE"


def test_bad_endpoint() -> None:
    """A non-HTTP endpoint is refused when the client is built."""
    with pytest.raises(EdocAxisError):
        DmsClient("ftp://x", "s", "x")


def test_sdk_quirks_write_the_low_byte_of_each_header_character(capture: Capture) -> None:
    """Quirk mode sends (byte) ch per character, while the HMAC covers the UTF-8 sign-header."""
    with DmsClient(capture.url, "sys-1", "s3cret", sdk_quirks=True, now=lambda: FIXED) as client:
        client.update_status("D-1", "done", "đã nhận")
    headers = capture.requests[0][1]
    assert headers["XroadVnpt-description"] == "\x11ã nh\xadn"  # as latin-1 text on the server
    sent_json = headers["XroadVnpt-sign-header"]
    assert '"XroadVnpt-description":"\x11ã nh\xadn"' in sent_json
    original = sent_json.replace("\x11ã nh\xadn", "đã nhận")
    expected = hmac.new(b"s3cret", original.encode("utf-8"), hashlib.sha256).hexdigest()
    assert headers["XroadVnpt-hash-header"] == expected


def test_plain_mode_writes_utf8_headers(capture: Capture) -> None:
    """Without quirks a header's bytes are its UTF-8 (read back as latin-1 by the server)."""
    with DmsClient(capture.url, "sys-1", "s") as client:
        client.update_status("D-1", "done", "đã")
    assert capture.requests[0][1]["XroadVnpt-description"] == "đã".encode().decode("latin-1")


def test_sdk_object_keeps_its_first_timestamp(capture: Capture) -> None:
    """The clock is read once, when the quirk client is built; every call repeats that stamp."""
    readings: list[datetime] = []

    def clock() -> datetime:
        readings.append(datetime.now(VN_TZ) - timedelta(hours=3))
        return readings[-1]

    with DmsClient(capture.url, "sys-1", "s", sdk_quirks=True, now=clock) as client:
        client.agencies()
        client.agencies()
        client.received()
    stamps = {h["XroadVnpt-timestamp"] for _, h, _ in capture.requests}
    assert len(readings) == 1
    assert stamps == {format_sdk_timestamp(readings[0])}
    assert capture.requests[0][1]["XroadVnpt-hash-header"] == (
        capture.requests[1][1]["XroadVnpt-hash-header"])  # the same call: the same request


def test_timestamp_written_in_the_clients_zone(capture: Capture) -> None:
    """timezone=UTC writes the same instant as UTC wall time (7 h behind Vietnam time)."""
    with DmsClient(capture.url, "sys-1", "s", now=lambda: FIXED, timezone=UTC) as client:
        client.agencies()
    assert capture.requests[0][1]["XroadVnpt-timestamp"] == "25112026T231059+0201"


@pytest.mark.parametrize(("quirks", "value"), [(False, "a\nb"), (True, "\u010a")])
def test_header_value_that_would_break_http_is_refused(
    capture: Capture, quirks: bool, value: str
) -> None:
    """A value whose bytes hold CR or LF (U+010A's low byte is LF) is BAD_HEADER_VALUE, unsent."""
    client = DmsClient(capture.url, "sys-1", "s", sdk_quirks=quirks)
    with client, pytest.raises(EdocAxisError) as caught:
        client.update_status("D-1", "done", value)
    assert caught.value.code == "BAD_HEADER_VALUE"
    assert capture.requests == []
