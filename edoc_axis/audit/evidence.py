"""Evidence that leaves the node: bundles for one document, and archive files of old entries.

Both are zip files of JSON Lines verified with ``auditcheck.verify_chain`` and a trust anchor only,
on a machine with no access to the node's database.

Evidence bundle (``edoc-axis/evidence-bundle/1``)::

    manifest.json        document id, OrganId of the node, the packages (name, sha256, size),
                         the chain segments included
    packages/<name>      each signed package or receipt, byte for byte
    entries.jsonl        chain segments: for each entry about the document, every entry from it
                         up to the first checkpoint at or after it (overlapping runs merged)
    checkpoints.jsonl    every checkpoint inside those segments (each segment ends on one)
    certs/<sha256>.pem   extra certificates (intermediate CAs) for validating signers

Why segments: an entry's hash commits to its ``prev_hash`` and fields, each later entry commits to
the one before, and the checkpoint at the segment's end is signed by the agency key. So a
segment needs no earlier entries to be verified: any change inside it breaks the signed head.
This is the simplest sound design; its cost is that a segment also shows the metadata (kinds,
ids, counterparts, hashes — never contents) of other documents' events between the document's
event and the next checkpoint, at most one checkpoint interval of them.

Archive file (``edoc-axis/audit-archive/1``): ``entries.jsonl`` and ``checkpoints.jsonl`` of seq
``first..last`` plus ``manifest.json``. An archive must end on a checkpoint, whose agency-key
signature over the head hash therefore signs the whole file's chain; verification of the next
archive (or the live log) continues from its ``head_hash``. The live log records each archive
as an ``archived`` entry whose ``content_sha256`` is the archive file's SHA-256.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from edoc_axis.audit.chain import (
    AuditEntry,
    Checkpoint,
    checkpoints_from_jsonl,
    entries_from_jsonl,
    format_time,
    to_jsonl,
)
from edoc_axis.audit.check import ChainReport, Problem, trusted_anchors, verify_chain
from edoc_axis.errors import EdocAxisError
from edoc_axis.trust.certificate import fingerprint
from edoc_axis.trust.chain import TrustStore

BUNDLE_FORMAT = "edoc-axis/evidence-bundle/1"
ARCHIVE_FORMAT = "edoc-axis/audit-archive/1"
MAX_MEMBERS = 10_000
MAX_BUNDLE_BYTES = 1 << 30  # uncompressed total a bundle may claim
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")

BundleReceiptVerifier = Callable[[AuditEntry, bytes], str | None]
"""Check one signed package of a bundle (e.g. ``signature.verify``); return why it fails."""


def _error(message: str, code: str) -> EdocAxisError:
    return EdocAxisError(message, code=code)


def bundle_ranges(involved: Iterable[int], checkpoint_seqs: Sequence[int]) -> list[tuple[int, int]]:
    """The seq ranges a bundle must carry: each involved seq up to the next checkpoint, merged.

    ``checkpoint_seqs`` ascending. Raises ``AUDIT_NOT_SEALED`` when an involved entry comes
    after the last checkpoint (seal the chain first, then build the bundle).
    """
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(involved)):
        at = bisect.bisect_left(checkpoint_seqs, seq)
        if at == len(checkpoint_seqs):
            raise _error(
                f"entry {seq} is not covered by a checkpoint yet; seal the chain first",
                "AUDIT_NOT_SEALED",
            )
        end = checkpoint_seqs[at]
        if ranges and seq <= ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
        else:
            ranges.append((seq, end))
    return ranges


def build_bundle(
    document_id: str,
    packages: Sequence[tuple[str, bytes]],
    entries: Iterable[AuditEntry],
    checkpoints: Iterable[Checkpoint],
    certs: Iterable[x509.Certificate] = (),
    *,
    organ_id: str,
    created_at: dt.datetime | None = None,
) -> bytes:
    """A zip evidence bundle (layout in the module docstring).

    ``entries``: every entry of the ``bundle_ranges`` (ascending seq); ``checkpoints``: every
    checkpoint with a seq inside them; ``packages``: (file name, exact signed bytes).
    """
    entry_list = list(entries)
    checkpoint_list = list(checkpoints)
    seen: set[str] = set()
    described = []
    for name, data in packages:
        if not _SAFE_NAME.fullmatch(name) or name in seen:
            raise _error(f"unusable or duplicate package file name {name!r}", "AUDIT_BUNDLE_NAME")
        seen.add(name)
        described.append(
            {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        )
    manifest = {
        "format": BUNDLE_FORMAT, "document_id": document_id, "organ_id": organ_id,
        "created_at": format_time(created_at), "packages": described,
        "segments": [list(r) for r in _segments_of(entry_list)],
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
        zf.writestr("entries.jsonl", "".join(to_jsonl(entry_list)))
        zf.writestr("checkpoints.jsonl", "".join(to_jsonl(checkpoint_list)))
        for name, data in packages:
            zf.writestr(f"packages/{name}", data)
        for cert in certs:
            zf.writestr(f"certs/{fingerprint(cert)}.pem", cert.public_bytes(Encoding.PEM))
    return out.getvalue()


def _segments_of(entries: Sequence[AuditEntry]) -> list[tuple[int, int]]:
    segments: list[tuple[int, int]] = []
    for e in entries:
        if segments and e.seq == segments[-1][1] + 1:
            segments[-1] = (segments[-1][0], e.seq)
        else:
            segments.append((e.seq, e.seq))
    return segments


@dataclass(slots=True)
class BundleReport:
    """What ``verify_bundle`` found; ``ok`` only with no problem."""

    document_id: str | None = None
    organ_id: str | None = None
    entries: int = 0
    checkpoints: int = 0
    packages: list[dict[str, Any]] = field(default_factory=list)
    events: list[AuditEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the bundle holds completely."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, including the document's timeline."""
        return {
            "ok": self.ok, "document_id": self.document_id, "organ_id": self.organ_id,
            "entries": self.entries, "checkpoints": self.checkpoints, "packages": self.packages,
            "events": [e.to_dict() for e in self.events],
            "problems": [p.to_dict() for p in self.problems], "warnings": self.warnings,
        }


def _open_zip(data: bytes | IO[bytes]) -> zipfile.ZipFile:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _error(f"not a readable zip file ({exc})", "AUDIT_BUNDLE_MALFORMED") from exc
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS or sum(i.file_size for i in infos) > MAX_BUNDLE_BYTES:
        raise _error("the zip file is absurdly large", "AUDIT_BUNDLE_MALFORMED")
    return zf


def _read(zf: zipfile.ZipFile, name: str) -> bytes:
    try:
        return zf.read(name)
    except KeyError as exc:
        raise _error(f"the file has no {name}", "AUDIT_BUNDLE_MALFORMED") from exc
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _error(f"{name} is damaged ({exc})", "AUDIT_BUNDLE_MALFORMED") from exc


def _manifest(zf: zipfile.ZipFile, expected_format: str) -> dict[str, Any]:
    try:
        manifest = json.loads(_read(zf, "manifest.json"))
    except ValueError as exc:
        raise _error(f"manifest.json is not JSON ({exc})", "AUDIT_BUNDLE_MALFORMED") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != expected_format:
        raise _error(f"not an {expected_format} file", "AUDIT_BUNDLE_MALFORMED")
    return manifest


def verify_bundle(
    data: bytes,
    trust_anchor_pems: Iterable[bytes],
    receipt_verifier: BundleReceiptVerifier | None = None,
) -> BundleReport:
    """Check a bundle with nothing but trust anchors (PEM contents of CA certificates).

    Holds when: each chain segment recomputes and ends on a checkpoint whose signature verifies
    with a certificate chaining to an anchor and binding the node's OrganId; every package's
    SHA-256 is the ``content_sha256`` of an entry about the document inside a sealed segment;
    and ``receipt_verifier`` (if given) accepts each package's signature.
    """
    report = BundleReport()
    try:
        _verify_bundle(data, list(trust_anchor_pems), receipt_verifier, report)
    except EdocAxisError as exc:
        report.problems.append(Problem(None, exc.code, exc.message))
    return report


def _verify_bundle(
    data: bytes,
    anchors: list[bytes],
    receipt_verifier: BundleReceiptVerifier | None,
    report: BundleReport,
) -> None:
    zf = _open_zip(data)
    manifest = _manifest(zf, BUNDLE_FORMAT)
    document_id, organ_id = manifest.get("document_id"), manifest.get("organ_id")
    if not isinstance(document_id, str) or not isinstance(organ_id, str):
        raise _error("manifest lacks document_id/organ_id", "AUDIT_BUNDLE_MALFORMED")
    report.document_id, report.organ_id = document_id, organ_id
    extra = [_read(zf, n) for n in zf.namelist() if n.startswith("certs/")]
    store = TrustStore.from_pem(anchors, intermediates=extra)
    check = trusted_anchors(store, organ_id)
    entries = list(entries_from_jsonl(_read(zf, "entries.jsonl").decode("utf-8").splitlines()))
    checkpoints = list(
        checkpoints_from_jsonl(_read(zf, "checkpoints.jsonl").decode("utf-8").splitlines())
    )
    report.entries = len(entries)
    sealed: dict[str, AuditEntry] = {}
    for first, last in _segments_of(entries):
        segment = [e for e in entries if first <= e.seq <= last]
        chain = verify_chain(
            segment, start_prev_hash=segment[0].prev_hash, start_seq=first, trust=check,
            checkpoints=[c for c in checkpoints if first <= c.seq <= last],
        )
        report.problems.extend(chain.problems)
        report.checkpoints += chain.checkpoints
        if chain.ok and chain.last_checkpoint_seq != last:
            report.problems.append(Problem(
                last, "AUDIT_BUNDLE_UNSEALED",
                f"chain segment {first}..{last} does not end on a valid checkpoint",
            ))
        elif chain.ok:
            for e in segment:
                if e.document_id == document_id and e.content_sha256:
                    sealed.setdefault(e.content_sha256, e)
    report.events = [e for e in entries if e.document_id == document_id]
    if not report.events:
        report.problems.append(
            Problem(None, "AUDIT_BUNDLE_EMPTY", f"no entry about document {document_id}")
        )
    _check_packages(zf, manifest, sealed, receipt_verifier, report)


def _check_packages(
    zf: zipfile.ZipFile,
    manifest: dict[str, Any],
    sealed: dict[str, AuditEntry],
    receipt_verifier: BundleReceiptVerifier | None,
    report: BundleReport,
) -> None:
    listed = manifest.get("packages")
    if not isinstance(listed, list):
        raise _error("manifest lacks its package list", "AUDIT_BUNDLE_MALFORMED")
    covered: set[str] = set()
    for item in listed:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
            raise _error(f"bad package entry in manifest: {item!r}", "AUDIT_BUNDLE_MALFORMED")
        body = _read(zf, f"packages/{name}")
        digest = hashlib.sha256(body).hexdigest()
        entry = sealed.get(digest)
        row: dict[str, Any] = {"name": name, "sha256": digest, "ok": entry is not None}
        if entry is None:
            report.problems.append(Problem(
                None, "AUDIT_BUNDLE_PACKAGE",
                f"package {name} (sha256 {digest[:16]}...) matches no sealed entry of the "
                "document: it was altered or does not belong here",
            ))
        else:
            covered.add(digest)
            row.update(seq=entry.seq, kind=entry.kind, counterpart=entry.counterpart)
            why = receipt_verifier(entry, body) if receipt_verifier else None
            if why:
                row["ok"] = False
                report.problems.append(Problem(
                    entry.seq, "AUDIT_RECEIPT_INVALID", f"package {name}: {why}"
                ))
        report.packages.append(row)
    for e in report.events:
        if e.content_sha256 and e.content_sha256 in sealed and e.content_sha256 not in covered:
            report.warnings.append(
                f"entry {e.seq} ({e.kind}) refers to signed bytes the bundle does not include"
            )


# --- archives ---------------------------------------------------------------------------------


def write_archive(
    out: IO[bytes],
    entries: Iterable[AuditEntry],
    checkpoints: Iterable[Checkpoint],
    *,
    organ_id: str,
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Stream entries (ascending, contiguous) and their checkpoints into an archive zip.

    The last entry must carry a checkpoint (it seals the file). Returns the manifest; the
    caller records the archive with an ``archived`` entry (content_sha256 = the file's hash).
    """
    checkpoint_list = list(checkpoints)
    first: AuditEntry | None = None
    last: AuditEntry | None = None
    count = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("entries.jsonl", "w", force_zip64=True) as sink:
            for e in entries:
                if last is not None and e.seq != last.seq + 1:
                    raise _error(f"archive entries jump from {last.seq} to {e.seq}", "AUDIT_GAP")
                first = first or e
                last = e
                count += 1
                sink.write(next(to_jsonl([e])).encode("utf-8"))
        if first is None or last is None:
            raise _error("nothing to archive", "AUDIT_EMPTY")
        if not any(c.seq == last.seq and c.head_hash == last.entry_hash for c in checkpoint_list):
            raise _error(
                f"an archive must end on a checkpoint; seq {last.seq} has none", "AUDIT_NOT_SEALED"
            )
        zf.writestr("checkpoints.jsonl", "".join(to_jsonl(checkpoint_list)))
        manifest = {
            "format": ARCHIVE_FORMAT, "organ_id": organ_id, "first_seq": first.seq,
            "last_seq": last.seq, "count": count, "start_prev_hash": first.prev_hash,
            "head_hash": last.entry_hash, "created_at": format_time(created_at),
        }
        zf.writestr("manifest.json", json.dumps(manifest, indent=1))
    return manifest


def archive_segment(
    entries: Iterable[AuditEntry], checkpoints: Iterable[Checkpoint], *, organ_id: str
) -> bytes:
    """``write_archive`` into bytes (small archives, tests)."""
    out = io.BytesIO()
    write_archive(out, entries, checkpoints, organ_id=organ_id)
    return out.getvalue()


@dataclass(slots=True)
class ArchiveReport:
    """The chain report of one archive, plus what the next verification continues from."""

    chain: ChainReport
    first_seq: int | None = None
    last_seq: int | None = None
    head_hash: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the archive's chain holds and it ends on a valid checkpoint."""
        return self.chain.ok and not self.problems

    def all_problems(self) -> Iterator[Problem]:
        """Archive-level problems, then the chain's."""
        yield from self.problems
        yield from self.chain.problems


def verify_archive(
    source: bytes | IO[bytes],
    *,
    trust: Callable[[x509.Certificate, Checkpoint], None] | TrustStore,
    start_prev_hash: str | None = None,
    start_seq: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ArchiveReport:
    """Verify one archive, continuing from the previous archive's head when given.

    ``start_prev_hash``/``start_seq``: the previous archive's ``head_hash`` and
    ``last_seq + 1`` (or the genesis hash and 1 for the first archive). When omitted, the
    archive is checked on its own terms. The live log continues from the returned
    ``head_hash`` with ``start_seq = last_seq + 1``.
    """
    zf = _open_zip(source)
    manifest = _manifest(zf, ARCHIVE_FORMAT)
    organ_id = manifest.get("organ_id")
    check = trust if not isinstance(trust, TrustStore) else trusted_anchors(
        trust, organ_id if isinstance(organ_id, str) else None
    )
    problems: list[Problem] = []
    m_first, m_prev = manifest.get("first_seq"), manifest.get("start_prev_hash")
    if not isinstance(m_first, int) or not isinstance(m_prev, str):
        raise _error("archive manifest lacks first_seq/start_prev_hash", "AUDIT_BUNDLE_MALFORMED")
    if start_seq is not None and m_first != start_seq:
        problems.append(Problem(m_first, "AUDIT_DELETED", (
            f"the archive starts at seq {m_first}, the previous one ended before {start_seq}"
        )))
    checkpoints = list(
        checkpoints_from_jsonl(_read(zf, "checkpoints.jsonl").decode("utf-8").splitlines())
    )
    with zf.open("entries.jsonl") as raw:
        chain = verify_chain(
            entries_from_jsonl(io.TextIOWrapper(raw, encoding="utf-8")),
            start_prev_hash=start_prev_hash or m_prev,
            start_seq=start_seq or m_first,
            trust=check, checkpoints=checkpoints, progress=progress,
        )
    report = ArchiveReport(chain, chain.first_seq, chain.last_seq, chain.head_hash, problems)
    if chain.last_seq is not None and chain.last_checkpoint_seq != chain.last_seq:
        problems.append(Problem(
            chain.last_seq, "AUDIT_NOT_SEALED",
            f"the archive's last entry {chain.last_seq} has no valid checkpoint",
        ))
    if manifest.get("head_hash") != chain.head_hash or manifest.get("count") != chain.entries:
        problems.append(Problem(
            chain.last_seq, "AUDIT_ARCHIVE_MANIFEST",
            "the archive manifest does not describe its entries (count or head hash differs)",
        ))
    return report
