"""Reception profiles: how much each validation finding weighs, declared in one table.

A finding either refuses the package (``error``) or is only reported (``warning``). What decides
is what the rule protects: hostile XML, structure, signatures, parties and routing (From, To,
recipients, ResponseFor of a status, status direction), sizes, encodings, attachments and
base64 always refuse; format deviations that lose nothing (an empty optional element, an
unusual OrganId in a TraceHeader, white space around a value) may be let through.

- ``strict``: every finding refuses. Our own submissions use it unless the node's config says
  ``[validation] submit_profile = "received"``.
- ``received``: the ``WARN`` rows of ``SEVERITIES`` are warnings. The node receives with it: the
  deployed axis delivers such packages, and refusing them would lose real documents.

A row's key is a finding code, or ``(code, element)`` for a code whose weight depends on the
element it is found in (an OrganId inside a ``TraceHeader`` records a hop; everywhere else it
routes).
A code missing from the table refuses under every profile (fail closed). Pure: no XML here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from edoc_axis.errors import ErrorCode


class Severity(StrEnum):
    """What a finding does to the package under a profile."""

    ERROR = "error"  # the package is refused
    WARNING = "warning"  # the package is accepted; the finding is reported and kept


STRICT = "strict"
RECEIVED = "received"
PROFILES = (STRICT, RECEIVED)

REFUSE, WARN = Severity.ERROR, Severity.WARNING


class Row(NamedTuple):
    """The severity of one finding under each profile."""

    strict: Severity
    received: Severity


SEVERITIES: dict[str | tuple[str, str], Row] = {
    # The hardened door (edoc_axis.edxml.parser): hostile or unreadable bytes.
    ErrorCode.XML_TOO_LARGE: Row(REFUSE, REFUSE),
    ErrorCode.XML_ENCODING: Row(REFUSE, REFUSE),
    ErrorCode.XML_EMPTY: Row(REFUSE, REFUSE),
    ErrorCode.XML_NOT_XML: Row(REFUSE, REFUSE),
    ErrorCode.XML_DOCTYPE: Row(REFUSE, REFUSE),
    ErrorCode.XML_ENTITY: Row(REFUSE, REFUSE),
    ErrorCode.XML_TOO_MANY_ELEMENTS: Row(REFUSE, REFUSE),
    ErrorCode.XML_TOO_DEEP: Row(REFUSE, REFUSE),
    ErrorCode.XML_MALFORMED: Row(REFUSE, REFUSE),
    # Structure: what the XSD (edoc_axis.edxml.schema) and the model refuse.
    ErrorCode.PACKAGE_NOT_EDXML: Row(REFUSE, REFUSE),
    ErrorCode.PACKAGE_STRUCTURE: Row(REFUSE, REFUSE),
    ErrorCode.PACKAGE_VALUE: Row(REFUSE, REFUSE),
    ErrorCode.SCHEMA_UNEXPECTED_ELEMENT: Row(REFUSE, REFUSE),
    ErrorCode.SCHEMA_MISSING_ELEMENT: Row(REFUSE, REFUSE),
    ErrorCode.SCHEMA_VIOLATION: Row(REFUSE, REFUSE),
    ErrorCode.CARDINALITY: Row(REFUSE, REFUSE),
    # Parties and routing.
    # From, To, ResponseFor, Receiver, ReplacementInfo route; a TraceHeader only records a hop.
    ErrorCode.ORGANID_FORMAT: Row(REFUSE, REFUSE),
    (ErrorCode.ORGANID_FORMAT, "TraceHeader"): Row(REFUSE, WARN),
    ErrorCode.RECIPIENT_DUPLICATE: Row(REFUSE, REFUSE),
    ErrorCode.STATUS_DIRECTION: Row(REFUSE, REFUSE),
    ErrorCode.STATUS_CODE_DOMAIN: Row(REFUSE, REFUSE),
    ErrorCode.BUSINESS_DOC_TYPE_DOMAIN: Row(REFUSE, REFUSE),
    ErrorCode.BUSINESS_DOC_DETAIL: Row(REFUSE, REFUSE),
    ErrorCode.RECEIVER_TYPE_DOMAIN: Row(REFUSE, REFUSE),
    # Attachments.
    ErrorCode.MANIFEST_UNMATCHED: Row(REFUSE, REFUSE),
    ErrorCode.ATTACHMENT_UNMATCHED: Row(REFUSE, REFUSE),
    ErrorCode.BASE64_INVALID: Row(REFUSE, REFUSE),
    # Values the DMS reads: a wrong one would be shown or registered wrongly.
    ErrorCode.DATE_FORMAT: Row(REFUSE, REFUSE),
    ErrorCode.TIMESTAMP_FORMAT: Row(REFUSE, REFUSE),
    ErrorCode.PRIORITY_DOMAIN: Row(REFUSE, REFUSE),
    ErrorCode.STEERING_TYPE_DOMAIN: Row(REFUSE, REFUSE),
    ErrorCode.DOCUMENT_TYPE_DOMAIN: Row(REFUSE, REFUSE),
    ErrorCode.INTEGER_FORMAT: Row(REFUSE, REFUSE),
    ErrorCode.BOOLEAN_FORMAT: Row(REFUSE, REFUSE),
    ErrorCode.LENGTH_LIMIT: Row(REFUSE, REFUSE),
    # Format deviations that lose nothing (the model reads the same values without them).
    ErrorCode.EMPTY_ELEMENT: Row(REFUSE, WARN),  # an empty optional container, e.g. <ResponseFor/>
    ErrorCode.SURPLUS_WHITESPACE: Row(REFUSE, WARN),  # white space around a value (it is trimmed)
}


def severity(code: str, profile: str, place: str | None = None) -> Severity:
    """The severity of finding ``code`` (found in element ``place``) under ``profile``.

    Unknown codes and profiles refuse: a new rule is strict until someone weighs it here.
    """
    row = (place and SEVERITIES.get((code, place))) or SEVERITIES.get(code)
    if row is None or profile not in PROFILES:
        return REFUSE
    return Severity(getattr(row, profile))


__all__ = ["PROFILES", "RECEIVED", "SEVERITIES", "STRICT", "Row", "Severity", "severity"]
