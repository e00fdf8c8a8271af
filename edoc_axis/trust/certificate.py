"""Certificates of agencies: reading PEM material, and what a certificate says about its holder.

How an agency's OrganId is bound in its certificate (the one documented way): the certificate
carries a subjectAltName URI ``urn:qcvn102:organid:<OrganId>`` (e.g.
``urn:qcvn102:organid:000.00.00.G22``). Exactly one such URI must be present; the subject DN is
only for humans (CN = agency name, O = agency name, C = VN). ``organ_id_of`` reads the URI.
Validating a certificate (chain, CRL) is ``trust.chain``'s job; issuing test certificates is the
dev PKI's (``ops.pki``), which builds on the names here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edoc_axis.errors import ErrorCode, TrustError

ORGAN_ID_URI_PREFIX = "urn:qcvn102:organid:"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
"""The signing keys an agency may hold: RSA (2048 bits or more) or EC (P-256)."""

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


# --- identity of a certificate -------------------------------------------------------------------


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex (the form the agency directory lists)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def organ_ids_of(cert: x509.Certificate) -> list[str]:
    """Every OrganId bound in the certificate by a ``urn:qcvn102:organid:`` SAN URI."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    except ValueError:  # a malformed extension: treat as carrying no identity
        return []
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return [u[len(ORGAN_ID_URI_PREFIX) :] for u in uris if u.startswith(ORGAN_ID_URI_PREFIX)]


def organ_id_uri(organ_id: str) -> str:
    """The SAN URI binding ``organ_id``, e.g. ``urn:qcvn102:organid:000.00.00.G22``: also the
    broker user of an agency that logs in with its certificate (see ``broker_login_of``)."""
    return ORGAN_ID_URI_PREFIX + organ_id


def broker_login_of(cert: x509.Certificate) -> str | None:
    """The broker user a certificate logs in as with EXTERNAL: RabbitMQ (3.10+, configured
    ``ssl_cert_login_from = subject_alternative_name``, ``ssl_cert_login_san_type = uri``,
    ``ssl_cert_login_san_index = 0``) takes the first SAN URI; None when there is none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def organ_id_of(cert: x509.Certificate) -> str | None:
    """The agency OrganId the certificate is issued to, or None when absent or ambiguous."""
    ids = set(organ_ids_of(cert))
    return ids.pop() if len(ids) == 1 else None


def subject_of(cert: x509.Certificate) -> str:
    """The certificate subject as an RFC 4514 string (``<invalid subject>`` if undecodable)."""
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "<invalid subject>"


def key_matches(key: PrivateKey, cert: x509.Certificate) -> bool:
    """Whether ``key`` is the private half of ``cert``'s public key."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


# --- PEM files -----------------------------------------------------------------------------------


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in PEM ``data`` (``TrustError`` when there is none or one is bad)."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TrustError(f"cannot read PEM certificates: {exc}",
                         code=ErrorCode.TRUST_BAD_CERT) from exc
    return certs


def certificate_files(folder: Path) -> Iterator[tuple[Path, list[x509.Certificate], str | None]]:
    """Each ``.pem``/``.crt``/``.cer`` file under ``folder`` (recursively, sorted) that holds a
    PEM certificate, with its certificates, or with none and why they could not be read."""
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".pem", ".crt", ".cer") or not path.is_file():
            continue
        data = path.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" not in data:
            continue
        try:
            yield path, load_certificates(data), None
        except TrustError as exc:
            yield path, [], exc.message


def load_certificate(data: bytes) -> x509.Certificate:
    """The first certificate in PEM ``data``."""
    return load_certificates(data)[0]


def load_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """Every CRL in ``data`` (PEM, possibly several blocks, or one DER CRL)."""
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(data) if m.group(1) == b"X509 CRL"]
    try:
        if blocks:
            return [x509.load_pem_x509_crl(b) for b in blocks]
        return [x509.load_der_x509_crl(data)]
    except ValueError as exc:
        raise TrustError(f"cannot read CRL: {exc}", code=ErrorCode.TRUST_BAD_CRL) from exc


def load_private_key(data: bytes, password: bytes | None = None) -> PrivateKey:
    """An RSA or EC private key from PEM ``data``."""
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise TrustError(f"cannot read private key: {exc}", code=ErrorCode.TRUST_BAD_KEY) from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TrustError("only RSA and EC private keys are supported", code=ErrorCode.TRUST_BAD_KEY)
    return key


# --- a summary for people ------------------------------------------------------------------------


def certificate_summary(
    cert: x509.Certificate, *, at: dt.datetime | None = None
) -> dict[str, object]:
    """What ``pki show`` prints: subject, OrganId, serial, fingerprint, validity, days left."""
    now = at or dt.datetime.now(dt.UTC)
    return {
        "subject": subject_of(cert),
        "issuer": cert.issuer.rfc4514_string(),
        "organ_id": organ_id_of(cert),
        "serial": f"{cert.serial_number:x}",
        "fingerprint_sha256": fingerprint(cert),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_to_expiry": (cert.not_valid_after_utc - now).days,
        "key": _describe_key(cert),
    }


def _describe_key(cert: x509.Certificate) -> str:
    pub = cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        return f"RSA-{pub.key_size}"
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return f"EC-{pub.curve.name}"
    return type(pub).__name__
