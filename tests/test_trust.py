"""Tests for trust.certificate and trust.chain: OrganId binding, PEM loading, validation, cache."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from edoc_axis.errors import SignatureInvalid, TrustError
from edoc_axis.ops import pki as dev_pki
from edoc_axis.trust import certificate as trust
from edoc_axis.trust.chain import TrustStore

G22 = "000.00.00.G22"


def test_organ_id_absent_or_ambiguous_is_none(pki) -> None:
    """organ_id_of returns None for a CA certificate and for one binding two OrganIds."""
    assert trust.organ_id_of(pki.ca_cert) is None
    _, cert = dev_pki.issue_agency_certificate(
        pki.ca_key, pki.ca_cert, G22, "x", extra_organ_ids=["000.00.00.H41"]
    )
    assert trust.organ_id_of(cert) is None
    assert trust.organ_ids_of(cert) == [G22, "000.00.00.H41"]


def test_fingerprint_is_sha256_hex(pki) -> None:
    """fingerprint() is 64 lowercase hex characters and differs per certificate."""
    a = trust.fingerprint(pki.agencies[G22].cert)
    b = trust.fingerprint(pki.agencies["000.00.00.H41"].cert)
    assert len(a) == 64 and a == a.lower() and a != b


def test_validation_is_cached_until_crl_next_update(pki) -> None:
    """A validated chain is reused (same object) and valid_until is the CRL's nextUpdate."""
    store = pki.trust_store()
    cert = pki.agencies[G22].cert
    first = store.validate(cert)
    assert store.validate(cert) is first
    assert first.valid_until == store.crls[0].next_update_utc
    later = first.valid_until + dt.timedelta(seconds=1)
    with pytest.raises(SignatureInvalid) as info:
        store.validate(cert, at=later)
    assert info.value.code == "CRL_EXPIRED"


def test_failures_are_not_cached(pki) -> None:
    """A certificate refused once is checked again next time (no negative cache)."""
    store = pki.trust_store(with_crl=False)
    cert = pki.agencies[G22].cert
    for _ in range(2):
        with pytest.raises(SignatureInvalid):
            store.validate(cert)
    assert store.validate(cert, crl_required=False).warnings


def test_ca_certificate_cannot_sign(pki) -> None:
    """A CA certificate as signer is refused with CERT_KEY_USAGE."""
    with pytest.raises(SignatureInvalid) as info:
        pki.trust_store().validate(pki.ca_cert)
    assert info.value.code == "CERT_KEY_USAGE"


def test_loaders_read_pem_and_refuse_garbage(pki) -> None:
    """Loaders read certificates, several CRLs and keys; garbage gives TrustError, not a library
    exception."""
    assert trust.load_certificate(pki.ca_path.read_bytes()) == pki.ca_cert
    assert len(trust.load_crls(pki.crl_path.read_bytes() * 2)) == 2
    agency = pki.agencies["000.00.00.H41"]
    key = trust.load_private_key(agency.key_path.read_bytes())
    assert key.public_key() == agency.key.public_key()
    for loader in (trust.load_certificate, trust.load_crls, trust.load_private_key):
        with pytest.raises(TrustError):
            loader(b"not pem at all")
    with pytest.raises(TrustError):
        TrustStore(anchors=[])


def test_key_matches_only_its_own_certificate(pki) -> None:
    """key_matches pairs a private key with its certificate and no other."""
    g22, h41 = pki.agencies[G22], pki.agencies["000.00.00.H41"]
    assert trust.key_matches(g22.key, g22.cert)
    assert not trust.key_matches(g22.key, h41.cert)
    assert not trust.key_matches(h41.key, pki.ca_cert)


def test_certificate_summary(pki) -> None:
    """certificate_summary gives what pki show prints."""
    summary = trust.certificate_summary(pki.agencies["000.00.00.H41"].cert)
    assert summary["organ_id"] == "000.00.00.H41"
    assert summary["key"] == "EC-secp256r1"
    assert isinstance(summary["days_to_expiry"], int)


def _old_ca(years: int = 2) -> tuple[trust.PrivateKey, x509.Certificate]:
    """A root CA valid since ``years`` ago, as a long-running axis would have."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=365 * years)
    return dev_pki.init_ca("Old Root", key_type="p256", not_before=since)


def test_as_of_accepts_a_certificate_that_has_since_expired() -> None:
    """A receipt signed while its certificate was valid still validates as_of its signing time."""
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_cert = _old_ca()
    _, cert = dev_pki.issue_agency_certificate(
        ca_key, ca_cert, G22, "old", key_type="p256", days=30,
        not_before=now - dt.timedelta(days=400),
    )
    store = TrustStore([ca_cert], crls=[dev_pki.make_crl(ca_key, ca_cert)])
    with pytest.raises(SignatureInvalid) as info:
        store.validate(cert)
    assert info.value.code == "CERT_EXPIRED"
    assert store.validate(cert, as_of=now - dt.timedelta(days=390)).organ_id == G22
    with pytest.raises(SignatureInvalid) as info:
        store.validate(cert, as_of=now - dt.timedelta(days=300))
    assert info.value.code == "CERT_EXPIRED"


def test_as_of_counts_only_revocations_dated_before_it() -> None:
    """A later revocation does not void earlier signatures, and as_of never warms the cache."""
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_cert = _old_ca()
    _, cert = dev_pki.issue_agency_certificate(
        ca_key, ca_cert, G22, "rotated", key_type="p256", not_before=now - dt.timedelta(days=10)
    )
    revoked_at = now - dt.timedelta(days=2)
    crl = dev_pki.make_crl(ca_key, ca_cert, [dev_pki.Revocation(cert.serial_number, revoked_at)])
    store = TrustStore([ca_cert], crls=[crl])
    assert store.validate(cert, as_of=revoked_at - dt.timedelta(days=1)).organ_id == G22
    for when in (None, revoked_at + dt.timedelta(hours=1)):
        with pytest.raises(SignatureInvalid) as info:
            store.validate(cert, as_of=when)
        assert info.value.code == "CERT_REVOKED"
