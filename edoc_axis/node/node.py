"""The node: the only place that knows a package's journey (submit, relay, receive, statuses).

- ``submit``: limits, schema and rules, the signature policy (verify ours, or sign an unsigned
  submission), every recipient in the directory, then ONE transaction: the package, a delivery
  per recipient (``queued``) and an outbox row per recipient. Then the relay is woken.
- relay (``fetch_outgoing`` / ``on_confirmed``, called by ``transport.Link``): outbox rows stay
  pending until the broker confirms; confirmed -> delivery ``sent``; returned -> ``failed``.
- receive (``handle_batch``): transport identity (broker ``user_id``) == the From agency's broker
  user, schema and rules under the ``received`` profile (harmless deviations are stored with the
  package as warnings), signature by From with a directory-listed certificate, dedupe; a whole
  batch is stored in one transaction, with the signed status 01 (or 02 for a rejection, sent
  only to the agency that owns the broker user) queued in the same transaction. Outcomes are
  returned only after the commit, so the Link acks nothing that is not durable.
- statuses: ``set_status`` for the recipient (02-06, 15, 16) and the sender side (13).

Delivery states (per sent package and recipient) follow ARCHITECTURE "States of a delivery".
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from edoc_axis.audit import chain as audit
from edoc_axis.audit.log import AuditLog, Sealer
from edoc_axis.config import Settings
from edoc_axis.directory import Agency, Directory
from edoc_axis.edxml import schema
from edoc_axis.edxml.finding import Finding
from edoc_axis.edxml.identifier import document_id_sender
from edoc_axis.edxml.model import (
    DocumentPackage,
    Organization,
    Package,
    ResponseFor,
    StatusPackage,
)
from edoc_axis.edxml.profile import RECEIVED
from edoc_axis.edxml.read import from_tree, parse
from edoc_axis.edxml.status import new_status
from edoc_axis.edxml.write import build
from edoc_axis.errors import (
    ConfigError,
    EdocAxisError,
    NotFound,
    PackageRejected,
    PackageTooLarge,
    RuleViolation,
    SignatureInvalid,
    SpoofedSender,
    TemporaryFailure,
    UnknownAgency,
)
from edoc_axis.log import get_logger
from edoc_axis.node import state
from edoc_axis.node.state import RECIPIENT_CODES, REPEATABLE_CODES, SENDER_CODES
from edoc_axis.store import Event, NewPackage, PackageRecord, Store, Transaction
from edoc_axis.store.reads import Reads
from edoc_axis.transport.link import Link
from edoc_axis.transport.message import (
    REPLAYED_USER_HEADER,
    Confirmation,
    IncomingMessage,
    Outcome,
    OutgoingMessage,
)
from edoc_axis.transport.topology import Topology
from edoc_axis.trust.certificate import (
    PrivateKey,
    fingerprint,
    load_certificates,
    load_private_key,
)
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.policy import SignaturePolicy
from edoc_axis.trust.signature import sign, verify

log = get_logger(__name__)

MAX_REASON_CHARS = 500
# `edoc-axis send` in another process cannot wake the relay: it polls the outbox (one indexed
# query) this often, which bounds the extra latency of a cross-process submission.
OUTBOX_POLL_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class Identity:
    """The agency's signing key, certificate and intermediates."""

    key: PrivateKey
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What ``submit`` stored (or recognised as already stored)."""

    package_id: str
    kind: str
    document_id: str
    recipients: tuple[str, ...]
    duplicate: bool = False

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {"package_id": self.package_id, "kind": self.kind,
                "document_id": self.document_id, "recipients": list(self.recipients),
                "duplicate": self.duplicate}


@dataclass(slots=True)
class _Received:
    """One incoming message after the checks that need no store (phase 1 of a batch)."""

    message: IncomingMessage
    sha256: str
    identified: Agency | None = None
    package: Package | None = None  # verified: set only when every check passed
    claimed: Package | None = None  # what the bytes say, before identity and signature
    error: EdocAxisError | None = None
    outcome: Outcome | None = None
    reply: bytes | None = None  # a signed status 01 (documents) or 02 (rejections)
    reply_to: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    warnings: tuple[Finding, ...] = ()  # what the ``received`` profile let through


def load_identity(settings: Settings) -> Identity:
    """Read the signing key, certificate and chain named in the settings."""
    try:
        key = load_private_key(settings.keys.key.read_bytes())
        cert = load_certificates(settings.keys.cert.read_bytes())[0]
        chain = tuple(c for p in settings.keys.chain for c in load_certificates(p.read_bytes()))
    except OSError as exc:
        raise ConfigError(f"cannot read the signing key or certificate: {exc}",
                          code="KEYS_UNREADABLE") from exc
    return Identity(key, cert, chain)


def load_trust(settings: Settings) -> TrustStore:
    """The trust store of the settings' anchors and CRLs."""
    try:
        return TrustStore.from_pem([p.read_bytes() for p in settings.trust.anchors],
                                   [p.read_bytes() for p in settings.trust.crls])
    except OSError as exc:
        raise ConfigError(f"cannot read trust anchors or CRLs: {exc}",
                          code="TRUST_UNREADABLE") from exc


def audit_sealer(identity: Identity, organ_id: str) -> Sealer:
    """Sign the audit chain's head with the agency key (the store gets only this callable)."""
    genesis = audit.genesis_hash(organ_id)

    def seal(head: audit.AuditEntry) -> tuple[audit.Checkpoint, audit.AuditEntry]:
        return audit.seal(head, identity.key, identity.cert, organ_id, genesis=genesis)

    return seal


def audit_log(settings: Settings, store: Store, identity: Identity) -> AuditLog:
    """The audit chain of ``store``, sealed with ``identity`` by the settings' policy."""
    policy = audit.CheckpointPolicy(settings.audit.every_entries, settings.audit.every_seconds)
    return AuditLog(store, settings.organ_id, policy=policy,
                    sealer=audit_sealer(identity, settings.organ_id),
                    own_fingerprint=fingerprint(identity.cert))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _inserted(row: int | None, package_id: str) -> int:
    if row is None:  # only a package-id clash can cause this, and ids are fresh UUIDs
        raise RuntimeError(f"package id {package_id} is already stored")
    return row


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _warning_codes(warnings: Iterable[Finding]) -> list[str] | None:
    """The distinct codes of accepted warnings, for logs and the audit entry (None: none)."""
    return sorted({f.code for f in warnings}) or None


class Node:
    """One agency's node. Thread-safe for ``submit``/``set_status``; the relay and receive
    callbacks run in the Link's thread."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        directory: Directory,
        trust: TrustStore,
        identity: Identity,
        *,
        topology: Topology | None = None,
    ) -> None:
        self.settings = settings
        self.organ_id = settings.organ_id
        self.store = store
        self.directory = directory
        self.trust = trust
        self.identity = identity
        self.topology = topology or Topology(delivery_limit=settings.broker.delivery_limit)
        self.limits = settings.limits.xml_limits()
        me = directory.find(self.organ_id)
        if me is None:
            raise ConfigError(f"this agency {self.organ_id} is not in the agency directory",
                              code="DIRECTORY_MISSING_SELF", agency=self.organ_id)
        self.me: Agency = me
        self.policy: SignaturePolicy = settings.signature
        self.status_policy = self.policy.for_status()
        self.broker_user = settings.broker.user
        self.wake: Callable[[], None] = lambda: None
        self._handed: set[int] = set()  # outbox tokens handed to the Link, not yet settled
        self._me_org = Organization(self.organ_id, self.me.name)
        # Every event the store records is chained into the audit log in its transaction.
        self.audit = audit_log(settings, store, identity)
        if store.on_event is None:
            self.audit.attach()

    @classmethod
    def from_settings(cls, settings: Settings) -> Node:
        """A node built from loaded settings: store, directory, trust and signing identity."""
        return cls(settings, Store(settings.store_path), Directory.load(settings.directory_path),
                   load_trust(settings), load_identity(settings))

    def close(self) -> None:
        """Close the store's connections."""
        self.store.close()

    # --- signing and verification ------------------------------------------------------------

    def _sign(self, data: bytes) -> bytes:
        return sign(data, self.identity.key, self.identity.cert, chain=self.identity.chain,
                    limits=self.limits)

    def _verified(self, data: bytes, agency: Agency, policy: SignaturePolicy) -> Package:
        """Verify ``data`` as signed by ``agency``; return the model read from the signed tree."""
        return self._verified_signer(data, agency, policy)[0]

    def _verified_signer(self, data: bytes, agency: Agency,
                         policy: SignaturePolicy) -> tuple[Package, str | None]:
        """``_verified`` plus the signing certificate's fingerprint (for the audit chain)."""
        result = verify(data, self.trust, policy,
                        allowed_fingerprints=agency.fingerprints or None, limits=self.limits)
        return from_tree(result.signed_root), result.fingerprint

    def _signed_status(self, document: DocumentPackage | ResponseFor, code: str,
                       to: str, description: str | None = None) -> bytes:
        status = new_status(self._me_org, document, code, description=description,
                                  to_organ_id=to)
        return self._sign(build(status))

    # --- submit ------------------------------------------------------------------------------

    def submit(self, data: bytes) -> SubmitResult:
        """Validate, sign (by policy) and store a package for sending; wake the relay.

        A second submission of the same package (sender, DocumentId, business operation,
        content digest) is recognised and answered with the original package id.
        """
        if len(data) > self.limits.max_bytes:
            raise PackageTooLarge(f"package of {len(data)} bytes exceeds the limit of "
                                  f"{self.limits.max_bytes} bytes", code="PACKAGE_TOO_LARGE")
        accepted = schema.accept(data, self.limits, self.settings.validation.submit_profile)
        pkg = accepted.package
        if accepted.warnings:
            log.warning("submission_warnings", codes=_warning_codes(accepted.warnings))
        if pkg.sender.organ_id != self.organ_id:
            raise RuleViolation(
                f"From/OrganId is {pkg.sender.organ_id}, but this node sends only for "
                f"{self.organ_id}", code="FROM_NOT_THIS_AGENCY", agency=pkg.sender.organ_id,
                element="From/OrganId")
        if pkg.signed:
            pkg = self._verified(data, self.me, self.policy)
            signed = data
        elif self.settings.signature.sign_unsigned_submissions:
            signed = self._sign(data)
        else:
            raise SignatureInvalid("the package is unsigned and this node does not sign "
                                   "submissions (signature.sign_unsigned_submissions)",
                                   code="SIG_MISSING", element="Signature")
        self.topology.check_size(signed)
        if isinstance(pkg, StatusPackage):
            result = self._submit_status(pkg, signed, _sha256(data))
        else:
            result = self._submit_document(pkg, signed, _sha256(data))
        self.wake()
        return result

    def _submit_document(self, pkg: DocumentPackage, signed: bytes,
                         digest: str) -> SubmitResult:
        recipients = _unique(o.organ_id for o in pkg.recipients)
        for organ_id in recipients:
            if organ_id not in self.directory:
                raise UnknownAgency(f"recipient {organ_id} is not in the agency directory",
                                    code="AGENCY_UNKNOWN", agency=organ_id, element="To/OrganId")
        document_id = pkg.document_id or ""
        op = pkg.business_doc_type
        with self.store.transaction() as txn:
            existing = txn.package_by_key("out", self.organ_id, document_id, op, digest)
            if existing is not None:
                log.info("submission_duplicate", package_id=existing.package_id,
                         document_id=document_id)
                return SubmitResult(existing.package_id, "edoc", document_id,
                                    existing.recipients, duplicate=True)
            related = (txn.latest_document("out", document_id, business_op=0)
                       if op else None)
            package_id = str(uuid.uuid4())
            row = txn.add_package(NewPackage(
                package_id=package_id, direction="out", kind="edoc", sender=self.organ_id,
                recipients=recipients, document_id=document_id, body=signed,
                sha256=_sha256(signed), dedupe_digest=digest, message_id=package_id,
                business_op=op, related_package=related.package_id if related else None,
                broker_user=self.broker_user))
            row = _inserted(row, package_id)
            for organ_id in recipients:
                txn.add_delivery(row, document_id, organ_id, "queued")
                txn.add_outbox(row, organ_id)
            txn.emit(Event("submitted", package_id, document_id, ",".join(recipients),
                           _sha256(signed), {"business_op": str(op)}))
        log.info("package_submitted", package_id=package_id, document_id=document_id,
                 recipients=len(recipients))
        return SubmitResult(package_id, "edoc", document_id, recipients)

    def _submit_status(self, pkg: StatusPackage, signed: bytes,
                       digest: str) -> SubmitResult:
        to = pkg.response_for.organ_id
        if to not in self.directory:
            raise UnknownAgency(f"status addressee {to} is not in the agency directory",
                                code="AGENCY_UNKNOWN", agency=to, element="ResponseFor/OrganId")
        with self.store.transaction() as txn:
            package_id = self._queue_status(txn, pkg.response_for.document_id, pkg.status_code,
                                            to, signed=signed, description=pkg.description,
                                            digest=digest)
        return SubmitResult(package_id, "status", pkg.response_for.document_id, (to,))

    def _queue_status(self, txn: Transaction, document_id: str, code: str, to: str, *,
                      signed: bytes, description: str | None, digest: str | None = None) -> str:
        """Store an outgoing signed status and queue it to ``to``; 13 also joins the history."""
        delivery = None
        side = state.side(code)
        if side == "sender":
            delivery = txn.delivery_for(document_id, to)
            if delivery is None:
                raise NotFound(f"no document {document_id} was sent to {to}",
                               code="DOCUMENT_NOT_SENT", agency=to)
        elif side == "recipient":
            if txn.latest_document("in", document_id, sender=to) is None:
                raise NotFound(f"no document {document_id} was received from {to}",
                               code="DOCUMENT_NOT_RECEIVED", agency=to)
        else:
            raise RuleViolation(f"status code {code} cannot be sent by this node",
                                code="STATUS_CODE_NOT_ALLOWED", element="StatusCode")
        package_id = str(uuid.uuid4())
        row = txn.add_package(NewPackage(
            package_id=package_id, direction="out", kind="status", sender=self.organ_id,
            recipients=(to,), document_id=document_id, body=signed, sha256=_sha256(signed),
            dedupe_digest=digest or _sha256(signed), message_id=package_id, status_code=code,
            description=description, broker_user=self.broker_user))
        row = _inserted(row, package_id)
        txn.add_outbox(row, to)
        if delivery is not None:
            self._advance(txn, delivery.id, state.on_status(delivery.state, code), code,
                          status_row=row, description=description)
        txn.emit(Event("status_sent", package_id, document_id, to, _sha256(signed),
                       {"code": code}))
        return package_id

    def set_status(self, document_id: str, code: str, *, description: str | None = None,
                   to: str | None = None) -> list[SubmitResult]:
        """Send a business status about a document: recipient codes go to its sender, 13 goes
        to every recipient (or ``to``). A repeat of an already sent code (except 05) is not
        sent again: the earlier package is returned with ``duplicate=True``."""
        if code in SENDER_CODES:
            targets = _unique(d.recipient for d in self.store.deliveries(document_id)
                              if to is None or d.recipient == to)
            if not targets:
                raise NotFound(f"no sent document {document_id}"
                               + (f" to {to}" if to else ""), code="DOCUMENT_NOT_SENT")
            source = self.store.packages(direction="out", kind="edoc", document_id=document_id)
        elif code in RECIPIENT_CODES:
            entries = [e for e in self.store.received_documents(document_id)
                       if to is None or e.sender == to]
            if not entries:
                raise NotFound(f"no received document {document_id}"
                               + (f" from {to}" if to else ""), code="DOCUMENT_NOT_RECEIVED")
            targets = _unique(e.sender for e in entries)
            source = [self.store.package(e.package_id) for e in entries]
        else:
            raise RuleViolation(f"status code {code} cannot be set here; use one of "
                                f"{', '.join(sorted(RECIPIENT_CODES | SENDER_CODES))}",
                                code="STATUS_CODE_NOT_ALLOWED", element="StatusCode")
        document = self._stored_document(source[-1])
        results = []
        for target in targets:
            with self.store.transaction() as txn:
                earlier = txn.sent_status(document_id, target, code)
                if earlier is not None and code not in REPEATABLE_CODES:
                    results.append(SubmitResult(earlier.package_id, "status", document_id,
                                                (target,), duplicate=True))
                    continue
                signed = self._signed_status(document, code, target, description)
                package_id = self._queue_status(txn, document_id, code, target,
                                                signed=signed, description=description)
            results.append(SubmitResult(package_id, "status", document_id, (target,)))
        self.wake()
        return results

    def _stored_document(self, record: PackageRecord) -> DocumentPackage:
        pkg = parse(self.store.body(record.package_id), self.limits)
        if not isinstance(pkg, DocumentPackage):
            raise NotFound(f"package {record.package_id} is not a document")
        return pkg

    # --- relay (Link thread) -----------------------------------------------------------------

    def fetch_outgoing(self, limit: int) -> list[OutgoingMessage]:
        """Up to ``limit`` pending outbox messages not already handed to the Link."""
        items = self.store.pending_outbox(limit, exclude=self._handed)
        self._handed.update(item.token for item in items)
        return [
            OutgoingMessage(
                token=item.token, message_id=item.message_id, routing_key=item.recipient,
                body=item.body, type=item.kind,
                headers={"edoc-from": item.sender, "edoc-to": item.recipient,
                         "edoc-document-id": item.document_id, "edoc-sha256": item.sha256})
            for item in items
        ]

    def on_confirmed(self, confirmations: list[Confirmation]) -> None:
        """Record broker outcomes: confirmed -> ``sent``; returned/too large -> ``failed``."""
        tokens = [c.token for c in confirmations]
        try:
            with self.store.transaction() as txn:
                targets = {t[0]: t for t in txn.outbox_targets(tokens)}
                for conf in confirmations:
                    target = targets.get(conf.token)
                    if target is None:
                        continue
                    _, kind, recipient, row, package_id = target
                    if conf.ok:
                        txn.finish_outbox(conf.token, "confirmed", None)
                    elif conf.retryable:
                        txn.finish_outbox(conf.token, "pending", conf.reason)
                        continue
                    else:
                        txn.finish_outbox(conf.token, "failed", conf.reason)
                    txn.emit(Event("published" if conf.ok else "publish_failed", package_id,
                                   None, recipient, None, {"reason": conf.reason or ""}))
                    if kind != "edoc":
                        continue
                    for delivery in txn.deliveries_of(row):
                        if delivery.recipient != recipient:
                            continue
                        new_state = state.on_published(delivery.state, conf.ok)
                        if new_state is not None:
                            reason = None if conf.ok else f"{conf.code}: {conf.reason}"
                            txn.set_delivery_state(delivery.id, new_state, status_code=None,
                                                   reason=reason)
                            txn.add_history(delivery.id, new_state, description=reason)
        finally:
            # Settled or not recorded: either way the Link no longer holds these tokens, and
            # rows still pending are fetched (and published) again.
            self._handed.difference_update(tokens)

    # --- receive (Link thread) ---------------------------------------------------------------

    def handle_batch(self, messages: list[IncomingMessage]) -> list[Outcome]:
        """Check, store (one transaction for the batch) and answer incoming messages."""
        received = [self._check(m) for m in messages]
        for item in received:
            self._prepare_reply(item)
        try:
            with self.store.transaction() as txn:
                for item in received:
                    if item.outcome is None:
                        self._store_received(txn, item)
        except TemporaryFailure as exc:
            log.warning("batch_store_failed", size=len(messages), error=str(exc))
            return [Outcome.RETRY] * len(messages)
        self.wake()
        return [item.outcome or Outcome.RETRY for item in received]

    def _check(self, message: IncomingMessage) -> _Received:
        """Phase 1: identity, size, schema, rules, signature. No store writes."""
        item = _Received(message, _sha256(message.body))
        user = message.user_id
        replayed = message.headers.get(REPLAYED_USER_HEADER)
        if user == self.broker_user and isinstance(replayed, str):
            user = replayed  # our own replay of a dead letter: judge the original publisher
        item.identified = self.directory.by_broker_user(user) if user else None
        try:
            if not user:
                raise SpoofedSender("the message has no user_id: the publisher is unknown",
                                    code="SENDER_NO_USER_ID")
            if len(message.body) > self.limits.max_bytes:
                raise PackageTooLarge(f"message of {len(message.body)} bytes exceeds the limit",
                                      code="PACKAGE_TOO_LARGE")
            accepted = schema.accept(message.body, self.limits, RECEIVED)
            pkg = item.claimed = accepted.package
            item.warnings = accepted.warnings
            claimed = pkg.sender.organ_id
            agency = self.directory.get(claimed)
            if agency.broker_user != user:
                raise SpoofedSender(
                    f"From/OrganId {claimed} but published by broker user {user!r}"
                    f" ({item.identified.organ_id if item.identified else 'unknown agency'})",
                    code="SENDER_SPOOFED", agency=claimed, element="From/OrganId")
            policy = self.status_policy if pkg.kind == "status" else self.policy
            if pkg.signed or policy.require_signature:
                pkg, signer = self._verified_signer(message.body, agency, policy)
                if signer:
                    item.extra["signer"] = signer
            if isinstance(pkg, DocumentPackage):
                if self.organ_id not in {o.organ_id for o in pkg.recipients}:
                    raise RuleViolation(f"the document is not addressed to {self.organ_id}",
                                        code="NOT_ADDRESSED_HERE", element="To/OrganId")
            elif pkg.response_for.organ_id != self.organ_id:
                raise RuleViolation(f"the status is addressed to {pkg.response_for.organ_id}",
                                    code="NOT_ADDRESSED_HERE", element="ResponseFor/OrganId")
            item.package = pkg
        except PackageRejected as exc:
            item.error = exc
        except TemporaryFailure as exc:
            log.warning("message_retry", message_id=message.message_id, error=str(exc))
            item.outcome = Outcome.RETRY
        return item

    def _prepare_reply(self, item: _Received) -> None:
        """Phase 2: sign the answer (01 for a new document, 02 for a rejected one) outside the
        transaction. A status never gets a status back (no loops)."""
        pkg = item.package
        try:
            if item.error is not None:
                if item.identified is None or item.message.type == "status":
                    return
                document_id = self._document_id_hint(item)
                reason = f"{item.error.code}: {item.error.message}"[:MAX_REASON_CHARS]
                item.reply_to = item.identified.organ_id
                item.reply = self._signed_status(
                    ResponseFor(organ_id=item.reply_to, document_id=document_id), "02",
                    item.reply_to, reason)
            elif isinstance(pkg, DocumentPackage):
                sender = pkg.sender.organ_id
                if self._is_duplicate_document(pkg, item):
                    return
                item.reply_to = sender
                item.reply = self._signed_status(pkg, "01", sender)
        except EdocAxisError as exc:
            log.error("reply_not_built", message_id=item.message.message_id, error=str(exc))
            item.reply = None

    def _document_id_hint(self, item: _Received) -> str:
        """The DocumentId a status 02 can name: the package's (or header's) when it belongs to
        the identified publisher, else the broker message id (a spoofed package's DocumentId
        names another agency, and a status about it would break the direction rule)."""
        pkg = item.claimed
        candidates = [pkg.document_id if isinstance(pkg, DocumentPackage) else None,
                      item.message.headers.get("edoc-document-id")]
        owner = item.identified.organ_id if item.identified else None
        for candidate in candidates:
            if (isinstance(candidate, str) and candidate
                    and document_id_sender(candidate) in (None, owner)):
                return candidate
        return item.message.message_id or "unknown"

    def _is_duplicate_document(self, pkg: DocumentPackage, item: _Received) -> bool:
        with self.store.snapshot() as view:
            return self._find_duplicate(view, pkg, item) is not None

    def _find_duplicate(self, txn: Reads, pkg: DocumentPackage,
                        item: _Received) -> PackageRecord | None:
        sender = pkg.sender.organ_id
        if item.message.message_id:
            found = txn.package_by_message("in", sender, item.message.message_id)
            if found is not None:
                return found
        return txn.package_by_key("in", sender, pkg.document_id or "", pkg.business_doc_type,
                                  item.sha256)

    def _store_received(self, txn: Transaction, item: _Received) -> None:
        """Phase 3, inside the batch transaction: one message's writes, isolated by a savepoint."""
        try:
            with txn.savepoint():
                if item.error is None and isinstance(item.package, DocumentPackage):
                    self._store_document(txn, item, item.package)
                elif item.error is None and isinstance(item.package, StatusPackage):
                    self._store_status(txn, item, item.package)
        except PackageRejected as exc:
            item.error = exc
        if item.error is not None:
            self._store_rejection(txn, item, item.error)
            item.outcome = Outcome.REJECT
        else:
            item.outcome = Outcome.ACK

    def _new_incoming(self, item: _Received, pkg: Package, document_id: str, *,
                      business_op: int = 0, related_package: str | None = None,
                      status_code: str | None = None,
                      description: str | None = None) -> NewPackage:
        message_id = item.message.message_id or f"sha256:{item.sha256}"
        recipients = ((self.organ_id,) if isinstance(pkg, StatusPackage)
                      else _unique(o.organ_id for o in pkg.recipients))
        return NewPackage(
            package_id=str(uuid.uuid4()), direction="in", kind=pkg.kind,
            sender=pkg.sender.organ_id, recipients=recipients, document_id=document_id,
            body=item.message.body, sha256=item.sha256, dedupe_digest=item.sha256,
            message_id=message_id, broker_user=item.message.user_id, business_op=business_op,
            related_package=related_package, status_code=status_code, description=description,
            warnings=tuple(f.to_dict() for f in item.warnings))

    def _store_document(self, txn: Transaction, item: _Received,
                        pkg: DocumentPackage) -> None:
        sender = pkg.sender.organ_id
        document_id = pkg.document_id or ""
        duplicate = self._find_duplicate(txn, pkg, item)
        row = None
        if duplicate is None:
            op = pkg.business_doc_type
            related = (txn.latest_document("in", document_id, sender=sender, business_op=0)
                       if op else None)
            record = self._new_incoming(item, pkg, document_id, business_op=op,
                                        related_package=related.package_id if related else None)
            row = txn.add_package(record)
        if row is None:
            # Stored before: answer again with the status 01 sent then.
            original = txn.sent_status(document_id, sender, "01")
            if original is not None:
                txn.add_outbox(original.id, sender)
            txn.emit(Event("duplicate_received", duplicate.package_id if duplicate else None,
                           document_id, sender, item.sha256))
            log.info("duplicate_received", message_id=item.message.message_id,
                     document_id=document_id, sender=sender)
            return
        txn.add_inbox(row, "edoc", sender, document_id)
        txn.emit(Event("received", record.package_id, document_id, sender, item.sha256,
                       {"signer": item.extra.get("signer"),
                        "warnings": _warning_codes(item.warnings)}))
        if item.reply is not None:
            self._queue_status(txn, document_id, "01", sender, signed=item.reply,
                               description=None)

    def _store_status(self, txn: Transaction, item: _Received, pkg: StatusPackage) -> None:
        sender = pkg.sender.organ_id
        document_id = pkg.response_for.document_id
        code = pkg.status_code
        message_id = item.message.message_id
        if message_id and txn.package_by_message("in", sender, message_id) is not None:
            return  # the same status message again: already recorded
        delivery = None
        if code in SENDER_CODES:
            if txn.latest_document("in", document_id, sender=sender) is None:
                raise RuleViolation(f"status {code} from {sender} about {document_id}, a "
                                    "document not received from it",
                                    code="STATUS_UNKNOWN_DOCUMENT", agency=sender)
        else:
            delivery = txn.delivery_for(document_id, sender)
            if delivery is None and code != "02":
                raise RuleViolation(f"status {code} from {sender} about {document_id}, a "
                                    "document not sent to it",
                                    code="STATUS_UNKNOWN_DOCUMENT", agency=sender)
        record = self._new_incoming(item, pkg, document_id, status_code=code,
                                    description=pkg.description)
        row = txn.add_package(record)
        if row is None:
            return
        txn.add_inbox(row, "status", sender, document_id)
        txn.emit(Event("status_received", record.package_id, document_id, sender, item.sha256,
                       {"code": code, "signer": item.extra.get("signer"),
                        "warnings": _warning_codes(item.warnings)}))
        if delivery is not None:
            step = state.on_status(delivery.state, code, txn.history_codes(delivery.id))
            if step.repeat:
                return  # an idempotent repeat: kept, but the history already has it
            self._advance(txn, delivery.id, step, code, status_row=row,
                          description=pkg.description)

    def _advance(self, txn: Transaction, delivery: int, step: state.Transition, code: str, *,
                 status_row: int, description: str | None) -> None:
        """Record a status in a delivery's history; move its state as the machine says."""
        txn.add_history(delivery, step.state, status_code=code, status_package=status_row,
                        description=description)
        if step.moves:
            txn.set_delivery_state(delivery, step.state, status_code=code, reason=description)

    def _store_rejection(self, txn: Transaction, item: _Received, error: EdocAxisError) -> None:
        pkg = item.claimed
        claimed = pkg.sender.organ_id if pkg is not None else None
        document_id = (pkg.document_id if isinstance(pkg, DocumentPackage)
                       else pkg.response_for.document_id if pkg is not None else None)
        txn.add_rejection(
            message_id=item.message.message_id, broker_user=item.message.user_id,
            claimed_sender=claimed,
            identified_sender=item.identified.organ_id if item.identified else None,
            document_id=document_id, code=error.code, reason=error.message,
            sha256=item.sha256, body=item.message.body)
        txn.emit(Event("rejected", None, document_id,
                       item.identified.organ_id if item.identified else None, item.sha256,
                       {"code": error.code}))
        log.warning("message_rejected", message_id=item.message.message_id, code=error.code,
                    reason=error.message, broker_user=item.message.user_id)
        if item.reply is not None and item.reply_to is not None:
            # 02 goes to the agency that owns the broker user, never to a claimed From.
            package_id = str(uuid.uuid4())
            row = txn.add_package(NewPackage(
                package_id=package_id, direction="out", kind="status", sender=self.organ_id,
                recipients=(item.reply_to,), document_id=self._document_id_hint(item),
                body=item.reply,
                sha256=_sha256(item.reply), dedupe_digest=_sha256(item.reply),
                message_id=package_id, status_code="02", description=error.code,
                broker_user=self.broker_user))
            if row is not None:
                txn.add_outbox(row, item.reply_to)
                txn.emit(Event("status_sent", package_id, self._document_id_hint(item),
                               item.reply_to, _sha256(item.reply), {"code": "02"}))

    def note_replayed(self, message_id: str) -> None:
        """Chain an operator's dead-letter replay (``edoc-axis dlq replay``) into the audit log."""
        self.audit.record(Event("replayed", None, None, None, None, {"message_id": message_id}))

    # --- running -----------------------------------------------------------------------------

    def link(self, url: str | None = None) -> Link:
        """The transport Link that consumes this agency's queue and relays its outbox."""
        broker = self.settings.broker
        link = Link(url or broker.url, self.topology, user_id=self.broker_user,
                    queue=self.topology.queue_for(self.organ_id),
                    handle_batch=self.handle_batch, fetch_outgoing=self.fetch_outgoing,
                    on_confirmed=self.on_confirmed, prefetch=broker.prefetch,
                    window=broker.publish_window, heartbeat=broker.heartbeat,
                    blocked_connection_timeout=broker.blocked_connection_timeout,
                    poll_interval=OUTBOX_POLL_SECONDS, name=f"edoc-axis node {self.organ_id}")
        self.wake = link.wake
        return link


class Runner:
    """Runs a node's Link in a thread until ``stop`` (used by ``edoc-axis run`` and tests)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.link = node.link()
        self._thread = threading.Thread(target=self.link.run, name=f"link-{node.organ_id}",
                                        daemon=True)

    def start(self) -> Runner:
        """Start the Link thread."""
        self._thread.start()
        log.info("node_started", organ_id=self.node.organ_id)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop consuming, wait briefly for confirms, close the connection, join the thread."""
        self.link.stop()
        self._thread.join(timeout)
        log.info("node_stopped", organ_id=self.node.organ_id,
                 outbox=self.node.store.outbox_counts()["pending"])


def data_file(path: Path) -> bytes:
    """Read a package file for submission (a clear error when it cannot be read)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror}", code="FILE_UNREADABLE") from exc
