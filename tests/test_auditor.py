"""The auditor on a real node's store: the chain appended with each event holds, and every
tampering an attacker with the SQLite file could do (edit, delete, insert, reorder, rehash,
forge) is named."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import AuditedExchange, build_edxml_status

from edoc_axis.audit import chain as audit
from edoc_axis.audit.auditor import Auditor, LogReport
from edoc_axis.audit.chain import AuditEntry
from edoc_axis.node.wiring import load_identity, load_trust
from edoc_axis.store.audit_rows import ENTRY_COLUMNS
from edoc_axis.trust.certificate import fingerprint
from edoc_axis.trust.signature import sign

pytestmark = pytest.mark.broker

G22, H41, H42 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H42"


def auditor(exchange: AuditedExchange, organ_id: str = G22) -> Auditor:
    """An auditor of one node's store after the exchange."""
    settings = exchange.settings[organ_id]
    return Auditor.open(settings, load_trust(settings))


def verify(exchange: AuditedExchange, organ_id: str = G22) -> LogReport:
    """``audit verify`` of one node, with receipts."""
    checker = auditor(exchange, organ_id)
    try:
        return checker.verify()
    finally:
        checker.close()


def db(exchange: AuditedExchange, organ_id: str = G22) -> sqlite3.Connection:
    """The node's SQLite file opened as an attacker would."""
    return sqlite3.connect(exchange.settings[organ_id].store_path, isolation_level=None)


def rows(conn: sqlite3.Connection) -> list[AuditEntry]:
    """Every audit entry, in seq order."""
    return [AuditEntry(*r) for r in conn.execute(
        f"SELECT {ENTRY_COLUMNS} FROM audit_entry ORDER BY seq")]  # noqa: S608


def rewrite(conn: sqlite3.Connection, entries: list[AuditEntry]) -> None:
    """Replace the whole audit_entry table (what an attacker does to renumber rows)."""
    conn.execute("DELETE FROM audit_entry")
    conn.executemany(f"INSERT INTO audit_entry ({ENTRY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                     [tuple(e.to_dict().values()) for e in entries])


def first_problem(report: LogReport) -> tuple[int | None, str]:
    """(seq, code) of the first problem named."""
    assert not report.ok
    problem = report.first
    assert problem is not None
    return problem.seq, problem.code


def status_entry(entries: list[AuditEntry], code: str) -> AuditEntry:
    """The status_received entry of a status code."""
    return next(e for e in entries if e.kind == "status_received" and e.detail
                and json.loads(e.detail).get("code") == code)


def test_exchange_is_chained_with_signers_and_holds(audited_exchange: AuditedExchange) -> None:
    """Every event of the exchange is an entry with its signed bytes' hash and signer; it holds."""
    x = audited_exchange
    with db(x) as conn:
        entries = rows(conn)
    kinds = [e.kind for e in entries]
    for kind in ("submitted", "published", "status_received", "status_sent", "checkpoint"):
        assert kind in kinds
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    submitted = entries[kinds.index("submitted")]
    assert submitted.document_id == x.document_id
    assert submitted.signer == x.axis.agencies[G22].fingerprint
    assert status_entry(entries, "03").signer == x.axis.agencies[H41].fingerprint
    assert entries[-1].kind == "checkpoint"
    report = verify(x)
    assert report.ok, report.to_dict()
    assert report.chain.checkpoints >= 3
    assert report.chain.receipts >= 4
    with db(x, H41) as conn:
        received = next(e for e in rows(conn) if e.kind == "received")
    assert received.signer == x.axis.agencies[G22].fingerprint
    assert received.content_sha256 == submitted.content_sha256  # the same signed bytes
    h41 = verify(x, H41)
    assert h41.ok, h41.to_dict()


def test_changed_status_is_named(audited_exchange: AuditedExchange) -> None:
    """Turning the recorded status 03 into 06 is reported as an edit of that entry."""
    x = audited_exchange
    with db(x) as conn:
        target = status_entry(rows(conn), "03")
        conn.execute("UPDATE audit_entry SET detail = ? WHERE seq = ?",
                     (target.detail.replace("03", "06") if target.detail else None, target.seq))
    assert first_problem(verify(x)) == (target.seq, "AUDIT_EDITED")


def test_deleted_row_is_named(audited_exchange: AuditedExchange) -> None:
    """Deleting one entry is reported at the missing seq."""
    x = audited_exchange
    with db(x) as conn:
        conn.execute("DELETE FROM audit_entry WHERE seq = 4")
    assert first_problem(verify(x)) == (4, "AUDIT_DELETED")


def test_fabricated_entry_inserted_and_renumbered_is_named(
    audited_exchange: AuditedExchange,
) -> None:
    """A fabricated receipt entry slipped in (later rows renumbered) is reported as inserted."""
    x = audited_exchange
    with db(x) as conn:
        entries = rows(conn)
        fake = audit.next_entry(entries[2], kind="status_received", genesis=audit.genesis_hash(G22),
                                document_id=x.document_id, counterpart=H41,
                                content_sha256="ab" * 32, detail='{"code":"06"}')
        shifted = [replace(e, seq=e.seq + 1) for e in entries[3:]]
        rewrite(conn, [*entries[:3], fake, *shifted])
    report = verify(x)
    # the fake's seq held a signed checkpoint head (or points at bytes never stored), and the
    # row after it was hashed under another seq
    seq, code = first_problem(report)
    assert seq == fake.seq
    assert code in ("AUDIT_CHECKPOINT_HEAD", "AUDIT_RECEIPT_INVALID")
    named = {(p.seq, p.code) for p in report.chain.problems}
    assert named & {(fake.seq + 1, "AUDIT_INSERTED"), (fake.seq + 1, "AUDIT_LINK_BROKEN")}


def test_reordered_entries_are_named(audited_exchange: AuditedExchange) -> None:
    """Swapping two entries' places is reported as a reordering."""
    x = audited_exchange
    with db(x) as conn:
        entries = rows(conn)
        a, b = entries[4], entries[5]
        entries[4], entries[5] = replace(b, seq=a.seq), replace(a, seq=b.seq)
        rewrite(conn, entries)
    seq, code = first_problem(verify(x))
    assert code == "AUDIT_REORDERED"
    assert seq in (5, 6)


def test_edit_with_recomputed_hashes_breaks_the_signed_checkpoint(
    audited_exchange: AuditedExchange,
) -> None:
    """Editing an entry and recomputing every later hash contradicts the next signed head."""
    x = audited_exchange
    with db(x) as conn:
        entries = rows(conn)
        target = status_entry(entries, "03")
        at = target.seq - 1
        out = entries[:at]
        for e in entries[at:]:
            changed = replace(e, detail='{"code":"06"}') if e.seq == target.seq else e
            draft = replace(changed, prev_hash=out[-1].entry_hash)
            out.append(replace(draft, entry_hash=draft.computed_hash()))
        rewrite(conn, out)
    seq, code = first_problem(verify(x))
    assert code == "AUDIT_CHECKPOINT_HEAD"
    assert seq is not None and seq >= target.seq


def test_forged_receipt_signed_by_another_agency_is_named(
    audited_exchange: AuditedExchange,
) -> None:
    """A status 06 "from H41" signed with H42's certificate, stored and chained, is caught."""
    x = audited_exchange
    forger = x.axis.pki.agencies[H42]
    body = sign(build_edxml_status(H41, G22, "06"), forger.key, forger.cert)
    digest = hashlib.sha256(body).hexdigest()
    with db(x) as conn:
        cur = conn.execute(
            "INSERT INTO packages (package_id, direction, kind, sender, recipients, document_id,"
            " business_op, status_code, message_id, sha256, dedupe_digest, size, created_at)"
            " VALUES ('forged', 'in', 'status', ?, ?, ?, 0, '06', 'forged', ?, ?, ?, 'x')",
            (H41, G22, x.document_id, digest, digest, len(body)))
        conn.execute("INSERT INTO package_bodies (package, body) VALUES (?, ?)",
                     (cur.lastrowid, body))
        head = rows(conn)[-1]
        forged = audit.next_entry(head, kind="status_received", genesis=audit.genesis_hash(G22),
                                  package_id="forged", document_id=x.document_id,
                                  counterpart=H41, content_sha256=digest,
                                  signer=fingerprint(forger.cert), detail='{"code":"06"}')
        rewrite(conn, [*rows(conn), forged])
    report = verify(x)
    assert first_problem(report) == (forged.seq, "AUDIT_RECEIPT_INVALID")


def test_altered_stored_receipt_is_named(audited_exchange: AuditedExchange) -> None:
    """Changing the stored bytes of a signed receipt is reported at its entry."""
    x = audited_exchange
    with db(x) as conn:
        target = status_entry(rows(conn), "03")
        body = bytes(conn.execute(
            "SELECT b.body FROM package_bodies b JOIN packages p ON p.id = b.package"
            " WHERE p.sha256 = ?", (target.content_sha256,)).fetchone()[0])
        conn.execute(
            "UPDATE package_bodies SET body = ? WHERE package ="
            " (SELECT id FROM packages WHERE sha256 = ?)",
            (body.replace(b"<StatusCode>03<", b"<StatusCode>06<"), target.content_sha256))
    assert first_problem(verify(x)) == (target.seq, "AUDIT_RECEIPT_INVALID")


def test_archive_then_verify_holds_across_the_boundary(
    audited_exchange: AuditedExchange, tmp_path: Path
) -> None:
    """Archived entries leave the live log; verification chains from the archive's head, and an
    altered archive file is named."""
    import datetime as dt

    x = audited_exchange
    settings = x.settings[G22]
    checker = Auditor.open(settings, load_trust(settings), load_identity(settings))
    try:
        before = checker.log.span()
        record = checker.archive(dt.datetime.now(dt.UTC) + dt.timedelta(days=1), tmp_path)
        assert record is not None and before is not None
        assert record.first_seq == 1
        span = checker.log.span()
        assert span is not None and span[0] == record.last_seq + 1
        checker.seal()
        report = checker.verify()
        assert report.ok, report.to_dict()
        assert report.archives[0]["checked"]
        Path(record.path).write_bytes(Path(record.path).read_bytes() + b"x")
        assert first_problem(checker.verify())[1] == "AUDIT_EDITED"
    finally:
        checker.close()
