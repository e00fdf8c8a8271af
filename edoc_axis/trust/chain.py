"""Chain and CRL validation of signer certificates, with a cache of verdicts (``TrustStore``).

``TrustStore`` validates a signer certificate: validity period, key usage, a path to a configured
anchor (``cryptography.x509.verification``), and revocation against the configured CRLs (fail
closed when the CRL of an issuer is missing or stale, unless the caller says otherwise). A
successful validation is cached per certificate fingerprint until the earliest of: the CRLs'
nextUpdate, any chain certificate's notAfter; so a busy node validates each chain once.
Failures raise ``SignatureInvalid`` with a specific ``CERT_*``/``CRL_*`` code.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509 import verification

from edoc_axis.errors import ErrorCode, SignatureInvalid, TrustError
from edoc_axis.trust.certificate import (
    fingerprint,
    load_certificates,
    load_crls,
    organ_id_of,
    subject_of,
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class ValidatedChain:
    """A signer certificate that passed every check, and until when that verdict holds."""

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    fingerprint: str
    organ_id: str | None
    valid_until: dt.datetime
    warnings: tuple[str, ...] = ()


@dataclass(slots=True)
class _CacheEntry:
    chain: ValidatedChain
    valid_from: dt.datetime


def _fail(
    code: ErrorCode, message: str, cert: x509.Certificate | None = None
) -> SignatureInvalid:
    if cert is not None:
        message = f"{message} [subject {subject_of(cert)}, serial {cert.serial_number:x}]"
    return SignatureInvalid(message, code=code, element="Signature/KeyInfo/X509Data")


@dataclass
class TrustStore:
    """Trust anchors (root CAs), extra intermediates and CRLs, with cached chain validation.

    Build it once (``TrustStore.from_pem(...)`` or the constructor) and share it: validation
    results are cached per signer certificate and are thread-safe to read.
    """

    anchors: Sequence[x509.Certificate]
    crls: Sequence[x509.CertificateRevocationList] = ()
    intermediates: Sequence[x509.Certificate] = ()
    max_chain_depth: int = 4
    cache_size: int = 4096
    _cache: dict[tuple[str, tuple[str, ...], bool], _CacheEntry] = field(
        default_factory=dict, init=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _crls_by_issuer: dict[bytes, list[x509.CertificateRevocationList]] = field(
        default_factory=dict, init=False, repr=False
    )
    _store: verification.Store | None = field(default=None, init=False, repr=False)
    _fingerprints: dict[int, tuple[x509.Certificate, str]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if not self.anchors:
            raise TrustError("no trust anchors configured", code=ErrorCode.TRUST_NO_ANCHORS)
        self._store = verification.Store(list(self.anchors))
        for crl in self.crls:
            self._crls_by_issuer.setdefault(crl.issuer.public_bytes(), []).append(crl)

    @classmethod
    def from_pem(
        cls,
        anchors: Iterable[bytes],
        crls: Iterable[bytes] = (),
        intermediates: Iterable[bytes] = (),
    ) -> TrustStore:
        """A store from PEM contents of anchor files, CRL files and intermediate files."""
        return cls(
            anchors=[c for data in anchors for c in load_certificates(data)],
            crls=[c for data in crls for c in load_crls(data)],
            intermediates=[c for data in intermediates for c in load_certificates(data)],
        )

    def validate(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate] = (),
        *,
        crl_required: bool = True,
        at: dt.datetime | None = None,
        as_of: dt.datetime | None = None,
    ) -> ValidatedChain:
        """Check ``leaf`` fully, or raise ``SignatureInvalid`` with a ``CERT_*``/``CRL_*`` code.

        ``crl_required=False`` turns a missing or stale CRL into a warning (fail open); a CRL
        that is present and fresh and lists the certificate still rejects it.

        ``at`` stands in for the current time. ``as_of`` judges the certificate as of an earlier
        time (an auditor checking a receipt signed years ago): validity and chain at ``as_of``,
        revocation by the CRLs fresh at ``at``, counting only revocations dated at or before
        ``as_of``. Such checks bypass the cache.
        """
        now = at or _now()
        fp = self._fingerprint(leaf)
        if as_of is not None:
            return self._validate_uncached(
                leaf, list(intermediates), fp, crl_required, as_of, crl_now=now
            )
        key = (fp, tuple(self._fingerprint(c) for c in intermediates), crl_required)
        with self._lock:
            entry = self._cache.get(key)
        if entry is not None and entry.valid_from <= now < entry.chain.valid_until:
            return entry.chain
        chain = self._validate_uncached(leaf, list(intermediates), fp, crl_required, now)
        with self._lock:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[key] = _CacheEntry(chain, valid_from=leaf.not_valid_before_utc)
        return chain

    def _fingerprint(self, cert: x509.Certificate) -> str:
        # Callers (signature.verify) hand in the same parsed object for the same certificate
        # text; hashing its DER costs more than everything else on the cached path.
        entry = self._fingerprints.get(id(cert))
        if entry is not None and entry[0] is cert:
            return entry[1]
        fp = fingerprint(cert)
        if len(self._fingerprints) >= self.cache_size:
            self._fingerprints.clear()
        self._fingerprints[id(cert)] = (cert, fp)
        return fp

    def _validate_uncached(
        self,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        fp: str,
        crl_required: bool,
        now: dt.datetime,
        *,
        crl_now: dt.datetime | None = None,
    ) -> ValidatedChain:
        if now < leaf.not_valid_before_utc:
            raise _fail(
                ErrorCode.CERT_NOT_YET_VALID,
                f"certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M}Z",
                leaf,
            )
        if now > leaf.not_valid_after_utc:
            raise _fail(
                ErrorCode.CERT_EXPIRED,
                f"certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M}Z",
                leaf,
            )
        _check_signing_usage(leaf)
        try:
            builder = (
                verification.PolicyBuilder()
                .store(self._store)  # type: ignore[arg-type]
                .time(now)
                .max_chain_depth(self.max_chain_depth)
                .extension_policies(
                    ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                    ee_policy=verification.ExtensionPolicy.permit_all(),
                )
            )
            verified = builder.build_client_verifier().verify(
                leaf, [*intermediates, *self.intermediates]
            )
        except verification.VerificationError as exc:
            raise _fail(
                ErrorCode.CERT_UNTRUSTED,
                f"certificate does not chain to a configured trust anchor ({exc})",
                leaf,
            ) from exc
        chain = tuple(verified.chain)
        warnings: list[str] = []
        valid_until = min(c.not_valid_after_utc for c in chain)
        # Revocation of every certificate but the anchor, each against its issuer's CRL.
        for cert, issuer in itertools.pairwise(chain):
            crl_until, warning = self._check_revocation(
                cert, issuer, crl_required, crl_now or now, revoked_by=now
            )
            if warning:
                warnings.append(warning)
            if crl_until is not None:
                valid_until = min(valid_until, crl_until)
        return ValidatedChain(
            leaf=leaf,
            chain=chain,
            fingerprint=fp,
            organ_id=organ_id_of(leaf),
            valid_until=valid_until,
            warnings=tuple(warnings),
        )

    def _check_revocation(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        crl_required: bool,
        now: dt.datetime,
        *,
        revoked_by: dt.datetime,
    ) -> tuple[dt.datetime | None, str | None]:
        """Check ``cert`` against its issuer's CRL: freshness at ``now``, and revocations dated
        at or before ``revoked_by`` (``now`` on a live check, the signing time for an audit)."""
        candidates = []
        for crl in self._crls_by_issuer.get(cert.issuer.public_bytes(), []):
            try:
                if crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                    candidates.append(crl)
            except (InvalidSignature, TypeError, ValueError):
                continue
        if not candidates:
            msg = f"no CRL of issuer {subject_of(issuer)} is configured"
            if crl_required:
                raise _fail(ErrorCode.CRL_MISSING, msg + "; cannot tell whether it is revoked",
                            cert)
            # Without a CRL the verdict may change any time: do not cache it for long.
            return now + dt.timedelta(minutes=5), msg + " (revocation not checked)"
        crl = max(candidates, key=lambda c: c.last_update_utc)
        next_update = crl.next_update_utc
        if (
            next_update is None
            or next_update < now
            or crl.last_update_utc > now + dt.timedelta(minutes=5)
        ):
            msg = f"the CRL of {subject_of(issuer)} is out of date (next update {next_update})"
            if crl_required:
                raise _fail(ErrorCode.CRL_EXPIRED, msg, cert)
            stale: str | None = msg + " (used anyway by policy)"
        else:
            stale = None
        revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if revoked is not None and revoked.revocation_date_utc <= revoked_by:
            raise _fail(
                ErrorCode.CERT_REVOKED,
                f"certificate revoked on {revoked.revocation_date_utc:%Y-%m-%d}",
                cert,
            )
        if stale is not None:  # an out-of-date CRL's verdict is cached only briefly
            return now + dt.timedelta(minutes=5), stale
        return next_update, None


def _check_signing_usage(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise _fail(ErrorCode.CERT_KEY_USAGE, "certificate has no key usage extension",
                    cert) from None
    except ValueError as exc:
        raise _fail(
            ErrorCode.CERT_KEY_USAGE, f"certificate extensions are malformed ({exc})", cert
        ) from exc
    if not (usage.digital_signature and usage.content_commitment):
        raise _fail(
            ErrorCode.CERT_KEY_USAGE,
            "certificate key usage must include digitalSignature and nonRepudiation",
            cert,
        )
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return
    if basic.ca:
        raise _fail(ErrorCode.CERT_KEY_USAGE, "a CA certificate cannot sign packages", cert)
