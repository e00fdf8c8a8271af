"""Dead letters: peeking, replaying, and who a replay says published the original (issue 11
hole 1: the replay records the broker's user_id, never a header the publisher wrote)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest
from conftest import Axis, build_edxml_document
from test_node import wait_for

from edoc_axis.edxml.model import Code, DocumentPackage
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.write import build
from edoc_axis.node.node import Node
from edoc_axis.node.runner import Runner
from edoc_axis.transport.deadletter import replay_dead_letter, replay_headers
from edoc_axis.transport.message import (
    REPLAYED_USER_HEADER,
    IncomingMessage,
    publisher_of,
)
from edoc_axis.transport.provision import check_queues
from edoc_axis.transport.topology import Topology

G22, H41, H42 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H42"
TOPOLOGY = Topology()


def _incoming(user_id: str | None, headers: dict[str, Any]) -> IncomingMessage:
    return IncomingMessage(body=b"", message_id="m", user_id=user_id, type="edoc",
                           headers=headers, redelivered=False, delivery_count=0,
                           routing_key="C")


def test_replay_records_the_dead_letters_user_id_never_its_header() -> None:
    """A replay's publisher comes from the dead letter's user_id; a copied header is dropped."""
    forged = {REPLAYED_USER_HEADER: "user-a", "edoc-from": "A", "x-death": [{}]}
    assert replay_headers(forged, None, "user-c") == {REPLAYED_USER_HEADER: "",
                                                     "edoc-from": "A"}
    assert replay_headers(forged, "user-b", "user-c")[REPLAYED_USER_HEADER] == "user-b"
    # A replay of the agency's own replay keeps what that replay recorded from the broker.
    assert replay_headers({REPLAYED_USER_HEADER: ""}, "user-c", "user-c") == {
        REPLAYED_USER_HEADER: ""}
    assert replay_headers({}, "user-c", "user-c") == {REPLAYED_USER_HEADER: "user-c"}


def test_publisher_of_trusts_the_header_only_on_the_agencys_own_messages() -> None:
    """The replay header counts only under the node's own user_id; "" there means anonymous."""
    def publisher(user_id: str | None, recorded: object = None) -> str | None:
        headers = {} if recorded is None else {REPLAYED_USER_HEADER: recorded}
        return publisher_of(_incoming(user_id, headers), "user-c")

    assert publisher("user-b", "user-a") == "user-b"
    assert publisher(None, "user-a") is None
    assert publisher("user-c", "user-a") == "user-a"
    assert publisher("user-c", "") is None
    assert publisher("user-c", b"user-a") == "user-a"
    assert publisher("user-c") == "user-c"


# --- the attack, on the real broker --------------------------------------------------------------


@pytest.fixture
def running(axis: Axis) -> Iterator[dict[str, Node]]:
    """Nodes G22 (A) and H41 (C) running on the test axis; H42 (B) is only an attacker."""
    nodes = {o: Node.from_settings(axis.settings(o)) for o in (G22, H41)}
    runners = [Runner(node).start() for node in nodes.values()]
    yield nodes
    for runner in runners:
        runner.stop()
    for node in nodes.values():
        node.close()


def _document(number: int) -> bytes:
    pkg = parse(build_edxml_document(G22, H41))
    assert isinstance(pkg, DocumentPackage)
    pkg.code = Code(str(number), "VPCP-TTĐT")
    pkg.document_id = f"{G22},{pkg.promulgation.date},{number}/VPCP-TTĐT"
    return build(pkg)


@pytest.mark.broker
def test_replayed_forgery_without_user_id_stays_anonymous(
    axis: Axis, running: dict[str, Node]
) -> None:
    """B forges A's document with no user_id and a header naming A; C dead-letters it and its
    operator replays it: still refused as SENDER_NO_USER_ID, no 02 to anyone, A's real document
    stays "arrived" at C."""
    a, c = running[G22], running[H41]
    sent = a.submit(_document(31))
    wait_for(lambda: {d.state for d in a.store.deliveries(sent.document_id)} == {"arrived"},
             20.0, "the real document's 01")
    a_user = axis.agencies[G22].account.user
    connection = pika.BlockingConnection(pika.URLParameters(axis.url(H42)))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("edoc.axis", H41, _document(31), mandatory=True,
                              properties=pika.BasicProperties(
                                  message_id="forged-31", type="edoc", delivery_mode=2,
                                  headers={REPLAYED_USER_HEADER: a_user}))
    finally:
        connection.close()
    wait_for(lambda: len(c.store.rejections()) == 1, 20.0, "C refuses the forgery")
    dead = TOPOLOGY.dead_queue_for(H41)
    wait_for(lambda: check_queues(axis.admin_url, TOPOLOGY, [H41])[dead] == 1, 20.0,
             "the dead letter")

    assert replay_dead_letter(axis.url(H41), TOPOLOGY, H41, "forged-31",
                              axis.agencies[H41].account.user)
    rejections = wait_for(lambda: len(c.store.rejections()) == 2 and c.store.rejections(),
                          20.0, "C refuses the replay")
    assert [r.code for r in rejections] == ["SENDER_NO_USER_ID"] * 2
    assert {r.identified_sender for r in rejections} == {None}
    assert sum(c.store.outbox_counts().values()) == 1  # only the 01 of the real document
    assert {d.state for d in a.store.deliveries(sent.document_id)} == {"arrived"}
