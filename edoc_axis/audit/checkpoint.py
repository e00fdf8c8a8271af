"""Checkpoints: signed statements "the chain of this agency had head H at seq N", made and checked.

Every ``CheckpointPolicy`` interval the node signs (seq, head hash, time, OrganId, algorithm,
certificate fingerprint) with its agency key (RSA-PSS-SHA256 or ECDSA-SHA256) and at once
appends a ``checkpoint`` entry whose ``content_sha256`` is the checkpoint's digest, so the
checkpoints are themselves chained into the log (``seal``). Checking one is two questions: does
the signature verify with the embedded certificate (``verify_checkpoint_signature``), and may
that certificate sign for the node (a ``CertificateCheck``: ``trusted_fingerprints`` for the
node's own keys, ``trusted_anchors`` for an auditor holding only the trust anchors).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from edoc_axis.audit.chain import (
    AuditEntry,
    Kind,
    format_time,
    malformed,
    next_entry,
    parse_time,
)
from edoc_axis.errors import ErrorCode, SignatureInvalid
from edoc_axis.trust.certificate import PrivateKey, fingerprint, organ_id_of
from edoc_axis.trust.chain import TrustStore

_CHECKPOINT_TAG = b"edoc-axis/audit-checkpoint/1\x00"
RSA_PSS_SHA256 = "rsa-pss-sha256"
ECDSA_SHA256 = "ecdsa-sha256"
ALGORITHMS = (RSA_PSS_SHA256, ECDSA_SHA256)


# --- making them ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement "the chain of ``organ_id`` had head ``head_hash`` at ``seq``"."""

    seq: int
    head_hash: str
    at: str
    organ_id: str
    algorithm: str
    signature: bytes
    cert_der: bytes

    @property
    def cert_fingerprint(self) -> str:
        """SHA-256 hex of the signer certificate's DER."""
        return hashlib.sha256(self.cert_der).hexdigest()

    def signed_payload(self) -> bytes:
        """The canonical bytes the signature covers (binds the certificate too)."""
        parts = [_CHECKPOINT_TAG, self.seq.to_bytes(8, "big")]
        fields = (self.head_hash, self.at, self.organ_id, self.algorithm, self.cert_fingerprint)
        for value in fields:
            raw = value.encode("utf-8")
            parts.append(len(raw).to_bytes(4, "big"))
            parts.append(raw)
        return b"".join(parts)

    @property
    def digest(self) -> str:
        """SHA-256 hex of payload and signature: the ``content_sha256`` of its chain entry."""
        return hashlib.sha256(self.signed_payload() + self.signature).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (signature and certificate as hex)."""
        return {
            "seq": self.seq, "head_hash": self.head_hash, "at": self.at,
            "organ_id": self.organ_id, "algorithm": self.algorithm,
            "signature": self.signature.hex(), "cert_der": self.cert_der.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """A checkpoint from ``to_dict`` output; raises ``EdocAxisError(AUDIT_MALFORMED)``."""
        try:
            seq = data["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise TypeError("seq")
            head_hash, at, organ_id, algorithm = (
                data[k] for k in ("head_hash", "at", "organ_id", "algorithm")
            )
            if not all(isinstance(t, str) for t in (head_hash, at, organ_id, algorithm)):
                raise TypeError("text field")
            return cls(
                seq, head_hash, at, organ_id, algorithm, bytes.fromhex(data["signature"]),
                bytes.fromhex(data["cert_der"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise malformed(f"malformed checkpoint ({exc})") from exc


def make_checkpoint(
    head: AuditEntry,
    key: PrivateKey,
    cert: x509.Certificate,
    organ_id: str,
    *,
    at: dt.datetime | None = None,
) -> Checkpoint:
    """Sign ``head`` (its seq and entry hash) with the agency key."""
    algorithm = RSA_PSS_SHA256 if isinstance(key, rsa.RSAPrivateKey) else ECDSA_SHA256
    unsigned = Checkpoint(
        head.seq, head.entry_hash, format_time(at), organ_id, algorithm, b"",
        cert.public_bytes(Encoding.DER),
    )
    payload = unsigned.signed_payload()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(payload, pss_padding(), hashes.SHA256())
    else:
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    return Checkpoint(
        unsigned.seq, unsigned.head_hash, unsigned.at, organ_id, algorithm, signature,
        unsigned.cert_der,
    )


def pss_padding() -> padding.PSS:
    """The RSA-PSS parameters of checkpoint signatures (signing and verifying must agree)."""
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def seal(
    head: AuditEntry,
    key: PrivateKey,
    cert: x509.Certificate,
    organ_id: str,
    *,
    genesis: str,
    at: dt.datetime | None = None,
) -> tuple[Checkpoint, AuditEntry]:
    """A checkpoint of ``head`` and the ``checkpoint`` entry that chains it into the log.

    Store both in the transaction that appended ``head``.
    """
    checkpoint = make_checkpoint(head, key, cert, organ_id, at=at)
    entry = next_entry(
        head, kind=Kind.CHECKPOINT, genesis=genesis, at=checkpoint.at,
        content_sha256=checkpoint.digest, signer=checkpoint.cert_fingerprint,
        detail=str(checkpoint.seq),
    )
    return checkpoint, entry


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """Seal the chain after ``every_entries`` new entries or ``every_seconds``, whichever first.

    ``due`` is asked at each append and, while a node runs, by its timer every
    ``timer_seconds`` (``audit.sealing``), so no entry of a running node stays unsealed much
    longer than the interval; a clean stop seals what is left. ``overdue_seconds`` is the age
    past which an unsealed entry means sealing did not happen (the node was killed, or
    checkpoints were removed): the interval, one timer period, and a clock allowance of a
    minute (no more than the interval itself).
    """

    every_entries: int = 1000
    every_seconds: float = 300.0

    @property
    def timer_seconds(self) -> float:
        """How often a running node asks ``due`` without a new entry: a quarter of the
        interval, between 0.05 and 15 s."""
        return min(max(self.every_seconds / 4, 0.05), 15.0)

    @property
    def overdue_seconds(self) -> float:
        """The age past which an unsealed entry is a finding of ``audit verify``."""
        return self.every_seconds + self.timer_seconds + min(60.0, self.every_seconds)

    def due(
        self, last: Checkpoint | None, head: AuditEntry | None, *, now: dt.datetime | None = None
    ) -> bool:
        """Whether to ``seal(head)`` now; call after every append, in the same transaction."""
        if head is None:
            return False
        if last is None:
            return head.kind != Kind.CHECKPOINT
        if head.seq <= last.seq or (head.kind == Kind.CHECKPOINT and head.seq == last.seq + 1):
            return False
        if head.seq - last.seq >= self.every_entries:
            return True
        moment = now or parse_time(head.at)
        return (moment - parse_time(last.at)).total_seconds() >= self.every_seconds


# --- checking them ---------------------------------------------------------------------


def verify_checkpoint_signature(checkpoint: Checkpoint) -> x509.Certificate:
    """Check the signature against the embedded certificate; return that certificate.

    Raises ``SignatureInvalid(AUDIT_CHECKPOINT_SIGNATURE)``. Whether the certificate is
    trusted is a separate question (a ``CertificateCheck``).
    """
    code = ErrorCode.AUDIT_CHECKPOINT_SIGNATURE
    try:
        cert = x509.load_der_x509_certificate(checkpoint.cert_der)
        public = cert.public_key()
    except ValueError as exc:
        raise SignatureInvalid(f"checkpoint certificate unreadable ({exc})", code=code) from exc
    payload = checkpoint.signed_payload()
    try:
        if checkpoint.algorithm == RSA_PSS_SHA256 and isinstance(public, rsa.RSAPublicKey):
            public.verify(checkpoint.signature, payload, pss_padding(), hashes.SHA256())
        elif checkpoint.algorithm == ECDSA_SHA256 and isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(checkpoint.signature, payload, ec.ECDSA(hashes.SHA256()))
        else:
            raise SignatureInvalid(
                f"checkpoint algorithm {checkpoint.algorithm!r} does not fit its key", code=code
            )
    except InvalidSignature as exc:
        raise SignatureInvalid("checkpoint signature does not verify", code=code) from exc
    return cert


CertificateCheck = Callable[[x509.Certificate, Checkpoint], None]
"""Accept the certificate that signed a checkpoint, or raise ``SignatureInvalid``."""


def trusted_fingerprints(fingerprints: Iterable[str], organ_id: str) -> CertificateCheck:
    """Accept only these certificates (the node's own, e.g. from the agency directory)."""
    allowed = frozenset(fingerprints)

    def check(cert: x509.Certificate, checkpoint: Checkpoint) -> None:
        if checkpoint.organ_id != organ_id:
            raise SignatureInvalid(
                f"checkpoint is of {checkpoint.organ_id}, not {organ_id}",
                code=ErrorCode.AUDIT_CHECKPOINT_SIGNATURE, agency=checkpoint.organ_id,
            )
        if fingerprint(cert) not in allowed:
            raise SignatureInvalid(
                f"checkpoint signed by certificate {fingerprint(cert)}, not one of the node's",
                code=ErrorCode.AUDIT_CHECKPOINT_SIGNATURE, agency=checkpoint.organ_id,
            )

    return check


def trusted_anchors(store: TrustStore, organ_id: str | None = None) -> CertificateCheck:
    """Accept certificates chaining to ``store``'s anchors that bind the checkpoint's OrganId.

    Validity is judged at the checkpoint's own time (an archive is verified years later, after
    the certificate expired); missing CRLs are tolerated, a listed revocation is not.
    """

    def check(cert: x509.Certificate, checkpoint: Checkpoint) -> None:
        try:
            when = parse_time(checkpoint.at)
        except ValueError as exc:
            raise SignatureInvalid(
                f"checkpoint time {checkpoint.at!r} is malformed",
                code=ErrorCode.AUDIT_CHECKPOINT_SIGNATURE,
            ) from exc
        store.validate(cert, crl_required=False, at=when)
        bound = organ_id_of(cert)
        wanted = organ_id or checkpoint.organ_id
        if bound != checkpoint.organ_id or bound != wanted:
            raise SignatureInvalid(
                f"checkpoint certificate binds OrganId {bound}, checkpoint says "
                f"{checkpoint.organ_id}",
                code=ErrorCode.AUDIT_CHECKPOINT_SIGNATURE, agency=checkpoint.organ_id,
            )

    return check
