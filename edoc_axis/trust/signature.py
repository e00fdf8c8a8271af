"""XML digital signatures of edXML packages: sign, and verify down to the sending agency.

The only module that imports signxml. A signature here is an enveloped XML-DSig ``Signature``
placed as the last child of ``edXMLHeader``: one ``Reference URI=""`` over the whole package,
transforms enveloped-signature + exclusive c14n, RSA-SHA256 (default) or ECDSA-SHA256, and the
signer certificate (then any intermediates) in ``KeyInfo/X509Data``.

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
"""

from __future__ import annotations

import binascii
import copy
import dataclasses
import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, SignXMLException
from signxml.exceptions import InvalidSignature as SignXMLInvalidSignature
from signxml.signer import XMLSigner
from signxml.util import SigningSettings, ds_tag, strip_pem_header
from signxml.util import namespaces as dsig_namespaces
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from edoc_axis.edxml.limits import DEFAULT_LIMITS, XmlLimits
from edoc_axis.edxml.parser import parse_xml
from edoc_axis.errors import MalformedPackage, SignatureInvalid, TrustError
from edoc_axis.trust.certificate import (
    PrivateKey,
    TrustStore,
    load_certificates,
    load_private_key,
    subject_of,
)

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
_E = "{%s}" % NS  # noqa: UP031 - Clark notation prefix
_D = "{%s}" % DSIG_NS  # noqa: UP031
_SIG_LOCATION = f"./{_E}edXMLEnvelope/{_E}edXMLHeader/"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0

ALGORITHMS = {
    "rsa-sha256": SignatureMethod.RSA_SHA256,
    "ecdsa-sha256": SignatureMethod.ECDSA_SHA256,
}
_STRONG_SIGNATURE_METHODS = frozenset(
    {
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
        SignatureMethod.SHA256_RSA_MGF1,
        SignatureMethod.SHA384_RSA_MGF1,
        SignatureMethod.SHA512_RSA_MGF1,
    }
)
_SHA1_SIGNATURE_METHODS = frozenset({SignatureMethod.RSA_SHA1, SignatureMethod.ECDSA_SHA1})
_STRONG_DIGESTS = frozenset(
    {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
)
_C14N_METHODS = frozenset(m.value for m in CanonicalizationMethod)
_ALLOWED_TRANSFORMS = _C14N_METHODS | {_ENVELOPED}
# Allowed children as Clark names: "{xmldsig#}Name" in the set <=> XML-DSig namespace and name.
_SIGNATURE_CHILDREN = frozenset(f"{_D}{n}" for n in ("SignedInfo", "SignatureValue", "KeyInfo"))
_KEYINFO_CHILDREN = frozenset(f"{_D}{n}" for n in ("X509Data", "KeyName"))
_X509DATA_CHILDREN = frozenset(
    f"{_D}{n}" for n in ("X509Certificate", "X509SubjectName", "X509IssuerSerial", "X509SKI")
)

_SHA1_SIGNATURE_URIS = frozenset(m.value for m in _SHA1_SIGNATURE_METHODS)

_CONFIGS = {
    allow_sha1: SignatureConfiguration(
        location=_SIG_LOCATION,
        expect_references=1,
        signature_methods=_STRONG_SIGNATURE_METHODS
        | (_SHA1_SIGNATURE_METHODS if allow_sha1 else frozenset()),
        digest_algorithms=_STRONG_DIGESTS | ({DigestAlgorithm.SHA1} if allow_sha1 else frozenset()),
    )
    for allow_sha1 in (False, True)
}


_ALLOWED_SIGNATURE_URIS = {
    flag: frozenset(m.value for m in config.signature_methods) for flag, config in _CONFIGS.items()
}
_ALLOWED_DIGEST_URIS = {
    flag: frozenset(d.value for d in config.digest_algorithms) for flag, config in _CONFIGS.items()
}


class _RootCopy(bytes):
    """What ``_RootCopying._tostring`` returns for a document's root element: a note to copy it.

    signxml copies an element only as ``self._fromstring(self._tostring(el))`` (serialise, then
    re-parse), so that removing the enveloped Signature and canonicalizing work on a private
    tree without the original's ancestors. A root element has no ancestors, so lxml's deep copy
    (in C, no text round trip) is the same infoset: same elements, attributes, namespace
    declarations, text, comments and PIs; like the serialisation it leaves out the comments
    and PIs outside the root element, so what signxml canonicalizes and digests is unchanged.
    The bytes value is empty: any other use of it as XML fails loudly instead of reading
    something else. ``test_signature.py`` checks the equivalence under all four c14n methods
    and that signxml still uses ``_tostring`` only in that idiom.
    """

    element: etree._Element

    def __new__(cls, element: etree._Element) -> _RootCopy:
        note = super().__new__(cls, b"")
        note.element = element
        return note


class _RootCopying:
    """signxml's copy idiom with a root element copied in C (see ``_RootCopy``); mixed first."""

    def _tostring(self, xml_node: object, **kwargs: object) -> bytes:
        if (
            not kwargs
            and isinstance(xml_node, etree._Element)
            and xml_node.getparent() is None
            and xml_node.getroottree().getroot() is xml_node
        ):
            return _RootCopy(xml_node)
        return super()._tostring(xml_node, **kwargs)  # type: ignore[misc,no-any-return]

    def _fromstring(self, xml_string: object, **kwargs: object) -> etree._Element:
        if type(xml_string) is _RootCopy and not kwargs:
            return copy.deepcopy(xml_string.element)
        return super()._fromstring(xml_string, **kwargs)  # type: ignore[misc,no-any-return]


_CERT_TEXTS: dict[int, tuple[x509.Certificate, str]] = {}
_DS_TAGS: dict[tuple[bool, str], etree.QName] = {}


def _x509_certificate_text(cert: x509.Certificate) -> str:
    """signxml's own X509Certificate text for ``cert``, computed once per certificate."""
    entry = _CERT_TEXTS.get(id(cert))
    if entry is not None and entry[0] is cert:
        return entry[1]
    text = str(strip_pem_header(cert.public_bytes(Encoding.PEM)))  # type: ignore[no-untyped-call]
    if len(_CERT_TEXTS) > 4096:
        _CERT_TEXTS.clear()
    _CERT_TEXTS[id(cert)] = (cert, text)
    return text


class _Signer(_RootCopying, XMLSigner):
    """signxml's signer, the same output byte for byte (RSA signatures are deterministic, so the
    tests compare whole signed packages with plain ``XMLSigner``'s), minus repeated work:

    - its two copies of the package (signed tree, digest input) are made in C (``_RootCopy``);
    - ``_ds_tag`` without the ``typing.cast(dict[Optional[str], str], ...)`` that built typing
      objects at run time on each of its 14 calls (``cast`` returns its argument unchanged),
      and with its (immutable) QNames made once per tag;
    - ``_add_key_info``, for the one shape ``sign`` uses (certificates, no KeyName, no
      KeyValue, no caller KeyInfo), with each certificate's text (PEM export plus signxml's
      header-stripping regex) cached per certificate; any other shape goes to signxml.
    """

    def _ds_tag(self, tag: str) -> etree.QName:
        default_is_ds = self.namespaces.get(None) == dsig_namespaces.ds  # type: ignore[call-overload]
        name = _DS_TAGS.get((default_is_ds, tag))
        if name is None:  # QNames are immutable: one per tag serves every signature
            name = etree.QName(None, tag) if default_is_ds else ds_tag(tag)  # type: ignore[no-untyped-call]
            _DS_TAGS[default_is_ds, tag] = name
        return name

    def _add_key_info(self, sig_root: etree._Element, signing_settings: SigningSettings) -> None:
        chain = signing_settings.cert_chain
        if (
            self.sign_alg.name.startswith("HMAC_")
            or signing_settings.key_info is not None
            or signing_settings.key_name is not None
            or signing_settings.always_add_key_value
            or not chain
            or not all(isinstance(cert, x509.Certificate) for cert in chain)
        ):
            super()._add_key_info(sig_root, signing_settings)
            return
        key_info = etree.SubElement(sig_root, self._ds_tag("KeyInfo"))
        x509_data = etree.SubElement(key_info, self._ds_tag("X509Data"))
        for cert in chain:
            element = etree.SubElement(x509_data, self._ds_tag("X509Certificate"))
            element.text = _x509_certificate_text(cert)


class _Verifier(_RootCopying, XMLVerifier):
    """signxml's verifier minus its redundant text round trips; same checks, same results.

    - ``get_root``: the tree parse_xml already built (private to one ``verify`` call) is used
      as is instead of being serialised and re-parsed;
    - ``_tostring``/``_fromstring``: a root element is copied with lxml's deep copy rather than
      serialised and re-parsed (see ``_RootCopy``); everything else goes through signxml;
    - ``_get_cert_validity_error``: the same verdict, but the certificate description (two
      RFC 4514 renderings) is built only when there is an error to describe.
    """

    def get_root(self, data: object) -> object:
        if isinstance(data, etree._Element):
            return data
        return super().get_root(data)  # type: ignore[no-untyped-call]

    def _get_cert_validity_error(self, cert: x509.Certificate, cert_source: str) -> str | None:
        now = self._get_cert_verification_time()  # type: ignore[no-untyped-call]
        if cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return None  # what signxml returns in this case, without describing the certificate
        return super()._get_cert_validity_error(cert, cert_source)  # type: ignore[no-untyped-call,no-any-return]


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """What verification demands (defaults: signed, strong algorithms, fresh CRLs)."""

    require_signature: bool = True
    allow_sha1: bool = False
    crl_required: bool = True
    accept_edxml_namespace: bool = False


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


def _hardened_parser() -> etree.XMLParser:
    # The same settings parser.parse_xml uses; signxml re-parses bytes parse_xml already vetted.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, collect_ids=False
    )


def _header(root: etree._Element) -> etree._Element:
    if root.tag != f"{_E}edXML":
        raise MalformedPackage(
            f"root element is {root.tag!r}, not edXML in {NS}", code="PACKAGE_STRUCTURE"
        )
    header = root.find(f"{_E}edXMLEnvelope/{_E}edXMLHeader")
    if header is None:
        raise MalformedPackage(
            "edXML has no edXMLEnvelope/edXMLHeader",
            code="PACKAGE_STRUCTURE",
            element="edXMLHeader",
        )
    return header


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
        raise TrustError(f"the key type does not fit algorithm {algorithm}", code="TRUST_BAD_KEY")
    if signer_cert.public_key() != private_key.public_key():
        raise TrustError("the certificate does not belong to the private key", code="TRUST_BAD_KEY")

    root = parse_xml(data, limits).getroot()
    header = _header(root)
    if next(root.iter(f"{_D}Signature", f"{_E}Signature"), None) is not None:
        raise SignatureInvalid(
            "the package is already signed; sign only unsigned packages",
            code="SIG_ALREADY_SIGNED",
            element="Signature",
        )
    placeholder = etree.SubElement(
        header, f"{_D}Signature", Id="placeholder", nsmap={"ds": DSIG_NS}
    )
    previous = placeholder.getprevious()
    if previous is not None:  # keep the file's indentation: the signature goes on its own line
        placeholder.tail, previous.tail = previous.tail, header.text
    signer = _Signer(
        signature_algorithm=ALGORITHMS[algorithm],
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=_EXC_C14N,
    )
    try:
        signed = signer.sign(root, key=private_key, cert=[signer_cert, *chain], reference_uri=None)
    except (SignXMLException, ValueError, TypeError) as exc:
        raise TrustError(f"signing failed: {exc}", code="SIGN_FAILED") from exc
    return _bytes(signed)


# --- verification --------------------------------------------------------------------------------


def _bytes(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _invalid(code: str, message: str, element: str = "Signature") -> SignatureInvalid:
    return SignatureInvalid(message, code=code, element=element)


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _find_signatures(root: etree._Element) -> list[etree._Element]:
    return [el for el in root.iter("{*}Signature") if isinstance(el.tag, str)]


def _check_placement(sig: etree._Element, header: etree._Element) -> None:
    if sig.getparent() is not header:
        parent = sig.getparent()
        where = _local(parent) if parent is not None else "the document root"
        raise _invalid(
            "SIG_MISPLACED",
            f"the Signature is inside {where}; it must be the last child of edXMLHeader",
        )
    following = sig.getnext()
    while following is not None and not isinstance(following.tag, str):
        following = following.getnext()
    if following is not None:
        raise _invalid(
            "SIG_MISPLACED",
            f"the Signature is followed by {_local(following)}; must be edXMLHeader's last child",
        )


def _to_dsig_namespace(sig: etree._Element, prefix: str | None) -> etree._Element:
    """A copy of an edXML-namespace Signature rebuilt in the XML-DSig namespace under ``prefix``."""

    def rebuild(src: etree._Element, parent: etree._Element | None) -> etree._Element:
        tag = f"{_D}{_local(src)}" if etree.QName(src).namespace in (NS, None) else src.tag
        el = (
            etree.Element(tag, dict(src.attrib), nsmap={prefix: DSIG_NS})
            if parent is None
            else etree.SubElement(parent, tag, dict(src.attrib))
        )
        el.text, el.tail = src.text, src.tail
        for child in src:
            if isinstance(child.tag, str):
                rebuild(child, el)
        return el

    return rebuild(sig, None)


def _check_shape(  # noqa: PLR0912 - one branch per distinct verdict reads best
    sig: etree._Element, allow_sha1: bool, warnings: list[str]
) -> tuple[str, str]:
    """Structure and algorithm checks before any cryptography; returns (sig alg, digest alg)."""
    children = [c.tag for c in sig if isinstance(c.tag, str)]
    for child in children:
        if child not in _SIGNATURE_CHILDREN:
            raise _invalid(
                "SIG_STRUCTURE",
                f"unexpected element {etree.QName(child).localname} inside Signature (only "
                "SignedInfo, SignatureValue and KeyInfo are allowed; an Object could hide "
                "wrapped content)",
            )
    if (
        children.count(f"{_D}SignedInfo") != 1
        or children.count(f"{_D}SignatureValue") != 1
        or children.count(f"{_D}KeyInfo") > 1
    ):
        raise _invalid(
            "SIG_STRUCTURE",
            "Signature needs one SignedInfo, one SignatureValue, at most one KeyInfo",
        )
    signed_info = sig.find(f"{_D}SignedInfo")
    assert signed_info is not None  # noqa: S101 - counted just above
    c14n = signed_info.find(f"{_D}CanonicalizationMethod")
    method = signed_info.find(f"{_D}SignatureMethod")
    if c14n is None or method is None:
        raise _invalid(
            "SIG_STRUCTURE", "SignedInfo lacks CanonicalizationMethod or SignatureMethod"
        )
    if c14n.get("Algorithm") not in _C14N_METHODS:
        raise _invalid(
            "SIG_ALGORITHM", f"canonicalization {c14n.get('Algorithm')!r} is not allowed"
        )
    sig_alg = method.get("Algorithm") or ""
    if sig_alg not in _ALLOWED_SIGNATURE_URIS[allow_sha1]:
        if sig_alg in _SHA1_SIGNATURE_URIS:
            raise _invalid(
                "SIG_ALGORITHM",
                f"SHA-1 signature method {sig_alg} is refused (legacy policy allow_sha1 is off)",
            )
        raise _invalid("SIG_ALGORITHM", f"signature method {sig_alg!r} is not on the allow-list")
    references = signed_info.findall(f"{_D}Reference")
    if len(references) != 1:
        raise _invalid("SIG_REFERENCE", f"expected exactly one Reference, found {len(references)}")
    reference = references[0]
    if reference.get("URI") != "":
        raise _invalid(
            "SIG_REFERENCE",
            f'Reference URI is {reference.get("URI")!r}; it must be "" (the whole package)',
        )
    transforms = [t.get("Algorithm") for t in reference.iterfind(f"{_D}Transforms/{_D}Transform")]
    for transform in transforms:
        if transform not in _ALLOWED_TRANSFORMS:
            raise _invalid("SIG_ALGORITHM", f"transform {transform!r} is not allowed")
    if _ENVELOPED not in transforms:
        raise _invalid("SIG_REFERENCE", "the Reference lacks the enveloped-signature transform")
    digest = reference.find(f"{_D}DigestMethod")
    digest_alg = digest.get("Algorithm") if digest is not None else None
    if digest_alg not in _ALLOWED_DIGEST_URIS[allow_sha1]:
        if digest_alg == DigestAlgorithm.SHA1.value:
            raise _invalid(
                "SIG_ALGORITHM", "SHA-1 digest is refused (legacy policy allow_sha1 is off)"
            )
        raise _invalid("SIG_ALGORITHM", f"digest method {digest_alg!r} is not on the allow-list")
    if digest_alg == DigestAlgorithm.SHA1.value or sig_alg in _SHA1_SIGNATURE_URIS:
        warnings.append(
            "legacy SHA-1 signature accepted by policy; ask the sender to move to SHA-256"
        )
    return sig_alg, digest_alg


def _certificates(sig: etree._Element) -> list[x509.Certificate]:
    key_info = sig.find(f"{_D}KeyInfo")
    if key_info is None:
        raise _invalid("SIG_KEYINFO", "Signature has no KeyInfo with the signer certificate")
    for child in key_info:
        if isinstance(child.tag, str) and child.tag not in _KEYINFO_CHILDREN:
            raise _invalid(
                "SIG_KEYINFO", f"KeyInfo may hold only X509Data (and KeyName), not {_local(child)}"
            )
    texts = [t.text or "" for t in key_info.iterfind(f"{_D}X509Data/{_D}X509Certificate")]
    for x509_data in key_info.iterfind(f"{_D}X509Data"):
        for child in x509_data:
            if isinstance(child.tag, str) and child.tag not in _X509DATA_CHILDREN:
                raise _invalid("SIG_KEYINFO", f"unexpected {_local(child)} in X509Data")
    if not texts:
        raise _invalid("SIG_KEYINFO", "KeyInfo/X509Data carries no X509Certificate")
    return [_load_cert(t) for t in texts]


# Parsed certificates by their X509Certificate text as received (a node sees the same few
# agency certificates over and over), and their subject lines by certificate.
_CERT_CACHE: dict[str, x509.Certificate] = {}
_CACHED_CERT_TEXT_MAX = 8192  # an agency certificate is ~1.3-2 KB of base64
_SUBJECTS: dict[int, tuple[x509.Certificate, str]] = {}


def _load_cert(text: str) -> x509.Certificate:
    cert = _CERT_CACHE.get(text)
    if cert is None:
        compact = "".join(text.split())
        try:
            cert = x509.load_der_x509_certificate(binascii.a2b_base64(compact))
        except (ValueError, binascii.Error) as exc:
            raise _invalid("SIG_KEYINFO", f"X509Certificate cannot be read: {exc}") from exc
        if len(text) <= _CACHED_CERT_TEXT_MAX:  # bounded memory whatever senders put there
            if len(_CERT_CACHE) > 4096:
                _CERT_CACHE.clear()
            _CERT_CACHE[text] = cert
    return cert


def _subject(cert: x509.Certificate) -> str:
    entry = _SUBJECTS.get(id(cert))
    if entry is not None and entry[0] is cert:
        return entry[1]
    subject = subject_of(cert)
    if len(_SUBJECTS) > 4096:
        _SUBJECTS.clear()
    _SUBJECTS[id(cert)] = (cert, subject)
    return subject


def _leaf(certs: list[x509.Certificate]) -> x509.Certificate:
    issuers = {c.issuer for c in certs}
    leaves = [c for c in certs if c.subject not in issuers]
    return leaves[0] if len(leaves) == 1 else certs[0]


def _check_comment_injection(root: etree._Element) -> None:
    """Refuse comments or PIs that split a text value: readers skipping them see other text."""
    for node in root.iter(etree.Comment, etree.ProcessingInstruction):
        parent = node.getparent()
        if parent is None:
            continue
        before = node.getprevious()
        text_before = (before.tail if before is not None else parent.text) or ""
        if text_before.strip() and (node.tail or "").strip():
            raise _invalid(
                "SIG_COMMENT_INJECTION",
                f"a comment or processing instruction splits the text of {_local(parent)}; "
                "the signed value and the value a reader sees would differ",
                element=_local(parent),
            )


def _signed_sender(signed_root: etree._Element) -> str:
    ids = signed_root.findall(
        f"{_E}edXMLEnvelope/{_E}edXMLHeader/{_E}MessageHeader/{_E}From/{_E}OrganId"
    )
    if len(ids) != 1:
        raise _invalid(
            "SIGNER_MISMATCH",
            f"the signed content has {len(ids)} From/OrganId elements, not one",
            "From",
        )
    return (ids[0].text or "").strip()


def verify(
    data: bytes,
    trust: TrustStore,
    policy: SignaturePolicy = SignaturePolicy(),
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
    header = _header(root)
    signatures = _find_signatures(root)
    if not signatures:
        if policy.require_signature:
            raise _invalid("SIG_MISSING", "the package is not signed")
        return VerificationResult(signed=False, signed_root=root, warnings=["package is unsigned"])
    if len(signatures) > 1:
        raise _invalid(
            "SIG_DUPLICATE",
            f"the package carries {len(signatures)} Signature elements; one is allowed",
        )
    sig = signatures[0]
    _check_placement(sig, header)
    warnings: list[str] = []
    candidates: list[bytes | etree._Element] = [root]
    if sig.tag != f"{_D}Signature":
        namespace = etree.QName(sig).namespace
        if namespace != NS or not policy.accept_edxml_namespace:
            where = "the edXML namespace" if namespace == NS else f"namespace {namespace!r}"
            raise _invalid(
                "SIG_WRONG_NAMESPACE",
                f"the Signature is in {where}, not XML-DSig ({DSIG_NS}); "
                "it cannot be verified as an XML digital signature",
            )
        # The producer's SignedInfo bytes were most likely in the default XML-DSig namespace
        # (xmlns="...xmldsig#"), else under the usual ds: prefix: try both, nothing else.
        candidates = []
        for prefix in (None, "ds"):
            dsig = _to_dsig_namespace(sig, prefix)
            dsig.tail = sig.tail
            header.replace(sig, dsig)
            sig = dsig
            candidates.append(_bytes(root))
        warnings.append(
            "Signature was in the edXML namespace; verified after reading it as XML-DSig"
        )
    sig_alg, digest_alg = _check_shape(sig, policy.allow_sha1, warnings)
    certs = _certificates(sig)
    _check_comment_injection(root)
    leaf = _leaf(certs)
    validated = trust.validate(
        leaf, [c for c in certs if c is not leaf], crl_required=policy.crl_required, as_of=as_of
    )
    warnings.extend(validated.warnings)
    signed_root = _run_signxml(candidates, leaf, policy, as_of)
    sender = _signed_sender(signed_root)
    if validated.organ_id is None:
        raise _invalid(
            "CERT_NO_ORGAN_ID",
            "the certificate binds no single OrganId (urn:qcvn102:organid: SAN URI)",
        )
    if validated.organ_id != sender:
        raise SignatureInvalid(
            f"signed by {validated.organ_id} but From/OrganId is {sender}",
            code="SIGNER_MISMATCH",
            agency=sender,
            element="From/OrganId",
        )
    if allowed_fingerprints is not None and validated.fingerprint not in {
        f.lower() for f in allowed_fingerprints
    }:
        raise SignatureInvalid(
            f"certificate {validated.fingerprint} is not listed for {sender} in the directory",
            code="CERT_NOT_IN_DIRECTORY",
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


def _run_signxml(
    candidates: list[bytes | etree._Element],
    leaf: x509.Certificate,
    policy: SignaturePolicy,
    as_of: dt.datetime | None = None,
) -> etree._Element:
    """Digest and signature value, by signxml, with the already validated certificate.

    ``candidates`` holds the package as received, or the readings of an edXML-namespace
    Signature as XML-DSig; the first whose signature value verifies wins. ``as_of`` is the
    time signxml judges the certificate's validity period at (None: now).
    """
    config = _CONFIGS[policy.allow_sha1]
    if as_of is not None:
        config = dataclasses.replace(config, verification_time=as_of)
    wrong_namespace = len(candidates) > 1
    suffix = " (even when read as XML-DSig)" if wrong_namespace else ""
    for index, payload in enumerate(candidates):
        try:
            verified = _Verifier().verify(
                payload,
                x509_cert=leaf,
                parser=_hardened_parser(),
                validate_schema=False,  # _check_shape is stricter than the XML-DSig schema
                expect_config=config,
            )
            break
        except InvalidDigest as exc:
            code = "SIG_WRONG_NAMESPACE" if wrong_namespace else "SIG_DIGEST_MISMATCH"
            raise _invalid(code, f"the package was changed after signing: {exc}{suffix}") from exc
        except InvalidCertificate as exc:
            raise _invalid("CERT_EXPIRED", f"certificate not valid now: {exc}") from exc
        except SignXMLInvalidSignature as exc:
            if index + 1 < len(candidates):
                continue
            code = "SIG_WRONG_NAMESPACE" if wrong_namespace else "SIG_VALUE"
            raise _invalid(code, f"the signature value does not verify: {exc}{suffix}") from exc
        except InvalidInput as exc:
            raise _invalid("SIG_STRUCTURE", f"malformed signature: {exc}") from exc
        except (SignXMLException, ValueError, TypeError, binascii.Error, etree.LxmlError) as exc:
            raise _invalid("SIG_STRUCTURE", f"signature cannot be processed: {exc}") from exc
    if not isinstance(verified, VerifyResult):
        raise _invalid("SIG_REFERENCE", "expected exactly one Reference")
    signed = verified.signed_xml
    if signed is None:
        raise _invalid("SIG_STRUCTURE", "the signed content is not XML")
    return signed
