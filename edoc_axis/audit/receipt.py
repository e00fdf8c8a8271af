"""Receipt verification: the signed bytes behind an audit entry hold, signed by whom it names.

An entry of a signed kind records the SHA-256 of the exact bytes (``content_sha256``) and the
signer's certificate fingerprint. The bytes must still hash to it, their XML signature must
verify, and the signer must be this node for what it sent and the counterpart for what it
received. Receipts are judged as of the time their entry was recorded (``verify``'s ``as_of``):
a certificate that has since expired, or was revoked later, does not void a receipt signed while
it was good.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

from edoc_axis.audit.chain import OUTGOING_KINDS, SIGNED_KINDS, AuditEntry, Kind, parse_time
from edoc_axis.audit.log import AuditLog
from edoc_axis.errors import EdocAxisError
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.policy import SignaturePolicy
from edoc_axis.trust.signature import verify


def check_signed_bytes(
    entry: AuditEntry, body: bytes, trust: TrustStore, policy: SignaturePolicy, organ_id: str,
    *, signers: dict[str, Signer] | None = None,
) -> str | None:
    """Why ``body`` is not a valid signature by the party ``entry`` names (None when it is).

    The signer must be this node (``organ_id``) for what it sent and the counterpart for what
    it received; when the entry recorded a certificate fingerprint, it must be that one. A
    signature that holds adds its certificate's ``Signer`` to ``signers`` (by fingerprint).
    """
    if hashlib.sha256(body).hexdigest() != entry.content_sha256:
        return "the stored signed bytes do not hash to the entry's content_sha256"
    expected = organ_id if entry.kind in OUTGOING_KINDS else entry.counterpart
    try:
        result = verify(body, trust, policy, as_of=parse_time(entry.at))
    except EdocAxisError as exc:
        return f"signature does not hold ({exc.code}: {exc.message})"
    if not result.signed:
        return None if not policy.require_signature else "the stored package is not signed"
    if result.signer_organ_id != expected:
        return (f"signed by {result.signer_organ_id} (certificate {result.fingerprint}), "
                f"not by {expected}")
    if entry.signer and result.fingerprint != entry.signer:
        return (f"signed by certificate {result.fingerprint}, the entry recorded "
                f"{entry.signer}")
    if signers is not None and result.fingerprint:
        signers[result.fingerprint] = Signer(result.signer_organ_id, _common_name(result.subject))
    return None


@dataclass(frozen=True, slots=True)
class Signer:
    """Who a certificate names: its agency OrganId and the subject's common name."""

    organ_id: str | None
    name: str | None


def _common_name(subject: str | None) -> str | None:
    """The CN of an RFC 4514 subject string (the whole subject when it has none)."""
    if not subject:
        return None
    match = re.search(r"(?:^|,)CN=((?:[^,\\]|\\.)+)", subject)
    return match.group(1).replace("\\", "") if match else subject


class StoredReceipts:
    """The ``ReceiptVerifier`` of a node's live log: the stored bytes behind each signed entry
    exist and hold, under the node's signature policy (CRLs not required: the audit judges
    receipts long after the fact, and a listed revocation still fails)."""

    def __init__(self, log: AuditLog, trust: TrustStore, policy: SignaturePolicy) -> None:
        self.log = log
        self.trust = trust
        self.receipt_policy = replace(policy, crl_required=False)
        self.status_policy = self.receipt_policy.for_status()

    def __call__(self, entry: AuditEntry) -> str | None:
        """Why the signed bytes behind ``entry`` do not hold, or None."""
        if entry.content_sha256 is None:
            return None
        if entry.kind not in SIGNED_KINDS and entry.kind != Kind.REJECTED:
            return None
        body = self.log.signed_bytes(entry.content_sha256)
        if body is None:
            return (f"the signed bytes (sha256 {entry.content_sha256[:16]}...) are not in the "
                    "store: deleted or altered")
        if entry.kind == Kind.REJECTED:
            return None  # refused bytes are kept as evidence; their signature failed by design
        policy = self.status_policy if "status" in entry.kind else self.receipt_policy
        return check_signed_bytes(entry, body, self.trust, policy, self.log.organ_id)
