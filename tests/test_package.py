"""Tests of the edXML package model through edxml.read (parse), edxml.write (build, trace
headers) and edxml.status (new_status)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import DATA, VALID_PACKAGES, make_document
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edoc_axis.edxml.attachment import add_attachment
from edoc_axis.edxml.identifier import VN_TZ
from edoc_axis.edxml.model import (
    Business,
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    OtherInfo,
    PromulgationInfo,
    ResponseFor,
    StaffInfo,
    StatusPackage,
    TraceHeader,
)
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.status import new_status
from edoc_axis.edxml.write import append_trace_header, build
from edoc_axis.errors import HostileInput, MalformedPackage

VALID = DATA / "valid"


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", VALID_PACKAGES, ids=lambda path: path.name)
def test_every_valid_corpus_file_parses_to_its_kind(path: Path) -> None:
    """Each valid corpus file parses; its kind follows from its name."""
    pkg = parse(path.read_bytes())
    assert pkg.kind == ("status" if path.name.startswith("status") else "edoc")


def test_document_fields_are_read() -> None:
    """Every header part of the full sample lands in the right model field."""
    pkg = parse((VALID / "doc-business-0-new.edxml").read_bytes())
    assert isinstance(pkg, DocumentPackage)
    assert pkg.sender.organ_id == "000.00.00.G22"
    assert pkg.sender.organization_in_charge == "Chính phủ"
    assert pkg.sender.website == "chinhphu.vn"
    assert [r.organ_id for r in pkg.recipients] == ["000.00.00.H41", "000.00.00.H17"]
    assert pkg.code == Code("12", "VPCP-TTĐT")
    assert pkg.promulgation == PromulgationInfo("Hà Nội", "2024/03/05")
    assert pkg.document_type == DocumentType("1", "2", "Công văn")
    assert pkg.signer is not None and pkg.signer.full_name == "Nguyễn Văn A"
    assert pkg.due_date == ""
    assert pkg.to_places == ["Như trên", "Lưu: VT"]
    assert pkg.other_info is not None
    assert pkg.other_info.priority == "1" and pkg.other_info.appendixes == ["Phụ lục I"]
    assert pkg.steering_type == "1"
    assert [t.organ_id for t in pkg.trace_headers] == ["000.00.00.G22", "000.00.00.A01"]
    assert pkg.business is not None and pkg.business.staff_info is not None
    assert pkg.business_doc_type == 0
    assert pkg.business.staff_info.staff == "Trần Thị B"
    assert pkg.manifest[0].content_id == pkg.attachments[0].content_id == "cid:vb12"
    assert "\n" not in pkg.attachments[0].encoded
    assert not pkg.signed


def test_business_update_and_replace_details_are_read() -> None:
    """ReceiverList of an update and ReplacementInfoList of a replace are modelled."""
    update = parse((VALID / "doc-business-2-update.edxml").read_bytes())
    replace = parse((VALID / "doc-business-3-replace.edxml").read_bytes())
    assert isinstance(update, DocumentPackage) and isinstance(replace, DocumentPackage)
    assert update.business is not None and update.business.document_info is not None
    assert update.business_doc_type == 2
    assert [(r.organ_id, r.receiver_type) for r in update.business.document_info.receivers] == [
        ("000.00.00.H17", "1"),
        ("000.00.00.H29", "0"),
    ]
    assert replace.business is not None
    assert replace.business.replacements[0].organ_ids == ["000.00.00.H41", "000.00.00.H17"]


def test_prefixed_and_unprefixed_forms_give_the_same_model() -> None:
    """Namespace prefixes do not change what is read."""
    plain = parse((VALID / "doc-business-0-new.edxml").read_bytes())
    mixed = parse((VALID / "doc-prefixed-mix.edxml").read_bytes())
    assert mixed == plain
    prefixed = parse((VALID / "doc-all-prefixed.edxml").read_bytes())
    assert isinstance(prefixed, DocumentPackage)
    assert prefixed.sender == plain.sender and prefixed.business_doc_type == 1


def test_reordered_children_are_matched_by_name() -> None:
    """Order of children at any level does not matter."""
    pkg = parse((VALID / "doc-reordered-lenient-organid.edxml").read_bytes())
    assert isinstance(pkg, DocumentPackage)
    assert pkg.sender == Organization(
        "001.00.20.TT2", "Vụ Tài chính (mã mềm)", organization_in_charge="Bộ Tài chính"
    )
    assert pkg.response_for == [
        ResponseFor(
            "000.00.00.H41", "9/UBND-VX", "2024/02/20", "000.00.00.H41,2024/02/20,9/UBND-VX"
        )
    ]
    assert pkg.code == Code("45", "QĐ-BTC")
    assert [a.content_id for a in pkg.attachments] == ["cid:pl1", "cid:vb12"]


@pytest.mark.parametrize(
    "name",
    [
        "doc-signature-xmldsig-ns.edxml",
        "doc-signature-edxml-ns.edxml",
        "status-13-signed-xmldsig.edxml",
    ],
)
def test_signature_in_either_namespace_is_noticed(name: str) -> None:
    """A Signature in the XML-DSig or the edXML namespace marks the package as signed."""
    assert parse((VALID / name).read_bytes()).signed


def test_status_fields_are_read() -> None:
    """A status package's parts land in the StatusPackage fields."""
    pkg = parse((VALID / "status-03.edxml").read_bytes())
    assert isinstance(pkg, StatusPackage)
    assert pkg.status_code == "03" and pkg.timestamp == "2024/03/05 10:20:30"
    assert pkg.response_for.organ_id == "000.00.00.G22"
    assert pkg.staff_info is not None and pkg.staff_info.department_id == "01"


def test_parse_refuses_other_xml_and_hostile_bytes() -> None:
    """Non-edXML roots and DOCTYPEs raise the package errors, not lxml's."""
    with pytest.raises(MalformedPackage) as other:
        parse(b"<root/>")
    assert other.value.code == "PACKAGE_NOT_EDXML"
    with pytest.raises(HostileInput):
        parse(b'<!DOCTYPE x [<!ENTITY a "b">]><edXML/>')


# --- building ----------------------------------------------------------------------------------


def test_build_is_deterministic_and_round_trips() -> None:
    """Building twice gives the same bytes; parse(build(x)) == x."""
    doc = make_document(other_info=OtherInfo(priority="2", appendixes=["PL1"]), steering_type="2")
    append_trace_header(doc, "000.00.00.G22", "2024/03/05 09:00:00")
    add_attachment(doc, "a.pdf", b"%PDF-1.4 dummy")
    assert build(doc) == build(doc)
    assert parse(build(doc)) == doc
    assert build(doc).startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<edXML xmlns=')


@pytest.mark.parametrize("path", VALID_PACKAGES, ids=lambda path: path.name)
def test_build_of_parsed_corpus_is_stable(path: Path) -> None:
    """build(parse(build(parse(file)))) equals build(parse(file)) for every valid file."""
    once = build(parse(path.read_bytes()))
    assert build(parse(once)) == once


_text = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=("L", "N", "P", "Zs"), exclude_characters="\x85\xa0"
    ),
    max_size=30,
).map(str.strip)
_organ = st.from_regex(r"\A\d{3}\.\d{2}\.\d{2}\.[A-Z][A-Z0-9]{2}\Z")
_orgs = st.builds(Organization, _organ, _text, st.none() | _text, st.none() | _text)


@st.composite
def _documents(draw: st.DrawFn) -> DocumentPackage:
    doc = DocumentPackage(
        sender=draw(_orgs),
        recipients=draw(st.lists(_orgs, min_size=1, max_size=3)),
        code=Code(draw(_text), draw(_text)),
        promulgation=PromulgationInfo(draw(_text), draw(_text)),
        document_type=DocumentType(draw(_text), draw(_text), draw(_text)),
        subject=draw(_text),
        document_id=draw(st.none() | _text),
        content=draw(st.none() | _text),
        to_places=draw(st.lists(_text, max_size=2)),
        response_for=draw(
            st.lists(st.builds(ResponseFor, _organ, _text, _text, _text), max_size=2)
        ),
        steering_type=draw(st.none() | st.sampled_from(["1", "2", "3"])),
        business=draw(
            st.none()
            | st.builds(Business, st.none() | _text, st.integers(0, 3), st.none() | _text)
        ),
    )
    for name in draw(st.lists(st.sampled_from(["a.pdf", "b.docx", "c.txt"]), max_size=2)):
        add_attachment(doc, name, draw(st.binary(max_size=64)))
    return doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents())
def test_round_trip_property(doc: DocumentPackage) -> None:
    """For generated documents: parse(build(x)) == x and build is a fixed point."""
    data = build(doc)
    again = parse(data)
    assert again == doc
    assert build(again) == data


def test_status_round_trip() -> None:
    """A status with every field survives build and parse."""
    status = StatusPackage(
        sender=Organization("000.00.00.H41", "UBND tỉnh Nghệ An"),
        response_for=ResponseFor("000.00.00.G22", "12/VPCP", "2024/03/05", "id-1"),
        status_code="04",
        timestamp="2024/03/05 10:00:00",
        staff_info=StaffInfo("VP", "Lê C", "c@x.vn", "09", "01", "77"),
        description="Đã giao xử lý",
    )
    assert parse(build(status)) == status


# --- trace headers and statuses -----------------------------------------------------------------


def test_append_trace_header_uses_vietnam_time() -> None:
    """A UTC moment is written in UTC+7."""
    doc = make_document()
    trace = append_trace_header(doc, "000.00.00.A01", datetime(2024, 3, 5, 2, 0, tzinfo=UTC))
    assert trace == TraceHeader("000.00.00.A01", "2024/03/05 09:00:00")
    assert doc.trace_headers == [trace]


def test_new_status_addresses_the_right_party() -> None:
    """Recipient codes go to the document's sender; 13 goes to a recipient."""
    doc = make_document()
    moment = datetime(2024, 3, 5, 10, 0, tzinfo=VN_TZ)
    recipient = doc.recipients[0]
    status = new_status(recipient, doc, "03", description="ok", now=moment)
    assert status.response_for == ResponseFor(
        "000.00.00.G22", "12/VPCP-TTĐT", "2024/03/05", doc.document_id or ""
    )
    assert status.timestamp == "2024/03/05 10:00:00" and status.sender is recipient
    take_back = new_status(doc.sender, doc, "13", now=moment)
    assert take_back.response_for.organ_id == "000.00.00.H41"
    doc.recipients.append(Organization("000.00.00.H17"))
    with pytest.raises(ValueError, match="to_organ_id"):
        new_status(doc.sender, doc, "13")
    with pytest.raises(ValueError, match="unknown status code"):
        new_status(recipient, doc, "07")
    about = new_status(recipient, status.response_for, "05", to_organ_id="000.00.00.G22")
    assert about.response_for.document_id == doc.document_id
