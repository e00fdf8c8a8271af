"""Evidence bundles: one document's signed packages with the chain segments that seal them.

Layout (``edoc-axis/evidence-bundle/1``)::

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

``verify_bundle_file`` checks a bundle anywhere with the CA files alone (``edoc-axis audit
verify-bundle``), signatures of the packages included.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from edoc_axis.audit.chain import SIGNED_KINDS, AuditEntry, format_time
from edoc_axis.audit.checkpoint import Checkpoint, trusted_anchors
from edoc_axis.audit.evidence import evidence_error, open_zip, read_manifest, read_member
from edoc_axis.audit.export import checkpoints_from_jsonl, entries_from_jsonl, to_jsonl
from edoc_axis.audit.receipt import check_signed_bytes
from edoc_axis.audit.verification import Problem, verify_chain
from edoc_axis.errors import EdocAxisError, ErrorCode, NotFound
from edoc_axis.trust.certificate import fingerprint, load_certificates
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.policy import SignaturePolicy

BUNDLE_FORMAT = "edoc-axis/evidence-bundle/1"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")

BundleReceiptVerifier = Callable[[AuditEntry, bytes], str | None]
"""Check one signed package of a bundle (e.g. ``signature.verify``); return why it fails."""


def bundle_ranges(involved: Iterable[int], checkpoint_seqs: Sequence[int]) -> list[tuple[int, int]]:
    """The seq ranges a bundle must carry: each involved seq up to the next checkpoint, merged.

    ``checkpoint_seqs`` ascending. Raises ``AUDIT_NOT_SEALED`` when an involved entry comes
    after the last checkpoint (seal the chain first, then build the bundle).
    """
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(involved)):
        at = bisect.bisect_left(checkpoint_seqs, seq)
        if at == len(checkpoint_seqs):
            raise evidence_error(
                f"entry {seq} is not covered by a checkpoint yet; seal the chain first",
                ErrorCode.AUDIT_NOT_SEALED,
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
            raise evidence_error(
                f"unusable or duplicate package file name {name!r}", ErrorCode.AUDIT_BUNDLE_NAME
            )
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
    zf = open_zip(data)
    manifest = read_manifest(zf, BUNDLE_FORMAT)
    document_id, organ_id = manifest.get("document_id"), manifest.get("organ_id")
    if not isinstance(document_id, str) or not isinstance(organ_id, str):
        raise evidence_error("manifest lacks document_id/organ_id",
                             ErrorCode.AUDIT_BUNDLE_MALFORMED)
    report.document_id, report.organ_id = document_id, organ_id
    extra = [read_member(zf, n) for n in zf.namelist() if n.startswith("certs/")]
    store = TrustStore.from_pem(anchors, intermediates=extra)
    check = trusted_anchors(store, organ_id)
    entries = list(
        entries_from_jsonl(read_member(zf, "entries.jsonl").decode("utf-8").splitlines())
    )
    checkpoints = list(
        checkpoints_from_jsonl(read_member(zf, "checkpoints.jsonl").decode("utf-8").splitlines())
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
                last, ErrorCode.AUDIT_BUNDLE_UNSEALED,
                f"chain segment {first}..{last} does not end on a valid checkpoint",
            ))
        elif chain.ok:
            for e in segment:
                if e.document_id == document_id and e.content_sha256:
                    sealed.setdefault(e.content_sha256, e)
    report.events = [e for e in entries if e.document_id == document_id]
    if not report.events:
        report.problems.append(
            Problem(None, ErrorCode.AUDIT_BUNDLE_EMPTY, f"no entry about document {document_id}")
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
        raise evidence_error("manifest lacks its package list", ErrorCode.AUDIT_BUNDLE_MALFORMED)
    covered: set[str] = set()
    for item in listed:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
            raise evidence_error(
                f"bad package entry in manifest: {item!r}", ErrorCode.AUDIT_BUNDLE_MALFORMED
            )
        body = read_member(zf, f"packages/{name}")
        digest = hashlib.sha256(body).hexdigest()
        entry = sealed.get(digest)
        row: dict[str, Any] = {"name": name, "sha256": digest, "ok": entry is not None}
        if entry is None:
            report.problems.append(Problem(
                None, ErrorCode.AUDIT_BUNDLE_PACKAGE,
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
                    entry.seq, ErrorCode.AUDIT_RECEIPT_INVALID, f"package {name}: {why}"
                ))
        report.packages.append(row)
    for e in report.events:
        if e.content_sha256 and e.content_sha256 in sealed and e.content_sha256 not in covered:
            report.warnings.append(
                f"entry {e.seq} ({e.kind}) refers to signed bytes the bundle does not include"
            )


def _bundle_parts(data: bytes) -> tuple[str, list[bytes]]:
    """The node OrganId and extra certificates of a bundle ("" and [] when unreadable: the
    full check in ``verify_bundle`` then names what is wrong)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            extra = [zf.read(n) for n in zf.namelist() if n.startswith("certs/")]
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError):
        return "", []
    organ_id = manifest.get("organ_id") if isinstance(manifest, dict) else None
    return (organ_id if isinstance(organ_id, str) else ""), extra


def verify_bundle_file(data: bytes, anchor_pems: list[bytes]) -> BundleReport:
    """Check an evidence bundle with trust anchors only (no node, no database): the chain
    segments and checkpoints, and every signed package's signer."""
    organ_id, extra = _bundle_parts(data)
    store = TrustStore.from_pem(anchor_pems, intermediates=extra)
    policy = SignaturePolicy(require_signature=True, crl_required=False)

    def check(entry: AuditEntry, body: bytes) -> str | None:
        if entry.kind not in SIGNED_KINDS:
            return None
        return check_signed_bytes(entry, body, store, policy, organ_id)

    return verify_bundle(data, anchor_pems, check)


def anchors_from(paths: list[Path]) -> list[bytes]:
    """PEM contents of CA files (each must hold at least one certificate)."""
    out = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NotFound(f"cannot read {path}: {exc.strerror}",
                           code=ErrorCode.FILE_UNREADABLE) from exc
        load_certificates(data)
        out.append(data)
    return out
