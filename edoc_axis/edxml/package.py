"""The edXML package model (QCVN 102:2016): typed document and status packages, bytes in and out.

``parse`` turns untrusted bytes (through the hardened ``parser.parse_xml``) into a
``DocumentPackage`` or ``StatusPackage``; ``build`` writes one back as deterministic UTF-8.
Children are matched by local name in the edXML namespace, never by position or prefix, because
producers order and prefix them differently. Parsing does not judge values: the schema and the
business rules (``schema.validate``) do. Also here: trace headers and status construction.
Attachments live in ``attachment``, the OrganId/DocumentId/date conventions in ``identifier``;
their public names are re-exported here so ``package`` stays the one import for callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Literal

from lxml import etree

from edoc_axis.edxml.attachment import (
    MAX_ATTACHMENT_BYTES,
    Attachment,
    Reference,
    add_attachment,
    extract_attachment,
)
from edoc_axis.edxml.identifier import (
    DATE_FORMAT,
    TIMESTAMP_FORMAT,
    VN_TZ,
    document_id_sender,
    format_date,
    format_timestamp,
    is_valid_organ_id,
    make_document_id,
    organ_level,
    organ_parent,
    parse_date,
    parse_timestamp,
)
from edoc_axis.edxml.parser import DEFAULT_LIMITS, XmlLimits, parse_xml
from edoc_axis.errors import MalformedPackage

__all__ = [
    "BUSINESS_DOC_TYPES",
    "DATE_FORMAT",
    "DSIG_NS",
    "MAX_ATTACHMENT_BYTES",
    "NS",
    "PRIORITIES",
    "STATUS_CODES",
    "STEERING_TYPES",
    "TIMESTAMP_FORMAT",
    "VN_TZ",
    "Attachment",
    "Business",
    "BusinessDocumentInfo",
    "Code",
    "DocumentPackage",
    "DocumentType",
    "Organization",
    "OtherInfo",
    "Package",
    "PromulgationInfo",
    "Receiver",
    "Reference",
    "ReplacementInfo",
    "ResponseFor",
    "SignerInfo",
    "StaffInfo",
    "StatusPackage",
    "TraceHeader",
    "add_attachment",
    "append_trace_header",
    "build",
    "detect_kind",
    "document_id_sender",
    "extract_attachment",
    "format_date",
    "format_timestamp",
    "from_tree",
    "is_valid_organ_id",
    "make_document_id",
    "new_status",
    "organ_level",
    "organ_parent",
    "parse",
    "parse_date",
    "parse_timestamp",
    "q",
]

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

STATUS_CODES: dict[str, tuple[Literal["sender", "recipient"], str]] = {
    "01": ("recipient", "arrived: the recipient's system has the document"),
    "02": ("recipient", "rejected: the recipient refuses the document"),
    "03": ("recipient", "accepted / registered by the clerk"),
    "04": ("recipient", "assigned to a handler"),
    "05": ("recipient", "being processed"),
    "06": ("recipient", "completed"),
    "13": ("sender", "the sender asks to take the document back (revoke / update)"),
    "15": ("recipient", "agrees to the take-back or update"),
    "16": ("recipient", "refuses the take-back or update"),
}
BUSINESS_DOC_TYPES = {0: "new", 1: "revoke", 2: "update", 3: "replace"}
PRIORITIES = {
    "0": "normal",
    "1": "urgent",
    "2": "very urgent",
    "3": "flash",
    "4": "flash with a set time",
}
STEERING_TYPES = {"1": "not a directive", "2": "directive", "3": "report on a directive"}


# --- the model ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Organization:
    """An agency as written in From and To."""

    organ_id: str
    organ_name: str = ""
    organization_in_charge: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass(slots=True)
class Code:
    """The document's number and notation (số và ký hiệu)."""

    number: str
    notation: str


@dataclass(slots=True)
class PromulgationInfo:
    """Where and when (``yyyy/MM/dd``) the document was promulgated."""

    place: str
    date: str


@dataclass(slots=True)
class DocumentType:
    """Type (1 or 2), TypeDetail (an integer) and TypeName (e.g. "Công văn")."""

    type: str
    type_detail: str
    type_name: str


@dataclass(slots=True)
class SignerInfo:
    """Who signed the paper document."""

    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


@dataclass(slots=True)
class OtherInfo:
    """Priority, sphere, typer, amounts, direction flag and appendixes."""

    priority: str | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: str | None = None
    page_amount: str | None = None
    direction: str | None = None
    appendixes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ResponseFor:
    """A referenced document: in a document, one it answers; in a status, the one it is about."""

    organ_id: str
    code: str = ""
    promulgation_date: str = ""
    document_id: str = ""


@dataclass(slots=True)
class TraceHeader:
    """One hop that handled the package."""

    organ_id: str
    timestamp: str


@dataclass(slots=True)
class StaffInfo:
    """The person in charge (in a Bussiness block or a status)."""

    department: str | None = None
    staff: str | None = None
    email: str | None = None
    mobile: str | None = None
    department_id: str | None = None
    staff_id: str | None = None


@dataclass(slots=True)
class Receiver:
    """A change of recipients in an update: ReceiverType 0 removed, 1 added."""

    organ_id: str
    receiver_type: str


@dataclass(slots=True)
class BusinessDocumentInfo:
    """What an update changes: the document info, the receivers, and the receiver list."""

    document_info: str | None = None
    document_receiver: str | None = None
    receivers: list[Receiver] = field(default_factory=list)


@dataclass(slots=True)
class ReplacementInfo:
    """A replaced document and the agencies it went to."""

    document_id: str
    organ_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Business:
    """The business operation (``Bussiness``, sic) of a document package: 0 new .. 3 replace."""

    document_id: str | None = None
    doc_type: int = 0
    reason: str | None = None
    paper: str | None = None
    document_info: BusinessDocumentInfo | None = None
    replacements: list[ReplacementInfo] = field(default_factory=list)
    staff_info: StaffInfo | None = None


@dataclass(slots=True)
class DocumentPackage:
    """A document package (kind ``edoc``). ``signed`` tells whether a Signature was present."""

    sender: Organization
    recipients: list[Organization]
    code: Code
    promulgation: PromulgationInfo
    document_type: DocumentType
    subject: str
    document_id: str | None = None
    content: str | None = None
    signer: SignerInfo | None = None
    due_date: str | None = None
    to_places: list[str] = field(default_factory=list)
    other_info: OtherInfo | None = None
    response_for: list[ResponseFor] = field(default_factory=list)
    steering_type: str | None = None
    trace_headers: list[TraceHeader] = field(default_factory=list)
    business: Business | None = None
    manifest: list[Reference] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    manifest_version: str = "1.0"
    signed: bool = False

    @property
    def kind(self) -> Literal["edoc"]:
        """Always ``"edoc"``."""
        return "edoc"

    @property
    def business_doc_type(self) -> int:
        """BussinessDocType, 0 (new) when the package has no Bussiness block."""
        return self.business.doc_type if self.business is not None else 0


@dataclass(slots=True)
class StatusPackage:
    """A status package (kind ``status``) about one document."""

    sender: Organization
    response_for: ResponseFor
    status_code: str
    timestamp: str
    staff_info: StaffInfo | None = None
    description: str | None = None
    trace_headers: list[TraceHeader] = field(default_factory=list)
    signed: bool = False

    @property
    def kind(self) -> Literal["status"]:
        """Always ``"status"``."""
        return "status"


Package = DocumentPackage | StatusPackage


# --- parsing -----------------------------------------------------------------------------------


@cache
def q(name: str) -> str:
    """The Clark name of an edXML element, e.g. ``{NS}From``."""
    return f"{{{NS}}}{name}"


def parse(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> Package:
    """Parse untrusted bytes into a package (hardened; no schema or rule checks).

    Raises ``HostileInput`` or ``MalformedPackage`` (code ``PACKAGE_NOT_EDXML``,
    ``PACKAGE_STRUCTURE`` or ``PACKAGE_VALUE``) when the bytes are not a usable edXML package.
    """
    return from_tree(parse_xml(data, limits).getroot())


def detect_kind(root: etree._Element) -> Literal["edoc", "status"]:
    """Tell a status from a document by its MessageHeader (``StatusCode`` present)."""
    if root.tag != q("edXML"):
        raise MalformedPackage(
            f"root element is {root.tag!r}, not edXML in namespace {NS}",
            code="PACKAGE_NOT_EDXML",
            element="/" + etree.QName(root).localname if isinstance(root.tag, str) else None,
            line=root.sourceline,
        )
    header = _path(root, "edXMLEnvelope", "edXMLHeader", "MessageHeader")
    if header is None:
        raise MalformedPackage(
            "no edXMLEnvelope/edXMLHeader/MessageHeader",
            code="PACKAGE_STRUCTURE",
            element="/edXML/edXMLEnvelope/edXMLHeader/MessageHeader",
            line=root.sourceline,
        )
    return "status" if header.find(q("StatusCode")) is not None else "edoc"


def from_tree(root: etree._Element) -> Package:
    """Read the model from an already parsed ``edXML`` root element."""
    kind = detect_kind(root)
    top = _Fields(root)
    envelope = _Fields(_required(root, "edXMLEnvelope"))
    block = _Fields(_required(envelope.el, "edXMLHeader"))
    header = _Fields(_required(block.el, "MessageHeader"))
    signed = block.child("Signature") is not None or f"{{{DSIG_NS}}}Signature" in block.first
    trace_list = block.fields("TraceHeaderList")
    traces = [_trace(t) for t in trace_list.all("TraceHeader")] if trace_list else []
    if kind == "status":
        response = header.fields("ResponseFor")
        return StatusPackage(
            sender=_organization(_Fields(_required(header.el, "From"))),
            response_for=_response_for(response) if response else ResponseFor(""),
            status_code=header.text("StatusCode") or "",
            timestamp=header.text("Timestamp") or "",
            staff_info=_staff(staff) if (staff := header.fields("StaffInfo")) else None,
            description=header.text("Description"),
            trace_headers=traces,
            signed=signed,
        )
    body = envelope.fields("edXMLBody")
    manifest = body.fields("edXMLManifest") if body else None
    encoded = top.fields("AttachmentEncoded")
    other = header.fields("OtherInfo")
    places = header.fields("ToPlaces")
    business = trace_list.fields("Bussiness") if trace_list else None
    return DocumentPackage(
        sender=_organization(_Fields(_required(header.el, "From"))),
        recipients=[_organization(el) for el in header.all("To")],
        document_id=header.text("DocumentId"),
        code=_code(code) if (code := header.fields("Code")) else Code("", ""),
        promulgation=_promulgation(prom)
        if (prom := header.fields("PromulgationInfo"))
        else PromulgationInfo("", ""),
        document_type=_document_type(doc_type)
        if (doc_type := header.fields("DocumentType"))
        else DocumentType("", "", ""),
        subject=header.text("Subject") or "",
        content=header.text("Content"),
        signer=_signer(signer) if (signer := header.fields("SignerInfo")) else None,
        due_date=header.text("DueDate"),
        to_places=places.texts("Place") if places else [],
        other_info=_other_info(other) if other else None,
        response_for=[_response_for(el) for el in header.all("ResponseFor")],
        steering_type=header.text("SteeringType"),
        trace_headers=traces,
        business=_business(business) if business else None,
        manifest=[_reference(el) for el in manifest.all("Reference")] if manifest else [],
        attachments=[_attachment(el) for el in encoded.all("Attachment")] if encoded else [],
        manifest_version=(manifest.el.get("version") if manifest else None) or "1.0",
        signed=signed,
    )


class _Fields:
    """The children of one element, indexed once by tag (faster than a find per field)."""

    __slots__ = ("el", "first", "groups")

    def __init__(self, el: etree._Element) -> None:
        self.el = el
        self.first: dict[object, etree._Element] = {}
        self.groups: dict[object, list[etree._Element]] = {}
        for child in el:
            tag = child.tag
            if tag in self.first:
                self.groups[tag].append(child)
            else:
                self.first[tag] = child
                self.groups[tag] = [child]

    def child(self, name: str) -> etree._Element | None:
        return self.first.get(q(name))

    def fields(self, name: str) -> _Fields | None:
        child = self.first.get(q(name))
        return _Fields(child) if child is not None else None

    def all(self, name: str) -> list[_Fields]:
        return [_Fields(child) for child in self.groups.get(q(name), ())]

    def text(self, name: str) -> str | None:
        """Stripped text of the first child ``name``; None when absent."""
        child = self.first.get(q(name))
        return None if child is None else (child.text or "").strip()

    def texts(self, name: str) -> list[str]:
        return [(child.text or "").strip() for child in self.groups.get(q(name), ())]


def _path(el: etree._Element, *names: str) -> etree._Element | None:
    node: etree._Element | None = el
    for name in names:
        if node is None:
            return None
        node = node.find(q(name))
    return node


def _required(el: etree._Element, name: str) -> etree._Element:
    found = el.find(q(name))
    if found is None:
        raise MalformedPackage(
            f"{etree.QName(el).localname} has no {name}",
            code="PACKAGE_STRUCTURE",
            element=name,
            line=el.sourceline,
        )
    return found


def _organization(f: _Fields) -> Organization:
    return Organization(
        organ_id=f.text("OrganId") or "",
        organ_name=f.text("OrganName") or "",
        organization_in_charge=f.text("OrganizationInCharge"),
        organ_add=f.text("OrganAdd"),
        email=f.text("Email"),
        telephone=f.text("Telephone"),
        fax=f.text("Fax"),
        website=f.text("Website"),
    )


def _code(f: _Fields) -> Code:
    return Code(f.text("CodeNumber") or "", f.text("CodeNotation") or "")


def _promulgation(f: _Fields) -> PromulgationInfo:
    return PromulgationInfo(f.text("Place") or "", f.text("PromulgationDate") or "")


def _document_type(f: _Fields) -> DocumentType:
    return DocumentType(f.text("Type") or "", f.text("TypeDetail") or "", f.text("TypeName") or "")


def _signer(f: _Fields) -> SignerInfo:
    return SignerInfo(f.text("Competence"), f.text("Position"), f.text("FullName"))


def _other_info(f: _Fields) -> OtherInfo:
    appendixes = f.fields("Appendixes")
    return OtherInfo(
        priority=f.text("Priority"),
        sphere_of_promulgation=f.text("SphereOfPromulgation"),
        typer_notation=f.text("TyperNotation"),
        promulgation_amount=f.text("PromulgationAmount"),
        page_amount=f.text("PageAmount"),
        direction=f.text("Direction"),
        appendixes=appendixes.texts("Appendix") if appendixes else [],
    )


def _response_for(f: _Fields) -> ResponseFor:
    return ResponseFor(
        organ_id=f.text("OrganId") or "",
        code=f.text("Code") or "",
        promulgation_date=f.text("PromulgationDate") or "",
        document_id=f.text("DocumentId") or "",
    )


def _trace(f: _Fields) -> TraceHeader:
    return TraceHeader(f.text("OrganId") or "", f.text("Timestamp") or "")


def _staff(f: _Fields) -> StaffInfo:
    return StaffInfo(
        department=f.text("Department"),
        staff=f.text("Staff"),
        email=f.text("Email"),
        mobile=f.text("Mobile"),
        department_id=f.text("DepartmentId"),
        staff_id=f.text("StaffId"),
    )


def _business_info(f: _Fields) -> BusinessDocumentInfo:
    receivers = f.fields("ReceiverList")
    return BusinessDocumentInfo(
        document_info=f.text("DocumentInfo"),
        document_receiver=f.text("DocumentReceiver"),
        receivers=[
            Receiver(r.text("OrganId") or "", r.text("ReceiverType") or "")
            for r in (receivers.all("Receiver") if receivers else [])
        ],
    )


def _business(f: _Fields) -> Business:
    raw = f.text("BussinessDocType") or "0"
    try:
        doc_type = int(raw)
    except ValueError:
        raise MalformedPackage(
            f"BussinessDocType {raw!r} is not an integer",
            code="PACKAGE_VALUE",
            element="BussinessDocType",
            line=f.el.sourceline,
        ) from None
    info = f.fields("BussinessDocumentInfo")
    replacements = f.fields("ReplacementInfoList")
    staff = f.fields("StaffInfo")
    return Business(
        doc_type=doc_type,
        document_id=f.text("DocumentId"),
        reason=f.text("BussinessDocReason"),
        paper=f.text("Paper"),
        document_info=_business_info(info) if info else None,
        replacements=[
            ReplacementInfo(r.text("DocumentId") or "", ids.texts("OrganId") if ids else [])
            for r in (replacements.all("ReplacementInfo") if replacements else [])
            for ids in [r.fields("OrganIdList")]
        ],
        staff_info=_staff(staff) if staff else None,
    )


def _reference(f: _Fields) -> Reference:
    return Reference(
        content_id=f.text("ContentId") or "",
        content_type=f.text("ContentType"),
        description=f.text("Description"),
        attachment_name=f.text("AttachmentName"),
    )


def _attachment(f: _Fields) -> Attachment:
    encoded = f.child("ContentTransferEncoded")
    return Attachment(
        content_id=f.text("ContentId") or "",
        attachment_name=f.text("AttachmentName"),
        description=f.text("Description"),
        content_type=f.text("ContentType"),
        encoded=_significant(encoded.text or "") if encoded is not None else "",
    )


def _significant(text: str) -> str:
    """Base64 without the line breaks producers insert (copied only when there are some)."""
    if any(space in text for space in " \t\r\n"):
        return "".join(text.split())
    return text


# --- building ----------------------------------------------------------------------------------


def build(pkg: Package) -> bytes:
    """Serialize a package as deterministic, unsigned UTF-8 with edXML as the default namespace.

    Elements come out in the order of the specification's tables; optional parts that are
    ``None`` (or empty lists) are left out.
    """
    root = etree.Element(q("edXML"), nsmap={None: NS})
    envelope = _sub(root, "edXMLEnvelope")
    header_block = _sub(envelope, "edXMLHeader")
    header = _sub(header_block, "MessageHeader")
    if isinstance(pkg, StatusPackage):
        _build_organization(header, "From", pkg.sender)
        _build_response_for(header, pkg.response_for)
        if pkg.staff_info is not None:
            _build_staff(header, pkg.staff_info)
        _leaf(header, "StatusCode", pkg.status_code)
        _leaf(header, "Description", pkg.description)
        _leaf(header, "Timestamp", pkg.timestamp)
        if pkg.trace_headers:
            _build_traces(header_block, pkg.trace_headers, None)
    else:
        _build_document_header(header, pkg)
        _build_traces(header_block, pkg.trace_headers, pkg.business)
        body = _sub(envelope, "edXMLBody")
        manifest = _sub(body, "edXMLManifest")
        manifest.set("version", pkg.manifest_version)
        for ref in pkg.manifest:
            el = _sub(manifest, "Reference")
            _leaf(el, "ContentId", ref.content_id)
            _leaf(el, "ContentType", ref.content_type)
            _leaf(el, "Description", ref.description)
            _leaf(el, "AttachmentName", ref.attachment_name)
        if pkg.attachments:
            encoded = _sub(root, "AttachmentEncoded")
            for att in pkg.attachments:
                el = _sub(encoded, "Attachment")
                _leaf(el, "ContentId", att.content_id)
                _leaf(el, "AttachmentName", att.attachment_name)
                _leaf(el, "Description", att.description)
                _leaf(el, "ContentType", att.content_type)
                _leaf(el, "ContentTransferEncoded", att.encoded)
    text = etree.tostring(root, encoding="UTF-8", xml_declaration=False, pretty_print=True)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + text


def _sub(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, q(name))


def _leaf(parent: etree._Element, name: str, value: str | None) -> None:
    if value is not None:
        _sub(parent, name).text = value


def _build_document_header(header: etree._Element, pkg: DocumentPackage) -> None:
    _build_organization(header, "From", pkg.sender)
    for recipient in pkg.recipients:
        _build_organization(header, "To", recipient)
    _leaf(header, "DocumentId", pkg.document_id)
    code = _sub(header, "Code")
    _leaf(code, "CodeNumber", pkg.code.number)
    _leaf(code, "CodeNotation", pkg.code.notation)
    prom = _sub(header, "PromulgationInfo")
    _leaf(prom, "Place", pkg.promulgation.place)
    _leaf(prom, "PromulgationDate", pkg.promulgation.date)
    doc_type = _sub(header, "DocumentType")
    _leaf(doc_type, "Type", pkg.document_type.type)
    _leaf(doc_type, "TypeDetail", pkg.document_type.type_detail)
    _leaf(doc_type, "TypeName", pkg.document_type.type_name)
    _leaf(header, "Subject", pkg.subject)
    _leaf(header, "Content", pkg.content)
    if pkg.signer is not None:
        signer = _sub(header, "SignerInfo")
        _leaf(signer, "Competence", pkg.signer.competence)
        _leaf(signer, "Position", pkg.signer.position)
        _leaf(signer, "FullName", pkg.signer.full_name)
    _leaf(header, "DueDate", pkg.due_date)
    if pkg.to_places:
        places = _sub(header, "ToPlaces")
        for place in pkg.to_places:
            _leaf(places, "Place", place)
    if pkg.other_info is not None:
        info = pkg.other_info
        other = _sub(header, "OtherInfo")
        _leaf(other, "Priority", info.priority)
        _leaf(other, "SphereOfPromulgation", info.sphere_of_promulgation)
        _leaf(other, "TyperNotation", info.typer_notation)
        _leaf(other, "PromulgationAmount", info.promulgation_amount)
        _leaf(other, "PageAmount", info.page_amount)
        _leaf(other, "Direction", info.direction)
        if info.appendixes:
            appendixes = _sub(other, "Appendixes")
            for appendix in info.appendixes:
                _leaf(appendixes, "Appendix", appendix)
    for response in pkg.response_for:
        _build_response_for(header, response)
    _leaf(header, "SteeringType", pkg.steering_type)


def _build_organization(parent: etree._Element, name: str, org: Organization) -> None:
    el = _sub(parent, name)
    _leaf(el, "OrganId", org.organ_id)
    _leaf(el, "OrganizationInCharge", org.organization_in_charge)
    _leaf(el, "OrganName", org.organ_name)
    _leaf(el, "OrganAdd", org.organ_add)
    _leaf(el, "Email", org.email)
    _leaf(el, "Telephone", org.telephone)
    _leaf(el, "Fax", org.fax)
    _leaf(el, "Website", org.website)


def _build_response_for(parent: etree._Element, response: ResponseFor) -> None:
    el = _sub(parent, "ResponseFor")
    _leaf(el, "OrganId", response.organ_id)
    _leaf(el, "Code", response.code)
    _leaf(el, "PromulgationDate", response.promulgation_date)
    _leaf(el, "DocumentId", response.document_id)


def _build_staff(parent: etree._Element, staff: StaffInfo) -> None:
    el = _sub(parent, "StaffInfo")
    _leaf(el, "Department", staff.department)
    _leaf(el, "DepartmentId", staff.department_id)
    _leaf(el, "Staff", staff.staff)
    _leaf(el, "StaffId", staff.staff_id)
    _leaf(el, "Mobile", staff.mobile)
    _leaf(el, "Email", staff.email)


def _build_traces(
    parent: etree._Element, traces: list[TraceHeader], business: Business | None
) -> None:
    el = _sub(parent, "TraceHeaderList")
    for trace in traces:
        t = _sub(el, "TraceHeader")
        _leaf(t, "OrganId", trace.organ_id)
        _leaf(t, "Timestamp", trace.timestamp)
    if business is None:
        return
    b = _sub(el, "Bussiness")
    _leaf(b, "DocumentId", business.document_id)
    _leaf(b, "BussinessDocType", str(business.doc_type))
    _leaf(b, "BussinessDocReason", business.reason)
    _leaf(b, "Paper", business.paper)
    if business.document_info is not None:
        info = business.document_info
        i = _sub(b, "BussinessDocumentInfo")
        _leaf(i, "DocumentInfo", info.document_info)
        _leaf(i, "DocumentReceiver", info.document_receiver)
        if info.receivers:
            receivers = _sub(i, "ReceiverList")
            for receiver in info.receivers:
                r = _sub(receivers, "Receiver")
                _leaf(r, "OrganId", receiver.organ_id)
                _leaf(r, "ReceiverType", receiver.receiver_type)
    if business.replacements:
        replacements = _sub(b, "ReplacementInfoList")
        for replacement in business.replacements:
            r = _sub(replacements, "ReplacementInfo")
            _leaf(r, "DocumentId", replacement.document_id)
            ids = _sub(r, "OrganIdList")
            for organ_id in replacement.organ_ids:
                _leaf(ids, "OrganId", organ_id)
    if business.staff_info is not None:
        _build_staff(b, business.staff_info)


# --- trace headers, statuses ---------------------------------------------------------------


def append_trace_header(
    pkg: Package, organ_id: str, timestamp: datetime | str | None = None
) -> TraceHeader:
    """Record a hop: append a TraceHeader for ``organ_id`` at ``timestamp`` (default: now)."""
    if isinstance(timestamp, str):
        stamp = timestamp
    else:
        stamp = format_timestamp(timestamp or datetime.now(VN_TZ))
    trace = TraceHeader(organ_id, stamp)
    pkg.trace_headers.append(trace)
    return trace


def new_status(
    sender: Organization,
    document: DocumentPackage | ResponseFor,
    code: str,
    *,
    description: str | None = None,
    to_organ_id: str | None = None,
    now: datetime | None = None,
    staff_info: StaffInfo | None = None,
) -> StatusPackage:
    """A status about ``document`` from ``sender``; ResponseFor/OrganId is the addressee.

    Recipient codes go back to the document's sender by default. Code 13 goes from the sender
    to a recipient: ``to_organ_id`` is required unless the document has exactly one recipient.
    """
    if code not in STATUS_CODES:
        raise ValueError(f"unknown status code {code!r}; known: {', '.join(STATUS_CODES)}")
    if isinstance(document, ResponseFor):
        response = ResponseFor(
            organ_id=to_organ_id or document.organ_id,
            code=document.code,
            promulgation_date=document.promulgation_date,
            document_id=document.document_id,
        )
    else:
        if to_organ_id is None:
            if code != "13":
                to_organ_id = document.sender.organ_id
            elif len(document.recipients) == 1:
                to_organ_id = document.recipients[0].organ_id
            else:
                raise ValueError("status 13 goes to one recipient: pass to_organ_id")
        response = ResponseFor(
            organ_id=to_organ_id,
            code=f"{document.code.number}/{document.code.notation}",
            promulgation_date=document.promulgation.date,
            document_id=document.document_id or "",
        )
    return StatusPackage(
        sender=sender,
        response_for=response,
        status_code=code,
        timestamp=format_timestamp(now or datetime.now(VN_TZ)),
        staff_info=staff_info,
        description=description,
    )
