"""The DMS gateway: every protocol call, every authentication failure, SDK quirks, robustness.

The backend here is ``InMemoryNode``, a test double of the node implementing DmsBackend; the
real node behind the gateway is exercised end-to-end elsewhere once wired.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from edoc_axis.config.settings import ApiSettings, DmsSystemSettings
from edoc_axis.edxml.identifier import VN_TZ
from edoc_axis.errors import NotFound, RequestRefused, SchemaViolation, StoreBusy
from edoc_axis.gateway.client import DmsClient
from edoc_axis.gateway.guard import ServerLimits
from edoc_axis.gateway.protocol import (
    AckState,
    AgencyItem,
    Kind,
    NodeMetrics,
    ReceivedItem,
    SentItem,
)
from edoc_axis.gateway.sdk import (
    parse_sdk_timestamp,
    sha256_hex,
    sha256_hex_unpadded,
    sign_headers,
)
from edoc_axis.gateway.server import DmsServer

ORGAN_A = "000.00.00.G22"
ORGAN_B = "000.00.01.H53"
SYSTEM_A = DmsSystemSettings("dms-a", "secret-a", ORGAN_A)
SYSTEM_B = DmsSystemSettings("dms-b", "secret-b", ORGAN_B)
PACKAGE = b"<edXMLEnvelope>" + b"x" * 5000 + b"</edXMLEnvelope>"


class InMemoryNode:
    """A test double of the node: keeps submitted and received packages in dictionaries."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.submitted: list[tuple[str, bytes, Kind, str, list[str] | None]] = []
        self.inbox: dict[str, dict[str, Any]] = {}
        self.acks: list[tuple[str, str, AckState, str | None]] = []
        self.fail_next: Exception | None = None

    def deliver(self, doc_id: str, to: str, data: bytes, kind: Kind = "edoc") -> None:
        """Pretend a package arrived from the axis for agency ``to``."""
        now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=VN_TZ)
        self.inbox[doc_id] = {
            "to": to,
            "data": data,
            "kind": kind,
            "state": "new",
            "desc": "",
            "from": ORGAN_B if to == ORGAN_A else ORGAN_A,
            "created": now,
            "updated": now,
        }

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    def submit(
        self, data: bytes, kind: Kind, declared_from: str, declared_to: list[str] | None
    ) -> str:
        self._maybe_fail()
        if data.startswith(b"<bad"):
            raise SchemaViolation("element Foo is not allowed", element="Foo", line=1)
        with self.lock:
            doc_id = f"DOC-{len(self.submitted) + 1}"
            self.submitted.append((doc_id, data, kind, declared_from, declared_to))
        return doc_id

    def received(self, agency: str, kind: Kind) -> list[ReceivedItem]:
        return [
            ReceivedItem(
                doc_id,
                e["from"],
                e["to"],
                e["kind"],
                e["state"],
                e["desc"],
                e["created"],
                e["updated"],
            )
            for doc_id, e in sorted(self.inbox.items())
            if e["to"] == agency and e["kind"] == kind and e["state"] != "done"
        ]

    def fetch(self, agency: str, doc_id: str) -> bytes:
        entry = self.inbox.get(doc_id)
        if entry is None or entry["to"] != agency:
            raise NotFound(f"no received package {doc_id}")
        return bytes(entry["data"])

    def acknowledge(
        self, agency: str, doc_id: str, state: AckState, description: str | None
    ) -> None:
        self._maybe_fail()
        self.fetch(agency, doc_id)
        self.inbox[doc_id]["state"] = state
        self.inbox[doc_id]["desc"] = description or ""
        self.acks.append((agency, doc_id, state, description))

    def sent(self, agency: str, kind: Kind, doc_id: str | None) -> list[SentItem]:
        out = []
        for sid, _data, skind, sfrom, sto in self.submitted:
            if sfrom != agency or skind != kind or (doc_id and sid != doc_id):
                continue
            for to in sto or [ORGAN_B]:
                out.append(
                    SentItem(
                        sfrom,
                        to,
                        sid,
                        "",
                        "sent",
                        "broker confirmed",
                        "01",
                        "arrived",
                        datetime(2026, 1, 2, 3, 4, 5, tzinfo=VN_TZ),
                        None,
                        "Subject",
                        "12/QD-BNV",
                        kind,
                    )
                )
        return out

    def agencies(self) -> list[AgencyItem]:
        return [
            AgencyItem("1", "", "G22", "Bộ Nội vụ", "a@x.vn", "", "", ORGAN_A),
            AgencyItem("2", "1", "H53", "Sở X", "", "024", "", ORGAN_B),
        ]

    def metrics(self) -> NodeMetrics:
        return NodeMetrics(
            packages_in=len(self.inbox),
            packages_out=len(self.submitted),
            outbox_depth=2,
            queue_lag_seconds=1.5,
            rejections={"SIG_INVALID": 3},
            broker_connected=True,
        )


@pytest.fixture
def node() -> InMemoryNode:
    """A fresh in-memory test double of the node."""
    return InMemoryNode()


def start(node: InMemoryNode, *, server_options: dict[str, Any] | None = None,
          **api: Any) -> DmsServer:
    """A gateway on a free loopback port in the background (``api``: ApiSettings fields)."""
    settings = ApiSettings(listen="127.0.0.1:0", **api)
    server = DmsServer(node, [SYSTEM_A, SYSTEM_B], settings, **(server_options or {}))
    server.start()
    return server


@pytest.fixture
def server(node: InMemoryNode) -> Iterator[DmsServer]:
    """The gateway over the test double, stopped afterwards."""
    srv = start(node)
    yield srv
    srv.stop()


_OPEN_CLIENTS: list[DmsClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close every client a test opened (their keep-alive sockets)."""
    yield
    while _OPEN_CLIENTS:
        _OPEN_CLIENTS.pop().close()


def dms(server: DmsServer, systemid: str, secret: str, **kw: Any) -> DmsClient:
    """A client closed after the test."""
    client = DmsClient(server.url, systemid, secret, **kw)
    _OPEN_CLIENTS.append(client)
    return client


def client_a(server: DmsServer, **kw: Any) -> DmsClient:
    """A DMS client of agency A."""
    return dms(server, SYSTEM_A.systemid, SYSTEM_A.secret, **kw)


def raw(
    server: DmsServer,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    method: str = "POST",
) -> tuple[int, dict[str, Any]]:
    """Send exactly these headers; return (HTTP status, JSON answer)."""
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in headers:
            conn.putheader(key, value.encode("utf-8"))
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data)
    finally:
        conn.close()


def exchange(server: DmsServer, request: bytes) -> tuple[str, dict[str, Any]]:
    """Write raw bytes; read the answer to the end (refusals close the connection)."""
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return head.decode("latin-1"), json.loads(body)


def replace(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    """Headers with one value swapped (after signing)."""
    return [(k, value if k.lower() == name.lower() else v) for k, v in headers]


def assert_fail(answer: dict[str, Any], code: str) -> None:
    """The protocol's error shape with this ErrorCode."""
    assert answer["status"] == "FAIL"
    assert answer["ErrorCode"] == code
    assert isinstance(answer["ErrorDesc"], str) and answer["ErrorDesc"]
    assert "Traceback" not in answer["ErrorDesc"]


# --- the calls ---------------------------------------------------------------------------------


def test_send_edoc_submits_the_body_and_returns_docid(
    server: DmsServer, node: InMemoryNode
) -> None:
    """sendEdoc hands the exact body, kind, From and To list to the node and returns its DocId."""
    doc_id = client_a(server).send_edoc(PACKAGE, from_organ=ORGAN_A, to=[ORGAN_B, "000.00.02.H01"])
    assert doc_id == "DOC-1"
    assert node.submitted == [("DOC-1", PACKAGE, "edoc", ORGAN_A, [ORGAN_B, "000.00.02.H01"])]


def test_send_edoc_answer_shape(server: DmsServer) -> None:
    """The sendEdoc answer is {status, ErrorCode, ErrorDesc, DocId} with ErrorCode "0"."""
    client = client_a(server)
    headers = client.prepare(
        {
            "from": ORGAN_A,
            "servicetype": "eDoc",
            "messagetype": "status",
            "hash-file": sha256_hex(PACKAGE),
        },
        "application/octet-stream",
    )
    status, answer = raw(server, "/sendEdoc", headers, PACKAGE)
    assert status == 200
    assert answer == {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", "DocId": "DOC-1"}


def test_send_status_package_is_submitted_as_status(server: DmsServer, node: InMemoryNode) -> None:
    """messagetype=status reaches the node as kind "status"; no To is None."""
    client_a(server).send_edoc(PACKAGE, from_organ=ORGAN_A, message_type="status")
    assert node.submitted[0][2:] == ("status", ORGAN_A, None)


def test_backend_rejection_keeps_its_code(server: DmsServer) -> None:
    """A package the node rejects answers FAIL with the node's code, HTTP 422, DocId ''."""
    client = client_a(server)
    bad = b"<bad/>"
    headers = client.prepare(
        {
            "from": ORGAN_A,
            "servicetype": "eDoc",
            "messagetype": "edoc",
            "hash-file": sha256_hex(bad),
        },
        "application/octet-stream",
    )
    status, answer = raw(server, "/sendEdoc", headers, bad)
    assert status == 422
    assert_fail(answer, "SCHEMA_VIOLATION")
    assert answer["DocId"] == "" and "Foo" in answer["ErrorDesc"]


def test_received_list_fetch_and_done_acknowledgement(
    server: DmsServer, node: InMemoryNode
) -> None:
    """The DMS lists what arrived, fetches it, and after done it no longer appears."""
    node.deliver("IN-1", ORGAN_A, PACKAGE)
    node.deliver("IN-2", ORGAN_A, b"<status/>", "status")
    node.deliver("IN-3", ORGAN_B, b"<other/>")
    client = client_a(server)
    items = client.received("edoc")
    assert items == [
        {
            "docId": "IN-1",
            "from": ORGAN_B,
            "to": ORGAN_A,
            "status": "new",
            "status_desc": "",
            "created_time": "2026-01-02 03:04:05",
            "updated_time": "2026-01-02 03:04:05",
            "messageType": "edoc",
            "serviceType": "eDoc",
        }
    ]
    assert [i["docId"] for i in client.received("status")] == ["IN-2"]
    assert client.get_edoc("IN-1") == PACKAGE
    client.update_status("IN-1", "processing", "đang xử lý")
    assert client.received()[0]["status"] == "processing"
    client.update_status("IN-1", "done")
    assert client.received() == []
    assert node.acks[0] == (ORGAN_A, "IN-1", "processing", "đang xử lý")


def test_get_edoc_of_another_agency_is_not_found(server: DmsServer, node: InMemoryNode) -> None:
    """A DMS cannot fetch a package addressed to another agency: NOT_FOUND, HTTP 404."""
    node.deliver("IN-3", ORGAN_B, b"<other/>")
    with pytest.raises(RequestRefused) as caught:
        client_a(server).get_edoc("IN-3")
    assert caught.value.code == "NOT_FOUND"
    headers = client_a(server).prepare({"docId": "nope"})
    status, answer = raw(server, "/getEdoc", headers)
    assert status == 404
    assert_fail(answer, "NOT_FOUND")


def test_update_status_refuses_unknown_state(server: DmsServer, node: InMemoryNode) -> None:
    """updateStatus accepts only done, fail, processing."""
    node.deliver("IN-1", ORGAN_A, PACKAGE)
    with pytest.raises(RequestRefused) as caught:
        client_a(server).update_status("IN-1", "read")
    assert caught.value.code == "BAD_REQUEST"


def test_sent_list_shape_and_doc_filter(server: DmsServer) -> None:
    """getSentEdocList returns per-recipient rows with the SDK's keys, filterable by docId."""
    client = client_a(server)
    first = client.send_edoc(PACKAGE, from_organ=ORGAN_A, to=[ORGAN_B])
    client.send_edoc(PACKAGE + b" ", from_organ=ORGAN_A, to=[ORGAN_B])
    rows = client.sent()
    assert len(rows) == 2
    assert set(rows[0]) == {
        "fromCode",
        "toCode",
        "senderDocId",
        "receiverDocId",
        "sendStatus",
        "sendStatusDesc",
        "receiveStatus",
        "receiveStatusDesc",
        "sentTime",
        "receivedTime",
        "title",
        "notation",
        "messageType",
        "serviceType",
    }
    assert rows[0]["receivedTime"] == ""  # never null: the SDK calls getAsString on it
    assert [r["senderDocId"] for r in client.sent(doc_id=first)] == [first]


def test_agencies_list_shape(server: DmsServer) -> None:
    """getAgenciesList returns the directory with the protocol's keys; answers are ASCII."""
    rows = client_a(server).agencies()
    assert rows[0] == {
        "id": "1",
        "pid": "",
        "code": "G22",
        "name": "Bộ Nội vụ",
        "mail": "a@x.vn",
        "mobile": "",
        "fax": "",
        "code102": ORGAN_A,
        "oldCode": ORGAN_A,
    }
    host, port = server.address
    conn = http.client.HTTPConnection(host, port)
    headers = client_a(server).prepare({})
    conn.putrequest("POST", "/getAgenciesList")
    for k, v in headers:
        conn.putheader(k, v)
    conn.putheader("Content-Length", "0")
    conn.endheaders()
    body = conn.getresponse().read()
    conn.close()
    body.decode("ascii")  # the SDK reads answers as US-ASCII


def test_endpoint_prefix_is_accepted(server: DmsServer) -> None:
    """An SDK endpoint with a path prefix (…/vxp/sendEdoc) reaches the same calls."""
    client = DmsClient(server.url + "/vxp/api", "dms-a", "secret-a")
    _OPEN_CLIENTS.append(client)
    assert client.agencies()


# --- authentication ------------------------------------------------------------------------------


def _signed_get(server: DmsServer, **kw: Any) -> list[tuple[str, str]]:
    return client_a(server, **kw).prepare({"servicetype": "eDoc", "messagetype": "edoc"})


def test_missing_auth_headers(server: DmsServer) -> None:
    """No XroadVnpt headers at all: AUTH_MISSING, HTTP 401."""
    status, answer = raw(server, "/getReceivedEdocList", [("Content-Type", "application/json")])
    assert status == 401
    assert_fail(answer, "AUTH_MISSING")


def test_unknown_system(server: DmsServer) -> None:
    """A systemid not configured: AUTH_UNKNOWN_SYSTEM."""
    with pytest.raises(RequestRefused) as caught:
        dms(server, "intruder", "x").received()
    assert caught.value.code == "AUTH_UNKNOWN_SYSTEM"


def test_wrong_secret_is_bad_hmac(server: DmsServer) -> None:
    """A known systemid signing with the wrong secret: AUTH_BAD_HMAC."""
    with pytest.raises(RequestRefused) as caught:
        dms(server, "dms-a", "wrong").received()
    assert caught.value.code == "AUTH_BAD_HMAC"


def test_tampered_sign_header_is_bad_hmac(server: DmsServer) -> None:
    """Changing the signed JSON after signing breaks the HMAC."""
    headers = _signed_get(server)
    sign = dict(headers)["XroadVnpt-sign-header"].replace('"edoc"', '"status"')
    status, answer = raw(
        server, "/getReceivedEdocList", replace(headers, "XroadVnpt-sign-header", sign)
    )
    assert status == 401
    assert_fail(answer, "AUTH_BAD_HMAC")


def test_header_differing_from_signed_value(server: DmsServer) -> None:
    """A relied-upon header whose wire value differs from the signed one: AUTH_HEADER_MISMATCH."""
    headers = _signed_get(server)
    status, answer = raw(
        server, "/getReceivedEdocList", replace(headers, "XroadVnpt-messagetype", "status")
    )
    assert status == 401
    assert_fail(answer, "AUTH_HEADER_MISMATCH")


def test_unsigned_relied_header_is_refused(server: DmsServer) -> None:
    """A docId header added outside the signature is not trusted."""
    headers = [*client_a(server).prepare({}), ("XroadVnpt-docId", "IN-1")]
    status, answer = raw(server, "/getEdoc", headers)
    assert_fail(answer, "AUTH_HEADER_MISMATCH")
    assert status == 401


def test_signed_header_not_sent_is_refused(server: DmsServer) -> None:
    """A signed relied-upon value whose header is missing on the wire is refused."""
    headers = [h for h in _signed_get(server) if h[0] != "XroadVnpt-messagetype"]
    _status, answer = raw(server, "/getReceivedEdocList", headers)
    assert_fail(answer, "AUTH_HEADER_MISMATCH")


def test_duplicate_header_is_refused(server: DmsServer) -> None:
    """The same relied-upon header twice is ambiguous and refused."""
    headers = [*_signed_get(server), ("xroadvnpt-messagetype", "edoc")]
    _status, answer = raw(server, "/getReceivedEdocList", headers)
    assert_fail(answer, "AUTH_HEADER_MISMATCH")


def test_sign_header_key_must_match(server: DmsServer) -> None:
    """sign-header-key listing other names than the signed JSON: AUTH_HEADER_MISMATCH."""
    headers = replace(_signed_get(server), "XroadVnpt-sign-header-key", "timestamp;systemid")
    _status, answer = raw(server, "/getReceivedEdocList", headers)
    assert_fail(answer, "AUTH_HEADER_MISMATCH")


def test_sign_header_not_json(server: DmsServer) -> None:
    """A correctly HMAC'd sign-header that is not a JSON object: AUTH_BAD_SIGN_HEADER."""
    headers = [
        ("XroadVnpt-systemid", "dms-a"),
        ("XroadVnpt-timestamp", "x"),
        ("XroadVnpt-sign-header-key", "a"),
        ("XroadVnpt-sign-header", "[1,2]"),
        ("XroadVnpt-hash-header", sign_headers("secret-a", "[1,2]")),
    ]
    _status, answer = raw(server, "/getReceivedEdocList", headers)
    assert_fail(answer, "AUTH_BAD_SIGN_HEADER")


def test_timestamp_in_the_future_is_skew(server: DmsServer) -> None:
    """A timestamp more than 300 s ahead: AUTH_TIMESTAMP_SKEW."""
    later = datetime.now(VN_TZ) + timedelta(seconds=400)
    with pytest.raises(RequestRefused) as caught:
        client_a(server, now=lambda: later).received()
    assert caught.value.code == "AUTH_TIMESTAMP_SKEW"


def test_old_timestamp_is_skew_when_an_age_limit_is_set(node: InMemoryNode) -> None:
    """With max_timestamp_age=300, a timestamp 400 s old is AUTH_TIMESTAMP_SKEW naming the key."""
    srv = start(node, max_timestamp_age=300)
    try:
        earlier = datetime.now(VN_TZ) - timedelta(seconds=400)
        with pytest.raises(RequestRefused) as caught:
            client_a(srv, now=lambda: earlier).received()
        assert caught.value.code == "AUTH_TIMESTAMP_SKEW"
        assert "max_timestamp_age" in caught.value.message
    finally:
        srv.stop()


def test_timestamp_is_read_in_vietnam_time_by_default(server: DmsServer) -> None:
    """The zone-less timestamp is Vietnam local time: a clock 7 h ahead of it is refused."""
    ahead = datetime.now(VN_TZ) + timedelta(hours=7)
    with pytest.raises(RequestRefused) as caught:
        client_a(server, now=lambda: ahead).received()
    assert caught.value.code == "AUTH_TIMESTAMP_SKEW"
    assert "[api] timezone" in caught.value.message
    assert client_a(server).received() == []


def test_timezone_setting_serves_a_dms_on_utc(node: InMemoryNode) -> None:
    """A gateway set to UTC accepts a DMS writing UTC wall time and refuses one writing UTC+7
    (7 h ahead); list times are answered in UTC."""
    node.deliver("IN-1", ORGAN_A, PACKAGE)
    srv = start(node, timezone="UTC", max_timestamp_age=300)
    try:
        items = client_a(srv, sdk_quirks=True, timezone=UTC).received()
        assert items[0]["created_time"] == "2026-01-01 20:04:05"  # 03:04:05 at UTC+7
        with pytest.raises(RequestRefused) as caught:
            client_a(srv, sdk_quirks=True).received()
        assert caught.value.code == "AUTH_TIMESTAMP_SKEW"
    finally:
        srv.stop()
    vietnam = start(node, max_timestamp_age=300)
    try:
        with pytest.raises(RequestRefused) as caught:
            client_a(vietnam, sdk_quirks=True, timezone=UTC).received()
        assert caught.value.code == "AUTH_TIMESTAMP_SKEW"  # UTC wall time read as UTC+7: 7 h old
    finally:
        vietnam.stop()


def test_malformed_timestamp(server: DmsServer) -> None:
    """A timestamp not in ddMMyyyyTHHmmss+SSSS: AUTH_BAD_TIMESTAMP."""
    client = client_a(server, sdk_quirks=True)
    client.sticky["timestamp"] = "2026-01-02T03:04:05Z"
    with pytest.raises(RequestRefused) as caught:
        client.received()
    assert caught.value.code == "AUTH_BAD_TIMESTAMP"


def test_long_lived_sdk_object_works_by_default(server: DmsServer, node: InMemoryNode) -> None:
    """By default an SDK object stamped 5 h ago sends, lists, fetches and acknowledges; a stamp
    an hour ahead is still refused."""
    old = datetime.now(VN_TZ) - timedelta(hours=5)
    sdk = client_a(server, sdk_quirks=True, now=lambda: old)
    assert sdk.send_edoc(PACKAGE, from_organ=ORGAN_A) == "DOC-1"
    node.deliver("IN-1", ORGAN_A, PACKAGE)
    assert sdk.get_edoc(sdk.received()[0]["docId"]) == PACKAGE
    sdk.update_status("IN-1", "done")
    assert sdk.received() == []
    ahead = datetime.now(VN_TZ) + timedelta(hours=1)
    with pytest.raises(RequestRefused):
        client_a(server, sdk_quirks=True, now=lambda: ahead).received()


def _send_headers(client: DmsClient, data: bytes = PACKAGE) -> list[tuple[str, str]]:
    return client.prepare(
        {
            "from": ORGAN_A,
            "servicetype": "eDoc",
            "messagetype": "edoc",
            "hash-file": sha256_hex(data),
        },
        "application/octet-stream",
    )


def test_repeated_send_gets_the_first_answer(server: DmsServer, node: InMemoryNode) -> None:
    """The same signed sendEdoc and body twice (a retry after a lost answer): the first answer,
    byte for byte, and nothing submitted again."""
    headers = _send_headers(client_a(server))
    first = raw(server, "/sendEdoc", headers, PACKAGE)
    assert first == (200, {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success",
                           "DocId": "DOC-1"})
    assert raw(server, "/sendEdoc", headers, PACKAGE) == first
    assert len(node.submitted) == 1


def test_repeat_with_another_body_is_refused(server: DmsServer, node: InMemoryNode) -> None:
    """The signed headers of an answered sendEdoc with another body: AUTH_REPLAY, nothing sent."""
    headers = _send_headers(client_a(server))
    assert raw(server, "/sendEdoc", headers, PACKAGE)[0] == 200
    status, answer = raw(server, "/sendEdoc", headers, PACKAGE + b"\r\n")
    assert status == 401
    assert_fail(answer, "AUTH_REPLAY")
    assert answer["DocId"] == ""
    assert len(node.submitted) == 1


def test_sdk_object_resending_the_same_package_gets_the_same_docid(
    server: DmsServer, node: InMemoryNode
) -> None:
    """One SDK object sending the same package again (between other calls) sends identical
    signed headers: the same DocId, submitted once."""
    sdk = client_a(server, sdk_quirks=True)
    first = sdk.send_edoc(PACKAGE, from_organ=ORGAN_A)
    sdk.received()
    assert sdk.send_edoc(PACKAGE, from_organ=ORGAN_A) == first
    assert sdk.send_edoc(PACKAGE + b" ", from_organ=ORGAN_A) != first
    assert len(node.submitted) == 2


def test_replayed_update_status_changes_nothing(server: DmsServer, node: InMemoryNode) -> None:
    """A captured updateStatus processing, replayed after done: answered OK from the record,
    the package stays done and out of the list."""
    node.deliver("IN-1", ORGAN_A, PACKAGE)
    client = client_a(server)
    processing = client.prepare({"docId": "IN-1", "status": "processing"})
    assert raw(server, "/updateStatus", processing)[0] == 200
    client.update_status("IN-1", "done")
    assert raw(server, "/updateStatus", processing) == (
        200, {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success"})
    assert node.inbox["IN-1"]["state"] == "done"
    assert [a[2] for a in node.acks] == ["processing", "done"]
    assert client.received() == []


def test_failed_update_status_overtaken_is_not_applied(
    server: DmsServer, node: InMemoryNode
) -> None:
    """An updateStatus that failed (503), then a later done succeeded: repeating the failed
    one is AUTH_REPLAY and the package stays done."""
    node.deliver("IN-1", ORGAN_A, PACKAGE)
    client = client_a(server)
    processing = client.prepare({"docId": "IN-1", "status": "processing"})
    node.fail_next = StoreBusy("store locked")
    assert raw(server, "/updateStatus", processing)[0] == 503
    client.update_status("IN-1", "done")
    status, answer = raw(server, "/updateStatus", processing)
    assert status == 401
    assert_fail(answer, "AUTH_REPLAY")
    assert node.inbox["IN-1"]["state"] == "done"


def test_repeat_while_the_first_is_running_is_in_progress(
    server: DmsServer, node: InMemoryNode
) -> None:
    """An identical request arriving while the first is still being answered: 409
    REQUEST_IN_PROGRESS with Retry-After; asked again afterwards, the first answer."""
    headers = _send_headers(client_a(server))
    entered, release = threading.Event(), threading.Event()
    original_submit = node.submit

    def slow_submit(*args: Any) -> str:
        entered.set()
        assert release.wait(10)
        return original_submit(*args)

    node.submit = slow_submit  # type: ignore[method-assign]
    first: list[tuple[int, dict[str, Any]]] = []
    worker = threading.Thread(target=lambda: first.append(raw(server, "/sendEdoc", headers,
                                                              PACKAGE)))
    worker.start()
    assert entered.wait(10)
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.putrequest("POST", "/sendEdoc")
    for key, value in headers:
        conn.putheader(key, value)
    conn.putheader("Content-Length", str(len(PACKAGE)))
    conn.endheaders(PACKAGE)
    response = conn.getresponse()
    assert_fail(json.loads(response.read()), "REQUEST_IN_PROGRESS")
    assert (response.status, response.getheader("Retry-After")) == (409, "1")
    conn.close()
    release.set()
    worker.join(10)
    assert first[0][1]["DocId"] == "DOC-1"
    assert raw(server, "/sendEdoc", headers, PACKAGE) == first[0]
    assert len(node.submitted) == 1


def test_sdk_loop_fetch_then_done_shares_one_signature(
    server: DmsServer, node: InMemoryNode
) -> None:
    """The SDK's sticky headers make getEdoc(X) and the next updateStatus(X, done) byte-identical
    requests (the path is not signed): both are answered, for every package in turn."""
    for n in (1, 2, 3):
        node.deliver(f"IN-{n}", ORGAN_A, PACKAGE + str(n).encode())
    sdk = client_a(server, sdk_quirks=True)
    signatures = []
    for item in sdk.received():
        doc_id = item["docId"]
        fetch = dict(sdk.prepare({"docId": doc_id}))["XroadVnpt-hash-header"]
        assert sdk.get_edoc(doc_id).startswith(PACKAGE)
        sdk.update_status(doc_id, "done")
        signatures.append((fetch, dict(sdk.prepare({}))["XroadVnpt-hash-header"]))
        assert sdk.get_edoc(doc_id).startswith(PACKAGE)  # a read after done, same signature
    assert signatures[1][0] == signatures[1][1]  # after the first done, fetch = acknowledge
    assert sdk.received() == []
    assert [a[1:3] for a in node.acks] == [(f"IN-{n}", "done") for n in (1, 2, 3)]


def test_percent_encoded_description_is_decoded(server: DmsServer, node: InMemoryNode) -> None:
    """The SDK's way to send Vietnamese: ASCII percent-encoded UTF-8, stored decoded; a literal
    percent sign stays as sent."""
    node.deliver("IN-1", ORGAN_A, PACKAGE)
    sdk = client_a(server, sdk_quirks=True)
    sdk.update_status("IN-1", "processing", quote("đang xử lý"))
    assert sdk.received()[0]["status_desc"] == "đang xử lý"
    sdk.update_status("IN-1", "processing", "50%AB done, 100% soon")
    assert sdk.received()[0]["status_desc"] == "50%AB done, 100% soon"


def test_failed_call_can_be_retried_with_same_signature(
    server: DmsServer, node: InMemoryNode
) -> None:
    """A call the node failed (StoreBusy, 503) does not burn its signature: the retry works."""
    node.deliver("IN-1", ORGAN_A, PACKAGE)
    headers = client_a(server).prepare({"docId": "IN-1", "status": "done"})
    node.fail_next = StoreBusy("store locked")
    status, answer = raw(server, "/updateStatus", headers)
    assert status == 503
    assert_fail(answer, "STORE_BUSY")
    assert raw(server, "/updateStatus", headers) == (
        200,
        {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success"},
    )


def test_identical_read_calls_are_not_replays(server: DmsServer) -> None:
    """Polling repeats byte-identical signed headers (the SDK does); reads are answered."""
    headers = _signed_get(server)
    assert raw(server, "/getReceivedEdocList", headers)[0] == 200
    assert raw(server, "/getReceivedEdocList", headers)[0] == 200


def test_hash_file_mismatch(server: DmsServer, node: InMemoryNode) -> None:
    """A body whose SHA-256 is not the signed hash-file: HASH_FILE_MISMATCH, nothing submitted."""
    headers = client_a(server).prepare(
        {
            "from": ORGAN_A,
            "servicetype": "eDoc",
            "messagetype": "edoc",
            "hash-file": sha256_hex(PACKAGE),
        },
        "application/octet-stream",
    )
    status, answer = raw(server, "/sendEdoc", headers, PACKAGE + b"<!-- tampered -->")
    assert status == 400
    assert_fail(answer, "HASH_FILE_MISMATCH")
    assert node.submitted == []


def test_from_must_be_the_systems_agency(server: DmsServer, node: InMemoryNode) -> None:
    """System A may not send as agency B: FROM_NOT_ALLOWED, HTTP 403."""
    headers = client_a(server).prepare(
        {
            "from": ORGAN_B,
            "servicetype": "eDoc",
            "messagetype": "edoc",
            "hash-file": sha256_hex(PACKAGE),
        },
        "application/octet-stream",
    )
    status, answer = raw(server, "/sendEdoc", headers, PACKAGE)
    assert status == 403
    assert_fail(answer, "FROM_NOT_ALLOWED")
    assert node.submitted == []


def test_missing_messagetype_on_send_is_bad_request(server: DmsServer) -> None:
    """sendEdoc without messagetype: BAD_REQUEST naming the header."""
    with pytest.raises(RequestRefused) as caught:
        client_a(server).call(
            "sendEdoc",
            {"from": ORGAN_A, "hash-file": sha256_hex(PACKAGE)},
            PACKAGE,
            "application/octet-stream",
        )
    assert caught.value.code == "BAD_REQUEST"
    assert "messagetype" in caught.value.message


# --- SDK quirks -------------------------------------------------------------------------------


def test_sdk_quirks_full_cycle(server: DmsServer, node: InMemoryNode) -> None:
    """An SDK-like client (sticky headers, frozen stamp, unpadded hash, CRLF, {}) does it all."""
    sdk = client_a(server, sdk_quirks=True)
    doc_id = sdk.send_edoc(PACKAGE, from_organ=ORGAN_A, to=[ORGAN_B])
    assert node.submitted[0][1] == PACKAGE  # the trailing CRLF is not part of the package
    node.deliver("IN-9", ORGAN_A, PACKAGE)
    # sticky: this list call still carries from, to and hash-file of the send
    assert {"from", "to", "hash-file"} <= set(sdk.sticky)
    assert [i["docId"] for i in sdk.received()] == ["IN-9"]
    assert sdk.get_edoc("IN-9", file_path="/var/dms/in") == PACKAGE
    sdk.update_status("IN-9", "done")
    assert sdk.received() == []  # also: an identical second list call is not a replay
    assert sdk.sent(doc_id=doc_id)[0]["senderDocId"] == doc_id
    sdk.send_edoc(b"<status/>", from_organ=ORGAN_A, message_type="status")
    assert node.submitted[1][2] == "status"


def test_unpadded_hash_file_accepted(server: DmsServer, node: InMemoryNode) -> None:
    """hash-file without zero padding per byte (shorter than 64) is accepted."""
    short = sha256_hex_unpadded(PACKAGE)
    assert len(short) < 64
    headers = client_a(server).prepare(
        {"from": ORGAN_A, "servicetype": "eDoc", "messagetype": "edoc", "hash-file": short},
        "application/octet-stream",
    )
    assert raw(server, "/sendEdoc", headers, PACKAGE)[1]["status"] == "OK"


def test_multipart_file_doc_part_accepted(server: DmsServer, node: InMemoryNode) -> None:
    """A real multipart/form-data body with a file_doc part yields the part as the package."""
    boundary = "===1700000000000==="
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file_doc"; '
        f'filename="a.edxml"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    body += PACKAGE + f"\r\n--{boundary}--\r\n".encode()
    headers = client_a(server).prepare(
        {
            "from": ORGAN_A,
            "servicetype": "eDoc",
            "messagetype": "edoc",
            "hash-file": sha256_hex(PACKAGE),
        },
        "application/octet-stream",
    )
    headers = [*headers, ("Content-Type", f"multipart/form-data; boundary={boundary}")]
    assert raw(server, "/sendEdoc", headers, body)[1]["status"] == "OK"
    assert node.submitted[0][1] == PACKAGE


def test_json_keys_keep_case_and_wire_names_do_not_matter(
    server: DmsServer, node: InMemoryNode
) -> None:
    """Signed key XroadVnpt-docId matches a wire header sent as xroadvnpt-docid."""
    node.deliver("IN-1", ORGAN_A, PACKAGE)
    headers = client_a(server).prepare({"docId": "IN-1"})
    assert '"XroadVnpt-docId":"IN-1"' in dict(headers)["XroadVnpt-sign-header"]
    lowered = [(k.lower(), v) for k, v in headers]
    assert raw(server, "/getEdoc", lowered)[1]["status"] == "OK"


@pytest.mark.parametrize("body", [b"", b"{}", b'{"servicetype":"eDoc"}'])
def test_non_send_bodies_are_ignored(server: DmsServer, body: bytes) -> None:
    """Empty or {} (or any JSON) bodies on non-send calls: everything is in the headers."""
    status, answer = raw(server, "/getReceivedEdocList", _signed_get(server), body)
    assert (status, answer["status"]) == (200, "OK")


def test_file_path_header_is_ignored(server: DmsServer, node: InMemoryNode) -> None:
    """getEdoc's filePath (a client-side folder) changes nothing on the server."""
    node.deliver("IN-1", ORGAN_A, PACKAGE)
    assert client_a(server).get_edoc("IN-1", file_path="C:\\dms\\in") == PACKAGE


def test_sdk_timestamp_format() -> None:
    """ddMMyyyyTHHmmss+SSSS: milliseconds zero-padded to four digits, read as UTC+7."""
    stamp = parse_sdk_timestamp("26112026T061059+0201")
    assert stamp == datetime(2026, 11, 26, 6, 10, 59, 201000, tzinfo=VN_TZ)
    with pytest.raises(ValueError):
        parse_sdk_timestamp("26112026T061059+1000")


# --- robustness -------------------------------------------------------------------------------


def test_body_too_large_refused_before_reading(node: InMemoryNode) -> None:
    """A Content-Length over the limit is answered 413 BODY_TOO_LARGE without sending the body."""
    srv = start(node, server_options={"max_body_bytes": 10_000})
    try:
        head, body = exchange(
            srv, b"POST /sendEdoc HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n"
        )
        assert head.startswith("HTTP/1.1 413")
        assert_fail(body, "BODY_TOO_LARGE")
        assert body["DocId"] == ""
    finally:
        srv.stop()


def test_chunked_body_needs_length(server: DmsServer) -> None:
    """Chunked transfer is refused with 411 LENGTH_REQUIRED."""
    head, body = exchange(
        server, b"POST /sendEdoc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert head.startswith("HTTP/1.1 411")
    assert_fail(body, "LENGTH_REQUIRED")


def test_garbage_request_line_gets_json(server: DmsServer) -> None:
    """The HTTP parser's own refusals come back in the protocol's JSON shape."""
    head, body = exchange(server, b"POST /sendEdoc HTTP/1.1 extra words\r\n\r\n")
    assert head.split(" ", 2)[1] == "400"  # HTTP/1.0: the request's version is unknown
    assert_fail(body, "BAD_REQUEST")


def test_bad_content_length(server: DmsServer) -> None:
    """A non-numeric Content-Length is BAD_HEADER."""
    head, body = exchange(
        server, b"POST /getEdoc HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n"
    )
    assert head.split(" ", 2)[1] == "400"  # refused by the HTTP parser, as HTTP/1.0
    assert_fail(body, "BAD_HEADER")


def test_unknown_path_and_method(server: DmsServer) -> None:
    """Unknown calls are NOT_FOUND (404); PUT on a call is METHOD_NOT_ALLOWED (405)."""
    status, answer = raw(server, "/deleteEverything", [])
    assert status == 404
    assert_fail(answer, "NOT_FOUND")
    status, answer = raw(server, "/sendEdoc", [], method="PUT")
    assert status == 405
    assert_fail(answer, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/sendEdoc", "POST, GET"), ("DELETE", "/getEdoc", "POST, GET"),
    ("PATCH", "/x/getAgenciesList", "POST, GET"), ("POST", "/healthz", "GET, HEAD"),
    ("DELETE", "/openapi.json", "GET, HEAD")])
def test_wrong_method_is_405_json_with_allow(server: DmsServer, method: str, path: str,
                                             allowed: str) -> None:
    """A wrong method, unsigned, is 405 METHOD_NOT_ALLOWED in the protocol's JSON with an Allow
    header, never an authentication refusal (issue 13 item 15)."""
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, headers={"Content-Length": "0"})
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 405
    assert response.getheader("Allow") == allowed
    assert response.getheader("Content-Type") == "application/json"
    assert_fail(answer, "METHOD_NOT_ALLOWED")


def test_backend_crash_is_internal_error_without_trace(
    server: DmsServer, node: InMemoryNode
) -> None:
    """An unexpected exception in the node answers 500 INTERNAL_ERROR with a log reference only."""
    node.fail_next = ZeroDivisionError("secret internals")
    headers = client_a(server).prepare(
        {
            "from": ORGAN_A,
            "servicetype": "eDoc",
            "messagetype": "edoc",
            "hash-file": sha256_hex(PACKAGE),
        },
        "application/octet-stream",
    )
    status, answer = raw(server, "/sendEdoc", headers, PACKAGE)
    assert status == 500
    assert_fail(answer, "INTERNAL_ERROR")
    assert "secret internals" not in answer["ErrorDesc"]
    assert "ref" in answer["ErrorDesc"]


def test_concurrent_clients(server: DmsServer, node: InMemoryNode) -> None:
    """Eight DMS threads sending at once all get distinct DocIds."""
    results: list[str] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with client_a(server) as client:
                for i in range(15):
                    results.append(
                        client.send_edoc(PACKAGE + f"{n}-{i}".encode(), from_organ=ORGAN_A)
                    )
                    client.received()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(results) == 120 and len(set(results)) == 120


def test_connection_limit_answers_busy(node: InMemoryNode) -> None:
    """Past max_connections a new connection gets 503 SERVER_BUSY at once."""
    srv = start(node, server_options={"limits": ServerLimits(max_connections=1)})
    try:
        with socket.create_connection(srv.address, timeout=5) as held:
            held.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert held.recv(65536).startswith(b"HTTP/1.1 200")  # kept alive, holds the slot
            with socket.create_connection(srv.address, timeout=5) as extra:
                answer = extra.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 503")
        assert_fail(json.loads(answer.split("\r\n\r\n", 1)[1]), "SERVER_BUSY")
    finally:
        srv.stop()


def test_stop_releases_port_and_idle_connections(node: InMemoryNode) -> None:
    """stop() returns promptly even with an idle keep-alive client, and the port is free again."""
    srv = start(node)
    address = srv.address
    idle = socket.create_connection(address, timeout=5)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    idle.recv(65536)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 3
    idle.close()
    again = DmsServer(node, [SYSTEM_A], ApiSettings(listen=f"127.0.0.1:{address[1]}"))
    again.stop()


# --- health, metrics, OpenAPI ------------------------------------------------------------------


def _get(server: DmsServer, path: str) -> tuple[int, str, bytes]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, response.getheader("Content-Type", ""), data


def test_healthz(server: DmsServer) -> None:
    """/healthz answers OK with the broker link state from the node."""
    status, _ctype, body = _get(server, "/healthz")
    assert status == 200
    assert json.loads(body)["broker_connected"] is True


def test_metrics_prometheus_text(server: DmsServer) -> None:
    """/metrics exposes node numbers, requests by call and rejections by code and source."""
    client_a(server).send_edoc(PACKAGE, from_organ=ORGAN_A)
    with pytest.raises(RequestRefused):
        dms(server, "dms-a", "wrong").received()
    status, ctype, body = _get(server, "/metrics")
    assert status == 200 and ctype == CONTENT_TYPE_LATEST
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert samples[("edoc_axis_packages_out_total", ())] == 1
    assert samples[("edoc_axis_outbox_depth", ())] == 2
    assert samples[("edoc_axis_queue_lag_seconds", ())] == 1.5
    assert samples[("edoc_axis_rejections_total",
                    (("code", "AUTH_BAD_HMAC"), ("source", "api")))] == 1
    assert samples[("edoc_axis_rejections_total",
                    (("code", "SIG_INVALID"), ("source", "node")))] == 3
    assert samples[("edoc_axis_dms_requests_total", (("call", "sendEdoc"), ("result", "OK")))] == 1
    assert samples[("edoc_axis_dms_body_bytes_total", (("call", "sendEdoc"),))] == len(PACKAGE)
    assert families["edoc_axis_outbox_depth"].type == "gauge"


def test_openapi_describes_every_endpoint(server: DmsServer) -> None:
    """/openapi.json is OpenAPI 3 with all calls, auth headers and the error shape."""
    status, _ctype, body = _get(server, "/openapi.json")
    doc = json.loads(body)
    assert status == 200 and doc["openapi"].startswith("3.")
    assert {
        "/sendEdoc",
        "/getReceivedEdocList",
        "/getEdoc",
        "/updateStatus",
        "/getSentEdocList",
        "/getAgenciesList",
        "/healthz",
        "/metrics",
        "/openapi.json",
    } <= set(doc["paths"])
    params = {p["name"] for p in doc["paths"]["/sendEdoc"]["post"]["parameters"]}
    assert {"XroadVnpt-hash-header", "XroadVnpt-sign-header", "XroadVnpt-hash-file"} <= params
    assert doc["components"]["schemas"]["Error"]["required"] == ["status", "ErrorCode", "ErrorDesc"]
    codes = doc["components"]["schemas"]["Error"]["properties"]["ErrorCode"]["description"]
    assert "AUTH_HEADER_ENCODING" in codes and "REQUEST_IN_PROGRESS" in codes
    agency = doc["components"]["schemas"]["Agency"]["properties"]
    assert set(agency) == {"id", "pid", "code", "name", "mail", "mobile", "fax", "code102",
                           "oldCode"}
    assert "QCVN 102" in agency["oldCode"]["description"]
    assert "409" in doc["paths"]["/updateStatus"]["post"]["responses"]
