"""The OpenAPI 3 document of the DMS gateway: the axis protocol calls, health, metrics, errors.

Served by ``service.DmsGateway`` at ``/openapi.json``; a description only: it checks no call.
Which headers each call must sign comes from ``auth.RELIED_HEADERS`` (what authentication
checks), and ``servers`` from the gateway's ``[api]`` listen address and TLS settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from edoc_axis import __version__
from edoc_axis.config.settings import ApiSettings
from edoc_axis.gateway.auth import RELIED_HEADERS

_ALWAYS_SIGNED = ("systemid", "timestamp")
_WIRE_NAMES = {"docid": "docId", "filepath": "filePath"}  # auth keys are lowercase
_ANY_HOST = ("", "0.0.0.0", "::")  # noqa: S104 - listen addresses meaning "every interface"


def _header_param(name: str, description: str, *, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


_AUTH_PARAMS: Sequence[dict[str, Any]] = (
    _header_param("XroadVnpt-systemid", "The DMS system id.", required=True),
    _header_param(
        "XroadVnpt-timestamp",
        "Client local time ddMMyyyy'T'HHmmss+SSSS (millis, 4 digits), no zone: read in the "
        "node's [api] timezone (default Asia/Ho_Chi_Minh, UTC+7). At most 300 s ahead; no age "
        "limit by default (the Java SDK stamps it once per SDK object).",
        required=True,
    ),
    _header_param(
        "XroadVnpt-sign-header-key",
        "The names of the signed headers WITHOUT the XroadVnpt- prefix, joined by ';' (e.g. "
        "systemid;timestamp;docId): exactly the keys of XroadVnpt-sign-header with their "
        "prefix removed, in any order; a mismatch is AUTH_HEADER_MISMATCH. Which headers a "
        "call must sign: its x-signed-headers.",
        required=True,
    ),
    _header_param(
        "XroadVnpt-sign-header",
        'Compact JSON object {"XroadVnpt-<name>": value} of every signed header: here the keys '
        "DO carry the XroadVnpt- prefix (unlike XroadVnpt-sign-header-key).",
        required=True,
    ),
    _header_param(
        "XroadVnpt-hash-header",
        "Lowercase hex HMAC-SHA256(secret, UTF-8 of XroadVnpt-sign-header). Header values "
        "are UTF-8; a client writing one byte per character (the Java SDK) is verified too "
        "while its text stays within ISO-8859-1, else AUTH_HEADER_ENCODING.",
        required=True,
    ),
    _header_param("XroadVnpt-version", "SDK protocol version (ignored)."),
)


_AGENCY_FIELDS = {
    "id": "The agency's id on this node: its QCVN 102 OrganId.",
    "pid": "The parent agency's id (OrganId), empty for a top-level agency.",
    "code": "The agency's code in the newer national scheme (the directory's code).",
    "name": "The agency's name.",
    "mail": "E-mail address, or empty.",
    "mobile": "Telephone, or empty.",
    "fax": "Fax, or empty.",
    "code102": "The QCVN 102:2016 OrganId (000.00.00.G22), as edXML From/To carry it.",
    "oldCode": (
        "Read by SDK 2.0.1: the code before the newer national scheme, i.e. the QCVN 102:2016 "
        "OrganId; always equal to code102."
    ),
}


def signed_headers(call: str) -> list[str]:
    """The header names (with prefix) a call must sign: always systemid and timestamp, then
    each header the call relies on, whenever it is sent."""
    keys = (*_ALWAYS_SIGNED, *RELIED_HEADERS[call])
    return [f"XroadVnpt-{_WIRE_NAMES.get(key, key)}" for key in keys]


def servers(api: ApiSettings) -> list[dict[str, Any]]:
    """Where the gateway answers: ``[api] listen`` with https when it serves TLS. A gateway
    listening on every interface has no one name: the host is then a server variable."""
    scheme = "https" if api.tls_cert is not None else "http"
    host, port = api.address()
    if host in _ANY_HOST:
        return [{
            "url": f"{scheme}://{{host}}:{port}",
            "description": f"The node's gateway ([api] listen = {api.listen!r}: every interface)",
            "variables": {"host": {
                "default": "127.0.0.1",
                "description": "The node's host name or address as the DMS reaches it",
            }},
        }]
    shown = f"[{host}]" if ":" in host else host
    return [{"url": f"{scheme}://{shown}:{port}",
             "description": f"The node's gateway ([api] listen = {api.listen!r})"}]


def openapi_document(error_codes: Iterable[str], api: ApiSettings | None = None) -> dict[str, Any]:
    """OpenAPI 3 description of the protocol calls, health, metrics and the error shape.

    ``error_codes``: the gateway's own refusal codes, listed in the Error schema; ``api``: the
    gateway's settings, for ``servers`` (default: the default listen address).
    """
    envelope = {"$ref": "#/components/schemas/Envelope"}
    error = {
        "description": "Refused; ErrorCode says why.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }

    def listing(item: str) -> dict[str, Any]:
        return {
            "allOf": [
                envelope,
                {
                    "type": "object",
                    "properties": {
                        "data": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}}
                    },
                },
            ]
        }

    def call(
        name: str,
        summary: str,
        params: list[dict[str, Any]],
        schema: dict[str, Any],
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        signed = signed_headers(name)
        op: dict[str, Any] = {
            "operationId": name,
            "summary": summary,
            "description": (
                f"Sign {', '.join(signed[:2])}"
                + (f", and {', '.join(signed[2:])} whenever sent" if signed[2:] else "")
                + " (XroadVnpt-sign-header-key lists them without the prefix). A relied-on "
                "header sent but not signed, or signed with another value, is "
                "AUTH_HEADER_MISMATCH; other XroadVnpt headers are ignored."
            ),
            "x-signed-headers": signed,
            "security": [{"XroadVnptHmac": []}],
            "parameters": [*_AUTH_PARAMS, *params],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
                **dict.fromkeys(("400", "401", "403", "404", "409", "413", "422", "503"), error),
            },
        }
        if body is not None:
            op["requestBody"] = body
        return {"post": op}

    kind_param = _header_param("XroadVnpt-messagetype", "edoc or status.")
    service_param = _header_param("XroadVnpt-servicetype", "eDoc.")
    doc_param = _header_param("XroadVnpt-docId", "DocId of the package.", required=True)
    strings = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "edoc-axis DMS gateway",
            "version": __version__,
            "description": (
                "The national axis client protocol served by an edoc-axis node. Every call is "
                "authenticated by HMAC over the XroadVnpt-* headers; headers a call does not use "
                "are ignored (the SDK keeps them from earlier calls) but stay covered by the HMAC. "
                "sendEdoc and updateStatus are applied at most once per signed request: an exact "
                "repeat (same XroadVnpt-hash-header, same body), also after a node restart, is "
                "answered with the first answer and changes nothing; the same signature with "
                "another body is AUTH_REPLAY; a repeat while the first is still running is "
                "REQUEST_IN_PROGRESS (409, Retry-After). Timestamps may be at most 300 s in the "
                "future; their age is unlimited unless [api] max_timestamp_age is set."
            ),
        },
        "servers": servers(api or ApiSettings()),
        "paths": {
            "/sendEdoc": call(
                "sendEdoc",
                "Submit an edoc or status package",
                [
                    _header_param(
                        "XroadVnpt-from",
                        "Sender OrganId; must be the system's agency.",
                        required=True,
                    ),
                    service_param,
                    {**kind_param, "required": True},
                    _header_param("XroadVnpt-to", "JSON list of recipient OrganIds."),
                    _header_param(
                        "XroadVnpt-hash-file",
                        "SHA-256 hex of the body (64 chars, or unpadded per byte).",
                        required=True,
                    ),
                ],
                {
                    "allOf": [
                        envelope,
                        {"type": "object", "properties": {"DocId": {"type": "string"}}},
                    ]
                },
                {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
            ),
            "/getReceivedEdocList": call(
                "getReceivedEdocList",
                "List received packages not yet acknowledged done",
                [service_param, kind_param],
                listing("ReceivedItem"),
            ),
            "/getEdoc": call(
                "getEdoc",
                "Fetch one received package (base64)",
                [doc_param, _header_param("XroadVnpt-filePath", "Client-side path (ignored).")],
                {
                    "allOf": [
                        envelope,
                        {
                            "type": "object",
                            "properties": {"data": {"type": "string", "format": "byte"}},
                        },
                    ]
                },
            ),
            "/updateStatus": call(
                "updateStatus",
                "Acknowledge pickup of a received package",
                [
                    doc_param,
                    _header_param("XroadVnpt-status", "done, fail or processing.", required=True),
                    _header_param(
                        "XroadVnpt-description",
                        "Free text. ASCII holding percent-encoded UTF-8 (%C4%91 for đ) is "
                        "decoded: the Java SDK cannot send Vietnamese in a header.",
                    ),
                ],
                envelope,
            ),
            "/getSentEdocList": call(
                "getSentEdocList",
                "Per-recipient tracking of sent packages",
                [
                    service_param,
                    kind_param,
                    _header_param("XroadVnpt-docId", "Only this sent package."),
                ],
                listing("SentItem"),
            ),
            "/getAgenciesList": call(
                "getAgenciesList", "The agency directory", [], listing("Agency")
            ),
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness and node reachability",
                    "responses": {
                        "200": {"description": "Serving"},
                        "503": {"description": "Node unavailable"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus text metrics",
                    "responses": {"200": {"description": "text/plain; version=0.0.4"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3"}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "XroadVnptHmac": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "XroadVnpt-hash-header",
                    "description": "HMAC-SHA256 with the system secret over XroadVnpt-sign-header; "
                    "see the header parameters of each call.",
                }
            },
            "schemas": {
                "Envelope": {
                    "type": "object",
                    "required": ["status", "ErrorCode", "ErrorDesc"],
                    "properties": {
                        "status": {"type": "string", "enum": ["OK"]},
                        "ErrorCode": {"type": "string", "enum": ["0"]},
                        "ErrorDesc": {"type": "string"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["status", "ErrorCode", "ErrorDesc"],
                    "properties": {
                        "status": {"type": "string", "enum": ["FAIL"]},
                        "ErrorCode": {
                            "type": "string",
                            "description": (
                                "A stable code: "
                                + ", ".join(sorted(error_codes))
                                + ", or the node's own (NOT_FOUND, SCHEMA_VIOLATION, "
                                "SIG_INVALID, BROKER_UNAVAILABLE, ...)."
                            ),
                        },
                        "ErrorDesc": {"type": "string"},
                        "DocId": {"type": "string", "description": "sendEdoc only: ''"},
                    },
                },
                "ReceivedItem": strings,
                "SentItem": strings,
                "Agency": {
                    "type": "object",
                    "properties": {
                        name: {"type": "string", "description": text}
                        for name, text in _AGENCY_FIELDS.items()
                    },
                },
            },
        },
    }
