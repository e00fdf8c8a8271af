"""Evidence bundles: one document's signed packages and sealed chain segments, verified anywhere
with only the CA; forged receipts and every tampering named."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from audit_samples import G22, GENESIS, H41, POLICY, Log, rewrite_member

from edoc_axis.audit.bundle import (
    BundleReceiptVerifier,
    build_bundle,
    bundle_ranges,
    verify_bundle,
)
from edoc_axis.audit.chain import AuditEntry, Kind, next_entry
from edoc_axis.audit.checkpoint import Checkpoint, make_checkpoint, seal
from edoc_axis.audit.export import checkpoints_from_jsonl, to_jsonl
from edoc_axis.errors import EdocAxisError, ErrorCode, SignatureInvalid
from edoc_axis.ops import pki as dev_pki
from edoc_axis.trust import signature


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
        head = next_entry(
            head, kind=kind, genesis=GENESIS, document_id=document_id if i < 4 else f"other-{i}",
            counterpart=counterpart, content_sha256=digest, package_id=f"p{i}",
        )
        log.entries.append(head)
        if POLICY.due(last_cp, head):
            last_cp, head = seal(head, g.key, g.cert, G22, genesis=GENESIS)
            log.checkpoints.append(last_cp)
            log.entries.append(head)
    packages = [("document.xml", doc), ("status-01.xml", status), ("status-06.xml", forged)]
    return log, packages, document_id


def make_bundle(log: Log, packages: list[tuple[str, bytes]], document_id: str) -> bytes:
    """What the node's ``audit bundle`` does with store rows."""
    involved = [e.seq for e in log.entries if e.document_id == document_id]
    ranges = bundle_ranges(involved, [c.seq for c in log.checkpoints])
    entries = [e for e in log.entries if any(a <= e.seq <= b for a, b in ranges)]
    cps = [c for c in log.checkpoints if any(a <= c.seq <= b for a, b in ranges)]
    return build_bundle(document_id, packages, entries, cps, organ_id=G22)


def package_signature(pki_store: Any) -> BundleReceiptVerifier:
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
    report = verify_bundle(data, [pki.ca_path.read_bytes()])
    assert report.ok, report.problems
    assert report.document_id == document_id and report.checkpoints >= 1
    assert [e.kind for e in report.events][:3] == ["submitted", "published", "status_received"]
    assert all(p["ok"] for p in report.packages)
    assert report.warnings  # the fourth event's bytes were left out of this bundle


def test_bundle_names_a_forged_receipt(exchange: Any, pki: Any) -> None:
    """A receipt signed with another agency's certificate fails the bundle's receipt check."""
    log, packages, document_id = exchange
    data = make_bundle(log, packages, document_id)
    report = verify_bundle(
        data, [pki.ca_path.read_bytes()], package_signature(pki.trust_store())
    )
    assert [p.code for p in report.problems] == ["AUDIT_RECEIPT_INVALID"]
    assert "status-06.xml" in report.problems[0].message
    assert [p["ok"] for p in report.packages] == [True, True, False]


def test_tampered_bundles_are_named(exchange: Any, pki: Any) -> None:
    """A flipped package byte, an edited entry, a forged checkpoint, or garbage: each is named."""
    log, packages, document_id = exchange
    data = make_bundle(log, packages[:2], document_id)
    anchors = [pki.ca_path.read_bytes()]

    def flip(body: bytes) -> bytes:
        return body.replace(b"OrganName>", b"OrganName> ", 1)

    def codes(bundle: bytes) -> list[str]:
        return [p.code for p in verify_bundle(bundle, anchors).problems]

    assert codes(rewrite_member(data, "packages/status-01.xml", flip)) == ["AUDIT_BUNDLE_PACKAGE"]
    edit_entry = rewrite_member(data, "entries.jsonl", lambda b: b.replace(b'"published"',
                                                                     b'"publish_failed"'))
    assert codes(edit_entry)[0] == ErrorCode.AUDIT_EDITED
    rogue_key, rogue = dev_pki.init_ca("Rogue", key_type="p256")

    def forge(body: bytes) -> bytes:
        cps = list(checkpoints_from_jsonl(body.decode().splitlines()))
        by_seq = {e.seq: e for e in log.entries}
        fake = [make_checkpoint(by_seq[c.seq], rogue_key, rogue, G22) for c in cps]
        return "".join(to_jsonl(fake)).encode()

    assert codes(rewrite_member(data, "checkpoints.jsonl",
                                forge))[0] == ErrorCode.AUDIT_CHECKPOINT_SIGNATURE
    assert codes(b"not a zip") == ["AUDIT_BUNDLE_MALFORMED"]
    other_anchor = [dev_pki.cert_to_pem(rogue)]  # the wrong CA: one finding, no package blamed
    assert [p.code for p in verify_bundle(data, other_anchor).problems] == [
        ErrorCode.AUDIT_BUNDLE_UNTRUSTED]


def test_bundle_needs_a_sealed_chain(exchange: Any) -> None:
    """Entries after the last checkpoint cannot go in a bundle until the chain is sealed."""
    log, _, _ = exchange
    with pytest.raises(EdocAxisError) as err:
        bundle_ranges([log.entries[-1].seq], [c.seq for c in log.checkpoints])
    assert err.value.code == "AUDIT_NOT_SEALED"
    assert bundle_ranges([1, 2, 7], [3, 6, 9, 12]) == [(1, 3), (7, 9)]
    assert bundle_ranges([1, 4], [3, 6]) == [(1, 6)]
