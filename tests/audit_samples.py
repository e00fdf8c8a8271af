"""Audit logs built in memory the way the store builds them, and the tamperings tests apply.

Shared by the audit test modules (``test_audit_verification``, ``test_audit_bundle``,
``test_audit_archive``, ...); not a test module itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from edoc_axis.audit.chain import AuditEntry, Kind, genesis_hash, next_entry
from edoc_axis.audit.checkpoint import CertificateCheck, Checkpoint, CheckpointPolicy, seal
from edoc_axis.audit.verification import ChainReport, verify_chain

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
GENESIS = genesis_hash(G22)
# Within the validity of the session PKI's certificates (issued 5 minutes before the run).
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
POLICY = CheckpointPolicy(every_entries=5, every_seconds=3600)


@dataclass
class Log:
    """An in-memory stand-in for the store's audit tables."""

    entries: list[AuditEntry]
    checkpoints: list[Checkpoint]
    bodies: dict[str, bytes]


def make_log(
    key: Any, cert: Any, n: int = 30, *, policy: CheckpointPolicy = POLICY, docs: int = 3
) -> Log:
    """Append ``n`` events the way the store will, sealing whenever the policy says so."""
    log = Log([], [], {})
    head: AuditEntry | None = None
    last_cp: Checkpoint | None = None
    for i in range(n):
        body = f"<signed package {i}/>".encode()
        digest = hashlib.sha256(body).hexdigest()
        log.bodies[digest] = body
        head = next_entry(
            head, kind=Kind.STATUS_RECEIVED if i % 2 else Kind.SUBMITTED, genesis=GENESIS,
            at=T0 + dt.timedelta(seconds=i), package_id=f"pkg-{i}", document_id=f"doc-{i % docs}",
            counterpart=H41, content_sha256=digest, detail="01" if i % 2 else None,
        )
        log.entries.append(head)
        if policy.due(last_cp, head):
            last_cp, head = seal(
                head, key, cert, G22, genesis=GENESIS, at=T0 + dt.timedelta(seconds=i)
            )
            log.checkpoints.append(last_cp)
            log.entries.append(head)
    return log


def renumbered(entries: list[AuditEntry], start: int) -> list[AuditEntry]:
    """Entries from index ``start`` on with seq reassigned consecutively, hashes untouched."""
    out = entries[:start]
    for e in entries[start:]:
        out.append(replace(e, seq=out[-1].seq + 1 if out else 1))
    return out


def rehash_from(entries: list[AuditEntry], start: int) -> list[AuditEntry]:
    """What an attacker with file access does: recompute every hash from index ``start``."""
    out = entries[:start]
    for e in entries[start:]:
        prev = out[-1].entry_hash if out else GENESIS
        draft = replace(e, prev_hash=prev)
        out.append(replace(draft, entry_hash=draft.computed_hash()))
    return out


def verify(
    entries: list[AuditEntry], checkpoints: list[Checkpoint], check: CertificateCheck,
    **kwargs: Any,
) -> ChainReport:
    """verify_chain of a whole in-memory log from its genesis."""
    return verify_chain(
        iter(entries), start_prev_hash=GENESIS, trust=check, checkpoints=iter(checkpoints),
        **kwargs,
    )


def first_code(report: ChainReport) -> tuple[int | None, str]:
    """(seq, code) of the first problem named."""
    assert report.first is not None, "expected a problem"
    return report.first.seq, report.first.code


def rewrite_member(data: bytes, name: str, change: Callable[[bytes], bytes]) -> bytes:
    """A copy of a zip file with member ``name`` changed (what tampering with a bundle does)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, change(body) if info.filename == name else body)
    return out.getvalue()
