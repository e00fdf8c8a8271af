"""The node's journeys in-process on the real broker: submit, relay, receive, receipts, statuses."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pika
import pytest
from click.testing import CliRunner
from conftest import DEVIANT_TRACE_ORGAN_ID, Axis, build_edxml_document, with_deviations

from edoc_axis.cli import main
from edoc_axis.config.settings import ValidationSettings
from edoc_axis.edxml.model import Business, Code, DocumentPackage, Organization, StatusPackage
from edoc_axis.edxml.profile import RECEIVED
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.write import build
from edoc_axis.errors import (
    NotFound,
    PackageRejected,
    RuleViolation,
    SignatureInvalid,
    UnknownAgency,
)
from edoc_axis.node.node import Node
from edoc_axis.node.runner import Runner
from edoc_axis.transport.message import IncomingMessage, Outcome
from edoc_axis.trust.signature import sign

pytestmark = pytest.mark.broker

G22, H41, H42 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H42"
DEVIATION_CODES = ("EMPTY_ELEMENT", "ORGANID_FORMAT", "SURPLUS_WHITESPACE")


def make_document(sender: str, recipients: tuple[str, ...], number: int, *,
                  business_op: int = 0) -> bytes:
    """An unsigned document from ``sender`` to ``recipients`` with DocumentId number ``number``."""
    pkg = parse(build_edxml_document(sender, recipients[0]))
    assert isinstance(pkg, DocumentPackage)
    pkg.recipients = [Organization(r, f"Cơ quan {r}") for r in recipients]
    pkg.code = Code(str(number), "VPCP-TTĐT")
    pkg.document_id = f"{sender},{pkg.promulgation.date},{number}/VPCP-TTĐT"
    if business_op:
        pkg.business = Business(document_id=pkg.document_id, doc_type=business_op)
    return build(pkg)


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``condition`` until it is truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or condition}")


@pytest.fixture
def nodes(axis: Axis) -> Iterator[Callable[..., Node]]:
    """Start in-process nodes on the axis (``nodes(organ_id, run=True)``); all stopped after."""
    started: list[tuple[Node, Runner | None]] = []

    def start(organ_id: str, *, run: bool = True, **signature: bool) -> Node:
        node = Node.from_settings(axis.settings(organ_id, **signature))
        runner = Runner(node).start() if run else None
        started.append((node, runner))
        return node

    yield start
    for node, runner in started:
        if runner is not None:
            runner.stop()
        node.close()


def states(node: Node, document_id: str) -> dict[str, str]:
    """Recipient -> delivery state of a sent document."""
    return {d.recipient: d.state for d in node.store.deliveries(document_id)}


def documents_in(node: Node) -> list[str]:
    """DocumentIds of received documents in the inbox."""
    return [e.document_id for e in node.store.inbox(kind="edoc")]


def publish_raw(axis: Axis, as_agency: str, to: str, body: bytes, message_id: str) -> None:
    """Publish bytes as ``as_agency``'s broker user (tests of spoofing and duplicates)."""
    params = pika.URLParameters(axis.url(as_agency))
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(
            message_id=message_id, user_id=axis.agencies[as_agency].account.user, type="edoc",
            delivery_mode=2)
        channel.basic_publish("edoc.axis", to, body, mandatory=True, properties=properties)
    finally:
        connection.close()


def test_document_reaches_every_recipient_and_receipts_come_back(
    nodes: Callable[..., Node],
) -> None:
    """One submission lands once in each recipient's inbox and each signed 01 is recorded."""
    g22, h41, h42 = nodes(G22), nodes(H41), nodes(H42)
    result = g22.submit(make_document(G22, (H41, H42), 1))
    assert result.recipients == (H41, H42)
    assert not result.duplicate
    wait_for(lambda: states(g22, result.document_id) == {H41: "arrived", H42: "arrived"},
             what="both receipts")
    assert documents_in(h41) == [result.document_id]
    assert documents_in(h42) == [result.document_id]
    for delivery in g22.store.deliveries(result.document_id):
        steps = [(h.state, h.status_code) for h in g22.store.history(delivery.id)]
        assert steps == [("queued", None), ("sent", None), ("arrived", "01")]
        receipt = g22.store.history(delivery.id)[-1].status_package_id
        assert receipt is not None
        assert b"Signature" in g22.store.body(receipt)
    # the body stored at the recipient is exactly what the sender signed and stored
    entry = h41.store.inbox(kind="edoc")[0]
    assert h41.store.body(entry.package_id) == g22.store.body(result.package_id)


def test_unknown_recipient_is_refused_before_anything_is_stored(nodes: Callable[..., Node]) -> None:
    """A To agency missing from the directory fails clearly, naming it; nothing is queued."""
    g22 = nodes(G22, run=False)
    with pytest.raises(UnknownAgency) as info:
        g22.submit(make_document(G22, (H41, "000.00.00.X99"), 2))
    assert info.value.agency == "000.00.00.X99"
    assert g22.store.count("packages") == 0


def test_duplicate_submission_answers_the_original(nodes: Callable[..., Node]) -> None:
    """Submitting the same package twice is recognised and routed once."""
    g22 = nodes(G22, run=False)
    data = make_document(G22, (H41,), 3)
    first, second = g22.submit(data), g22.submit(data)
    assert second.duplicate
    assert second.package_id == first.package_id
    assert g22.store.outbox_counts()["pending"] == 1


def test_submission_policy(nodes: Callable[..., Node], axis: Axis) -> None:
    """Another agency's From is refused; a package signed by us verifies; unsigned by policy."""
    g22 = nodes(G22, run=False)
    with pytest.raises(RuleViolation) as info:
        g22.submit(make_document(H41, (H42,), 4))
    assert info.value.code == "FROM_NOT_THIS_AGENCY"
    own = axis.pki.agencies[G22]
    signed = sign(make_document(G22, (H41,), 5), own.key, own.cert)
    assert g22.store.body(g22.submit(signed).package_id) == signed
    other = axis.pki.agencies[H41]
    with pytest.raises(SignatureInvalid):
        g22.submit(sign(make_document(G22, (H41,), 6), other.key, other.cert))
    strict = nodes(G22, run=False, sign_unsigned_submissions=False)
    with pytest.raises(SignatureInvalid) as refused:
        strict.submit(make_document(G22, (H41,), 7))
    assert refused.value.code == "SIG_MISSING"


def test_business_statuses_and_take_back(nodes: Callable[..., Node]) -> None:
    """03 and 05 (twice) flow back into the history; 13 reaches the recipient; 15 answers it."""
    g22, h41 = nodes(G22), nodes(H41)
    doc = g22.submit(make_document(G22, (H41,), 8)).document_id
    wait_for(lambda: states(g22, doc) == {H41: "arrived"}, what="receipt")
    h41.set_status(doc, "03", description="vào sổ")
    assert h41.set_status(doc, "03")[0].duplicate  # repeats of 03 are idempotent
    h41.set_status(doc, "05")
    h41.set_status(doc, "05")
    wait_for(lambda: [h.status_code for h in g22.store.history(g22.store.deliveries(doc)[0].id)]
             == [None, None, "01", "03", "05", "05"], what="03 and 05 twice")
    assert states(g22, doc) == {H41: "processing"}
    g22.set_status(doc, "13", description="thu hồi")
    wait_for(lambda: [e for e in h41.store.inbox(kind="status") if e.status_code == "13"],
             what="13 at the recipient")
    h41.set_status(doc, "15")
    wait_for(lambda: states(g22, doc) == {H41: "recalled"}, what="15 at the sender")
    with pytest.raises(NotFound):
        h41.set_status("000.00.00.G22,2024/05/06,999/X", "03")


def test_recipient_offline_then_back(nodes: Callable[..., Node]) -> None:
    """A document sent while the recipient's node is down arrives when it starts."""
    g22 = nodes(G22)
    doc = g22.submit(make_document(G22, (H41,), 9)).document_id
    wait_for(lambda: states(g22, doc) == {H41: "sent"}, what="broker confirm")
    h41 = nodes(H41)
    wait_for(lambda: states(g22, doc) == {H41: "arrived"}, what="receipt after start")
    assert documents_in(h41) == [doc]


def test_duplicate_message_stored_once_and_receipt_resent(nodes: Callable[..., Node],
                                                          axis: Axis) -> None:
    """The same message twice, and the same package under a new message id, are stored once."""
    g22, h41 = nodes(G22), nodes(H41)
    result = g22.submit(make_document(G22, (H41,), 10))
    wait_for(lambda: states(g22, result.document_id) == {H41: "arrived"}, what="receipt")
    body = g22.store.body(result.package_id)
    publish_raw(axis, G22, H41, body, result.package_id)
    publish_raw(axis, G22, H41, body, "another-message-id")
    wait_for(lambda: h41.store.outbox_counts()["confirmed"] >= 3, what="01 re-sent twice")
    assert documents_in(h41) == [result.document_id]
    assert h41.store.count("rejections") == 0


def test_revoke_is_linked_not_a_duplicate(nodes: Callable[..., Node]) -> None:
    """A revoke (BussinessDocType 1) of a received DocumentId is stored and linked to it."""
    g22, h41 = nodes(G22), nodes(H41)
    original = g22.submit(make_document(G22, (H41,), 11))
    revoke = g22.submit(make_document(G22, (H41,), 11, business_op=1))
    assert revoke.document_id == original.document_id
    assert not revoke.duplicate
    wait_for(lambda: len(documents_in(h41)) == 2, what="both packages")
    entries = h41.store.inbox(kind="edoc")
    assert [e.business_op for e in entries] == [0, 1]
    assert h41.store.package(entries[1].package_id).related_package == entries[0].package_id


def test_spoofed_user_id_is_dead_lettered_and_02_goes_to_the_real_publisher(
    nodes: Callable[..., Node], axis: Axis
) -> None:
    """A package From G22 published by H42's broker user is rejected; 02 goes to H42 only."""
    h41, h42 = nodes(H41), nodes(H42)
    g22_identity = axis.pki.agencies[G22]
    body = sign(make_document(G22, (H41,), 12), g22_identity.key, g22_identity.cert)
    publish_raw(axis, H42, H41, body, "spoof-1")
    rejection = wait_for(h41.store.rejections, what="rejection")[0]
    assert rejection.code == "SENDER_SPOOFED"
    assert rejection.identified_sender == H42
    assert rejection.claimed_sender == G22
    assert documents_in(h41) == []
    notice = wait_for(lambda: h42.store.inbox(kind="status"), what="02 at H42")[0]
    assert notice.status_code == "02"
    assert h42.store.package(notice.package_id).description is not None


def test_signature_by_another_agency_is_rejected(nodes: Callable[..., Node], axis: Axis) -> None:
    """A package From G22 (G22's broker user) but signed with H42's key is rejected with 02."""
    g22, h41 = nodes(G22), nodes(H41)
    other = axis.pki.agencies[H42]
    body = sign(make_document(G22, (H41,), 13), other.key, other.cert)
    publish_raw(axis, G22, H41, body, "forged-1")
    rejection = wait_for(h41.store.rejections, what="rejection")[0]
    assert rejection.code.startswith(("SIGNER_", "SIG_", "CERT_"))
    notice = wait_for(lambda: g22.store.inbox(kind="status"), what="02 at G22")[0]
    assert notice.status_code == "02"
    assert rejection.code in (g22.store.package(notice.package_id).description or "")


def test_deviant_document_is_received_with_its_warnings(axis: Axis,
                                                        nodes: Callable[..., Node]) -> None:
    """Harmless deviations, signed by the sender: stored, answered 01, warnings kept and shown."""
    h41 = nodes(H41)
    deviant = with_deviations(make_document(G22, (H41,), 20))
    with pytest.raises(RuleViolation):  # our own submissions are strict by default
        nodes(G22, run=False).submit(deviant)
    relaxed = replace(axis.settings(G22, "g22-received"),
                      validation=ValidationSettings(submit_profile=RECEIVED))
    g22 = Node.from_settings(relaxed)
    runner = Runner(g22).start()
    try:
        result = g22.submit(deviant)
        wait_for(lambda: states(g22, result.document_id) == {H41: "arrived"}, what="receipt 01")
    finally:
        runner.stop()
        g22.close()
    [entry] = h41.store.inbox(kind="edoc")
    assert h41.store.body(entry.package_id).count(b"28.22.H17") == 1
    warnings = h41.store.package(entry.package_id).warnings
    assert sorted(w["code"] for w in warnings) == sorted(DEVIATION_CODES)
    assert h41.store.count("rejections") == 0
    config = axis.dir / H41 / "node.toml"
    shown = CliRunner().invoke(main, ["inbox", "show", "-c", str(config), entry.package_id])
    assert shown.exit_code == 0
    assert (f"warning: ORGANID_FORMAT /edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/"
            f"TraceHeader[2]/OrganId '{DEVIANT_TRACE_ORGAN_ID}': ") in shown.output
    assert "warning: EMPTY_ELEMENT " in shown.output
    assert "warning: SURPLUS_WHITESPACE " in shown.output
    assert re.search(r"created_at: \S+T\S+\+07:00\n", shown.output)  # Vietnam time, labelled
    listed = CliRunner().invoke(main, ["inbox", "list", "-c", str(config), "--kind", "edoc"])
    header, row = listed.output.splitlines()
    assert header.split() == ["PACKAGE", "RECEIVED", "PICKUP", "WHAT", "FROM", "DOCUMENT"]
    assert row.split()[:5] == [entry.package_id, row.split()[1], "new", "document", G22]
    assert row.split()[1].endswith("+07:00")
    trail = CliRunner().invoke(main, ["audit", "trail", "-c", str(config), result.document_id,
                                      "--json"])
    assert trail.exit_code == 0
    [received] = [e for e in json.loads(trail.output)["events"] if e["event"] == "received"]
    assert received["detail"]["warnings"] == sorted(DEVIATION_CODES)
    text = CliRunner().invoke(main, ["audit", "trail", "-c", str(config), result.document_id])
    assert f"warnings {','.join(sorted(DEVIATION_CODES))}" in text.output


def test_refusal_at_the_storing_step_is_answered_02_never_01(
    nodes: Callable[..., Node], axis: Axis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document the checks pass but storing refuses is dead-lettered and answered 02, never 01."""
    h41 = nodes(H41, run=False)
    g22 = axis.pki.agencies[G22]
    body = sign(make_document(G22, (H41,), 21), g22.key, g22.cert)

    def refuse(*_: object) -> None:
        raise PackageRejected("refused while storing")

    monkeypatch.setattr(h41.receiver, "_store_document", refuse)
    message = IncomingMessage(body=body, message_id="refused-1",
                              user_id=axis.agencies[G22].account.user, type="edoc", headers={},
                              redelivered=False, delivery_count=0, routing_key=H41)
    assert h41.handle_batch([message]) == [Outcome.REJECT]
    [rejection] = h41.store.rejections()
    assert rejection.code == "PACKAGE_REJECTED"
    assert documents_in(h41) == []
    answers = h41.store.packages(direction="out", kind="status")
    assert [(a.status_code, a.recipients) for a in answers] == [("02", (G22,))]
    [queued] = h41.store.pending_outbox(10, exclude=set())
    status = parse(queued.body)
    assert isinstance(status, StatusPackage)
    assert (status.status_code, queued.recipient) == ("02", G22)
    assert "PACKAGE_REJECTED: refused while storing" in (status.description or "")
