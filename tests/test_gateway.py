"""The DMS gateway backed by real nodes on the real broker: the whole axis client protocol.

A DMS at agency A (000.00.00.G22) and one at agency B (000.00.00.H41) talk to their own nodes
through ``DmsClient(sdk_quirks=True)``, which sends what the deployed Java SDK sends: one SDK
object kept for long (its timestamp an hour old), the same signed headers on every call, header
text as the low byte of each character.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from conftest import Axis
from prometheus_client.parser import text_string_to_metric_families
from test_e2e import NodeProcess
from test_node import G22, H41, H42, make_document, wait_for

from edoc_axis.config.settings import ApiSettings, DmsSystemSettings, Settings
from edoc_axis.edxml.identifier import VN_TZ
from edoc_axis.edxml.limits import XmlLimits
from edoc_axis.edxml.model import DocumentPackage, Organization, StatusPackage
from edoc_axis.edxml.parser import PARSE_STATS
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.status import new_status
from edoc_axis.edxml.write import build
from edoc_axis.errors import RequestRefused, TemporaryFailure
from edoc_axis.gateway.backend import HostedGateway, NodeBackend, host
from edoc_axis.gateway.client import DmsClient
from edoc_axis.gateway.sdk import sha256_hex
from edoc_axis.gateway.server import DmsServer
from edoc_axis.gateway.service import body_limit
from edoc_axis.node.node import Node
from edoc_axis.node.runner import Runner
from edoc_axis.trust.signature import sign

pytestmark = pytest.mark.broker

SECRETS = {G22: "secret-of-the-g22-dms-0001", H41: "secret-of-the-h41-dms-0002"}


def an_hour_ago() -> datetime:
    """The clock of an SDK object built an hour ago (its timestamp is frozen then)."""
    return datetime.now(VN_TZ) - timedelta(hours=1)


def sdk_client(url: str, organ_id: str) -> DmsClient:
    """A long-lived SDK object of an agency's DMS (quirks on, stamped an hour ago)."""
    return DmsClient(url, systemid(organ_id), SECRETS[organ_id], sdk_quirks=True,
                     now=an_hour_ago)


def systemid(organ_id: str) -> str:
    """The test DMS system id of an agency."""
    return f"vbdh-{organ_id}"


def with_dms(settings: Settings, listen: str = "127.0.0.1:0") -> Settings:
    """``settings`` plus the agency's DMS system and a gateway address."""
    system = DmsSystemSettings(systemid(settings.organ_id), SECRETS[settings.organ_id],
                               settings.organ_id)
    return dataclasses.replace(settings, dms=(system,), api=ApiSettings(listen=listen))


@dataclasses.dataclass
class GatewayNode:
    """An in-process node with its Link running and its gateway served."""

    node: Node
    runner: Runner
    hosted: HostedGateway
    running: bool = True

    @property
    def server(self) -> DmsServer:
        """The HTTP server."""
        return self.hosted.server

    def client(self, *, sdk_quirks: bool = True) -> DmsClient:
        """A DMS client of this node's agency (with quirks: a long-lived SDK object)."""
        if sdk_quirks:
            return sdk_client(self.hosted.url, self.node.organ_id)
        organ_id = self.node.organ_id
        return DmsClient(self.hosted.url, systemid(organ_id), SECRETS[organ_id])

    def stop(self) -> None:
        """Stop gateway, runner and node (the store file stays)."""
        self.running = False
        self.hosted.stop()
        self.runner.stop()
        self.node.close()


@pytest.fixture
def gateways(axis: Axis) -> Iterator[Callable[..., GatewayNode]]:
    """Start nodes with their gateways (``gateways(organ_id[, listen])``); all stopped
    afterwards."""
    started: list[GatewayNode] = []

    def start(organ_id: str, listen: str = "127.0.0.1:0") -> GatewayNode:
        node = Node.from_settings(with_dms(axis.settings(organ_id), listen))
        runner = Runner(node)
        hosted = host(node, runner.link)
        assert hosted is not None
        runner.start()
        started.append(GatewayNode(node, runner, hosted))
        return started[-1]

    yield start
    for item in started:
        if item.running:
            item.stop()


def get(server_url: str, path: str) -> tuple[int, bytes]:
    """A plain GET (health, metrics)."""
    host_port = server_url.split("://", 1)[1]
    conn = http.client.HTTPConnection(host_port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def status_reply(document: bytes, sender: str, code: str, description: str) -> bytes:
    """An unsigned status ``code`` from ``sender`` about ``document`` (new_status + build)."""
    pkg = parse(document)
    assert isinstance(pkg, DocumentPackage)
    status = new_status(Organization(sender, f"Cơ quan {sender}"), pkg, code,
                              description=description)
    return build(status)


def full_cycle(dms_a: DmsClient, dms_b: DmsClient, document: bytes,
               stored_at_b: Callable[[str], bytes]) -> str:
    """A sends; B lists, fetches, acknowledges and answers 03; A lists both statuses and sees
    getSentEdocList advance to 03. Returns A's DocId."""
    doc_id = dms_a.send_edoc(document, from_organ=G22, to=[H41])
    assert doc_id and "/" not in doc_id
    listed = wait_for(dms_b.received, what="the document in B's list")
    assert [(i["from"], i["to"], i["status"], i["messageType"]) for i in listed] == [
        (G22, H41, "new", "edoc")]
    b_id = listed[0]["docId"]
    fetched = dms_b.get_edoc(b_id, file_path="/tmp/ignored")
    assert fetched == stored_at_b(b_id)
    pkg = parse(fetched)
    assert isinstance(pkg, DocumentPackage)
    assert pkg.signed
    if dms_b.sdk_quirks:  # the SDK cannot send Vietnamese in a header; percent-encoded it can
        with pytest.raises(RequestRefused) as info:
            dms_b.update_status(b_id, "processing", "đang xử lý")
        assert info.value.code == "AUTH_HEADER_ENCODING"
        dms_b.update_status(b_id, "processing", quote("đang xử lý"))
    else:
        dms_b.update_status(b_id, "processing", "đang xử lý")
    assert [(i["status"], i["status_desc"]) for i in dms_b.received()] == [
        ("processing", "đang xử lý")]
    dms_b.update_status(b_id, "done")
    assert dms_b.received() == []
    reply = status_reply(fetched, H41, "03", "Đã tiếp nhận")
    status_id = dms_b.send_edoc(reply, from_organ=H41, to=[G22], message_type="status")
    assert [r["sendStatus"] for r in dms_b.sent("status", status_id)] in (["queued"], ["sent"])

    def statuses() -> list[dict[str, str]]:
        items = dms_a.received("status")
        return items if len(items) == 2 else []

    items = wait_for(statuses, what="status 01 and 03 in A's list")
    codes = set()
    for item in items:
        assert (item["from"], item["messageType"]) == (H41, "status")
        status = parse(dms_a.get_edoc(item["docId"]))
        assert isinstance(status, StatusPackage)
        codes.add(status.status_code)
        dms_a.update_status(item["docId"], "done")
    assert codes == {"01", "03"}
    assert dms_a.received("status") == []
    row = wait_for(lambda: [r for r in dms_a.sent("edoc", doc_id) if r["receiveStatus"] == "03"],
                   what="getSentEdocList at 03")[0]
    assert (row["fromCode"], row["toCode"], row["senderDocId"], row["sendStatus"]) == (
        G22, H41, doc_id, "sent")
    assert row["receivedTime"] and row["sentTime"]
    assert row["title"] == pkg.subject
    assert row["receiveStatusDesc"].startswith("accepted")
    return doc_id


def test_full_cycle_between_two_nodes_as_the_sdk_behaves(
    gateways: Callable[[str], GatewayNode],
) -> None:
    """send, list, fetch (same bytes as stored), processing/done, status 03 back, sent list, by
    SDK objects an hour old whose Vietnamese header is refused as AUTH_HEADER_ENCODING."""
    a, b = gateways(G22), gateways(H41)
    with a.client() as dms_a, b.client() as dms_b:
        doc_id = full_cycle(dms_a, dms_b, make_document(G22, (H41,), 1), b.node.store.body)
        assert a.node.store.package(doc_id).direction == "out"
        assert [r["toCode"] for r in dms_a.sent()] == [H41]


def test_signed_package_is_stored_and_delivered_unchanged(
    gateways: Callable[[str], GatewayNode], axis: Axis,
) -> None:
    """A package the DMS signed itself is kept byte for byte down to B's getEdoc."""
    a, b = gateways(G22), gateways(H41)
    own = axis.pki.agencies[G22]
    signed = sign(make_document(G22, (H41,), 2), own.key, own.cert)
    with a.client() as dms_a, b.client() as dms_b:
        doc_id = dms_a.send_edoc(signed, from_organ=G22)
        assert a.node.store.body(doc_id) == signed
        listed = wait_for(dms_b.received, what="the signed document at B")
        assert dms_b.get_edoc(listed[0]["docId"]) == signed


def test_submission_refusals(gateways: Callable[[str], GatewayNode]) -> None:
    """from spoofing, another agency's package, wrong messagetype or to: refused, not stored."""
    a = gateways(G22)
    cases: list[tuple[dict[str, Any], bytes, str]] = [
        ({"from_organ": H41}, make_document(G22, (H41,), 3), "FROM_NOT_ALLOWED"),
        ({"from_organ": G22}, make_document(H41, (H42,), 4), "FROM_NOT_THIS_AGENCY"),
        ({"from_organ": G22, "message_type": "status"}, make_document(G22, (H41,), 5),
         "MESSAGETYPE_MISMATCH"),
        ({"from_organ": G22, "to": [H42]}, make_document(G22, (H41,), 6), "TO_NOT_IN_PACKAGE"),
        ({"from_organ": G22}, b"<edXML>not really", "XML_MALFORMED"),
    ]
    with a.client() as dms:
        for kwargs, data, code in cases:
            with pytest.raises(RequestRefused) as info:
                dms.send_edoc(data, **kwargs)
            assert info.value.code == code, info.value
    assert a.node.store.count("packages") == 0


def test_to_by_directory_code_and_duplicate_answers_the_original(
    gateways: Callable[[str], GatewayNode],
) -> None:
    """``to`` may use directory codes; the same document twice answers the first DocId."""
    a = gateways(G22)
    data = make_document(G22, (H41, H42), 7)
    with a.client(sdk_quirks=False) as dms:
        first = dms.send_edoc(data, from_organ=G22, to=[H41.replace(".", ""), H42])
        second = dms.send_edoc(data, from_organ=G22)
    assert first == second
    assert a.node.store.count("packages") == 1


def test_repeated_send_answers_the_first_docid(gateways: Callable[[str], GatewayNode]) -> None:
    """The same signed sendEdoc twice: the first answer again, stored once; the same headers
    with another body: AUTH_REPLAY."""
    a = gateways(G22)
    data = make_document(G22, (H41,), 8)
    with a.client(sdk_quirks=False) as dms:
        headers = dms.prepare({"from": G22, "servicetype": "eDoc", "messagetype": "edoc",
                               "hash-file": sha256_hex(data)}, "application/octet-stream")
        first = dms.send("sendEdoc", headers, data, "application/octet-stream")
        assert (first[0], first[1]["status"]) == (200, "OK")
        assert dms.send("sendEdoc", headers, data, "application/octet-stream") == first
        status, answer = dms.send("sendEdoc", headers, data + b"\n", "application/octet-stream")
    assert (status, answer["ErrorCode"]) == (401, "AUTH_REPLAY")
    assert a.node.store.count("packages") == 1


class AnswerDroppingProxy:
    """A TCP hop in front of a gateway that loses the first ``drop`` answers: the request
    reaches the node, the connection closes before a byte of the answer comes back."""

    def __init__(self, target: str, drop: int = 1) -> None:
        self.target = target.split("://", 1)[1].rsplit(":", 1)
        self.drop = drop
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                request = _read_http_message(conn)
                if not request:
                    continue
                host, port = self.target
                with socket.create_connection((host, int(port)), timeout=30) as upstream:
                    upstream.sendall(request)
                    answer = _read_http_message(upstream)
                if self.drop > 0:
                    self.drop -= 1
                    continue  # the answer is lost
                conn.sendall(answer)

    def close(self) -> None:
        """Stop accepting."""
        self.listener.close()
        self.thread.join(5)


def _read_http_message(sock: socket.socket) -> bytes:
    """One HTTP message (head and Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_retry_after_a_lost_answer_gets_the_same_docid(
    gateways: Callable[[str], GatewayNode],
) -> None:
    """The SDK object's sendEdoc answer is lost on the way back; the DMS calls again with the
    same object: the same DocId, one package stored and delivered once to B."""
    a, b = gateways(G22), gateways(H41)
    proxy = AnswerDroppingProxy(a.hosted.url)
    data = make_document(G22, (H41,), 11)
    try:
        with sdk_client(proxy.url, G22) as dms:
            with pytest.raises(TemporaryFailure):
                dms.send_edoc(data, from_organ=G22, to=[H41])
            assert a.node.store.count("packages") == 1  # it did arrive
            doc_id = dms.send_edoc(data, from_organ=G22, to=[H41])
    finally:
        proxy.close()
    assert [p.package_id for p in a.node.store.packages(direction="out")] == [doc_id]
    with b.client() as dms_b:
        wait_for(dms_b.received, what="the document at B")
        assert len(dms_b.received()) == 1


def test_repeats_are_answered_from_the_store_after_a_restart(
    gateways: Callable[..., GatewayNode],
) -> None:
    """B's SDK object acknowledges processing, then done, and sends status 03; B's node
    restarts; the same object repeats the status (same DocId, not queued again) and a replay
    of the old processing is answered OK without moving the package back from done."""
    a, b = gateways(G22), gateways(H41, f"127.0.0.1:{free_port()}")
    with a.client() as dms_a:
        dms_a.send_edoc(make_document(G22, (H41,), 12), from_organ=G22)
    dms_b = sdk_client(b.hosted.url, H41)
    b_id = wait_for(dms_b.received, what="the document at B")[0]["docId"]
    fetched = dms_b.get_edoc(b_id)
    processing = dms_b.prepare({"docId": b_id, "status": "processing"})
    assert dms_b.send("updateStatus", processing, b"{}", "application/json")[0] == 200
    dms_b.update_status(b_id, "done")
    reply = status_reply(fetched, H41, "03", "Đã tiếp nhận")
    status_id = dms_b.send_edoc(reply, from_organ=H41, message_type="status")
    dms_b.close()

    b.stop()
    b = gateways(H41, b.node.settings.api.listen)
    assert dms_b.send_edoc(reply, from_organ=H41, message_type="status") == status_id
    status, answer = dms_b.send("updateStatus", processing, b"{}", "application/json")
    assert (status, answer["status"]) == (200, "OK")
    assert dms_b.received() == []
    assert b.node.store.inbox_entry(b_id).pickup == "done"
    with sdk_client(b.hosted.url, H41) as other:  # another SDK object: another signature
        assert other.send_edoc(reply, from_organ=H41, message_type="status") == status_id
    sent = b.node.store.packages(direction="out", kind="status")
    assert [p.package_id for p in sent if p.status_code == "03"] == [status_id]
    dms_b.close()


def test_only_received_packages_can_be_fetched_or_acknowledged(
    gateways: Callable[[str], GatewayNode],
) -> None:
    """A's own sent package and unknown ids are NOT_FOUND for getEdoc and updateStatus."""
    a = gateways(G22)
    with a.client() as dms:
        doc_id = dms.send_edoc(make_document(G22, (H41,), 9), from_organ=G22)
        for call in (lambda: dms.get_edoc(doc_id), lambda: dms.update_status("nope", "done"),
                     lambda: dms.sent(doc_id="nope")):
            with pytest.raises(RequestRefused) as info:
                call()
            assert info.value.code == "NOT_FOUND"


def test_agencies_metrics_and_health(gateways: Callable[[str], GatewayNode]) -> None:
    """getAgenciesList is the directory; /metrics and /healthz report the real node."""
    a = gateways(G22)
    with a.client() as dms:
        agencies = dms.agencies()
        assert {x["code102"] for x in agencies} == {G22, H41, H42}
        assert all(x["id"] == x["code102"] == x["oldCode"] and x["name"] for x in agencies)
        assert {"id", "pid", "code", "name", "mail", "oldCode"} <= set(agencies[0])
        dms.send_edoc(make_document(G22, (H41,), 10), from_organ=G22)
    wait_for(lambda: a.runner.link.connected and a.node.store.outbox_counts()["pending"] == 0,
             what="the outbox relayed")
    status, body = get(a.hosted.url, "/metrics")
    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    assert samples[("edoc_axis_packages_out_total", ())] == 1
    assert samples[("edoc_axis_outbox_depth", ())] == 0
    assert samples[("edoc_axis_broker_connected", ())] == 1
    assert samples[("edoc_axis_dms_requests_total", (("call", "sendEdoc"), ("result", "OK")))] == 1
    status, body = get(a.hosted.url, "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "OK", "version": json.loads(body)["version"],
                                "broker_connected": True}


# --- end to end: `edoc-axis run` processes -------------------------------------------------


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_process(axis: Axis, organ_id: str) -> tuple[NodeProcess, str]:
    """An `edoc-axis run` process whose config has a [[dms]] system; (process, base URL)."""
    node = NodeProcess(axis, organ_id)
    port = free_port()
    text = node.config.read_text(encoding="utf-8").replace(
        'listen = "127.0.0.1:8470"', f'listen = "127.0.0.1:{port}"')
    text += (f'\n[[dms]]\nsystemid = "{systemid(organ_id)}"\nsecret = "{SECRETS[organ_id]}"\n'
             f'organ_id = "{organ_id}"\n')
    node.config.write_text(text, encoding="utf-8")
    return node.start(), f"http://127.0.0.1:{port}"


def healthy(url: str) -> bool:
    """Whether the gateway answers /healthz with the broker connected."""
    try:
        status, body = get(url, "/healthz")
    except OSError:
        return False
    return status == 200 and json.loads(body).get("broker_connected") is True


def test_edoc_axis_run_serves_the_protocol_end_to_end(axis: Axis) -> None:
    """Two `edoc-axis run` processes: an SDK-like DMS at each does the full cycle; SIGTERM
    stops node and gateway cleanly."""
    processes: list[NodeProcess] = []
    try:
        (a, url_a), (b, url_b) = gateway_process(axis, G22), gateway_process(axis, H41)
        processes += [a, b]
        for url in (url_a, url_b):
            wait_for(lambda u=url: healthy(u), 30, f"{url} healthy")  # type: ignore[misc]
        store_b = b.store()
        with sdk_client(url_a, G22) as dms_a, sdk_client(url_b, H41) as dms_b:
            full_cycle(dms_a, dms_b, make_document(G22, (H41,), 20), store_b.body)
        store_b.close()
        for process in processes:
            assert process.stop(signal.SIGTERM) == 0
        assert not healthy(url_a)
    finally:
        for process in processes:
            if process.proc is not None:
                process.proc.kill()
                process.proc.wait(10)


def test_sent_list_of_many_packages_parses_no_body(axis: Axis) -> None:
    """getSentEdocList of N documents and of the N statuses 13 this node sent about them
    parses nothing: subject and notation were stored with each package when it was sent."""
    node = Node.from_settings(axis.settings(G22))
    backend = NodeBackend(node)
    try:
        documents = [make_document(G22, (H41,), 40 + n) for n in range(5)]
        expected = []
        for data in documents:
            pkg = parse(data)
            assert isinstance(pkg, DocumentPackage)
            expected.append((pkg.subject, f"{pkg.code.number}/{pkg.code.notation}"))
            node.set_status(node.submit(data).document_id, "13", description="thu hồi")
        before = PARSE_STATS.snapshot()
        sent = backend.sent(G22, "edoc", None)
        statuses = backend.sent(G22, "status", None)
        assert PARSE_STATS.snapshot() == before
        assert [(i.title, i.notation, i.to_code) for i in sent] == [
            (subject, notation, H41) for subject, notation in expected]
        assert [(i.title, i.notation) for i in statuses] == [
            ("13 thu hồi", notation) for _, notation in expected]
    finally:
        backend.close()
        node.close()


def test_sent_list_fills_summaries_of_older_packages_once(axis: Axis) -> None:
    """Packages stored before subject and notation were columns: the first getSentEdocList
    parses each body once and writes the columns; the next parses nothing, same rows."""
    node = Node.from_settings(axis.settings(G22))
    backend = NodeBackend(node)
    try:
        documents = [make_document(G22, (H41,), 30 + n) for n in range(4)]
        for data in documents:
            node.submit(data)
        node.store.conn.execute("UPDATE packages SET subject = NULL, notation = NULL")
        before = PARSE_STATS.snapshot()
        first = backend.sent(G22, "edoc", None)
        assert PARSE_STATS.snapshot()[0] - before[0] == len(documents)
        before = PARSE_STATS.snapshot()
        again = backend.sent(G22, "edoc", None)
        assert PARSE_STATS.snapshot() == before
        assert again == first
        expected = []
        for data in documents:
            pkg = parse(data)
            assert isinstance(pkg, DocumentPackage)
            expected.append((pkg.subject, f"{pkg.code.number}/{pkg.code.notation}"))
        assert [(i.title, i.notation) for i in again] == expected
    finally:
        backend.close()
        node.close()


def test_body_limit_follows_the_package_size_setting(axis: Axis) -> None:
    """The gateway reads at most limits.max_package_bytes plus the SDK's wrapping: a longer
    body is answered 413 before it is read, one within the bound goes on to authentication."""
    small = XmlLimits(max_bytes=100_000)
    node = Node.from_settings(dataclasses.replace(with_dms(axis.settings(G22)), limits=small))
    hosted = host(node)
    assert hosted is not None
    try:
        assert hosted.server.gateway.max_body_bytes == body_limit(100_000)
        statuses = []
        for length in (body_limit(100_000) + 1, body_limit(100_000)):
            conn = http.client.HTTPConnection(hosted.url.split("://", 1)[1], timeout=10)
            try:
                conn.putrequest("POST", "/sendEdoc")
                conn.putheader("Content-Length", str(length))
                conn.endheaders()
                if length <= body_limit(100_000):
                    conn.send(b"x" * length)
                statuses.append(conn.getresponse().status)
            finally:
                conn.close()
        assert statuses[0] == 413
        assert statuses[1] != 413
    finally:
        hosted.stop()
        node.close()
