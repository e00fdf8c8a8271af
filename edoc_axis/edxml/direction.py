"""The status direction rule: who may send which status code to whom (``STATUS_DIRECTION``).

From the package alone: ResponseFor/OrganId (the addressee) must differ from From/OrganId; and
when ResponseFor/DocumentId has the conventional form
``<sender OrganId>,<yyyy/MM/dd>,<number>/<notation>`` it names the document's sender, so a 13
must come From that sender, and every other code must come from someone else and be addressed
to that sender. With another DocumentId (a UUID) only the first check applies; whether From is
really a recipient needs the original document, which the node checks, not this module.
Part of the business rules (``rule.check_rules`` runs it).
"""

from __future__ import annotations

from lxml import etree

from edoc_axis.edxml.finding import Findings, element_text
from edoc_axis.edxml.identifier import document_id_sender
from edoc_axis.edxml.model import q
from edoc_axis.errors import ErrorCode


def check_direction(
    out: Findings, code: str, sender: etree._Element, response: etree._Element
) -> None:
    """Check a status of a known ``code`` from ``sender`` (From) about ``response``."""
    from_el = sender.find(q("OrganId"))
    to_el = response.find(q("OrganId"))
    if from_el is None or to_el is None:
        return
    status_from, status_to = element_text(from_el), element_text(to_el)
    if status_from == status_to:
        out.add(
            ErrorCode.STATUS_DIRECTION,
            f"status {code} is addressed to its own sender {status_from!r}",
            to_el,
        )
        return
    doc_id_el = response.find(q("DocumentId"))
    doc_sender = document_id_sender(element_text(doc_id_el)) if doc_id_el is not None else None
    if doc_sender is None:
        return
    if code == "13" and status_from != doc_sender:
        out.add(
            ErrorCode.STATUS_DIRECTION,
            f"status 13 (take back) must come from the document's sender {doc_sender!r} "
            f"(named by ResponseFor/DocumentId), not from {status_from!r}",
            from_el,
        )
    elif code != "13" and status_from == doc_sender:
        out.add(
            ErrorCode.STATUS_DIRECTION,
            f"status {code} is sent by a recipient, but From {status_from!r} is the "
            "document's sender (named by ResponseFor/DocumentId)",
            from_el,
        )
    elif code != "13" and status_to != doc_sender:
        out.add(
            ErrorCode.STATUS_DIRECTION,
            f"status {code} goes back to the document's sender {doc_sender!r} (named by "
            f"ResponseFor/DocumentId), but ResponseFor/OrganId is {status_to!r}",
            to_el,
        )
