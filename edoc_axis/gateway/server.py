"""The DMS gateway: the national axis client protocol over HTTP, plus health, metrics and OpenAPI.

An agency's document-management system points its existing axis SDK at the node; this module
answers each call (after ``dmsauth`` has authenticated it: HMAC over the ``XroadVnpt-*`` headers,
exactly as the deployed Java SDK signs them, quirks included) and maps it onto a ``DmsBackend``
(the node). Protocol and quirks: ``shared/spec/axis-client-protocol.md``; the timestamp, replay
and hash-file decisions are in ``dmsauth``'s docstring. Decisions this module takes where the
spec is silent:

- Answers are ASCII-only JSON (the SDK reads sendEdoc answers as US-ASCII), never ``null``
  where the SDK calls ``getAsString`` (it would throw), and ``DocId`` is always present on
  sendEdoc answers.
- **Exact repeats are idempotent.** The Java SDK resends the same signed headers for as long as
  its object lives, so a retry after a lost answer is byte for byte the first request. A
  state-changing call (sendEdoc, updateStatus) is applied at most once per signed request: its
  answer is kept in a ``RequestLedger`` (the node's store when hosted by ``gateway``) and an exact
  repeat, same signature and same body, gets that answer again and changes nothing. The same
  signature with another body is ``AUTH_REPLAY``; a repeat arriving while the first is still
  being answered is ``REQUEST_IN_PROGRESS`` (409, ask again). A call that failed is not
  remembered as answered, so the SDK's retry runs it; a failed updateStatus is remembered as
  failed so that, once a later acknowledgement of the same docId succeeded, its repeat is
  refused (``AUTH_REPLAY``) instead of moving the package back.
- **updateStatus description** may be percent-encoded UTF-8 (``%C4%91`` for đ): the Java SDK
  cannot send Vietnamese in a header (``dmsauth``: ``AUTH_HEADER_ENCODING``), so an ASCII
  description holding percent-encoded UTF-8 is decoded before it is stored.
- **getAgenciesList** also answers ``oldCode`` (SDK 2.0.1 reads it): the QCVN 102:2016 OrganId,
  the agency's "old" code beside ``code`` in the newer national scheme (same as ``code102``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Protocol, cast
from urllib.parse import unquote

from edoc_axis import __version__
from edoc_axis.edxml.identifier import VN_TZ
from edoc_axis.errors import (
    ConfigError,
    EdocAxisError,
    NotFound,
    PackageRejected,
    PackageTooLarge,
    RequestRefused,
    SpoofedSender,
    TemporaryFailure,
)
from edoc_axis.gateway.auth import (
    MUTATING_CALLS,
    PREFIX,
    Authenticated,
    Authenticator,
    DmsSystem,
    MemoryLedger,
    RequestLedger,
    RequestRecord,
    extract_package,
    format_sdk_timestamp,
    hash_file_matches,
    parse_sdk_timestamp,
    sha256_hex,
    sha256_hex_unpadded,
    sign_headers,
)
from edoc_axis.gateway.openapi import openapi_document
from edoc_axis.log import get_logger

# Re-exported: callers (client, tests, scripts) import the protocol's formats from here.
__all__ = [
    "CALLS",
    "DEFAULT_LISTEN",
    "MUTATING_CALLS",
    "PREFIX",
    "VN_TZ",
    "AckState",
    "AgencyItem",
    "Authenticated",
    "Authenticator",
    "DmsBackend",
    "DmsGateway",
    "DmsServer",
    "DmsSystem",
    "GatewayOptions",
    "Kind",
    "NodeMetrics",
    "ReceivedItem",
    "Request",
    "Response",
    "SentItem",
    "extract_package",
    "fail_payload",
    "format_sdk_timestamp",
    "hash_file_matches",
    "ok_payload",
    "openapi_document",
    "parse_sdk_timestamp",
    "refused",
    "sha256_hex",
    "sha256_hex_unpadded",
    "sign_headers",
]

log = get_logger(__name__)

DEFAULT_LISTEN = "127.0.0.1:8470"
MiB = 1024 * 1024

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

# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """How the gateway listens and how strict it is (see the module docstring)."""

    listen: str = DEFAULT_LISTEN
    max_body_bytes: int = 16 * MiB
    max_connections: int = 64
    socket_timeout: float = 30.0
    skew_seconds: int = 300
    max_timestamp_age: int = 0  # seconds; 0: no limit (the SDK object keeps its first stamp)
    replay_cache_size: int = 200_000  # requests the in-memory ledger keeps (no store given)
    timezone: tzinfo = VN_TZ  # the zone of the SDK's zone-less timestamp

    def address(self) -> tuple[str, int]:
        """``listen`` as (host, port); raises ConfigError naming the key."""
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ConfigError(
                f"api.listen must be host:port, got {self.listen!r}", element="listen"
            )
        return host.strip("[]") or "127.0.0.1", int(port)


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


# --- errors and answers ------------------------------------------------------------------------

# HTTP status per gateway code; backend errors are mapped by class in _status_for().
_STATUS_BY_CODE = {
    "AUTH_MISSING": 401,
    "AUTH_UNKNOWN_SYSTEM": 401,
    "AUTH_BAD_HMAC": 401,
    "AUTH_BAD_SIGN_HEADER": 401,
    "AUTH_HEADER_MISMATCH": 401,
    "AUTH_BAD_TIMESTAMP": 401,
    "AUTH_TIMESTAMP_SKEW": 401,
    "AUTH_REPLAY": 401,
    "AUTH_HEADER_ENCODING": 401,
    "REQUEST_IN_PROGRESS": 409,
    "FROM_NOT_ALLOWED": 403,
    "HASH_FILE_MISMATCH": 400,
    "BAD_REQUEST": 400,
    "BAD_HEADER": 400,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "LENGTH_REQUIRED": 411,
    "BODY_TOO_LARGE": 413,
    "HEADER_TOO_LARGE": 431,
    "SERVER_BUSY": 503,
    "INTERNAL_ERROR": 500,
}


def refused(code: str, message: str, *, element: str | None = None) -> RequestRefused:
    """A gateway refusal with a stable code (HTTP status from the code table)."""
    return RequestRefused(message, code=code, element=element)


# Backend errors by class, most specific first; anything else the node raises on purpose is 400.
_STATUS_BY_CLASS: tuple[tuple[type[EdocAxisError], int], ...] = (
    (NotFound, 404),
    (PackageTooLarge, 413),
    (SpoofedSender, 403),
    (PackageRejected, 422),
    (TemporaryFailure, 503),
    (ConfigError, 500),
)


def _status_for(exc: EdocAxisError) -> int:
    if isinstance(exc, RequestRefused):
        return _STATUS_BY_CODE.get(exc.code, 400)
    return next((status for cls, status in _STATUS_BY_CLASS if isinstance(exc, cls)), 400)


@dataclass(slots=True)
class Response:
    """An HTTP answer ready to write."""

    status: int
    body: bytes
    content_type: str = "application/json"
    close: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def _json_response(status: int, payload: Mapping[str, Any], *, close: bool = False) -> Response:
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


def _error_response(exc: EdocAxisError, call: str | None) -> Response:
    status = _status_for(exc)
    where = ", ".join(str(w) for w in (exc.element, exc.line and f"line {exc.line}") if w)
    desc = f"{exc.message} ({where})" if where else exc.message
    response = _json_response(status, fail_payload(exc.code, desc, call))
    if status in (409, 503):
        response.headers["Retry-After"] = "1" if status == 409 else "5"
    return response


# --- request view ------------------------------------------------------------------------------


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


# --- the protocol calls --------------------------------------------------------------------------


def _kind(signed: Mapping[str, str], *, required: bool) -> Kind:
    value = signed.get("messagetype", "").strip().lower()
    if not value:
        if required:
            raise refused("BAD_REQUEST", "header messagetype (edoc or status) is required")
        return "edoc"
    if value not in ("edoc", "status"):
        raise refused("BAD_REQUEST", f"messagetype must be edoc or status, not {value!r}")
    return cast(Kind, value)


def _check_service(signed: Mapping[str, str]) -> None:
    service = signed.get("servicetype", "").strip()
    if service and service.lower() != "edoc":
        raise refused("BAD_REQUEST", f"servicetype must be eDoc, not {service!r}")


def _doc_id(signed: Mapping[str, str], *, required: bool) -> str | None:
    value = signed.get("docid", "").strip()
    if not value:
        if required:
            raise refused("BAD_REQUEST", "header docId is required")
        return None
    if len(value) > 256 or any(ord(c) < 32 for c in value):
        raise refused("BAD_REQUEST", "header docId is malformed")
    return value


def _recipients(signed: Mapping[str, str]) -> list[str] | None:
    """``to``: a JSON list of OrganIds as the SDK sends it, or one bare OrganId."""
    raw = signed.get("to", "").strip()
    if not raw:
        return None
    if not raw.startswith("["):
        return [raw]
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise refused("BAD_REQUEST", f"header to is not a JSON list: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise refused("BAD_REQUEST", "header to must be a JSON list of OrganIds")
    return [v.strip() for v in value] or None


def _description(value: str | None) -> str | None:
    """updateStatus's description; ASCII holding percent-encoded UTF-8 is decoded (module doc)."""
    if value is None or not value.isascii() or "%" not in value:
        return value
    try:
        decoded = unquote(value, errors="strict")
    except UnicodeDecodeError:
        return value  # a literal "%" (such as "50%AB"): kept as sent
    return decoded


def _time_text(moment: datetime | None, tz: tzinfo) -> str:
    if moment is None:
        return ""
    local = moment.astimezone(tz) if moment.tzinfo else moment
    return local.strftime("%Y-%m-%d %H:%M:%S")


class DmsGateway:
    """The protocol, independent of the HTTP server: ``handle(Request) -> Response``."""

    def __init__(
        self,
        backend: DmsBackend,
        systems: Iterable[DmsSystem],
        options: GatewayOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
        ledger: RequestLedger | None = None,
    ) -> None:
        self.backend = backend
        self.options = options or GatewayOptions()
        self.auth = Authenticator(systems, self.options, clock)
        self.ledger = ledger or MemoryLedger(self.options.replay_cache_size)
        self._lock = threading.Lock()
        self._in_flight: set[tuple[str, str]] = set()
        self._requests: dict[tuple[str, str], int] = {}
        self._rejections: dict[str, int] = {}
        self._seconds: dict[str, float] = {}
        self._openapi: bytes | None = None

    # -- entry points used by the HTTP layer

    def precheck(  # noqa: PLR0911 - one early refusal per HTTP-level check
        self, method: str, path: str, headers: Mapping[str, list[str]]
    ) -> Response | None:
        """Refuse before the body is read: unknown path, wrong method, length missing or too big."""
        call = _call_name(path)
        if call is None and path not in ("/healthz", "/metrics", "/openapi.json"):
            return self._refuse(refused("NOT_FOUND", f"no such call {path!r}"), None, close=True)
        if call is None:
            if method not in ("GET", "HEAD"):
                return self._refuse(
                    refused("METHOD_NOT_ALLOWED", f"{path} answers GET"), None, close=True
                )
            return None
        if method not in ("POST", "GET"):
            return self._refuse(
                refused("METHOD_NOT_ALLOWED", "protocol calls are POST"), call, close=True
            )
        lengths = headers.get("content-length", [])
        if headers.get("transfer-encoding"):
            return self._refuse(
                refused("LENGTH_REQUIRED", "send a Content-Length, not chunked transfer"),
                call,
                close=True,
            )
        if len(lengths) > 1 or (lengths and not lengths[0].strip().isdigit()):
            return self._refuse(refused("BAD_HEADER", "bad Content-Length"), call, close=True)
        if lengths and int(lengths[0]) > self.options.max_body_bytes:
            return self._refuse(
                refused(
                    "BODY_TOO_LARGE",
                    f"body of {int(lengths[0])} bytes exceeds {self.options.max_body_bytes}",
                ),
                call,
                close=True,
            )
        return None

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises, never leaks a traceback."""
        early = self.precheck(request.method, request.path, request.headers)
        if early is not None:
            return early
        if request.path == "/healthz":
            return self._healthz()
        if request.path == "/metrics":
            return Response(200, self.render_metrics(), "text/plain; version=0.0.4; charset=utf-8")
        if request.path == "/openapi.json":
            if self._openapi is None:
                document = openapi_document(_STATUS_BY_CODE)
                self._openapi = json.dumps(document, ensure_ascii=True).encode()
            return Response(200, self._openapi)
        call = cast(str, _call_name(request.path))
        started = time.perf_counter()
        try:
            auth = self.auth.authenticate(call, request)
            if call in MUTATING_CALLS:
                response = self._answer_once(call, auth, request)
            else:
                response = _json_response(200, self._dispatch(call, auth, request))
        except EdocAxisError as exc:
            response = self._refuse(exc, call)
        except Exception:  # a bug or an unexpected library error: log it, answer generically
            ref = uuid.uuid4().hex[:12]
            log.exception("dms_call_crashed", call=call, ref=ref)
            response = self._refuse(
                refused("INTERNAL_ERROR", f"internal error; see the node log (ref {ref})"), call
            )
        self._count(call, "OK" if response.status == 200 else "FAIL", time.perf_counter() - started)
        return response

    # -- state-changing calls: at most once per signed request

    def _answer_once(self, call: str, auth: Authenticated, request: Request) -> Response:
        """Apply a sendEdoc/updateStatus once; an exact repeat gets the first answer again."""
        key = (auth.system.systemid, auth.signature)
        with self._lock:
            if key in self._in_flight:
                raise refused(
                    "REQUEST_IN_PROGRESS",
                    "this signed request is being answered right now; send it again in a "
                    "moment to get its answer",
                )
            self._in_flight.add(key)
        try:
            return self._apply_once(call, auth, request, key)
        finally:
            with self._lock:
                self._in_flight.discard(key)

    def _apply_once(
        self, call: str, auth: Authenticated, request: Request, key: tuple[str, str]
    ) -> Response:
        body_sha256 = sha256_hex(request.body)
        earlier = self.ledger.recall(*key)
        if earlier is not None:
            if earlier.call != call or earlier.body_sha256 != body_sha256:
                raise refused(
                    "AUTH_REPLAY",
                    f"this signed request was already answered ({earlier.call}) and now comes "
                    "with another body or call; nothing was done",
                )
            if earlier.answer is not None:
                log.info("dms_request_repeated", call=call, systemid=key[0])
                return Response(200, earlier.answer)
            if earlier.subject is not None and self.ledger.applied_since(
                earlier.subject, earlier.seq
            ):
                raise refused(
                    "AUTH_REPLAY",
                    f"this signed updateStatus failed before, and a later updateStatus of "
                    f"{earlier.subject} has been applied since; it is not applied now (sign a "
                    "new request to change the state again)",
                )
        subject = _doc_id(auth.signed, required=False) if call == "updateStatus" else None
        try:
            payload = self._dispatch(call, auth, request)
        except EdocAxisError:
            if subject is not None:  # a failed updateStatus may be overtaken (module doc)
                self._remember(key, RequestRecord(call, body_sha256, subject, None, 0))
            raise
        response = _json_response(200, payload)
        self._remember(key, RequestRecord(call, body_sha256, subject, response.body, 0))
        return response

    def _remember(self, key: tuple[str, str], record: RequestRecord) -> None:
        try:
            self.ledger.remember(*key, record)
        except EdocAxisError as exc:
            # The call itself is done: answer it. Its repeat will run again (sendEdoc: the
            # package dedupe answers the same DocId; updateStatus: sets the same state).
            log.warning("dms_request_not_remembered", call=record.call, code=exc.code)

    # -- calls

    def _dispatch(self, call: str, auth: Authenticated, request: Request) -> dict[str, Any]:
        signed, agency, tz = auth.signed, auth.system.organ_id, self.options.timezone
        if call == "sendEdoc":
            _check_service(signed)
            kind = _kind(signed, required=True)
            declared_from = signed.get("from", "").strip()
            if not declared_from:
                raise refused("BAD_REQUEST", "header from is required")
            if declared_from != agency:
                raise refused(
                    "FROM_NOT_ALLOWED",
                    f"system {auth.system.systemid!r} may not send as {declared_from!r}",
                    element="from",
                )
            hash_file = signed.get("hash-file", "").strip()
            if not hash_file:
                raise refused("BAD_REQUEST", "header hash-file is required")
            data = extract_package(request, hash_file)
            doc_id = self.backend.submit(data, kind, declared_from, _recipients(signed))
            log.info(
                "dms_package_submitted", systemid=auth.system.systemid, doc_id=doc_id, kind=kind
            )
            return ok_payload(DocId=doc_id)
        if call == "getReceivedEdocList":
            _check_service(signed)
            items = self.backend.received(agency, _kind(signed, required=False))
            return ok_payload(data=[_received_json(i, tz) for i in items])
        if call == "getEdoc":
            data = self.backend.fetch(agency, cast(str, _doc_id(signed, required=True)))
            return ok_payload(data=base64.b64encode(data).decode("ascii"))
        if call == "updateStatus":
            doc_id = cast(str, _doc_id(signed, required=True))
            state = signed.get("status", "").strip().lower()
            if state not in ("done", "fail", "processing"):
                raise refused("BAD_REQUEST", "status must be done, fail or processing")
            description = _description(signed.get("description") or None)
            self.backend.acknowledge(agency, doc_id, cast(AckState, state), description)
            return ok_payload()
        if call == "getSentEdocList":
            _check_service(signed)
            kind = _kind(signed, required=False)
            items_sent = self.backend.sent(agency, kind, _doc_id(signed, required=False))
            return ok_payload(data=[_sent_json(i, tz) for i in items_sent])
        return ok_payload(data=[_agency_json(a) for a in self.backend.agencies()])

    # -- health, metrics

    def _healthz(self) -> Response:
        try:
            node = self.backend.metrics()
        except Exception as exc:  # health must answer even when the node is sick
            log.warning("dms_health_failed", error=type(exc).__name__)
            return _json_response(
                503,
                {
                    "status": "FAIL",
                    "ErrorCode": "NODE_UNAVAILABLE",
                    "ErrorDesc": "the node does not answer",
                },
            )
        payload: dict[str, Any] = {"status": "OK", "version": __version__}
        if node.broker_connected is not None:
            payload["broker_connected"] = node.broker_connected
        return _json_response(200, payload)

    def render_metrics(self) -> bytes:
        """Prometheus text exposition of gateway counters and the node's numbers."""
        lines: list[str] = []

        def metric(
            name: str, kind: str, help_text: str, samples: Iterable[tuple[str, Any]]
        ) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {value}" for labels, value in samples)

        try:
            node: NodeMetrics | None = self.backend.metrics()
        except Exception as exc:  # metrics must not fail because the node is sick
            log.warning("dms_metrics_failed", error=type(exc).__name__)
            node = None
        with self._lock:
            requests = sorted(self._requests.items())
            rejections = sorted(self._rejections.items())
            seconds = sorted(self._seconds.items())
        if node is not None:
            metric(
                "edoc_axis_packages_in_total",
                "counter",
                "Packages received from the axis.",
                [("", node.packages_in)],
            )
            metric(
                "edoc_axis_packages_out_total",
                "counter",
                "Packages submitted for sending.",
                [("", node.packages_out)],
            )
            metric(
                "edoc_axis_outbox_depth",
                "gauge",
                "Messages waiting in the outbox for the broker.",
                [("", node.outbox_depth)],
            )
            metric(
                "edoc_axis_queue_lag_seconds",
                "gauge",
                "Age of the oldest unsent outbox message.",
                [("", node.queue_lag_seconds)],
            )
        node_rejections = sorted((node.rejections if node else {}).items())
        metric(
            "edoc_axis_rejections_total",
            "counter",
            "Refused requests and packages by code.",
            [(f'{{source="api",code="{_label(c)}"}}', n) for c, n in rejections]
            + [(f'{{source="node",code="{_label(c)}"}}', n) for c, n in node_rejections],
        )
        metric(
            "edoc_axis_dms_requests_total",
            "counter",
            "DMS protocol calls by result.",
            [(f'{{call="{c}",result="{r}"}}', n) for (c, r), n in requests],
        )
        metric(
            "edoc_axis_dms_request_seconds_total",
            "counter",
            "Time spent answering DMS protocol calls.",
            [(f'{{call="{c}"}}', f"{s:.6f}") for c, s in seconds],
        )
        if node is not None and node.broker_connected is not None:
            metric(
                "edoc_axis_broker_connected",
                "gauge",
                "1 when the broker link is up.",
                [("", int(node.broker_connected))],
            )
        return ("\n".join(lines) + "\n").encode("utf-8")

    def _refuse(self, exc: EdocAxisError, call: str | None, *, close: bool = False) -> Response:
        with self._lock:
            self._rejections[exc.code] = self._rejections.get(exc.code, 0) + 1
        log.warning("dms_request_refused", call=call, code=exc.code, reason=exc.message)
        response = _error_response(exc, call)
        response.close = response.close or close
        return response

    def _count(self, call: str, result: str, seconds: float) -> None:
        with self._lock:
            key = (call, result)
            self._requests[key] = self._requests.get(key, 0) + 1
            self._seconds[call] = self._seconds.get(call, 0.0) + seconds


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _call_name(path: str) -> str | None:
    name = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return name if name in CALLS else None


def _received_json(item: ReceivedItem, tz: tzinfo) -> dict[str, str]:
    return {
        "docId": item.doc_id,
        "from": item.from_organ,
        "to": item.to_organ,
        "status": item.status,
        "status_desc": item.status_desc,
        "created_time": _time_text(item.created, tz),
        "updated_time": _time_text(item.updated, tz),
        "messageType": item.kind,
        "serviceType": "eDoc",
    }


def _sent_json(item: SentItem, tz: tzinfo) -> dict[str, str]:
    return {
        "fromCode": item.from_code,
        "toCode": item.to_code,
        "senderDocId": item.sender_doc_id,
        "receiverDocId": item.receiver_doc_id,
        "sendStatus": item.send_status,
        "sendStatusDesc": item.send_status_desc,
        "receiveStatus": item.receive_status,
        "receiveStatusDesc": item.receive_status_desc,
        "sentTime": _time_text(item.sent_time, tz),
        "receivedTime": _time_text(item.received_time, tz),
        "title": item.title,
        "notation": item.notation,
        "messageType": item.kind,
        "serviceType": "eDoc",
    }


def _agency_json(item: AgencyItem) -> dict[str, str]:
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


# --- HTTP server -------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Adapts http.server to DmsGateway: JSON errors everywhere, early size refusal."""

    protocol_version = "HTTP/1.1"
    server_version = f"edoc-axis/{__version__}"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        # Per-connection read/write timeout against slow or stalled clients.
        self.request.settimeout(self.server.gateway.options.socket_timeout)
        # Headers and body go out in two writes; without NODELAY, Nagle plus the client's
        # delayed ACK adds ~40 ms to every answer.
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def _collect_headers(self) -> dict[str, list[str]]:
        collected: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            collected.setdefault(name.lower(), []).append(value)
        return collected

    def handle_expect_100(self) -> bool:
        early = self.server.gateway.precheck(self.command, self.path, self._collect_headers())
        if early is not None:
            self._write(early)
            return False
        return super().handle_expect_100()

    def _serve(self) -> None:
        gateway = self.server.gateway
        headers = self._collect_headers()
        early = gateway.precheck(self.command, self.path, headers)
        if early is not None:
            self._write(early)
            return
        length = int(headers.get("content-length", ["0"])[0].strip() or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
            return
        path = self.path.split("?", 1)[0]
        self._write(gateway.handle(Request(self.command, path, headers, body)))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def do_HEAD(self) -> None:
        self._serve()

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, huge headers) in the protocol's shape."""
        err = {
            400: "BAD_REQUEST",
            414: "BAD_REQUEST",
            431: "HEADER_TOO_LARGE",
            501: "METHOD_NOT_ALLOWED",
            505: "BAD_REQUEST",
        }.get(code, "BAD_REQUEST")
        status = 405 if code == 501 else code
        self.close_connection = True
        # Parse errors can come before the version is known; always answer with a status line.
        self.request_version = self.protocol_version
        response = _json_response(status, fail_payload(err, message or "bad request"), close=True)
        with contextlib.suppress(OSError):
            self._write(response)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http_request", line=format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], gateway: DmsGateway) -> None:
        self.gateway = gateway
        self._slots = threading.BoundedSemaphore(gateway.options.max_connections)
        self._active: set[socket.socket] = set()
        self._active_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            # Over the connection limit: answer at once instead of queueing without bound.
            busy = _json_response(503, fail_payload("SERVER_BUSY", "too many connections"))
            head = (
                f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(busy.body)}\r\nConnection: close\r\n"
                "Retry-After: 1\r\n\r\n"
            ).encode()
            try:
                request.settimeout(1.0)
                request.sendall(head + busy.body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        with self._active_lock:
            self._active.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active.discard(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("http_connection_error", client=str(client_address[0]))

    def drop_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self._active_lock:
            active = list(self._active)
        for sock in active:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class DmsServer:
    """The gateway on a threaded HTTP server; ``start()`` in the background, ``stop()`` to end.

    stdlib ``ThreadingHTTPServer`` is used on purpose: every refusal, including the early 413
    (decided from Content-Length before the body is read) and http.server's own parse errors,
    goes out in the protocol's JSON shape, which waitress (reads whole bodies before the app and
    answers its own limits in text/plain) cannot do without patching its internals. Concurrency
    is bounded by ``max_connections`` (one thread each; over the limit: 503 SERVER_BUSY at once),
    slow clients by ``socket_timeout``.
    """

    def __init__(
        self,
        backend: DmsBackend,
        systems: Iterable[DmsSystem],
        options: GatewayOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
        ledger: RequestLedger | None = None,
    ) -> None:
        self.gateway = DmsGateway(backend, systems, options, clock=clock, ledger=ledger)
        try:
            self._server = _Server(self.gateway.options.address(), self.gateway)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self.gateway.options.listen}: {exc.strerror}",
                element="api.listen",
            ) from exc
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); port is real even when 0 was configured."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """Base URL a client uses as its endpoint."""
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()``."""
        log.info("dms_gateway_listening", url=self.url)
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever, name="edoc-dms-gateway", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close idle connections, let running calls finish, release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout)
            self._thread = None
        self._server.drop_connections()
        self._server.server_close()
        log.info("dms_gateway_stopped")

    def __enter__(self) -> DmsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
