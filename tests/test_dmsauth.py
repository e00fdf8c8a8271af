"""DMS authentication as the deployed Java SDK really sends: header bytes, time zones.

The gateway runs over ``InMemoryNode`` (see test_api); requests go over a real socket with the
exact bytes the SDK writes: one byte per character, the low byte of its code point.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_api import ORGAN_A, PACKAGE, SYSTEM_A, InMemoryNode, assert_fail, start
from test_config import MINIMAL, _write

from edoc_axis.config.load import load_settings
from edoc_axis.config.zone import timezone_named
from edoc_axis.edxml.identifier import VN_TZ
from edoc_axis.errors import ConfigError, RequestRefused
from edoc_axis.gateway.client import DmsClient
from edoc_axis.gateway.sdk import low_byte_text
from edoc_axis.gateway.server import DmsServer
from edoc_axis.gateway.service import DmsGateway


@pytest.fixture
def served() -> Iterator[tuple[DmsServer, InMemoryNode]]:
    """A gateway over a test node that holds one received package IN-1 for agency A."""
    node = InMemoryNode()
    node.deliver("IN-1", ORGAN_A, PACKAGE)
    server = start(node)
    yield server, node
    server.stop()


def sdk(server: DmsServer, secret: str = SYSTEM_A.secret) -> DmsClient:
    """An SDK-like client of agency A."""
    return DmsClient(server.url, SYSTEM_A.systemid, secret, sdk_quirks=True)


def post(
    server: DmsServer, path: str, headers: list[tuple[str, bytes]]
) -> tuple[int, dict[str, Any]]:
    """Write one request with exactly these header bytes on a fresh socket; (status, JSON)."""
    head = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers)
    request = (f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               "Content-Length: 2\r\n").encode() + head + b"\r\n{}"
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    status_line, _, rest = b"".join(chunks).partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_low_byte_text_is_what_the_server_reads() -> None:
    """(byte) ch per character: đ -> U+0011, ậ -> U+00AD, ASCII and Latin-1 unchanged."""
    assert low_byte_text("đã nhận") == "\x11ã nh\xadn"
    assert low_byte_text("done ã") == "done ã"


def test_vietnamese_description_from_the_sdk_is_a_header_encoding_error(
    served: tuple[DmsServer, InMemoryNode],
) -> None:
    """The SDK's bytes for updateStatus description "đã nhận" (sign-header mangled the same
    way, so the HMAC fails): AUTH_HEADER_ENCODING naming the header and the way out."""
    server, node = served
    client = sdk(server)
    headers = client.prepare({"docId": "IN-1", "status": "done", "description": "đã nhận"})
    wire = [(name, client.header_bytes(value)) for name, value in headers]
    assert dict(wire)["XroadVnpt-description"] == b"\x11\xe3 nh\xadn"
    assert b'"XroadVnpt-description":"\x11\xe3 nh\xadn"' in dict(wire)["XroadVnpt-sign-header"]
    status, answer = post(server, "/updateStatus", wire)
    assert status == 401
    assert_fail(answer, "AUTH_HEADER_ENCODING")
    assert "XroadVnpt-description" in answer["ErrorDesc"]
    assert "ASCII" in answer["ErrorDesc"] and "percent-encode" in answer["ErrorDesc"]
    assert node.acks == []


def test_sdk_client_raises_the_encoding_code(served: tuple[DmsServer, InMemoryNode]) -> None:
    """DmsClient(sdk_quirks=True) sends those bytes itself and gets AUTH_HEADER_ENCODING."""
    server, node = served
    with sdk(server) as client, pytest.raises(RequestRefused) as caught:
        client.update_status("IN-1", "processing", "đang xử lý")
    assert caught.value.code == "AUTH_HEADER_ENCODING"
    assert node.acks == []


def test_latin1_text_from_the_sdk_is_verified_and_accepted(
    served: tuple[DmsServer, InMemoryNode],
) -> None:
    """Text within ISO-8859-1 arrives intact from the SDK: its HMAC (over UTF-8) verifies."""
    server, node = served
    with sdk(server) as client:
        client.update_status("IN-1", "processing", "ã é ü")
        assert client.received()[0]["status_desc"] == "ã é ü"
    assert node.acks[-1][3] == "ã é ü"


def test_wrong_secret_with_utf8_text_stays_bad_hmac(
    served: tuple[DmsServer, InMemoryNode],
) -> None:
    """A UTF-8 client with the wrong secret and Vietnamese text is AUTH_BAD_HMAC, not an
    encoding problem: its bytes are valid UTF-8 without control characters."""
    server, _node = served
    client = DmsClient(server.url, SYSTEM_A.systemid, "not-the-secret")
    with client, pytest.raises(RequestRefused) as caught:
        client.update_status("IN-1", "processing", "đã nhận")
    assert caught.value.code == "AUTH_BAD_HMAC"


def test_header_mangled_while_the_sign_header_is_intact(
    served: tuple[DmsServer, InMemoryNode],
) -> None:
    """The other order: sign-header sent as UTF-8 (HMAC verifies) but description as the low
    bytes of its signed value: AUTH_HEADER_ENCODING for that header, nothing applied."""
    server, node = served
    client = DmsClient(server.url, SYSTEM_A.systemid, SYSTEM_A.secret)
    headers = client.prepare({"docId": "IN-1", "status": "done", "description": "đã nhận"})
    wire = [(name, low_byte_text(value).encode("latin-1") if name == "XroadVnpt-description"
             else value.encode("utf-8")) for name, value in headers]
    status, answer = post(server, "/updateStatus", wire)
    assert status == 401
    assert_fail(answer, "AUTH_HEADER_ENCODING")
    assert "XroadVnpt-description" in answer["ErrorDesc"]
    assert node.acks == []


def test_timezone_names_and_offsets() -> None:
    """IANA names, UTC and fixed offsets are zones; anything else is a ValueError saying what
    is accepted."""
    assert timezone_named("Asia/Ho_Chi_Minh").utcoffset(None) in (None, timedelta(hours=7))
    assert timezone_named("UTC").utcoffset(None) == timedelta(0)
    assert timezone_named("+07:00").utcoffset(None) == timedelta(hours=7)
    assert timezone_named("UTC-5").utcoffset(None) == timedelta(hours=-5)
    for bad in ("Mars/Olympus", "+25:00", ""):
        with pytest.raises(ValueError, match=r"IANA|beyond"):
            timezone_named(bad)


def test_vietnam_zone_has_no_daylight_saving() -> None:
    """Read in Asia/Ho_Chi_Minh, a summer and a winter timestamp are both UTC+7."""
    zone = timezone_named("Asia/Ho_Chi_Minh")
    for month in (1, 7):
        local = datetime(2026, month, 1, 12, tzinfo=zone)
        assert local.astimezone(UTC) == datetime(2026, month, 1, 5, tzinfo=UTC)
        assert local.astimezone(VN_TZ).hour == 12


def test_api_defaults_serve_a_long_lived_sdk_in_vietnam_time(tmp_path: Path) -> None:
    """Without an [api] table: no timestamp age limit, timestamps read at UTC+7."""
    api = load_settings(_write(tmp_path), env={}).api
    assert api.max_timestamp_age == 0
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    assert DmsGateway(InMemoryNode(), [], api).timezone.utcoffset(moment) == timedelta(hours=7)


def test_api_timezone_setting_reaches_the_gateway(tmp_path: Path) -> None:
    """[api] timezone = "UTC" (or EDOC_AXIS_API_TIMEZONE) is the zone the gateway reads in."""
    path = _write(tmp_path, MINIMAL + '\n[api]\ntimezone = "UTC"\n')
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    utc = DmsGateway(InMemoryNode(), [], load_settings(path, env={}).api)
    assert utc.timezone.utcoffset(moment) == timedelta(0)
    env = {"EDOC_AXIS_API_TIMEZONE": "+05:30"}
    india = DmsGateway(InMemoryNode(), [], load_settings(_write(tmp_path), env=env).api)
    assert india.timezone.utcoffset(moment) == timedelta(hours=5, minutes=30)


def test_unknown_timezone_is_a_config_error(tmp_path: Path) -> None:
    """A zone name that does not exist is CONFIG_TIMEZONE naming api.timezone."""
    path = _write(tmp_path, MINIMAL + '\n[api]\ntimezone = "Asia/Hanoi-City"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert (caught.value.code, caught.value.element) == ("CONFIG_TIMEZONE", "api.timezone")
    assert "Asia/Ho_Chi_Minh" in caught.value.message
