"""ops.devbench: a dev CA shared by agencies, their keys and directory entries, broker passwords."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from edoc_axis.config.settings import BrokerSettings, KeySettings, Settings
from edoc_axis.directory import Directory
from edoc_axis.errors import ConfigError
from edoc_axis.ops import pki
from edoc_axis.ops.devbench import (
    AGENCY_CERT,
    AGENCY_KEY,
    CA_CERT,
    CA_CRL,
    CA_CRL_NUMBER,
    CA_KEY,
    INTERMEDIATE_CERT,
    INTERMEDIATE_KEY,
    dev_identity,
    dev_password,
)
from edoc_axis.trust import certificate as trust

G22, H41 = "000.00.00.G22", "000.00.00.H41"


def _settings(root: Path, organ_id: str) -> Settings:
    data = root / organ_id
    return Settings(
        organ_id=organ_id,
        data_dir=data,
        broker=BrokerSettings(url=f"amqp://{organ_id}:secret@127.0.0.1:5672/%2F"),
        keys=KeySettings(key=data / "keys" / AGENCY_KEY, cert=data / "keys" / AGENCY_CERT),
        directory_path=root / "directory.toml",
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(settings: Settings) -> x509.Certificate:
    return trust.load_certificate(settings.keys.cert.read_bytes())


def test_first_agency_makes_the_dev_ca_and_is_listed(tmp_path: Path) -> None:
    """A new CA (private key 0600, CRL, CRL number) issues the agency's key and certificate,
    and the agency is listed with its broker user and certificate fingerprint."""
    settings, ca = _settings(tmp_path, G22), tmp_path / "ca"
    notes = dev_identity(settings, ca, name="Văn phòng Chính phủ", key_type="p256")
    assert notes[0] == f"dev CA created in {ca}"
    assert (ca / CA_CRL_NUMBER).read_text() == "1\n"
    assert _mode(ca / CA_KEY) == _mode(settings.keys.key) == 0o600
    cert = _cert(settings)
    assert trust.organ_id_of(cert) == G22
    assert cert.issuer == trust.load_certificate((ca / CA_CERT).read_bytes()).subject
    assert trust.load_crls((ca / CA_CRL).read_bytes())
    agency = Directory.load(settings.directory_path).get(G22)
    assert (agency.name, agency.broker_user) == ("Văn phòng Chính phủ", G22)
    assert agency.fingerprints == (trust.fingerprint(cert),)


def test_agencies_of_one_bench_share_the_ca_and_the_directory(tmp_path: Path) -> None:
    """A second agency reuses the CA; both end up in one directory, issued by one CA."""
    g22, h41, ca = _settings(tmp_path, G22), _settings(tmp_path, H41), tmp_path / "ca"
    dev_identity(g22, ca, key_type="p256")
    ca_pem = (ca / CA_CERT).read_bytes()
    assert dev_identity(h41, ca, key_type="p256")[0] == f"dev CA {ca} reused"
    assert (ca / CA_CERT).read_bytes() == ca_pem
    assert _cert(g22).issuer == _cert(h41).issuer
    assert [a.organ_id for a in Directory.load(g22.directory_path)] == [G22, H41]


def test_a_fitting_identity_is_reused_and_force_replaces_it(tmp_path: Path) -> None:
    """Running again keeps key and certificate; force issues new ones and relists only them."""
    settings, ca = _settings(tmp_path, G22), tmp_path / "ca"
    dev_identity(settings, ca, key_type="p256")
    first = _cert(settings)
    notes = dev_identity(settings, ca, key_type="p256")
    assert f"existing signing key and certificate of {G22} reused" in notes
    assert _cert(settings) == first
    dev_identity(settings, ca, key_type="p256", force=True, code="G22.NEW")
    second = _cert(settings)
    assert second.serial_number != first.serial_number
    agency = Directory.load(settings.directory_path).get(G22)
    assert (agency.code, agency.fingerprints) == ("G22.NEW", (trust.fingerprint(second),))


def test_a_named_folder_that_is_not_a_ca_is_refused(tmp_path: Path) -> None:
    """--ca naming a folder of other files is refused; a CA without a CRL is refused too."""
    settings, ca = _settings(tmp_path, G22), tmp_path / "ca"
    ca.mkdir()
    (ca / "notes.txt").write_text("not a CA")
    with pytest.raises(ConfigError) as refused:
        dev_identity(settings, ca, ca_given=True, key_type="p256")
    assert refused.value.code == "TRUST_NO_CA"
    (ca / "notes.txt").unlink()
    dev_identity(settings, ca, ca_given=True, key_type="p256")  # an empty folder becomes a CA
    (ca / CA_CRL).unlink()
    with pytest.raises(ConfigError) as refused:
        dev_identity(_settings(tmp_path, H41), ca, key_type="p256")
    assert refused.value.code == "TRUST_NO_CRL"


def test_an_intermediate_in_the_ca_folder_issues_the_agency(tmp_path: Path) -> None:
    """With intermediate.pem beside the root (as `pki init-ca --intermediate` makes), the
    intermediate is the issuer of the agency certificate."""
    ca = tmp_path / "ca"
    ca.mkdir()
    root_key, root_cert = pki.init_ca(key_type="p256")
    int_key, int_cert = pki.issue_intermediate(root_key, root_cert, key_type="p256")
    for name, data in ((CA_KEY, pki.key_to_pem(root_key)), (CA_CERT, pki.cert_to_pem(root_cert)),
                       (INTERMEDIATE_KEY, pki.key_to_pem(int_key)),
                       (INTERMEDIATE_CERT, pki.cert_to_pem(int_cert)),
                       (CA_CRL, pki.crl_to_pem(pki.make_crl(root_key, root_cert)))):
        (ca / name).write_bytes(data)
    settings = _settings(tmp_path, G22)
    dev_identity(settings, ca, ca_given=True, key_type="p256")
    assert _cert(settings).issuer == int_cert.subject


def test_a_missing_parent_is_noted(tmp_path: Path) -> None:
    """An agency whose OrganId implies a parent gets a note until the parent is given."""
    child, ca = _settings(tmp_path, "000.01.00.G22"), tmp_path / "ca"
    dev_identity(_settings(tmp_path, G22), ca, key_type="p256")
    notes = dev_identity(child, ca, key_type="p256")
    assert notes[-1] == f"parent {G22} not set (use --parent once it is listed)"
    notes = dev_identity(child, ca, key_type="p256", parent=G22)
    assert not notes[-1].startswith("parent")
    assert Directory.load(child.directory_path).get(child.organ_id).parent == G22


def test_dev_passwords_are_stable_per_user_and_private(tmp_path: Path) -> None:
    """A user keeps its password; new users are appended to the 0600 USER=PASSWORD file."""
    path = tmp_path / "broker-passwords"
    g22 = dev_password(path, G22)
    assert dev_password(path, G22) == g22
    h41 = dev_password(path, H41)
    assert h41 != g22
    assert path.read_text().splitlines() == [f"{G22}={g22}", f"{H41}={h41}"]
    assert _mode(path) == 0o600


def test_concurrent_inits_hand_out_one_password_per_user(tmp_path: Path) -> None:
    """Threads asking at once for the same and for different users never duplicate a user."""
    path = tmp_path / "broker-passwords"
    users = [G22, H41, G22, H41, G22, "000.00.00.A01", G22, "000.00.00.A01"]
    results: dict[int, str] = {}
    start = threading.Barrier(len(users))

    def ask(index: int, user: str) -> None:
        start.wait(timeout=10)
        results[index] = dev_password(path, user)

    threads = [threading.Thread(target=ask, args=item) for item in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    lines = path.read_text().splitlines()
    assert sorted(line.split("=", 1)[0] for line in lines) == sorted(set(users))
    by_user = dict(line.split("=", 1) for line in lines)
    assert all(results[i] == by_user[user] for i, user in enumerate(users))
