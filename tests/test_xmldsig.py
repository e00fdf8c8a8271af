"""Tests for trust.xmldsig: signxml's speed-ups give signxml's own results, and it is the one
place signxml is used (pinned to 5.x in setup.cfg)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from lxml import etree

from edoc_axis.edxml.model import DSIG_NS
from edoc_axis.trust import xmldsig
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.policy import SignaturePolicy
from edoc_axis.trust.signature import sign, verify

G22, H41 = "000.00.00.G22", "000.00.00.H41"
D = f"{{{DSIG_NS}}}"


@pytest.fixture(scope="module")
def store(pki) -> TrustStore:
    """A trust store with the test CA and its fresh CRL."""
    return pki.trust_store()


@pytest.fixture(scope="module")
def signed_g22(pki, edxml_document) -> bytes:
    """A document from G22, signed by G22's RSA key."""
    agency = pki.agencies[G22]
    return sign(edxml_document(G22, H41), agency.key, agency.cert)


_TRICKY_DOCUMENTS = [
    b'<?xml version="1.0"?>\n<!-- prolog --><?pi before?><r xmlns="urn:d" xmlns:u="urn:unused"'
    b' xmlns:a="urn:a" a:x="1&#10;2&#9;3" xml:lang="vi"><a:b>t&#13;x &amp; &lt;y&gt;</a:b>'
    b"<!-- c --><?pi inside?><![CDATA[ <cdata> ]]><e/>\xe1\xba\xa1 </r><!-- epilog --><?pi after?>",
    b'<r><x xmlns:p="urn:p" p:a="v"><p:y xmlns="urn:z"/></x> <ds:Signature xmlns:ds="'
    + DSIG_NS.encode()
    + b'"><ds:SignedInfo/></ds:Signature>\n tail</r>',
]


@pytest.mark.parametrize("document", _TRICKY_DOCUMENTS)
def test_root_deep_copy_equals_signxml_serialise_and_reparse(document: bytes) -> None:
    """A root copied in C canonicalizes, with or without the Signature, exactly like a re-parse."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(document, parser)
    processor = xmldsig._Verifier()
    processor._parser = parser
    note = processor._tostring(root)
    assert type(note) is xmldsig._RootCopy
    assert bytes(note) == b""  # anything but _fromstring reading it gets no XML at all
    copied = processor._fromstring(note)
    reparsed = etree.fromstring(etree.tostring(root), parser)
    assert copied is not root
    assert etree.tostring(copied) == etree.tostring(reparsed)
    for tree in (copied, reparsed):
        for sig in tree.iter(f"{D}Signature"):
            from signxml.util import _remove_sig

            _remove_sig(sig)
    for exclusive in (False, True):
        for with_comments in (False, True):
            assert etree.tostring(
                copied, method="c14n", exclusive=exclusive, with_comments=with_comments
            ) == etree.tostring(
                reparsed, method="c14n", exclusive=exclusive, with_comments=with_comments
            )
    assert len(root.findall(f".//{D}Signature")) == document.count(b"<ds:Signature")


def test_non_root_elements_still_serialised_by_signxml() -> None:
    """Only a document's root takes the deep-copy path; a subtree keeps signxml's round trip."""
    root = etree.fromstring(b'<r xmlns:a="urn:a"><a:b/></r>')
    out = xmldsig._Verifier()._tostring(root[0])
    assert type(out) is bytes and b'xmlns:a="urn:a"' in out
    assert type(xmldsig._Verifier()._fromstring(b"<x/>")) is etree._Element


def test_signxml_copies_only_through_the_fromstring_tostring_idiom() -> None:
    """Fail loudly if signxml serialises elements for any other purpose than copying them."""
    import inspect

    import signxml.processor
    import signxml.signer
    import signxml.verifier

    for module in (signxml.processor, signxml.signer, signxml.verifier):
        source = inspect.getsource(module)
        uses = len(re.findall(r"self\._tostring\(", source))
        copies = len(re.findall(r"self\._fromstring\(self\._tostring\(", source))
        assert uses == copies, f"{module.__name__} uses _tostring outside the copy idiom"
    hooks = {
        "_tostring": ["self", "xml_node", "kwargs"],
        "_fromstring": ["self", "xml_string", "kwargs"],
        "get_root": ["self", "data"],
        "_get_cert_validity_error": ["self", "cert", "cert_source"],
        "_get_cert_verification_time": ["self"],
    }
    from signxml.signer import XMLSigner
    from signxml.util import SigningSettings
    from signxml.verifier import XMLVerifier

    for name, params in hooks.items():
        assert list(inspect.signature(getattr(XMLVerifier, name)).parameters) == params, name
    for name, params in {
        "_ds_tag": ["self", "tag"],
        "_add_key_info": ["self", "sig_root", "signing_settings"],
    }.items():
        assert list(inspect.signature(getattr(XMLSigner, name)).parameters) == params, name
    assert set(SigningSettings.__dataclass_fields__) == {
        "key",
        "key_name",
        "key_info",
        "always_add_key_value",
        "cert_chain",
    }
    assert "self.signature_annotators = [self._add_key_info]" in inspect.getsource(XMLSigner)


def test_verify_and_sign_copy_the_package_in_c_not_as_text(
    pki, signed_g22, store, edxml_document, monkeypatch
) -> None:
    """The speed-up is live: signxml copies the package twice per call, never as text."""
    from signxml.processor import XMLProcessor

    roots_serialised: list[etree._Element] = []
    original = XMLProcessor._tostring

    def spy(self: object, node: etree._Element, **kw: object) -> bytes:
        if node.getparent() is None:
            roots_serialised.append(node)
        return original(self, node, **kw)  # type: ignore[no-any-return]

    copies: list[int] = []
    deepcopy = xmldsig.copy.deepcopy
    monkeypatch.setattr(XMLProcessor, "_tostring", spy)
    monkeypatch.setattr(xmldsig.copy, "deepcopy", lambda el: copies.append(1) or deepcopy(el))
    verify(signed_g22, store)
    assert (len(copies), roots_serialised) == (2, [])
    agency = pki.agencies[G22]
    sign(edxml_document(G22, H41), agency.key, agency.cert)
    assert (len(copies), roots_serialised) == (4, [])


@pytest.mark.parametrize("days", [-40, 0, 2])
def test_certificate_validity_verdict_same_as_signxml(pki, days: int) -> None:
    """The lazy validity check returns signxml's exact verdict and message."""
    from signxml.verifier import SignatureConfiguration, XMLVerifier

    cert = pki.agencies[G22].cert
    verifier = xmldsig._Verifier()
    for at in (
        cert.not_valid_before_utc - dt.timedelta(seconds=1),
        cert.not_valid_before_utc,
        dt.datetime.now(dt.UTC) + dt.timedelta(days=days),
        cert.not_valid_after_utc,
        cert.not_valid_after_utc + dt.timedelta(seconds=1),
    ):
        verifier.config = SignatureConfiguration(verification_time=at)
        assert verifier._get_cert_validity_error(cert, "x") == XMLVerifier._get_cert_validity_error(
            verifier, cert, "x"
        )


def test_signxml_version_is_the_pinned_one() -> None:
    """trust.xmldsig overrides signxml internals checked for 5.x; a new major needs a re-check."""
    from importlib.metadata import version

    assert version("signxml").split(".")[0] == "5"


@pytest.mark.parametrize("with_chain", [False, True])
def test_signer_output_byte_identical_to_plain_signxml(
    pki, edxml_document, edxml_status, monkeypatch, with_chain: bool
) -> None:
    """Our signxml subclass signs byte for byte as plain XMLSigner does (RSA PKCS#1 v1.5)."""
    from signxml.signer import XMLSigner

    agency = pki.agencies[G22]
    chain = [pki.ca_cert] if with_chain else []
    packages = [edxml_document(G22, H41, attachment=b"\x00\xff" * 300), edxml_status(G22, H41)]
    ours = [sign(p, agency.key, agency.cert, chain=chain) for p in packages]
    monkeypatch.setattr(xmldsig, "_Signer", XMLSigner)
    assert [sign(p, agency.key, agency.cert, chain=chain) for p in packages] == ours


@pytest.mark.parametrize("nsmap", [{"ds": DSIG_NS}, {None: DSIG_NS}, {"x": DSIG_NS}])
def test_ds_tag_same_as_signxml(nsmap: dict[str | None, str]) -> None:
    """The cast-free _ds_tag gives signxml's QName for each namespace mapping."""
    from signxml.signer import XMLSigner

    signer = xmldsig._Signer()
    signer.namespaces = nsmap  # type: ignore[assignment]
    for tag in ("Signature", "KeyInfo"):
        assert signer._ds_tag(tag).text == XMLSigner._ds_tag(signer, tag).text


def test_policy_tables_are_signxml_names() -> None:
    """The URI tables in trust.policy are signxml's names, and what xmldsig hands signxml."""
    from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

    from edoc_axis.trust import policy

    sha1 = {SignatureMethod.RSA_SHA1.value, SignatureMethod.ECDSA_SHA1.value}
    assert sha1 == policy.SHA1_SIGNATURE_METHODS
    assert policy.STRONG_SIGNATURE_METHODS | sha1 <= {m.value for m in SignatureMethod}
    assert DigestAlgorithm.SHA1.value == policy.SHA1
    assert policy.STRONG_DIGESTS | {policy.SHA1} <= {d.value for d in DigestAlgorithm}
    assert {m.value for m in CanonicalizationMethod} == policy.C14N_METHODS
    for allow_sha1 in (False, True):
        config = xmldsig._CONFIGS[allow_sha1]
        wanted = SignaturePolicy(allow_sha1=allow_sha1)
        assert {m.value for m in config.signature_methods} == wanted.signature_methods
        assert {d.value for d in config.digest_algorithms} == wanted.digest_methods
    assert not any("sha1" in m.lower() for m in SignaturePolicy().signature_methods)


def test_only_xmldsig_imports_signxml() -> None:
    """signxml has one importer in the package: trust.xmldsig."""
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent / "edoc_axis"
    importers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(r"^\s*(from|import) signxml\b", path.read_text(encoding="utf-8"), re.M)
    )
    assert importers == ["trust/xmldsig.py"]
