"""Archive files of old entries: sealed by their last checkpoint, verified on their own and as one
chain with the next archive and the live log."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from audit_samples import G22, GENESIS, Log, rewrite_member

from edoc_axis.audit.archive import archive_segment, verify_archive
from edoc_axis.audit.checkpoint import CertificateCheck
from edoc_axis.audit.verification import verify_chain
from edoc_axis.errors import EdocAxisError, ErrorCode


def test_verification_continues_across_archive_boundaries(
    log: Log, check: CertificateCheck, pki: Any
) -> None:
    """Two archives and the live rest verify as one chain; a gap between them is named."""
    cut1, cut2 = log.checkpoints[1].seq, log.checkpoints[3].seq
    first = archive_segment(
        log.entries[:cut1], [c for c in log.checkpoints if c.seq <= cut1], organ_id=G22
    )
    second = archive_segment(
        log.entries[cut1:cut2], [c for c in log.checkpoints if cut1 < c.seq <= cut2],
        organ_id=G22,
    )
    store = pki.trust_store()
    one = verify_archive(first, trust=store, start_prev_hash=GENESIS, start_seq=1)
    assert one.ok and one.last_seq == cut1
    two = verify_archive(
        io.BytesIO(second), trust=store, start_prev_hash=one.head_hash, start_seq=cut1 + 1
    )
    assert two.ok, list(two.all_problems())
    live = verify_chain(
        log.entries[cut2:], start_prev_hash=two.head_hash or "", start_seq=cut2 + 1, trust=check,
        checkpoints=[c for c in log.checkpoints if c.seq > cut2],
    )
    assert live.ok
    skipped = verify_archive(second, trust=store, start_prev_hash=GENESIS, start_seq=1)
    assert not skipped.ok
    assert next(p.code for p in skipped.all_problems()) == ErrorCode.AUDIT_DELETED


def test_archive_must_end_on_a_checkpoint_and_detects_edits(
    log: Log, pki: Any
) -> None:
    """An unsealed archive is refused; an edited archived entry is named."""
    cut = log.checkpoints[1].seq
    with pytest.raises(EdocAxisError):
        archive_segment(log.entries[: cut - 1], log.checkpoints, organ_id=G22)
    data = archive_segment(
        log.entries[:cut], [c for c in log.checkpoints if c.seq <= cut], organ_id=G22
    )
    edited = rewrite_member(data, "entries.jsonl", lambda b: b.replace(b'"pkg-3"', b'"pkg-X"'))
    report = verify_archive(edited, trust=pki.trust_store())
    assert next(p.code for p in report.all_problems()) == ErrorCode.AUDIT_EDITED
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))
    assert manifest["last_seq"] == cut and manifest["head_hash"] == log.entries[cut - 1].entry_hash
