"""Tests for ops.pki, the dev PKI: what its CAs, agency certificates and CRLs contain."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edoc_axis.errors import TrustError
from edoc_axis.ops import pki as dev_pki
from edoc_axis.trust import certificate
from edoc_axis.trust.chain import TrustStore

G22 = "000.00.00.G22"


def test_agency_certificate_contents(pki) -> None:
    """Agency certs: OrganId as SAN URI, digitalSignature+nonRepudiation, CA=false."""
    cert = pki.agencies[G22].cert
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"urn:qcvn102:organid:{G22}"]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificate.organ_id_of(cert) == G22
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert days == dev_pki.DEFAULT_AGENCY_DAYS


def test_key_types() -> None:
    """generate_key makes RSA-2048, RSA-3072 and P-256 keys and refuses anything else."""
    rsa2048, p256 = dev_pki.generate_key("rsa2048"), dev_pki.generate_key("p256")
    assert isinstance(rsa2048, rsa.RSAPrivateKey) and rsa2048.key_size == 2048
    assert isinstance(p256, ec.EllipticCurvePrivateKey) and p256.curve.name == "secp256r1"
    with pytest.raises(TrustError):
        dev_pki.generate_key("rsa1024")


def test_pem_output_reads_back_through_trust(pki) -> None:
    """key_to_pem, cert_to_pem and crl_to_pem give what trust.certificate's loaders read."""
    pem = dev_pki.cert_to_pem(pki.ca_cert)
    assert certificate.load_certificate(pem) == pki.ca_cert
    crl = dev_pki.make_crl(pki.ca_key, pki.ca_cert)
    assert certificate.load_crls(dev_pki.crl_to_pem(crl) * 2) == [crl, crl]
    key = certificate.load_private_key(dev_pki.key_to_pem(pki.ca_key))
    assert key.public_key() == pki.ca_key.public_key()


def test_intermediate_issues_agencies_that_chain_to_the_root(pki) -> None:
    """An issuing CA (path length 0, within the root's validity) issues certificates that
    validate against the root alone when the intermediate travels with them."""
    int_key, int_cert = dev_pki.issue_intermediate(pki.ca_key, pki.ca_cert)
    basic = int_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca and basic.path_length == 0
    assert int_cert.not_valid_after_utc <= pki.ca_cert.not_valid_after_utc
    _, cert = dev_pki.issue_agency_certificate(int_key, int_cert, G22, "VPCP", key_type="p256")
    store = TrustStore(
        [pki.ca_cert],
        crls=[dev_pki.make_crl(pki.ca_key, pki.ca_cert), dev_pki.make_crl(int_key, int_cert)],
    )
    chain = store.validate(cert, [int_cert])
    assert chain.organ_id == G22 and chain.chain == (cert, int_cert, pki.ca_cert)


def test_crl_lists_revocations_with_number_and_lifetime(pki) -> None:
    """make_crl lists each revoked serial with its date, carries its number, lasts ``days``."""
    revoked_at = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    crl = dev_pki.make_crl(
        pki.ca_key, pki.ca_cert, [dev_pki.Revocation(12345, revoked_at)], days=3, crl_number=7
    )
    assert crl.is_signature_valid(pki.ca_key.public_key())
    entry = crl.get_revoked_certificate_by_serial_number(12345)
    assert entry is not None and entry.revocation_date_utc == revoked_at
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=3)


def test_production_trust_does_not_import_the_dev_pki() -> None:
    """Importing every trust module loads nothing of ops (the dev PKI builds on trust)."""
    code = (
        "import sys\n"
        "import edoc_axis.trust.certificate, edoc_axis.trust.chain, edoc_axis.trust.policy\n"
        "import edoc_axis.trust.signature, edoc_axis.trust.structure, edoc_axis.trust.xmldsig\n"
        "print(sorted(m for m in sys.modules if m.startswith('edoc_axis.ops')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
