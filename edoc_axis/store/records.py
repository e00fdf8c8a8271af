"""Plain records the store reads and writes: packages, deliveries, history, inbox, outbox."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Direction = Literal["in", "out"]
Kind = Literal["edoc", "status"]
Pickup = Literal["new", "processing", "done", "fail"]
PICKUP_STATES: tuple[str, ...] = ("new", "processing", "done", "fail")


def now_iso() -> str:
    """The current UTC time as stored: ISO 8601 with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewPackage:
    """A package about to be stored; ``body`` is the exact signed bytes."""

    package_id: str
    direction: Direction
    kind: Kind
    sender: str
    recipients: tuple[str, ...]
    document_id: str
    body: bytes
    sha256: str
    dedupe_digest: str
    message_id: str
    business_op: int = 0
    related_package: str | None = None
    status_code: str | None = None
    description: str | None = None
    broker_user: str | None = None
    warnings: tuple[Mapping[str, Any], ...] = ()  # findings accepted as warnings (JSON-ready)
    # What the package is about, for listings without reading its body: a document's Subject
    # or a status's Description, and a document's "number/notation" or, for a status, that of
    # the document it is about. None: not known when stored (filled on first listing).
    subject: str | None = None
    notation: str | None = None


@dataclass(frozen=True, slots=True)
class PackageRecord:
    """A stored package (without its body; ``Store.body`` fetches that)."""

    id: int
    package_id: str
    direction: Direction
    kind: Kind
    sender: str
    recipients: tuple[str, ...]
    document_id: str
    business_op: int
    related_package: str | None
    status_code: str | None
    description: str | None
    message_id: str
    broker_user: str | None
    sha256: str
    dedupe_digest: str
    size: int
    created_at: str
    warnings: tuple[Mapping[str, Any], ...] = ()  # findings it was accepted with, as stored
    subject: str | None = None  # as NewPackage.subject; None: not filled yet
    notation: str | None = None  # as NewPackage.notation; None: not filled yet


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One message waiting to be published (token = outbox row id)."""

    token: int
    recipient: str
    package_id: str
    message_id: str
    kind: Kind
    sender: str
    document_id: str
    sha256: str
    body: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """A sent package's state at one recipient."""

    id: int
    package_id: str
    document_id: str
    recipient: str
    state: str
    status_code: str | None
    reason: str | None
    updated_at: str


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One step of a delivery, with the status package that caused it (if any)."""

    id: int
    delivery: int
    state: str
    status_code: str | None
    status_package_id: str | None
    description: str | None
    at: str


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A received package as the agency's DMS sees it."""

    id: int
    package_id: str
    kind: Kind
    sender: str
    document_id: str
    pickup: Pickup
    pickup_note: str | None
    received_at: str
    updated_at: str
    business_op: int
    status_code: str | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A received message refused for good (it went to the dead-letter queue)."""

    id: int
    message_id: str | None
    broker_user: str | None
    claimed_sender: str | None
    identified_sender: str | None
    document_id: str | None
    code: str
    reason: str
    sha256: str
    at: str


@dataclass(frozen=True, slots=True)
class Event:
    """A fact worth an audit entry, handed to the ``on_event`` hook inside its transaction."""

    kind: str
    package_id: str | None = None
    document_id: str | None = None
    counterpart: str | None = None
    sha256: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


PACKAGE_COLUMNS = (
    "p.id, p.package_id, p.direction, p.kind, p.sender, p.recipients, p.document_id, "
    "p.business_op, p.related_package, p.status_code, p.description, p.message_id, "
    "p.broker_user, p.sha256, p.dedupe_digest, p.size, p.created_at, p.warnings, p.subject, "
    "p.notation"
)
DELIVERY_SELECT = (
    "SELECT d.id, p.package_id, d.document_id, d.recipient, d.state, d.status_code, d.reason,"
    " d.updated_at FROM deliveries d JOIN packages p ON p.id = d.package"
)
INBOX_SELECT = (
    "SELECT i.id, p.package_id, i.kind, i.sender, i.document_id, i.pickup, i.pickup_note,"
    " i.received_at, i.updated_at, p.business_op, p.status_code"
    " FROM inbox i JOIN packages p ON p.id = i.package"
)


def package_from_row(row: Sequence[Any]) -> PackageRecord:
    """A PackageRecord from a row selected with PACKAGE_COLUMNS."""
    values = list(row)
    values[5] = tuple(values[5].split()) if values[5] else ()
    values[17] = decode_warnings(values[17])
    return PackageRecord(*values)


def encode_warnings(warnings: Sequence[Mapping[str, Any]]) -> str | None:
    """The ``packages.warnings`` column: a JSON array, or NULL for none."""
    return json.dumps(list(warnings), ensure_ascii=False, sort_keys=True) if warnings else None


def decode_warnings(text: str | None) -> tuple[Mapping[str, Any], ...]:
    """The findings stored in ``packages.warnings`` (empty for NULL)."""
    return tuple(json.loads(text)) if text else ()
