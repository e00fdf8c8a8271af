"""A small PKI for tests, demos and dev benches: CA and agency keys, certificates and CRLs.

Agency signing certificates are RSA-2048/3072 or P-256, key usage digitalSignature +
nonRepudiation (critical), basicConstraints CA=false, valid 2 years by default, and bind the
agency's OrganId as the one subjectAltName URI ``urn:qcvn102:organid:<OrganId>`` that
``trust.certificate.organ_id_of`` reads. CAs are self-signed roots (optionally with one
intermediate) with keyCertSign + cRLSign. TLS certificates (``issue_tls_certificate``) name a
server's host names and addresses, or a client, for HTTPS to the DMS gateway. Everything here
returns objects or PEM bytes; writing files is the caller's job. Validating what this issues
is ``trust``'s; this module builds on ``trust.certificate`` and production code never imports
it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edoc_axis.errors import TrustError
from edoc_axis.trust.certificate import ORGAN_ID_URI_PREFIX, PrivateKey

KEY_TYPES = ("rsa2048", "rsa3072", "p256")
DEFAULT_AGENCY_DAYS = 730
DEFAULT_CA_DAYS = 3650
DEFAULT_CRL_DAYS = 7


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- keys ----------------------------------------------------------------------------------------


def generate_key(key_type: str = "rsa2048") -> PrivateKey:
    """A new private key: ``rsa2048``, ``rsa3072`` or ``p256``."""
    if key_type == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "rsa3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise TrustError(f"unknown key type {key_type!r}; use one of {', '.join(KEY_TYPES)}")


def key_to_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (the caller writes it with 0600 permissions)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_to_pem(cert: x509.Certificate) -> bytes:
    """PEM text of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def crl_to_pem(crl: x509.CertificateRevocationList) -> bytes:
    """PEM text of a CRL."""
    return crl.public_bytes(serialization.Encoding.PEM)


# --- certificates and CRLs -----------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name[:64]),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        ]
    )


def _ca_builder(  # noqa: PLR0917 - private, called twice with every field spelled out
    subject: x509.Name,
    issuer: x509.Name,
    key: PrivateKey,
    issuer_key: PrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    path_length: int | None,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )


def init_ca(
    name: str = "edoc_axis Test Root CA",
    *,
    key_type: str = "rsa2048",
    days: int = DEFAULT_CA_DAYS,
    not_before: dt.datetime | None = None,
) -> tuple[PrivateKey, x509.Certificate]:
    """A self-signed root CA key and certificate."""
    key = generate_key(key_type)
    start = not_before or _now() - dt.timedelta(minutes=5)
    subject = _name(name)
    builder = _ca_builder(subject, subject, key, key, start, start + dt.timedelta(days=days), None)
    return key, builder.sign(key, hashes.SHA256())


def issue_intermediate(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    name: str = "edoc_axis Test Issuing CA",
    *,
    key_type: str = "rsa2048",
    days: int = DEFAULT_CA_DAYS // 2,
) -> tuple[PrivateKey, x509.Certificate]:
    """An intermediate (issuing) CA signed by ``ca_key``, limited to issuing end entities."""
    key = generate_key(key_type)
    start = _now() - dt.timedelta(minutes=5)
    end = min(start + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    builder = _ca_builder(_name(name), ca_cert.subject, key, ca_key, start, end, 0)
    return key, builder.sign(ca_key, hashes.SHA256())


def _leaf_builder(  # noqa: PLR0917 - private, called twice with every field spelled out
    name: str,
    key: PrivateKey,
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    start: dt.datetime,
    days: int,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
) -> x509.CertificateBuilder:
    """An end-entity certificate for ``key`` issued by ``ca_cert``, valid ``days`` from
    ``start``: not a CA, then ``extensions`` (each with its criticality), then the key ids."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    ).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
    )


def issue_agency_certificate(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    organ_id: str,
    name: str,
    *,
    key: PrivateKey | None = None,
    key_type: str = "rsa2048",
    days: int = DEFAULT_AGENCY_DAYS,
    not_before: dt.datetime | None = None,
    key_usage: x509.KeyUsage | None = None,
    extra_organ_ids: Sequence[str] = (),
) -> tuple[PrivateKey, x509.Certificate]:
    """An agency signing certificate binding ``organ_id`` (SAN URI), with a new key by default.

    ``not_before``/``key_usage``/``extra_organ_ids`` exist so tests can make expired, not yet
    valid, wrongly-usable or ambiguous certificates; real issuance leaves them alone.
    """
    key = key or generate_key(key_type)
    start = not_before or _now() - dt.timedelta(minutes=5)
    usage = key_usage or x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    uris = [
        x509.UniformResourceIdentifier(ORGAN_ID_URI_PREFIX + o)
        for o in (organ_id, *extra_organ_ids)
    ]
    builder = _leaf_builder(name, key, ca_key, ca_cert, start, days, [
        (usage, True), (x509.SubjectAlternativeName(uris), False)])
    return key, builder.sign(ca_key, hashes.SHA256())


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue_tls_certificate(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    name: str,
    *,
    hosts: Sequence[str] = (),
    client: bool = False,
    key_type: str = "rsa2048",
    days: int = DEFAULT_AGENCY_DAYS,
) -> tuple[PrivateKey, x509.Certificate]:
    """A TLS certificate with a new key: a server's (``hosts``, DNS names or IP addresses, in
    its subjectAltName; extended key usage serverAuth) or, with ``client``, a client's
    (clientAuth)."""
    key = generate_key(key_type)
    start = _now() - dt.timedelta(minutes=5)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = _leaf_builder(name, key, ca_key, ca_cert, start, days,
                            [(x509.ExtendedKeyUsage([usage]), False)])
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_host_name(h) for h in hosts]), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revoked certificate: its serial and when it was revoked."""

    serial: int
    revoked_at: dt.datetime


def make_crl(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    revoked: Iterable[Revocation] = (),
    *,
    days: int = DEFAULT_CRL_DAYS,
    this_update: dt.datetime | None = None,
    crl_number: int = 1,
) -> x509.CertificateRevocationList:
    """A CRL of ``ca_cert`` listing ``revoked``, valid ``days`` from ``this_update`` (now)."""
    start = this_update or _now() - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(start)
        .next_update(start + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    for item in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(item.serial)
            .revocation_date(item.revoked_at)
            .build()
        )
    return builder.sign(ca_key, hashes.SHA256())
