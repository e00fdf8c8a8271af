"""`edoc-axis init`, `directory list|show|check` and `doctor` (its checks: tests/test_doctor.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from edoc_axis.cli import main
from edoc_axis.config.load import load_settings
from edoc_axis.config.settings import Settings
from edoc_axis.directory import Directory
from edoc_axis.errors import EdocAxisError
from edoc_axis.ops.devbench import dev_broker_user
from edoc_axis.transport import provision
from edoc_axis.trust import certificate as trust

G22, H41 = "000.00.00.G22", "000.00.00.H41"


def run(*args: str | Path) -> Result:
    """Invoke ``edoc-axis`` in-process."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@dataclass
class Bench:
    """Two dev agencies sharing one CA and one directory, made by `init --dev`."""

    root: Path

    @property
    def directory(self) -> Path:
        return self.root / "directory.toml"

    def config(self, organ_id: str) -> Path:
        return self.root / organ_id / "node.toml"

    def settings(self, organ_id: str) -> Settings:
        return load_settings(self.config(organ_id), env={})


def _init_dev(root: Path, organ_id: str, *extra: str) -> Result:
    return run("init", "--dev", "--organ-id", organ_id, "--data-dir", root / organ_id,
               "--ca", root / "ca", "--directory", root / "directory.toml",
               "--key-type", "p256", *extra)


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    """A fresh two-agency dev bench (P-256 keys: quick to make)."""
    for organ_id, name in ((G22, "Văn phòng Chính phủ"), (H41, "UBND tỉnh Nghệ An")):
        result = _init_dev(tmp_path, organ_id, "--name", name)
        assert result.exit_code == 0, result.output
    return Bench(tmp_path)


# --- init ----------------------------------------------------------------------------------------


def test_init_writes_a_config_load_settings_accepts(tmp_path: Path) -> None:
    """Plain init writes a loadable config and refuses to overwrite it without --force."""
    url = "amqps://g22:pw@broker.gov.vn:5671/edoc"
    args = ("init", "--organ-id", G22, "--data-dir", tmp_path / "node", "--broker-url", url)
    result = run(*args)
    assert result.exit_code == 0, result.output
    settings = load_settings(tmp_path / "node" / "node.toml", env={})
    assert settings.organ_id == G22
    assert settings.broker.url == url
    assert settings.data_dir == tmp_path / "node"
    assert settings.keys.cert == tmp_path / "node" / "keys" / "agency.cert.pem"
    again = run(*args)
    assert again.exit_code == 78
    assert "already exists; pass --force" in again.output
    assert run(*args, "--force").exit_code == 0


def test_init_without_dev_needs_a_broker_url(tmp_path: Path) -> None:
    """Outside --dev the broker URL must be given; bad OrganIds and URLs are refused."""
    result = run("init", "--organ-id", G22, "--data-dir", tmp_path)
    assert result.exit_code == 78 and "--broker-url is required" in result.output
    result = run("init", "--organ-id", "01.02.G22", "--data-dir", tmp_path, "--broker-url",
                 "amqp://h/")
    assert result.exit_code == 78 and "CONFIG_ORGAN_ID" in result.output
    result = run("init", "--organ-id", G22, "--data-dir", tmp_path, "--broker-url", "http://h/")
    assert result.exit_code == 78 and "amqp://" in result.output
    assert not (tmp_path / "node.toml").exists()


def test_init_dev_creates_keys_bound_to_the_organ_id(bench: Bench) -> None:
    """init --dev issues a certificate carrying the OrganId from one shared CA, lists it."""
    directory = Directory.load(bench.directory)
    issuers = set()
    for organ_id in (G22, H41):
        settings = bench.settings(organ_id)
        cert = trust.load_certificate(settings.keys.cert.read_bytes())
        assert trust.organ_id_of(cert) == organ_id
        assert settings.keys.key.stat().st_mode & 0o077 == 0
        agency = directory.get(organ_id)
        assert agency.fingerprints == (trust.fingerprint(cert),)
        assert agency.broker_user == settings.broker.user == dev_broker_user(bench.root, organ_id)
        assert settings.broker.user.startswith("dev-") and settings.broker.user.endswith(organ_id)
        assert settings.trust.anchors == (bench.root / "ca" / "ca.pem",)
        issuers.add(cert.issuer)
    assert len(issuers) == 1
    assert directory.get(G22).name == "Văn phòng Chính phủ"
    passwords = (bench.root / "broker-passwords").read_text().splitlines()
    users = {organ_id: bench.settings(organ_id).broker.user for organ_id in (G22, H41)}
    assert {line.split("=", 1)[0] for line in passwords} == set(users.values())
    g22_url = bench.settings(G22).broker.url
    assert f"{users[G22]}={g22_url.split(':')[2].split('@')[0]}" in passwords


def test_init_dev_force_replaces_key_and_fingerprint(bench: Bench) -> None:
    """Re-running init --dev --force issues a new key and updates only that agency's entry."""
    old = Directory.load(bench.directory)
    url_before = bench.settings(G22).broker.url
    result = _init_dev(bench.root, G22, "--force", "--code", "G22")
    assert result.exit_code == 0, result.output
    new = Directory.load(bench.directory)
    assert new.get(G22).fingerprints != old.get(G22).fingerprints
    assert new.get(G22).code == "G22"
    assert new.get(G22).name == "Văn phòng Chính phủ"  # kept from the existing entry
    assert new.get(H41) == old.get(H41)
    assert bench.settings(G22).broker.url == url_before  # password kept in broker-passwords
    cert = trust.load_certificate(bench.settings(G22).keys.cert.read_bytes())
    assert new.get(G22).trusts(trust.fingerprint(cert))


# --- directory -----------------------------------------------------------------------------------


def test_directory_list_show_check(bench: Bench) -> None:
    """list (table and JSON), show and check work from a node's config."""
    config = bench.config(G22)
    listed = run("directory", "list", "--config", config)
    assert listed.exit_code == 0
    assert G22 in listed.output and "UBND tỉnh Nghệ An" in listed.output
    as_json = json.loads(run("directory", "list", "-c", config, "--json").output)
    assert [a["organ_id"] for a in as_json] == [G22, H41]
    shown = run("directory", "show", H41, "-f", bench.directory)
    assert shown.exit_code == 0
    assert f"broker_user:  {dev_broker_user(bench.root, H41)}" in shown.output
    missing = run("directory", "show", "000.00.00.G12", "-f", bench.directory)
    assert missing.exit_code == 65 and "AGENCY_UNKNOWN" in missing.output
    checked = run("directory", "check", "-f", bench.directory, "--certs", bench.root)
    assert checked.exit_code == 0, checked.output
    assert "lists 2 agencies" in checked.output


def test_directory_check_reports_problems(bench: Bench, tmp_path: Path) -> None:
    """check exits 78 and names each problem: bad file, or a certificate not listed."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[[agency]]\norgan_id = "01.02.G22"\ncode = "X"\nname = "n"\n'
                   'broker_user = "u"\nparent = "000.00.00.G01"\nfingerprints = ["zz"]\n')
    result = run("directory", "check", "-f", bad)
    assert result.exit_code == 78
    for needle in ("3 problems", "not a valid OrganId", "parent 000.00.00.G01", "64 hex"):
        assert needle in result.output
    _init_dev(bench.root / "other", H41)  # a cert of H41 that the shared directory does not list
    result = run("directory", "check", "-f", bench.directory, "--certs", bench.root)
    assert result.exit_code == 78
    assert "fingerprint not listed for 000.00.00.H41" in result.output


# --- doctor --------------------------------------------------------------------------------------


def test_doctor_passes_on_a_dev_setup(bench: Bench) -> None:
    """On a fresh dev node every non-broker check is ok and the exit code is 0."""
    result = run("doctor", "--config", bench.config(G22), "--no-broker")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    names = [line.split(":")[0].split(None, 1)[1] for line in lines]
    assert names == ["config", "data dir", "store", "signing key", "certificate", "expiry",
                     "directory", "fingerprint", "trust anchors", "crls", "chain", "broker"]
    assert all(line.startswith("ok ") for line in lines[:-1])
    assert lines[-1].startswith("skip  broker")


def test_doctor_fails_clearly_when_the_key_is_missing(bench: Bench) -> None:
    """A missing signing key is a FAIL line naming the file, and exit 1."""
    settings = bench.settings(G22)
    settings.keys.key.unlink()
    result = run("doctor", "-c", bench.config(G22), "--no-broker")
    assert result.exit_code == 1
    assert f"FAIL  signing key: cannot read {settings.keys.key} (No such file or directory)" \
        in result.output
    assert "ok    certificate:" in result.output  # the other checks still run


def test_doctor_json_lists_every_check(bench: Bench) -> None:
    """--json prints one object per check (check, status, detail) and keeps the exit code."""
    result = run("doctor", "-c", bench.config(G22), "--no-broker", "--json")
    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)
    assert checks[0] == {"check": "config", "status": "ok",
                         "detail": f"{bench.config(G22)} for {G22}"}
    assert checks[-1] == {"check": "broker", "status": "skip",
                          "detail": "not checked (--no-broker)"}
    bench.settings(G22).keys.cert.unlink()
    result = run("doctor", "-c", bench.config(G22), "--no-broker", "--json")
    assert result.exit_code == 1
    assert "FAIL" in {c["status"] for c in json.loads(result.stdout)}


# --- the password trap (issue 13 item 2) --------------------------------------------------------


@pytest.fixture
def bench_vhost() -> Iterator[tuple[str, list[str]]]:
    """A vhost name for a bench provisioned on the real broker, and a list of the broker
    users the test made; both are deleted afterwards."""
    vhost, users = f"edoc-bench-{uuid.uuid4().hex[:10]}", []
    yield vhost, users
    with suppress(EdocAxisError):
        provision.delete_vhost(vhost)
    for user in users:
        with suppress(EdocAxisError):
            provision.delete_user(user)


@pytest.mark.broker
def test_init_records_the_given_password_and_doctor_names_a_mismatch(
        tmp_path: Path, bench_vhost: tuple[str, list[str]]) -> None:
    """`init --dev --broker-url` keeps its password in the bench's passwords file, so `broker
    provision --passwords` gives the broker that one and doctor passes; a broker.url whose
    password differs is named as such by doctor (exit 78), with the file and the command."""
    vhost, users = bench_vhost
    user = f"edoc-test-{uuid.uuid4().hex[:8]}"
    users.append(user)
    url = f"amqp://{user}:given-password@127.0.0.1:5672/{vhost}"
    assert _init_dev(tmp_path, G22, "--broker-url", url, "--listen", "127.0.0.1:18470"
                     ).exit_code == 0
    made = _init_dev(tmp_path, H41, "--vhost", vhost, "--listen", "127.0.0.1:18471")
    assert made.exit_code == 0, made.output
    h41 = load_settings(tmp_path / H41 / "node.toml", env={})
    users.append(h41.broker.user)
    assert h41.broker.vhost == vhost and h41.api.listen == "127.0.0.1:18471"
    passwords = tmp_path / "broker-passwords"
    assert f"{user}=given-password" in passwords.read_text().splitlines()
    provisioned = run("broker", "provision", "--directory", tmp_path / "directory.toml",
                      "--passwords", passwords, "--vhost", vhost)
    assert provisioned.exit_code == 0, provisioned.output
    assert "generated passwords" not in provisioned.output  # nothing invented behind our back
    config = tmp_path / G22 / "node.toml"
    doctor = run("doctor", "-c", config)
    assert doctor.exit_code == 0, doctor.output
    wrong = CliRunner(env={"EDOC_AXIS_BROKER_URL": url.replace("given-", "other-")}).invoke(
        main, ["doctor", "-c", str(config)], catch_exceptions=False)
    assert wrong.exit_code == 78, wrong.output
    assert f"refused user {user}'s password" in wrong.output
    assert "differs from the one provisioned" in wrong.output and str(passwords) in wrong.output
    assert f"broker provision --directory {tmp_path / 'directory.toml'}" in wrong.output
    again = _init_dev(tmp_path, G22, "--broker-url", url.replace("given-", "other-"),
                      "-o", tmp_path / "other.toml")
    assert again.exit_code == 78 and "BROKER_PASSWORD_CONFLICT" in again.output
    assert not (tmp_path / "other.toml").exists()


@pytest.mark.broker
def test_two_benches_on_one_broker_keep_their_own_users(
        tmp_path: Path, bench_vhost: tuple[str, list[str]]) -> None:
    """Dev broker users carry a prefix of their bench: two benches provisioning the same
    agency on one broker no longer reset each other's password."""
    vhost, users = bench_vhost
    configs = []
    for bench in ("one", "two"):
        root = tmp_path / bench
        assert _init_dev(root, G22, "--vhost", vhost).exit_code == 0
        users.append(load_settings(root / G22 / "node.toml", env={}).broker.user)
        provisioned = run("broker", "provision", "--directory", root / "directory.toml",
                          "--passwords", root / "broker-passwords", "--vhost", vhost)
        assert provisioned.exit_code == 0, provisioned.output
        configs.append(root / G22 / "node.toml")
    assert users[0] != users[1] and all(u.startswith("dev-") for u in users)
    for config in configs:  # the first bench still logs in after the second provisioned
        result = run("doctor", "-c", config)
        assert result.exit_code == 0, result.output


def test_directory_list_has_a_header_and_says_when_empty(bench: Bench, tmp_path: Path) -> None:
    """`directory list` prints a header row over its agencies, and says so when there are none."""
    listed = run("directory", "list", "-f", bench.directory)
    header, *rows = listed.output.splitlines()
    assert header.split() == ["ORGAN_ID", "CODE", "BROKER_USER", "CERTS", "PARENT", "NAME"]
    assert [row.split()[0] for row in rows] == [G22, H41]
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    result = run("directory", "list", "-f", empty)
    assert (result.exit_code, result.output) == (0, "the directory lists no agency\n")
