"""Chunked transfer of large packages (issue 12 part 1): the chunk format, the sender's
bookkeeping, and a recipient that stages, dedupes, refuses, resumes and assembles."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from conftest import Axis, make_document

from edoc_axis.edxml import attachment as a
from edoc_axis.edxml.write import append_trace_header, build
from edoc_axis.errors import ErrorCode
from edoc_axis.node.chunk_send import ChunkSender
from edoc_axis.node.node import Node
from edoc_axis.node.runner import Runner
from edoc_axis.transport import chunk
from edoc_axis.transport.message import Confirmation, IncomingMessage, Outcome, OutgoingMessage

MIB = 1024 * 1024
CHUNK = 256 * 1024
G22, H41 = "000.00.00.G22", "000.00.00.H41"


# --- pure: the format and the sender's bookkeeping -------------------------------------------

def _message(size: int, token: int = 7) -> OutgoingMessage:
    return OutgoingMessage(token=token, message_id="m-1", routing_key=H41,
                           body=os.urandom(size), type="edoc", headers={"edoc-from": G22})


def test_split_and_header_round_trip() -> None:
    """A body cut in chunks joins back; each header reads back; tokens map to the row."""
    message = _message(CHUNK * 3 + 5)
    chunks = chunk.split(message, CHUNK)
    assert len(chunks) == 4 and b"".join(c.body for c in chunks) == message.body
    for index, piece in enumerate(chunks):
        header = chunk.ChunkHeader.read(piece.headers)
        assert (header.transfer, header.index, header.count) == ("m-1", index, 4)
        assert header.total_size == len(message.body) and header.inner_type == "edoc"
        assert piece.type == chunk.CHUNK_TYPE and piece.headers["edoc-from"] == G22
        assert chunk.row_of(piece.token) == (7, index)
    assert chunk.row_of(7) is None
    with pytest.raises(ValueError, match="out of range"):
        chunk.ChunkHeader.read({**chunks[0].headers, chunk.INDEX: "4"})
    with pytest.raises(ValueError, match="missing"):
        chunk.ChunkHeader.read({})


def test_sender_settles_a_row_once_all_its_chunks_are_confirmed() -> None:
    """The row is confirmed after its last chunk; a nack retries the row with only the chunks
    still unconfirmed; an unroutable chunk fails the row once."""
    sender = ChunkSender(CHUNK)
    message = _message(CHUNK * 2 + 1)
    first = sender.expand([message], limit=2)
    assert [chunk.row_of(c.token) for c in first] == [(7, 0), (7, 1)]
    assert sender.settle([Confirmation(first[0].token, ok=True)]) == []
    rest = sender.due(10)
    assert [chunk.row_of(c.token) for c in rest] == [(7, 2)]
    nack = Confirmation(first[1].token, ok=False, code=ErrorCode.BROKER_NACK, reason="full")
    assert sender.settle([nack]) == []
    [row] = sender.settle([Confirmation(rest[0].token, ok=True)])
    assert row.token == 7 and row.retryable
    again = sender.expand([message], limit=10)
    assert [chunk.row_of(c.token) for c in again] == [(7, 1)]
    assert sender.settle([Confirmation(again[0].token, ok=True)]) == [Confirmation(7, ok=True)]
    small = _message(100, token=8)
    assert sender.expand([small], limit=10) == [small]
    lost = sender.expand([_message(CHUNK + 1, token=9)], limit=10)
    returned = Confirmation(lost[0].token, ok=False, returned=True, code=ErrorCode.UNROUTABLE)
    assert sender.settle([returned]) == []
    [failed] = sender.settle([Confirmation(lost[1].token, ok=True)])
    assert failed.token == 9 and not failed.ok and failed.code == ErrorCode.UNROUTABLE


# --- a recipient fed chunk messages directly -------------------------------------------------

def _settings(axis: Axis, organ_id: str, **broker: Any) -> Any:
    settings = axis.settings(organ_id)
    return dataclasses.replace(settings, broker=dataclasses.replace(
        settings.broker, chunk_bytes=CHUNK, **broker))


def _large_document(size: int = 2 * MIB) -> bytes:
    doc = make_document()
    append_trace_header(doc, G22, "2024/03/05 09:00:00")
    a.add_attachment(doc, "scan.pdf", os.urandom(size))
    return build(doc)


@pytest.fixture
def pair(axis: Axis) -> Iterator[Callable[..., Node]]:
    """Nodes (not running) with 256 KiB chunks; closed afterwards."""
    opened: list[Node] = []

    def open_node(organ_id: str, **broker: Any) -> Node:
        node = Node.from_settings(_settings(axis, organ_id, **broker))
        opened.append(node)
        return node

    yield open_node
    for node in opened:
        node.close()


def _as_delivered(axis: Axis, messages: list[OutgoingMessage]) -> list[IncomingMessage]:
    user = axis.agencies[G22].account.user
    return [IncomingMessage(body=m.body, message_id=m.message_id, user_id=user, type=m.type,
                            headers=dict(m.headers), redelivered=False, delivery_count=0,
                            routing_key=m.routing_key) for m in messages]


def _chunks_of(axis: Axis, g22: Node) -> tuple[str, bytes, list[IncomingMessage]]:
    result = g22.submit(_large_document())
    body = g22.store.body(result.package_id)
    messages: list[OutgoingMessage] = []
    while batch := g22.fetch_outgoing(1000):  # a few chunks in flight at once
        messages += batch
        g22.on_confirmed([Confirmation(m.token, ok=True) for m in batch])
    assert g22.store.outbox_counts()["confirmed"] == 1
    assert len(messages) == -(-len(body) // CHUNK) > 4
    return result.document_id, body, _as_delivered(axis, messages)


def _staged(node: Node) -> list[str]:
    root = node.chunk_receiver.root
    return [p.name for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.broker
def test_duplicate_chunks_are_harmless_and_the_package_is_stored_once(
    axis: Axis, pair: Callable[..., Node]
) -> None:
    """Every chunk twice, in two batches: all acked, one package byte-identical, one 01
    queued, nothing left staged."""
    g22, h41 = pair(G22), pair(H41)
    document_id, body, chunks = _chunks_of(axis, g22)
    assert h41.handle_batch(chunks[:3] + chunks[:3]) == [Outcome.ACK] * 6
    assert h41.store.inbox(kind="edoc") == [] and len(_staged(h41)) == 3
    assert h41.handle_batch(chunks) == [Outcome.ACK] * len(chunks)
    [entry] = h41.store.inbox(kind="edoc")
    assert entry.document_id == document_id and h41.store.body(entry.package_id) == body
    assert h41.handle_batch(chunks[2:4]) == [Outcome.ACK] * 2  # late duplicates after
    assert len(h41.store.inbox(kind="edoc")) == 1
    assert list(h41.store.outbox_counts().values()) == [1, 0, 0]  # one 01 queued
    assert _staged(h41) == []


@pytest.mark.broker
def test_a_corrupt_chunk_is_refused_with_its_code(axis: Axis, pair: Callable[..., Node]) -> None:
    """A chunk whose bytes do not match its SHA-256 is dead-lettered (CHUNK_CORRUPT, audited);
    the transfer completes when the good chunk comes again."""
    g22, h41 = pair(G22), pair(H41)
    _, body, chunks = _chunks_of(axis, g22)
    bad = dataclasses.replace(chunks[1], body=b"X" + chunks[1].body[1:])
    outcomes = h41.handle_batch([bad, *chunks[2:], chunks[0]])
    assert outcomes[0] is Outcome.REJECT and set(outcomes[1:]) == {Outcome.ACK}
    assert h41.store.inbox(kind="edoc") == []
    refused = [e for e in h41.audit.entries() if e.kind == "rejected"]
    assert [json.loads(e.detail)["code"] for e in refused] == ["CHUNK_CORRUPT"]
    assert h41.handle_batch([chunks[1]]) == [Outcome.ACK]
    [entry] = h41.store.inbox(kind="edoc")
    assert h41.store.body(entry.package_id) == body


@pytest.mark.broker
def test_chunks_that_do_not_make_the_named_package_are_refused_and_answered_02(
    axis: Axis, pair: Callable[..., Node]
) -> None:
    """Every chunk matches its own hash but not the whole SHA-256 named: the last one is
    dead-lettered TRANSFER_CORRUPT, nothing is stored or left staged, a 02 goes back."""
    g22, h41 = pair(G22), pair(H41)
    _, _, chunks = _chunks_of(axis, g22)
    lying = [dataclasses.replace(c, headers={**c.headers, chunk.TOTAL_SHA256: "0" * 64})
             for c in chunks]
    outcomes = h41.handle_batch(lying)
    assert outcomes[:-1] == [Outcome.ACK] * (len(chunks) - 1)
    assert outcomes[-1] is Outcome.REJECT
    assert h41.store.inbox(kind="edoc") == [] and _staged(h41) == []
    [answer] = h41.fetch_outgoing(10)
    assert answer.type == "status" and b"TRANSFER_CORRUPT" in answer.body


@pytest.mark.broker
def test_a_transfer_resumes_after_the_recipient_restarts(
    axis: Axis, pair: Callable[..., Node]
) -> None:
    """Chunks recorded before a restart are kept: the new process needs only the rest."""
    g22, first = pair(G22), pair(H41)
    _, body, chunks = _chunks_of(axis, g22)
    half = len(chunks) // 2
    assert first.handle_batch(chunks[:half]) == [Outcome.ACK] * half
    first.close()
    again = pair(H41)
    assert again.handle_batch(chunks[half:]) == [Outcome.ACK] * (len(chunks) - half)
    [entry] = again.store.inbox(kind="edoc")
    assert again.store.body(entry.package_id) == body and _staged(again) == []


@pytest.mark.broker
def test_an_abandoned_transfer_is_deleted_with_an_audit_event(
    axis: Axis, pair: Callable[..., Node]
) -> None:
    """Past the timeout, a partial transfer's rows and files go, audited TRANSFER_ABANDONED,
    never answered 01: a signed 02 with that code goes to the sender, whose delivery becomes
    rejected."""
    g22, h41 = pair(G22), pair(H41, transfer_timeout=60)
    document_id, _, chunks = _chunks_of(axis, g22)
    h41.handle_batch(chunks[:2])
    assert h41.chunk_receiver.sweep() == [] and len(_staged(h41)) == 2
    assert h41.chunk_receiver.sweep(now=time.time() + 61) == [chunks[0].headers[chunk.TRANSFER]]
    assert _staged(h41) == [] and h41.store.inbox(kind="edoc") == []
    codes = [json.loads(e.detail)["code"] for e in h41.audit.entries() if e.kind == "rejected"]
    assert codes == ["TRANSFER_ABANDONED"]
    [answer] = h41.fetch_outgoing(10)
    assert answer.type == "status" and b"TRANSFER_ABANDONED" in answer.body
    user = axis.agencies[H41].account.user
    assert g22.handle_batch([IncomingMessage(
        body=answer.body, message_id=answer.message_id, user_id=user, type="status",
        headers=dict(answer.headers), redelivered=False, delivery_count=0,
        routing_key=G22)]) == [Outcome.ACK]
    [delivery] = g22.store.deliveries(document_id)
    assert delivery.state == "rejected" and "TRANSFER_ABANDONED" in (delivery.reason or "")


# --- through the real broker -----------------------------------------------------------------

@pytest.mark.broker
def test_a_large_package_travels_in_chunks_between_two_nodes(axis: Axis) -> None:
    """A 2 MiB package in 256 KiB chunks reaches H41 byte-identical, answered by exactly one
    01, with nothing left staged or recorded."""
    nodes = [Node.from_settings(_settings(axis, o)) for o in (G22, H41)]
    runners = [Runner(n).start() for n in nodes]
    g22, h41 = nodes
    try:
        result = g22.submit(_large_document())
        deadline = time.monotonic() + 60
        while {d.state for d in g22.store.deliveries(result.document_id)} != {"arrived"}:
            assert time.monotonic() < deadline, "no 01 came back"
            time.sleep(0.05)
        [entry] = h41.store.inbox(kind="edoc")
        assert h41.store.body(entry.package_id) == g22.store.body(result.package_id)
        [delivery] = g22.store.deliveries(result.document_id)
        steps = [(h.state, h.status_code) for h in g22.store.history(delivery.id)]
        assert steps == [("queued", None), ("sent", None), ("arrived", "01")]
        assert _staged(h41) == []
    finally:
        for runner in runners:
            runner.stop()
        for node in nodes:
            node.close()


def _take(axis: Axis, queue: str, count: int) -> list[IncomingMessage]:
    """Take ``count`` messages off H41's queue as H41's broker user, acked once returned."""
    connection = pika.BlockingConnection(pika.URLParameters(axis.url(H41)))
    taken: list[IncomingMessage] = []
    try:
        channel = connection.channel()
        while len(taken) < count:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            assert method is not None, "the queue ran dry"
            taken.append(IncomingMessage(
                body=body, message_id=properties.message_id, user_id=properties.user_id,
                type=properties.type, headers=dict(properties.headers or {}), redelivered=False,
                delivery_count=0, routing_key=method.routing_key))
    finally:
        connection.close()
    return taken


@pytest.mark.broker
def test_a_recipient_stopped_mid_transfer_resumes_without_the_sender_starting_over(
    axis: Axis,
) -> None:
    """H41 takes half the chunks, records them and stops; a new H41 process consumes the rest
    from the broker and completes: one package, one 01, and G22 published each chunk once."""
    g22 = Node.from_settings(_settings(axis, G22))
    sender = Runner(g22).start()
    nodes = [g22]
    try:
        result = g22.submit(_large_document())
        count = -(-len(g22.store.body(result.package_id)) // CHUNK)
        deadline = time.monotonic() + 60
        while {d.state for d in g22.store.deliveries(result.document_id)} != {"sent"}:
            assert time.monotonic() < deadline, "the chunks were not confirmed"
            time.sleep(0.05)
        first = Node.from_settings(_settings(axis, H41))
        half = _take(axis, first.topology.queue_for(H41), count // 2)
        assert first.handle_batch(half) == [Outcome.ACK] * len(half)
        first.close()  # stopped mid-transfer: half the chunks recorded, none answered
        h41 = Node.from_settings(_settings(axis, H41))
        nodes.append(h41)
        receiver = Runner(h41).start()
        try:
            while {d.state for d in g22.store.deliveries(result.document_id)} != {"arrived"}:
                assert time.monotonic() < deadline, "no 01 came back"
                time.sleep(0.05)
        finally:
            receiver.stop()
        [entry] = h41.store.inbox(kind="edoc")
        assert h41.store.body(entry.package_id) == g22.store.body(result.package_id)
        assert receiver.link.stats.delivered == count - len(half)
        assert sender.link.stats.published == count  # no chunk published twice
        assert _staged(h41) == []
    finally:
        sender.stop()
        for node in nodes:
            node.close()
