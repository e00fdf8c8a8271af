"""Tests of edxml.parsed: a package read once (bytes, SHA-256, tree, model on first use, claims)
and judged without being parsed again."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from conftest import make_document

from edoc_axis.edxml.model import DocumentPackage, StatusPackage
from edoc_axis.edxml.parsed import Body, ParsedPackage, read_package
from edoc_axis.edxml.parser import PARSE_STATS
from edoc_axis.edxml.profile import RECEIVED
from edoc_axis.edxml.schema import accept, check, validate
from edoc_axis.edxml.write import build
from edoc_axis.errors import HostileInput, MalformedPackage, RuleViolation, SchemaViolation


def _work(before: tuple[int, int]) -> tuple[int, int]:
    parses, builds = PARSE_STATS.snapshot()
    return parses - before[0], builds - before[1]


def test_read_package_parses_once_and_builds_one_model(sample_document: bytes) -> None:
    """read_package: one hardened parse, the SHA-256 of exactly those bytes, and one model,
    read on first use and kept."""
    before = PARSE_STATS.snapshot()
    parsed = read_package(sample_document)
    assert _work(before) == (1, 0)
    assert parsed.model is parsed.model
    assert _work(before) == (1, 1)
    assert parsed.sha256 == hashlib.sha256(sample_document).hexdigest()
    assert parsed.data is parsed.body.data and parsed.data == sample_document
    assert isinstance(parsed.model, DocumentPackage) and parsed.kind == "edoc"
    assert not parsed.signed
    assert parsed.root.getroottree().getroot() is parsed.root


def test_schema_on_a_parsed_package_parses_nothing_more(sample_document: bytes) -> None:
    """check, validate and accept on a ParsedPackage parse zero times and build no model."""
    parsed = read_package(sample_document)
    assert parsed.model is not None
    before = PARSE_STATS.snapshot()
    assert check(parsed) is parsed.model
    report = validate(parsed)
    accepted = accept(parsed, profile=RECEIVED)
    assert _work(before) == (0, 0)
    assert report.valid and report.package is parsed.model and report.kind == "edoc"
    assert accepted.parsed is parsed and accepted.warnings == ()


def test_accept_of_bytes_returns_the_package_read_once(sample_status: bytes) -> None:
    """accept(bytes) parses once, builds no model until one is asked for, and hands back the
    value for the next steps."""
    before = PARSE_STATS.snapshot()
    accepted = accept(sample_status)
    assert _work(before) == (1, 0)
    assert isinstance(accepted.parsed, ParsedPackage) and accepted.parsed.kind == "status"
    assert isinstance(accepted.package, StatusPackage)
    assert _work(before) == (1, 1)
    assert accepted.parsed.sha256 == hashlib.sha256(sample_status).hexdigest()


def test_findings_on_a_parsed_package_match_those_on_bytes(sample_document: bytes) -> None:
    """A ParsedPackage is judged exactly as its bytes are: same findings, same error."""
    broken = sample_document.replace(b"<Priority>1<", b"<Priority>9<")
    parsed = read_package(broken)
    assert validate(parsed).to_dict() == validate(broken).to_dict()
    assert validate(parsed).package is None
    with pytest.raises(RuleViolation) as on_parsed:
        check(parsed)
    with pytest.raises(RuleViolation) as on_bytes:
        check(broken)
    assert on_parsed.value.to_dict() == on_bytes.value.to_dict()


def test_read_package_refuses_what_the_reader_refuses() -> None:
    """Hostile or non-edXML bytes raise the parser's and the reader's codes."""
    with pytest.raises(HostileInput) as hostile:
        read_package(b'<!DOCTYPE x [<!ENTITY a "b">]><edXML/>')
    assert hostile.value.code == "XML_DOCTYPE"
    with pytest.raises(MalformedPackage) as other:
        read_package(b"<root/>")
    assert other.value.code == "PACKAGE_NOT_EDXML"


def test_a_model_the_reader_cannot_build_gets_the_validator_code_through_accept() -> None:
    """Through accept, a package without From is refused by the XSD's code, as before; read
    without judging, its model is what raises."""
    data = build(make_document()).replace(b"<From>", b"<Gone>").replace(b"</From>", b"</Gone>")
    parsed = read_package(data)
    assert parsed.claims.sender == ""
    with pytest.raises(MalformedPackage) as reader:
        parsed.model  # noqa: B018 - the property raises
    assert reader.value.code == "PACKAGE_STRUCTURE"
    with pytest.raises(SchemaViolation) as validator:
        accept(data)
    assert validator.value.code == "SCHEMA_UNEXPECTED_ELEMENT"


def test_body_reads_back_and_values_are_frozen(sample_document: bytes) -> None:
    """Body gives size and a fresh reader; neither value can be changed."""
    body = Body(sample_document)
    assert body.size == len(sample_document)
    with body.open() as first, body.open() as second:
        assert first.read(5) == second.read(5) == sample_document[:5]
    parsed = read_package(sample_document)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.sha256 = "0" * 64  # type: ignore[misc]


def test_claims_are_read_from_the_tree_without_a_model(sample_document: bytes,
                                                       sample_status: bytes) -> None:
    """claims: kind, From, addressees, DocumentId and signed, as the model has them; no model
    is built to read them."""
    for data in (sample_document, sample_status):
        parsed = read_package(data)
        before = PARSE_STATS.snapshot()
        claims = parsed.claims
        assert _work(before) == (0, 0)
        model = parsed.model
        assert (claims.kind, claims.sender, claims.signed) == (
            model.kind, model.sender.organ_id, model.signed)
        if isinstance(model, DocumentPackage):
            assert claims.addressees == tuple(o.organ_id for o in model.recipients)
            assert claims.document_id == model.document_id
        else:
            assert isinstance(model, StatusPackage)
            assert claims.addressees == (model.response_for.organ_id,)
            assert claims.document_id == model.response_for.document_id


def test_signed_is_read_from_the_header(data_dir: Path) -> None:
    """A Signature in either namespace makes a package signed, as the model says."""
    for name in ("doc-signature-dsig-prefix.edxml", "doc-signature-edxml-ns.edxml",
                 "doc-signature-xmldsig-ns.edxml", "doc-business-0-new.edxml"):
        parsed = read_package((data_dir / "valid" / name).read_bytes())
        assert parsed.signed == parsed.claims.signed == parsed.model.signed
        assert parsed.signed == ("signature" in name)
