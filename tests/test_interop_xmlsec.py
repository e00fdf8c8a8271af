"""Interoperability with the xmlsec1 command-line tool, in both directions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edoc_axis.errors import SignatureInvalid
from edoc_axis.ops import pki as dev_pki
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.policy import SignaturePolicy
from edoc_axis.trust.signature import sign, verify

XMLSEC1 = shutil.which("xmlsec1")
pytestmark = pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 not installed (scripts/setup)")

G22, H41 = "000.00.00.G22", "000.00.00.H41"


def _template(unsigned: bytes, signature_method: str, digest_method: str, *, prefix: bool) -> bytes:
    """Put an empty XML-DSig template as the last child of edXMLHeader, as producers do."""
    p = "ds:" if prefix else ""
    decl = (
        'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
        if prefix
        else ('xmlns="http://www.w3.org/2000/09/xmldsig#"')
    )
    template = (
        f"<{p}Signature {decl}><{p}SignedInfo>"
        f'<{p}CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        f'<{p}SignatureMethod Algorithm="{signature_method}"/>'
        f'<{p}Reference URI=""><{p}Transforms>'
        f'<{p}Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
        f'<{p}Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        f'</{p}Transforms><{p}DigestMethod Algorithm="{digest_method}"/>'
        f"<{p}DigestValue/></{p}Reference></{p}SignedInfo><{p}SignatureValue/>"
        f"<{p}KeyInfo><{p}X509Data/></{p}KeyInfo></{p}Signature>"
    )
    return unsigned.replace(b"</edXMLHeader>", template.encode() + b"</edXMLHeader>")


def _xmlsec_sign(tmp_path: Path, pki, template: bytes, organ_id: str) -> bytes:
    agency = pki.agencies[organ_id]
    src, out = tmp_path / "template.xml", tmp_path / "signed-by-xmlsec.xml"
    src.write_bytes(template)
    subprocess.run(
        [
            XMLSEC1,
            "--sign",
            "--privkey-pem",
            f"{agency.key_path},{agency.cert_path}",
            "--output",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return out.read_bytes()


def test_our_signature_verifies_with_xmlsec1(tmp_path: Path, pki, edxml_document) -> None:
    """Packages we sign (RSA and ECDSA) verify with xmlsec1 --verify --trusted-pem CA."""
    for organ_id in (G22, H41):
        agency = pki.agencies[organ_id]
        path = tmp_path / f"{organ_id}.xml"
        path.write_bytes(
            sign(edxml_document(organ_id, G22, attachment=b"PK data"), agency.key, agency.cert)
        )
        done = subprocess.run(
            [XMLSEC1, "--verify", "--trusted-pem", str(pki.ca_path), str(path)],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()


def test_xmlsec1_detects_our_tampered_package(tmp_path: Path, pki, edxml_document) -> None:
    """xmlsec1 rejects a package we signed and someone then changed (the check is real)."""
    agency = pki.agencies[G22]
    path = tmp_path / "tampered.xml"
    signed = sign(edxml_document(), agency.key, agency.cert)
    path.write_bytes(signed.replace("Hà Nội".encode(), b"Hue", 1))
    done = subprocess.run(
        [XMLSEC1, "--verify", "--trusted-pem", str(pki.ca_path), str(path)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0


@pytest.mark.parametrize(
    ("organ_id", "method"),
    [
        (G22, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"),
        (H41, "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"),
    ],
)
def test_xmlsec1_signature_verifies_with_ours(  # noqa: PLR0917 - fixtures
    tmp_path: Path, pki, edxml_document, edxml_status, organ_id: str, method: str
) -> None:
    """A document and a status signed by xmlsec1 with an agency key verify with ours."""
    store = pki.trust_store()
    for unsigned in (edxml_document(organ_id, G22, attachment=b"zip"), edxml_status(organ_id, G22)):
        template = _template(
            unsigned, method, "http://www.w3.org/2001/04/xmlenc#sha256", prefix=True
        )
        signed = _xmlsec_sign(tmp_path, pki, template, organ_id)
        result = verify(signed, store)
        assert result.signer_organ_id == organ_id
        with pytest.raises(SignatureInvalid) as info:
            verify(signed.replace(b"<OrganName>", b"<OrganName>X", 1), store)
        assert info.value.code == "SIG_DIGEST_MISMATCH"


def test_xmlsec1_sha1_signature_is_legacy_only(tmp_path: Path, pki, edxml_document) -> None:
    """rsa-sha1/sha1: SIG_ALGORITHM by default, valid with a warning under allow_sha1."""
    template = _template(
        edxml_document(),
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        "http://www.w3.org/2000/09/xmldsig#sha1",
        prefix=True,
    )
    signed = _xmlsec_sign(tmp_path, pki, template, G22)
    store = pki.trust_store()
    with pytest.raises(SignatureInvalid) as info:
        verify(signed, store)
    assert info.value.code == "SIG_ALGORITHM"
    result = verify(signed, store, SignaturePolicy(allow_sha1=True))
    assert result.signer_organ_id == G22
    assert any("SHA-1" in w for w in result.warnings)


def test_default_namespace_signature_that_lost_its_namespace(
    tmp_path: Path, pki, edxml_document
) -> None:
    """The real quirk: an unprefixed Signature that lost xmlns falls in the edXML namespace."""
    template = _template(
        edxml_document(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmlenc#sha256",
        prefix=False,
    )
    signed = _xmlsec_sign(tmp_path, pki, template, G22)
    quirky = signed.replace(
        b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">', b"<Signature>"
    )
    assert quirky != signed
    store = pki.trust_store()
    assert verify(signed, store).signer_organ_id == G22
    with pytest.raises(SignatureInvalid) as info:
        verify(quirky, store)
    assert info.value.code == "SIG_WRONG_NAMESPACE"
    result = verify(quirky, store, SignaturePolicy(accept_edxml_namespace=True))
    assert result.signer_organ_id == G22
    assert result.warnings


def test_intermediate_chain_in_keyinfo_verifies_everywhere(
    tmp_path: Path, pki, edxml_document
) -> None:
    """With an intermediate CA, the chain in X509Data lets both us and xmlsec1 reach the root."""
    int_key, int_cert = dev_pki.issue_intermediate(pki.ca_key, pki.ca_cert)
    key, cert = dev_pki.issue_agency_certificate(int_key, int_cert, G22, "VPCP")
    signed = sign(edxml_document(), key, cert, chain=[int_cert])
    store = TrustStore(
        anchors=[pki.ca_cert],
        crls=[dev_pki.make_crl(pki.ca_key, pki.ca_cert), dev_pki.make_crl(int_key, int_cert)],
    )
    assert verify(signed, store).signer_organ_id == G22
    path = tmp_path / "chain.xml"
    path.write_bytes(signed)
    done = subprocess.run(
        [XMLSEC1, "--verify", "--trusted-pem", str(pki.ca_path), str(path)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
