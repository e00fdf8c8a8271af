"""Receiving a large package as chunks: staged on disk, recorded, assembled, then received.

Each chunk message (transport.chunk) is checked (a broker user, a readable header, the size
limit, its own SHA-256), written to ``<data>/transfers/<key>/<index>`` and fsynced, recorded in
the store (``transfer_chunk``) in one transaction for the batch, and only then acked. A chunk
recorded before is acked again (harmless); one whose bytes do not match its hash is refused
(dead-lettered, ``CHUNK_CORRUPT``). When a transfer's last chunk is recorded the chunks are
assembled and the whole SHA-256 checked, and the package goes through the normal receive path as
the one message it would have been: that chunk's outcome is the package's (ack once stored and
answered 01; a temporary failure requeues the chunk, which assembles again on redelivery). A
partial transfer is never answered 01. Transfers idle past ``broker.transfer_timeout`` are
deleted (files and rows) with an audit event and a signed 02 ``TRANSFER_ABANDONED`` to the
publishing agency about the DocumentId the chunks named (a corrupt chunk not sent again ends
so); chunks that do not make the package their headers name are answered 02
``TRANSFER_CORRUPT`` at once. A status's chunks get no status back. Runs in the Link's thread.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edoc_axis.edxml.identifier import document_id_sender
from edoc_axis.errors import EdocAxisError, ErrorCode, PackageRejected, TemporaryFailure
from edoc_axis.log import get_logger
from edoc_axis.node.context import Context
from edoc_axis.node.receipt import Receipts, Reply
from edoc_axis.store.reads import Reads
from edoc_axis.store.records import Event
from edoc_axis.store.transfers import ChunkRow
from edoc_axis.transport.chunk import CHUNK_HEADERS, CHUNK_TYPE, INNER_TYPE, ChunkHeader
from edoc_axis.transport.message import IncomingMessage, Outcome, publisher_of

log = get_logger(__name__)

TRANSFERS_DIRNAME = "transfers"
SWEEP_EVERY_SECONDS = 60.0
Handler = Callable[[list[IncomingMessage]], list[Outcome]]


@dataclass(slots=True)
class _Chunk:
    """One chunk message of a batch on its way to the store."""

    position: int  # in the batch
    message: IncomingMessage
    user: str
    header: ChunkHeader


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ChunkReceiver:
    """Stages chunk messages and hands assembled packages to the normal receive path."""

    def __init__(self, ctx: Context, receipts: Receipts, *, timeout: float) -> None:
        self.ctx = ctx
        self.receipts = receipts
        self.root = ctx.settings.data_dir / TRANSFERS_DIRNAME
        self.timeout = timeout
        self._swept = 0.0

    def folder(self, user: str, transfer: str) -> Path:
        """The staging folder of one transfer (named by a hash: ids never become paths)."""
        key = hashlib.sha256(f"{user}\x00{transfer}".encode()).hexdigest()[:40]
        return self.root / key

    def handle_batch(self, messages: list[IncomingMessage], receive: Handler) -> list[Outcome]:
        """Outcomes for a batch: chunks staged (and completed transfers received through
        ``receive``), other messages handed to ``receive`` as they are."""
        outcomes: list[Outcome | None] = [None] * len(messages)
        chunks: list[_Chunk] = []
        for position, message in enumerate(messages):
            if message.type != CHUNK_TYPE:
                continue
            chunk = self._check(position, message)
            if isinstance(chunk, Outcome):
                outcomes[position] = chunk
            else:
                chunks.append(chunk)
        completed = self._record(chunks, outcomes)
        plain = [(i, m) for i, m in enumerate(messages) if m.type != CHUNK_TYPE]
        assembled: list[tuple[int, _Chunk, IncomingMessage]] = []
        for chunk, rows in completed:
            whole = self._assemble(chunk, rows)
            if isinstance(whole, Outcome):
                outcomes[chunk.position] = whole
            else:
                assembled.append((chunk.position, chunk, whole))
        inner = [m for _, m in plain] + [m for _, _, m in assembled]
        results = receive(inner) if inner else []
        for (position, _), outcome in zip(plain, results, strict=False):
            outcomes[position] = outcome
        for (position, chunk, _), outcome in zip(assembled, results[len(plain):], strict=True):
            outcomes[position] = outcome
            if outcome is not Outcome.RETRY:
                self._forget(chunk.user, chunk.header.transfer)
        self._maybe_sweep()
        return [o or Outcome.RETRY for o in outcomes]

    # --- one chunk ---------------------------------------------------------------------------

    def _document_id(self, user: str, message: IncomingMessage) -> str | None:
        """The DocumentId a 02 about this transfer may name: the chunk headers', when the
        package is a document of the agency that owns the broker user."""
        agency = self.ctx.directory.by_broker_user(user)
        value = message.headers.get("edoc-document-id")
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if (agency is None or not isinstance(value, str) or not value
                or message.headers.get(INNER_TYPE) not in ("edoc", b"edoc")
                or document_id_sender(value) not in (None, agency.organ_id)):
            return None
        return value

    def _reply_02(self, user: str, document_id: str | None, code: ErrorCode,
                  reason: str) -> Reply | None:
        """A signed 02 to the agency of ``user`` about ``document_id`` (None: no answer)."""
        agency = self.ctx.directory.by_broker_user(user)
        if agency is None or document_id is None:
            return None
        try:
            return self.receipts.refused(agency.organ_id, document_id,
                                         PackageRejected(reason, code=code))
        except EdocAxisError as exc:
            log.error("reply_not_built", document_id=document_id, error=str(exc))
            return None

    def _refuse(self, message: IncomingMessage, code: ErrorCode, reason: str,
                reply: Reply | None = None) -> Outcome:
        log.warning("chunk_refused", message_id=message.message_id, code=code, reason=reason,
                    broker_user=message.user_id)
        try:
            with self.ctx.store.transaction() as txn:
                txn.emit(Event("chunk_refused", None, None, None,
                               hashlib.sha256(message.body).hexdigest(),
                               {"code": code, "message_id": message.message_id or "",
                                "broker_user": message.user_id or "", "reason": reason}))
                if reply is not None:
                    self.receipts.queue_refusal(txn, reply, code)
        except TemporaryFailure:
            return Outcome.RETRY
        return Outcome.REJECT

    def _check(self, position: int, message: IncomingMessage) -> _Chunk | Outcome:
        # A replayed dead letter is judged by its original publisher (as receive does).
        user = publisher_of(message, self.ctx.broker_user)
        if not user:
            return self._refuse(message, ErrorCode.SENDER_NO_USER_ID, "a chunk with no user_id")
        try:
            header = ChunkHeader.read(message.headers)
        except ValueError as exc:
            return self._refuse(message, ErrorCode.CHUNK_MALFORMED, str(exc))
        if header.total_size > self.ctx.limits.max_bytes:
            return self._refuse(message, ErrorCode.PACKAGE_TOO_LARGE,
                                f"a transfer of {header.total_size} bytes exceeds the limit")
        if hashlib.sha256(message.body).hexdigest() != header.sha256:
            return self._refuse(message, ErrorCode.CHUNK_CORRUPT,
                                f"chunk {header.index} of {header.transfer} does not match "
                                "its SHA-256")
        return _Chunk(position, message, user, header)

    def _stage(self, chunk: _Chunk) -> None:
        folder = self.folder(chunk.user, chunk.header.transfer)
        target = folder / str(chunk.header.index)
        if target.exists() and target.stat().st_size == len(chunk.message.body):
            return
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f"{chunk.header.index}.tmp"
        with temporary.open("wb") as out:
            out.write(chunk.message.body)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(target)
        _fsync_dir(folder)

    def _record(self, chunks: list[_Chunk],
                outcomes: list[Outcome | None]) -> list[tuple[_Chunk, list[ChunkRow]]]:
        """Stage and record the batch's chunks (one transaction), ack them; the chunks that
        complete their transfer come back (their outcome is the assembled package's)."""
        if not chunks:
            return []
        try:
            with self.ctx.store.snapshot() as view:
                done = {id(c) for c in chunks if self._already_received(view, c)}
            for chunk in chunks:
                if id(chunk) in done:
                    outcomes[chunk.position] = Outcome.ACK
                else:
                    self._stage(chunk)
            chunks = [c for c in chunks if id(c) not in done]
            complete: dict[tuple[str, str], tuple[_Chunk, list[ChunkRow]]] = {}
            with self.ctx.store.transaction() as txn:
                for chunk in chunks:
                    h = chunk.header
                    txn.transfers.record(chunk.user, h.transfer, ChunkRow(
                        h.index, h.count, h.sha256, h.total_size, h.total_sha256,
                        self._document_id(chunk.user, chunk.message)), time.time())
                    outcomes[chunk.position] = Outcome.ACK
                    rows = txn.transfers.chunks(chunk.user, h.transfer)
                    if len(rows) == h.count:
                        complete[(chunk.user, h.transfer)] = (chunk, rows)
        except (OSError, TemporaryFailure) as exc:
            log.warning("chunks_not_recorded", size=len(chunks), error=str(exc))
            for chunk in chunks:
                outcomes[chunk.position] = Outcome.RETRY
            return []
        for chunk, _ in complete.values():
            outcomes[chunk.position] = None
        return list(complete.values())

    def _already_received(self, view: Reads, chunk: _Chunk) -> bool:
        """A chunk of a package already stored (redelivered after the assembly): ack it."""
        agency = self.ctx.directory.by_broker_user(chunk.user)
        if agency is None:
            return False
        return view.package_by_message("in", agency.organ_id, chunk.header.transfer) is not None

    # --- the whole package -------------------------------------------------------------------

    def _assemble(self, last: _Chunk, rows: list[ChunkRow]) -> IncomingMessage | Outcome:
        h = last.header
        folder = self.folder(last.user, h.transfer)
        # Assembled on disk, each staged chunk checked against its recorded hash on the way,
        # then read once: one copy of the package in memory, as a single message would be.
        whole = folder / "assembled"
        digest = hashlib.sha256()
        with whole.open("wb") as out:
            for row in rows:
                data = (folder / str(row.index)).read_bytes()
                if hashlib.sha256(data).hexdigest() != row.sha256:
                    self._forget(last.user, h.transfer)
                    return self._refuse(last.message, ErrorCode.CHUNK_CORRUPT,
                                        f"staged chunk {row.index} of {h.transfer} changed on "
                                        "disk")
                digest.update(data)
                out.write(data)
        del data
        size = whole.stat().st_size
        if len(rows) != h.count or size != h.total_size or digest.hexdigest() != h.total_sha256:
            self._forget(last.user, h.transfer)
            reason = (f"the {len(rows)} chunks of {h.transfer} do not make the package their "
                      "headers name (size or SHA-256)")
            return self._refuse(last.message, ErrorCode.TRANSFER_CORRUPT, reason, self._reply_02(
                last.user, self._document_id(last.user, last.message),
                ErrorCode.TRANSFER_CORRUPT, reason))
        body = whole.read_bytes()
        whole.unlink()
        message = last.message
        headers = {k: v for k, v in message.headers.items() if k not in CHUNK_HEADERS}
        return IncomingMessage(
            body=body, message_id=h.transfer, user_id=message.user_id, type=h.inner_type,
            headers=headers, redelivered=message.redelivered,
            delivery_count=message.delivery_count, routing_key=message.routing_key)

    def _forget(self, user: str, transfer: str) -> None:
        try:
            with self.ctx.store.transaction() as txn:
                txn.transfers.forget(user, transfer)
        except TemporaryFailure as exc:  # the sweep deletes them later
            log.warning("transfer_not_forgotten", transfer=transfer, error=str(exc))
            return
        shutil.rmtree(self.folder(user, transfer), ignore_errors=True)

    # --- abandoned transfers -----------------------------------------------------------------

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now - self._swept >= SWEEP_EVERY_SECONDS:
            self._swept = now
            self.sweep()

    def sweep(self, now: float | None = None) -> list[str]:
        """Delete transfers idle for ``timeout`` seconds (rows, then files), each with an
        audit event; returns their transfer ids."""
        before = (now if now is not None else time.time()) - self.timeout
        abandoned: list[tuple[str, str]] = []
        try:
            with self.ctx.store.snapshot() as view:
                idle = view.transfers.idle_since(before)
                replies = {}
                for user, transfer in idle:
                    rows = view.transfers.chunks(user, transfer)
                    replies[(user, transfer)] = self._reply_02(
                        user, rows[0].document_id if rows else None,
                        ErrorCode.TRANSFER_ABANDONED,
                        f"the transfer {transfer} got {len(rows)} of "
                        f"{rows[0].count if rows else 0} chunks and none for "
                        f"{self.timeout:.0f} s: send the package again")
            with self.ctx.store.transaction() as txn:
                for user, transfer in txn.transfers.idle_since(before):
                    rows = txn.transfers.chunks(user, transfer)
                    reply = replies.get((user, transfer))
                    if reply is not None:
                        self.receipts.queue_refusal(txn, reply, ErrorCode.TRANSFER_ABANDONED)
                    agency = self.ctx.directory.by_broker_user(user)
                    txn.transfers.forget(user, transfer)
                    txn.emit(Event("transfer_abandoned", None, None,
                                   agency.organ_id if agency else None,
                                   rows[0].total_sha256 if rows else None,
                                   {"code": ErrorCode.TRANSFER_ABANDONED, "transfer": transfer,
                                    "broker_user": user,
                                    "chunks": f"{len(rows)}/{rows[0].count if rows else 0}"}))
                    log.warning("transfer_abandoned", transfer=transfer, broker_user=user,
                                chunks=len(rows))
                    abandoned.append((user, transfer))
        except TemporaryFailure as exc:
            log.warning("transfer_sweep_failed", error=str(exc))
            return []
        for user, transfer in abandoned:
            shutil.rmtree(self.folder(user, transfer), ignore_errors=True)
        return [transfer for _, transfer in abandoned]
