"""Tests of edxml.schema and edxml.rule: XSD structure, rule codes, hostile input."""

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

from edoc_axis.edxml.attachment import add_attachment
from edoc_axis.edxml.limits import XmlLimits
from edoc_axis.edxml.model import (
    Business,
    BusinessDocumentInfo,
    DocumentPackage,
    DocumentType,
    Organization,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    ResponseFor,
    StatusPackage,
    TraceHeader,
)
from edoc_axis.edxml.rule import RULE_CODES
from edoc_axis.edxml.schema import SCHEMA_CODES, check, load_schema, validate
from edoc_axis.edxml.write import build
from edoc_axis.errors import (
    HostileInput,
    MalformedPackage,
    RuleViolation,
    SchemaViolation,
)

HEADER = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"


def _codes(data: bytes) -> set[str]:
    return {f.code for f in validate(data).findings}



def _status(code: str, sender: str, to: str, doc_sender: str) -> bytes:
    return build(
        StatusPackage(
            sender=Organization(sender, "X"),
            response_for=ResponseFor(to, "12/A", "2024/03/05", f"{doc_sender},2024/03/05,12/A"),
            status_code=code,
            timestamp="2024/03/05 10:00:00",
        )
    )


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


# --- generated hostile input -------------------------------------------------------------------


def test_oversize_input_is_refused_by_the_configured_limit() -> None:
    """Bytes over max_bytes are refused before parsing."""
    data = build(make_document(content="x" * 400)) + b" " * 2_000_000
    started = time.perf_counter()
    report = validate(data, XmlLimits(max_bytes=1_000_000))
    assert time.perf_counter() - started < 0.5
    assert [f.code for f in report.findings] == ["XML_TOO_LARGE"]


def test_absurd_nesting_is_refused_fast() -> None:
    """100,000 nested elements are refused quickly."""
    data = b"<edXML>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</edXML>"
    started = time.perf_counter()
    report = validate(data)
    assert time.perf_counter() - started < 0.5
    assert [f.code for f in report.findings] == ["XML_TOO_DEEP"]


def test_element_flood_is_refused_fast() -> None:
    """A flat flood of elements beyond the element limit is refused before building a tree."""
    data = b"<edXML>" + b"<a/>" * 300_000 + b"</edXML>"
    started = time.perf_counter()
    report = validate(data)
    assert time.perf_counter() - started < 0.5
    assert [f.code for f in report.findings] == ["XML_TOO_MANY_ELEMENTS"]


# --- one test per rule code, on packages built by the model -----------------------------------


def test_rule_cardinality() -> None:
    """Two Code elements break CARDINALITY (free order hides it from the XSD)."""
    data = build(make_document()).replace(
        b"<Subject>",
        b"<Code><CodeNumber>1</CodeNumber><CodeNotation>A</CodeNotation></Code><Subject>",
    )
    assert _codes(data) == {"CARDINALITY"}


def test_rule_organid_format() -> None:
    """A malformed recipient OrganId is refused; the lenient form is not."""
    assert _codes(build(make_document(recipients=[Organization("01.02.G22")]))) == {
        "ORGANID_FORMAT"
    }
    assert _codes(build(make_document(recipients=[Organization("001.00.20.TT2")]))) == set()


def test_rule_date_format_names_day_first_dates() -> None:
    """A dd/MM/yyyy PromulgationDate is refused with a message saying so, at its path and line."""
    report = validate(build(make_document(promulgation=PromulgationInfo("HN", "05/03/2024"))))
    [finding] = report.findings
    assert finding.code == "DATE_FORMAT" and "dd/MM/yyyy" in finding.message
    assert finding.element == f"{HEADER}/PromulgationInfo/PromulgationDate"
    assert finding.line is not None and finding.line > 1


def test_rule_timestamp_format() -> None:
    """A trace timestamp without seconds is refused."""
    doc = make_document(trace_headers=[TraceHeader("000.00.00.G22", "2024/03/05 09:15")])
    assert _codes(build(doc)) == {"TIMESTAMP_FORMAT"}


def test_rule_priority_domain() -> None:
    """Priority must be 0-4."""
    codes = _codes(build(make_document(other_info=OtherInfo(priority="5"))))
    assert codes == {"PRIORITY_DOMAIN"}
    assert _codes(build(make_document(other_info=OtherInfo(priority="4")))) == set()


def test_rule_steering_type_domain() -> None:
    """SteeringType must be 1-3."""
    assert _codes(build(make_document(steering_type="0"))) == {"STEERING_TYPE_DOMAIN"}


def test_rule_document_type_domain() -> None:
    """Type must be 1 or 2 and TypeDetail an integer."""
    bad_type = make_document(document_type=DocumentType("9", "2", "Công văn"))
    bad_detail = make_document(document_type=DocumentType("1", "hai", "Công văn"))
    assert _codes(build(bad_type)) == {"DOCUMENT_TYPE_DOMAIN"}
    assert _codes(build(bad_detail)) == {"DOCUMENT_TYPE_DOMAIN"}


def test_rule_status_code_domain() -> None:
    """Only the known status codes pass."""
    assert _codes(_status("99", "000.00.00.H41", "000.00.00.G22", "000.00.00.G22")) == {
        "STATUS_CODE_DOMAIN"
    }


def test_rule_business_doc_type_domain() -> None:
    """BussinessDocType must be 0-3."""
    assert _codes(build(make_document(business=Business(doc_type=4)))) == {
        "BUSINESS_DOC_TYPE_DOMAIN"
    }


def test_rule_receiver_type_domain() -> None:
    """ReceiverType must be 0 or 1."""
    info = BusinessDocumentInfo(receivers=[Receiver("000.00.00.H17", "3")])
    doc = make_document(business=Business(doc_type=2, document_info=info))
    assert _codes(build(doc)) == {"RECEIVER_TYPE_DOMAIN"}


def test_rule_business_doc_detail() -> None:
    """Receiver changes belong to an update only."""
    info = BusinessDocumentInfo(receivers=[Receiver("000.00.00.H17", "1")])
    doc = make_document(business=Business(doc_type=0, document_info=info))
    assert _codes(build(doc)) == {"BUSINESS_DOC_DETAIL"}


def test_rule_integer_format() -> None:
    """Paper must be an integer."""
    assert _codes(build(make_document(business=Business(paper="một")))) == {"INTEGER_FORMAT"}


def test_rule_boolean_format() -> None:
    """Direction must be true or false."""
    codes = _codes(build(make_document(other_info=OtherInfo(direction="yes"))))
    assert codes == {"BOOLEAN_FORMAT"}


def test_rule_recipient_duplicate() -> None:
    """The same OrganId twice in To is refused at the second To."""
    org = Organization("000.00.00.H41", "A")
    report = validate(build(make_document(recipients=[org, org])))
    [finding] = report.findings
    assert finding.code == "RECIPIENT_DUPLICATE"
    assert finding.element == f"{HEADER}/To[2]/OrganId"


def test_rule_manifest_unmatched() -> None:
    """A manifest reference without its attachment is refused."""
    doc = make_document()
    add_attachment(doc, "a.txt", b"a")
    doc.attachments.clear()
    assert _codes(build(doc)) == {"MANIFEST_UNMATCHED"}
    twice = make_document()
    add_attachment(twice, "a.txt", b"a")
    twice.attachments.append(twice.attachments[0])
    assert _codes(build(twice)) == {"MANIFEST_UNMATCHED"}


def test_rule_attachment_unmatched() -> None:
    """An attachment the manifest does not list is refused."""
    doc = make_document()
    add_attachment(doc, "a.txt", b"a")
    doc.manifest.clear()
    assert _codes(build(doc)) == {"ATTACHMENT_UNMATCHED"}


def test_rule_base64_invalid() -> None:
    """Characters outside base64 are refused; line breaks inside are fine."""
    doc = make_document()
    att = add_attachment(doc, "a.txt", b"abc" * 100)
    att.encoded = "\n".join(att.encoded[i : i + 76] for i in range(0, len(att.encoded), 76))
    assert _codes(build(doc)) == set()
    att.encoded = att.encoded[:8] + "é" + att.encoded[9:]
    assert _codes(build(doc)) == {"BASE64_INVALID"}


def test_rule_length_limit() -> None:
    """An OrganName over 200 characters is refused."""
    doc = make_document(sender=Organization("000.00.00.G22", "Ủ" * 201))
    assert _codes(build(doc)) == {"LENGTH_LIMIT"}
    doc.sender.organ_name = "Ủ" * 200
    assert _codes(build(doc)) == set()


def test_rule_status_direction() -> None:
    """13 must come from the document's sender; other codes from a recipient back to it."""
    sender, recipient = "000.00.00.G22", "000.00.00.H41"
    assert _codes(_status("13", sender, recipient, sender)) == set()
    assert _codes(_status("01", recipient, sender, sender)) == set()
    assert _codes(_status("13", recipient, sender, sender)) == {"STATUS_DIRECTION"}
    assert _codes(_status("06", sender, recipient, sender)) == {"STATUS_DIRECTION"}
    assert _codes(_status("02", recipient, "000.00.00.H17", sender)) == {"STATUS_DIRECTION"}
    assert _codes(_status("15", recipient, recipient, sender)) == {"STATUS_DIRECTION"}


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
