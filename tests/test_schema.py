"""Tests of edxml.schema: the corpora, XSD codes, check/validate, schemas per thread."""

from __future__ import annotations

import threading
import time
from importlib.resources import files
from pathlib import Path

import pytest
from conftest import (
    HOSTILE_PACKAGES,
    INVALID_PACKAGES,
    VALID_PACKAGES,
    expected_code,
    make_document,
)

from edoc_axis.edxml.model import DocumentPackage
from edoc_axis.edxml.rule import RULE_CODES
from edoc_axis.edxml.schema import SCHEMA_CODES, check, load_schema, validate
from edoc_axis.edxml.write import build
from edoc_axis.errors import HostileInput, MalformedPackage, RuleViolation, SchemaViolation

HEADER = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"


def _codes(data: bytes) -> set[str]:
    return {f.code for f in validate(data).findings}


# --- corpora -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", VALID_PACKAGES, ids=lambda path: path.name)
def test_valid_corpus_is_valid(path: Path) -> None:
    """Every valid corpus file passes schema and rules and yields its model."""
    report = validate(path.read_bytes())
    assert report.findings == []
    assert report.valid and report.package is not None and report.kind == report.package.kind


@pytest.mark.parametrize("path", INVALID_PACKAGES, ids=lambda path: path.name)
def test_invalid_corpus_yields_exactly_its_code(path: Path) -> None:
    """Each invalid corpus file is refused with the one code its name announces."""
    report = validate(path.read_bytes())
    assert not report.valid and report.package is None
    assert {f.code for f in report.findings} == {expected_code(path)}


@pytest.mark.parametrize("path", HOSTILE_PACKAGES, ids=lambda path: path.name)
def test_hostile_corpus_is_refused_fast(path: Path) -> None:
    """Each hostile file is refused with its code in well under a second."""
    data = path.read_bytes()
    started = time.perf_counter()
    report = validate(data)
    assert time.perf_counter() - started < 0.5
    assert [f.code for f in report.findings] == [expected_code(path)]


def test_every_code_has_a_corpus_file() -> None:
    """One invalid corpus file (at least) per rule and schema code."""
    covered = {expected_code(path) for path in INVALID_PACKAGES}
    assert set(RULE_CODES) | set(SCHEMA_CODES) <= covered


def test_schema_codes() -> None:
    """Unknown, missing and misplaced content get the SCHEMA_* codes with the element path."""
    data = build(make_document())
    report = validate(data.replace(b"<Subject>", b"<Subjekt>x</Subjekt><Subject>"))
    [finding] = report.findings
    assert finding.code == "SCHEMA_UNEXPECTED_ELEMENT"
    assert finding.element == f"{HEADER}/Subjekt" and "Subjekt" in finding.message
    missing = data.replace(b"<CodeNumber>12</CodeNumber>", b"")
    assert _codes(missing) == {"SCHEMA_MISSING_ELEMENT"}
    stray = data.replace(
        b"</edXMLHeader>",
        b'<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></edXMLHeader>',
    )
    assert _codes(stray) == {"SCHEMA_UNEXPECTED_ELEMENT"}


# --- check, schemas, threads --------------------------------------------------------------------


def test_check_returns_the_model_or_raises_the_right_error(sample_document: bytes) -> None:
    """check() gives the package, or HostileInput/MalformedPackage/SchemaViolation/RuleViolation."""
    assert isinstance(check(sample_document), DocumentPackage)
    with pytest.raises(HostileInput):
        check(b'<!DOCTYPE edXML SYSTEM "x"><edXML/>')
    with pytest.raises(MalformedPackage):
        check(b"<edXML>")
    with pytest.raises(SchemaViolation) as schema_error:
        check(sample_document.replace(b"<Subject>", b"<Foo/><Subject>"))
    assert schema_error.value.code == "SCHEMA_UNEXPECTED_ELEMENT"
    with pytest.raises(RuleViolation) as rule_error:
        check(sample_document.replace(b"<Priority>1<", b"<Priority>9<"))
    assert rule_error.value.code == "PRIORITY_DOMAIN"
    assert rule_error.value.element == f"{HEADER}/OtherInfo/Priority"


def test_schemas_load_from_the_installed_package() -> None:
    """The XSDs are package resources of edoc_axis.schemas and compile."""
    names = {r.name for r in files("edoc_axis.schemas").iterdir()}
    assert {"edxml-common.xsd", "edxml-document.xsd", "edxml-status.xsd"} <= names
    assert load_schema("edoc") is not load_schema("status")


def test_validate_from_many_threads(sample_document: bytes, sample_status: bytes) -> None:
    """Concurrent validation (one compiled schema per thread) gives the same answers."""
    broken = sample_document.replace(b"<Subject>", b"<Foo/><Subject>")
    errors: list[str] = []

    def work() -> None:
        for _ in range(30):
            if not (validate(sample_document).valid and validate(sample_status).valid):
                errors.append("valid package refused")
            if _codes(broken) != {"SCHEMA_UNEXPECTED_ELEMENT"}:
                errors.append("broken package accepted")

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_finding_to_dict() -> None:
    """Findings serialize to code, severity, message, element, value, line."""
    report = validate(build(make_document(steering_type="7")))
    assert report.to_dict()["findings"][0] == {
        "code": "STEERING_TYPE_DOMAIN",
        "severity": "error",
        "message": "SteeringType '7' is not one of 1, 2, 3",
        "element": f"{HEADER}/SteeringType",
        "value": "7",
        "line": report.findings[0].line,
    }
