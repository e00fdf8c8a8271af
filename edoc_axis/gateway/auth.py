"""HMAC authentication of the axis client protocol: who is calling the DMS gateway, and which body.

A DMS signs every call the way the deployed Java SDK does: ``XroadVnpt-sign-header`` is a JSON
object of the signed ``XroadVnpt-*`` headers, ``XroadVnpt-hash-header`` the hex HMAC-SHA256 of
it keyed by the system's shared secret. ``Authenticator`` checks that in a fixed order, one
``AUTH_*`` code per failure (``shared/spec/axis-client-protocol.md``); decisions taken where
the spec is silent:

- **Timestamp** ``ddMMyyyy'T'HHmmss+SSSS`` (``gateway.sdk``) carries no zone: it is read in
  ``ApiSettings.timezone`` (``[api] timezone``, default Asia/Ho_Chi_Minh, UTC+7). It may be at
  most ``MAX_CLOCK_SKEW_SECONDS`` (300) in the future; its age is not limited by default
  (``max_timestamp_age = 0``), because the Java SDK stamps the time once, when its service
  object is built, and resends it on every later call of that object.
- **Repeats**: an exact repeat of a signed request is recognised by ``(systemid, hash-header)``
  (the HMAC covers every signed header, and through ``hash-file`` the body of sendEdoc) plus the
  SHA-256 of the body. The gateway answers a repeated state-changing call from a
  ``RequestLedger`` (``gateway.ledger``); this module only authenticates and names the
  signature.
- **Header encoding**: the Java SDK writes each header character as its low byte
  (``(byte) ch``) but signs the UTF-8 of the sign-header. Text within ISO-8859-1 therefore
  arrives intact and is accepted (the HMAC is checked over the UTF-8 of what arrived as well as
  over the raw bytes); anything beyond it (Vietnamese đ, ư, ậ, ...) arrives mangled and cannot be
  verified: ``AUTH_HEADER_ENCODING`` says so instead of ``AUTH_BAD_HMAC``.
- **Body of sendEdoc**: the package is the body whose SHA-256 equals the signed ``hash-file``
  (unpadded-per-byte hex as the SDK writes it, or the normal 64 characters). SDK 2.0.1 appends
  CRLF after the file and may label it multipart; the raw body, the body less a trailing CRLF and
  a ``file_doc`` multipart part are tried, in that order.
- **JSON in headers** (the sign-header, sendEdoc's ``to``) is flat. ``header_json`` refuses
  nesting deeper than ``MAX_HEADER_JSON_DEPTH`` with ``HEADER_JSON_TOO_DEEP`` (400) before
  Python's json, which recurses once per level, sees it: a header nested 5,000 deep raised
  RecursionError there.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Literal, Protocol, cast

from edoc_axis.config.settings import ApiSettings, DmsSystemSettings
from edoc_axis.errors import ConfigError, ErrorCode, RequestRefused
from edoc_axis.gateway.sdk import (
    PREFIX,
    hash_file_matches,
    hmac_hex,
    low_byte_text,
    parse_sdk_timestamp,
)

MAX_CLOCK_SKEW_SECONDS = 300  # how far ahead of the node's clock a timestamp may be
MAX_HEADER_JSON_DEPTH = 8  # the protocol's header JSON is one level deep
# A whole JSON string (escapes included), or one bracket: what nesting depth is counted over.
_JSON_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{\]}]')

Charset = Literal["utf-8", "latin-1"]


class SignedRequest(Protocol):
    """What authentication reads of an HTTP request (``protocol.Request`` is one)."""

    @property
    def body(self) -> bytes: ...

    def values(self, name: str) -> list[str]:
        """Every value of a header (case-insensitive name), as sent on the wire (latin-1)."""
        ...

    def first(self, name: str) -> str | None:
        """The first value of a header, or None."""
        ...


def _refused(code: ErrorCode, message: str, *, element: str | None = None) -> RequestRefused:
    return RequestRefused(message, code=code, element=element)


def header_json(text: str, header: str, **options: Any) -> Any:
    """``json.loads(text, **options)`` for a header's value, after a bounded scan refusing
    nesting deeper than ``MAX_HEADER_JSON_DEPTH`` (``HEADER_JSON_TOO_DEEP``); a malformed value
    still raises ValueError."""
    depth = 0
    for match in _JSON_NESTING.finditer(text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > MAX_HEADER_JSON_DEPTH:
                raise _too_deep(header)
        elif bracket in "]}":
            depth -= 1
    try:
        return json.loads(text, **options)
    except RecursionError as exc:  # not reached after the scan; kept as the last line of defence
        raise _too_deep(header) from exc


def _too_deep(header: str) -> RequestRefused:
    return _refused(
        ErrorCode.HEADER_JSON_TOO_DEEP,
        f"{header} nests JSON more than {MAX_HEADER_JSON_DEPTH} levels deep (the protocol's "
        "header JSON is flat)",
        element=header,
    )


# --- checking a request ------------------------------------------------------------------------


def _wire_text(value: str, charset: Charset = "utf-8") -> str:
    """Header bytes arrive as latin-1 text. A UTF-8 client's are re-read as UTF-8; a client that
    wrote one byte per character (``charset`` latin-1) sent exactly what arrived."""
    if charset == "latin-1":
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A request that passed authentication: who sent it and the signed values it carries."""

    system: DmsSystemSettings
    signed: dict[str, str]  # lowercase key without the XroadVnpt- prefix -> value
    signature: str  # the verified XroadVnpt-hash-header: names this exact signed request


# Headers each call relies on (beyond timestamp and systemid), by their lowercase key without the
# prefix: each must be signed when sent. Others are ignored (sticky). /openapi.json lists them.
RELIED_HEADERS: dict[str, tuple[str, ...]] = {
    "sendEdoc": ("from", "to", "servicetype", "messagetype", "hash-file"),
    "getReceivedEdocList": ("servicetype", "messagetype"),
    "getEdoc": ("docid",),
    "updateStatus": ("docid", "status", "description"),
    "getSentEdocList": ("servicetype", "messagetype", "docid"),
    "getAgenciesList": (),
}

ENCODING_ADVICE = (
    "send only ASCII in XroadVnpt headers (percent-encode UTF-8 text: the gateway decodes a "
    "percent-encoded description, e.g. %C4%91 for đ), or use an SDK that writes headers as UTF-8"
)


class Authenticator:
    """The HMAC scheme of the protocol, checked in a fixed order with one code per failure."""

    def __init__(
        self,
        systems: Iterable[DmsSystemSettings],
        api: ApiSettings,
        clock: Callable[[], float] = time.time,
        *,
        skew_seconds: int = MAX_CLOCK_SKEW_SECONDS,
    ) -> None:
        self._systems: dict[str, DmsSystemSettings] = {}
        for system in systems:
            if not system.systemid or not system.secret:
                raise ConfigError("a [[dms]] entry needs a systemid and a secret", element="dms")
            if system.systemid in self._systems:
                raise ConfigError(f"duplicate DMS systemid {system.systemid!r}", element="dms")
            self._systems[system.systemid] = system
        self._zone = api.zone()
        self._max_age = api.max_timestamp_age
        self._skew = skew_seconds
        self._clock = clock

    def authenticate(self, call: str, request: SignedRequest) -> Authenticated:
        """Return who is calling, or raise RequestRefused with the failing check's code."""
        headers = {
            name: _single(request, PREFIX + name)
            for name in ("systemid", "timestamp", "sign-header", "sign-header-key", "hash-header")
        }
        missing = [PREFIX + k for k, v in headers.items() if v is None]
        if missing:
            raise _refused(ErrorCode.AUTH_MISSING, f"missing header(s): {', '.join(missing)}")
        systemid = _wire_text(cast(str, headers["systemid"]))
        system = self._systems.get(systemid)
        if system is None:
            raise _refused(ErrorCode.AUTH_UNKNOWN_SYSTEM, f"unknown systemid {systemid!r}")
        sign_header = cast(str, headers["sign-header"])
        given = cast(str, headers["hash-header"]).strip().lower()
        charset = _verified_charset(system.secret, sign_header, given)
        signed = _parse_sign_header(
            _wire_text(sign_header, charset),
            _wire_text(cast(str, headers["sign-header-key"]), charset),
        )
        for key in ("systemid", "timestamp", *RELIED_HEADERS[call]):
            _check_signed_matches(request, signed, key, charset)
        self._check_timestamp(signed["timestamp"])
        return Authenticated(system, signed, given)

    def _check_timestamp(self, text: str) -> None:
        zone = self._zone
        try:
            stamp = parse_sdk_timestamp(text, zone)
        except ValueError as exc:
            raise _refused(
                ErrorCode.AUTH_BAD_TIMESTAMP, f"XroadVnpt-timestamp {text!r}: {exc}",
                element="timestamp"
            ) from exc
        delta = self._clock() - stamp.timestamp()
        hint = (
            f"read as {zone} local time; a DMS whose clock runs in another zone needs "
            "[api] timezone set to that zone"
        )
        if delta < -self._skew:
            raise _refused(
                ErrorCode.AUTH_TIMESTAMP_SKEW,
                f"timestamp is {-delta:.0f} s in the future (allowed {self._skew} s, {hint})",
                element="timestamp",
            )
        max_age = self._max_age
        if max_age and delta > max_age:
            raise _refused(
                ErrorCode.AUTH_TIMESTAMP_SKEW,
                f"timestamp is {delta:.0f} s old (allowed {max_age} s by [api] "
                f"max_timestamp_age, {hint})",
                element="timestamp",
            )


def _verified_charset(secret: str, sign_header: str, given: str) -> Charset:
    """How the client wrote its headers, proven by the HMAC; else the refusal that fits.

    ``sign_header`` is the latin-1 reading of the bytes that arrived. A UTF-8 client signed
    exactly those bytes; the Java SDK signed the UTF-8 of its string but sent one byte per
    character, which for text within ISO-8859-1 is the string itself.
    """
    given_bytes = given.encode("latin-1", "replace")
    wire_bytes = sign_header.encode("latin-1", "replace")
    if hmac.compare_digest(hmac_hex(secret, wire_bytes).encode(), given_bytes):
        return "utf-8"
    if hmac.compare_digest(hmac_hex(secret, sign_header.encode("utf-8")).encode(), given_bytes):
        return "latin-1"
    mangled = _low_byte_mangled(sign_header)
    if mangled:
        raise _refused(
            ErrorCode.AUTH_HEADER_ENCODING,
            f"{', '.join(mangled)} arrived with one byte per character: the Java SDK writes the "
            "low byte of each character, so text beyond ISO-8859-1 (Vietnamese đ, ư, ậ, ...) "
            "is not what was signed and its HMAC cannot match; " + ENCODING_ADVICE,
            element=mangled[0],
        )
    raise _refused(ErrorCode.AUTH_BAD_HMAC, "XroadVnpt-hash-header is not the HMAC of sign-header")


def mangled_headers(head: bytes) -> RequestRefused | None:
    """``AUTH_HEADER_ENCODING`` naming the signed headers of a raw request ``head`` that hold a
    control character, or None when none does. The Java SDK's low-byte writing turns some text
    beyond ISO-8859-1 into control characters (đ arrives as 0x11), which HTTP parsers refuse
    before any header reaches authentication: the server explains such a refusal with this."""
    names = []
    for raw_line in head.split(b"\n")[1:]:
        line = raw_line.rstrip(b"\r")
        if not line:
            break
        name, sep, value = line.partition(b":")
        if sep and any((byte < 0x20 and byte != 0x09) or byte == 0x7F for byte in value):
            names.append(name.strip().decode("latin-1"))
    signed = [name for name in names if name.lower().startswith(PREFIX)]
    if not signed:
        return None
    return _refused(
        ErrorCode.AUTH_HEADER_ENCODING,
        f"{', '.join(signed)} arrived with control characters: the Java SDK writes the low "
        "byte of each character, so text beyond ISO-8859-1 (Vietnamese đ, ư, ậ, ...) is not "
        "what was signed and cannot be verified; " + ENCODING_ADVICE,
        element=signed[0],
    )


def _shows_low_bytes(text: str) -> bool:
    """Characters no correct client sends: a raw control character (JSON escapes them, Gson
    too), or bytes that are not UTF-8 although not signed as ISO-8859-1 either."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return True
    try:
        text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return True
    return False


def _low_byte_mangled(sign_header: str) -> list[str]:
    """The signed header names whose values show the SDK's low-byte writing (empty: none)."""
    if not _shows_low_bytes(sign_header):
        return []
    try:
        data = header_json(sign_header, "XroadVnpt-sign-header", strict=False)
    except ValueError:
        return ["XroadVnpt-sign-header"]
    if not isinstance(data, dict):
        return ["XroadVnpt-sign-header"]
    names = [
        str(key)
        for key, value in data.items()
        if isinstance(value, str) and _shows_low_bytes(value)
    ]
    return names or ["XroadVnpt-sign-header"]


def _single(request: SignedRequest, name: str) -> str | None:
    found = request.values(name)
    if len(found) > 1:
        raise _refused(ErrorCode.AUTH_HEADER_MISMATCH, f"header {name} sent more than once",
                       element=name)
    return found[0] if found else None


def _parse_sign_header(text: str, key_list: str) -> dict[str, str]:
    """The signed JSON as {lowercase key without prefix: value}; refuses ambiguity."""

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key}")
            out[key] = value
        return out

    try:
        data = header_json(text, "XroadVnpt-sign-header", object_pairs_hook=pairs_hook)
    except ValueError as exc:
        raise _refused(ErrorCode.AUTH_BAD_SIGN_HEADER,
                       f"XroadVnpt-sign-header is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _refused(ErrorCode.AUTH_BAD_SIGN_HEADER,
                       "XroadVnpt-sign-header must be a JSON object")
    signed: dict[str, str] = {}
    names: list[str] = []
    for key, value in data.items():
        if not key.lower().startswith(PREFIX) or not isinstance(value, str):
            raise _refused(
                ErrorCode.AUTH_BAD_SIGN_HEADER,
                f"sign-header entry {key!r} must be an XroadVnpt-<name> string",
            )
        name = key[len(PREFIX) :]
        if name.lower() in signed:
            raise _refused(ErrorCode.AUTH_BAD_SIGN_HEADER,
                           f"sign-header names {name!r} twice (by case)")
        signed[name.lower()] = value
        names.append(name)
    listed = [n.strip() for n in key_list.split(";") if n.strip()]
    if sorted(listed) != sorted(names):
        raise _refused(
            ErrorCode.AUTH_HEADER_MISMATCH,
            "XroadVnpt-sign-header-key does not list the names in XroadVnpt-sign-header",
        )
    return signed


def _check_signed_matches(
    request: SignedRequest, signed: Mapping[str, str], key: str, charset: Charset
) -> None:
    """A header the call relies on must be both signed and sent, with the same value."""
    wire = request.values(PREFIX + key)
    if len(wire) > 1:
        raise _refused(ErrorCode.AUTH_HEADER_MISMATCH,
                       f"header XroadVnpt-{key} sent more than once")
    if key not in signed:
        if wire:
            raise _refused(ErrorCode.AUTH_HEADER_MISMATCH,
                           f"header XroadVnpt-{key} is sent but not signed")
        if key in ("systemid", "timestamp"):
            raise _refused(ErrorCode.AUTH_MISSING, f"XroadVnpt-{key} is not in the signed headers")
        return
    if not wire:
        raise _refused(ErrorCode.AUTH_HEADER_MISMATCH,
                       f"signed header XroadVnpt-{key} was not sent")
    if _wire_text(wire[0], charset).strip() == signed[key].strip():
        return
    if wire[0].strip() == low_byte_text(signed[key]).strip():
        raise _refused(
            ErrorCode.AUTH_HEADER_ENCODING,
            f"header XroadVnpt-{key} arrived as the low byte of each character of its signed "
            "value (as the Java SDK writes headers); " + ENCODING_ADVICE,
            element=f"XroadVnpt-{key}",
        )
    raise _refused(ErrorCode.AUTH_HEADER_MISMATCH,
                   f"header XroadVnpt-{key} differs from its signed value")


# --- the body of sendEdoc ----------------------------------------------------------------------


def extract_package(request: SignedRequest, hash_file: str) -> bytes:
    """The package bytes whose SHA-256 is ``hash_file`` (see the module docstring)."""
    body = request.body
    candidates = [body]
    if body.endswith(b"\r\n"):
        candidates.append(body[:-2])
    part = _multipart_file(request)
    if part is not None:
        candidates.append(part)
    for candidate in candidates:
        if candidate and hash_file_matches(candidate, hash_file):
            return candidate
    if not body:
        raise _refused(ErrorCode.BAD_REQUEST, "sendEdoc needs the package as the request body")
    raise _refused(
        ErrorCode.HASH_FILE_MISMATCH, "hash-file is not the SHA-256 of the body",
        element="hash-file"
    )


def _multipart_file(request: SignedRequest) -> bytes | None:
    content_type = request.first("content-type") or ""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    match = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    if match is None:
        return None
    # The SDK's boundary ("===<millis>===") is unquoted, which the email parser does not take.
    head = f'Content-Type: multipart/form-data; boundary="{match.group(1)}"\r\n\r\n'
    head_bytes = head.encode("latin-1", "replace")
    message = BytesParser(policy=HTTP).parsebytes(head_bytes + request.body)
    if not message.is_multipart():
        return None
    parts = list(message.iter_parts())
    chosen = next(
        (p for p in parts if p.get_param("name", header="content-disposition") == "file_doc"),
        parts[0] if len(parts) == 1 else None,
    )
    if chosen is None:
        return None
    payload = chosen.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else None
