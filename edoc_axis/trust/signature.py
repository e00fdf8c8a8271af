"""XML digital signatures of edXML packages: sign, and verify down to the sending agency.

A signature here is an enveloped XML-DSig ``Signature`` placed as the last child of
``edXMLHeader``: one ``Reference URI=""`` over the whole package, transforms
enveloped-signature + exclusive c14n, RSA-SHA256 (default) or ECDSA-SHA256, and the signer
certificate (then any intermediates) in ``KeyInfo/X509Data``.

``verify`` accepts a package only when, in this order: there is exactly one signature, in the
XML-DSig namespace, at its place; it has the expected shape (no ``Object``, one reference to the
whole package, allowed transforms and algorithms); no comment splits a text value (comment
injection); the certificate validates in the ``TrustStore`` (chain, validity, key usage, CRL);
signxml checks the digest and the signature value; the certificate's OrganId equals
``From/OrganId`` read from the *signed* content; and the certificate is in the directory's
allow-list when one is given. Each failure raises ``SignatureInvalid`` with its own code.

A ``Signature`` in the edXML namespace (producers that drop the XML-DSig namespace) is refused
with ``SIG_WRONG_NAMESPACE`` by default. With ``SignaturePolicy(accept_edxml_namespace=True)``
it is read as XML-DSig (elements renamed into the XML-DSig namespace, which the enveloped
transform removes from the digest anyway) and verified; success carries a warning, failure says
that even so read it does not verify.

Each entry point has a bytes form (``sign``, ``verify``: parsed here by ``edxml.parser``) and a
tree form (``sign_tree``, ``verify_tree``) for a caller that already holds the parsed package.
This module orchestrates; the checks are ``trust.structure``'s, the cryptography
``trust.xmldsig``'s (signxml) and ``trust.chain``'s (certificates).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Collection, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from edoc_axis.edxml.limits import DEFAULT_LIMITS, XmlLimits
from edoc_axis.edxml.model import DSIG_NS, NS
from edoc_axis.edxml.parser import parse_xml
from edoc_axis.errors import ErrorCode, SignatureInvalid, TrustError
from edoc_axis.trust import structure
from edoc_axis.trust.certificate import PrivateKey, load_certificates, load_private_key, subject_of
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.policy import ALGORITHMS, SignaturePolicy, VerificationResult
from edoc_axis.trust.structure import invalid
from edoc_axis.trust.xmldsig import check_signature_value, sign_enveloped

_DEFAULT_POLICY = SignaturePolicy()


def _bytes(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


# --- signing -------------------------------------------------------------------------------------


def sign(
    data: bytes,
    key: PrivateKey | bytes,
    cert: x509.Certificate | bytes,
    *,
    chain: Sequence[x509.Certificate] = (),
    algorithm: str | None = None,
    limits: XmlLimits = DEFAULT_LIMITS,
) -> bytes:
    """Sign an unsigned package (document or status) and return the signed bytes.

    ``algorithm`` is ``"rsa-sha256"`` or ``"ecdsa-sha256"``; by default it follows the key type.
    """
    root = parse_xml(data, limits).getroot()
    return sign_tree(root, key, cert, chain=chain, algorithm=algorithm)[0]


def sign_tree(
    root: etree._Element,
    key: PrivateKey | bytes,
    cert: x509.Certificate | bytes,
    *,
    chain: Sequence[x509.Certificate] = (),
    algorithm: str | None = None,
) -> tuple[bytes, etree._Element]:
    """``sign`` for a package the caller holds as a tree (parsed by ``edxml.parser`` or built
    by the edXML writer): the signed bytes and the signed tree they serialise (a new tree).

    During the call a placeholder ``Signature`` sits in ``root``'s header; it is taken out
    again, also on failure, so ``root`` ends as it began. Let no other thread read ``root``
    meanwhile.
    """
    private_key = load_private_key(key) if isinstance(key, bytes) else key
    signer_cert = load_certificates(cert)[0] if isinstance(cert, bytes) else cert
    if algorithm is None:
        algorithm = (
            "ecdsa-sha256" if isinstance(private_key, ec.EllipticCurvePrivateKey) else "rsa-sha256"
        )
    if algorithm not in ALGORITHMS:
        raise TrustError(
            f"unknown signature algorithm {algorithm!r}; use one of {sorted(ALGORITHMS)}"
        )
    wants_ec = algorithm.startswith("ecdsa")
    if wants_ec != isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
        private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    ):
        raise TrustError(f"the key type does not fit algorithm {algorithm}",
                         code=ErrorCode.TRUST_BAD_KEY)
    if signer_cert.public_key() != private_key.public_key():
        raise TrustError("the certificate does not belong to the private key",
                         code=ErrorCode.TRUST_BAD_KEY)

    header = structure.header_of(root)
    if structure.is_signed(root):
        raise SignatureInvalid(
            "the package is already signed; sign only unsigned packages",
            code=ErrorCode.SIG_ALREADY_SIGNED,
            element="Signature",
        )
    placeholder = etree.SubElement(
        header, f"{{{DSIG_NS}}}Signature", Id="placeholder", nsmap={"ds": DSIG_NS}
    )
    previous = placeholder.getprevious()
    if previous is not None:  # keep the file's indentation: the signature goes on its own line
        placeholder.tail, previous.tail = previous.tail, header.text
    try:
        signed = sign_enveloped(root, private_key, [signer_cert, *chain], ALGORITHMS[algorithm])
    finally:
        if previous is not None:
            previous.tail = placeholder.tail
        header.remove(placeholder)
    return _bytes(signed), signed


# --- verification --------------------------------------------------------------------------------


def verify(
    data: bytes,
    trust: TrustStore,
    policy: SignaturePolicy = _DEFAULT_POLICY,
    *,
    allowed_fingerprints: Collection[str] | None = None,
    limits: XmlLimits = DEFAULT_LIMITS,
    as_of: dt.datetime | None = None,
) -> VerificationResult:
    """Verify a package's signature and its binding to ``From``; raise ``SignatureInvalid``.

    ``allowed_fingerprints`` (SHA-256 hex) are the sender's certificates in the agency
    directory; None means the directory lists none and any trusted certificate may sign.
    ``as_of`` judges the certificate as of that time (an audit of a receipt stored years ago)
    instead of now; see ``TrustStore.validate``.
    Everything after this call must read the package from ``result.signed_root``.
    """
    root = parse_xml(data, limits).getroot()
    return verify_tree(root, trust, policy, allowed_fingerprints=allowed_fingerprints, as_of=as_of)


def verify_tree(
    root: etree._Element,
    trust: TrustStore,
    policy: SignaturePolicy = _DEFAULT_POLICY,
    *,
    allowed_fingerprints: Collection[str] | None = None,
    as_of: dt.datetime | None = None,
) -> VerificationResult:
    """``verify`` for a package already parsed; nothing is parsed again.

    Precondition: ``root`` is the root of a tree that ``edxml.parser.parse_xml`` built from the
    received bytes (the hardened parser: size and depth bounds, no DTD, no entities, no
    network). Checks here assume what it guarantees. ``root`` is not changed; the signed
    content is read from a private copy into ``result.signed_root``.
    """
    header = structure.header_of(root)
    signatures = structure.find_signatures(root)
    if not signatures:
        if policy.require_signature:
            raise invalid(ErrorCode.SIG_MISSING, "the package is not signed")
        return VerificationResult(signed=False, signed_root=root, warnings=["package is unsigned"])
    if len(signatures) > 1:
        raise invalid(
            ErrorCode.SIG_DUPLICATE,
            f"the package carries {len(signatures)} Signature elements; one is allowed",
        )
    sig = signatures[0]
    structure.check_placement(sig, header)
    warnings: list[str] = []
    candidates: list[bytes | etree._Element] = [root]
    if sig.tag != f"{{{DSIG_NS}}}Signature":
        root, sig, candidates = _as_dsig_readings(root, sig, policy)
        warnings.append(
            "Signature was in the edXML namespace; verified after reading it as XML-DSig"
        )
    sig_alg, digest_alg = structure.check_shape(sig, policy, warnings)
    certs = structure.certificates(sig)
    structure.check_comment_injection(root)
    leaf = structure.leaf_of(certs)
    validated = trust.validate(
        leaf, [c for c in certs if c is not leaf], crl_required=policy.crl_required, as_of=as_of
    )
    warnings.extend(validated.warnings)
    signed_root = check_signature_value(candidates, leaf, policy, as_of)
    sender = structure.signed_sender(signed_root)
    if validated.organ_id is None:
        raise invalid(
            ErrorCode.CERT_NO_ORGAN_ID,
            "the certificate binds no single OrganId (urn:qcvn102:organid: SAN URI)",
        )
    if validated.organ_id != sender:
        raise SignatureInvalid(
            f"signed by {validated.organ_id} but From/OrganId is {sender}",
            code=ErrorCode.SIGNER_MISMATCH,
            agency=sender,
            element="From/OrganId",
        )
    if allowed_fingerprints is not None and validated.fingerprint not in {
        f.lower() for f in allowed_fingerprints
    }:
        raise SignatureInvalid(
            f"certificate {validated.fingerprint} is not listed for {sender} in the directory",
            code=ErrorCode.CERT_NOT_IN_DIRECTORY,
            agency=sender,
            element="Signature/KeyInfo",
        )
    return VerificationResult(
        signed=True,
        signed_root=signed_root,
        signer_organ_id=validated.organ_id,
        subject=_subject(leaf),
        serial=f"{leaf.serial_number:x}",
        fingerprint=validated.fingerprint,
        signature_algorithm=sig_alg,
        digest_algorithm=digest_alg,
        warnings=warnings,
    )


def _as_dsig_readings(
    root: etree._Element, sig: etree._Element, policy: SignaturePolicy
) -> tuple[etree._Element, etree._Element, list[bytes | etree._Element]]:
    """A Signature outside XML-DSig: refused, or (by policy, for the edXML namespace) read as
    XML-DSig in a copy of the package. Returns the copy, its signature and the readings to try.
    """
    namespace = etree.QName(sig).namespace
    if namespace != NS or not policy.accept_edxml_namespace:
        where = "the edXML namespace" if namespace == NS else f"namespace {namespace!r}"
        raise invalid(
            ErrorCode.SIG_WRONG_NAMESPACE,
            f"the Signature is in {where}, not XML-DSig ({DSIG_NS}); "
            "it cannot be verified as an XML digital signature",
        )
    root = copy.deepcopy(root)  # the caller's tree stays as received
    header = structure.header_of(root)
    sig = structure.find_signatures(root)[0]
    # The producer's SignedInfo bytes were most likely in the default XML-DSig namespace
    # (xmlns="...xmldsig#"), else under the usual ds: prefix: try both, nothing else.
    candidates: list[bytes | etree._Element] = []
    for prefix in (None, "ds"):
        dsig = structure.to_dsig_namespace(sig, prefix)
        dsig.tail = sig.tail
        header.replace(sig, dsig)
        sig = dsig
        candidates.append(_bytes(root))
    return root, sig, candidates


# Subject lines by certificate (a node sees the same few agency certificates over and over).
_SUBJECTS: dict[int, tuple[x509.Certificate, str]] = {}


def _subject(cert: x509.Certificate) -> str:
    entry = _SUBJECTS.get(id(cert))
    if entry is not None and entry[0] is cert:
        return entry[1]
    subject = subject_of(cert)
    if len(_SUBJECTS) > 4096:
        _SUBJECTS.clear()
    _SUBJECTS[id(cert)] = (cert, subject)
    return subject
