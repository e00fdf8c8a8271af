"""ops.doctor: each check's verdict on a dev node, broken one piece at a time."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from edoc_axis.config.load import load_settings
from edoc_axis.config.render import write_config
from edoc_axis.config.settings import BrokerSettings, KeySettings, Settings, TrustSettings
from edoc_axis.directory import Directory, save_agency
from edoc_axis.ops.devbench import AGENCY_CERT, AGENCY_KEY, CA_CERT, CA_CRL, dev_identity
from edoc_axis.ops.doctor import FAIL, OK, SKIP, WARN, Check, broker_check, diagnose
from edoc_axis.transport.provision import declare_topology
from edoc_axis.transport.topology import Topology
from edoc_axis.trust import certificate as trust

G22, H41 = "000.00.00.G22", "000.00.00.H41"
ORDER = ["config", "data dir", "store", "signing key", "certificate", "expiry", "directory",
         "fingerprint", "trust anchors", "crls", "chain", "broker"]


def _dev_node(root: Path, organ_id: str) -> Path:
    """A dev node of ``organ_id`` under ``root`` (shared CA and directory); its config file."""
    data = root / organ_id
    settings = Settings(
        organ_id=organ_id,
        data_dir=data,
        broker=BrokerSettings(url=f"amqp://{organ_id}:secret@127.0.0.1:5672/%2F"),
        keys=KeySettings(key=data / "keys" / AGENCY_KEY, cert=data / "keys" / AGENCY_CERT),
        trust=TrustSettings(anchors=(root / "ca" / CA_CERT,), crls=(root / "ca" / CA_CRL,)),
        directory_path=root / "directory.toml",
    )
    data.mkdir(parents=True)
    dev_identity(settings, root / "ca", key_type="p256")
    write_config(data / "node.toml", settings)
    return data / "node.toml"


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """The config of a fresh dev node G22, with H41 listed beside it from the same dev CA."""
    config = _dev_node(tmp_path, G22)
    _dev_node(tmp_path, H41)
    return config


def _check(checks: list[Check], name: str) -> Check:
    found = [c for c in checks if c.name == name]
    assert len(found) == 1, checks
    return found[0]


def _diagnose(config: Path, **env: str) -> list[Check]:
    return diagnose(config, env=env, check_broker=None)


def test_a_fresh_dev_node_passes_every_check_in_order(node: Path) -> None:
    """Every check but the skipped broker is ok, in the documented order."""
    checks = _diagnose(node)
    assert [c.name for c in checks] == ORDER
    assert [c.status for c in checks] == [OK] * (len(ORDER) - 1) + [SKIP]
    assert _check(checks, "config").line() == f"ok    config: {node} for {G22}"


def test_an_unloadable_config_stops_the_checks(tmp_path: Path) -> None:
    """A missing config file is the only verdict: nothing else can be checked."""
    checks = _diagnose(tmp_path / "missing.toml")
    assert [(c.name, c.status) for c in checks] == [("config", FAIL)]


def test_a_missing_data_dir_fails_and_skips_the_store(node: Path, tmp_path: Path) -> None:
    """A data dir that does not exist fails; the store is then not judged."""
    checks = _diagnose(node, EDOC_AXIS_DATA_DIR=str(tmp_path / "gone"))
    assert _check(checks, "data dir").status == FAIL
    assert (_check(checks, "store").status, _check(checks, "store").detail) == (SKIP, "no data dir")


def test_key_and_certificate_must_match_and_name_this_agency(node: Path) -> None:
    """Another agency's key fails the match; its key and certificate fail the OrganId."""
    g22, h41 = load_settings(node, env={}), load_settings(node.parent.parent / H41 / "node.toml",
                                                          env={})
    g22.keys.key.write_bytes(h41.keys.key.read_bytes())
    key = _check(_diagnose(node), "signing key")
    assert (key.status, key.detail) == (FAIL, f"{g22.keys.key} is not the key of {g22.keys.cert}")
    g22.keys.cert.write_bytes(h41.keys.cert.read_bytes())
    checks = _diagnose(node)
    assert _check(checks, "signing key").status == OK
    cert = _check(checks, "certificate")
    assert (cert.status, cert.detail) == (FAIL, f"{g22.keys.cert} is issued to {H41}, not {G22}")
    assert _check(checks, "fingerprint").status == FAIL


def test_an_unreadable_key_and_a_garbage_certificate_fail_by_file(node: Path) -> None:
    """A missing key and a certificate file that holds no certificate each name their file."""
    settings = load_settings(node, env={})
    settings.keys.key.unlink()
    settings.keys.cert.write_text("not a certificate")
    checks = _diagnose(node)
    key, cert = _check(checks, "signing key"), _check(checks, "certificate")
    assert key.line().startswith(f"FAIL  signing key: cannot read {settings.keys.key}")
    assert (cert.status, cert.detail.startswith(f"{settings.keys.cert}: ")) == (FAIL, True)
    assert [c.name for c in checks if c.name in {"expiry", "fingerprint", "chain"}] == []


def test_expiry_warns_a_month_ahead_and_fails_outside_the_validity(node: Path) -> None:
    """Ten days left warns, after notAfter or before notBefore fails."""
    cert = trust.load_certificate(load_settings(node, env={}).keys.cert.read_bytes())
    cases = {cert.not_valid_after_utc - dt.timedelta(days=10): (WARN, "expires in 10 days"),
             cert.not_valid_after_utc + dt.timedelta(days=1): (FAIL, "certificate expired on"),
             cert.not_valid_before_utc - dt.timedelta(days=1): (FAIL, "not valid before")}
    for now, (status, words) in cases.items():
        expiry = _check(diagnose(node, env={}, check_broker=None, now=now), "expiry")
        assert expiry.status == status and words in expiry.detail, expiry


def test_the_directory_must_list_this_node_with_its_broker_user(node: Path) -> None:
    """Not listed, or listed with another broker user, fails the directory check."""
    settings = load_settings(node, env={})
    agency = Directory.load(settings.directory_path).get(G22)
    save_agency(settings.directory_path, replace(agency, broker_user="someone"))
    directory = _check(_diagnose(node), "directory")
    assert directory.status == FAIL
    assert f"{G22} has broker_user someone, but the config connects as {G22}" in directory.detail
    other = node.parent / "other.toml"
    other.write_text("")
    directory = _check(_diagnose(node, EDOC_AXIS_DIRECTORY=str(other)), "directory")
    assert directory.detail.startswith(f"{G22} (this node) is not listed")


def test_a_fingerprint_not_listed_fails_with_what_peers_will_do(node: Path) -> None:
    """A certificate whose fingerprint the directory lacks fails: peers refuse the signatures."""
    settings = load_settings(node, env={})
    agency = Directory.load(settings.directory_path).get(G22)
    save_agency(settings.directory_path, replace(agency, fingerprints=("0" * 64,)))
    fingerprint = _check(_diagnose(node), "fingerprint")
    assert fingerprint.status == FAIL and "peers will refuse" in fingerprint.detail


def test_trust_anchors_unreadable_and_crls_missing(node: Path, tmp_path: Path) -> None:
    """An unreadable anchor fails; no CRLs fail while they are required, else warn."""
    checks = _diagnose(node, EDOC_AXIS_TRUST_ANCHORS=str(tmp_path / "nope.pem"))
    anchors = _check(checks, "trust anchors")
    assert anchors.status == FAIL and anchors.detail.startswith(f"cannot read {tmp_path}")
    assert "chain" not in [c.name for c in checks]  # nothing to chain to
    crl = load_settings(node, env={}).trust.crls[0]
    crl.unlink()
    assert _check(_diagnose(node), "crls").line().startswith(f"FAIL  crls: cannot read {crl}")
    assert _check(_diagnose(node), "chain").status == FAIL  # revocation cannot be checked


def test_crl_freshness_warns_on_the_last_day_and_fails_when_stale(node: Path) -> None:
    """A CRL within a day of nextUpdate warns; past it, fails while CRLs are required."""
    crl = trust.load_crls(load_settings(node, env={}).trust.crls[0].read_bytes())[0]
    assert crl.next_update_utc is not None
    soon = crl.next_update_utc - dt.timedelta(hours=2)
    assert _check(diagnose(node, env={}, check_broker=None, now=soon), "crls").status == WARN
    late = crl.next_update_utc + dt.timedelta(hours=1)
    assert _check(diagnose(node, env={}, check_broker=None, now=late), "crls").status == FAIL
    relaxed = diagnose(node, env={"EDOC_AXIS_SIGNATURE_CRL_REQUIRED": "false"},
                       check_broker=None, now=late)
    assert _check(relaxed, "crls").status == WARN


def test_the_broker_check_given_decides_the_last_line(node: Path) -> None:
    """``check_broker`` is called with the settings; its reason is the FAIL detail."""
    seen: list[str] = []

    def refuse(settings: Settings) -> str | None:
        seen.append(settings.organ_id)
        return "BROKER_NOT_FOUND: queue edoc.in.000.00.00.G22 does not exist"

    assert diagnose(node, env={}, check_broker=refuse)[-1].line() == (
        "FAIL  broker: BROKER_NOT_FOUND: queue edoc.in.000.00.00.G22 does not exist")
    assert seen == [G22]
    passed = diagnose(node, env={}, check_broker=lambda settings: None)[-1]
    assert passed.status == OK and f"{G22}:***@" in passed.detail and "edoc.in." in passed.detail


@pytest.mark.broker
def test_broker_check_finds_the_queues_on_the_real_broker(node: Path, broker_url: str) -> None:
    """Missing queues and a wrong password fail with their codes; declared queues pass."""
    organ_id = f"000.00.{uuid.uuid4().int % 90 + 10}.G22"
    settings = load_settings(node, env={"EDOC_AXIS_BROKER_URL": broker_url,
                                        "EDOC_AXIS_ORGAN_ID": organ_id})
    assert "BROKER_NOT_FOUND" in str(broker_check(settings))
    declare_topology(broker_url, Topology(), [organ_id])
    assert broker_check(settings) is None
    wrong = load_settings(node, env={
        "EDOC_AXIS_BROKER_URL": broker_url.replace("guest:guest", "guest:wrong")})
    assert "BROKER_AUTH_FAILED" in str(broker_check(wrong))
