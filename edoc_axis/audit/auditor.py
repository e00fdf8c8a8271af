"""The node's auditor: verify, trace, export, bundle and archive the audit chain in its store.

Wires the pure pieces (chain, checkpoint, verification, receipts, bundles, archives, export)
to the store's ``AuditLog``. ``edoc-axis audit`` commands call this module (and
``audit.bundle`` to check a bundle elsewhere). Stored receipts are judged as of their entry's
time (``audit.receipt``); checkpoints at their own time by ``checkpoint.trusted_anchors``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from edoc_axis.audit.archive import verify_archive, write_archive
from edoc_axis.audit.bundle import build_bundle, bundle_ranges
from edoc_axis.audit.chain import SIGNED_KINDS, AuditEntry, format_time
from edoc_axis.audit.checkpoint import CertificateCheck, Checkpoint, trusted_anchors
from edoc_axis.audit.export import write_export
from edoc_axis.audit.log import AuditLog, SigningIdentity
from edoc_axis.audit.receipt import StoredReceipts
from edoc_axis.audit.verification import ChainReport, Problem, verify_chain
from edoc_axis.config.settings import Settings
from edoc_axis.errors import ErrorCode, NotFound
from edoc_axis.store import Store
from edoc_axis.store.audit_rows import ArchiveRecord
from edoc_axis.trust.chain import TrustStore

Progress = Callable[[int], None]
PartProgress = Callable[[int, int], None]  # (done, total)
PROGRESS_EVERY = 250  # entries between two progress reports (verify, bundle)


@dataclass(slots=True)
class LogReport:
    """``audit verify``: the live chain's report plus what the archives said."""

    chain: ChainReport
    archives: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the chain, every checkpoint, receipt and archive hold."""
        return self.chain.ok and not self.problems

    @property
    def first(self) -> Problem | None:
        """The first problem: archive-level ones come before the live chain's."""
        return self.problems[0] if self.problems else self.chain.first

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data: dict[str, Any] = self.chain.to_dict()
        data["ok"] = self.ok
        data["archives"] = self.archives
        data["problems"] = [p.to_dict() for p in self.problems] + data["problems"]
        data["problem_count"] = len(self.problems) + self.chain.problem_count
        return data


def _day_start(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


class Auditor:
    """Audit operations on one node's store (``identity`` needed only to seal)."""

    def __init__(self, settings: Settings, store: Store, trust: TrustStore,
                 identity: SigningIdentity | None = None) -> None:
        self.settings = settings
        self.organ_id = settings.organ_id
        self.store = store
        self.trust = trust
        self.identity = identity
        self.log = AuditLog.of_settings(settings, store, identity)
        self.policy = self.log.policy
        self.receipts = StoredReceipts(self.log, trust, settings.signature)

    @classmethod
    def open(cls, settings: Settings, trust: TrustStore,
             identity: SigningIdentity | None = None, *, writable: bool = False) -> Auditor:
        """An auditor of the settings' store (``identity``, the agency key, only to seal).

        The store must exist (``STORE_NOT_FOUND`` otherwise: an auditor never creates one) and
        is opened read-only unless ``writable`` (to archive) or given ``identity`` (to seal)."""
        writes = writable or identity is not None
        return cls(settings, Store(settings.store_path, create=False, read_only=not writes),
                   trust, identity)

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    # --- verification ------------------------------------------------------------------------

    def checkpoint_trust(self) -> CertificateCheck:
        """Checkpoints must be signed by a certificate of this agency chaining to the anchors."""
        return trusted_anchors(self.trust, self.organ_id)

    def verify(self, first: int | None = None, last: int | None = None, *,
               receipts: bool = True, progress: Progress | None = None,
               now: dt.datetime | None = None) -> LogReport:
        """Recompute the chain (archives first when verifying from the start), check every
        checkpoint and, with ``receipts``, every stored signed package. Up to the newest entry,
        the unsealed tail is judged by the policy as of ``now`` (default: the current time)."""
        report = LogReport(ChainReport())
        if first is None:
            self._verify_archives(report)
        start_seq, prev = self.log.start_point(first)
        with self.store.snapshot():
            report.chain = verify_chain(
                self.log.entries(start_seq, last), start_prev_hash=prev,
                start_seq=start_seq, trust=self.checkpoint_trust(),
                checkpoints=self.log.checkpoints(start_seq, last),
                receipt_verifier=self.receipts if receipts else None,
                progress=progress, progress_every=PROGRESS_EVERY,
                policy=self.policy if last is None else None, now=now)
        return report

    def _verify_archives(self, report: LogReport) -> None:
        prev, start = self.log.genesis, 1
        for record in self.log.archives():
            info: dict[str, Any] = {"file": record.path, "first_seq": record.first_seq,
                                    "last_seq": record.last_seq, "checked": False}
            report.archives.append(info)
            if record.first_seq != start:
                report.problems.append(Problem(record.first_seq, ErrorCode.AUDIT_DELETED, (
                    f"archive {record.path} starts at seq {record.first_seq}, expected {start}")))
            path = Path(record.path)
            if path.is_file():
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != record.sha256:
                    report.problems.append(Problem(record.last_seq, ErrorCode.AUDIT_EDITED, (
                        f"archive file {path} was altered (its SHA-256 is not the recorded one)")))
                else:
                    result = verify_archive(
                        data, trust=self.checkpoint_trust(), start_prev_hash=prev,
                        start_seq=start)
                    info["checked"] = True
                    report.problems.extend(result.all_problems())
            else:
                info["missing"] = True
            prev, start = record.head_hash, record.last_seq + 1

    # --- reading -----------------------------------------------------------------------------

    def trail(self, document_id: str) -> list[dict[str, Any]]:
        """The document's timeline: every live entry about it, oldest first, readable."""
        events = []
        for e in self.log.document_entries(document_id):
            detail = json.loads(e.detail) if e.detail and e.detail.startswith("{") else {}
            events.append({
                "seq": e.seq, "at": e.at, "event": e.kind, "package_id": e.package_id,
                "counterpart": e.counterpart, "status": detail.get("code"),
                "signer": e.signer, "sha256": e.content_sha256, "detail": detail,
            })
        if not events:
            raise NotFound(f"no audit entry about document {document_id!r}",
                           code=ErrorCode.AUDIT_NO_DOCUMENT)
        return events

    def export(self, since: dt.date | dt.datetime, until: dt.date | dt.datetime, fmt: str,
               out: IO[str], progress: Progress | None = None) -> int:
        """Stream entries with ``since <= at < until + 1 day`` (dates) as jsonl or csv."""
        lo = format_time(_day_start(since))
        end = _day_start(until)
        hi = format_time(end + dt.timedelta(days=1) if isinstance(until, dt.date)
                               and not isinstance(until, dt.datetime) else end)
        with self.store.snapshot():
            return write_export(self.log.entries_between(lo, hi), fmt, out, progress)

    def export_count(self, since: dt.date | dt.datetime, until: dt.date | dt.datetime) -> int:
        """How many entries ``export`` will write (for a progress bar)."""
        end = _day_start(until) + dt.timedelta(days=1)
        return self.log.count_between(format_time(_day_start(since)),
                                      format_time(end))

    # --- evidence ----------------------------------------------------------------------------

    def seal(self) -> Checkpoint | None:
        """Sign the head now (needs the identity)."""
        if self.identity is None:
            raise NotFound("sealing needs the node's signing key", code=ErrorCode.AUDIT_NO_KEY)
        return self.log.seal_now()

    def bundle(self, document_id: str, progress: PartProgress | None = None) -> bytes:
        """An evidence bundle of one document (sealing the chain first when needed);
        ``progress(done, total)`` counts the chain entries read into it."""
        involved = self.log.document_entries(document_id)
        if not involved:
            raise NotFound(f"no audit entry about document {document_id!r}",
                           code=ErrorCode.AUDIT_NO_DOCUMENT)
        seqs = self.log.checkpoint_seqs()
        if not seqs or seqs[-1] < involved[-1].seq:
            self.seal()
            seqs = self.log.checkpoint_seqs()
        ranges = bundle_ranges([e.seq for e in involved], seqs)
        entries: list[AuditEntry] = []
        checkpoints: list[Checkpoint] = []
        total = sum(last - first + 1 for first, last in ranges)
        for first, last in ranges:
            for e in self.log.entries(first, last):
                entries.append(e)
                if progress is not None and len(entries) % PROGRESS_EVERY == 0:
                    progress(len(entries), total)
            checkpoints.extend(self.log.checkpoints(first, last))
        if progress is not None:
            progress(len(entries), total)
        packages: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        for e in involved:
            if e.content_sha256 and e.kind in SIGNED_KINDS and e.content_sha256 not in seen:
                body = self.log.signed_bytes(e.content_sha256)
                if body is not None:
                    seen.add(e.content_sha256)
                    packages.append((f"{e.seq:010d}-{e.kind}.xml", body))
        certs = list(self.identity.chain) if self.identity is not None else []
        return build_bundle(document_id, packages, entries, checkpoints, certs,
                                     organ_id=self.organ_id)

    def archive(self, before: dt.date | dt.datetime, out_dir: Path,
                progress: Progress | None = None) -> ArchiveRecord | None:
        """Move entries older than ``before`` (up to the last checkpoint among them) into a
        sealed archive file in ``out_dir``; None when nothing can be archived."""
        end = self.log.archive_end(_day_start(before))
        span = self.log.span()
        if end is None or span is None:
            return None
        first = span[0]
        out_dir.mkdir(parents=True, exist_ok=True)
        path = (out_dir / f"audit-{self.organ_id}-{first:012d}-{end:012d}.zip").resolve()
        with path.open("wb") as sink:
            write_archive(
                sink, _counted(self.log.entries(first, end), progress),
                self.log.checkpoints(first, end), organ_id=self.organ_id)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        head = next(self.log.entries(end, end))
        record = ArchiveRecord(first, end, head.entry_hash, digest, str(path))
        self.log.move_to_archive(record)
        return record


def _counted(entries: Iterator[AuditEntry], progress: Progress | None) -> Iterator[AuditEntry]:
    for e in entries:
        if progress is not None:
            progress(1)
        yield e
