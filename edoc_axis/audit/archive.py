"""Archive files: old entries moved out of the live log, sealed and verifiable on their own.

Format ``edoc-axis/audit-archive/1``: ``entries.jsonl`` and ``checkpoints.jsonl`` of seq
``first..last`` plus ``manifest.json``. An archive must end on a checkpoint, whose agency-key
signature over the head hash therefore signs the whole file's chain; verification of the next
archive (or the live log) continues from its ``head_hash``. The live log records each archive
as an ``archived`` entry whose ``content_sha256`` is the archive file's SHA-256.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from cryptography import x509

from edoc_axis.audit.chain import AuditEntry, format_time
from edoc_axis.audit.checkpoint import Checkpoint, trusted_anchors
from edoc_axis.audit.evidence import evidence_error, open_zip, read_manifest, read_member
from edoc_axis.audit.export import checkpoints_from_jsonl, entries_from_jsonl, to_jsonl
from edoc_axis.audit.verification import ChainReport, Problem, verify_chain
from edoc_axis.errors import ErrorCode
from edoc_axis.trust.chain import TrustStore

ARCHIVE_FORMAT = "edoc-axis/audit-archive/1"


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
                    raise evidence_error(
                        f"archive entries jump from {last.seq} to {e.seq}", ErrorCode.AUDIT_GAP
                    )
                first = first or e
                last = e
                count += 1
                sink.write(next(to_jsonl([e])).encode("utf-8"))
        if first is None or last is None:
            raise evidence_error("nothing to archive", ErrorCode.AUDIT_EMPTY)
        if not any(c.seq == last.seq and c.head_hash == last.entry_hash for c in checkpoint_list):
            raise evidence_error(
                f"an archive must end on a checkpoint; seq {last.seq} has none",
                ErrorCode.AUDIT_NOT_SEALED
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
    zf = open_zip(source)
    manifest = read_manifest(zf, ARCHIVE_FORMAT)
    organ_id = manifest.get("organ_id")
    check = trust if not isinstance(trust, TrustStore) else trusted_anchors(
        trust, organ_id if isinstance(organ_id, str) else None
    )
    problems: list[Problem] = []
    m_first, m_prev = manifest.get("first_seq"), manifest.get("start_prev_hash")
    if not isinstance(m_first, int) or not isinstance(m_prev, str):
        raise evidence_error(
            "archive manifest lacks first_seq/start_prev_hash", ErrorCode.AUDIT_BUNDLE_MALFORMED
        )
    if start_seq is not None and m_first != start_seq:
        problems.append(Problem(m_first, ErrorCode.AUDIT_DELETED, (
            f"the archive starts at seq {m_first}, the previous one ended before {start_seq}"
        )))
    checkpoints = list(
        checkpoints_from_jsonl(read_member(zf, "checkpoints.jsonl").decode("utf-8").splitlines())
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
            chain.last_seq, ErrorCode.AUDIT_NOT_SEALED,
            f"the archive's last entry {chain.last_seq} has no valid checkpoint",
        ))
    if manifest.get("head_hash") != chain.head_hash or manifest.get("count") != chain.entries:
        problems.append(Problem(
            chain.last_seq, ErrorCode.AUDIT_ARCHIVE_MANIFEST,
            "the archive manifest does not describe its entries (count or head hash differs)",
        ))
    return report
