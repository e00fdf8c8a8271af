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
from cryptography.x509.oid import NameOID

from edoc_axis.audit.chain import SIGNED_KINDS, AuditEntry, format_time
from edoc_axis.audit.checkpoint import CertificateCheck, Checkpoint, trusted_anchors
from edoc_axis.audit.evidence import evidence_error, open_zip, read_manifest, read_member
from edoc_axis.audit.export import checkpoints_from_jsonl, entries_from_jsonl, to_jsonl
from edoc_axis.audit.receipt import Signer, check_signed_bytes
from edoc_axis.audit.verification import Problem, verify_chain
from edoc_axis.errors import EdocAxisError, ErrorCode, NotFound, SignatureInvalid
from edoc_axis.trust.certificate import fingerprint, load_certificates, organ_id_of, subject_of
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.policy import SignaturePolicy

BUNDLE_FORMAT = "edoc-axis/evidence-bundle/1"
UNTRUSTED_SIGNER = f"({ErrorCode.CERT_UNTRUSTED}:"  # in check_signed_bytes' reason
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
    signers: dict[str, Signer] = field(default_factory=dict)  # fingerprint -> who it names
    untrusted: bool = False  # the checkpoints hold, but under a certificate no anchor issued

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
            "untrusted": self.untrusted,
            "signers": {fp: {"organ_id": s.organ_id, "name": s.name}
                        for fp, s in self.signers.items()},
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
    try:
        zf = open_zip(data)
        manifest = read_manifest(zf, BUNDLE_FORMAT)
    except EdocAxisError as exc:
        raise evidence_error(
            f"{exc.message}: expected an evidence bundle ({BUNDLE_FORMAT}: a zip file written by "
            "`edoc-axis audit bundle`, holding manifest.json, entries.jsonl, checkpoints.jsonl "
            "and packages/)", exc.code) from exc
    document_id, organ_id = manifest.get("document_id"), manifest.get("organ_id")
    if not isinstance(document_id, str) or not isinstance(organ_id, str):
        raise evidence_error("manifest lacks document_id/organ_id",
                             ErrorCode.AUDIT_BUNDLE_MALFORMED)
    report.document_id, report.organ_id = document_id, organ_id
    extra = [read_member(zf, n) for n in zf.namelist() if n.startswith("certs/")]
    store = TrustStore.from_pem(anchors, intermediates=extra)
    untrusted: dict[str, x509.Certificate] = {}
    check = _attributing(trusted_anchors(store, organ_id), organ_id, untrusted)
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
    if untrusted:
        report.untrusted = True
        report.problems.insert(0, _untrusted_problem(organ_id, list(untrusted.values())))
    report.events = [e for e in entries if e.document_id == document_id]
    if not report.events:
        report.problems.append(
            Problem(None, ErrorCode.AUDIT_BUNDLE_EMPTY, f"no entry about document {document_id}")
        )
    _check_packages(zf, manifest, sealed, receipt_verifier, report)


def _attributing(
    strict: CertificateCheck, organ_id: str, untrusted: dict[str, x509.Certificate]
) -> CertificateCheck:
    """``strict``, except that a certificate chaining to no anchor is only recorded in
    ``untrusted``: the segments are then still checked under the key that signed them, so a
    wrong ``--trust`` is one finding, not a verdict of "altered" on every package."""

    def check(cert: x509.Certificate, checkpoint: Checkpoint) -> None:
        try:
            strict(cert, checkpoint)
        except SignatureInvalid as exc:
            if exc.code != ErrorCode.CERT_UNTRUSTED:
                raise
            bound = organ_id_of(cert)
            if bound != checkpoint.organ_id or bound != organ_id:
                raise SignatureInvalid(
                    f"checkpoint certificate binds OrganId {bound}, the bundle is of {organ_id}",
                    code=ErrorCode.AUDIT_CHECKPOINT_SIGNATURE, agency=checkpoint.organ_id,
                ) from exc
            untrusted.setdefault(fingerprint(cert), cert)

    return check


def _untrusted_problem(organ_id: str, certs: list[x509.Certificate]) -> Problem:
    described = "; ".join(
        f"{_name(cert.subject) or organ_id} (certificate {fingerprint(cert)[:16]}..., issued by "
        f"{_name(cert.issuer) or subject_of(cert)})" for cert in certs)
    return Problem(None, ErrorCode.AUDIT_BUNDLE_UNTRUSTED, (
        f"the bundle's checkpoints are signed by {organ_id} {described}, and no CA given with "
        "--trust issued that certificate: the bundle cannot be attributed to anyone you trust. "
        "Checked under that certificate, nothing in it was found altered; verify again with the "
        f"CA that issued {organ_id}'s certificate"))


def _name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME) or name.get_attributes_for_oid(
        NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else None


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
    not_attributed = 0
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
            if why and report.untrusted and UNTRUSTED_SIGNER in why:
                row.update(ok=False, untrusted=True)  # the same finding as the checkpoints'
                not_attributed += 1
            elif why:
                row["ok"] = False
                report.problems.append(Problem(
                    entry.seq, ErrorCode.AUDIT_RECEIPT_INVALID, f"package {name}: {why}"
                ))
        report.packages.append(row)
    if not_attributed:
        first = report.problems[0]
        report.problems[0] = Problem(first.seq, first.code, (
            f"{first.message}. The signatures of {not_attributed} package(s) do not chain to "
            "that CA either"))
    for e in report.events:
        if e.content_sha256 and e.content_sha256 in sealed and e.content_sha256 not in covered:
            report.warnings.append(
                f"entry {e.seq} ({e.kind}) refers to signed bytes the bundle does not include"
            )


def bundle_summary(data: bytes) -> dict[str, Any]:
    """What a bundle just built holds (its manifest): document, node, packages, segments."""
    manifest = read_manifest(open_zip(data), BUNDLE_FORMAT)
    return {key: manifest.get(key)
            for key in ("document_id", "organ_id", "created_at", "packages", "segments")}


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

    signers: dict[str, Signer] = {}

    def check(entry: AuditEntry, body: bytes) -> str | None:
        if entry.kind not in SIGNED_KINDS:
            return None
        return check_signed_bytes(entry, body, store, policy, organ_id, signers=signers)

    report = verify_bundle(data, anchor_pems, check)
    report.signers = signers
    return report


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
