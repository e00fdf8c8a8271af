"""Submit: a package this agency sends, checked, signed by policy and stored for the relay.

Limits, schema and rules under the submit profile, From must be this agency, the signature
policy (verify ours, or sign an unsigned submission), every recipient in the directory, then
ONE transaction: the package, a delivery per recipient (``queued``) and an outbox row per
recipient. A status submitted ready-made goes through ``Receipts.queue_status``.
The package is read once (here, or by the DMS gateway, which hands the ``ParsedPackage`` on):
its tree is judged, verified or signed; its one model comes from the signed content.
"""

from __future__ import annotations

import uuid

from edoc_axis.edxml import schema
from edoc_axis.edxml.model import DocumentPackage, Package, StatusPackage, subject_and_notation
from edoc_axis.edxml.parsed import ParsedPackage
from edoc_axis.errors import (
    ErrorCode,
    PackageTooLarge,
    RuleViolation,
    SignatureInvalid,
    UnknownAgency,
)
from edoc_axis.log import get_logger
from edoc_axis.node.context import Context, SubmitResult, inserted, sha256, unique, warning_codes
from edoc_axis.node.receipt import Receipts
from edoc_axis.store.records import Event, NewPackage

log = get_logger(__name__)


class Submitter:
    """Takes this agency's packages in (thread-safe: each call is its own transaction)."""

    def __init__(self, ctx: Context, receipts: Receipts) -> None:
        self.ctx = ctx
        self.receipts = receipts

    def submit(self, data: bytes | ParsedPackage) -> SubmitResult:
        """Validate, sign (by policy) and store a package for sending; wake the relay.

        ``data`` is the bytes, or the package already read once by the caller (the DMS
        gateway): it is judged, verified or signed, and stored without being parsed again.
        A second submission of the same package (sender, DocumentId, business operation,
        content digest) is recognised and answered with the original package id.
        """
        ctx = self.ctx
        size = data.body.size if isinstance(data, ParsedPackage) else len(data)
        if size > ctx.limits.max_bytes:
            raise PackageTooLarge(f"package of {size} bytes exceeds the limit of "
                                  f"{ctx.limits.max_bytes} bytes", code=ErrorCode.PACKAGE_TOO_LARGE)
        accepted = schema.accept(data, ctx.limits, ctx.settings.validation.submit_profile)
        parsed = accepted.parsed
        if accepted.warnings:
            log.warning("submission_warnings", codes=warning_codes(accepted.warnings))
        claims = parsed.claims
        if claims.sender != ctx.organ_id:
            raise RuleViolation(
                f"From/OrganId is {claims.sender}, but this node sends only for "
                f"{ctx.organ_id}", code=ErrorCode.FROM_NOT_THIS_AGENCY, agency=claims.sender,
                element="From/OrganId")
        pkg: Package
        if claims.signed:
            # The one model of this hop is read from what the signature covers.
            pkg = ctx.verified(parsed, ctx.me, ctx.policy)[0]
            signed, signed_digest = parsed.data, parsed.sha256
        elif ctx.settings.signature.sign_unsigned_submissions:
            pkg = parsed.model  # read before the tree is lent to the signer
            signed = ctx.sign(parsed)
            signed_digest = sha256(signed)
        else:
            raise SignatureInvalid("the package is unsigned and this node does not sign "
                                   "submissions (signature.sign_unsigned_submissions)",
                                   code=ErrorCode.SIG_MISSING, element="Signature")
        if isinstance(pkg, StatusPackage):
            result = self._submit_status(pkg, signed, signed_digest, parsed.sha256)
        else:
            result = self._submit_document(pkg, signed, signed_digest, parsed.sha256)
        ctx.wake()
        return result

    def _submit_document(self, pkg: DocumentPackage, signed: bytes, signed_digest: str,
                         digest: str) -> SubmitResult:
        ctx = self.ctx
        recipients = unique(o.organ_id for o in pkg.recipients)
        for organ_id in recipients:
            if organ_id not in ctx.directory:
                raise UnknownAgency(f"recipient {organ_id} is not in the agency directory",
                                    code=ErrorCode.AGENCY_UNKNOWN, agency=organ_id,
                                    element="To/OrganId")
        document_id = pkg.document_id or ""
        op = pkg.business_doc_type
        with ctx.store.transaction() as txn:
            existing = txn.package_by_key("out", ctx.organ_id, document_id, op, digest)
            if existing is not None:
                log.info("submission_duplicate", package_id=existing.package_id,
                         document_id=document_id)
                return SubmitResult(existing.package_id, "edoc", document_id,
                                    existing.recipients, duplicate=True)
            related = (txn.latest_document("out", document_id, business_op=0)
                       if op else None)
            package_id = str(uuid.uuid4())
            subject, notation = subject_and_notation(pkg)
            row = txn.add_package(NewPackage(
                package_id=package_id, direction="out", kind="edoc", sender=ctx.organ_id,
                recipients=recipients, document_id=document_id, body=signed,
                sha256=signed_digest, dedupe_digest=digest, message_id=package_id,
                business_op=op, related_package=related.package_id if related else None,
                broker_user=ctx.broker_user, subject=subject, notation=notation))
            row = inserted(row, package_id)
            for organ_id in recipients:
                txn.add_delivery(row, document_id, organ_id, "queued")
                txn.add_outbox(row, organ_id)
            txn.emit(Event("submitted", package_id, document_id, ",".join(recipients),
                           signed_digest, {"business_op": str(op)}))
        log.info("package_submitted", package_id=package_id, document_id=document_id,
                 recipients=len(recipients))
        return SubmitResult(package_id, "edoc", document_id, recipients)

    def _submit_status(self, pkg: StatusPackage, signed: bytes, signed_digest: str,
                       digest: str) -> SubmitResult:
        to = pkg.response_for.organ_id
        if to not in self.ctx.directory:
            raise UnknownAgency(f"status addressee {to} is not in the agency directory",
                                code=ErrorCode.AGENCY_UNKNOWN, agency=to,
                                element="ResponseFor/OrganId")
        with self.ctx.store.transaction() as txn:
            package_id = self.receipts.queue_status(
                txn, pkg.response_for.document_id, pkg.status_code, to, signed=signed,
                description=pkg.description, digest=digest, notation=pkg.response_for.code,
                signed_digest=signed_digest)
        return SubmitResult(package_id, "status", pkg.response_for.document_id, (to,))
