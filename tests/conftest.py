"""Shared fixtures. Each area keeps its fixtures in its own section below."""

from __future__ import annotations

import base64
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from edoc_axis.edxml.model import (
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    PromulgationInfo,
)
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.write import build

if TYPE_CHECKING:
    from audit_samples import Log

    from edoc_axis.audit.checkpoint import CertificateCheck
    from edoc_axis.node.node import Node

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The test corpora: tests/data/{valid,invalid,hostile}."""
    return DATA


# --- broker: one throwaway vhost per test session on the real RabbitMQ ------------------------


def _rabbitmqctl(*args: str) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([exe, "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def broker_vhost() -> Iterator[str]:
    """A fresh vhost on 127.0.0.1:5672 for this test session, deleted afterwards.

    Runs never see each other's messages: every name lives inside this vhost.
    """
    vhost = f"edoc-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield vhost
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def broker_url(broker_vhost: str) -> str:
    """AMQP URL of the session vhost as the admin (guest) user."""
    from urllib.parse import quote

    return f"amqp://guest:guest@127.0.0.1:5672/{quote(broker_vhost, safe='')}"


# --- packages (issue: edXML packages) ----------------------------------------------------------


def make_document(**changes: object) -> DocumentPackage:
    """A valid document package model (G22 to H41) with ``changes`` applied."""
    doc = DocumentPackage(
        sender=Organization("000.00.00.G22", "Văn phòng Chính phủ"),
        recipients=[Organization("000.00.00.H41", "UBND tỉnh Nghệ An")],
        code=Code("12", "VPCP-TTĐT"),
        promulgation=PromulgationInfo("Hà Nội", "2024/03/05"),
        document_type=DocumentType("1", "2", "Công văn"),
        subject="Về việc thử nghiệm",
        document_id="000.00.00.G22,2024/03/05,12/VPCP-TTĐT",
    )
    for key, value in changes.items():
        setattr(doc, key, value)
    return doc


def _corpus(kind: str) -> list[Path]:
    return sorted(p for p in (DATA / kind).iterdir() if p.suffix in (".edxml", ".xml"))


VALID_PACKAGES = _corpus("valid")
INVALID_PACKAGES = _corpus("invalid")
HOSTILE_PACKAGES = _corpus("hostile")


def expected_code(path: Path) -> str:
    """The code a corpus file must yield: its name up to ``--``."""
    return path.name.split("--", 1)[0]


@pytest.fixture
def sample_document() -> bytes:
    """A valid document package with every header element and one attachment."""
    return (DATA / "valid" / "doc-business-0-new.edxml").read_bytes()


@pytest.fixture
def sample_status() -> bytes:
    """A valid status package (03, from a recipient)."""
    return (DATA / "valid" / "status-03.edxml").read_bytes()


# --- trust (issue: PKI and signatures) ---------------------------------------------------------
# `pki`: one test root CA, a fresh (empty) CRL, and two agencies: 000.00.00.G22 with RSA-2048
# and 000.00.00.H41 with P-256; keys, certificates, CA and CRL also written as PEM files.
# `edxml_document`/`edxml_status` (build_edxml_document/build_edxml_status): hand-written
# minimal unsigned edXML packages.


@dataclass
class PkiAgency:
    """One agency's signing identity: key and certificate objects plus their PEM file paths."""

    organ_id: str
    key: Any
    cert: Any
    key_path: Path
    cert_path: Path


@dataclass
class Pki:
    """The session's test PKI (see the section comment)."""

    dir: Path
    ca_key: Any
    ca_cert: Any
    ca_path: Path
    crl_path: Path
    agencies: dict[str, PkiAgency]

    def trust_store(self, *, with_crl: bool = True) -> Any:
        """A fresh trust.chain.TrustStore anchored at this CA (with its empty CRL)."""
        from edoc_axis.ops import pki
        from edoc_axis.trust.chain import TrustStore

        crls = [pki.make_crl(self.ca_key, self.ca_cert)] if with_crl else []
        return TrustStore(anchors=[self.ca_cert], crls=crls)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A root CA, its CRL and agencies 000.00.00.G22 (RSA-2048) and 000.00.00.H41 (P-256)."""
    from edoc_axis.ops import pki as dev_pki

    base = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = dev_pki.init_ca("edoc_axis Test Root CA")
    (base / "ca.pem").write_bytes(dev_pki.cert_to_pem(ca_cert))
    (base / "crl.pem").write_bytes(dev_pki.crl_to_pem(dev_pki.make_crl(ca_key, ca_cert)))
    agencies = {}
    for organ_id, name, key_type in (
        ("000.00.00.G22", "Văn phòng Chính phủ", "rsa2048"),
        ("000.00.00.H41", "UBND tỉnh Nghệ An", "p256"),
    ):
        key, cert = dev_pki.issue_agency_certificate(
            ca_key, ca_cert, organ_id, name, key_type=key_type
        )
        key_path, cert_path = base / f"{organ_id}.key", base / f"{organ_id}.pem"
        key_path.write_bytes(dev_pki.key_to_pem(key))
        key_path.chmod(0o600)
        cert_path.write_bytes(dev_pki.cert_to_pem(cert))
        agencies[organ_id] = PkiAgency(organ_id, key, cert, key_path, cert_path)
    return Pki(base, ca_key, ca_cert, base / "ca.pem", base / "crl.pem", agencies)


def _edxml_organization(tag: str, organ_id: str) -> str:
    return (
        f"<{tag}><OrganId>{organ_id}</OrganId><OrganName>Cơ quan {organ_id}</OrganName>"
        f"<OrganAdd>Hà Nội</OrganAdd><Email>vanthu@example.gov.vn</Email></{tag}>"
    )


def build_edxml_document(
    sender: str = "000.00.00.G22", recipient: str = "000.00.00.H41", attachment: bytes = b""
) -> bytes:
    """A minimal unsigned edXML document package (hand-written, independent of edxml.write)."""
    encoded = base64.b64encode(attachment).decode()
    body = attachment_part = ""
    if attachment:
        body = (
            '\n    <edXMLBody><edXMLManifest version="1.0"><Reference>'
            "<ContentId>cid:1</ContentId><ContentType>application/zip</ContentType>"
            "<AttachmentName>vanban.zip</AttachmentName></Reference></edXMLManifest></edXMLBody>"
        )
        attachment_part = (
            "\n  <AttachmentEncoded><Attachment><ContentId>cid:1</ContentId>"
            "<AttachmentName>vanban.zip</AttachmentName><ContentType>application/zip"
            f"</ContentType><ContentTransferEncoded>{encoded}</ContentTransferEncoded>"
            "</Attachment></AttachmentEncoded>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">\n'
        "  <edXMLEnvelope>\n    <edXMLHeader>\n      <MessageHeader>"
        f"{_edxml_organization('From', sender)}{_edxml_organization('To', recipient)}"
        f"<DocumentId>{sender},2024/05/06,123/VPCP-TTĐT</DocumentId>"
        "<Code><CodeNumber>123</CodeNumber><CodeNotation>VPCP-TTĐT</CodeNotation></Code>"
        "<PromulgationInfo><Place>Hà Nội</Place><PromulgationDate>2024/05/06"
        "</PromulgationDate></PromulgationInfo><DocumentType><Type>1</Type><TypeDetail>2"
        "</TypeDetail><TypeName>Công văn</TypeName></DocumentType>"
        "<Subject>Về việc thử nghiệm trục liên thông</Subject></MessageHeader>\n"
        f"      <TraceHeaderList><TraceHeader><OrganId>{sender}</OrganId><Timestamp>"
        "2024/05/06 08:00:00</Timestamp></TraceHeader></TraceHeaderList>\n"
        f"    </edXMLHeader>{body}\n  </edXMLEnvelope>{attachment_part}\n</edXML>\n"
    ).encode()


def build_edxml_status(
    sender: str = "000.00.00.H41", to: str = "000.00.00.G22", code: str = "01"
) -> bytes:
    """A minimal unsigned edXML status package."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope><edXMLHeader>'
        f"<MessageHeader>{_edxml_organization('From', sender)}<ResponseFor><OrganId>{to}"
        "</OrganId><Code>123/VPCP-TTĐT</Code><PromulgationDate>2024/05/06</PromulgationDate>"
        f"<DocumentId>{to},2024/05/06,123/VPCP-TTĐT</DocumentId></ResponseFor>"
        f"<StatusCode>{code}</StatusCode><Timestamp>2024/05/06 09:00:00</Timestamp>"
        "</MessageHeader></edXMLHeader></edXMLEnvelope></edXML>"
    ).encode()


@pytest.fixture(scope="session")
def edxml_document() -> Callable[..., bytes]:
    """build_edxml_document(sender, recipient, attachment=b"") as a fixture."""
    return build_edxml_document


@pytest.fixture(scope="session")
def edxml_status() -> Callable[..., bytes]:
    """build_edxml_status(sender, to, code="01") as a fixture."""
    return build_edxml_status


# --- node (issue: routing) ---------------------------------------------------------------------

# --- node: journeys (owner: node helper; transport fixtures above) -------------------------------
# `axis_broker` (session): a vhost with three agencies (000.00.00.G22, 000.00.00.H41 from `pki`,
# and 000.00.00.H42 issued here), each with a real broker user and queues provisioned through
# topology.provision. `axis` (per test): queues purged, a directory file in tmp_path, and
# `axis.config(organ_id)` / `axis.settings(organ_id)` writing a node config there.


@dataclass
class AxisAgency:
    """One agency on the test axis: signing files, certificate fingerprint, broker account."""

    organ_id: str
    key_path: Path
    cert_path: Path
    fingerprint: str
    account: Any


@dataclass
class Axis:
    """A provisioned test axis in its own vhost (see the section comment)."""

    dir: Path
    vhost: str
    admin_url: str
    pki: Pki
    agencies: dict[str, AxisAgency]
    directory_path: Path

    def url(self, organ_id: str) -> str:
        """The AMQP URL of an agency's node (its own broker user)."""
        from urllib.parse import quote

        account = self.agencies[organ_id].account
        return (f"amqp://{quote(account.user, safe='')}:{quote(account.password, safe='')}"
                f"@127.0.0.1:5672/{quote(self.vhost, safe='')}")

    def config(self, organ_id: str, name: str | None = None, **signature: bool) -> Path:
        """Write a node config (own data dir under the axis folder) and return its path."""
        from edoc_axis.config.render import write_config
        from edoc_axis.config.settings import BrokerSettings, KeySettings, Settings, TrustSettings
        from edoc_axis.trust.policy import SignaturePolicy

        agency = self.agencies[organ_id]
        base = self.dir / (name or organ_id)
        settings = Settings(
            organ_id=organ_id, data_dir=base / "data", directory_path=self.directory_path,
            broker=BrokerSettings(url=self.url(organ_id)),
            keys=KeySettings(key=agency.key_path, cert=agency.cert_path),
            trust=TrustSettings(anchors=(self.pki.ca_path,), crls=(self.pki.crl_path,)),
            signature=SignaturePolicy(**signature),
        )
        path = base / "node.toml"
        write_config(path, settings, force=True)
        return path

    def settings(self, organ_id: str, name: str | None = None, **signature: bool) -> Any:
        """Settings of a fresh node config for ``organ_id`` (no environment overrides)."""
        from edoc_axis.config.load import load_settings

        return load_settings(self.config(organ_id, name, **signature), env={})


AXIS_AGENCIES = ("000.00.00.G22", "000.00.00.H41", "000.00.00.H42")


@pytest.fixture(scope="session")
def axis_pki(pki: Pki) -> Pki:
    """The session PKI plus a third agency, 000.00.00.H42 (RSA-2048)."""
    from edoc_axis.ops import pki as dev_pki

    if "000.00.00.H42" not in pki.agencies:
        key, cert = dev_pki.issue_agency_certificate(
            pki.ca_key, pki.ca_cert, "000.00.00.H42", "UBND tỉnh Hà Tĩnh", key_type="rsa2048")
        key_path, cert_path = pki.dir / "000.00.00.H42.key", pki.dir / "000.00.00.H42.pem"
        key_path.write_bytes(dev_pki.key_to_pem(key))
        key_path.chmod(0o600)
        cert_path.write_bytes(dev_pki.cert_to_pem(cert))
        pki.agencies["000.00.00.H42"] = PkiAgency("000.00.00.H42", key, cert, key_path, cert_path)
    return pki


def _provision_axis(admin_url: str, vhost: str, accounts: list[Any]) -> None:
    """topology.provision; if rabbitmqctl cannot import the definitions file (it may run as
    another OS user than the tests), the same users, permissions and queues step by step."""
    from edoc_axis.errors import BrokerUnavailable
    from edoc_axis.transport import provision, topology

    layout = topology.Topology()
    try:
        provision.provision(admin_url, accounts, layout, vhost)
        return
    except BrokerUnavailable:
        pass
    provision.declare_topology(admin_url, layout, [a.organ_id for a in accounts])
    for account in accounts:
        _rabbitmqctl("add_user", account.user, account.password)
        _rabbitmqctl("set_permissions", "-p", vhost, account.user, "^$",
                     topology.write_pattern(layout),
                     topology.read_pattern(layout, account.organ_id))


@dataclass
class AxisBroker:
    """The session's provisioned axis: vhost, accounts, identities and fingerprints."""

    vhost: str
    admin_url: str
    agencies: dict[str, AxisAgency]
    listed: list[Any]


@pytest.fixture(scope="session")
def axis_broker(axis_pki: Pki) -> Iterator[AxisBroker]:
    """Broker users and queues of the three test agencies in their own vhost (one per session:
    rabbitmqctl is slow); `axis` purges the queues before each test."""
    from urllib.parse import quote

    from edoc_axis import directory
    from edoc_axis.trust.certificate import fingerprint as cert_fingerprint

    vhost = f"edoc-node-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    admin_url = f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
    agencies: dict[str, AxisAgency] = {}
    listed = []
    for organ_id in AXIS_AGENCIES:
        identity = axis_pki.agencies[organ_id]
        account = topology_account(organ_id, vhost)
        fingerprint = cert_fingerprint(identity.cert)
        agencies[organ_id] = AxisAgency(organ_id, identity.key_path, identity.cert_path,
                                        fingerprint, account)
        listed.append(directory.Agency(
            organ_id=organ_id, code=organ_id.replace(".", ""), name=f"Cơ quan {organ_id}",
            parent=None, broker_user=account.user, fingerprints=(fingerprint,)))
    try:
        _provision_axis(admin_url, vhost, [a.account for a in agencies.values()])
        yield AxisBroker(vhost, admin_url, agencies, listed)
    finally:
        _rabbitmqctl("delete_vhost", vhost)
        for agency in agencies.values():
            subprocess.run([shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl", "-q",
                            "delete_user", agency.account.user], capture_output=True,
                           timeout=60, check=False)


def topology_account(organ_id: str, vhost: str) -> Any:
    """A fresh broker account for an agency in a test vhost."""
    from edoc_axis.transport import provision

    return provision.BrokerAccount(organ_id, f"node-{organ_id}-{vhost}", uuid.uuid4().hex)


def purge_axis_queues(admin_url: str, organ_ids: tuple[str, ...]) -> None:
    """Empty every agency's inbound and dead-letter queue (test isolation)."""
    import pika

    from edoc_axis.transport import topology

    layout = topology.Topology()
    connection = pika.BlockingConnection(pika.URLParameters(admin_url))
    try:
        channel = connection.channel()
        for organ_id in organ_ids:
            channel.queue_purge(layout.queue_for(organ_id))
            channel.queue_purge(layout.dead_queue_for(organ_id))
    finally:
        connection.close()


@pytest.fixture
def axis(axis_broker: AxisBroker, axis_pki: Pki, tmp_path: Path) -> Axis:
    """The test axis with empty queues, and a directory file and node folders in tmp_path."""
    from edoc_axis import directory

    purge_axis_queues(axis_broker.admin_url, AXIS_AGENCIES)
    directory_path = tmp_path / "directory.toml"
    directory_path.write_text(
        "".join(directory.render_agency(a) + "\n" for a in axis_broker.listed), encoding="utf-8")
    return Axis(tmp_path, axis_broker.vhost, axis_broker.admin_url, axis_pki,
                dict(axis_broker.agencies), directory_path)



@pytest.fixture
def two_nodes(axis: Axis) -> Iterator[tuple[Node, Node]]:
    """G22 and H41 running in-process on the test axis; stopped afterwards."""
    from edoc_axis.node.node import Node
    from edoc_axis.node.runner import Runner

    nodes = [Node.from_settings(axis.settings(o)) for o in ("000.00.00.G22", "000.00.00.H41")]
    runners = [Runner(n).start() for n in nodes]
    try:
        yield nodes[0], nodes[1]
    finally:
        for runner in runners:
            runner.stop()
        for node in nodes:
            node.close()

# --- audit: a recorded exchange (owner: audit integration helper) --------------------------------
# `audited_exchange` (per test): G22 sends one document to H41 and H42 over the test axis, both
# receipts (01) come back, H41 sends status 03 and G22 asks back (13); nodes stopped, G22's chain
# sealed. Checkpoints every 3 entries, so the chain has several. The stores are left on disk for
# the tests to tamper with.


@dataclass
class AuditedExchange:
    """The settings of each node after the exchange, and the document that travelled."""

    axis: Axis
    settings: dict[str, Any]
    document_id: str

    def config(self, organ_id: str) -> Path:
        """The node config file of ``organ_id`` (same store as ``settings[organ_id]``)."""
        return self.axis.dir / organ_id / "node.toml"


@pytest.fixture
def audited_exchange(axis: Axis) -> Iterator[AuditedExchange]:
    """See the section comment."""
    import dataclasses
    import time

    from edoc_axis.config.settings import AuditSettings
    from edoc_axis.node.node import Node
    from edoc_axis.node.runner import Runner

    g22, h41, h42 = AXIS_AGENCIES
    settings = {o: dataclasses.replace(axis.settings(o), audit=AuditSettings(3, 300))
                for o in AXIS_AGENCIES}
    nodes = {o: Node.from_settings(s) for o, s in settings.items()}
    runners = [Runner(n).start() for n in nodes.values()]

    def wait(condition: Callable[[], Any], what: str) -> None:
        deadline = time.monotonic() + 20
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def states() -> dict[str, str]:
        return {d.recipient: d.state for d in nodes[g22].store.deliveries(document_id)}

    try:
        pkg = parse(build_edxml_document(g22, h41))
        assert isinstance(pkg, DocumentPackage)
        pkg.recipients = [Organization(r, f"Cơ quan {r}") for r in (h41, h42)]
        result = nodes[g22].submit(build(pkg))
        document_id = result.document_id
        wait(lambda: states() == {h41: "arrived", h42: "arrived"}, "both receipts")
        nodes[h41].set_status(document_id, "03")
        wait(lambda: states()[h41] == "accepted", "status 03")
        nodes[g22].set_status(document_id, "13", to=h42)
        wait(lambda: nodes[h42].store.inbox(kind="status"), "status 13 at H42")
        wait(lambda: nodes[g22].store.outbox_counts()["pending"] == 0, "G22 outbox drained")
    finally:
        for runner in runners:
            runner.stop()
    nodes[g22].audit.seal_now()
    for node in nodes.values():
        node.close()
    yield AuditedExchange(axis, settings, document_id)



# --- audit: a sample log in process (G22's identity, its checkpoint check, a sealed log) ---------


@pytest.fixture(scope="module")
def g22(pki: Pki) -> Any:
    """G22's signing identity (RSA-2048) from the session PKI."""
    from audit_samples import G22

    return pki.agencies[G22]


@pytest.fixture(scope="module")
def check(pki: Pki) -> CertificateCheck:
    """Checkpoint certificates must chain to the test CA and bind G22."""
    from audit_samples import G22

    from edoc_axis.audit.checkpoint import trusted_anchors

    return trusted_anchors(pki.trust_store(), G22)


@pytest.fixture(scope="module")
def log(g22: Any) -> Log:
    """A 30-event log sealed every 5 entries."""
    from audit_samples import make_log

    return make_log(g22.key, g22.cert)

# --- reception profiles (issue 9): the deviations the deployed axis really delivers -------------

DEVIANT_TRACE_ORGAN_ID = "28.22.H17"


def with_deviations(document: bytes) -> bytes:
    """``document`` (as build_edxml_document writes it) with three harmless deviations: an empty
    ``<edXML:ResponseFor/>``, a second TraceHeader with OrganId ``28.22.H17``, and white space
    around the Subject."""
    ns = 'xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016"'
    hop = (f"<TraceHeader><OrganId>{DEVIANT_TRACE_ORGAN_ID}</OrganId>"
           "<Timestamp>2024/05/06 08:05:00</Timestamp></TraceHeader>")
    changed = (document
               .replace(b"</MessageHeader>", f"<edXML:ResponseFor {ns}/></MessageHeader>".encode())
               .replace(b"</TraceHeaderList>", hop.encode() + b"</TraceHeaderList>")
               .replace(b"<Subject>", b"<Subject>  ", 1))
    assert changed.count(b"ResponseFor") == 1 and changed.count(b"<TraceHeader>") == 2
    return changed


# --- sandbox (issue 9: the DMS conformance kit) --------------------------------------------------
# `sandbox` (session): `edoc-axis sandbox` running as a subprocess in a vhost of its own, on a free
# port, with its state folder under tmp; `.info` is what it wrote to sandbox.json. Stopped with
# SIGTERM at the end of the session. `start_sandbox`/`stop_sandbox` start and stop more of them.

EDOC_AXIS_EXE = [sys.executable, "-m", "edoc_axis"]


@dataclass
class RunningSandbox:
    """A sandbox subprocess, its state folder, its stdout/stderr files and its sandbox.json."""

    process: subprocess.Popen[bytes]
    dir: Path
    vhost: str
    stdout: Path
    stderr: Path
    info: dict[str, Any]

    def output(self) -> str:
        """What it printed on stdout so far."""
        return self.stdout.read_text(encoding="utf-8")


def start_sandbox(state_dir: Path, vhost: str, timeout: float = 60.0) -> RunningSandbox:
    """Start `edoc-axis sandbox` and wait until it printed its details (or fail with its log)."""
    import json
    import time

    state_dir.mkdir(parents=True, exist_ok=True)
    stdout, stderr = state_dir.parent / f"{vhost}.out", state_dir.parent / f"{vhost}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [*EDOC_AXIS_EXE, "--log-json", "sandbox", "--dir", str(state_dir), "--vhost", vhost,
             "--port", "0"], stdout=out, stderr=err)
    info_path = state_dir / "sandbox.json"
    deadline = time.monotonic() + timeout
    while not (info_path.exists() and "Stop with" in stdout.read_text(encoding="utf-8")):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"sandbox did not start: {stderr.read_text(encoding='utf-8')}")
        time.sleep(0.1)
    info = json.loads(info_path.read_text(encoding="utf-8"))
    return RunningSandbox(process, state_dir, vhost, stdout, stderr, info)


def stop_sandbox(sandbox: RunningSandbox, signum: int = signal.SIGTERM) -> int:
    """Signal the sandbox and wait for it to stop; its exit code."""
    sandbox.process.send_signal(signum)
    try:
        return sandbox.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        sandbox.process.kill()
        return sandbox.process.wait()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """See the section comment."""
    vhost = f"edoc-sandbox-{uuid.uuid4().hex[:10]}"
    running = start_sandbox(tmp_path_factory.mktemp("sandbox") / "state", vhost)
    try:
        yield running
    finally:
        stop_sandbox(running)
