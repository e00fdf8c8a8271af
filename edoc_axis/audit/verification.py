"""Verification of the audit chain: recompute every hash, check every checkpoint, name each break.

``verify_chain`` streams entries (``audit.chain``) and checkpoints (``audit.checkpoint``), read
back in ``seq`` order, in one pass and constant memory, and returns a ``ChainReport`` whose
problems carry registered codes (``ErrorCode.AUDIT_*``). Which certificates may sign
checkpoints is the caller's ``CertificateCheck``; whether the signed bytes behind an entry
hold is its ``ReceiptVerifier`` (``audit.receipt``).

What verification catches, and how:

- an edited field: the entry's recomputed hash differs from its stored ``entry_hash``;
- a deleted row: a gap in ``seq`` (or, if the attacker renumbered, entries hashed under another
  seq); an inserted row: a duplicate ``seq``, a renumbered successor, or a broken link;
- reordered rows: ``seq`` going backwards, or two neighbours hashed under each other's seq;
- "edit, then recompute every later hash": the chain is self-consistent again, but the next
  checkpoint's signed head hash no longer matches, and the attacker cannot re-sign it without the
  agency key (a checkpoint signed with any other key fails the certificate check). Deleting those
  checkpoints instead leaves ``checkpoint`` entries that point at nothing, and deleting those
  entries too leaves an unsealed tail (reported when ``policy`` is given to ``verify_chain``);
- truncation before the last checkpoint: that checkpoint names a seq beyond the end of the log;
- an unsealed tail the policy would never have left (``AUDIT_UNSEALED_TAIL``): more entries
  than ``every_entries``, entries written past the interval after the last checkpoint, or an
  oldest unsealed entry older than ``policy.overdue_seconds`` at ``now``. A running node seals
  on a timer and at every clean stop, so such a tail means the node was killed, or the tail
  was truncated or appended to with its checkpoints removed.

What it cannot catch: removing or rewriting entries *after the last checkpoint* while they are
younger than the interval, together with that checkpoint's chain entry, nor a log cut back to
exactly an earlier checkpoint (a rolled-back copy of the file). Nothing inside the node's own
files can prove that a never-sealed entry existed, or that a later checkpoint did; only a copy
held elsewhere can. Evidence bundles and exported checkpoints are such copies: pass them to
``verify_chain`` as extra ``checkpoints`` and a truncated or rewritten log no longer matches them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from edoc_axis.audit.chain import AuditEntry, Kind, canonical_entry, hash_entry, parse_time
from edoc_axis.audit.checkpoint import (
    CertificateCheck,
    Checkpoint,
    CheckpointPolicy,
    verify_checkpoint_signature,
)
from edoc_axis.errors import ErrorCode, SignatureInvalid

_NEVER = 1 << 62  # "no further checkpoint" in verify_chain's integer comparisons


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing in the chain that does not hold: where (seq), what (code) and why."""

    seq: int | None
    code: ErrorCode
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"seq": self.seq, "code": self.code, "message": self.message}


TAIL_NOTE = (
    "entries after the last valid checkpoint are not sealed: removing or rewriting them cannot "
    "be detected from the node's own files (compare with checkpoints held elsewhere)"
)


@dataclass(slots=True)
class ChainReport:
    """The outcome of ``verify_chain``; ``ok`` only when no problem was found."""

    entries: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    head_hash: str | None = None
    checkpoints: int = 0
    last_checkpoint_seq: int | None = None
    last_checkpoint_at: str | None = None
    unsealed: int = 0
    receipts: int = 0
    problem_count: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every entry, checkpoint and receipt held."""
        return self.problem_count == 0

    @property
    def first(self) -> Problem | None:
        """The first problem in chain order (what ``audit verify`` names)."""
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the note on the unsealed tail."""
        return {
            "ok": self.ok, "entries": self.entries, "first_seq": self.first_seq,
            "last_seq": self.last_seq, "head_hash": self.head_hash,
            "checkpoints": self.checkpoints, "last_checkpoint_seq": self.last_checkpoint_seq,
            "last_checkpoint_at": self.last_checkpoint_at, "unsealed": self.unsealed,
            "unsealed_note": TAIL_NOTE if self.unsealed else None, "receipts": self.receipts,
            "problem_count": self.problem_count,
            "problems": [p.to_dict() for p in self.problems],
        }


ReceiptVerifier = Callable[[AuditEntry], str | None]
"""Check the stored signed bytes behind an entry; return why they fail, or None."""


def _written_seq(e: AuditEntry, window: int = 16) -> int | None:
    """The seq an entry was hashed under, when a nearby one fits (renumbered rows)."""
    for delta in range(1, window + 1):
        for candidate in (e.seq + delta, e.seq - delta):
            if candidate >= 1 and hash_entry(e.prev_hash, candidate, e) == e.entry_hash:
                return candidate
    return None


class _Verifier:
    """The state of one streaming verification (kept out of the hot loop where possible)."""

    def __init__(self, report: ChainReport, trust: CertificateCheck, max_problems: int) -> None:
        self.report = report
        self.trust = trust
        self.max_problems = max_problems
        self.cp_seq = -1
        self.cp_digests: set[str] = set()
        self.shift: tuple[int, int] | None = None  # (seq, written seq) of the last renumbered row
        self.sealed_until = 0
        self.sealed_at: str | None = None
        self.sealing_entry = 0  # seq of the entry that records the checkpoint of sealed_until

    def diagnose(self, e: AuditEntry, expected: int, computed: str, running: str) -> bool:
        """Name what is wrong with ``e``; False when it is out of order (skip it)."""
        seq = e.seq
        if seq > expected:
            self.flag(seq, ErrorCode.AUDIT_DELETED,
                      f"entries {expected}..{seq - 1} are missing (deleted)")
        elif seq < expected:
            self.out_of_order(e, expected)
            return seq == expected - 1
        elif computed != e.entry_hash:
            if computed:
                self.mismatch(e)
        else:
            self.flag(
                seq, ErrorCode.AUDIT_LINK_BROKEN,
                f"entry {seq} does not link to entry {seq - 1}: an entry was inserted before it, "
                f"or entry {seq - 1} was rewritten",
            )
        return True

    def orphan_checkpoints(
        self, cp: Checkpoint | None, pending: Iterator[Checkpoint], seq: int, start_seq: int
    ) -> Checkpoint | None:
        """Skip checkpoints whose entry never came (flagging them); return the next one."""
        while cp is not None and cp.seq < seq:
            if cp.seq >= start_seq and self.checkpoint_valid(cp):
                self.flag(cp.seq, ErrorCode.AUDIT_DELETED,
                          f"checkpoint at seq {cp.seq} has no entry")
            cp = next(pending, None)
        return cp

    def match_checkpoints(
        self, cp: Checkpoint | None, pending: Iterator[Checkpoint], e: AuditEntry
    ) -> Checkpoint | None:
        """Check every checkpoint of ``e.seq`` against ``e``; return the next one."""
        seq = e.seq
        while cp is not None and cp.seq == seq:
            if self.checkpoint_valid(cp):
                if cp.head_hash != e.entry_hash:
                    self.flag(
                        seq, ErrorCode.AUDIT_CHECKPOINT_HEAD,
                        f"the checkpoint signed {cp.at} says the head at seq {seq} is "
                        f"{cp.head_hash[:16]}..., the log has {e.entry_hash[:16]}...: an entry "
                        f"in {self.sealed_until + 1}..{seq} was changed and later hashes "
                        "recomputed",
                    )
                else:
                    self.report.checkpoints += 1
                    self.sealed_until, self.sealed_at = seq, cp.at
            cp = next(pending, None)
        return cp

    def check_checkpoint_entry(self, e: AuditEntry) -> None:
        """A ``checkpoint`` entry must name a checkpoint of the previous seq that is stored."""
        if not (self.cp_seq == e.seq - 1 and e.content_sha256 in self.cp_digests):
            self.flag(
                e.seq, ErrorCode.AUDIT_CHECKPOINT_MISSING,
                f"entry {e.seq} records a checkpoint of seq {e.seq - 1} that is not stored "
                "(it was deleted or replaced)",
            )
        elif self.sealed_until == e.seq - 1:
            self.sealing_entry = e.seq

    def flag(self, seq: int | None, code: ErrorCode, message: str) -> None:
        self.report.problem_count += 1
        if len(self.report.problems) < self.max_problems:
            self.report.problems.append(Problem(seq, code, message))

    def replace_last(self, seq: int, code: ErrorCode, message: str) -> None:
        self.report.problems[-1] = Problem(seq, code, message)

    def checkpoint_valid(self, cp: Checkpoint) -> bool:
        if cp.seq != self.cp_seq:
            self.cp_seq, self.cp_digests = cp.seq, set()
        self.cp_digests.add(cp.digest)
        try:
            cert = verify_checkpoint_signature(cp)
            self.trust(cert, cp)
        except SignatureInvalid as exc:
            self.flag(
                cp.seq, ErrorCode.AUDIT_CHECKPOINT_SIGNATURE,
                f"checkpoint at seq {cp.seq} (signed {cp.at}) does not hold: {exc.message}",
            )
            return False
        return True

    def out_of_order(self, e: AuditEntry, expected: int) -> None:
        seq = e.seq
        if seq == expected - 1:
            self.flag(seq, ErrorCode.AUDIT_INSERTED,
                      f"a second entry carries seq {seq}: one was inserted")
            return
        last = self.report.problems[-1] if self.report.problems else None
        message = f"entry {seq} ({e.kind}) comes after entry {expected - 1}: entries were reordered"
        if last is not None and last.code == ErrorCode.AUDIT_DELETED and last.seq is not None \
                and last.seq > seq:
            self.replace_last(last.seq, ErrorCode.AUDIT_REORDERED, message)
        else:
            self.flag(seq, ErrorCode.AUDIT_REORDERED, message)

    def mismatch(self, e: AuditEntry) -> None:
        seq = e.seq
        written = None if self.report.problem_count >= self.max_problems else _written_seq(e)
        if written is None:
            self.flag(
                seq, ErrorCode.AUDIT_EDITED,
                f"entry {seq} ({e.kind}, package {e.package_id}) was edited: its stored hash "
                "does not match its fields",
            )
        elif written > seq:
            self.flag(
                seq, ErrorCode.AUDIT_DELETED,
                f"entry at seq {seq} was written as seq {written}: entries before it were "
                "deleted and later ones renumbered",
            )
        elif self.shift == (seq - 1, seq) and self.report.problems:
            self.replace_last(
                seq - 1, ErrorCode.AUDIT_REORDERED,
                f"entries {seq - 1} and {seq} were swapped (each hashed under the other's seq)",
            )
            self.report.problem_count -= 1
            self.flag(seq, ErrorCode.AUDIT_REORDERED, f"entry {seq} was written as seq {written}")
        else:
            self.flag(
                seq, ErrorCode.AUDIT_INSERTED,
                f"entry at seq {seq} was written as seq {written}: entries were inserted before "
                "it and later ones renumbered",
            )
        self.shift = (seq, written) if written is not None else None


def verify_chain(  # noqa: PLR0912, PLR0915 - the hot loop stays in one piece for speed
    entries: Iterable[AuditEntry],
    *,
    start_prev_hash: str,
    trust: CertificateCheck,
    checkpoints: Iterable[Checkpoint] = (),
    start_seq: int = 1,
    receipt_verifier: ReceiptVerifier | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
    policy: CheckpointPolicy | None = None,
    clock_slack_seconds: float = 60.0,
    now: dt.datetime | None = None,
    max_problems: int = 100,
) -> ChainReport:
    """Recompute the chain from ``start_prev_hash`` and check every checkpoint, in one pass.

    ``entries`` and ``checkpoints`` must each come in ascending ``seq`` order as stored (read
    them ``ORDER BY seq``); both are consumed lazily, so memory stays constant. For a range
    (``audit verify --from N``), pass ``start_seq=N`` and the stored hash of entry ``N-1``.
    ``policy`` (the node's ``CheckpointPolicy``) lets verification notice removed checkpoints
    and a node that stopped without sealing, through an unsealed tail the policy would not have
    left: longer than it allows, or older than ``policy.overdue_seconds`` at ``now`` (default:
    the current time).
    """
    report = ChainReport()
    state = _Verifier(report, trust, max_problems)
    state.sealed_until = start_seq - 1
    pending = iter(checkpoints)
    cp = next(pending, None)
    next_cp = cp.seq if cp is not None else _NEVER
    running = start_prev_hash
    expected = start_seq
    tail_at: str | None = None
    tail_first: AuditEntry | None = None  # the oldest entry not (yet) under a checkpoint
    count = 0
    countdown = progress_every
    last: AuditEntry | None = None
    sha256 = hashlib.sha256
    canonical = canonical_entry
    fromhex = bytes.fromhex
    checkpoint_kind = Kind.CHECKPOINT.value
    for e in entries:
        count += 1
        seq = e.seq
        if count == 1:
            report.first_seq = seq
        if seq > next_cp:
            cp = state.orphan_checkpoints(cp, pending, seq, start_seq)
            next_cp = cp.seq if cp is not None else _NEVER
        try:
            computed = sha256(fromhex(e.prev_hash) + canonical(seq, e)).hexdigest()
        except (ValueError, TypeError, AttributeError) as exc:
            state.flag(seq, ErrorCode.AUDIT_MALFORMED, f"entry {seq} cannot be read ({exc})")
            computed = ""
        clean = seq == expected and computed == e.entry_hash and e.prev_hash == running
        if not clean and not state.diagnose(e, expected, computed, running):
            last = e  # out of order: leave the chain's state as it was
            continue
        running = e.entry_hash
        expected = seq + 1
        last = e
        if seq == next_cp:
            cp = state.match_checkpoints(cp, pending, e)
            next_cp = cp.seq if cp is not None else _NEVER
        if e.kind == checkpoint_kind:
            if clean and seq > start_seq:
                state.check_checkpoint_entry(e)
        else:
            tail_at = e.at
            if tail_first is None or tail_first.seq <= state.sealed_until:
                tail_first = e
            if receipt_verifier is not None and e.content_sha256 is not None:
                report.receipts += 1
                why = receipt_verifier(e)
                if why:
                    state.flag(seq, ErrorCode.AUDIT_RECEIPT_INVALID,
                               f"entry {seq} ({e.kind}): {why}")
        countdown -= 1
        if not countdown:
            countdown = progress_every
            if progress is not None:
                progress(count)
    report.entries = count
    if last is not None:
        report.last_seq, report.head_hash = last.seq, last.entry_hash
    _finish(state, cp, pending, start_seq=start_seq, tail_at=tail_at, policy=policy,
            slack=clock_slack_seconds)
    if policy is not None and tail_first is not None and tail_first.seq > state.sealed_until \
            and not any(p.code == ErrorCode.AUDIT_UNSEALED_TAIL for p in report.problems):
        _check_tail_age(state, policy, tail_first, now or dt.datetime.now(dt.UTC))
    if progress is not None:
        progress(count)
    return report


def _finish(
    state: _Verifier, cp: Checkpoint | None, pending: Iterator[Checkpoint], *, start_seq: int,
    tail_at: str | None, policy: CheckpointPolicy | None, slack: float,
) -> None:
    """After the last entry: checkpoints beyond the end (truncation) and the unsealed tail."""
    report = state.report
    end = report.last_seq if report.last_seq is not None else start_seq - 1
    while cp is not None:
        if cp.seq > end and state.checkpoint_valid(cp):
            state.flag(
                cp.seq, ErrorCode.AUDIT_TRUNCATED,
                f"a checkpoint signed {cp.at} covers seq {cp.seq}, but the log ends at {end}: "
                f"entries {end + 1}..{cp.seq} were removed",
            )
        cp = next(pending, None)
    sealed_until, sealed_at = state.sealed_until, state.sealed_at
    if sealed_until >= start_seq:
        report.last_checkpoint_seq, report.last_checkpoint_at = sealed_until, sealed_at
    # the entry recording the last checkpoint is not itself waiting for one
    sealing = 1 if state.sealing_entry and state.sealing_entry == sealed_until + 1 else 0
    report.unsealed = max(0, end - sealed_until - sealing)
    if policy is not None:
        _check_tail(
            state, policy, end=end, sealed_until=sealed_until, sealed_at=sealed_at,
            tail_at=tail_at, slack=slack,
        )


def _check_tail(
    state: _Verifier, policy: CheckpointPolicy, *, end: int, sealed_until: int,
    sealed_at: str | None, tail_at: str | None, slack: float,
) -> None:
    """Flag an unsealed tail the policy would never have left: checkpoints were removed."""
    unsealed = state.report.unsealed
    if not unsealed:
        return
    if unsealed > policy.every_entries:
        state.flag(
            sealed_until + 1, ErrorCode.AUDIT_UNSEALED_TAIL,
            f"{unsealed} entries after seq {sealed_until} carry no checkpoint, but the policy "
            f"seals every {policy.every_entries}: checkpoints were removed",
        )
        return
    if sealed_at is None or tail_at is None:
        return
    try:
        gap = (parse_time(tail_at) - parse_time(sealed_at)).total_seconds()
    except ValueError:
        return
    if gap > policy.every_seconds + slack:
        state.flag(
            sealed_until + 1, ErrorCode.AUDIT_UNSEALED_TAIL,
            f"entries up to {tail_at} carry no checkpoint {gap:.0f} s after the last one, but the "
            f"policy seals every {policy.every_seconds:.0f} s: checkpoints were removed",
        )


def _check_tail_age(
    state: _Verifier, policy: CheckpointPolicy, oldest: AuditEntry, now: dt.datetime
) -> None:
    """Flag unsealed entries older than a running node would have left them."""
    try:
        age = (now - parse_time(oldest.at)).total_seconds()
    except ValueError:
        return
    if age <= policy.overdue_seconds:
        return
    report = state.report
    state.flag(
        oldest.seq, ErrorCode.AUDIT_UNSEALED_TAIL,
        f"{report.unsealed} entries (seq {oldest.seq}..{report.last_seq}) are not sealed by a "
        f"checkpoint since {oldest.at} ({age:.0f} s, the policy seals every "
        f"{policy.every_seconds:.0f} s): the node stopped without sealing (killed, crashed) or "
        "checkpoints were removed, and nothing proves these entries unchanged. Seal them as "
        "they are now with `edoc-axis audit seal`",
    )
