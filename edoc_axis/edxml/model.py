"""The edXML package model (QCVN 102:2016): typed document and status packages and code tables.

Plain dataclasses, no XML: ``read`` fills them from a parsed tree, ``write`` serializes them,
``status`` builds status packages. Also here: the two namespaces, the Clark-name helper ``q``
and the code tables the rules and the CLI share (status codes, priorities, steering types).
Attachments (``Attachment``, ``Reference``) are modelled in ``attachment``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from edoc_axis.edxml.attachment import Attachment, Reference

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


def subject_and_notation(pkg: Package) -> tuple[str, str]:
    """What a package is about, for listings: a document's Subject and ``number/notation``; a
    status's Description and the ``number/notation`` of the document it is about."""
    if isinstance(pkg, StatusPackage):
        return pkg.description or "", pkg.response_for.code
    return pkg.subject, f"{pkg.code.number}/{pkg.code.notation}"


@cache
def q(name: str) -> str:
    """The Clark name of an edXML element, e.g. ``{NS}From``."""
    return f"{{{NS}}}{name}"
