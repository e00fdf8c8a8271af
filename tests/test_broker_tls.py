"""The broker over TLS with certificate login (issue 11, build 1-2), on a real amqps listener:
an extra RabbitMQ node started for this module (tests/broker_node.py), never the main one."""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pika.exceptions
import pytest
from broker_node import TlsBroker, start_tls_broker, stop_tls_broker
from click.testing import CliRunner
from conftest import AXIS_AGENCIES, Pki, build_edxml_document

from edoc_axis import directory
from edoc_axis.cli import main
from edoc_axis.config.load import load_settings
from edoc_axis.config.render import write_config
from edoc_axis.config.settings import BrokerSettings, KeySettings, Settings, TrustSettings
from edoc_axis.edxml.model import Code, DocumentPackage, Organization
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.write import build
from edoc_axis.errors import ConfigError
from edoc_axis.node.node import Node
from edoc_axis.node.runner import Runner
from edoc_axis.node.wiring import broker_endpoint
from edoc_axis.ops import pki as dev_pki
from edoc_axis.ops.doctor import diagnose
from edoc_axis.transport.connection import Endpoint, blocking_channel
from edoc_axis.transport.provision import BrokerAccount, provision
from edoc_axis.transport.topology import Topology, queue_token
from edoc_axis.trust.certificate import fingerprint, organ_id_uri

pytestmark = pytest.mark.broker

G22, H41, H42 = AXIS_AGENCIES


@pytest.fixture(scope="module")
def tls_broker(axis_pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """The extra node: amqps verifying client certificates against the test CA, EXTERNAL login
    as the first SAN URI; stopped at the end of the module."""
    broker = start_tls_broker(tmp_path_factory.mktemp("tls-broker"), axis_pki.ca_path,
                              axis_pki.ca_key, axis_pki.ca_cert)
    try:
        yield broker
    finally:
        stop_tls_broker(broker)


@dataclass
class TlsAxis:
    """The three test agencies provisioned for certificate login in a vhost of the TLS node."""

    broker: TlsBroker
    vhost: str
    tokens: dict[str, str]
    dir: Path
    pki: Pki
    directory_path: Path

    def settings(self, organ_id: str, **broker: Any) -> Settings:
        """A node config (written and loaded) logging in as the agency's certificate."""
        identity = self.pki.agencies[organ_id]
        base = self.dir / organ_id
        options: dict[str, Any] = {
            "url": self.broker.amqps_url(self.vhost, organ_id_uri(organ_id)),
            "login": "certificate", "queue_token": self.tokens[organ_id]} | broker
        settings = Settings(
            organ_id=organ_id, data_dir=base / "data", directory_path=self.directory_path,
            broker=BrokerSettings(**options),
            keys=KeySettings(key=identity.key_path, cert=identity.cert_path),
            trust=TrustSettings(anchors=(self.pki.ca_path,), crls=(self.pki.crl_path,)))
        write_config(base / "node.toml", settings, force=True)
        return load_settings(base / "node.toml", env={})


@pytest.fixture(scope="module")
def tls_axis(tls_broker: TlsBroker, axis_pki: Pki,
             tmp_path_factory: pytest.TempPathFactory) -> TlsAxis:
    """Users named as the agencies' certificates log in, no passwords, secret queue names."""
    vhost = f"edoc-tls-{uuid.uuid4().hex[:8]}"
    tls_broker.ctl("add_vhost", vhost)
    tls_broker.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    key = uuid.uuid4().bytes
    tokens = {o: queue_token(key, o) for o in AXIS_AGENCIES}
    accounts = [BrokerAccount(o, organ_id_uri(o), None, tokens[o]) for o in AXIS_AGENCIES]
    provision(tls_broker.admin_url(vhost), accounts, Topology(), vhost, node=tls_broker.node)
    base = tmp_path_factory.mktemp("tls-axis")
    listed = [directory.Agency(o, o.replace(".", ""), f"Cơ quan {o}", None, organ_id_uri(o),
                               (fingerprint(axis_pki.agencies[o].cert),)) for o in AXIS_AGENCIES]
    directory_path = base / "directory.toml"
    directory_path.write_text("".join(directory.render_agency(a) + "\n" for a in listed),
                              encoding="utf-8")
    return TlsAxis(tls_broker, vhost, tokens, base, axis_pki, directory_path)


def _document(sender: str, recipients: tuple[str, ...], number: int) -> bytes:
    pkg = parse(build_edxml_document(sender, recipients[0]))
    assert isinstance(pkg, DocumentPackage)
    pkg.recipients = [Organization(r, f"Cơ quan {r}") for r in recipients]
    pkg.code = Code(str(number), "VPCP-TTĐT")
    pkg.document_id = f"{sender},{pkg.promulgation.date},{number}/VPCP-TTĐT"
    return build(pkg)


def _wait(condition: Callable[[], Any], what: str, timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_three_agencies_exchange_over_tls_through_a_broker_restart(tls_axis: TlsAxis) -> None:
    """Each agency sends to the other two over amqps, logged in as its certificate; the broker
    node restarts between two rounds (the second submitted while it is down). Every inbox holds
    exactly its documents once and every delivery has its 01."""
    nodes = {o: Node.from_settings(tls_axis.settings(o)) for o in AXIS_AGENCIES}
    runners = [Runner(node).start() for node in nodes.values()]
    sent: dict[str, list[str]] = {o: [] for o in AXIS_AGENCIES}

    def send_round(number: int) -> None:
        for organ_id, node in nodes.items():
            others = tuple(o for o in AXIS_AGENCIES if o != organ_id)
            sent[organ_id].append(node.submit(_document(organ_id, others, number)).document_id)

    def all_arrived() -> bool:
        return all(d.state == "arrived" for o, node in nodes.items() for doc in sent[o]
                   for d in node.store.deliveries(doc))

    try:
        send_round(1)
        _wait(all_arrived, "round 1 delivered and answered")
        connections = tls_axis.broker.ctl("list_connections", "user", "ssl", "auth_mechanism")
        for organ_id in AXIS_AGENCIES:
            assert f"{organ_id_uri(organ_id)}\ttrue\tEXTERNAL" in connections
        tls_axis.broker.ctl("stop_app")
        send_round(2)
        tls_axis.broker.ctl("start_app")
        _wait(all_arrived, "round 2 delivered and answered after the restart")
    finally:
        for runner in runners:
            runner.stop()
    try:
        for organ_id, node in nodes.items():
            expected = sorted(doc for o in AXIS_AGENCIES if o != organ_id for doc in sent[o])
            assert sorted(e.document_id for e in node.store.inbox(kind="edoc")) == expected
            deliveries = [d for doc in sent[organ_id] for d in node.store.deliveries(doc)]
            assert len(deliveries) == 4 and {d.state for d in deliveries} == {"arrived"}
            receipts = [e for e in node.store.inbox(kind="status") if e.status_code == "01"]
            assert sorted((e.document_id, e.sender) for e in receipts) == sorted(
                (d.document_id, d.recipient) for d in deliveries)
            assert node.store.count("rejections") == 0
    finally:
        for node in nodes.values():
            node.close()


def _endpoint(tls_axis: TlsAxis, organ_id: str, **changes: Any) -> Endpoint:
    base = broker_endpoint(tls_axis.settings(organ_id))
    return Endpoint(**{"url": base.url, "ca_files": base.ca_files, "cert_file": base.cert_file,
                       "key_file": base.key_file, "external": True} | changes)


def test_the_certificate_is_the_login_and_nothing_else_is(tls_axis: TlsAxis,
                                                          tmp_path: Path) -> None:
    """Only a certificate from the axis CA logs in, as its own agency only; a broker whose
    certificate does not chain to the configured CAs is refused; no password exists."""
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    with blocking_channel(_endpoint(tls_axis, G22)) as channel:
        channel.confirm_delivery()
        as_h41 = pika.BasicProperties(user_id=organ_id_uri(H41), delivery_mode=2)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as spoof:
            channel.basic_publish("edoc.axis", H42, b"<edXML/>", as_h41, mandatory=True)
        assert spoof.value.reply_code == 406  # user_id must be the certificate's user

    other_key, other_ca = dev_pki.init_ca("Not the axis CA")
    fake_key, fake_cert = dev_pki.issue_agency_certificate(other_key, other_ca, G22, "Giả mạo")
    (tmp_path / "fake.key").write_bytes(dev_pki.key_to_pem(fake_key))
    (tmp_path / "fake.pem").write_bytes(dev_pki.cert_to_pem(fake_cert))
    (tmp_path / "other-ca.pem").write_bytes(dev_pki.cert_to_pem(other_ca))
    refusals = {
        "BROKER_TLS_REFUSED": _endpoint(tls_axis, G22, cert_file=tmp_path / "fake.pem",
                                        key_file=tmp_path / "fake.key"),
        "BROKER_TLS_UNTRUSTED": _endpoint(tls_axis, G22, ca_files=(tmp_path / "other-ca.pem",)),
        "BROKER_AUTH_FAILED": Endpoint(
            f"amqps://{quote(organ_id_uri(G22), safe='')}:guess@localhost:"
            f"{tls_axis.broker.amqps_port}/{quote(tls_axis.vhost, safe='')}",
            ca_files=(tls_axis.pki.ca_path,), cert_file=tls_axis.pki.agencies[G22].cert_path,
            key_file=tls_axis.pki.agencies[G22].key_path),
    }
    for code, endpoint in refusals.items():
        with pytest.raises(ConfigError) as refused, blocking_channel(endpoint):
            pass
        assert refused.value.code == code


def test_doctor_checks_the_tls_login_and_warns_before_the_certificate_expires(
    tls_axis: TlsAxis, tmp_path: Path
) -> None:
    """doctor: broker TLS, the user the certificate logs in as, secret queue names, the broker
    reached; a certificate with 10 days left is a warning naming the date."""
    config = tls_axis.dir / G22 / "node.toml"
    tls_axis.settings(G22)
    checks = {c.name: c for c in diagnose(config, env={})}
    assert {n: checks[n].status for n in ("broker tls", "broker login", "queue names",
                                          "broker")} == {
        "broker tls": "ok", "broker login": "ok", "queue names": "ok", "broker": "ok"}
    assert f"logs in as {organ_id_uri(G22)}" in checks["broker login"].detail

    identity = tls_axis.pki.agencies[G22]
    _, short = dev_pki.issue_agency_certificate(tls_axis.pki.ca_key, tls_axis.pki.ca_cert,
                                                  G22, "Văn phòng Chính phủ", key=identity.key,
                                                  days=10)
    short_path = tmp_path / "short.pem"
    short_path.write_bytes(dev_pki.cert_to_pem(short))
    env = {"EDOC_AXIS_KEYS_CERT": str(short_path)}
    checks = {c.name: c for c in diagnose(config, env=env)}
    assert checks["broker login"].status == "warn"
    assert "expires in 9 days" in checks["broker login"].detail or (
        "expires in 10 days" in checks["broker login"].detail)
    assert checks["broker"].status == "ok"  # still logs in today

    checks = {c.name: c for c in diagnose(config, env={"EDOC_AXIS_BROKER_QUEUE_TOKEN": ""},
                                          check_broker=None)}
    assert checks["queue names"].status == "warn"


def test_init_writes_a_certificate_login_config_that_doctor_passes(
    tls_axis: TlsAxis, tmp_path: Path
) -> None:
    """`init --broker-login certificate` names the certificate's user in the URL, with no
    password; with the agency's files in place, doctor reaches the broker over TLS."""
    data = tmp_path / "h41"
    url = f"amqps://localhost:{tls_axis.broker.amqps_port}/{quote(tls_axis.vhost, safe='')}"
    result = CliRunner().invoke(main, [
        "init", "--organ-id", H41, "--data-dir", str(data), "--broker-url", url,
        "--broker-login", "certificate", "--broker-queue-token", tls_axis.tokens[H41],
        "--directory", str(tls_axis.directory_path)])
    assert result.exit_code == 0, result.output
    settings = load_settings(data / "node.toml", env={})
    assert settings.broker.user == organ_id_uri(H41) and settings.broker.certificate_login
    assert ":" not in settings.broker.url.split("//", 1)[1].split("@", 1)[0].replace("%3A", "")
    identity = tls_axis.pki.agencies[H41]
    for folder in (settings.keys.key.parent, settings.trust.anchors[0].parent):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(identity.key_path, settings.keys.key)
    shutil.copy(identity.cert_path, settings.keys.cert)
    shutil.copy(tls_axis.pki.ca_path, settings.trust.anchors[0])
    shutil.copy(tls_axis.pki.crl_path, settings.trust.crls[0])
    checks = {c.name: c.status for c in diagnose(data / "node.toml", env={})}
    assert checks["broker login"] == "ok" and checks["broker"] == "ok", checks
    refused = CliRunner().invoke(main, [
        "init", "--organ-id", H41, "--data-dir", str(tmp_path / "x"), "--broker-login",
        "certificate", "--broker-url", "amqp://u:p@localhost/%2F"])
    assert refused.exit_code == 78 and "CONFIG_BROKER_LOGIN" in refused.output
