"""Checkpoints: sealed with RSA-PSS or ECDSA, trusted by fingerprint or by anchor, and due by the
policy's count or time."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from audit_samples import G22, GENESIS, H41, T0, first_code

from edoc_axis.audit.chain import Kind, format_time, genesis_hash, next_entry
from edoc_axis.audit.checkpoint import (
    ECDSA_SHA256,
    Checkpoint,
    CheckpointPolicy,
    seal,
    trusted_fingerprints,
    verify_checkpoint_signature,
)
from edoc_axis.audit.verification import verify_chain
from edoc_axis.errors import ErrorCode, SignatureInvalid
from edoc_axis.trust import certificate as trust


def test_ecdsa_checkpoints_and_fingerprint_trust(pki: Any) -> None:
    """A P-256 agency seals with ECDSA; a fingerprint allow-list trusts only its own cert."""
    h41 = pki.agencies[H41]
    genesis = genesis_hash(H41)
    head = next_entry(None, kind=Kind.RECEIVED, genesis=genesis)
    cp, sealed = seal(head, h41.key, h41.cert, H41, genesis=genesis)
    assert cp.algorithm == ECDSA_SHA256 and sealed.content_sha256 == cp.digest
    ok = trusted_fingerprints([trust.fingerprint(h41.cert)], H41)
    report = verify_chain([head, sealed], start_prev_hash=genesis, trust=ok,
                                checkpoints=[cp])
    assert report.ok and report.checkpoints == 1
    wrong = trusted_fingerprints(["00" * 32], H41)
    report = verify_chain([head, sealed], start_prev_hash=genesis, trust=wrong,
                                checkpoints=[cp])
    assert first_code(report) == (1, ErrorCode.AUDIT_CHECKPOINT_SIGNATURE)
    with pytest.raises(SignatureInvalid):
        verify_checkpoint_signature(replace(cp, signature=b"\x00" + cp.signature[1:]))


def test_policy_is_due_by_count_and_by_time_but_not_for_its_own_entry() -> None:
    """Seal after N entries or S seconds; never right after the checkpoint entry itself."""
    policy = CheckpointPolicy(every_entries=3, every_seconds=60)
    e1 = next_entry(None, kind=Kind.RECEIVED, genesis=GENESIS, at=T0)
    assert not policy.due(None, None) and policy.due(None, e1)
    cp = Checkpoint(1, e1.entry_hash, format_time(T0), G22, ECDSA_SHA256, b"", b"")
    e2 = next_entry(e1, kind=Kind.CHECKPOINT, genesis=GENESIS, at=T0)
    assert not policy.due(cp, e2)
    e3 = next_entry(e2, kind=Kind.RECEIVED, genesis=GENESIS, at=T0)
    assert not policy.due(cp, e3)
    assert policy.due(cp, e3, now=T0 + dt.timedelta(seconds=61))
    e4 = next_entry(e3, kind=Kind.RECEIVED, genesis=GENESIS, at=T0)
    assert policy.due(cp, e4)
