"""Status packages: a new status about a document, addressed the way QCVN 102:2016 says.

Recipient codes (01-06, 15, 16) go back to the document's sender; 13 (take back) goes from the
sender to one recipient.
"""

from __future__ import annotations

from datetime import datetime

from edoc_axis.edxml.identifier import VN_TZ, format_timestamp
from edoc_axis.edxml.model import (
    STATUS_CODES,
    DocumentPackage,
    Organization,
    ResponseFor,
    StaffInfo,
    StatusPackage,
)


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
