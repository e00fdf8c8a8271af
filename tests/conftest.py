"""Shared fixtures. Each area keeps its fixtures in its own section below."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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
        """A fresh edoc_axis.trust.TrustStore anchored at this CA (with its empty CRL)."""
        from edoc_axis import trust

        crls = [trust.make_crl(self.ca_key, self.ca_cert)] if with_crl else []
        return trust.TrustStore(anchors=[self.ca_cert], crls=crls)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A root CA, its CRL and agencies 000.00.00.G22 (RSA-2048) and 000.00.00.H41 (P-256)."""
    from edoc_axis import trust

    base = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = trust.init_ca("edoc_axis Test Root CA")
    (base / "ca.pem").write_bytes(trust.cert_to_pem(ca_cert))
    (base / "crl.pem").write_bytes(trust.crl_to_pem(trust.make_crl(ca_key, ca_cert)))
    agencies = {}
    for organ_id, name, key_type in (
        ("000.00.00.G22", "Văn phòng Chính phủ", "rsa2048"),
        ("000.00.00.H41", "UBND tỉnh Nghệ An", "p256"),
    ):
        key, cert = trust.issue_agency_certificate(
            ca_key, ca_cert, organ_id, name, key_type=key_type
        )
        key_path, cert_path = base / f"{organ_id}.key", base / f"{organ_id}.pem"
        key_path.write_bytes(trust.key_to_pem(key))
        key_path.chmod(0o600)
        cert_path.write_bytes(trust.cert_to_pem(cert))
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
    """A minimal unsigned edXML document package (hand-written, independent of package.py)."""
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
