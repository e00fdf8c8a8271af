"""What a signature must be to be accepted: the signature policy, the algorithm tables, the verdict.

``SignaturePolicy`` is also the ``[signature]`` section of the node's settings
(``edoc_axis.config``), so this module imports neither lxml nor signxml: loading the config
stays cheap. The algorithm tables are the W3C URIs as they appear in ``SignedInfo``;
``trust.xmldsig`` hands the same sets to signxml (a test checks they are signxml's names).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml import etree

_DSIG = "http://www.w3.org/2000/09/xmldsig#"
_DSIG_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
_DSIG11 = "http://www.w3.org/2009/xmldsig11#"
_XMLENC = "http://www.w3.org/2001/04/xmlenc#"
_MGF1 = "http://www.w3.org/2007/05/xmldsig-more#"

RSA_SHA256 = _DSIG_MORE + "rsa-sha256"
ECDSA_SHA256 = _DSIG_MORE + "ecdsa-sha256"
SHA256 = _XMLENC + "sha256"
SHA1 = _DSIG + "sha1"
ENVELOPED = _DSIG + "enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

ALGORITHMS = {"rsa-sha256": RSA_SHA256, "ecdsa-sha256": ECDSA_SHA256}
"""The signature methods ``sign`` writes, by the name callers give."""

STRONG_SIGNATURE_METHODS = frozenset(
    {
        RSA_SHA256,
        _DSIG_MORE + "rsa-sha384",
        _DSIG_MORE + "rsa-sha512",
        ECDSA_SHA256,
        _DSIG_MORE + "ecdsa-sha384",
        _DSIG_MORE + "ecdsa-sha512",
        _MGF1 + "sha256-rsa-MGF1",
        _MGF1 + "sha384-rsa-MGF1",
        _MGF1 + "sha512-rsa-MGF1",
    }
)
SHA1_SIGNATURE_METHODS = frozenset({_DSIG + "rsa-sha1", _DSIG_MORE + "ecdsa-sha1"})
STRONG_DIGESTS = frozenset({SHA256, _DSIG_MORE + "sha384", _XMLENC + "sha512"})
C14N_METHODS = frozenset(
    {
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
        "http://www.w3.org/2006/12/xml-c14n11",
        "http://www.w3.org/2006/12/xml-c14n11#WithComments",
        EXC_C14N,
        EXC_C14N + "WithComments",
    }
)
ALLOWED_TRANSFORMS = C14N_METHODS | {ENVELOPED}


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """What this node demands of signatures and does with unsigned input (the ``[signature]``
    settings; defaults: signed, strong algorithms, fresh CRLs).

    ``verify`` reads ``require_signature``, ``allow_sha1``, ``crl_required`` and
    ``accept_edxml_namespace``; the node also reads whether it signs what is submitted unsigned,
    and whether statuses (``for_status``) may come unsigned.
    """

    require_signature: bool = True
    allow_sha1: bool = False
    crl_required: bool = True
    sign_unsigned_submissions: bool = True
    accept_unsigned_status: bool = False
    accept_edxml_namespace: bool = False

    def for_status(self) -> SignaturePolicy:
        """This policy as applied to status packages: unsigned ones only if accepted."""
        return dataclasses.replace(self, require_signature=not self.accept_unsigned_status)

    @property
    def signature_methods(self) -> frozenset[str]:
        """The SignatureMethod URIs accepted (SHA-1 ones only by the legacy switch)."""
        if self.allow_sha1:
            return STRONG_SIGNATURE_METHODS | SHA1_SIGNATURE_METHODS
        return STRONG_SIGNATURE_METHODS

    @property
    def digest_methods(self) -> frozenset[str]:
        """The DigestMethod URIs accepted (SHA-1 only by the legacy switch)."""
        return STRONG_DIGESTS | {SHA1} if self.allow_sha1 else STRONG_DIGESTS


@dataclass(slots=True)
class VerificationResult:
    """The verdict on a package that passed; ``signed=False`` means unsigned and allowed."""

    signed: bool
    signed_root: etree._Element
    signer_organ_id: str | None = None
    subject: str | None = None
    serial: str | None = None
    fingerprint: str | None = None
    signature_algorithm: str | None = None
    digest_algorithm: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view (without the tree)."""
        return {
            "valid": True,
            "signed": self.signed,
            "signer_organ_id": self.signer_organ_id,
            "subject": self.subject,
            "serial": self.serial,
            "fingerprint": self.fingerprint,
            "signature_algorithm": self.signature_algorithm,
            "digest_algorithm": self.digest_algorithm,
            "warnings": list(self.warnings),
        }
