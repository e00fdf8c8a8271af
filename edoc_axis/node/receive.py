"""Receive: a batch of broker messages checked, stored in one transaction and answered.

Per message, in three phases (the Link's thread calls ``handle_batch``):
1. checks that need no store: transport identity (broker ``user_id``) == the From agency's
   broker user, size, schema and rules under the ``received`` profile (harmless deviations are
   stored with the package as warnings), the signature by From with a directory-listed
   certificate, the addressee. The body is parsed and hashed once; what is checked before the
   signature is read from the tree (``ParsedPackage.claims``), and the one model from the
   signed content;
2. the answer the checks predict is signed outside the transaction: 01 for a new document, 02
   for a refusal (only to the agency that owns the broker user, never to a claimed From);
3. one transaction for the batch, a savepoint per message: dedupe, the package and its inbox
   row, a status's effect on its delivery, and the answer queued. When storing refuses a
   message the checks passed, the answer is signed again for that outcome: a 02, never the 01.
Outcomes are returned only after the commit, so the Link acks nothing that is not durable.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from edoc_axis.directory import Agency
from edoc_axis.edxml import schema
from edoc_axis.edxml.finding import Finding
from edoc_axis.edxml.identifier import document_id_sender
from edoc_axis.edxml.model import DocumentPackage, Package, StatusPackage, subject_and_notation
from edoc_axis.edxml.parsed import Claims
from edoc_axis.edxml.profile import RECEIVED
from edoc_axis.errors import (
    EdocAxisError,
    ErrorCode,
    PackageRejected,
    PackageTooLarge,
    RuleViolation,
    SpoofedSender,
    TemporaryFailure,
)
from edoc_axis.log import get_logger
from edoc_axis.node import state
from edoc_axis.node.context import Context, sha256, unique, warning_codes
from edoc_axis.node.receipt import Receipts, Reply, advance
from edoc_axis.node.state import SENDER_CODES
from edoc_axis.store.reads import Reads
from edoc_axis.store.records import Event, NewPackage, PackageRecord
from edoc_axis.store.transaction import Transaction
from edoc_axis.transport.message import IncomingMessage, Outcome, publisher_of

log = get_logger(__name__)


@dataclass(slots=True)
class _Received:
    """One incoming message on its way through the phases of a batch."""

    message: IncomingMessage
    sha256: str = ""  # of the body; set once the checks end, whatever their outcome
    identified: Agency | None = None
    package: Package | None = None  # verified: set only when every check passed
    claimed: Claims | None = None  # what the bytes say, before identity and signature
    error: EdocAxisError | None = None
    outcome: Outcome | None = None
    reply: Reply | None = None  # the signed 01 (stored document) or 02 (refusal)
    extra: dict[str, str] = field(default_factory=dict)
    warnings: tuple[Finding, ...] = ()  # what the ``received`` profile let through


class Receiver:
    """Takes in the messages of this agency's queue."""

    def __init__(self, ctx: Context, receipts: Receipts) -> None:
        self.ctx = ctx
        self.receipts = receipts

    def handle_batch(self, messages: list[IncomingMessage]) -> list[Outcome]:
        """Check, store (one transaction for the batch) and answer incoming messages."""
        received = [self._check(m) for m in messages]
        stored_before = self._stored_before(received)
        for item in received:
            item.reply = self._draft_reply(item, stored_before=id(item) in stored_before)
        try:
            with self.ctx.store.transaction() as txn:
                for item in received:
                    if item.outcome is None:
                        self._store_received(txn, item)
        except TemporaryFailure as exc:
            log.warning("batch_store_failed", size=len(messages), error=str(exc))
            return [Outcome.RETRY] * len(messages)
        self.ctx.wake()
        return [item.outcome or Outcome.RETRY for item in received]

    # --- phase 1: checks ---------------------------------------------------------------------

    def _check(self, message: IncomingMessage) -> _Received:
        """Identity, size, schema, rules, signature. No store writes."""
        ctx = self.ctx
        item = _Received(message)
        # Our own replay of a dead letter is judged by its original publisher, as the broker
        # recorded it; a message nobody can attribute (no user_id) is anonymous.
        user = publisher_of(message, ctx.broker_user)
        item.identified = ctx.directory.by_broker_user(user) if user else None
        try:
            if not user:
                raise SpoofedSender("the message has no user_id: the publisher is unknown",
                                    code=ErrorCode.SENDER_NO_USER_ID)
            if len(message.body) > ctx.limits.max_bytes:
                raise PackageTooLarge(f"message of {len(message.body)} bytes exceeds the limit",
                                      code=ErrorCode.PACKAGE_TOO_LARGE)
            accepted = schema.accept(message.body, ctx.limits, RECEIVED)  # the one parse
            parsed = accepted.parsed
            item.sha256 = parsed.sha256
            claims = item.claimed = parsed.claims
            item.warnings = accepted.warnings
            claimed = claims.sender
            agency = ctx.directory.get(claimed)
            if agency.broker_user != user:
                raise SpoofedSender(
                    f"From/OrganId {claimed} but published by broker user {user!r}"
                    f" ({item.identified.organ_id if item.identified else 'unknown agency'})",
                    code=ErrorCode.SENDER_SPOOFED, agency=claimed, element="From/OrganId")
            policy = ctx.status_policy if claims.kind == "status" else ctx.policy
            pkg: Package
            if claims.signed or policy.require_signature:
                # The hop's one model, read from what the signature covers.
                pkg, signer = ctx.verified(parsed, agency, policy)
                if signer:
                    item.extra["signer"] = signer
            else:
                pkg = parsed.model  # unsigned, and the policy allows it: nothing is signed
            if isinstance(pkg, DocumentPackage):
                if ctx.organ_id not in {o.organ_id for o in pkg.recipients}:
                    raise RuleViolation(f"the document is not addressed to {ctx.organ_id}",
                                        code=ErrorCode.NOT_ADDRESSED_HERE, element="To/OrganId")
            elif pkg.response_for.organ_id != ctx.organ_id:
                raise RuleViolation(f"the status is addressed to {pkg.response_for.organ_id}",
                                    code=ErrorCode.NOT_ADDRESSED_HERE,
                                    element="ResponseFor/OrganId")
            item.package = pkg
        except PackageRejected as exc:
            item.error = exc
        except TemporaryFailure as exc:
            log.warning("message_retry", message_id=message.message_id, error=str(exc))
            item.outcome = Outcome.RETRY
        if not item.sha256:  # refused before it was read: the bytes are still named by hash
            item.sha256 = sha256(message.body)
        return item

    # --- phase 2: the answer, signed outside the transaction ---------------------------------

    def _draft_reply(self, item: _Received, *, stored_before: bool = False) -> Reply | None:
        """The signed answer to the outcome known so far: 02 for a refused message, 01 for a
        document not ``stored_before``. A status never gets a status back (no loops)."""
        pkg = item.package
        try:
            if item.error is not None:
                if item.identified is None or item.message.type == "status":
                    return None
                return self.receipts.refused(item.identified.organ_id,
                                             self._document_id_hint(item), item.error)
            if isinstance(pkg, DocumentPackage) and not stored_before:
                return self.receipts.arrived(pkg)
        except EdocAxisError as exc:
            log.error("reply_not_built", message_id=item.message.message_id, error=str(exc))
        return None

    def _document_id_hint(self, item: _Received) -> str:
        """The DocumentId a status 02 can name: the package's (or header's) when it belongs to
        the identified publisher, else the broker message id (a spoofed package's DocumentId
        names another agency, and a status about it would break the direction rule)."""
        claims = item.claimed
        candidates = [claims.document_id if claims is not None and claims.kind == "edoc"
                      else None, item.message.headers.get("edoc-document-id")]
        owner = item.identified.organ_id if item.identified else None
        for candidate in candidates:
            if (isinstance(candidate, str) and candidate
                    and document_id_sender(candidate) in (None, owner)):
                return candidate
        return item.message.message_id or "unknown"

    def _stored_before(self, received: list[_Received]) -> set[int]:
        """The items (by ``id``) whose document is already stored, looked up in one snapshot
        for the batch: those get no fresh 01 signed (phase 3 queues the one sent then)."""
        documents = [item for item in received
                     if item.error is None and isinstance(item.package, DocumentPackage)]
        if not documents:
            return set()
        with self.ctx.store.snapshot() as view:
            return {id(item) for item in documents
                    if isinstance(item.package, DocumentPackage)
                    and self._find_duplicate(view, item.package, item) is not None}

    def _find_duplicate(self, txn: Reads, pkg: DocumentPackage,
                        item: _Received) -> PackageRecord | None:
        sender = pkg.sender.organ_id
        if item.message.message_id:
            found = txn.package_by_message("in", sender, item.message.message_id)
            if found is not None:
                return found
        return txn.package_by_key("in", sender, pkg.document_id or "", pkg.business_doc_type,
                                  item.sha256)

    # --- phase 3: inside the batch transaction -----------------------------------------------

    def _store_received(self, txn: Transaction, item: _Received) -> None:
        """One message's writes, isolated by a savepoint."""
        try:
            with txn.savepoint():
                if item.error is None and isinstance(item.package, DocumentPackage):
                    self._store_document(txn, item, item.package)
                elif item.error is None and isinstance(item.package, StatusPackage):
                    self._store_status(txn, item, item.package)
        except PackageRejected as exc:
            item.error = exc
            if isinstance(item.package, DocumentPackage):
                # Refused only now, after the checks passed: the 01 signed in phase 2 answers
                # an outcome that did not happen. (A status still gets no status back.)
                item.reply = self._draft_reply(item)
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
        recipients = ((self.ctx.organ_id,) if isinstance(pkg, StatusPackage)
                      else unique(o.organ_id for o in pkg.recipients))
        subject, notation = subject_and_notation(pkg)
        return NewPackage(
            package_id=str(uuid.uuid4()), direction="in", kind=pkg.kind,
            sender=pkg.sender.organ_id, recipients=recipients, document_id=document_id,
            body=item.message.body, sha256=item.sha256, dedupe_digest=item.sha256,
            message_id=message_id, broker_user=item.message.user_id, business_op=business_op,
            related_package=related_package, status_code=status_code, description=description,
            warnings=tuple(f.to_dict() for f in item.warnings), subject=subject,
            notation=notation)

    def _store_document(self, txn: Transaction, item: _Received, pkg: DocumentPackage) -> None:
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
                        "warnings": warning_codes(item.warnings)}))
        if item.reply is not None and item.reply.code == "01":
            self.receipts.queue_status(txn, document_id, "01", sender, signed=item.reply.signed,
                                       description=None, notation=subject_and_notation(pkg)[1])

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
                                    code=ErrorCode.STATUS_UNKNOWN_DOCUMENT, agency=sender)
        else:
            delivery = txn.delivery_for(document_id, sender)
            if delivery is None and code != "02":
                raise RuleViolation(f"status {code} from {sender} about {document_id}, a "
                                    "document not sent to it",
                                    code=ErrorCode.STATUS_UNKNOWN_DOCUMENT, agency=sender)
        record = self._new_incoming(item, pkg, document_id, status_code=code,
                                    description=pkg.description)
        row = txn.add_package(record)
        if row is None:
            return
        txn.add_inbox(row, "status", sender, document_id)
        txn.emit(Event("status_received", record.package_id, document_id, sender, item.sha256,
                       {"code": code, "signer": item.extra.get("signer"),
                        "warnings": warning_codes(item.warnings)}))
        if delivery is not None:
            step = state.on_status(delivery.state, code, txn.history_codes(delivery.id))
            if step.repeat:
                return  # an idempotent repeat: kept, but the history already has it
            advance(txn, delivery.id, step, code, status_row=row, description=pkg.description)

    def _store_rejection(self, txn: Transaction, item: _Received, error: EdocAxisError) -> None:
        claims = item.claimed
        claimed = claims.sender if claims is not None else None
        document_id = claims.document_id if claims is not None else None
        identified = item.identified.organ_id if item.identified else None
        txn.add_rejection(
            message_id=item.message.message_id, broker_user=item.message.user_id,
            claimed_sender=claimed, identified_sender=identified, document_id=document_id,
            code=error.code, reason=error.message, sha256=item.sha256, body=item.message.body)
        txn.emit(Event("rejected", None, document_id, identified, item.sha256,
                       {"code": error.code}))
        log.warning("message_rejected", message_id=item.message.message_id, code=error.code,
                    reason=error.message, broker_user=item.message.user_id)
        if item.reply is not None and item.reply.code == "02":
            # 02 goes to the agency that owns the broker user, never to a claimed From.
            self.receipts.queue_refusal(txn, item.reply, error.code)
