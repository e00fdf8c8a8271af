"""How the deployed axis SDK writes a call: its timestamp, ``hash-file``, header bytes and HMAC.

Shared by both ends of the protocol: the gateway's authentication reads these formats, the
client (``gateway.client``) writes them. Pure functions over the standard library only, so a
DMS-side client loads neither the HTTP server nor lxml.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime, tzinfo

from edoc_axis.edxml.identifier import VN_TZ

PREFIX = "xroadvnpt-"  # every signed header's name starts with it (case-insensitive)

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


def low_byte_text(text: str) -> str:
    """A header value as a server reads it (latin-1) after the Java SDK wrote ``(byte) ch`` for
    each character: ``đ`` (U+0111) arrives as U+0011, ``ậ`` (U+1EAD) as U+00AD."""
    return "".join(chr(ord(c) & 0xFF) for c in text)


def sdk_json(mapping: Mapping[str, str]) -> str:
    """Compact JSON as Gson's JsonObject.toString() writes it (non-ASCII kept as is)."""
    text = json.dumps(dict(mapping), ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def sha256_hex(data: bytes) -> str:
    """The normal 64-character lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def sha256_hex_unpadded(data: bytes) -> str:
    """SHA-256 hex as the Java SDK writes ``hash-file``: no zero padding per byte (0x0c -> 'c')."""
    return "".join(format(b, "x") for b in hashlib.sha256(data).digest())


def hash_file_matches(data: bytes, hash_file: str) -> bool:
    """True when ``hash_file`` is the body's SHA-256 in either the normal or the SDK rendering."""
    given = hash_file.strip().lower().encode("ascii", "replace")
    digest = hashlib.sha256(data).digest()
    normal = digest.hex().encode()
    unpadded = "".join(format(b, "x") for b in digest).encode()
    return hmac.compare_digest(given, normal) or hmac.compare_digest(given, unpadded)


def sign_headers(secret: str, sign_header: str) -> str:
    """``XroadVnpt-hash-header``: hex HMAC-SHA256 keyed by the secret over the sign-header JSON."""
    return hmac_hex(secret, sign_header.encode("utf-8"))


def hmac_hex(secret: str, raw: bytes) -> str:
    """Hex HMAC-SHA256 of ``raw`` keyed by the UTF-8 of ``secret``."""
    return hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()
