"""The national axis client protocol as data: calls, answers, errors, what it needs of a node.

Protocol and quirks: ``shared/spec/axis-client-protocol.md``. This module holds the call names,
the JSON shapes of answers (``ok_payload``/``fail_payload`` and one per listed item), the
codes the gateway answers by itself (every code's HTTP status is the registry's), the request
and response values the service and the HTTP server pass between them, and ``DmsBackend``,
the node as the gateway sees it. No I/O and no HTTP server.
Decisions taken where the spec is silent:

- Answers are ASCII-only JSON (the SDK reads sendEdoc answers as US-ASCII), never ``null``
  where the SDK calls ``getAsString`` (it would throw), and ``DocId`` is always present on
  sendEdoc answers.
- **getAgenciesList** also answers ``oldCode`` (SDK 2.0.1 reads it): the QCVN 102:2016 OrganId,
  the agency's "old" code beside ``code`` in the newer national scheme (same as ``code102``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Literal, Protocol

from edoc_axis.errors import EdocAxisError, ErrorCode, RequestRefused

Kind = Literal["edoc", "status"]
AckState = Literal["done", "fail", "processing"]
CALLS = (
    "sendEdoc",
    "getReceivedEdocList",
    "getEdoc",
    "updateStatus",
    "getSentEdocList",
    "getAgenciesList",
)
# Calls that change state: applied at most once per signed request (``gateway.ledger``).
MUTATING_CALLS = frozenset({"sendEdoc", "updateStatus"})
SERVICE_PATHS = ("/healthz", "/metrics", "/openapi.json")

# --- what the gateway needs from the node ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceivedItem:
    """A package received for the agency that its DMS has not yet acknowledged ``done``."""

    doc_id: str
    from_organ: str
    to_organ: str
    kind: Kind
    status: str  # transport acknowledgement so far: "new", "processing", "fail"
    status_desc: str = ""
    created: datetime | None = None
    updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class SentItem:
    """Tracking of one sent package towards one recipient."""

    from_code: str
    to_code: str
    sender_doc_id: str
    receiver_doc_id: str
    send_status: str
    send_status_desc: str
    receive_status: str
    receive_status_desc: str
    sent_time: datetime | None
    received_time: datetime | None
    title: str
    notation: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class AgencyItem:
    """One directory entry as the axis lists it."""

    id: str
    pid: str
    code: str
    name: str
    mail: str
    mobile: str
    fax: str
    code102: str


@dataclass(frozen=True, slots=True)
class NodeMetrics:
    """Node-side numbers exposed on /metrics."""

    packages_in: int = 0
    packages_out: int = 0
    outbox_depth: int = 0
    queue_lag_seconds: float = 0.0
    rejections: Mapping[str, int] = field(default_factory=dict)
    broker_connected: bool | None = None


class DmsBackend(Protocol):
    """The node as the gateway sees it. Errors are EdocAxisError subclasses with a code."""

    def submit(
        self, data: bytes, kind: Kind, declared_from: str, declared_to: list[str] | None
    ) -> str:
        """Validate, store and queue a package exactly as ``edoc-axis send``; return its DocId."""
        ...

    def received(self, agency: str, kind: Kind) -> list[ReceivedItem]:
        """Packages received for ``agency`` not yet acknowledged ``done``."""
        ...

    def fetch(self, agency: str, doc_id: str) -> bytes:
        """The stored bytes of a received package (raises NotFound)."""
        ...

    def acknowledge(
        self, agency: str, doc_id: str, state: AckState, description: str | None
    ) -> None:
        """Record the DMS's pickup acknowledgement (raises NotFound)."""
        ...

    def sent(self, agency: str, kind: Kind, doc_id: str | None) -> list[SentItem]:
        """Per-recipient tracking of packages sent by ``agency``."""
        ...

    def agencies(self) -> list[AgencyItem]:
        """The agency directory."""
        ...

    def metrics(self) -> NodeMetrics:
        """Current node numbers (called by /metrics and /healthz)."""
        ...


# --- errors --------------------------------------------------------------------------------------

# The codes the gateway answers by itself (listed in /openapi.json). The HTTP status of every
# code, these and the node's, is the registry's (edoc_axis.errors.ErrorCode.http_status).
GATEWAY_CODES = (
    *(c for c in ErrorCode if c.error is RequestRefused and c not in (
        ErrorCode.REQUEST_REFUSED, ErrorCode.REMOTE_REFUSED)),
    ErrorCode.NOT_FOUND,
)


def refused(code: ErrorCode, message: str, *, element: str | None = None) -> EdocAxisError:
    """A gateway refusal with a stable code, as the code's class (``RequestRefused``, or
    ``NotFound`` for an unknown path)."""
    return code.error(message, code=code, element=element)


def status_for(exc: EdocAxisError) -> int:
    """The HTTP status answering ``exc``: its code's, from the registry."""
    return exc.code.http_status


# --- requests and answers ------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """What the gateway needs of an HTTP request: headers by lowercase name, raw latin-1 text."""

    method: str
    path: str
    headers: dict[str, list[str]]
    body: bytes = b""

    def values(self, name: str) -> list[str]:
        """Every value of a header (case-insensitive name), as sent on the wire (latin-1)."""
        return self.headers.get(name.lower(), [])

    def first(self, name: str) -> str | None:
        """The first value of a header, or None."""
        found = self.values(name)
        return found[0] if found else None


@dataclass(slots=True)
class Response:
    """An HTTP answer ready to write."""

    status: int
    body: bytes
    content_type: str = "application/json"
    close: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def call_name(path: str) -> str | None:
    """The protocol call a path names (``/any/prefix/sendEdoc``), or None."""
    name = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return name if name in CALLS else None


def json_response(status: int, payload: Mapping[str, Any], *, close: bool = False) -> Response:
    """``payload`` as compact ASCII-only JSON."""
    body = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return Response(status, body, close=close)


def ok_payload(**extra: Any) -> dict[str, Any]:
    """The protocol's success shape plus call-specific fields."""
    return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", **extra}


def fail_payload(code: str, desc: str, call: str | None = None) -> dict[str, Any]:
    """The protocol's error shape; sendEdoc answers always carry DocId (the SDK reads it)."""
    payload: dict[str, Any] = {"status": "FAIL", "ErrorCode": code, "ErrorDesc": desc}
    if call == "sendEdoc":
        payload["DocId"] = ""
    return payload


def error_response(exc: EdocAxisError, call: str | None) -> Response:
    """The protocol's error answer to ``exc``, with Retry-After when asking again helps."""
    status = status_for(exc)
    where = ", ".join(str(w) for w in (exc.element, exc.line and f"line {exc.line}") if w)
    desc = f"{exc.message} ({where})" if where else exc.message
    response = json_response(status, fail_payload(exc.code, desc, call))
    if status in (409, 429, 503):
        response.headers["Retry-After"] = "5" if status == 503 else "1"
    return response


# --- listed items as JSON ------------------------------------------------------------------------


def time_text(moment: datetime | None, tz: tzinfo) -> str:
    """A list time as the axis writes it (``yyyy-MM-dd HH:mm:ss`` in ``tz``), or empty."""
    if moment is None:
        return ""
    local = moment.astimezone(tz) if moment.tzinfo else moment
    return local.strftime("%Y-%m-%d %H:%M:%S")


def received_json(item: ReceivedItem, tz: tzinfo) -> dict[str, str]:
    """One ``getReceivedEdocList`` entry."""
    return {
        "docId": item.doc_id,
        "from": item.from_organ,
        "to": item.to_organ,
        "status": item.status,
        "status_desc": item.status_desc,
        "created_time": time_text(item.created, tz),
        "updated_time": time_text(item.updated, tz),
        "messageType": item.kind,
        "serviceType": "eDoc",
    }


def sent_json(item: SentItem, tz: tzinfo) -> dict[str, str]:
    """One ``getSentEdocList`` entry."""
    return {
        "fromCode": item.from_code,
        "toCode": item.to_code,
        "senderDocId": item.sender_doc_id,
        "receiverDocId": item.receiver_doc_id,
        "sendStatus": item.send_status,
        "sendStatusDesc": item.send_status_desc,
        "receiveStatus": item.receive_status,
        "receiveStatusDesc": item.receive_status_desc,
        "sentTime": time_text(item.sent_time, tz),
        "receivedTime": time_text(item.received_time, tz),
        "title": item.title,
        "notation": item.notation,
        "messageType": item.kind,
        "serviceType": "eDoc",
    }


def agency_json(item: AgencyItem) -> dict[str, str]:
    """One ``getAgenciesList`` entry."""
    return {
        "id": item.id,
        "pid": item.pid,
        "code": item.code,
        "name": item.name,
        "mail": item.mail,
        "mobile": item.mobile,
        "fax": item.fax,
        "code102": item.code102,
        "oldCode": item.code102,  # SDK 2.0.1: the QCVN 102 OrganId ("old" beside ``code``)
    }
