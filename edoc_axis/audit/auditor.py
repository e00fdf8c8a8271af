"""The node's auditor: verify, trace, export, bundle and archive the audit chain in its store.

Wires the pure pieces (``audit`` chain logic, ``evidence`` bundles and archives,
``signature.verify`` for stored receipts) to the store's ``AuditLog``. ``edoc-axis audit``
commands call only this module.

Stored receipts are judged as of the time their entry was recorded (``signature.verify``'s
``as_of``): a certificate that has since expired, or was revoked later, does not void a receipt
signed while it was good. Checkpoints are judged at their own time by ``audit.trusted_anchors``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from edoc_axis.audit import chain as audit
from edoc_axis.audit import evidence
from edoc_axis.audit.chain import AuditEntry, Checkpoint, Code, Kind
from edoc_axis.audit.check import (
    CertificateCheck,
    ChainReport,
    Problem,
    trusted_anchors,
    verify_chain,
)
from edoc_axis.audit.log import INCOMING_KINDS, OUTGOING_KINDS, AuditLog, SigningIdentity
from edoc_axis.config import Settings
from edoc_axis.errors import EdocAxisError, NotFound
from edoc_axis.store import Store
from edoc_axis.store.audit_rows import ArchiveRecord
from edoc_axis.trust.certificate import load_certificates
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.policy import SignaturePolicy
from edoc_axis.trust.signature import verify

Progress = Callable[[int], None]
SIGNED_KINDS = OUTGOING_KINDS | INCOMING_KINDS


def check_signed_bytes(
    entry: AuditEntry, body: bytes, trust: TrustStore, policy: SignaturePolicy, organ_id: str
) -> str | None:
    """Why ``body`` is not a valid signature by the party ``entry`` names (None when it is).

    The signer must be this node (``organ_id``) for what it sent and the counterpart for what
    it received; when the entry recorded a certificate fingerprint, it must be that one.
    """
    if hashlib.sha256(body).hexdigest() != entry.content_sha256:
        return "the stored signed bytes do not hash to the entry's content_sha256"
    expected = organ_id if entry.kind in OUTGOING_KINDS else entry.counterpart
    try:
        result = verify(body, trust, policy, as_of=audit.parse_time(entry.at))
    except EdocAxisError as exc:
        return f"signature does not hold ({exc.code}: {exc.message})"
    if not result.signed:
        return None if not policy.require_signature else "the stored package is not signed"
    if result.signer_organ_id != expected:
        return (f"signed by {result.signer_organ_id} (certificate {result.fingerprint}), "
                f"not by {expected}")
    if entry.signer and result.fingerprint != entry.signer:
        return (f"signed by certificate {result.fingerprint}, the entry recorded "
                f"{entry.signer}")
    return None


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
        self.receipt_policy = replace(settings.signature, crl_required=False)
        self.status_policy = self.receipt_policy.for_status()

    @classmethod
    def open(cls, settings: Settings, trust: TrustStore,
             identity: SigningIdentity | None = None) -> Auditor:
        """An auditor of the settings' store (``identity``, the agency key, only to seal)."""
        return cls(settings, Store(settings.store_path), trust, identity)

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    # --- verification ------------------------------------------------------------------------

    def receipt_check(self, entry: AuditEntry) -> str | None:
        """The ``ReceiptVerifier`` of the live log: stored bytes exist and their signature
        holds for the party the entry names."""
        if entry.content_sha256 is None:
            return None
        if entry.kind not in SIGNED_KINDS and entry.kind != Kind.REJECTED:
            return None
        body = self.log.signed_bytes(entry.content_sha256)
        if body is None:
            return (f"the signed bytes (sha256 {entry.content_sha256[:16]}...) are not in the "
                    "store: deleted or altered")
        if entry.kind == Kind.REJECTED:
            return None  # refused bytes are kept as evidence; their signature failed by design
        policy = self.status_policy if "status" in entry.kind else self.receipt_policy
        return check_signed_bytes(entry, body, self.trust, policy, self.organ_id)

    def checkpoint_trust(self) -> CertificateCheck:
        """Checkpoints must be signed by a certificate of this agency chaining to the anchors."""
        return trusted_anchors(self.trust, self.organ_id)

    def verify(self, first: int | None = None, last: int | None = None, *,
               receipts: bool = True, progress: Progress | None = None) -> LogReport:
        """Recompute the chain (archives first when verifying from the start), check every
        checkpoint and, with ``receipts``, every stored signed package."""
        report = LogReport(ChainReport())
        if first is None:
            self._verify_archives(report)
        start_seq, prev = self.log.start_point(first)
        with self.store.snapshot():
            report.chain = verify_chain(
                self.log.entries(start_seq, last), start_prev_hash=prev,
                start_seq=start_seq, trust=self.checkpoint_trust(),
                checkpoints=self.log.checkpoints(start_seq, last),
                receipt_verifier=self.receipt_check if receipts else None,
                progress=progress, policy=self.policy if last is None else None)
        return report

    def _verify_archives(self, report: LogReport) -> None:
        prev, start = self.log.genesis, 1
        for record in self.log.archives():
            info: dict[str, Any] = {"file": record.path, "first_seq": record.first_seq,
                                    "last_seq": record.last_seq, "checked": False}
            report.archives.append(info)
            if record.first_seq != start:
                report.problems.append(Problem(record.first_seq, Code.DELETED.value, (
                    f"archive {record.path} starts at seq {record.first_seq}, expected {start}")))
            path = Path(record.path)
            if path.is_file():
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != record.sha256:
                    report.problems.append(Problem(record.last_seq, Code.EDITED.value, (
                        f"archive file {path} was altered (its SHA-256 is not the recorded one)")))
                else:
                    result = evidence.verify_archive(
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
                           code="AUDIT_NO_DOCUMENT")
        return events

    def export(self, since: dt.date | dt.datetime, until: dt.date | dt.datetime, fmt: str,
               out: IO[str], progress: Progress | None = None) -> int:
        """Stream entries with ``since <= at < until + 1 day`` (dates) as jsonl or csv."""
        lo = audit.format_time(_day_start(since))
        end = _day_start(until)
        hi = audit.format_time(end + dt.timedelta(days=1) if isinstance(until, dt.date)
                               and not isinstance(until, dt.datetime) else end)
        count = 0
        with self.store.snapshot():
            entries = self.log.entries_between(lo, hi)
            if fmt == "csv":
                writer = csv.writer(out)
                rows: Iterator[list[str]] = audit.csv_rows(entries)
                writer.writerow(next(rows))
                for row in rows:
                    writer.writerow(row)
                    count += 1
                    if progress is not None:
                        progress(1)
            else:
                for line in audit.to_jsonl(entries):
                    out.write(line)
                    count += 1
                    if progress is not None:
                        progress(1)
        return count

    def export_count(self, since: dt.date | dt.datetime, until: dt.date | dt.datetime) -> int:
        """How many entries ``export`` will write (for a progress bar)."""
        end = _day_start(until) + dt.timedelta(days=1)
        return self.log.count_between(audit.format_time(_day_start(since)),
                                      audit.format_time(end))

    # --- evidence ----------------------------------------------------------------------------

    def seal(self) -> Checkpoint | None:
        """Sign the head now (needs the identity)."""
        if self.identity is None:
            raise NotFound("sealing needs the node's signing key", code="AUDIT_NO_KEY")
        return self.log.seal_now()

    def bundle(self, document_id: str) -> bytes:
        """An evidence bundle of one document (sealing the chain first when needed)."""
        involved = self.log.document_entries(document_id)
        if not involved:
            raise NotFound(f"no audit entry about document {document_id!r}",
                           code="AUDIT_NO_DOCUMENT")
        seqs = self.log.checkpoint_seqs()
        if not seqs or seqs[-1] < involved[-1].seq:
            self.seal()
            seqs = self.log.checkpoint_seqs()
        ranges = evidence.bundle_ranges([e.seq for e in involved], seqs)
        entries: list[AuditEntry] = []
        checkpoints: list[Checkpoint] = []
        for first, last in ranges:
            entries.extend(self.log.entries(first, last))
            checkpoints.extend(self.log.checkpoints(first, last))
        packages: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        for e in involved:
            if e.content_sha256 and e.kind in SIGNED_KINDS and e.content_sha256 not in seen:
                body = self.log.signed_bytes(e.content_sha256)
                if body is not None:
                    seen.add(e.content_sha256)
                    packages.append((f"{e.seq:010d}-{e.kind}.xml", body))
        certs = list(self.identity.chain) if self.identity is not None else []
        return evidence.build_bundle(document_id, packages, entries, checkpoints, certs,
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
            evidence.write_archive(
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


def _bundle_parts(data: bytes) -> tuple[str, list[bytes]]:
    """The node OrganId and extra certificates of a bundle ("" and [] when unreadable: the
    full check in ``evidence.verify_bundle`` then names what is wrong)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            extra = [zf.read(n) for n in zf.namelist() if n.startswith("certs/")]
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError):
        return "", []
    organ_id = manifest.get("organ_id") if isinstance(manifest, dict) else None
    return (organ_id if isinstance(organ_id, str) else ""), extra


def verify_bundle_file(data: bytes, anchor_pems: list[bytes]) -> evidence.BundleReport:
    """Check an evidence bundle with trust anchors only (no node, no database): the chain
    segments and checkpoints, and every signed package's signer."""
    organ_id, extra = _bundle_parts(data)
    store = TrustStore.from_pem(anchor_pems, intermediates=extra)
    policy = SignaturePolicy(require_signature=True, crl_required=False)

    def check(entry: AuditEntry, body: bytes) -> str | None:
        if entry.kind not in SIGNED_KINDS:
            return None
        return check_signed_bytes(entry, body, store, policy, organ_id)

    return evidence.verify_bundle(data, anchor_pems, check)


def anchors_from(paths: list[Path]) -> list[bytes]:
    """PEM contents of CA files (each must hold at least one certificate)."""
    out = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NotFound(f"cannot read {path}: {exc.strerror}", code="FILE_UNREADABLE") from exc
        load_certificates(data)
        out.append(data)
    return out
