"""A Python client for the national axis client protocol: the DMS's side of ``edoc_axis.gateway``.

It signs every call exactly as the deployed Java SDK does: the call's values go out as
``XroadVnpt-<key>`` headers, ``XroadVnpt-sign-header`` is their compact JSON and
``XroadVnpt-hash-header`` the hex HMAC-SHA256 of that JSON keyed by the system's secret.

``sdk_quirks=True`` reproduces what SDKVXP 2.0.1 actually sends, so tests can prove a node accepts
it: headers stay in the signed map from one call to the next (sticky), the timestamp is taken once
when the client is built and repeated by every call of the object (so an identical call is a
byte-identical request), ``Content-Type`` is itself a signed entry, ``hash-file`` is hex without
zero padding per byte, the package body is followed by CRLF, other calls send ``{}``, and header
values go out as the low byte of each character (Java's ``(byte) ch``) while the HMAC covers the
UTF-8 of the sign-header, so text beyond ISO-8859-1 (Vietnamese) cannot be verified by a server.
Without quirks every call carries only its own headers, a fresh timestamp and a 64-char hash, and
headers are UTF-8.

``timezone`` is the zone of the DMS host's clock the timestamp is written in (the SDK writes
local time without a zone); a node reads it in its ``[api] timezone``. An ``https`` endpoint is
verified with ``ssl_context`` (the default context when None: the system's CAs); a gateway that
requires client certificates needs one loaded into it.

A client is not thread-safe (like the SDK object): give each thread its own.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any, cast
from urllib.parse import urlsplit

from edoc_axis.edxml.identifier import VN_TZ
from edoc_axis.errors import EdocAxisError, ErrorCode, RequestRefused, TemporaryFailure
from edoc_axis.gateway.sdk import (
    format_sdk_timestamp,
    low_byte_text,
    sdk_json,
    sha256_hex,
    sha256_hex_unpadded,
    sign_headers,
)

USER_AGENT = "edoc-axis-client/1.0 (JAVASDKAgent compatible)"
SDK_VERSION = "3.0.201608"

# A reused keep-alive connection the server already closed fails like this on the next send.
_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class DmsClient:
    """Calls a node's DMS gateway (or the national axis) as one DMS system."""

    def __init__(
        self,
        endpoint: str,
        systemid: str,
        secret: str,
        *,
        sdk_quirks: bool = False,
        timeout: float = 30.0,
        now: Callable[[], datetime] | None = None,
        timezone: tzinfo = VN_TZ,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EdocAxisError(
                f"endpoint must be an http(s) URL, got {endpoint!r}", code=ErrorCode.BAD_ENDPOINT
            )
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._systemid = systemid
        self._secret = secret
        self.sdk_quirks = sdk_quirks
        self.timezone = timezone
        self._now = now or (lambda: datetime.now(timezone))
        self._conn: http.client.HTTPConnection | None = None
        # The SDK's header map: in quirk mode it lives as long as the client, like SDKVXP's.
        self.sticky: dict[str, str] = {}
        if sdk_quirks:
            self.sticky["timestamp"] = format_sdk_timestamp(self._now(), timezone)
            self.sticky["systemid"] = systemid

    # --- the protocol calls ---------------------------------------------------------------

    def send_edoc(
        self,
        data: bytes,
        *,
        from_organ: str,
        to: Sequence[str] | None = None,
        message_type: str = "edoc",
    ) -> str:
        """Submit a package (``message_type`` edoc or status); returns the node's DocId."""
        params = {"from": from_organ, "servicetype": "eDoc", "messagetype": message_type}
        if to:
            params["to"] = json.dumps(list(to), separators=(",", ":"))
        if self.sdk_quirks:
            params["hash-file"] = sha256_hex_unpadded(data)
            body = data + b"\r\n"  # SDKVXP 2.0.1's MultipartUtility ends the "part" with CRLF
        else:
            params["hash-file"] = sha256_hex(data)
            body = data
        answer = self.call("sendEdoc", params, body, "application/octet-stream")
        return str(answer.get("DocId", ""))

    def received(self, message_type: str = "edoc") -> list[dict[str, str]]:
        """Received packages not yet acknowledged done."""
        answer = self.call(
            "getReceivedEdocList", {"servicetype": "eDoc", "messagetype": message_type}
        )
        return cast(list[dict[str, str]], answer.get("data") or [])

    def get_edoc(self, doc_id: str, *, file_path: str | None = None) -> bytes:
        """One received package's bytes (``file_path`` is sent like the SDK; servers ignore it)."""
        params = {"docId": doc_id}
        if file_path is not None:
            params["filePath"] = file_path
        answer = self.call("getEdoc", params)
        try:
            return base64.b64decode(str(answer.get("data", "")), validate=True)
        except ValueError as exc:
            raise EdocAxisError("getEdoc answer data is not base64",
                                code=ErrorCode.BAD_ANSWER) from exc

    def update_status(self, doc_id: str, status: str, description: str | None = None) -> None:
        """Acknowledge pickup: ``status`` done, fail or processing."""
        params = {"docId": doc_id, "status": status}
        if description is not None:
            params["description"] = description
        self.call("updateStatus", params)

    def sent(self, message_type: str = "edoc", doc_id: str | None = None) -> list[dict[str, str]]:
        """Per-recipient tracking of sent packages."""
        params = {"servicetype": "eDoc", "messagetype": message_type}
        if doc_id is not None:
            params["docId"] = doc_id
        answer = self.call("getSentEdocList", params)
        return cast(list[dict[str, str]], answer.get("data") or [])

    def agencies(self) -> list[dict[str, str]]:
        """The agency directory."""
        return cast(list[dict[str, str]], self.call("getAgenciesList", {}).get("data") or [])

    # --- signing and transport ------------------------------------------------------------

    def prepare(
        self, params: Mapping[str, str], content_type: str = "application/json"
    ) -> list[tuple[str, str]]:
        """The signed headers for one call (also used by tests that tamper with them)."""
        if self.sdk_quirks:
            self.sticky["Content-Type"] = content_type
            self.sticky.update(params)
            values = dict(self.sticky)
        else:
            values = {
                "timestamp": format_sdk_timestamp(self._now(), self.timezone),
                "systemid": self._systemid,
                **params,
            }
        sign_header = sdk_json({f"XroadVnpt-{k}": v for k, v in values.items()})
        headers = [(f"XroadVnpt-{k}", v) for k, v in values.items()]
        headers += [
            ("XroadVnpt-sign-header-key", ";".join(values)),
            ("XroadVnpt-sign-header", sign_header),
            ("XroadVnpt-hash-header", sign_headers(self._secret, sign_header)),
            ("User-Agent", USER_AGENT),
            ("XroadVnpt-version", SDK_VERSION),
        ]
        return headers

    def call(
        self,
        name: str,
        params: Mapping[str, str],
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """Sign and send one call; its JSON, or RequestRefused carrying the server's code."""
        headers = self.prepare(params, content_type)
        if body is None:
            body = b"{}" if self.sdk_quirks else b""
        status, answer = self.send(name, headers, body, content_type)
        if answer.get("status") != "OK" or str(answer.get("ErrorCode")) != "0":
            text = str(answer.get("ErrorCode") or "FAIL")
            desc = str(answer.get("ErrorDesc") or "refused")
            code = ErrorCode.lookup(text)
            unknown = "" if code == text else f" [code {text}]"
            raise RequestRefused(f"{name} refused (HTTP {status}): {desc}{unknown}", code=code)
        return answer

    def send(
        self, name: str, headers: Sequence[tuple[str, str]], body: bytes, content_type: str
    ) -> tuple[int, dict[str, Any]]:
        """POST prepared headers and body to ``<endpoint>/<name>``; (HTTP status, JSON answer)."""
        path = f"{self._base}/{name}"
        encoded = [(key, self.header_bytes(value)) for key, value in headers]
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._connection()
            try:
                conn.putrequest("POST", path, skip_accept_encoding=True)
                conn.putheader("Content-Type", content_type)
                for key, raw_value in encoded:
                    conn.putheader(key, raw_value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                response = conn.getresponse()
                raw = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                break
            except _STALE_CONNECTION as exc:
                self.close()
                if reused and attempt == 1:
                    continue
                raise TemporaryFailure(
                    f"{name}: connection lost: {exc}", code=ErrorCode.DMS_UNREACHABLE
                ) from exc
            except OSError as exc:
                self.close()
                raise TemporaryFailure(
                    f"{name}: cannot reach {self._host}: {exc}", code=ErrorCode.DMS_UNREACHABLE
                ) from exc
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise EdocAxisError(
                f"{name}: answer (HTTP {response.status}) is not JSON", code=ErrorCode.BAD_ANSWER
            ) from exc
        if not isinstance(answer, dict):
            raise EdocAxisError(f"{name}: answer is not a JSON object", code=ErrorCode.BAD_ANSWER)
        return response.status, answer

    def header_bytes(self, value: str) -> bytes:
        """A header value as this client writes it: UTF-8, or in quirk mode one byte per
        character, the low byte of its code point (Java's ``(byte) ch``)."""
        raw = low_byte_text(value).encode("latin-1") if self.sdk_quirks else value.encode("utf-8")
        if b"\r" in raw or b"\n" in raw:
            raise EdocAxisError(
                f"header value {value!r} would break the HTTP request (CR or LF)",
                code=ErrorCode.BAD_HEADER_VALUE,
            )
        return raw

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._ssl_context)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port,
                                                        timeout=self._timeout)
        return self._conn

    def close(self) -> None:
        """Close the kept-alive connection (a later call opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> DmsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
