"""HMAC authentication of the axis client protocol: who is calling the DMS gateway, and which body.

A DMS signs every call the way the deployed Java SDK does: ``XroadVnpt-sign-header`` is a JSON
object of the signed ``XroadVnpt-*`` headers, ``XroadVnpt-hash-header`` the hex HMAC-SHA256 of
it keyed by the system's shared secret. ``Authenticator`` checks that in a fixed order, one
``AUTH_*`` code per failure (``shared/spec/axis-client-protocol.md``); decisions taken where
the spec is silent:

- **Timestamp** ``ddMMyyyy'T'HHmmss+SSSS`` carries no zone: it is read in
  ``GatewayOptions.timezone`` (default Asia/Ho_Chi_Minh, UTC+7). It may be at most
  ``skew_seconds`` (300) in the future, and at most ``max_timestamp_age`` (default:
  ``skew_seconds``) in the past. The Java SDK stamps the time once, when its service object is
  built, and resends it on every later call: a DMS that keeps one SDK object for longer must run
  with ``max_timestamp_age=0`` (no age limit; future skew is still enforced).
- **Replay**: a mutating call (``sendEdoc``, ``updateStatus``) whose ``(systemid, hash-header)``
  was already accepted inside the replay window is refused (``AUTH_REPLAY``); a failed call does
  not consume its signature, so the SDK may retry it. Read calls are not replay-checked: the SDK
  legitimately repeats byte-identical signed headers when it polls.
- **Body of sendEdoc**: the package is the body whose SHA-256 equals the signed ``hash-file``
  (unpadded-per-byte hex as the SDK writes it, or the normal 64 characters). SDK 2.0.1 appends
  CRLF after the file and may label it multipart; the raw body, the body less a trailing CRLF and
  a ``file_doc`` multipart part are tried, in that order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Protocol, cast

from edoc_axis.errors import ConfigError, RequestRefused
from edoc_axis.identifier import VN_TZ

MUTATING_CALLS = frozenset({"sendEdoc", "updateStatus"})
PREFIX = "xroadvnpt-"


@dataclass(frozen=True, slots=True)
class DmsSystem:
    """One DMS allowed to call the gateway: its id, shared secret and the agency it speaks for.

    TOML shape expected from the node config (loading it is config.py's job)::

        [[dms]]
        systemid = "vbdh-bo-noi-vu"
        secret = "..."            # or secret_file / an EDOC_AXIS_* override
        organ_id = "000.00.00.G22"
    """

    systemid: str
    secret: str = field(repr=False)
    organ_id: str


class AuthOptions(Protocol):
    """The part of the gateway's options authentication reads (``api.GatewayOptions`` is one)."""

    @property
    def skew_seconds(self) -> int: ...

    @property
    def max_timestamp_age(self) -> int | None: ...

    @property
    def replay_window(self) -> int: ...

    @property
    def replay_cache_size(self) -> int: ...

    @property
    def timezone(self) -> tzinfo: ...


class SignedRequest(Protocol):
    """What authentication reads of an HTTP request (``api.Request`` is one)."""

    @property
    def body(self) -> bytes: ...

    def values(self, name: str) -> list[str]:
        """Every value of a header (case-insensitive name), as sent on the wire (latin-1)."""
        ...

    def first(self, name: str) -> str | None:
        """The first value of a header, or None."""
        ...


# --- SDK formats -------------------------------------------------------------------------------

_TIMESTAMP = re.compile(r"^(\d{2})(\d{2})(\d{4})T(\d{2})(\d{2})(\d{2})\+(\d{1,4})$")


def format_sdk_timestamp(moment: datetime, tz: tzinfo = VN_TZ) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS`` in ``tz``: milliseconds zero-padded to four digits, no zone."""
    local = moment.astimezone(tz) if moment.tzinfo else moment
    return local.strftime("%d%m%YT%H%M%S") + f"+{local.microsecond // 1000:04d}"


def parse_sdk_timestamp(text: str, tz: tzinfo = VN_TZ) -> datetime:
    """Read an SDK timestamp as local time in ``tz``; raises ValueError when malformed."""
    match = _TIMESTAMP.match(text.strip())
    if not match:
        raise ValueError("expected ddMMyyyyTHHmmss+SSSS")
    day, month, year, hour, minute, second, millis = (int(g) for g in match.groups())
    if millis > 999:
        raise ValueError("milliseconds above 999")
    return datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=tz)


def sha256_hex(data: bytes) -> str:
    """The normal 64-character lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def sha256_hex_unpadded(data: bytes) -> str:
    """SHA-256 hex as the Java SDK writes ``hash-file``: no zero padding per byte (0x0c -> 'c')."""
    return "".join(format(b, "x") for b in hashlib.sha256(data).digest())


def hash_file_matches(data: bytes, hash_file: str) -> bool:
    """True when ``hash_file`` is the body's SHA-256 in either the normal or the SDK rendering."""
    given = hash_file.strip().lower().encode("ascii", "replace")
    normal = sha256_hex(data).encode()
    unpadded = "".join(format(b, "x") for b in bytes.fromhex(normal.decode())).encode()
    return hmac.compare_digest(given, normal) or hmac.compare_digest(given, unpadded)


def sign_headers(secret: str, sign_header: str) -> str:
    """``XroadVnpt-hash-header``: hex HMAC-SHA256 keyed by the secret over the sign-header JSON."""
    return _hmac_hex(secret, sign_header.encode("utf-8"))


def _hmac_hex(secret: str, raw: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()


def _refused(code: str, message: str, *, element: str | None = None) -> RequestRefused:
    return RequestRefused(message, code=code, element=element)


# --- checking a request ------------------------------------------------------------------------


def _wire_text(value: str) -> str:
    """Header bytes arrive as latin-1 text; the SDK writes UTF-8, so re-read them as UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A request that passed authentication: who sent it and the signed values it carries."""

    system: DmsSystem
    signed: dict[str, str]  # lowercase key without the XroadVnpt- prefix -> value
    replay_key: tuple[str, str] | None


# Headers each call relies on (beyond timestamp and systemid). Others are ignored (sticky).
_RELIED: dict[str, tuple[str, ...]] = {
    "sendEdoc": ("from", "to", "servicetype", "messagetype", "hash-file"),
    "getReceivedEdocList": ("servicetype", "messagetype"),
    "getEdoc": ("docid",),
    "updateStatus": ("docid", "status", "description"),
    "getSentEdocList": ("servicetype", "messagetype", "docid"),
    "getAgenciesList": (),
}


class _ReplayCache:
    """Signatures of accepted mutating calls, remembered for a window (bounded LRU)."""

    def __init__(self, window: float, size: int) -> None:
        self._window = window
        self._size = size
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def reserve(self, key: tuple[str, str], now: float) -> bool:
        """Claim a signature; False when it was already used inside the window."""
        with self._lock:
            while self._seen:
                oldest_key, oldest_time = next(iter(self._seen.items()))
                if oldest_time > now - self._window and len(self._seen) < self._size:
                    break
                del self._seen[oldest_key]
            if key in self._seen:
                return False
            self._seen[key] = now
            return True

    def release(self, key: tuple[str, str]) -> None:
        """Give a signature back (its call failed, so a retry is not a replay)."""
        with self._lock:
            self._seen.pop(key, None)


class Authenticator:
    """The HMAC scheme of the protocol, checked in a fixed order with one code per failure."""

    def __init__(
        self,
        systems: Iterable[DmsSystem],
        options: AuthOptions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._systems: dict[str, DmsSystem] = {}
        for system in systems:
            if not system.systemid or not system.secret:
                raise ConfigError("a [[dms]] entry needs a systemid and a secret", element="dms")
            if system.systemid in self._systems:
                raise ConfigError(f"duplicate DMS systemid {system.systemid!r}", element="dms")
            self._systems[system.systemid] = system
        self._options = options
        self._clock = clock
        age = (
            options.skew_seconds if options.max_timestamp_age is None else options.max_timestamp_age
        )
        self._max_age = age
        window = max(options.replay_window, options.skew_seconds * 2, age)
        self._replay = _ReplayCache(window, options.replay_cache_size)

    def authenticate(self, call: str, request: SignedRequest) -> Authenticated:
        """Return who is calling, or raise RequestRefused with the failing check's code."""
        headers = {
            name: _single(request, PREFIX + name)
            for name in ("systemid", "timestamp", "sign-header", "sign-header-key", "hash-header")
        }
        missing = [PREFIX + k for k, v in headers.items() if v is None]
        if missing:
            raise _refused("AUTH_MISSING", f"missing header(s): {', '.join(missing)}")
        systemid = _wire_text(cast(str, headers["systemid"]))
        system = self._systems.get(systemid)
        if system is None:
            raise _refused("AUTH_UNKNOWN_SYSTEM", f"unknown systemid {systemid!r}")
        raw_sign_header = cast(str, headers["sign-header"]).encode("latin-1", "replace")
        expected = _hmac_hex(system.secret, raw_sign_header).encode()
        given = cast(str, headers["hash-header"]).strip().lower().encode("latin-1", "replace")
        if not hmac.compare_digest(expected, given):
            raise _refused("AUTH_BAD_HMAC", "XroadVnpt-hash-header is not the HMAC of sign-header")
        signed = _parse_sign_header(
            _wire_text(cast(str, headers["sign-header"])),
            _wire_text(cast(str, headers["sign-header-key"])),
        )
        for key in ("systemid", "timestamp", *_RELIED[call]):
            _check_signed_matches(request, signed, key)
        self._check_timestamp(signed["timestamp"])
        replay_key = None
        if call in MUTATING_CALLS:
            replay_key = (system.systemid, given.decode("latin-1"))
            if not self._replay.reserve(replay_key, self._clock()):
                raise _refused("AUTH_REPLAY", "this signed request was already accepted")
        return Authenticated(system, signed, replay_key)

    def release(self, auth: Authenticated) -> None:
        """Forget the signature of a call that failed, so the SDK may retry it."""
        if auth.replay_key is not None:
            self._replay.release(auth.replay_key)

    def _check_timestamp(self, text: str) -> None:
        try:
            stamp = parse_sdk_timestamp(text, self._options.timezone)
        except ValueError as exc:
            raise _refused(
                "AUTH_BAD_TIMESTAMP", f"XroadVnpt-timestamp {text!r}: {exc}", element="timestamp"
            ) from exc
        delta = self._clock() - stamp.timestamp()
        if delta < -self._options.skew_seconds:
            raise _refused(
                "AUTH_TIMESTAMP_SKEW",
                f"timestamp is {-delta:.0f} s in the future (allowed {self._options.skew_seconds}"
                f" s, read as {self._options.timezone} local time)",
                element="timestamp",
            )
        if self._max_age and delta > self._max_age:
            raise _refused(
                "AUTH_TIMESTAMP_SKEW",
                f"timestamp is {delta:.0f} s old (allowed {self._max_age} s, read as "
                f"{self._options.timezone} local time)",
                element="timestamp",
            )


def _single(request: SignedRequest, name: str) -> str | None:
    found = request.values(name)
    if len(found) > 1:
        raise _refused("AUTH_HEADER_MISMATCH", f"header {name} sent more than once", element=name)
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
        data = json.loads(text, object_pairs_hook=pairs_hook)
    except ValueError as exc:
        raise _refused("AUTH_BAD_SIGN_HEADER", f"XroadVnpt-sign-header is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _refused("AUTH_BAD_SIGN_HEADER", "XroadVnpt-sign-header must be a JSON object")
    signed: dict[str, str] = {}
    names: list[str] = []
    for key, value in data.items():
        if not key.lower().startswith(PREFIX) or not isinstance(value, str):
            raise _refused(
                "AUTH_BAD_SIGN_HEADER",
                f"sign-header entry {key!r} must be an XroadVnpt-<name> string",
            )
        name = key[len(PREFIX) :]
        if name.lower() in signed:
            raise _refused("AUTH_BAD_SIGN_HEADER", f"sign-header names {name!r} twice (by case)")
        signed[name.lower()] = value
        names.append(name)
    listed = [n.strip() for n in key_list.split(";") if n.strip()]
    if sorted(listed) != sorted(names):
        raise _refused(
            "AUTH_HEADER_MISMATCH",
            "XroadVnpt-sign-header-key does not list the names in XroadVnpt-sign-header",
        )
    return signed


def _check_signed_matches(request: SignedRequest, signed: Mapping[str, str], key: str) -> None:
    """A header the call relies on must be both signed and sent, with the same value."""
    wire = request.values(PREFIX + key)
    if len(wire) > 1:
        raise _refused("AUTH_HEADER_MISMATCH", f"header XroadVnpt-{key} sent more than once")
    if key not in signed:
        if wire:
            raise _refused("AUTH_HEADER_MISMATCH", f"header XroadVnpt-{key} is sent but not signed")
        if key in ("systemid", "timestamp"):
            raise _refused("AUTH_MISSING", f"XroadVnpt-{key} is not in the signed headers")
        return
    if not wire:
        raise _refused("AUTH_HEADER_MISMATCH", f"signed header XroadVnpt-{key} was not sent")
    if _wire_text(wire[0]).strip() != signed[key].strip():
        raise _refused(
            "AUTH_HEADER_MISMATCH", f"header XroadVnpt-{key} differs from its signed value"
        )


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
        raise _refused("BAD_REQUEST", "sendEdoc needs the package as the request body")
    raise _refused(
        "HASH_FILE_MISMATCH", "hash-file is not the SHA-256 of the body", element="hash-file"
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
