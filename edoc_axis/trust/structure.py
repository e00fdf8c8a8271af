"""The shape of a package's signature, checked before any cryptography.

Where the one ``Signature`` may be (the last child of ``edXMLHeader``), what it may contain (no
``Object``, one ``Reference URI=""``, allowed transforms and algorithms, certificates only in
``KeyInfo/X509Data``), no comment splitting a text value (comment injection), and who the signed
content says sent it. Every refusal is a ``SignatureInvalid`` with its own code. Pure lxml
reading; the trees come from ``edxml``'s hardened parser.
"""

from __future__ import annotations

import binascii

from cryptography import x509
from lxml import etree

from edoc_axis.edxml.model import DSIG_NS, NS
from edoc_axis.errors import ErrorCode, MalformedPackage, SignatureInvalid
from edoc_axis.trust.policy import (
    ALLOWED_TRANSFORMS,
    C14N_METHODS,
    ENVELOPED,
    SHA1,
    SHA1_SIGNATURE_METHODS,
    SignaturePolicy,
)

_E = "{%s}" % NS  # noqa: UP031 - Clark notation prefix
_D = "{%s}" % DSIG_NS  # noqa: UP031
SIGNATURE_LOCATION = f"./{_E}edXMLEnvelope/{_E}edXMLHeader/"
"""Where signxml must find the signature (its ``SignatureConfiguration.location``)."""

# Allowed children as Clark names: "{xmldsig#}Name" in the set <=> XML-DSig namespace and name.
_SIGNATURE_CHILDREN = frozenset(f"{_D}{n}" for n in ("SignedInfo", "SignatureValue", "KeyInfo"))
_KEYINFO_CHILDREN = frozenset(f"{_D}{n}" for n in ("X509Data", "KeyName"))
_X509DATA_CHILDREN = frozenset(
    f"{_D}{n}" for n in ("X509Certificate", "X509SubjectName", "X509IssuerSerial", "X509SKI")
)


def invalid(code: ErrorCode, message: str, element: str = "Signature") -> SignatureInvalid:
    """The ``SignatureInvalid`` for a refusal with ``code``."""
    return SignatureInvalid(message, code=code, element=element)


def local(el: etree._Element) -> str:
    """An element's local name (no namespace)."""
    return etree.QName(el).localname


def header_of(root: etree._Element) -> etree._Element:
    """The ``edXMLHeader`` a signature belongs in, or ``MalformedPackage``."""
    if root.tag != f"{_E}edXML":
        raise MalformedPackage(
            f"root element is {root.tag!r}, not edXML in {NS}", code=ErrorCode.PACKAGE_NOT_EDXML
        )
    header = root.find(f"{_E}edXMLEnvelope/{_E}edXMLHeader")
    if header is None:
        raise MalformedPackage(
            "edXML has no edXMLEnvelope/edXMLHeader",
            code=ErrorCode.PACKAGE_STRUCTURE,
            element="edXMLHeader",
        )
    return header


def find_signatures(root: etree._Element) -> list[etree._Element]:
    """Every element named Signature, in any namespace, anywhere in the package."""
    return [el for el in root.iter("{*}Signature") if isinstance(el.tag, str)]


def is_signed(root: etree._Element) -> bool:
    """Whether the package carries a Signature in the XML-DSig or the edXML namespace."""
    return next(root.iter(f"{_D}Signature", f"{_E}Signature"), None) is not None


def check_placement(sig: etree._Element, header: etree._Element) -> None:
    """Refuse a signature that is not the last element of ``header``."""
    if sig.getparent() is not header:
        parent = sig.getparent()
        where = local(parent) if parent is not None else "the document root"
        raise invalid(
            ErrorCode.SIG_MISPLACED,
            f"the Signature is inside {where}; it must be the last child of edXMLHeader",
        )
    following = sig.getnext()
    while following is not None and not isinstance(following.tag, str):
        following = following.getnext()
    if following is not None:
        raise invalid(
            ErrorCode.SIG_MISPLACED,
            f"the Signature is followed by {local(following)}; must be edXMLHeader's last child",
        )


def to_dsig_namespace(sig: etree._Element, prefix: str | None) -> etree._Element:
    """A copy of an edXML-namespace Signature rebuilt in the XML-DSig namespace under ``prefix``."""

    def rebuild(src: etree._Element, parent: etree._Element | None) -> etree._Element:
        tag = f"{_D}{local(src)}" if etree.QName(src).namespace in (NS, None) else src.tag
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


def check_shape(  # noqa: PLR0912 - one branch per distinct verdict reads best
    sig: etree._Element, policy: SignaturePolicy, warnings: list[str]
) -> tuple[str, str]:
    """Structure and algorithm checks before any cryptography; returns (sig alg, digest alg)."""
    children = [c.tag for c in sig if isinstance(c.tag, str)]
    for child in children:
        if child not in _SIGNATURE_CHILDREN:
            raise invalid(
                ErrorCode.SIG_STRUCTURE,
                f"unexpected element {etree.QName(child).localname} inside Signature (only "
                "SignedInfo, SignatureValue and KeyInfo are allowed; an Object could hide "
                "wrapped content)",
            )
    if (
        children.count(f"{_D}SignedInfo") != 1
        or children.count(f"{_D}SignatureValue") != 1
        or children.count(f"{_D}KeyInfo") > 1
    ):
        raise invalid(
            ErrorCode.SIG_STRUCTURE,
            "Signature needs one SignedInfo, one SignatureValue, at most one KeyInfo",
        )
    signed_info = sig.find(f"{_D}SignedInfo")
    assert signed_info is not None  # noqa: S101 - counted just above
    c14n = signed_info.find(f"{_D}CanonicalizationMethod")
    method = signed_info.find(f"{_D}SignatureMethod")
    if c14n is None or method is None:
        raise invalid(ErrorCode.SIG_STRUCTURE,
                      "SignedInfo lacks CanonicalizationMethod or SignatureMethod")
    if c14n.get("Algorithm") not in C14N_METHODS:
        raise invalid(ErrorCode.SIG_ALGORITHM,
                      f"canonicalization {c14n.get('Algorithm')!r} is not allowed")
    sig_alg = method.get("Algorithm") or ""
    if sig_alg not in policy.signature_methods:
        if sig_alg in SHA1_SIGNATURE_METHODS:
            raise invalid(
                ErrorCode.SIG_ALGORITHM,
                f"SHA-1 signature method {sig_alg} is refused (legacy policy allow_sha1 is off)",
            )
        raise invalid(ErrorCode.SIG_ALGORITHM,
                      f"signature method {sig_alg!r} is not on the allow-list")
    references = signed_info.findall(f"{_D}Reference")
    if len(references) != 1:
        raise invalid(ErrorCode.SIG_REFERENCE,
                      f"expected exactly one Reference, found {len(references)}")
    reference = references[0]
    if reference.get("URI") != "":
        raise invalid(
            ErrorCode.SIG_REFERENCE,
            f'Reference URI is {reference.get("URI")!r}; it must be "" (the whole package)',
        )
    transforms = [t.get("Algorithm") for t in reference.iterfind(f"{_D}Transforms/{_D}Transform")]
    for transform in transforms:
        if transform not in ALLOWED_TRANSFORMS:
            raise invalid(ErrorCode.SIG_ALGORITHM, f"transform {transform!r} is not allowed")
    if ENVELOPED not in transforms:
        raise invalid(ErrorCode.SIG_REFERENCE,
                      "the Reference lacks the enveloped-signature transform")
    digest = reference.find(f"{_D}DigestMethod")
    digest_alg = digest.get("Algorithm") if digest is not None else None
    if digest_alg is None or digest_alg not in policy.digest_methods:
        if digest_alg == SHA1:
            raise invalid(
                ErrorCode.SIG_ALGORITHM, "SHA-1 digest is refused (legacy policy allow_sha1 is off)"
            )
        raise invalid(ErrorCode.SIG_ALGORITHM,
                      f"digest method {digest_alg!r} is not on the allow-list")
    if digest_alg == SHA1 or sig_alg in SHA1_SIGNATURE_METHODS:
        warnings.append(
            "legacy SHA-1 signature accepted by policy; ask the sender to move to SHA-256"
        )
    return sig_alg, digest_alg


def certificates(sig: etree._Element) -> list[x509.Certificate]:
    """The certificates in ``KeyInfo/X509Data`` (refusing anything else KeyInfo may hold)."""
    key_info = sig.find(f"{_D}KeyInfo")
    if key_info is None:
        raise invalid(ErrorCode.SIG_KEYINFO, "Signature has no KeyInfo with the signer certificate")
    for child in key_info:
        if isinstance(child.tag, str) and child.tag not in _KEYINFO_CHILDREN:
            raise invalid(
                ErrorCode.SIG_KEYINFO,
                f"KeyInfo may hold only X509Data (and KeyName), not {local(child)}"
            )
    texts = [t.text or "" for t in key_info.iterfind(f"{_D}X509Data/{_D}X509Certificate")]
    for x509_data in key_info.iterfind(f"{_D}X509Data"):
        for child in x509_data:
            if isinstance(child.tag, str) and child.tag not in _X509DATA_CHILDREN:
                raise invalid(ErrorCode.SIG_KEYINFO, f"unexpected {local(child)} in X509Data")
    if not texts:
        raise invalid(ErrorCode.SIG_KEYINFO, "KeyInfo/X509Data carries no X509Certificate")
    return [_load_cert(t) for t in texts]


# Parsed certificates by their X509Certificate text as received (a node sees the same few
# agency certificates over and over).
_CERT_CACHE: dict[str, x509.Certificate] = {}
_CACHED_CERT_TEXT_MAX = 8192  # an agency certificate is ~1.3-2 KB of base64


def _load_cert(text: str) -> x509.Certificate:
    cert = _CERT_CACHE.get(text)
    if cert is None:
        compact = "".join(text.split())
        try:
            cert = x509.load_der_x509_certificate(binascii.a2b_base64(compact))
        except (ValueError, binascii.Error) as exc:
            raise invalid(ErrorCode.SIG_KEYINFO, f"X509Certificate cannot be read: {exc}") from exc
        if len(text) <= _CACHED_CERT_TEXT_MAX:  # bounded memory whatever senders put there
            if len(_CERT_CACHE) > 4096:
                _CERT_CACHE.clear()
            _CERT_CACHE[text] = cert
    return cert


def leaf_of(certs: list[x509.Certificate]) -> x509.Certificate:
    """The signer among ``certs``: the one that issued none of the others (else the first)."""
    issuers = {c.issuer for c in certs}
    leaves = [c for c in certs if c.subject not in issuers]
    return leaves[0] if len(leaves) == 1 else certs[0]


def check_comment_injection(root: etree._Element) -> None:
    """Refuse comments or PIs that split a text value: readers skipping them see other text."""
    for node in root.iter(etree.Comment, etree.ProcessingInstruction):
        parent = node.getparent()
        if parent is None:
            continue
        before = node.getprevious()
        text_before = (before.tail if before is not None else parent.text) or ""
        if text_before.strip() and (node.tail or "").strip():
            raise invalid(
                ErrorCode.SIG_COMMENT_INJECTION,
                f"a comment or processing instruction splits the text of {local(parent)}; "
                "the signed value and the value a reader sees would differ",
                element=local(parent),
            )


def signed_sender(signed_root: etree._Element) -> str:
    """``From/OrganId`` as the signed content says it (exactly one, else ``SIGNER_MISMATCH``)."""
    ids = signed_root.findall(
        f"{_E}edXMLEnvelope/{_E}edXMLHeader/{_E}MessageHeader/{_E}From/{_E}OrganId"
    )
    if len(ids) != 1:
        raise invalid(
            ErrorCode.SIGNER_MISMATCH,
            f"the signed content has {len(ids)} From/OrganId elements, not one",
            "From",
        )
    return (ids[0].text or "").strip()
