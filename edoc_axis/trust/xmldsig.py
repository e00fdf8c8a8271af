"""signxml, made to fit: the only module that imports it.

Two entry points, each mapping signxml's exceptions to ours: ``sign_enveloped`` (an enveloped
XML-DSig signature in the placeholder the caller put in the tree) and ``check_signature_value``
(digest and signature value, with a certificate the caller has already validated). signxml is
subclassed only to skip repeated work, never to change a verdict or a byte of output; the tests
pin each override to signxml 5.x's own behaviour.
"""

from __future__ import annotations

import binascii
import copy
import dataclasses
import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, SignXMLException
from signxml.exceptions import InvalidSignature as SignXMLInvalidSignature
from signxml.signer import XMLSigner
from signxml.util import SigningSettings, ds_tag, strip_pem_header
from signxml.util import namespaces as dsig_namespaces
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from edoc_axis.errors import ErrorCode, SignatureInvalid, TrustError
from edoc_axis.trust.certificate import PrivateKey
from edoc_axis.trust.policy import EXC_C14N, SHA256, SignaturePolicy
from edoc_axis.trust.structure import SIGNATURE_LOCATION


def _config(policy: SignaturePolicy) -> SignatureConfiguration:
    return SignatureConfiguration(
        location=SIGNATURE_LOCATION,
        expect_references=1,
        signature_methods=frozenset(SignatureMethod(m) for m in policy.signature_methods),
        digest_algorithms=frozenset(DigestAlgorithm(d) for d in policy.digest_methods),
    )


_CONFIGS = {
    allow_sha1: _config(SignaturePolicy(allow_sha1=allow_sha1)) for allow_sha1 in (False, True)
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

    - ``get_root``: the tree the caller hands in (from the hardened parser) is used as is
      instead of being serialised and re-parsed; signxml only reads it and copies it;
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


def hardened_parser() -> etree.XMLParser:
    """The settings ``edxml.parser`` uses, for the bytes signxml parses itself (the canonical
    form of the signed content, never anything a peer sent). Huge trees on, as there: a large
    attachment is one text node over libxml2's 10 MB default, and the content was already
    bounded by the hardened door before it was canonicalized."""
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True, collect_ids=False
    )


def sign_enveloped(
    root: etree._Element, key: PrivateKey, certs: list[x509.Certificate], algorithm: str
) -> etree._Element:
    """A signed copy of ``root``, whose ``Signature Id="placeholder"`` becomes the signature:
    one ``Reference URI=""``, enveloped + exclusive c14n, SHA-256, ``algorithm`` (a URI), and
    ``certs`` in ``KeyInfo/X509Data``. signxml works on copies: ``root`` is not changed."""
    signer = _Signer(
        signature_algorithm=SignatureMethod(algorithm),
        digest_algorithm=DigestAlgorithm(SHA256),
        c14n_algorithm=CanonicalizationMethod(EXC_C14N),
    )
    try:
        signed: etree._Element = signer.sign(root, key=key, cert=certs, reference_uri=None)
    except (SignXMLException, ValueError, TypeError) as exc:
        raise TrustError(f"signing failed: {exc}", code=ErrorCode.SIGN_FAILED) from exc
    return signed


def _invalid(code: ErrorCode, message: str) -> SignatureInvalid:
    return SignatureInvalid(message, code=code, element="Signature")


def check_signature_value(
    candidates: list[bytes | etree._Element],
    leaf: x509.Certificate,
    policy: SignaturePolicy,
    as_of: dt.datetime | None = None,
) -> etree._Element:
    """Digest and signature value, by signxml, with the already validated certificate; returns
    the signed content only, re-read from its canonical form.

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
                parser=hardened_parser(),
                validate_schema=False,  # trust.structure is stricter than the XML-DSig schema
                expect_config=config,
            )
            break
        except InvalidDigest as exc:
            code = (ErrorCode.SIG_WRONG_NAMESPACE if wrong_namespace
                    else ErrorCode.SIG_DIGEST_MISMATCH)
            raise _invalid(code, f"the package was changed after signing: {exc}{suffix}") from exc
        except InvalidCertificate as exc:
            raise _invalid(ErrorCode.CERT_EXPIRED, f"certificate not valid now: {exc}") from exc
        except SignXMLInvalidSignature as exc:
            if index + 1 < len(candidates):
                continue
            code = ErrorCode.SIG_WRONG_NAMESPACE if wrong_namespace else ErrorCode.SIG_VALUE
            raise _invalid(code, f"the signature value does not verify: {exc}{suffix}") from exc
        except InvalidInput as exc:
            raise _invalid(ErrorCode.SIG_STRUCTURE, f"malformed signature: {exc}") from exc
        except (SignXMLException, ValueError, TypeError, binascii.Error, etree.LxmlError) as exc:
            raise _invalid(ErrorCode.SIG_STRUCTURE,
                           f"signature cannot be processed: {exc}") from exc
    if not isinstance(verified, VerifyResult):
        raise _invalid(ErrorCode.SIG_REFERENCE, "expected exactly one Reference")
    signed = verified.signed_xml
    if signed is None:
        raise _invalid(ErrorCode.SIG_STRUCTURE, "the signed content is not XML")
    return signed
