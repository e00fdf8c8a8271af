"""The DMS gateway's service: authenticate each protocol call, apply it to the node, answer it.

``DmsGateway.handle(Request) -> Response`` is the whole protocol, independent of the HTTP server
(``gateway.server`` only moves bytes): the early HTTP-level refusals (``precheck``, before a body
is read), authentication (``gateway.auth``), the calls mapped onto a ``DmsBackend`` (the node),
``/healthz``, ``/metrics`` and ``/openapi.json``. Decisions taken where the spec is silent:

- **Exact repeats are idempotent.** The Java SDK resends the same signed headers for as long as
  its object lives, so a retry after a lost answer is byte for byte the first request. A
  state-changing call (sendEdoc, updateStatus) is applied at most once per signed request: its
  answer is kept in a ``RequestLedger`` (``gateway.ledger``; the node's store when hosted by
  ``gateway.backend``) and an exact repeat, same signature and same body, gets that answer again
  and changes nothing. The same signature with another body is ``AUTH_REPLAY``; a repeat
  arriving while the first is still being answered is ``REQUEST_IN_PROGRESS`` (409, ask again).
  A call that failed is not remembered as answered, so the SDK's retry runs it; a failed
  updateStatus is remembered as failed so that, once a later acknowledgement of the same docId
  succeeded, its repeat is refused (``AUTH_REPLAY``) instead of moving the package back.
- **updateStatus description** may be percent-encoded UTF-8 (``%C4%91`` for đ): the Java SDK
  cannot send Vietnamese in a header (``gateway.auth``: ``AUTH_HEADER_ENCODING``), so an ASCII
  description holding percent-encoded UTF-8 is decoded before it is stored.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast
from urllib.parse import unquote

from edoc_axis import __version__
from edoc_axis.config.settings import ApiSettings, DmsSystemSettings
from edoc_axis.edxml.limits import DEFAULT_MAX_BYTES
from edoc_axis.errors import EdocAxisError, ErrorCode
from edoc_axis.gateway.auth import Authenticated, Authenticator, extract_package, header_json
from edoc_axis.gateway.ledger import MemoryLedger, RequestLedger, RequestRecord
from edoc_axis.gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from edoc_axis.gateway.metrics import GatewayMetrics
from edoc_axis.gateway.openapi import openapi_document
from edoc_axis.gateway.protocol import (
    GATEWAY_CODES,
    MUTATING_CALLS,
    SERVICE_PATHS,
    AckState,
    DmsBackend,
    Kind,
    NodeMetrics,
    Request,
    Response,
    agency_json,
    call_name,
    error_response,
    json_response,
    ok_payload,
    received_json,
    refused,
    sent_json,
)
from edoc_axis.gateway.sdk import sha256_hex
from edoc_axis.log import get_logger

log = get_logger(__name__)

BODY_OVERHEAD = 64 * 1024  # room for the SDK's multipart wrapping around a package


def body_limit(max_package_bytes: int) -> int:
    """The largest request body read: a package at the node's size limit
    (``limits.max_package_bytes``, passed in by the backend) inside the SDK's wrapping."""
    return max_package_bytes + BODY_OVERHEAD


DEFAULT_MAX_BODY_BYTES = body_limit(DEFAULT_MAX_BYTES)

# --- reading a call's signed headers -------------------------------------------------------------


def _kind(signed: Mapping[str, str], *, required: bool) -> Kind:
    value = signed.get("messagetype", "").strip().lower()
    if not value:
        if required:
            raise refused(ErrorCode.BAD_REQUEST, "header messagetype (edoc or status) is required")
        return "edoc"
    if value not in ("edoc", "status"):
        raise refused(ErrorCode.BAD_REQUEST, f"messagetype must be edoc or status, not {value!r}")
    return cast(Kind, value)


def _check_service(signed: Mapping[str, str]) -> None:
    service = signed.get("servicetype", "").strip()
    if service and service.lower() != "edoc":
        raise refused(ErrorCode.BAD_REQUEST, f"servicetype must be eDoc, not {service!r}")


def _doc_id(signed: Mapping[str, str], *, required: bool) -> str | None:
    value = signed.get("docid", "").strip()
    if not value:
        if required:
            raise refused(ErrorCode.BAD_REQUEST, "header docId is required")
        return None
    if len(value) > 256 or any(ord(c) < 32 for c in value):
        raise refused(ErrorCode.BAD_REQUEST, "header docId is malformed")
    return value


def _recipients(signed: Mapping[str, str]) -> list[str] | None:
    """``to``: a JSON list of OrganIds as the SDK sends it, or one bare OrganId."""
    raw = signed.get("to", "").strip()
    if not raw:
        return None
    if not raw.startswith("["):
        return [raw]
    try:
        value = header_json(raw, "XroadVnpt-to")
    except ValueError as exc:
        raise refused(ErrorCode.BAD_REQUEST, f"header to is not a JSON list: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise refused(ErrorCode.BAD_REQUEST, "header to must be a JSON list of OrganIds")
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


class DmsGateway:
    """The protocol, independent of the HTTP server: ``handle(Request) -> Response``."""

    def __init__(
        self,
        backend: DmsBackend,
        systems: Iterable[DmsSystemSettings],
        api: ApiSettings | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
        ledger: RequestLedger | None = None,
    ) -> None:
        self.backend = backend
        self.api = api or ApiSettings()
        self.max_body_bytes = max_body_bytes
        self.timezone = self.api.zone()
        self.auth = Authenticator(systems, self.api, clock)
        self.ledger = ledger or MemoryLedger()
        self.metrics = GatewayMetrics(self._node_numbers)
        self._lock = threading.Lock()
        self._in_flight: set[tuple[str, str]] = set()
        self._openapi: bytes | None = None

    # -- entry points used by the HTTP layer

    def precheck(  # noqa: PLR0911 - one early refusal per HTTP-level check
        self, method: str, path: str, headers: Mapping[str, list[str]]
    ) -> Response | None:
        """Refuse before the body is read: unknown path, wrong method, length missing or too big."""
        call = call_name(path)
        if call is None and path not in SERVICE_PATHS:
            return self.refuse(refused(ErrorCode.NOT_FOUND, f"no such call {path!r}"), None,
                               close=True)
        if call is None:
            if method not in ("GET", "HEAD"):
                return self._wrong_method(f"{path} answers GET", None, "GET, HEAD")
            return None
        if method not in ("POST", "GET"):
            return self._wrong_method("protocol calls are POST", call, "POST, GET")
        lengths = headers.get("content-length", [])
        if headers.get("transfer-encoding"):
            return self.refuse(
                refused(ErrorCode.LENGTH_REQUIRED, "send a Content-Length, not chunked transfer"),
                call,
                close=True,
            )
        if len(lengths) > 1 or (lengths and not lengths[0].strip().isdigit()):
            return self.refuse(refused(ErrorCode.BAD_HEADER, "bad Content-Length"), call,
                               close=True)
        if lengths and int(lengths[0]) > self.max_body_bytes:
            return self.refuse(
                refused(
                    ErrorCode.BODY_TOO_LARGE,
                    f"body of {int(lengths[0])} bytes exceeds {self.max_body_bytes}",
                ),
                call,
                close=True,
            )
        return None

    def handle(self, request: Request) -> Response:
        """Answer one request whose body is in hand; never raises, never leaks a traceback."""
        early = self.precheck(request.method, request.path, request.headers)
        if early is not None:
            return early
        call = call_name(request.path)
        if call is None:
            return self.serve_path(request.path)
        outcome = self.authenticate(call, request)
        if isinstance(outcome, Response):
            return outcome
        return self.answer(call, outcome, request)

    def serve_path(self, path: str) -> Response:
        """``/healthz``, ``/metrics`` or ``/openapi.json`` (asks the node: blocking)."""
        if path == "/healthz":
            return self._healthz()
        if path == "/metrics":
            return Response(200, self.render_metrics(), METRICS_CONTENT_TYPE)
        if self._openapi is None:
            document = openapi_document(GATEWAY_CODES, self.api)
            self._openapi = json.dumps(document, ensure_ascii=True).encode()
        return Response(200, self._openapi)

    def authenticate(self, call: str, request: Request) -> Authenticated | Response:
        """Who is calling, from the headers alone, or the refusal to send. The HMAC covers every
        signed header, ``hash-file`` included, so a server refuses a request before reading a
        byte of its body; ``answer`` then checks the body against ``hash-file``."""
        started = time.perf_counter()
        try:
            return self.auth.authenticate(call, request)
        except EdocAxisError as exc:
            response = self.refuse(exc, call)
        except Exception:  # a bug or an unexpected library error: log it, answer generically
            response = self._crashed(call)
        self.metrics.count(call, "FAIL", time.perf_counter() - started)
        return response

    def answer(self, call: str, auth: Authenticated, request: Request) -> Response:
        """Apply an authenticated call, body in hand, to the node (blocking: a server runs it
        on a worker thread); never raises, never leaks a traceback."""
        started = time.perf_counter()
        try:
            if call in MUTATING_CALLS:
                response = self._answer_once(call, auth, request)
            else:
                response = json_response(200, self._dispatch(call, auth, request))
        except EdocAxisError as exc:
            response = self.refuse(exc, call)
        except Exception:  # a bug or an unexpected library error: log it, answer generically
            response = self._crashed(call)
        result = "OK" if response.status == 200 else "FAIL"
        self.metrics.count(call, result, time.perf_counter() - started)
        return response

    # -- state-changing calls: at most once per signed request

    def _answer_once(self, call: str, auth: Authenticated, request: Request) -> Response:
        """Apply a sendEdoc/updateStatus once; an exact repeat gets the first answer again."""
        key = (auth.system.systemid, auth.signature)
        with self._lock:
            if key in self._in_flight:
                raise refused(
                    ErrorCode.REQUEST_IN_PROGRESS,
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
                    ErrorCode.AUTH_REPLAY,
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
                    ErrorCode.AUTH_REPLAY,
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
        response = json_response(200, payload)
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
        signed, agency, tz = auth.signed, auth.system.organ_id, self.timezone
        if call == "sendEdoc":
            _check_service(signed)
            kind = _kind(signed, required=True)
            declared_from = signed.get("from", "").strip()
            if not declared_from:
                raise refused(ErrorCode.BAD_REQUEST, "header from is required")
            if declared_from != agency:
                raise refused(
                    ErrorCode.FROM_NOT_ALLOWED,
                    f"system {auth.system.systemid!r} may not send as {declared_from!r}",
                    element="from",
                )
            hash_file = signed.get("hash-file", "").strip()
            if not hash_file:
                raise refused(ErrorCode.BAD_REQUEST, "header hash-file is required")
            data = extract_package(request, hash_file)
            doc_id = self.backend.submit(data, kind, declared_from, _recipients(signed))
            log.info(
                "dms_package_submitted", systemid=auth.system.systemid, doc_id=doc_id, kind=kind
            )
            return ok_payload(DocId=doc_id)
        if call == "getReceivedEdocList":
            _check_service(signed)
            items = self.backend.received(agency, _kind(signed, required=False))
            return ok_payload(data=[received_json(i, tz) for i in items])
        if call == "getEdoc":
            data = self.backend.fetch(agency, cast(str, _doc_id(signed, required=True)))
            return ok_payload(data=base64.b64encode(data).decode("ascii"))
        if call == "updateStatus":
            doc_id = cast(str, _doc_id(signed, required=True))
            state = signed.get("status", "").strip().lower()
            if state not in ("done", "fail", "processing"):
                raise refused(ErrorCode.BAD_REQUEST, "status must be done, fail or processing")
            description = _description(signed.get("description") or None)
            self.backend.acknowledge(agency, doc_id, cast(AckState, state), description)
            return ok_payload()
        if call == "getSentEdocList":
            _check_service(signed)
            kind = _kind(signed, required=False)
            items_sent = self.backend.sent(agency, kind, _doc_id(signed, required=False))
            return ok_payload(data=[sent_json(i, tz) for i in items_sent])
        return ok_payload(data=[agency_json(a) for a in self.backend.agencies()])

    # -- health, metrics

    def _healthz(self) -> Response:
        try:
            node = self.backend.metrics()
        except Exception as exc:  # health must answer even when the node is sick
            log.warning("dms_health_failed", error=type(exc).__name__)
            return json_response(
                ErrorCode.NODE_UNAVAILABLE.http_status,
                {
                    "status": "FAIL",
                    "ErrorCode": ErrorCode.NODE_UNAVAILABLE,
                    "ErrorDesc": "the node does not answer",
                },
            )
        payload: dict[str, Any] = {"status": "OK", "version": __version__}
        if node.broker_connected is not None:
            payload["broker_connected"] = node.broker_connected
        return json_response(200, payload)

    def render_metrics(self) -> bytes:
        """The Prometheus exposition of the gateway's and the node's numbers (blocking)."""
        return self.metrics.render()

    def _node_numbers(self) -> NodeMetrics | None:
        try:
            return self.backend.metrics()
        except Exception as exc:  # metrics must not fail because the node is sick
            log.warning("dms_metrics_failed", error=type(exc).__name__)
            return None

    def _crashed(self, call: str) -> Response:
        ref = uuid.uuid4().hex[:12]
        log.exception("dms_call_crashed", call=call, ref=ref)
        return self.refuse(
            refused(ErrorCode.INTERNAL_ERROR, f"internal error; see the node log (ref {ref})"), call
        )

    def _wrong_method(self, message: str, call: str | None, allowed: str) -> Response:
        """405 in the protocol's JSON, with the Allow header HTTP asks of a 405 (RFC 9110)."""
        response = self.refuse(refused(ErrorCode.METHOD_NOT_ALLOWED, message), call, close=True)
        response.headers["Allow"] = allowed
        return response

    def refuse(self, exc: EdocAxisError, call: str | None, *, close: bool = False) -> Response:
        """The protocol's answer to a refusal, counted and logged (``close``: end the
        connection after it, as when a body is left unread)."""
        self.metrics.refused(exc.code)
        log.warning("dms_request_refused", call=call, code=exc.code, reason=exc.message)
        response = error_response(exc, call)
        response.close = response.close or close
        return response
