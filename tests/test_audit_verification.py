"""Verification of the audit chain: an intact log holds, and every tampering an attacker with the
rows could do (edit, delete, insert, reorder, rehash, forge or drop checkpoints, truncate) is
named at the entry where it happened."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from audit_samples import (
    G22,
    GENESIS,
    H41,
    POLICY,
    Log,
    first_code,
    make_log,
    rehash_from,
    renumbered,
    verify,
)

from edoc_axis.audit.chain import AuditEntry, Kind, next_entry, parse_time
from edoc_axis.audit.checkpoint import (
    CertificateCheck,
    CheckpointPolicy,
    make_checkpoint,
)
from edoc_axis.audit.verification import TAIL_NOTE, verify_chain
from edoc_axis.errors import ErrorCode
from edoc_axis.ops import pki as dev_pki


def test_intact_log_verifies(log: Log, check: CertificateCheck) -> None:
    """An untouched log holds: every entry, every checkpoint, a short unsealed tail reported."""
    report = verify(log.entries, log.checkpoints, check, policy=POLICY)
    assert report.ok, report.problems
    assert report.entries == len(log.entries) and report.checkpoints == len(log.checkpoints)
    assert report.last_seq == log.entries[-1].seq
    sealed = log.checkpoints[-1].seq
    assert report.unsealed == sum(1 for e in log.entries
                                  if e.seq > sealed and e.kind != Kind.CHECKPOINT)
    assert report.to_dict()["unsealed_note"] == (TAIL_NOTE if report.unsealed else None)


def test_edited_field_is_named(log: Log, check: CertificateCheck) -> None:
    """Changing a status code in one row names that row as edited."""
    entries = list(log.entries)
    entries[7] = replace(entries[7], detail="02")
    report = verify(entries, log.checkpoints, check)
    assert first_code(report) == (entries[7].seq, ErrorCode.AUDIT_EDITED)
    assert report.problem_count == 1  # the checkpoint signed the original, stored hash


def test_deleted_row_is_named(log: Log, check: CertificateCheck) -> None:
    """Deleting a row leaves a gap named at the entry after it."""
    entries = log.entries[:9] + log.entries[10:]
    report = verify(entries, log.checkpoints, check)
    assert first_code(report) == (11, ErrorCode.AUDIT_DELETED)
    assert "entries 10..10 are missing" in report.problems[0].message


def test_deleted_row_with_renumbering_is_named(
    log: Log, check: CertificateCheck
) -> None:
    """Deleting a row and renumbering the rest is still named a deletion."""
    entries = renumbered(log.entries[:10] + log.entries[11:], 10)
    report = verify(entries, log.checkpoints, check)
    assert first_code(report) == (11, ErrorCode.AUDIT_DELETED)
    assert "written as seq 12" in report.problems[0].message


def test_inserted_entry_is_named(log: Log, check: CertificateCheck) -> None:
    """A fabricated receipt, correctly hashed onto its predecessor, is caught either way in."""
    forged = next_entry(
        log.entries[8], kind=Kind.STATUS_RECEIVED, genesis=GENESIS, document_id="doc-1",
        counterpart=H41, content_sha256="ab" * 32, detail="03",
    )
    duplicate = [*log.entries[:9], forged, *log.entries[9:]]
    assert first_code(verify(duplicate, log.checkpoints, check)) == (10, ErrorCode.AUDIT_INSERTED)
    shifted = renumbered(duplicate, 10)
    report = verify(shifted, log.checkpoints, check)
    assert first_code(report) == (11, ErrorCode.AUDIT_INSERTED)
    assert "written as seq 10" in report.problems[0].message


def test_reordered_entries_are_named(log: Log, check: CertificateCheck) -> None:
    """Swapping two rows, by position or by their seq values, is named a reorder."""
    swapped = list(log.entries)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    assert first_code(verify(swapped, log.checkpoints, check)) == (5, ErrorCode.AUDIT_REORDERED)
    by_seq = list(log.entries)
    by_seq[3], by_seq[4] = replace(log.entries[4], seq=4), replace(log.entries[3], seq=5)
    report = verify(by_seq, log.checkpoints, check)
    assert first_code(report) == (4, ErrorCode.AUDIT_REORDERED)
    assert "swapped" in report.problems[0].message


def test_recomputed_later_hashes_break_the_signed_checkpoint(
    log: Log, check: CertificateCheck
) -> None:
    """Editing a row and rehashing everything after it is caught by the next checkpoint."""
    entries = list(log.entries)
    entries[8] = replace(entries[8], detail="06")
    entries = rehash_from(entries, 8)
    report = verify(entries, log.checkpoints, check)
    covering = next(c for c in log.checkpoints if c.seq >= 9)
    assert first_code(report) == (covering.seq, ErrorCode.AUDIT_CHECKPOINT_HEAD)
    assert "later hashes recomputed" in report.problems[0].message


def test_receipt_verifier_pinpoints_the_rewritten_entry(
    log: Log, check: CertificateCheck
) -> None:
    """With stored bytes checked, a rehashed edit of content_sha256 names the exact entry."""
    entries = list(log.entries)
    entries[8] = replace(entries[8], content_sha256="cd" * 32)
    entries = rehash_from(entries, 8)

    def receipts(e: AuditEntry) -> str | None:
        return None if e.content_sha256 in log.bodies else "no stored signed bytes match"

    report = verify(entries, log.checkpoints, check, receipt_verifier=receipts)
    assert first_code(report) == (9, ErrorCode.AUDIT_RECEIPT_INVALID)
    assert report.receipts > 0


def test_checkpoint_forged_with_another_key_is_named(
    log: Log, check: CertificateCheck, pki: Any
) -> None:
    """Rehashing and re-signing with a key outside the trust, or another agency's, fails."""
    entries = rehash_from([*log.entries[:8], replace(log.entries[8], detail="06"),
                           *log.entries[9:]], 8)
    rogue_ca_key, rogue_ca = dev_pki.init_ca("Rogue CA", key_type="p256")
    rogue_key, rogue_cert = dev_pki.issue_agency_certificate(
        rogue_ca_key, rogue_ca, G22, "fake", key_type="p256"
    )
    h41 = pki.agencies[H41]
    for key, cert, organ in ((rogue_key, rogue_cert, G22), (h41.key, h41.cert, G22)):
        by_seq = {e.seq: e for e in entries}
        forged = [make_checkpoint(by_seq[c.seq], key, cert, organ) for c in log.checkpoints]
        report = verify(entries, forged, check)
        assert report.first is not None
        assert report.first.code == ErrorCode.AUDIT_CHECKPOINT_SIGNATURE, report.first


def test_tampered_checkpoint_signature_is_named(
    log: Log, check: CertificateCheck
) -> None:
    """A checkpoint whose signed fields were changed no longer verifies."""
    cps = list(log.checkpoints)
    cps[1] = replace(cps[1], at="2030-01-01T00:00:00.000000Z")
    assert first_code(verify(log.entries, cps, check)) == (cps[1].seq,
                                                           ErrorCode.AUDIT_CHECKPOINT_SIGNATURE)


def test_deleted_checkpoints_are_missed_by_their_chain_entries(
    log: Log, check: CertificateCheck
) -> None:
    """Removing checkpoints leaves chained ``checkpoint`` entries pointing at nothing."""
    cps = log.checkpoints[:2]
    report = verify(log.entries, cps, check)
    assert first_code(report) == (log.checkpoints[2].seq + 1, ErrorCode.AUDIT_CHECKPOINT_MISSING)


def test_rewrite_after_removing_checkpoints_exceeds_the_policy(
    log: Log, check: CertificateCheck
) -> None:
    """Dropping checkpoints and their entries, then rehashing, leaves a tail the policy forbids."""
    keep = log.checkpoints[:2]
    stripped = [e for e in log.entries if e.kind != Kind.CHECKPOINT or e.seq <= keep[-1].seq + 1]
    stripped = rehash_from(renumbered(stripped, 0), keep[-1].seq + 1)
    report = verify(stripped, keep, check, policy=POLICY)
    assert first_code(report) == (keep[-1].seq + 1, ErrorCode.AUDIT_UNSEALED_TAIL)
    assert verify(stripped, keep, check).ok  # without the policy this is undetectable


def test_truncation_before_the_last_checkpoint_is_named(
    log: Log, check: CertificateCheck
) -> None:
    """Cutting the log short of a stored checkpoint names the truncation."""
    cut = log.checkpoints[-1].seq - 3
    report = verify(log.entries[:cut], log.checkpoints, check)
    assert first_code(report) == (log.checkpoints[-1].seq, ErrorCode.AUDIT_TRUNCATED)


def test_truncation_after_the_last_checkpoint_is_only_reported_as_unsealed(
    log: Log, check: CertificateCheck
) -> None:
    """The documented limit: dropping unsealed tail entries cannot be told from a shorter log
    (cut right after a checkpoint's own entry, the log looks fully sealed)."""
    end = log.checkpoints[-1].seq + 1
    report = verify(log.entries[:end], log.checkpoints, check, policy=POLICY)
    assert report.ok and report.unsealed == 0
    # ... unless a checkpoint held elsewhere (a bundle, an earlier audit) covers more.
    assert verify(log.entries[:end - 3], log.checkpoints, check).first is not None


def test_range_verification_starts_mid_chain(log: Log, check: CertificateCheck) -> None:
    """``--from N`` verifies from entry N with the stored hash of N-1, and reports progress."""
    seen: list[int] = []
    report = verify_chain(
        log.entries[11:], start_prev_hash=log.entries[10].entry_hash, start_seq=12, trust=check,
        checkpoints=[c for c in log.checkpoints if c.seq >= 12], progress=seen.append,
        progress_every=5,
    )
    assert report.ok and report.first_seq == 12
    assert seen[:2] == [5, 10] and seen[-1] == report.entries


def test_verification_streams_generators(g22: Any, check: CertificateCheck) -> None:
    """verify_chain consumes lazily: a generator of entries is read once, in order."""
    log = make_log(g22.key, g22.cert, n=12)
    consumed: list[int] = []

    def rows() -> Iterator[AuditEntry]:
        for e in log.entries:
            consumed.append(e.seq)
            yield e

    assert verify(list(rows()), log.checkpoints, check).ok
    assert consumed == [e.seq for e in log.entries]


def test_unsealed_tail_older_than_the_interval_is_a_finding(g22: Any, check: CertificateCheck,
                                                            ) -> None:
    """Entries left unsealed past ``overdue_seconds`` are AUDIT_UNSEALED_TAIL at the oldest,
    naming how many, since when and the seal command; younger, they are only counted."""
    policy = CheckpointPolicy(every_entries=5, every_seconds=10)
    log = make_log(g22.key, g22.cert, 12, policy=policy)
    tail = [e for e in log.entries if e.seq > log.checkpoints[-1].seq and e.kind != "checkpoint"]
    assert len(tail) == 3
    oldest = parse_time(tail[0].at)
    fresh = verify(log.entries, log.checkpoints, check, policy=policy,
                   now=oldest + dt.timedelta(seconds=policy.overdue_seconds))
    assert fresh.ok and fresh.unsealed == 3
    old = verify(log.entries, log.checkpoints, check, policy=policy,
                 now=oldest + dt.timedelta(seconds=policy.overdue_seconds + 1))
    assert first_code(old) == (tail[0].seq, ErrorCode.AUDIT_UNSEALED_TAIL)
    assert old.problem_count == 1 and old.unsealed == 3
    message = old.problems[0].message
    assert "3 entries" in message and tail[0].at in message
    assert "edoc-axis audit seal" in message
    # without a policy (a range, a bundle) age is not judged
    assert verify(log.entries, log.checkpoints, check,
                  now=oldest + dt.timedelta(days=1)).ok


def test_a_log_ending_on_its_checkpoint_entry_has_no_unsealed_tail(
    g22: Any, check: CertificateCheck
) -> None:
    """After a seal the checkpoint's own entry is the head: nothing is unsealed, at any age."""
    policy = CheckpointPolicy(every_entries=5, every_seconds=10)
    log = make_log(g22.key, g22.cert, 13, policy=policy)
    assert log.entries[-1].kind == "checkpoint"
    report = verify(log.entries, log.checkpoints, check, policy=policy,
                    now=dt.datetime.now(dt.UTC) + dt.timedelta(days=30))
    assert report.ok and report.unsealed == 0
    assert report.to_dict()["unsealed_note"] is None


def test_overdue_allows_the_interval_a_timer_period_and_clock_slack() -> None:
    """The age past which a tail is a finding: interval + timer period + min(60 s, interval)."""
    assert CheckpointPolicy(1000, 300).timer_seconds == 15
    assert CheckpointPolicy(1000, 300).overdue_seconds == 375
    assert CheckpointPolicy(1000, 1).timer_seconds == 0.25
    assert CheckpointPolicy(1000, 1).overdue_seconds == 2.25
