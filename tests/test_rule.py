"""Tests of edxml.rule (with edxml.manifest and edxml.direction): one test per rule code, on
packages built by the model."""

from __future__ import annotations

from conftest import make_document

from edoc_axis.edxml.attachment import add_attachment
from edoc_axis.edxml.model import (
    Business,
    BusinessDocumentInfo,
    DocumentType,
    Organization,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    ResponseFor,
    StatusPackage,
    TraceHeader,
)
from edoc_axis.edxml.parser import parse_xml
from edoc_axis.edxml.rule import check_rules
from edoc_axis.edxml.schema import validate
from edoc_axis.edxml.write import build

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


def test_rules_run_on_a_tree_alone_in_document_order() -> None:
    """check_rules needs no XSD pass; it reports every finding, in the order of the package."""
    doc = make_document(other_info=OtherInfo(priority="9"), steering_type="0")
    add_attachment(doc, "a.txt", b"a")
    doc.manifest.clear()
    findings = check_rules(parse_xml(build(doc)).getroot(), "edoc")
    assert [f.code for f in findings] == [
        "PRIORITY_DOMAIN",
        "STEERING_TYPE_DOMAIN",
        "ATTACHMENT_UNMATCHED",
    ]
    assert findings[0].element == f"{HEADER}/OtherInfo/Priority" and findings[0].value == "9"
