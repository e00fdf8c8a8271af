"""The audit chain, checkpoints, verification, evidence bundles and archives."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from edoc_axis.audit import chain as audit
from edoc_axis.audit import check as auditcheck
from edoc_axis.audit import evidence
from edoc_axis.audit.chain import AuditEntry, Checkpoint, CheckpointPolicy, Code, Kind
from edoc_axis.errors import EdocAxisError, SignatureInvalid
from edoc_axis.ops import pki as dev_pki
from edoc_axis.trust import certificate as trust
from edoc_axis.trust import signature

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
GENESIS = audit.genesis_hash(G22)
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
        head = audit.next_entry(
            head, kind=Kind.STATUS_RECEIVED if i % 2 else Kind.SUBMITTED, genesis=GENESIS,
            at=T0 + dt.timedelta(seconds=i), package_id=f"pkg-{i}", document_id=f"doc-{i % docs}",
            counterpart=H41, content_sha256=digest, detail="01" if i % 2 else None,
        )
        log.entries.append(head)
        if policy.due(last_cp, head):
            last_cp, head = audit.seal(
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


@pytest.fixture(scope="module")
def g22(pki: Any) -> Any:
    """G22's signing identity (RSA-2048) from the session PKI."""
    return pki.agencies[G22]


@pytest.fixture(scope="module")
def check(pki: Any) -> auditcheck.CertificateCheck:
    """Checkpoint certificates must chain to the test CA and bind G22."""
    return auditcheck.trusted_anchors(pki.trust_store(), G22)


@pytest.fixture(scope="module")
def log(g22: Any) -> Log:
    """A 30-event log sealed every 5 entries."""
    return make_log(g22.key, g22.cert)


def verify(
    entries: list[AuditEntry], checkpoints: list[Checkpoint], check: auditcheck.CertificateCheck,
    **kwargs: Any,
) -> auditcheck.ChainReport:
    return auditcheck.verify_chain(
        iter(entries), start_prev_hash=GENESIS, trust=check, checkpoints=iter(checkpoints),
        **kwargs,
    )


def first_code(report: auditcheck.ChainReport) -> tuple[int | None, str]:
    assert report.first is not None, "expected a problem"
    return report.first.seq, report.first.code


# --- the chain ---------------------------------------------------------------------------------


def test_intact_log_verifies(log: Log, check: auditcheck.CertificateCheck) -> None:
    """An untouched log holds: every entry, every checkpoint, a short unsealed tail reported."""
    report = verify(log.entries, log.checkpoints, check, policy=POLICY)
    assert report.ok, report.problems
    assert report.entries == len(log.entries) and report.checkpoints == len(log.checkpoints)
    assert report.last_seq == log.entries[-1].seq
    assert report.unsealed == report.last_seq - log.checkpoints[-1].seq
    assert report.to_dict()["unsealed_note"] == (auditcheck.TAIL_NOTE if report.unsealed else None)


def test_entry_encoding_is_unambiguous_and_bound_to_the_node() -> None:
    """Moving a character between fields, or another node's genesis, changes the hash."""
    a = audit.next_entry(None, kind="received", genesis=GENESIS, at=T0, package_id="ab",
                         document_id="c")
    b = audit.next_entry(None, kind="received", genesis=GENESIS, at=T0, package_id="a",
                         document_id="bc")
    other = audit.next_entry(None, kind="received", genesis=audit.genesis_hash(H41), at=T0,
                             package_id="ab", document_id="c")
    assert len({a.entry_hash, b.entry_hash, other.entry_hash}) == 3
    assert a.seq == 1 and a.prev_hash == GENESIS and a.at.endswith(".000000Z")
    assert audit.format_time(dt.datetime(2025, 3, 1, 15, 0, tzinfo=dt.timezone(
        dt.timedelta(hours=7)))) == "2025-03-01T08:00:00.000000Z"


def test_next_entry_refuses_unknown_kinds_and_bad_hashes() -> None:
    """Only the closed set of kinds and 64-hex digests get into the chain."""
    with pytest.raises(EdocAxisError) as err:
        audit.next_entry(None, kind="deleted_quietly", genesis=GENESIS)
    assert err.value.code == Code.MALFORMED
    with pytest.raises(EdocAxisError):
        audit.next_entry(None, kind="received", genesis=GENESIS, content_sha256="ABC")


def test_edited_field_is_named(log: Log, check: auditcheck.CertificateCheck) -> None:
    """Changing a status code in one row names that row as edited."""
    entries = list(log.entries)
    entries[7] = replace(entries[7], detail="02")
    report = verify(entries, log.checkpoints, check)
    assert first_code(report) == (entries[7].seq, Code.EDITED)
    assert report.problem_count == 1  # the checkpoint signed the original, stored hash


def test_deleted_row_is_named(log: Log, check: auditcheck.CertificateCheck) -> None:
    """Deleting a row leaves a gap named at the entry after it."""
    entries = log.entries[:9] + log.entries[10:]
    report = verify(entries, log.checkpoints, check)
    assert first_code(report) == (11, Code.DELETED)
    assert "entries 10..10 are missing" in report.problems[0].message


def test_deleted_row_with_renumbering_is_named(
    log: Log, check: auditcheck.CertificateCheck
) -> None:
    """Deleting a row and renumbering the rest is still named a deletion."""
    entries = renumbered(log.entries[:10] + log.entries[11:], 10)
    report = verify(entries, log.checkpoints, check)
    assert first_code(report) == (11, Code.DELETED)
    assert "written as seq 12" in report.problems[0].message


def test_inserted_entry_is_named(log: Log, check: auditcheck.CertificateCheck) -> None:
    """A fabricated receipt, correctly hashed onto its predecessor, is caught either way in."""
    forged = audit.next_entry(
        log.entries[8], kind=Kind.STATUS_RECEIVED, genesis=GENESIS, document_id="doc-1",
        counterpart=H41, content_sha256="ab" * 32, detail="03",
    )
    duplicate = [*log.entries[:9], forged, *log.entries[9:]]
    assert first_code(verify(duplicate, log.checkpoints, check)) == (10, Code.INSERTED)
    shifted = renumbered(duplicate, 10)
    report = verify(shifted, log.checkpoints, check)
    assert first_code(report) == (11, Code.INSERTED)
    assert "written as seq 10" in report.problems[0].message


def test_reordered_entries_are_named(log: Log, check: auditcheck.CertificateCheck) -> None:
    """Swapping two rows, by position or by their seq values, is named a reorder."""
    swapped = list(log.entries)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    assert first_code(verify(swapped, log.checkpoints, check)) == (5, Code.REORDERED)
    by_seq = list(log.entries)
    by_seq[3], by_seq[4] = replace(log.entries[4], seq=4), replace(log.entries[3], seq=5)
    report = verify(by_seq, log.checkpoints, check)
    assert first_code(report) == (4, Code.REORDERED)
    assert "swapped" in report.problems[0].message


def test_recomputed_later_hashes_break_the_signed_checkpoint(
    log: Log, check: auditcheck.CertificateCheck
) -> None:
    """Editing a row and rehashing everything after it is caught by the next checkpoint."""
    entries = list(log.entries)
    entries[8] = replace(entries[8], detail="06")
    entries = rehash_from(entries, 8)
    report = verify(entries, log.checkpoints, check)
    covering = next(c for c in log.checkpoints if c.seq >= 9)
    assert first_code(report) == (covering.seq, Code.CHECKPOINT_HEAD)
    assert "later hashes recomputed" in report.problems[0].message


def test_receipt_verifier_pinpoints_the_rewritten_entry(
    log: Log, check: auditcheck.CertificateCheck
) -> None:
    """With stored bytes checked, a rehashed edit of content_sha256 names the exact entry."""
    entries = list(log.entries)
    entries[8] = replace(entries[8], content_sha256="cd" * 32)
    entries = rehash_from(entries, 8)

    def receipts(e: AuditEntry) -> str | None:
        return None if e.content_sha256 in log.bodies else "no stored signed bytes match"

    report = verify(entries, log.checkpoints, check, receipt_verifier=receipts)
    assert first_code(report) == (9, Code.RECEIPT_INVALID)
    assert report.receipts > 0


def test_checkpoint_forged_with_another_key_is_named(
    log: Log, check: auditcheck.CertificateCheck, pki: Any
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
        forged = [audit.make_checkpoint(by_seq[c.seq], key, cert, organ) for c in log.checkpoints]
        report = verify(entries, forged, check)
        assert report.first is not None
        assert report.first.code == Code.CHECKPOINT_SIGNATURE, report.first


def test_tampered_checkpoint_signature_is_named(
    log: Log, check: auditcheck.CertificateCheck
) -> None:
    """A checkpoint whose signed fields were changed no longer verifies."""
    cps = list(log.checkpoints)
    cps[1] = replace(cps[1], at="2030-01-01T00:00:00.000000Z")
    assert first_code(verify(log.entries, cps, check)) == (cps[1].seq, Code.CHECKPOINT_SIGNATURE)


def test_deleted_checkpoints_are_missed_by_their_chain_entries(
    log: Log, check: auditcheck.CertificateCheck
) -> None:
    """Removing checkpoints leaves chained ``checkpoint`` entries pointing at nothing."""
    cps = log.checkpoints[:2]
    report = verify(log.entries, cps, check)
    assert first_code(report) == (log.checkpoints[2].seq + 1, Code.CHECKPOINT_MISSING)


def test_rewrite_after_removing_checkpoints_exceeds_the_policy(
    log: Log, check: auditcheck.CertificateCheck
) -> None:
    """Dropping checkpoints and their entries, then rehashing, leaves a tail the policy forbids."""
    keep = log.checkpoints[:2]
    stripped = [e for e in log.entries if e.kind != Kind.CHECKPOINT or e.seq <= keep[-1].seq + 1]
    stripped = rehash_from(renumbered(stripped, 0), keep[-1].seq + 1)
    report = verify(stripped, keep, check, policy=POLICY)
    assert first_code(report) == (keep[-1].seq + 1, Code.UNSEALED_TAIL)
    assert verify(stripped, keep, check).ok  # without the policy this is undetectable


def test_truncation_before_the_last_checkpoint_is_named(
    log: Log, check: auditcheck.CertificateCheck
) -> None:
    """Cutting the log short of a stored checkpoint names the truncation."""
    cut = log.checkpoints[-1].seq - 3
    report = verify(log.entries[:cut], log.checkpoints, check)
    assert first_code(report) == (log.checkpoints[-1].seq, Code.TRUNCATED)


def test_truncation_after_the_last_checkpoint_is_only_reported_as_unsealed(
    log: Log, check: auditcheck.CertificateCheck
) -> None:
    """The documented limit: dropping unsealed tail entries cannot be told from a shorter log."""
    end = log.checkpoints[-1].seq + 1
    report = verify(log.entries[:end], log.checkpoints, check, policy=POLICY)
    assert report.ok and report.unsealed == 1
    # ... unless a checkpoint held elsewhere (a bundle, an earlier audit) covers more.
    assert verify(log.entries[:end - 3], log.checkpoints, check).first is not None


def test_range_verification_starts_mid_chain(log: Log, check: auditcheck.CertificateCheck) -> None:
    """``--from N`` verifies from entry N with the stored hash of N-1, and reports progress."""
    seen: list[int] = []
    report = auditcheck.verify_chain(
        log.entries[11:], start_prev_hash=log.entries[10].entry_hash, start_seq=12, trust=check,
        checkpoints=[c for c in log.checkpoints if c.seq >= 12], progress=seen.append,
        progress_every=5,
    )
    assert report.ok and report.first_seq == 12
    assert seen[:2] == [5, 10] and seen[-1] == report.entries


def test_ecdsa_checkpoints_and_fingerprint_trust(pki: Any) -> None:
    """A P-256 agency seals with ECDSA; a fingerprint allow-list trusts only its own cert."""
    h41 = pki.agencies[H41]
    genesis = audit.genesis_hash(H41)
    head = audit.next_entry(None, kind=Kind.RECEIVED, genesis=genesis)
    cp, sealed = audit.seal(head, h41.key, h41.cert, H41, genesis=genesis)
    assert cp.algorithm == audit.ECDSA_SHA256 and sealed.content_sha256 == cp.digest
    ok = auditcheck.trusted_fingerprints([trust.fingerprint(h41.cert)], H41)
    report = auditcheck.verify_chain([head, sealed], start_prev_hash=genesis, trust=ok,
                                checkpoints=[cp])
    assert report.ok and report.checkpoints == 1
    wrong = auditcheck.trusted_fingerprints(["00" * 32], H41)
    report = auditcheck.verify_chain([head, sealed], start_prev_hash=genesis, trust=wrong,
                                checkpoints=[cp])
    assert first_code(report) == (1, Code.CHECKPOINT_SIGNATURE)
    with pytest.raises(SignatureInvalid):
        auditcheck.verify_checkpoint_signature(replace(cp, signature=b"\x00" + cp.signature[1:]))


def test_policy_is_due_by_count_and_by_time_but_not_for_its_own_entry() -> None:
    """Seal after N entries or S seconds; never right after the checkpoint entry itself."""
    policy = CheckpointPolicy(every_entries=3, every_seconds=60)
    e1 = audit.next_entry(None, kind=Kind.RECEIVED, genesis=GENESIS, at=T0)
    assert not policy.due(None, None) and policy.due(None, e1)
    cp = Checkpoint(1, e1.entry_hash, audit.format_time(T0), G22, audit.ECDSA_SHA256, b"", b"")
    e2 = audit.next_entry(e1, kind=Kind.CHECKPOINT, genesis=GENESIS, at=T0)
    assert not policy.due(cp, e2)
    e3 = audit.next_entry(e2, kind=Kind.RECEIVED, genesis=GENESIS, at=T0)
    assert not policy.due(cp, e3)
    assert policy.due(cp, e3, now=T0 + dt.timedelta(seconds=61))
    e4 = audit.next_entry(e3, kind=Kind.RECEIVED, genesis=GENESIS, at=T0)
    assert policy.due(cp, e4)


def test_export_round_trips_as_jsonl_and_csv(log: Log) -> None:
    """JSONL lines read back to equal entries and checkpoints; CSV has a header and None as ''."""
    lines = list(audit.to_jsonl(log.entries))
    assert list(audit.entries_from_jsonl(lines)) == log.entries
    assert list(audit.checkpoints_from_jsonl(audit.to_jsonl(log.checkpoints))) == log.checkpoints
    buf = io.StringIO()
    csv.writer(buf).writerows(audit.csv_rows(log.entries[:3]))
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert rows[0]["seq"] == "1" and rows[0]["detail"] == "" and len(rows) == 3
    with pytest.raises(EdocAxisError):
        list(audit.entries_from_jsonl(['{"seq": "1"}']))


def test_verification_streams_generators(g22: Any, check: auditcheck.CertificateCheck) -> None:
    """verify_chain consumes lazily: a generator of entries is read once, in order."""
    log = make_log(g22.key, g22.cert, n=12)
    consumed: list[int] = []

    def rows() -> Iterator[AuditEntry]:
        for e in log.entries:
            consumed.append(e.seq)
            yield e

    assert verify(list(rows()), log.checkpoints, check).ok
    assert consumed == [e.seq for e in log.entries]


# --- bundles -------------------------------------------------------------------------------------


def signed_exchange(
    pki: Any, build_edxml_document: Callable[..., bytes], build_edxml_status: Callable[..., bytes]
) -> tuple[Log, list[tuple[str, bytes]], str]:
    """G22 sends a signed document to H41 and records H41's signed 01 status."""
    g, h = pki.agencies[G22], pki.agencies[H41]
    doc = signature.sign(build_edxml_document(G22, H41), g.key, g.cert)
    status = signature.sign(build_edxml_status(H41, G22, "01"), h.key, h.cert)
    # A receipt claiming to come from H41 but signed with G22's certificate.
    forged = signature.sign(build_edxml_status(H41, G22, "06"), g.key, g.cert)
    document_id = f"{G22},2024/05/06,123/VPCP-TTĐT"
    log = Log([], [], {})
    head: AuditEntry | None = None
    last_cp: Checkpoint | None = None
    events = [(Kind.SUBMITTED, doc, None), (Kind.PUBLISHED, None, H41),
              (Kind.STATUS_RECEIVED, status, H41), (Kind.STATUS_RECEIVED, forged, H41)]
    for i in range(14):
        kind, body, counterpart = events[i] if i < len(events) else (Kind.RECEIVED, None, H41)
        digest = hashlib.sha256(body).hexdigest() if body else None
        if body:
            log.bodies[digest or ""] = body
        head = audit.next_entry(
            head, kind=kind, genesis=GENESIS, document_id=document_id if i < 4 else f"other-{i}",
            counterpart=counterpart, content_sha256=digest, package_id=f"p{i}",
        )
        log.entries.append(head)
        if POLICY.due(last_cp, head):
            last_cp, head = audit.seal(head, g.key, g.cert, G22, genesis=GENESIS)
            log.checkpoints.append(last_cp)
            log.entries.append(head)
    packages = [("document.xml", doc), ("status-01.xml", status), ("status-06.xml", forged)]
    return log, packages, document_id


def make_bundle(log: Log, packages: list[tuple[str, bytes]], document_id: str) -> bytes:
    """What the node's ``audit bundle`` does with store rows."""
    involved = [e.seq for e in log.entries if e.document_id == document_id]
    ranges = evidence.bundle_ranges(involved, [c.seq for c in log.checkpoints])
    entries = [e for e in log.entries if any(a <= e.seq <= b for a, b in ranges)]
    cps = [c for c in log.checkpoints if any(a <= c.seq <= b for a, b in ranges)]
    return evidence.build_bundle(document_id, packages, entries, cps, organ_id=G22)


def package_signature(pki_store: Any) -> evidence.BundleReceiptVerifier:
    """The receipt check the node wires in: signature.verify and signer = the entry's party."""

    def check(entry: AuditEntry, body: bytes) -> str | None:
        try:
            result = signature.verify(body, pki_store)
        except SignatureInvalid as exc:
            return f"{exc.code}: {exc.message}"
        expected = entry.counterpart if entry.kind == Kind.STATUS_RECEIVED else G22
        if result.signer_organ_id != expected:
            return f"signed by {result.signer_organ_id}, expected {expected}"
        return None

    return check


@pytest.fixture(scope="module")
def exchange(
    pki: Any, edxml_document: Callable[..., bytes], edxml_status: Callable[..., bytes]
) -> tuple[Log, list[tuple[str, bytes]], str]:
    """A signed exchange and its bundle inputs."""
    return signed_exchange(pki, edxml_document, edxml_status)


def test_bundle_verifies_with_only_the_ca_pem(exchange: Any, pki: Any) -> None:
    """A bundle holds on a clean machine given the CA PEM; its timeline lists the events."""
    log, packages, document_id = exchange
    data = make_bundle(log, packages[:2], document_id)
    report = evidence.verify_bundle(data, [pki.ca_path.read_bytes()])
    assert report.ok, report.problems
    assert report.document_id == document_id and report.checkpoints >= 1
    assert [e.kind for e in report.events][:3] == ["submitted", "published", "status_received"]
    assert all(p["ok"] for p in report.packages)
    assert report.warnings  # the fourth event's bytes were left out of this bundle


def test_bundle_names_a_forged_receipt(exchange: Any, pki: Any) -> None:
    """A receipt signed with another agency's certificate fails the bundle's receipt check."""
    log, packages, document_id = exchange
    data = make_bundle(log, packages, document_id)
    report = evidence.verify_bundle(
        data, [pki.ca_path.read_bytes()], package_signature(pki.trust_store())
    )
    assert [p.code for p in report.problems] == ["AUDIT_RECEIPT_INVALID"]
    assert "status-06.xml" in report.problems[0].message
    assert [p["ok"] for p in report.packages] == [True, True, False]


def _rewrite(data: bytes, name: str, change: Callable[[bytes], bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, change(body) if info.filename == name else body)
    return out.getvalue()


def test_tampered_bundles_are_named(exchange: Any, pki: Any) -> None:
    """A flipped package byte, an edited entry, a forged checkpoint, or garbage: each is named."""
    log, packages, document_id = exchange
    data = make_bundle(log, packages[:2], document_id)
    anchors = [pki.ca_path.read_bytes()]

    def flip(body: bytes) -> bytes:
        return body.replace(b"OrganName>", b"OrganName> ", 1)

    def codes(bundle: bytes) -> list[str]:
        return [p.code for p in evidence.verify_bundle(bundle, anchors).problems]

    assert codes(_rewrite(data, "packages/status-01.xml", flip)) == ["AUDIT_BUNDLE_PACKAGE"]
    edit_entry = _rewrite(data, "entries.jsonl", lambda b: b.replace(b'"published"',
                                                                     b'"publish_failed"'))
    assert codes(edit_entry)[0] == Code.EDITED
    rogue_key, rogue = dev_pki.init_ca("Rogue", key_type="p256")

    def forge(body: bytes) -> bytes:
        cps = list(audit.checkpoints_from_jsonl(body.decode().splitlines()))
        by_seq = {e.seq: e for e in log.entries}
        fake = [audit.make_checkpoint(by_seq[c.seq], rogue_key, rogue, G22) for c in cps]
        return "".join(audit.to_jsonl(fake)).encode()

    assert codes(_rewrite(data, "checkpoints.jsonl", forge))[0] == Code.CHECKPOINT_SIGNATURE
    assert codes(b"not a zip") == ["AUDIT_BUNDLE_MALFORMED"]
    other_anchor = [dev_pki.cert_to_pem(rogue)]
    assert evidence.verify_bundle(data, other_anchor).problems[0].code == Code.CHECKPOINT_SIGNATURE


def test_bundle_needs_a_sealed_chain(exchange: Any) -> None:
    """Entries after the last checkpoint cannot go in a bundle until the chain is sealed."""
    log, _, _ = exchange
    with pytest.raises(EdocAxisError) as err:
        evidence.bundle_ranges([log.entries[-1].seq], [c.seq for c in log.checkpoints])
    assert err.value.code == "AUDIT_NOT_SEALED"
    assert evidence.bundle_ranges([1, 2, 7], [3, 6, 9, 12]) == [(1, 3), (7, 9)]
    assert evidence.bundle_ranges([1, 4], [3, 6]) == [(1, 6)]


# --- archives ------------------------------------------------------------------------------------


def test_verification_continues_across_archive_boundaries(
    log: Log, check: auditcheck.CertificateCheck, pki: Any
) -> None:
    """Two archives and the live rest verify as one chain; a gap between them is named."""
    cut1, cut2 = log.checkpoints[1].seq, log.checkpoints[3].seq
    first = evidence.archive_segment(
        log.entries[:cut1], [c for c in log.checkpoints if c.seq <= cut1], organ_id=G22
    )
    second = evidence.archive_segment(
        log.entries[cut1:cut2], [c for c in log.checkpoints if cut1 < c.seq <= cut2],
        organ_id=G22,
    )
    store = pki.trust_store()
    one = evidence.verify_archive(first, trust=store, start_prev_hash=GENESIS, start_seq=1)
    assert one.ok and one.last_seq == cut1
    two = evidence.verify_archive(
        io.BytesIO(second), trust=store, start_prev_hash=one.head_hash, start_seq=cut1 + 1
    )
    assert two.ok, list(two.all_problems())
    live = auditcheck.verify_chain(
        log.entries[cut2:], start_prev_hash=two.head_hash or "", start_seq=cut2 + 1, trust=check,
        checkpoints=[c for c in log.checkpoints if c.seq > cut2],
    )
    assert live.ok
    skipped = evidence.verify_archive(second, trust=store, start_prev_hash=GENESIS, start_seq=1)
    assert not skipped.ok
    assert next(p.code for p in skipped.all_problems()) == Code.DELETED


def test_archive_must_end_on_a_checkpoint_and_detects_edits(
    log: Log, pki: Any
) -> None:
    """An unsealed archive is refused; an edited archived entry is named."""
    cut = log.checkpoints[1].seq
    with pytest.raises(EdocAxisError):
        evidence.archive_segment(log.entries[: cut - 1], log.checkpoints, organ_id=G22)
    data = evidence.archive_segment(
        log.entries[:cut], [c for c in log.checkpoints if c.seq <= cut], organ_id=G22
    )
    edited = _rewrite(data, "entries.jsonl", lambda b: b.replace(b'"pkg-3"', b'"pkg-X"'))
    report = evidence.verify_archive(edited, trust=pki.trust_store())
    assert next(p.code for p in report.all_problems()) == Code.EDITED
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))
    assert manifest["last_seq"] == cut and manifest["head_hash"] == log.entries[cut - 1].entry_hash
