"""One parse, one model and one SHA-256 per package body per hop (submit, the gateway's
sendEdoc, receive, receipts), none for a package the node has just built (issue 10 item 3).

Two in-process nodes (000.00.00.G22 sends, 000.00.00.H41 receives), no broker: what one node's
relay hands the Link is given to the other's ``handle_batch`` as the Link would deliver it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Pki, make_document

from edoc_axis import directory
from edoc_axis.config.settings import BrokerSettings, KeySettings, Settings, TrustSettings
from edoc_axis.edxml.model import Code, DocumentPackage, Organization
from edoc_axis.edxml.parser import PARSE_STATS
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.status import new_status
from edoc_axis.edxml.write import build
from edoc_axis.gateway.backend import NodeBackend
from edoc_axis.node.node import Node
from edoc_axis.transport.message import Confirmation, IncomingMessage
from edoc_axis.trust.certificate import fingerprint
from edoc_axis.trust.signature import sign

G22, H41 = "000.00.00.G22", "000.00.00.H41"


@dataclass
class Work:
    """What one hop did: parses, model builds, and the package bodies it hashed (with repeats)."""

    parses: int
    models: int
    hashed: Counter[bytes]

    @property
    def bodies(self) -> int:
        """How many distinct package bodies were hashed."""
        return len(self.hashed)

    @property
    def most_hashes_of_one_body(self) -> int:
        """The most times one body was hashed."""
        return max(self.hashed.values(), default=0)


class Meter:
    """Counts parses and model builds (PARSE_STATS) and hashlib.sha256 over package bytes."""

    def __init__(self) -> None:
        self.real = hashlib.sha256
        self.hashed: Counter[bytes] = Counter()

    def sha256(self, data: Any = b"", **kwargs: Any) -> Any:
        raw = bytes(data)
        if b"<edXML" in raw[:400]:
            self.hashed[raw] += 1
        return self.real(data, **kwargs)

    def measure(self, action: Callable[[], Any]) -> Work:
        self.hashed.clear()
        parses, models = PARSE_STATS.snapshot()
        action()
        return Work(PARSE_STATS.parses - parses, PARSE_STATS.model_builds - models,
                    Counter(self.hashed))


@pytest.fixture
def meter(monkeypatch: pytest.MonkeyPatch) -> Meter:
    """hashlib.sha256 counted for the test."""
    meter = Meter()
    monkeypatch.setattr(hashlib, "sha256", meter.sha256)
    return meter


@dataclass
class Lab:
    """Two nodes on the session PKI, each with its own store in tmp_path."""

    nodes: dict[str, Node]
    pki: Pki

    def signed(self, number: int) -> bytes:
        """A document G22 -> H41 numbered ``number``, signed by G22."""
        return sign(self.unsigned(number), self.pki.agencies[G22].key, self.pki.agencies[G22].cert)

    @staticmethod
    def unsigned(number: int) -> bytes:
        """A document G22 -> H41 numbered ``number``, unsigned."""
        return build(make_document(code=Code(str(number), "VPCP-TTĐT"),
                                   document_id=f"{G22},2024/03/05,{number}/VPCP-TTĐT"))

    def relay(self, source: str) -> list[IncomingMessage]:
        """What ``source``'s relay publishes now, delivered as the broker would (confirmed)."""
        node = self.nodes[source]
        out = node.fetch_outgoing(100)
        node.on_confirmed([Confirmation(m.token, True) for m in out])
        return [IncomingMessage(body=m.body, message_id=m.message_id, user_id=node.broker_user,
                                type=m.type, headers=dict(m.headers), redelivered=False,
                                delivery_count=1, routing_key=m.routing_key) for m in out]


@pytest.fixture
def lab(pki: Pki, tmp_path: Path) -> Iterator[Lab]:
    """G22 and H41 as in-process nodes (no broker is reached)."""
    agencies = [directory.Agency(organ_id, organ_id.replace(".", ""), organ_id, None,
                                 f"user-{organ_id}", (fingerprint(pki.agencies[organ_id].cert),))
                for organ_id in (G22, H41)]
    (tmp_path / "directory.toml").write_text(
        "".join(directory.render_agency(a) + "\n" for a in agencies), encoding="utf-8")
    nodes = {}
    for organ_id in (G22, H41):
        identity = pki.agencies[organ_id]
        nodes[organ_id] = Node.from_settings(Settings(
            organ_id=organ_id, data_dir=tmp_path / organ_id,
            directory_path=tmp_path / "directory.toml",
            broker=BrokerSettings(url=f"amqp://user-{organ_id}:x@127.0.0.1:5672/unused"),
            keys=KeySettings(identity.key_path, identity.cert_path),
            trust=TrustSettings((pki.ca_path,), (pki.crl_path,))))
    yield Lab(nodes, pki)
    for node in nodes.values():
        node.close()


def test_submit_signed_parses_models_and_hashes_once(lab: Lab, meter: Meter) -> None:
    """A signed submission: one parse, one model (from the signed content), one hash."""
    data = lab.signed(1)
    work = meter.measure(lambda: lab.nodes[G22].submit(data))
    assert (work.parses, work.models) == (1, 1)
    assert work.hashed == Counter({data: 1})


def test_submit_unsigned_signs_the_tree_it_read(lab: Lab, meter: Meter) -> None:
    """An unsigned submission is signed in the tree read once: one parse, one model, and one
    hash per body (the submitted bytes, the signed bytes)."""
    data = lab.unsigned(2)
    work = meter.measure(lambda: lab.nodes[G22].submit(data))
    assert (work.parses, work.models) == (1, 1)
    assert work.bodies == 2 and work.most_hashes_of_one_body == 1
    stored = lab.nodes[G22].store.packages(direction="out", kind="edoc")[-1]
    assert parse(lab.nodes[G22].store.body(stored.package_id)).signed


def test_gateway_send_edoc_reads_once_for_the_gateway_and_the_node(lab: Lab,
                                                                    meter: Meter) -> None:
    """sendEdoc: the backend reads the package once and hands that value to Node.submit."""
    backend = NodeBackend(lab.nodes[G22])
    try:
        data = lab.signed(3)
        work = meter.measure(lambda: backend.submit(data, "edoc", G22, [H41]))
        assert (work.parses, work.models) == (1, 1)
        assert work.hashed == Counter({data: 1})
        again = meter.measure(lambda: backend.submit(data, "edoc", G22, None))
        assert (again.parses, again.models, again.bodies) == (1, 0, 1)  # answered from the store
    finally:
        backend.close()


def test_receive_and_its_receipt_parse_once(lab: Lab, meter: Meter) -> None:
    """Receiving a document: one parse, one model; its 01 is built and signed as a tree (no
    parse); each body (the document, the 01) hashed once. At the sender, the 01: once each."""
    lab.nodes[G22].submit(lab.signed(4))
    [message] = lab.relay(G22)
    work = meter.measure(lambda: lab.nodes[H41].handle_batch([message]))
    assert (work.parses, work.models) == (1, 1)
    assert work.bodies == 2 and work.most_hashes_of_one_body == 1
    assert work.hashed[message.body] == 1
    [status] = lab.relay(H41)
    assert work.hashed[status.body] == 1
    back = meter.measure(lambda: lab.nodes[G22].handle_batch([status]))
    assert (back.parses, back.models) == (1, 1)
    assert back.hashed == Counter({status.body: 1})
    assert lab.nodes[G22].store.deliveries()[-1].state == "arrived"


def test_a_receipt_the_node_builds_is_never_parsed(lab: Lab, meter: Meter) -> None:
    """The 01 and 02 the node signs: built as a tree and signed, no parse, no model."""
    document = parse(lab.signed(5))
    assert isinstance(document, DocumentPackage)
    receipts = lab.nodes[H41].receipts
    work = meter.measure(lambda: receipts.arrived(document))
    assert (work.parses, work.models, work.bodies) == (0, 0, 0)


def test_set_status_parses_only_the_stored_document(lab: Lab, meter: Meter) -> None:
    """A clerk's status: the stored document read once (its promulgation date is in no
    column); the status itself built and signed without a parse; its body hashed once."""
    lab.nodes[G22].submit(lab.signed(6))
    lab.nodes[H41].handle_batch(lab.relay(G22))
    document_id = lab.nodes[H41].store.packages(direction="in", kind="edoc")[-1].document_id
    work = meter.measure(lambda: lab.nodes[H41].set_status(document_id, "03"))
    assert (work.parses, work.models) == (1, 1)
    assert work.bodies == 1 and work.most_hashes_of_one_body == 1


def test_a_status_signed_as_a_tree_is_the_status_signed_from_its_bytes(lab: Lab) -> None:
    """Signing the built tree gives byte for byte what signing build()'s bytes gave (RSA
    signatures are deterministic), so receipts read the same everywhere."""
    node = lab.nodes[G22]
    document = parse(lab.signed(7))
    assert isinstance(document, DocumentPackage)
    document.recipients = [Organization(H41, "UBND")]
    status = new_status(node.context.me_org, document, "13", to_organ_id=H41,
                        description="thu hồi văn bản")
    identity = node.identity
    assert node.context.sign(status) == sign(build(status), identity.key, identity.cert)
