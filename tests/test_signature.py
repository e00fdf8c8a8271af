"""Tests for trust.signature, .structure, .xmldsig and .policy: signing, verification and
every hostile case by its code."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable

import pytest
from cryptography import x509
from lxml import etree

from edoc_axis.edxml.model import DSIG_NS, NS
from edoc_axis.errors import SignatureInvalid, TrustError
from edoc_axis.ops import pki as dev_pki
from edoc_axis.trust import certificate as trust
from edoc_axis.trust import structure
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.policy import SignaturePolicy
from edoc_axis.trust.signature import sign, sign_tree, verify, verify_tree

G22, H41 = "000.00.00.G22", "000.00.00.H41"
E, D = f"{{{NS}}}", f"{{{DSIG_NS}}}"


@pytest.fixture(scope="module")
def store(pki):
    """A trust store with the test CA and its fresh CRL."""
    return pki.trust_store()


@pytest.fixture(scope="module")
def signed_g22(pki, edxml_document) -> bytes:
    """A document from G22 with an attachment, signed by G22's RSA key."""
    agency = pki.agencies[G22]
    return sign(
        edxml_document(G22, H41, attachment=b"PK\x03\x04 zip bytes"), agency.key, agency.cert
    )


def _code(
    data: bytes, store: TrustStore, policy: SignaturePolicy | None = None, **kw: object
) -> str:
    with pytest.raises(SignatureInvalid) as info:
        verify(data, store, policy or SignaturePolicy(), **kw)  # type: ignore[arg-type]
    return info.value.code


def _tree(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def _bytes(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


# --- signing -------------------------------------------------------------------------------------


def test_signature_is_last_child_of_header_in_dsig_namespace(signed_g22: bytes) -> None:
    """The signature lands as edXMLHeader's last child, XML-DSig namespace, one Reference URI=""."""
    header = _tree(signed_g22).find(f"{E}edXMLEnvelope/{E}edXMLHeader")
    assert header is not None
    last = header[-1]
    assert last.tag == f"{D}Signature"
    assert last.get("Id") is None
    refs = last.findall(f"{D}SignedInfo/{D}Reference")
    assert [r.get("URI") for r in refs] == [""]
    transforms = [t.get("Algorithm") for t in refs[0].iter(f"{D}Transform")]
    assert transforms == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
    ]
    method = last.find(f"{D}SignedInfo/{D}SignatureMethod")
    assert method is not None
    assert method.get("Algorithm") == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert last.find(f"{D}KeyInfo/{D}X509Data/{D}X509Certificate") is not None


def test_genuine_rsa_package_verifies_with_signer_details(pki, signed_g22, store) -> None:
    """A genuine package verifies and reports OrganId, subject, serial, fingerprint, algorithms."""
    result = verify(signed_g22, store, SignaturePolicy())
    cert = pki.agencies[G22].cert
    assert result.signed is True
    assert result.signer_organ_id == G22
    assert result.fingerprint == trust.fingerprint(cert)
    assert result.serial == f"{cert.serial_number:x}"
    assert "CN=" in (result.subject or "")
    assert result.digest_algorithm == "http://www.w3.org/2001/04/xmlenc#sha256"
    assert result.warnings == []
    assert result.signed_root.find(f"{E}edXMLEnvelope/{E}edXMLHeader/{D}Signature") is None


def test_ecdsa_status_package_signs_and_verifies(pki, edxml_status, store) -> None:
    """A status package signed with a P-256 key uses ecdsa-sha256 and verifies."""
    agency = pki.agencies[H41]
    signed = sign(edxml_status(H41, G22), agency.key, agency.cert)
    assert b"xmldsig-more#ecdsa-sha256" in signed
    result = verify(signed, store)
    assert result.signer_organ_id == H41


def test_sign_refuses_signed_package_and_wrong_key(pki, signed_g22, edxml_document) -> None:
    """Signing twice, a key/cert mismatch and an algorithm/key mismatch are refused clearly."""
    g22, h41 = pki.agencies[G22], pki.agencies[H41]
    with pytest.raises(SignatureInvalid) as info:
        sign(signed_g22, g22.key, g22.cert)
    assert info.value.code == "SIG_ALREADY_SIGNED"
    with pytest.raises(TrustError):
        sign(edxml_document(), g22.key, h41.cert)
    with pytest.raises(TrustError):
        sign(edxml_document(), g22.key, g22.cert, algorithm="ecdsa-sha256")


def test_pem_bytes_accepted_for_key_and_cert(pki, edxml_document, store) -> None:
    """sign() takes PEM bytes as well as key and certificate objects."""
    agency = pki.agencies[G22]
    signed = sign(edxml_document(), agency.key_path.read_bytes(), agency.cert_path.read_bytes())
    assert verify(signed, store).signer_organ_id == G22


# --- unsigned and policy -------------------------------------------------------------------------


def test_unsigned_package_refused_or_allowed_by_policy(edxml_document, store) -> None:
    """Unsigned: SIG_MISSING by default; signed=False with a warning when policy allows it."""
    data = edxml_document()
    assert _code(data, store) == "SIG_MISSING"
    result = verify(data, store, SignaturePolicy(require_signature=False))
    assert result.signed is False
    assert result.signer_organ_id is None
    assert result.warnings


# --- certificates --------------------------------------------------------------------------------


def _sign_with(pki, build, organ_id: str = G22, **issue: object) -> bytes:
    key, cert = dev_pki.issue_agency_certificate(
        pki.ca_key, pki.ca_cert, organ_id, "Agency", **issue
    )
    return sign(build(G22, H41), key, cert)


def test_certificate_from_another_ca_is_untrusted(edxml_document, store) -> None:
    """A certificate issued by a CA we do not trust gives CERT_UNTRUSTED."""
    other_key, other_ca = dev_pki.init_ca("Rogue CA")
    key, cert = dev_pki.issue_agency_certificate(other_key, other_ca, G22, "Fake VPCP")
    assert _code(sign(edxml_document(), key, cert), store) == "CERT_UNTRUSTED"


def test_expired_certificate(pki, edxml_document, store) -> None:
    """A certificate past notAfter gives CERT_EXPIRED."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    data = _sign_with(pki, edxml_document, not_before=start, days=30)
    assert _code(data, store) == "CERT_EXPIRED"


def test_not_yet_valid_certificate(pki, edxml_document, store) -> None:
    """A certificate before notBefore gives CERT_NOT_YET_VALID."""
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    data = _sign_with(pki, edxml_document, not_before=start)
    assert _code(data, store) == "CERT_NOT_YET_VALID"


def test_wrong_key_usage(pki, edxml_document, store) -> None:
    """A certificate without nonRepudiation (only keyEncipherment + digitalSignature) is refused."""
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    assert _code(_sign_with(pki, edxml_document, key_usage=usage), store) == "CERT_KEY_USAGE"


def test_revoked_certificate(pki, edxml_document) -> None:
    """A certificate listed on its CA's fresh CRL gives CERT_REVOKED."""
    key, cert = dev_pki.issue_agency_certificate(pki.ca_key, pki.ca_cert, G22, "VPCP old key")
    crl = dev_pki.make_crl(
        pki.ca_key, pki.ca_cert, [dev_pki.Revocation(cert.serial_number, dt.datetime.now(dt.UTC))]
    )
    store = TrustStore(anchors=[pki.ca_cert], crls=[crl])
    assert _code(sign(edxml_document(), key, cert), store) == "CERT_REVOKED"


def test_missing_and_expired_crl_fail_closed_unless_policy(pki, signed_g22) -> None:
    """No CRL: CRL_MISSING; stale CRL: CRL_EXPIRED; crl_required=False accepts with a warning."""
    no_crl = pki.trust_store(with_crl=False)
    assert _code(signed_g22, no_crl) == "CRL_MISSING"
    stale = dev_pki.make_crl(
        pki.ca_key,
        pki.ca_cert,
        days=1,
        this_update=dt.datetime.now(dt.UTC) - dt.timedelta(days=3),
    )
    stale_store = TrustStore(anchors=[pki.ca_cert], crls=[stale])
    assert _code(signed_g22, stale_store) == "CRL_EXPIRED"
    lenient = verify(signed_g22, no_crl, SignaturePolicy(crl_required=False))
    assert lenient.signer_organ_id == G22
    assert any("CRL" in w for w in lenient.warnings)


def test_crl_signed_by_someone_else_counts_as_missing(pki, signed_g22) -> None:
    """A CRL naming our CA as issuer but signed by another key is ignored (CRL_MISSING)."""
    rogue_key, _ = dev_pki.init_ca("edoc_axis Test Root CA")
    forged = dev_pki.make_crl(rogue_key, pki.ca_cert)
    store = TrustStore(anchors=[pki.ca_cert], crls=[forged])
    assert _code(signed_g22, store) == "CRL_MISSING"


def test_signer_organ_id_must_equal_from(pki, edxml_document, store) -> None:
    """H41's certificate signing a package whose From is G22 gives SIGNER_MISMATCH."""
    h41 = pki.agencies[H41]
    data = sign(edxml_document(G22, H41), h41.key, h41.cert)
    assert _code(data, store) == "SIGNER_MISMATCH"


def test_certificate_without_organ_id(pki, edxml_document, store) -> None:
    """A certificate binding two OrganIds is ambiguous: CERT_NO_ORGAN_ID."""
    data = _sign_with(pki, edxml_document, extra_organ_ids=[H41])
    assert _code(data, store) == "CERT_NO_ORGAN_ID"


def test_directory_fingerprint_allow_list(pki, signed_g22, store) -> None:
    """A certificate not among the directory's fingerprints gives CERT_NOT_IN_DIRECTORY."""
    other = "ab" * 32
    assert _code(signed_g22, store, allowed_fingerprints=[other]) == "CERT_NOT_IN_DIRECTORY"
    mine = trust.fingerprint(pki.agencies[G22].cert)
    assert verify(signed_g22, store, allowed_fingerprints=[other, mine.upper()]).signed


# --- tampering and wrapping ----------------------------------------------------------------------


def test_tampered_attachment_byte(signed_g22, store) -> None:
    """Changing one byte of the attachment gives SIG_DIGEST_MISMATCH."""
    root = _tree(signed_g22)
    node = root.find(f"{E}AttachmentEncoded/{E}Attachment/{E}ContentTransferEncoded")
    assert node is not None and node.text
    raw = bytearray(base64.b64decode(node.text))
    raw[0] ^= 1
    node.text = base64.b64encode(bytes(raw)).decode()
    assert _code(_bytes(root), store) == "SIG_DIGEST_MISMATCH"


def test_tampered_signature_value(signed_g22, store) -> None:
    """A changed SignatureValue gives SIG_VALUE."""
    root = _tree(signed_g22)
    value = root.find(f".//{D}SignatureValue")
    assert value is not None and value.text
    raw = bytearray(base64.b64decode(value.text))
    raw[-1] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    assert _code(_bytes(root), store) == "SIG_VALUE"


def test_moved_signature(signed_g22, store) -> None:
    """A Signature moved into MessageHeader or before TraceHeaderList gives SIG_MISPLACED."""
    root = _tree(signed_g22)
    sig = root.find(f".//{D}Signature")
    message_header = root.find(f".//{E}MessageHeader")
    assert sig is not None and message_header is not None
    message_header.append(sig)
    assert _code(_bytes(root), store) == "SIG_MISPLACED"
    root = _tree(signed_g22)
    sig = root.find(f".//{D}Signature")
    header = root.find(f".//{E}edXMLHeader")
    assert sig is not None and header is not None
    header.insert(0, sig)
    assert _code(_bytes(root), store) == "SIG_MISPLACED"


def test_duplicated_signature(pki, signed_g22, store) -> None:
    """Two Signature elements give SIG_DUPLICATE."""
    root = _tree(signed_g22)
    sig = root.find(f".//{D}Signature")
    body = root.find(f".//{E}edXMLBody")
    assert sig is not None and body is not None
    body.append(etree.fromstring(etree.tostring(sig)))
    assert _code(_bytes(root), store) == "SIG_DUPLICATE"


def test_wrapping_original_content_in_new_root(signed_g22, store) -> None:
    """XSW: a forged envelope with the signed original hidden deeper is SIG_MISPLACED."""
    original = _tree(signed_g22)
    forged = etree.fromstring(signed_g22.replace("thử nghiệm".encode(), "giả mạo".encode()))
    sig = forged.find(f".//{D}Signature")
    assert sig is not None
    sig.getparent().remove(sig)  # type: ignore[union-attr]
    wrapper = etree.SubElement(forged, f"{E}Wrapper")
    wrapper.append(original)
    assert _code(_bytes(forged), store) == "SIG_MISPLACED"


def test_wrapping_in_signature_object(signed_g22, store) -> None:
    """XSW: content smuggled into a ds:Object inside Signature gives SIG_STRUCTURE."""
    root = _tree(signed_g22)
    sig = root.find(f".//{D}Signature")
    assert sig is not None
    hidden = etree.fromstring(signed_g22).find(f"{E}edXMLEnvelope")
    assert hidden is not None
    hidden_sig = hidden.find(f".//{D}Signature")
    hidden_sig.getparent().remove(hidden_sig)  # type: ignore[union-attr]
    etree.SubElement(sig, f"{D}Object").append(hidden)
    assert _code(_bytes(root), store) == "SIG_STRUCTURE"


def test_reference_to_an_id_is_refused(signed_g22, store) -> None:
    """XSW: a Reference pointing at an Id instead of the whole package gives SIG_REFERENCE."""
    data = signed_g22.replace(b'URI=""', b'URI="#evil"')
    assert _code(data, store) == "SIG_REFERENCE"


def test_two_references_are_refused(signed_g22, store) -> None:
    """A second Reference in SignedInfo gives SIG_REFERENCE."""
    root = _tree(signed_g22)
    ref = root.find(f".//{D}Reference")
    assert ref is not None
    ref.addnext(etree.fromstring(etree.tostring(ref)))
    assert _code(_bytes(root), store) == "SIG_REFERENCE"


def test_comment_injection(signed_g22, store) -> None:
    """A comment splitting From/OrganId (signature still valid) gives SIG_COMMENT_INJECTION."""
    data = signed_g22.replace(
        b"<OrganId>000.00.00.G22</OrganId>", b"<OrganId>000.00.00.H<!---->22</OrganId>", 1
    )
    data = signed_g22.replace(b"<OrganId>000.00.00.G22", b"<OrganId>000.00.00.G<!-- x -->22", 1)
    assert data != signed_g22
    assert _code(data, store) == "SIG_COMMENT_INJECTION"


def test_harmless_comments_between_elements_are_fine(signed_g22, store) -> None:
    """Comments between elements do not split values and do not break the signature."""
    data = signed_g22.replace(b"<MessageHeader>", b"<!-- header --><MessageHeader>", 1)
    result = verify(data, store)
    assert result.signer_organ_id == G22
    assert not any(isinstance(n, etree._Comment) for n in result.signed_root.iter())


def test_signed_content_only_is_returned(signed_g22, store) -> None:
    """signed_root holds the signed package, without the Signature, readable by local name."""
    result = verify(signed_g22, store)
    organ = result.signed_root.find(
        f"{E}edXMLEnvelope/{E}edXMLHeader/{E}MessageHeader/{E}From/{E}OrganId"
    )
    assert organ is not None and organ.text == G22


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"xmldsig-more#rsa-sha256", b"xmldsig-more#rsa-md5"),
        (b"xmlenc#sha256", b"xmldsig-more#md5"),
        (b'xml-exc-c14n#"', b'xml-evil-c14n#"'),
        (b"xmldsig-more#rsa-sha256", b"xmldsig-more#hmac-sha256"),
    ],
)
def test_unknown_algorithms(signed_g22, store, old: bytes, new: bytes) -> None:
    """Unknown or disallowed signature, digest, transform or HMAC algorithms give SIG_ALGORITHM."""
    assert old in signed_g22
    assert _code(signed_g22.replace(old, new), store) == "SIG_ALGORITHM"


def test_sha1_refused_without_legacy_policy(signed_g22, store) -> None:
    """rsa-sha1 is SIG_ALGORITHM by default; under allow_sha1 it gets to the value check."""
    data = signed_g22.replace(
        b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        b"http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    )
    assert _code(data, store) == "SIG_ALGORITHM"
    assert _code(data, store, SignaturePolicy(allow_sha1=True)) == "SIG_VALUE"


# --- the edXML-namespace quirk -------------------------------------------------------------------


def _into_edxml_namespace(signed: bytes) -> bytes:
    """Rewrite the ds:Signature as producers do: unprefixed, so it falls in the edXML namespace."""
    text = signed.decode()
    text = text.replace(' xmlns:ds="http://www.w3.org/2000/09/xmldsig#"', "")
    text = re.sub(r"<(/?)ds:", r"<\1", text)
    return text.encode()


def test_signature_in_edxml_namespace_gets_precise_verdict(signed_g22, store) -> None:
    """An edXML-namespace Signature gives SIG_WRONG_NAMESPACE by default."""
    data = _into_edxml_namespace(signed_g22)
    assert f"{E}Signature" in {el.tag for el in _tree(data).iter()}
    assert _code(data, store) == "SIG_WRONG_NAMESPACE"


def test_signature_in_edxml_namespace_verified_when_policy_allows(signed_g22, store) -> None:
    """With accept_edxml_namespace the Signature is read as XML-DSig and verifies, warning."""
    data = _into_edxml_namespace(signed_g22)
    result = verify(data, store, SignaturePolicy(accept_edxml_namespace=True))
    assert result.signer_organ_id == G22
    assert any("edXML namespace" in w for w in result.warnings)
    tampered = data.replace("thử nghiệm".encode(), "giả mạo".encode())
    assert tampered != data
    assert (
        _code(tampered, store, SignaturePolicy(accept_edxml_namespace=True))
        == "SIG_WRONG_NAMESPACE"
    )


# --- the tree forms: a caller that already holds the parsed package ------------------------------


@pytest.fixture
def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any hardened parse fail, wherever trust could reach edxml.parser.parse_xml."""
    from edoc_axis.edxml import parser
    from edoc_axis.trust import signature as signature_module

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("parse_xml called on a package the caller had already parsed")

    monkeypatch.setattr(parser, "parse_xml", refuse)
    monkeypatch.setattr(signature_module, "parse_xml", refuse)


def _parsed(data: bytes) -> etree._Element:
    from edoc_axis.edxml.parser import parse_xml

    return parse_xml(data).getroot()


def test_verify_tree_parses_nothing_and_leaves_the_tree_alone(signed_g22, store, request) -> None:
    """verify_tree on an already parsed package gives verify's verdict without parsing again,
    and the caller's tree is unchanged (signxml works on copies)."""
    expected = verify(signed_g22, store)
    root = _parsed(signed_g22)
    before = etree.tostring(root)
    request.getfixturevalue("no_parsing")
    result = verify_tree(root, store)
    assert result.to_dict() == expected.to_dict()
    assert etree.tostring(result.signed_root) == etree.tostring(expected.signed_root)
    assert result.signed_root is not root
    assert etree.tostring(root) == before


def test_verify_tree_keeps_every_check(signed_g22, store, request) -> None:
    """The tree form refuses what the bytes form refuses, by the same code."""
    tampered = signed_g22.replace("thử nghiệm".encode(), "giả mạo".encode())
    edxml_ns = _into_edxml_namespace(signed_g22)
    comment = signed_g22.replace("thử nghiệm".encode(), "thử<!-- x --> nghiệm".encode())
    trees = [_parsed(d) for d in (tampered, edxml_ns, comment)]
    request.getfixturevalue("no_parsing")
    codes = []
    for root in trees:
        with pytest.raises(SignatureInvalid) as info:
            verify_tree(root, store)
        codes.append(info.value.code)
    assert codes == ["SIG_DIGEST_MISMATCH", "SIG_WRONG_NAMESPACE", "SIG_COMMENT_INJECTION"]


def test_verify_tree_reads_an_edxml_namespace_signature_in_a_copy(signed_g22, store) -> None:
    """Reading an edXML-namespace Signature as XML-DSig does not rewrite the caller's tree."""
    root = _parsed(_into_edxml_namespace(signed_g22))
    before = etree.tostring(root)
    result = verify_tree(root, store, SignaturePolicy(accept_edxml_namespace=True))
    assert result.signer_organ_id == G22
    assert etree.tostring(root) == before


def test_sign_tree_matches_sign_and_leaves_the_tree_alone(pki, edxml_document, store) -> None:
    """sign_tree gives sign's bytes (RSA is deterministic) plus the tree they serialise, and
    takes its placeholder out of the caller's tree again."""
    agency = pki.agencies[G22]
    unsigned = edxml_document(G22, H41)
    root = _parsed(unsigned)
    before = etree.tostring(root)
    data, signed_root = sign_tree(root, agency.key, agency.cert)
    assert data == sign(unsigned, agency.key, agency.cert)
    assert etree.tostring(root) == before
    assert etree.tostring(signed_root) == etree.tostring(_parsed(data))
    assert verify_tree(signed_root, store).signer_organ_id == G22


def test_sign_tree_failure_leaves_the_tree_alone(pki, edxml_document, monkeypatch) -> None:
    """When signxml fails, the placeholder still comes out of the caller's tree."""
    from edoc_axis.trust import signature as signature_module

    def fail(*args: object) -> etree._Element:
        raise TrustError("signing failed: injected", code="SIGN_FAILED")

    monkeypatch.setattr(signature_module, "sign_enveloped", fail)
    root = _parsed(edxml_document(G22, H41))
    before = etree.tostring(root)
    agency = pki.agencies[G22]
    with pytest.raises(TrustError):
        sign_tree(root, agency.key, agency.cert)
    assert etree.tostring(root) == before


# --- garbage never escapes as a traceback --------------------------------------------------------


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: re.sub(rb"<ds:SignatureValue>[^<]*", b"<ds:SignatureValue>!!notbase64!!", s),
        lambda s: re.sub(rb"<ds:X509Certificate>[^<]*", b"<ds:X509Certificate>AAAA", s),
        lambda s: re.sub(rb"<ds:KeyInfo>.*</ds:KeyInfo>", b"", s, flags=re.DOTALL),
        lambda s: re.sub(rb"<ds:DigestValue>[^<]*", b"<ds:DigestValue>@@", s),
        lambda s: re.sub(rb"<ds:SignedInfo>.*</ds:SignedInfo>", b"", s, flags=re.DOTALL),
        lambda s: s.replace(b"<ds:KeyInfo>", b"<ds:KeyInfo><ds:KeyValue/>"),
    ],
)
def test_garbled_signatures_give_codes_not_tracebacks(
    signed_g22: bytes, store: TrustStore, mutate: Callable[[bytes], bytes]
) -> None:
    """Broken base64, certificates, missing parts: a SignatureInvalid with a SIG_* code."""
    data = mutate(signed_g22)
    assert data != signed_g22
    assert _code(data, store).startswith("SIG_")


def test_padded_certificate_text_verifies_but_is_not_cached(signed_g22, store) -> None:
    """Whitespace-padded X509Certificate text still verifies; only short texts are cache keys."""
    root = _tree(signed_g22)
    element = root.find(f".//{D}X509Certificate")
    assert element is not None and element.text is not None
    padded = element.text + "\n" * 20_000
    element.text = padded
    result = verify(_bytes(root), store)
    assert result.signer_organ_id == G22
    assert padded not in structure._CERT_CACHE
    assert all(len(key) <= structure._CACHED_CERT_TEXT_MAX for key in structure._CERT_CACHE)
