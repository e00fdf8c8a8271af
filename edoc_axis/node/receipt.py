"""Receipts: the status packages this node signs and sends, and what they do to a delivery.

- the automatic answers to a received message: 01 (stored) or 02 (refused, with a machine
  reason code), signed outside the batch transaction and queued inside it;
- ``set_status``: a clerk's business status (recipient codes 02-06, 15, 16 to the sender; the
  sender's 13 to every recipient), once per code except the repeatable 05;
- ``queue_status``: one signed status stored and queued to its addressee (also for a status a
  DMS submits ready-made); a 13 also joins the delivery's history.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from edoc_axis.edxml.model import DocumentPackage, ResponseFor, subject_and_notation
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.status import new_status
from edoc_axis.errors import EdocAxisError, ErrorCode, NotFound, RuleViolation
from edoc_axis.node import state
from edoc_axis.node.context import Context, SubmitResult, inserted, sha256, unique
from edoc_axis.node.state import RECIPIENT_CODES, REPEATABLE_CODES, SENDER_CODES
from edoc_axis.store.records import Event, NewPackage, PackageRecord
from edoc_axis.store.transaction import Transaction

MAX_REASON_CHARS = 500


@dataclass(frozen=True, slots=True)
class Reply:
    """The signed answer to one received message: status ``code`` 01 or 02 to ``to``."""

    code: str
    to: str
    document_id: str
    signed: bytes


def advance(txn: Transaction, delivery: int, step: state.Transition, code: str, *,
            status_row: int, description: str | None) -> None:
    """Record a status in a delivery's history; move its state as the machine says."""
    txn.add_history(delivery, step.state, status_code=code, status_package=status_row,
                    description=description)
    if step.moves:
        txn.set_delivery_state(delivery, step.state, status_code=code, reason=description)


class Receipts:
    """Builds, signs and queues this node's status packages."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def signed_status(self, document: DocumentPackage | ResponseFor, code: str, to: str,
                      description: str | None = None) -> bytes:
        """Status ``code`` about ``document`` to ``to``, built and signed by this agency."""
        status = new_status(self.ctx.me_org, document, code, description=description,
                            to_organ_id=to)
        return self.ctx.sign(status)  # signed as a tree: the node never parses its own bytes

    def arrived(self, document: DocumentPackage) -> Reply:
        """The signed 01 answering a document just received from its sender."""
        sender = document.sender.organ_id
        return Reply("01", sender, document.document_id or "",
                     self.signed_status(document, "01", sender))

    def refused(self, to: str, document_id: str, error: EdocAxisError) -> Reply:
        """The signed 02 telling ``to`` (the agency that published it) why a message about
        ``document_id`` was refused: the error's code and message."""
        reason = f"{error.code}: {error.message}"[:MAX_REASON_CHARS]
        return Reply("02", to, document_id,
                     self.signed_status(ResponseFor(organ_id=to, document_id=document_id),
                                        "02", to, reason))

    def queue_refusal(self, txn: Transaction, reply: Reply, error_code: str) -> None:
        """Store a 02 answer and queue it (it joins no delivery: the message was never one)."""
        if reply.code != "02":
            raise ValueError(f"a refusal is answered with 02, not {reply.code}")
        package_id = str(uuid.uuid4())
        digest = sha256(reply.signed)
        row = txn.add_package(NewPackage(
            package_id=package_id, direction="out", kind="status", sender=self.ctx.organ_id,
            recipients=(reply.to,), document_id=reply.document_id, body=reply.signed,
            sha256=digest, dedupe_digest=digest, message_id=package_id, status_code="02",
            description=error_code, broker_user=self.ctx.broker_user))
        if row is not None:
            txn.add_outbox(row, reply.to)
            txn.emit(Event("status_sent", package_id, reply.document_id, reply.to, digest,
                           {"code": "02"}))

    def queue_status(self, txn: Transaction, document_id: str, code: str, to: str, *,
                     signed: bytes, description: str | None, digest: str | None = None,
                     notation: str | None = None, signed_digest: str | None = None) -> str:
        """Store an outgoing signed status and queue it to ``to``; 13 also joins the history.
        ``notation`` is the number/notation of the document it is about (kept for listings;
        None: unknown, read from the body when first listed). ``signed_digest`` is the SHA-256
        of ``signed`` when the caller already has it (hashed here otherwise)."""
        delivery = None
        side = state.side(code)
        if side == "sender":
            delivery = txn.delivery_for(document_id, to)
            if delivery is None:
                raise NotFound(f"no document {document_id} was sent to {to}",
                               code=ErrorCode.DOCUMENT_NOT_SENT, agency=to)
        elif side == "recipient":
            if txn.latest_document("in", document_id, sender=to) is None:
                raise NotFound(f"no document {document_id} was received from {to}",
                               code=ErrorCode.DOCUMENT_NOT_RECEIVED, agency=to)
        else:
            raise RuleViolation(f"status code {code} cannot be sent by this node",
                                code=ErrorCode.STATUS_CODE_NOT_ALLOWED, element="StatusCode")
        package_id = str(uuid.uuid4())
        signed_digest = signed_digest or sha256(signed)
        row = txn.add_package(NewPackage(
            package_id=package_id, direction="out", kind="status", sender=self.ctx.organ_id,
            recipients=(to,), document_id=document_id, body=signed, sha256=signed_digest,
            dedupe_digest=digest or signed_digest, message_id=package_id, status_code=code,
            description=description, broker_user=self.ctx.broker_user,
            subject=None if notation is None else description or "", notation=notation))
        row = inserted(row, package_id)
        txn.add_outbox(row, to)
        if delivery is not None:
            advance(txn, delivery.id, state.on_status(delivery.state, code), code,
                    status_row=row, description=description)
        txn.emit(Event("status_sent", package_id, document_id, to, signed_digest,
                       {"code": code}))
        return package_id

    def set_status(self, document_id: str, code: str, *, description: str | None = None,
                   to: str | None = None) -> list[SubmitResult]:
        """Send a business status about a document: recipient codes go to its sender, 13 goes
        to every recipient (or ``to``). A repeat of an already sent code (except 05) is not
        sent again: the earlier package is returned with ``duplicate=True``."""
        store = self.ctx.store
        if code in SENDER_CODES:
            targets = unique(d.recipient for d in store.deliveries(document_id)
                             if to is None or d.recipient == to)
            if not targets:
                raise NotFound(f"no sent document {document_id}"
                               + (f" to {to}" if to else ""), code=ErrorCode.DOCUMENT_NOT_SENT)
            source = store.packages(direction="out", kind="edoc", document_id=document_id)
        elif code in RECIPIENT_CODES:
            entries = [e for e in store.received_documents(document_id)
                       if to is None or e.sender == to]
            if not entries:
                raise NotFound(f"no received document {document_id}"
                               + (f" from {to}" if to else ""),
                               code=ErrorCode.DOCUMENT_NOT_RECEIVED)
            targets = unique(e.sender for e in entries)
            source = [store.package(e.package_id) for e in entries]
        else:
            raise RuleViolation(f"status code {code} cannot be set here; use one of "
                                f"{', '.join(sorted(RECIPIENT_CODES | SENDER_CODES))}",
                                code=ErrorCode.STATUS_CODE_NOT_ALLOWED, element="StatusCode")
        document = self._stored_document(source[-1])
        results = []
        for target in targets:
            with store.transaction() as txn:
                earlier = txn.sent_status(document_id, target, code)
                if earlier is not None and code not in REPEATABLE_CODES:
                    results.append(SubmitResult(earlier.package_id, "status", document_id,
                                                (target,), duplicate=True))
                    continue
                signed = self.signed_status(document, code, target, description)
                package_id = self.queue_status(txn, document_id, code, target,
                                               signed=signed, description=description,
                                               notation=subject_and_notation(document)[1])
            results.append(SubmitResult(package_id, "status", document_id, (target,)))
        self.ctx.wake()
        return results

    def _stored_document(self, record: PackageRecord) -> DocumentPackage:
        """The model of a stored document (the one parse of a ``set_status``: the store keeps
        no column for the promulgation date a status names)."""
        pkg = parse(self.ctx.store.body(record.package_id), self.ctx.limits)
        if not isinstance(pkg, DocumentPackage):
            raise NotFound(f"package {record.package_id} is not a document")
        return pkg
