"""The audit chain: hash-linked entries of every event, the kinds of event, and audit time.

Pure logic: the store keeps the rows (``store.audit_rows``) and ``audit.log`` calls
``next_entry`` inside the transaction that records the event; ``audit.verification`` streams
rows back in constant memory and names what was tampered with. Checkpoints that seal the chain
are ``audit.checkpoint``; bundles and archives built from both are ``audit.bundle`` and
``audit.archive``.

Entry hash (format version 1)::

    entry_hash = SHA-256( bytes.fromhex(prev_hash) || canonical(entry) )
    canonical  = b"edoc-axis/audit-entry/1\\0" || seq as 8-byte big-endian
                 || for at, kind, package_id, document_id, counterpart, content_sha256, signer,
                    detail: 0xFFFFFFFF when None, else 4-byte big-endian length || UTF-8 bytes

Length prefixes make the encoding unambiguous (no separator can be smuggled into a field) and
there are no floats. The first entry's ``prev_hash`` is ``genesis_hash(organ_id)``: SHA-256 of
``b"edoc-axis/audit-genesis/1\\0" || OrganId``, so a log cannot be passed off as another node's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from edoc_axis.errors import EdocAxisError, ErrorCode

FORMAT_VERSION = 1
ZERO_HASH = "0" * 64
_ENTRY_TAG = b"edoc-axis/audit-entry/1\x00"
_GENESIS_TAG = b"edoc-axis/audit-genesis/1\x00"
_NONE = b"\xff\xff\xff\xff"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class Kind(StrEnum):
    """The closed set of events the chain records."""

    SUBMITTED = "submitted"  # a package accepted from the DMS/CLI and stored for sending
    PUBLISHED = "published"  # the broker confirmed one recipient's copy
    PUBLISH_FAILED = "publish_failed"  # unroutable / returned / expired for one recipient
    RECEIVED = "received"  # a package from another agency accepted and stored
    STATUS_SENT = "status_sent"  # a signed status (01, 02, 03...) we queued to a sender
    STATUS_RECEIVED = "status_received"  # a signed status from a recipient, verified
    REJECTED = "rejected"  # an incoming package refused permanently (detail = error code)
    DEAD_LETTERED = "dead_lettered"  # handed to the dead-letter queue
    REPLAYED = "replayed"  # taken back out of the dead-letter queue by an operator
    CHECKPOINT = "checkpoint"  # a signed checkpoint of the previous entry (chained into the log)
    ARCHIVED = "archived"  # entries up to detail's seq moved to the archive file content_sha256


KINDS = frozenset(k.value for k in Kind)
# Entries whose content_sha256 names signed bytes: signed by this node (what it sent) or by the
# counterpart (what it received).
OUTGOING_KINDS = frozenset({Kind.SUBMITTED.value, Kind.STATUS_SENT.value})
INCOMING_KINDS = frozenset({Kind.RECEIVED.value, Kind.STATUS_RECEIVED.value})
SIGNED_KINDS = OUTGOING_KINDS | INCOMING_KINDS


def genesis_hash(organ_id: str) -> str:
    """The ``prev_hash`` of a node's first entry, bound to its OrganId."""
    return hashlib.sha256(_GENESIS_TAG + organ_id.encode("utf-8")).hexdigest()


def format_time(moment: dt.datetime | None = None) -> str:
    """UTC ISO-8601 with microseconds and a ``Z``: ``2025-03-01T07:30:00.000123Z``."""
    moment = moment or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> dt.datetime:
    """The aware UTC datetime of a ``format_time`` string; raises ValueError otherwise."""
    if not _TIME.fullmatch(text):
        raise ValueError(f"not an audit time: {text!r}")
    return dt.datetime.fromisoformat(text)


def malformed(message: str) -> EdocAxisError:
    """The error of an unreadable entry, checkpoint or line (``AUDIT_MALFORMED``)."""
    return EdocAxisError(message, code=ErrorCode.AUDIT_MALFORMED)


# --- entries ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event of the chain, exactly as stored (hashes are lowercase hex)."""

    seq: int
    at: str
    kind: str
    package_id: str | None
    document_id: str | None
    counterpart: str | None
    content_sha256: str | None
    signer: str | None
    detail: str | None
    prev_hash: str
    entry_hash: str

    def canonical(self) -> bytes:
        """The versioned, length-prefixed encoding hashed into ``entry_hash``."""
        return canonical_entry(self.seq, self)

    def computed_hash(self) -> str:
        """``entry_hash`` as it should be for these fields and ``prev_hash``."""
        return hash_entry(self.prev_hash, self.seq, self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (the JSONL export and bundle format)."""
        return {name: getattr(self, name) for name in ENTRY_FIELDS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEntry:
        """An entry from ``to_dict`` output; raises ``EdocAxisError(AUDIT_MALFORMED)``."""
        if not isinstance(data, Mapping):
            raise malformed("an audit entry must be an object")
        values: dict[str, Any] = {}
        for name in ENTRY_FIELDS:
            value = data.get(name)
            if name == "seq":
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise malformed(f"entry seq must be a positive integer, got {value!r}")
            elif name in ("at", "kind", "prev_hash", "entry_hash"):
                if not isinstance(value, str):
                    raise malformed(f"entry field {name} must be a string")
            elif value is not None and not isinstance(value, str):
                raise malformed(f"entry field {name} must be a string or null")
            values[name] = value
        return cls(**values)

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> AuditEntry:
        """An entry from a store row whose columns are in ``ENTRY_FIELDS`` order."""
        return cls(*row)


ENTRY_FIELDS = (
    "seq", "at", "kind", "package_id", "document_id", "counterpart", "content_sha256",
    "signer", "detail", "prev_hash", "entry_hash",
)


def canonical_entry(seq: int, e: AuditEntry) -> bytes:
    """The bytes hashed for ``e`` written as ``seq`` (see the module docstring)."""
    # The hot path of verification: kept to plain local operations on purpose.
    parts = [_ENTRY_TAG, seq.to_bytes(8, "big")]
    add = parts.append
    for value in (
        e.at, e.kind, e.package_id, e.document_id, e.counterpart, e.content_sha256, e.signer,
        e.detail,
    ):
        if value is None:
            add(_NONE)
        else:
            raw = value.encode()
            add(len(raw).to_bytes(4, "big"))
            add(raw)
    return b"".join(parts)


def hash_entry(prev_hash: str, seq: int, e: AuditEntry) -> str:
    """The ``entry_hash`` of ``e`` written as ``seq`` after ``prev_hash``."""
    try:
        prev = bytes.fromhex(prev_hash)
    except ValueError:
        prev = prev_hash.encode("utf-8", "replace")
    return hashlib.sha256(prev + canonical_entry(seq, e)).hexdigest()


def _check_hex(name: str, value: str | None) -> None:
    if value is not None and not _HEX64.fullmatch(value):
        raise malformed(f"{name} must be 64 lowercase hex digits")


def next_entry(
    prev: AuditEntry | None,
    *,
    kind: str,
    genesis: str,
    at: dt.datetime | str | None = None,
    package_id: str | None = None,
    document_id: str | None = None,
    counterpart: str | None = None,
    content_sha256: str | None = None,
    signer: str | None = None,
    detail: str | None = None,
) -> AuditEntry:
    """The entry that follows ``prev`` (``None``: the first, linked to ``genesis``).

    The store calls this inside the transaction that records the event, with ``prev`` = the
    current head row, and inserts the result; ``seq`` is ``prev.seq + 1`` (1 for the first).
    ``content_sha256`` is the SHA-256 hex of the exact signed bytes involved; ``signer`` the
    fingerprint of the certificate that signed them.
    """
    if kind not in KINDS:
        raise malformed(f"unknown audit event kind {kind!r}")
    _check_hex("content_sha256", content_sha256)
    _check_hex("signer", signer)
    _check_hex("genesis", genesis)
    when = at if isinstance(at, str) else format_time(at)
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = genesis if prev is None else prev.entry_hash
    draft = AuditEntry(
        seq, when, str(kind), package_id, document_id, counterpart, content_sha256, signer,
        detail, prev_hash, "",
    )
    return AuditEntry(
        seq, when, str(kind), package_id, document_id, counterpart, content_sha256, signer,
        detail, prev_hash, hash_entry(prev_hash, seq, draft),
    )
