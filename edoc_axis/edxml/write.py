"""Writing edXML packages: the model as deterministic UTF-8 bytes, and trace headers.

``build`` writes elements in the order of the specification's tables with edXML as the default
namespace; ``append_trace_header`` records a hop on a model before it is built.
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from edoc_axis.edxml.identifier import VN_TZ, format_timestamp
from edoc_axis.edxml.model import (
    NS,
    Business,
    DocumentPackage,
    Organization,
    Package,
    ResponseFor,
    StaffInfo,
    StatusPackage,
    TraceHeader,
    q,
)


def build(pkg: Package) -> bytes:
    """Serialize a package as deterministic, unsigned UTF-8 with edXML as the default namespace.

    Elements come out in the order of the specification's tables; optional parts that are
    ``None`` (or empty lists) are left out.
    """
    text = etree.tostring(build_tree(pkg), encoding="UTF-8", xml_declaration=False)
    return _DECLARATION + text + b"\n"


def build_tree(pkg: Package) -> etree._Element:
    """The package as ``build`` writes it, as a tree: serialised it gives ``build``'s bytes,
    and it is the tree the hardened parser reads from them (indentation included), so the node
    can sign a package it builds without parsing its own bytes back."""
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
    etree.indent(root, space="  ")  # what pretty_print writes, as text nodes in the tree
    return root


_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


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

