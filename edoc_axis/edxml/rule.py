"""Business rules of edXML packages beyond what the XSD can say, each with a stable rule code.

The rules run on a tree the XSD already accepted, so every element they touch has the expected
shape; they judge values (formats, domains, lengths), counts the free-order XSD cannot express,
the links between parts (manifest and attachments, status direction) and format deviations that
lose nothing (empty optional containers, white space around values). Each finding names the rule
code, the element path, the value it judged and the source line. ``RULE_CODES`` lists every
code (the registry, ``edoc_axis.errors.ErrorCode``, says what each means); how much each
weighs (refuse or warn, per profile) is ``edoc_axis.edxml.profile``'s table. The
rules do not assume the XSD passed, so ``schema.validate`` can report every finding at once.
The manifest and attachment rules live in ``manifest``, the status direction rule in
``direction``; ``check_rules`` runs them all in one pass.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from lxml import etree

from edoc_axis.edxml.direction import check_direction
from edoc_axis.edxml.finding import MAX_VALUE_CHARS, Finding, Findings, element_text
from edoc_axis.edxml.identifier import is_valid_organ_id, parse_date, parse_timestamp
from edoc_axis.edxml.manifest import check_manifest
from edoc_axis.edxml.model import DSIG_NS, NS, PRIORITIES, STATUS_CODES, STEERING_TYPES, q
from edoc_axis.errors import ErrorCode

# The codes the rules report; what each means is in the registry (edoc_axis.errors).
RULE_CODES: frozenset[ErrorCode] = frozenset({
    ErrorCode.CARDINALITY,
    ErrorCode.ORGANID_FORMAT,
    ErrorCode.DATE_FORMAT,
    ErrorCode.TIMESTAMP_FORMAT,
    ErrorCode.PRIORITY_DOMAIN,
    ErrorCode.STEERING_TYPE_DOMAIN,
    ErrorCode.DOCUMENT_TYPE_DOMAIN,
    ErrorCode.STATUS_CODE_DOMAIN,
    ErrorCode.BUSINESS_DOC_TYPE_DOMAIN,
    ErrorCode.RECEIVER_TYPE_DOMAIN,
    ErrorCode.BUSINESS_DOC_DETAIL,
    ErrorCode.INTEGER_FORMAT,
    ErrorCode.BOOLEAN_FORMAT,
    ErrorCode.RECIPIENT_DUPLICATE,
    ErrorCode.MANIFEST_UNMATCHED,
    ErrorCode.ATTACHMENT_UNMATCHED,
    ErrorCode.BASE64_INVALID,
    ErrorCode.LENGTH_LIMIT,
    ErrorCode.STATUS_DIRECTION,
    ErrorCode.EMPTY_ELEMENT,
    ErrorCode.SURPLUS_WHITESPACE,
})

# Limits one production axis applies (characters, after trimming surrounding white space).
LENGTH_LIMITS = {
    "OrganName": 200,
    "OrganAdd": 500,
    "CodeNumber": 11,
    "CodeNotation": 30,
    "Subject": 500,
    "Content": 500,
    "TypeName": 100,
}

# (name, min, max) per parent; max None means unbounded.
_DOCUMENT_HEADER: tuple[tuple[str, int, int | None], ...] = (
    ("From", 1, 1),
    ("To", 1, None),
    ("DocumentId", 0, 1),
    ("Code", 1, 1),
    ("PromulgationInfo", 1, 1),
    ("DocumentType", 1, 1),
    ("Subject", 1, 1),
    ("Content", 0, 1),
    ("SignerInfo", 0, 1),
    ("DueDate", 0, 1),
    ("ToPlaces", 0, 1),
    ("OtherInfo", 0, 1),
    ("SteeringType", 0, 1),
)
_STATUS_HEADER: tuple[tuple[str, int, int | None], ...] = (
    ("From", 1, 1),
    ("ResponseFor", 1, 1),
    ("StaffInfo", 0, 1),
    ("StatusCode", 1, 1),
    ("Description", 0, 1),
    ("Timestamp", 1, 1),
)

_ORGAN_ID = q("OrganId")
_LIMITED = {q(name): name for name in LENGTH_LIMITS}
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_BOOLEANS = {"true", "false", "1", "0"}
_DSIG_PREFIX = f"{{{DSIG_NS}}}"
_DSIG_SIGNATURE = f"{_DSIG_PREFIX}Signature"
_NS_PREFIX = f"{{{NS}}}"
_SIGNATURES = frozenset({q("Signature"), _DSIG_SIGNATURE})
# Optional containers an empty occurrence of which says nothing: left out or sent empty, the
# package means the same. (ResponseFor of a document is one too; of a status it is required.)
_OPTIONAL_CONTAINERS = frozenset(
    q(name) for name in ("ToPlaces", "OtherInfo", "SignerInfo", "Appendixes", "StaffInfo")
)
# Base64 is wrapped over lines by producers: white space inside it is normal, not surplus.
_BASE64_CONTENT = q("ContentTransferEncoded")


def check_rules(root: etree._Element, kind: str) -> list[Finding]:
    """All rule findings for a schema-valid package of ``kind`` (``edoc`` or ``status``)."""
    return _Rules(root, kind).run()


class _Rules(Findings):
    """One pass over one package; collects findings instead of stopping at the first."""

    def __init__(self, root: etree._Element, kind: str) -> None:
        super().__init__()
        self.root = root
        self.kind = kind

    def run(self) -> list[Finding]:
        envelope = self.root.find(q("edXMLEnvelope"))
        block = envelope.find(q("edXMLHeader")) if envelope is not None else None
        header = block.find(q("MessageHeader")) if block is not None else None
        if envelope is None or block is None or header is None:  # detect_kind refused these
            return self.findings
        self.header_block(block)
        self.surplus_whitespace(self.root)
        if self.kind == "status":
            self.status(header)
        else:
            self.document(header)
            check_manifest(self, envelope, self.root.find(q("AttachmentEncoded")))
        return self.findings

    # --- shared ---------------------------------------------------------------------------

    def count(self, parent: etree._Element, specs: Iterable[tuple[str, int, int | None]]) -> None:
        counts = Counter(child.tag for child in parent)
        for name, low, high in specs:
            n = counts.get(q(name), 0)
            if n < low or (high is not None and n > high):
                if high is None:
                    allowed = f"at least {low}"
                elif low == high:
                    allowed = f"exactly {low}"
                else:
                    allowed = f"{low} to {high}"
                self.add(
                    ErrorCode.CARDINALITY,
                    f"{etree.QName(parent).localname} has {n} {name}; {allowed} allowed",
                    parent,
                )

    def header_block(self, block: etree._Element) -> None:
        self.count(block, (("MessageHeader", 1, 1), ("TraceHeaderList", 0, 1)))
        for child in block:
            # The XSD lets any XML-DSig element through (lax); only Signature belongs here.
            tag = child.tag
            if isinstance(tag, str) and tag.startswith(_DSIG_PREFIX) and tag != _DSIG_SIGNATURE:
                self.add(
                    ErrorCode.SCHEMA_UNEXPECTED_ELEMENT,
                    f"XML-DSig element {etree.QName(child).localname} is not expected in "
                    "edXMLHeader; only Signature is",
                    child,
                )
        signatures = [c for c in block if c.tag in (q("Signature"), _DSIG_SIGNATURE)]
        if len(signatures) > 1:
            self.add(ErrorCode.CARDINALITY, "edXMLHeader has more than one Signature",
                     signatures[1])
        traces = block.find(q("TraceHeaderList"))
        if traces is not None:
            self.count(traces, (("Bussiness", 0, 1),))
            for trace in traces.iterfind(q("TraceHeader")):
                self.organ_ids(trace.iterfind(q("OrganId")), place="TraceHeader")
                for stamp in trace.iterfind(q("Timestamp")):
                    self.timestamp(stamp)
            business = traces.find(q("Bussiness"))
            if business is not None:
                self.business(business)

    def organ_ids(self, elements: Iterable[etree._Element], place: str | None = None) -> None:
        for el in elements:
            value = element_text(el)
            if not is_valid_organ_id(value):
                self.add(
                    ErrorCode.ORGANID_FORMAT,
                    f"{value!r} is not an OrganId: expected four dot-separated groups "
                    "NNN.NN.NN.XNN (3 digits, 2, 2, then a letter and two digits or letters)",
                    el,
                    place,
                )

    def empty(self, el: etree._Element) -> bool:
        """Report an optional container sent without content; True when it is empty."""
        if (el.text or "").strip() or any(isinstance(child.tag, str) for child in el):
            return False
        name = etree.QName(el).localname
        self.add(ErrorCode.EMPTY_ELEMENT,
                 f"{name} is empty; an optional element with nothing in it "
                 "is better left out", el, value="")
        return True

    def surplus_whitespace(self, el: etree._Element) -> None:
        """White space around the text of every edXML leaf (signatures and base64 excepted).

        Text that is only white space is no value (a pretty-printed empty container)."""
        for child in el:
            tag = child.tag
            if not isinstance(tag, str) or tag in _SIGNATURES or not tag.startswith(_NS_PREFIX):
                continue
            if any(isinstance(c.tag, str) for c in child):
                self.surplus_whitespace(child)
                continue
            if tag == _BASE64_CONTENT:  # megabytes of base64: never copied into Python
                continue
            text = child.text
            if text and (text[0].isspace() or text[-1].isspace()) and not text.isspace():
                name = etree.QName(child).localname
                self.add(ErrorCode.SURPLUS_WHITESPACE,
                         f"{name} has white space around its value; it "
                         f"is read as {_quote(text.strip())}", child)

    def date(self, el: etree._Element, *, allow_empty: bool) -> None:
        value = element_text(el)
        if not value and allow_empty:
            return
        try:
            parse_date(value)
        except ValueError as exc:
            self.add(ErrorCode.DATE_FORMAT, str(exc), el)

    def timestamp(self, el: etree._Element) -> None:
        try:
            parse_timestamp(element_text(el))
        except ValueError as exc:
            self.add(ErrorCode.TIMESTAMP_FORMAT, str(exc), el)

    def length(self, el: etree._Element) -> None:
        name = _LIMITED[str(el.tag)]
        limit = LENGTH_LIMITS[name]
        size = len(element_text(el))
        if size > limit:
            self.add(ErrorCode.LENGTH_LIMIT, f"{name} is {size} characters; at most {limit}", el)

    def domain(self, el: etree._Element, code: ErrorCode, allowed: Iterable[str],
               what: str) -> None:
        value = element_text(el)
        if value not in allowed:
            self.add(code, f"{what} {value!r} is not one of {', '.join(allowed)}", el)

    def integer(self, el: etree._Element) -> None:
        value = element_text(el)
        if value and not _INTEGER.fullmatch(value):
            name = etree.QName(el).localname
            self.add(ErrorCode.INTEGER_FORMAT, f"{name} {value!r} is not an integer", el)

    def organization(self, org: etree._Element) -> None:
        # One pass over the children: From and To are the most repeated blocks of a package.
        for child in org:
            tag = child.tag
            if tag == _ORGAN_ID:
                self.organ_ids((child,))
            elif tag in _LIMITED:
                self.length(child)

    def response_for(self, response: etree._Element) -> None:
        self.organ_ids(response.iterfind(q("OrganId")))
        for el in response.iterfind(q("PromulgationDate")):
            self.date(el, allow_empty=True)

    # --- documents --------------------------------------------------------------------------

    def document(self, header: etree._Element) -> None:
        self.count(header, _DOCUMENT_HEADER)
        self.parties(header)
        for code in header.iterfind(q("Code")):
            for el in code:
                if el.tag in (q("CodeNumber"), q("CodeNotation")):
                    self.length(el)
        for info in header.iterfind(q("PromulgationInfo")):
            for el in info.iterfind(q("PromulgationDate")):
                self.date(el, allow_empty=False)
        for doc_type in header.iterfind(q("DocumentType")):
            self.document_type(doc_type)
        for name in ("Subject", "Content"):
            for el in header.iterfind(q(name)):
                self.length(el)
        for el in header.iterfind(q("DueDate")):
            self.date(el, allow_empty=True)
        self.optional_parts(header)
        for el in header.iterfind(q("SteeringType")):
            self.domain(el, ErrorCode.STEERING_TYPE_DOMAIN, STEERING_TYPES, "SteeringType")

    def optional_parts(self, header: etree._Element) -> None:
        for child in header:
            if child.tag in _OPTIONAL_CONTAINERS:
                self.empty(child)
        for other in header.iterfind(q("OtherInfo")):
            self.other_info(other)
        for response in header.iterfind(q("ResponseFor")):
            # Empty is harmless in a document (it answers nothing); a status needs its OrganId.
            if not self.empty(response):
                self.response_for(response)

    def parties(self, header: etree._Element) -> None:
        for org in header.iterfind(q("From")):
            self.organization(org)
        seen: dict[str, int] = {}
        for index, org in enumerate(header.iterfind(q("To"))):
            self.organization(org)
            organ = org.find(q("OrganId"))
            value = element_text(organ) if organ is not None else ""
            if organ is not None and value in seen:
                self.add(
                    ErrorCode.RECIPIENT_DUPLICATE,
                    f"To {index + 1} repeats OrganId {value!r} (already To {seen[value] + 1})",
                    organ,
                )
            seen.setdefault(value, index)

    def document_type(self, doc_type: etree._Element) -> None:
        for el in doc_type.iterfind(q("Type")):
            self.domain(el, ErrorCode.DOCUMENT_TYPE_DOMAIN, ("1", "2"), "DocumentType/Type")
        for el in doc_type.iterfind(q("TypeDetail")):
            value = element_text(el)
            if value and not _INTEGER.fullmatch(value):
                self.add(ErrorCode.DOCUMENT_TYPE_DOMAIN, f"TypeDetail {value!r} is not an integer",
                         el)
        for el in doc_type.iterfind(q("TypeName")):
            self.length(el)

    def other_info(self, other: etree._Element) -> None:
        for el in other.iterfind(q("Priority")):
            self.domain(el, ErrorCode.PRIORITY_DOMAIN, PRIORITIES, "Priority")
        for name in ("PromulgationAmount", "PageAmount"):
            for el in other.iterfind(q(name)):
                self.integer(el)
        for el in other.iterfind(q("Direction")):
            value = element_text(el)
            if value and value.lower() not in _BOOLEANS:
                self.add(ErrorCode.BOOLEAN_FORMAT, f"Direction {value!r} is not true or false", el)
        for el in other.iterfind(q("Appendixes")):
            self.empty(el)

    def business(self, business: etree._Element) -> None:
        doc_type_el = business.find(q("BussinessDocType"))
        doc_type = element_text(doc_type_el) if doc_type_el is not None else ""
        if doc_type_el is not None:
            self.domain(
                doc_type_el, ErrorCode.BUSINESS_DOC_TYPE_DOMAIN, ("0", "1", "2", "3"),
                "BussinessDocType"
            )
        for el in business.iterfind(q("Paper")):
            self.integer(el)
        for el in business.iterfind(q("StaffInfo")):
            self.empty(el)
        info = business.find(q("BussinessDocumentInfo"))
        receivers = info.findall(f"{q('ReceiverList')}/{q('Receiver')}") if info is not None else []
        if receivers and doc_type != "2":
            self.add(
                ErrorCode.BUSINESS_DOC_DETAIL,
                f"BussinessDocumentInfo lists receivers but BussinessDocType is {doc_type!r}, "
                "not 2 (update)",
                info if info is not None else business,
            )
        for receiver in receivers:
            self.organ_ids(receiver.iterfind(q("OrganId")))
            for el in receiver.iterfind(q("ReceiverType")):
                self.domain(el, ErrorCode.RECEIVER_TYPE_DOMAIN, ("0", "1"), "ReceiverType")
        replacements = business.findall(f"{q('ReplacementInfoList')}/{q('ReplacementInfo')}")
        if replacements and doc_type != "3":
            self.add(
                ErrorCode.BUSINESS_DOC_DETAIL,
                f"ReplacementInfoList is filled but BussinessDocType is {doc_type!r}, "
                "not 3 (replace)",
                replacements[0],
            )
        for replacement in replacements:
            self.organ_ids(replacement.iterfind(f"{q('OrganIdList')}/{q('OrganId')}"))

    # --- statuses ---------------------------------------------------------------------------

    def status(self, header: etree._Element) -> None:
        self.count(header, _STATUS_HEADER)
        sender = header.find(q("From"))
        response = header.find(q("ResponseFor"))
        code_el = header.find(q("StatusCode"))
        if sender is not None:
            self.organization(sender)
        if response is not None:
            self.response_for(response)
        for el in header.iterfind(q("StaffInfo")):
            self.empty(el)
        for el in header.iterfind(q("Timestamp")):
            self.timestamp(el)
        if code_el is None:
            return
        self.domain(code_el, ErrorCode.STATUS_CODE_DOMAIN, STATUS_CODES, "StatusCode")
        if sender is not None and response is not None and element_text(code_el) in STATUS_CODES:
            check_direction(self, element_text(code_el), sender, response)


def _quote(text: str) -> str:
    short = text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
    return repr(short)


__all__ = ["LENGTH_LIMITS", "RULE_CODES", "check_rules"]
