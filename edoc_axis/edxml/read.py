"""Reading edXML packages: untrusted bytes or a parsed tree into the typed model.

``parse`` goes through the hardened ``parser.parse_xml``; ``from_tree`` reads the model from a
tree already parsed. Children are matched by local name in the edXML namespace, never by
position or prefix, because producers order and prefix them differently. Reading does not judge
values: the schema and the business rules (``schema.validate``) do.
"""

from __future__ import annotations

from typing import Literal

from lxml import etree

from edoc_axis.edxml.attachment import Attachment, Reference
from edoc_axis.edxml.limits import DEFAULT_LIMITS, XmlLimits
from edoc_axis.edxml.model import (
    DSIG_NS,
    NS,
    Business,
    BusinessDocumentInfo,
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    OtherInfo,
    Package,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusPackage,
    TraceHeader,
    q,
)
from edoc_axis.edxml.parser import PARSE_STATS, parse_xml
from edoc_axis.errors import ErrorCode, MalformedPackage


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
            code=ErrorCode.PACKAGE_NOT_EDXML,
            element="/" + etree.QName(root).localname if isinstance(root.tag, str) else None,
            line=root.sourceline,
        )
    header = _path(root, "edXMLEnvelope", "edXMLHeader", "MessageHeader")
    if header is None:
        raise MalformedPackage(
            "no edXMLEnvelope/edXMLHeader/MessageHeader",
            code=ErrorCode.PACKAGE_STRUCTURE,
            element="/edXML/edXMLEnvelope/edXMLHeader/MessageHeader",
            line=root.sourceline,
        )
    return "status" if header.find(q("StatusCode")) is not None else "edoc"


def from_tree(root: etree._Element) -> Package:
    """Read the model from an already parsed ``edXML`` root element."""
    PARSE_STATS.model_builds += 1
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
            code=ErrorCode.PACKAGE_STRUCTURE,
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
            code=ErrorCode.PACKAGE_VALUE,
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
