"""The node behind the DMS gateway: ``NodeBackend`` is the ``protocol.DmsBackend`` of a ``Node``.

``gateway.service`` speaks the axis client protocol; this module maps each call onto the node's
journeys and store, and ``host`` starts the gateway beside a running node (``edoc-axis run``).
Decisions the protocol leaves open:

- **docId** is the node's package id (a UUID): unique per package and direction, and safe as a
  file name (the SDK saves ``<docId>.edxml``), unlike the edXML DocumentId, which holds ``/``.
  ``sendEdoc`` answers it, ``getReceivedEdocList`` lists it, ``getEdoc``/``updateStatus`` take it,
  ``getSentEdocList`` reports it as ``senderDocId``. ``receiverDocId`` is empty: the recipient's
  node numbers its copy itself and does not tell the sender.
- **Repeats**: the gateway's ``RequestLedger`` is this backend, over the store's ``dms_request``
  table (``store.request_log``), so an exact repeat of a signed sendEdoc/updateStatus is answered
  from the store even after a restart. Beyond exact repeats, package bytes this node already
  sends (the same SHA-256 as submitted, document or status package) answer the original package
  id and store nothing: a status package, which the node itself does not dedupe, is not queued
  twice by a retry or by a replayed request of another call carrying the SDK's sticky headers.
- **sendEdoc** submits exactly as ``edoc-axis send`` (same checks, signing policy, dedupe). The
  signed ``messagetype`` must match the package (``MESSAGETYPE_MISMATCH``); the optional ``to``
  list must name only recipients the package itself addresses (OrganIds, or directory ``code``
  values), else ``TO_NOT_IN_PACKAGE`` — routing always follows the signed package, never ``to``.
  Both are checked before anything is stored, on the package as read once here
  (``edxml.parsed.read_package``: its claims, no model), and that value is what ``Node.submit``
  judges, verifies and stores: the bytes are parsed and hashed once per sendEdoc.
- **getReceivedEdocList** lists received packages whose pickup is not ``done`` (``new``,
  ``processing`` and ``fail``: a failed pickup is offered again), oldest first, at most
  ``list_limit``. ``status`` is the pickup state, ``status_desc`` the DMS's last description.
- **getSentEdocList** lists the newest ``list_limit`` sent packages of the asked kind, one row per
  recipient: ``sendStatus`` is the transport state (``queued``, ``sent`` = broker confirmed,
  ``failed``), ``receiveStatus`` the latest edXML status code from the recipient (``01`` arrived,
  ``02`` rejected, ``03``..``06``, ...; empty before any), ``receiveStatusDesc`` the delivery
  state and reason, ``sentTime`` the submission time, ``receivedTime`` when status 01 came back.
  ``title`` and ``notation`` are the package's ``subject``/``notation`` columns (a status's title
  is its code and description): no body is parsed to list, except once for a package stored
  before the store kept them, whose columns are then filled.
- **getAgenciesList** reports the directory: ``id``, ``code102`` and ``oldCode`` are the OrganId
  (QCVN 102:2016), ``pid`` the parent's OrganId, ``code`` the directory's code (newer scheme).

Store connections are per thread and the HTTP server starts a thread per connection, so every
backend call runs on a small fixed pool of worker threads (bounded SQLite connections).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from edoc_axis.edxml.model import subject_and_notation
from edoc_axis.edxml.parsed import Claims, ParsedPackage, read_package
from edoc_axis.edxml.read import parse
from edoc_axis.errors import ConfigError, ErrorCode, NotFound, PackageRejected, RuleViolation
from edoc_axis.gateway.ledger import RequestRecord
from edoc_axis.gateway.protocol import (
    AckState,
    AgencyItem,
    Kind,
    NodeMetrics,
    ReceivedItem,
    SentItem,
)
from edoc_axis.gateway.server import DmsServer
from edoc_axis.gateway.service import body_limit
from edoc_axis.log import get_logger
from edoc_axis.node.node import Node
from edoc_axis.store.records import Delivery, InboxEntry, PackageRecord, Pickup
from edoc_axis.store.request_log import RequestLog
from edoc_axis.transport.link import Link

log = get_logger(__name__)

T = TypeVar("T")
WORKERS = 8
LIST_LIMIT = 1000
MAX_DESCRIPTION_CHARS = 500
NOT_DONE: tuple[Pickup, ...] = ("new", "processing", "fail")


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class NodeBackend:
    """``protocol.DmsBackend`` over one node (its store, directory and ``submit``)."""

    def __init__(
        self, node: Node, link: Link | None = None, *, workers: int = WORKERS,
        list_limit: int = LIST_LIMIT,
    ) -> None:
        self.node = node
        self.link = link
        self.list_limit = list_limit
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dms-backend")
        self._requests = RequestLog(node.store)
        # One submission at a time: concurrent writers would wait in SQLite's busy handler,
        # which sleeps in growing steps (seconds of tail latency); the work is GIL-bound anyway.
        self._submit_lock = threading.Lock()

    def close(self) -> None:
        """Stop the worker threads (after the server stopped calling)."""
        self._pool.shutdown(wait=True)

    def _run(self, fn: Callable[..., T], *args: object) -> T:
        return self._pool.submit(fn, *args).result()

    def _own(self, agency: str) -> None:
        if agency != self.node.organ_id:
            raise ConfigError(f"a DMS system is configured for {agency}, but this node serves "
                              f"{self.node.organ_id}", code=ErrorCode.DMS_AGENCY_MISMATCH,
                              agency=agency)

    # --- sendEdoc ------------------------------------------------------------------------------

    def submit(
        self, data: bytes, kind: Kind, declared_from: str, declared_to: list[str] | None
    ) -> str:
        """Check messagetype and ``to`` against the package, then ``Node.submit``; the DocId."""
        self._own(declared_from)
        return self._run(self._submit, data, kind, declared_to)

    def _submit(self, data: bytes, kind: Kind, declared_to: list[str] | None) -> str:
        # The hop's one parse and hash: the value read here is what Node.submit judges,
        # verifies (or signs) and stores.
        package: bytes | ParsedPackage = data
        claims: Claims | None = None
        if len(data) <= self.node.limits.max_bytes:
            try:
                package = read_package(data, self.node.limits)
                claims = package.claims
            except PackageRejected:
                pass  # Node.submit refuses it with the same code `edoc-axis send` shows
        if claims is not None:
            self._check_declared(claims, kind, declared_to)
        with self._submit_lock:  # also orders the look-up before a concurrent same submission
            if isinstance(package, ParsedPackage) and claims is not None:
                earlier = self._sent_before(claims, package.sha256)
                if earlier is not None:
                    log.info("dms_submission_repeated", package_id=earlier)
                    return earlier
            result = self.node.submit(package)
        log.info("dms_submitted", package_id=result.package_id, kind=result.kind,
                 duplicate=result.duplicate)
        return result.package_id

    def _sent_before(self, claims: Claims, digest: str) -> str | None:
        """The package id under which the bytes of SHA-256 ``digest`` were already submitted."""
        for record in self.node.store.packages(direction="out", kind=claims.kind,
                                               document_id=claims.document_id):
            if record.dedupe_digest == digest:
                return record.package_id
        return None

    def _check_declared(self, claims: Claims, kind: Kind,
                        declared_to: list[str] | None) -> None:
        if claims.kind != kind:
            raise RuleViolation(f"messagetype is {kind}, but the package is a "
                                f"{'status' if claims.kind == 'status' else 'document'} package",
                                code=ErrorCode.MESSAGETYPE_MISMATCH, element="messagetype")
        if not declared_to:
            return
        addressed = set(claims.addressees)
        by_code = {a.code: a.organ_id for a in self.node.directory}
        stray = [t for t in declared_to if by_code.get(t, t) not in addressed]
        if stray:
            raise RuleViolation(f"header to names {', '.join(stray)}, not addressed by the "
                                f"package (it goes to {', '.join(sorted(addressed))})",
                                code=ErrorCode.TO_NOT_IN_PACKAGE, element="to")

    # --- received side -------------------------------------------------------------------------

    def received(self, agency: str, kind: Kind) -> list[ReceivedItem]:
        """Received packages of ``kind`` not yet acknowledged ``done``, oldest first."""
        self._own(agency)
        return self._run(self._received, kind)

    def _received(self, kind: Kind) -> list[ReceivedItem]:
        store = self.node.store
        entries: list[InboxEntry] = []
        for pickup in NOT_DONE:
            entries += store.inbox(pickup=pickup, kind=kind, limit=self.list_limit)
        entries.sort(key=lambda e: e.id)
        return [
            ReceivedItem(doc_id=e.package_id, from_organ=e.sender, to_organ=self.node.organ_id,
                         kind=e.kind, status=e.pickup, status_desc=e.pickup_note or "",
                         created=_moment(e.received_at), updated=_moment(e.updated_at))
            for e in entries[: self.list_limit]
        ]

    def fetch(self, agency: str, doc_id: str) -> bytes:
        """The exact stored bytes of a received package (NotFound for anything else)."""
        self._own(agency)
        return self._run(self._fetch, doc_id)

    def _fetch(self, doc_id: str) -> bytes:
        store = self.node.store
        store.inbox_entry(doc_id)  # only received packages are offered to the DMS
        return store.body(doc_id)

    def acknowledge(
        self, agency: str, doc_id: str, state: AckState, description: str | None
    ) -> None:
        """Record the DMS's pickup state of a received package."""
        self._own(agency)
        self._run(self._acknowledge, doc_id, state, description)

    def _acknowledge(self, doc_id: str, state: AckState, description: str | None) -> None:
        note = description[:MAX_DESCRIPTION_CHARS] if description else None
        with self.node.store.transaction() as txn:
            if not txn.set_pickup(doc_id, state, note):
                raise NotFound(f"no received package {doc_id!r}", package_id=doc_id)
        log.info("dms_pickup", package_id=doc_id, pickup=state)

    # --- sent side -----------------------------------------------------------------------------

    def sent(self, agency: str, kind: Kind, doc_id: str | None) -> list[SentItem]:
        """One row per recipient of the newest sent packages (or of ``doc_id``)."""
        self._own(agency)
        return self._run(self._sent, kind, doc_id)

    def _sent(self, kind: Kind, doc_id: str | None) -> list[SentItem]:
        store = self.node.store
        records = store.recent_packages(direction="out", kind=kind, package_id=doc_id,
                                        limit=self.list_limit)
        if doc_id is not None and not records:
            other: Kind = "status" if kind == "edoc" else "edoc"
            records = store.recent_packages(direction="out", kind=other, package_id=doc_id)
            if not records:
                raise NotFound(f"no sent package {doc_id!r}", package_id=doc_id)
        records = self._with_summaries(records)
        items: list[SentItem] = []
        with store.snapshot() as view:
            for record in records:
                subject, notation = record.subject or "", record.notation or ""
                if record.kind == "edoc":
                    items += [self._delivery_item(record, d, subject, notation)
                              for d in view.deliveries_of(record.id)]
                else:
                    title = f"{record.status_code or ''} {subject}".strip()
                    items += self._status_items(record, title, notation)
        return items

    def _delivery_item(self, record: PackageRecord, delivery: Delivery, title: str,
                       notation: str) -> SentItem:
        history = self.node.store.history(delivery.id)
        arrived = next((h.at for h in history if h.status_code == "01"), None)
        state = delivery.state
        send = "queued" if state == "queued" else "failed" if state == "failed" else "sent"
        send_desc = {"queued": "waiting for the broker", "failed": delivery.reason or "failed"
                     }.get(send, "confirmed by the broker")
        receive_desc = state + (f": {delivery.reason}" if delivery.reason and send != "failed"
                                else "")
        return SentItem(
            from_code=self.node.organ_id, to_code=delivery.recipient,
            sender_doc_id=record.package_id, receiver_doc_id="", send_status=send,
            send_status_desc=send_desc, receive_status=delivery.status_code or "",
            receive_status_desc=receive_desc if state not in ("queued", "sent", "failed")
            else "", sent_time=_moment(record.created_at), received_time=_moment(arrived),
            title=title, notation=notation, kind="edoc")

    def _status_items(self, record: PackageRecord, title: str, notation: str) -> list[SentItem]:
        names = {"pending": "queued", "confirmed": "sent", "failed": "failed"}
        return [
            SentItem(
                from_code=self.node.organ_id, to_code=recipient,
                sender_doc_id=record.package_id, receiver_doc_id="",
                send_status=names.get(state, state),
                send_status_desc="confirmed by the broker" if state == "confirmed" else "",
                receive_status="", receive_status_desc="",
                sent_time=_moment(record.created_at), received_time=None, title=title,
                notation=notation, kind="status")
            for recipient, state, _ in self.node.store.outbox_states(record.package_id)
        ]

    def _with_summaries(self, records: list[PackageRecord]) -> list[PackageRecord]:
        """``records`` with subject and notation, filling (once) those of packages stored
        before the store kept them: their bodies are read here and the columns written."""
        missing = [r for r in records if r.subject is None or r.notation is None]
        if not missing:
            return records
        filled: dict[str, PackageRecord] = {}
        for record in missing:
            try:
                pkg = parse(self.node.store.body(record.package_id), self.node.limits)
            except PackageRejected:  # stored packages were validated; never fail a listing
                subject, notation = "", ""
            else:
                subject, notation = subject_and_notation(pkg)
            filled[record.package_id] = replace(record, subject=subject, notation=notation)
        with self.node.store.transaction() as txn:
            for record in filled.values():
                txn.set_summary(record.package_id, record.subject or "", record.notation or "")
        log.info("dms_summaries_filled", packages=len(filled))
        return [filled.get(r.package_id, r) for r in records]

    # --- the gateway's request ledger (ledger.RequestLedger), on the worker threads ------------

    def recall(self, systemid: str, signature: str) -> RequestRecord | None:
        """The stored record of this signed request, or None."""
        row = self._run(self._requests.recall, systemid, signature)
        return None if row is None else RequestRecord(*row)

    def remember(self, systemid: str, signature: str, record: RequestRecord) -> None:
        """Store the outcome of a signed request."""
        row = (record.call, record.body_sha256, record.subject, record.answer, record.seq)
        self._run(self._requests.remember, systemid, signature, row)

    def applied_since(self, subject: str, seq: int) -> bool:
        """Whether a request about ``subject`` succeeded after outcome ``seq``."""
        return self._run(self._requests.applied_since, subject, seq)

    # --- directory and numbers -----------------------------------------------------------------

    def agencies(self) -> list[AgencyItem]:
        """The agency directory as the axis lists it."""
        return [
            AgencyItem(id=a.organ_id, pid=a.parent or "", code=a.code, name=a.name,
                       mail=a.email or "", mobile=a.phone or "", fax=a.fax or "",
                       code102=a.organ_id)
            for a in self.node.directory
        ]

    def metrics(self) -> NodeMetrics:
        """Package counts, outbox backlog and lag, rejections by code, broker link state."""
        return self._run(self._metrics)

    def _metrics(self) -> NodeMetrics:
        store = self.node.store
        counts = store.package_counts()
        oldest = _moment(store.oldest_pending_outbox())
        lag = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        return NodeMetrics(
            packages_in=counts["in"], packages_out=counts["out"],
            outbox_depth=store.outbox_counts()["pending"], queue_lag_seconds=max(lag, 0.0),
            rejections=store.rejection_counts(),
            broker_connected=self.link.connected if self.link is not None else None)


# --- hosting beside `edoc-axis run` ---------------------------------------------------------------


@dataclass(slots=True)
class HostedGateway:
    """A running gateway and the backend it calls; ``stop`` ends both."""

    server: DmsServer
    backend: NodeBackend

    @property
    def url(self) -> str:
        """The base URL a DMS sets as its SDK endpoint."""
        return self.server.url

    def stop(self) -> None:
        """Stop serving (running calls finish), then the backend's workers."""
        self.server.stop()
        self.backend.close()


def host(node: Node, link: Link | None = None, *, force: bool = False) -> HostedGateway | None:
    """Start the gateway for ``node`` when ``[[dms]]`` systems exist or ``api.enabled`` (or
    ``force``); None otherwise. Raises ConfigError when the address cannot be bound."""
    settings = node.settings
    if not (settings.dms or settings.api.enabled or force):
        return None
    backend = NodeBackend(node, link)
    try:
        server = DmsServer(backend, settings.dms, settings.api,
                           max_body_bytes=body_limit(settings.limits.max_bytes),
                           ledger=backend)
    except BaseException:
        backend.close()
        raise
    server.start()
    log.info("dms_gateway_started", url=server.url, systems=len(settings.dms))
    return HostedGateway(server, backend)
