"""``edoc-axis audit``: verify, trace, export, bundle and archive the node's audit chain.

Exit codes: 0 when everything checked holds, 65 when the chain, a checkpoint, a receipt or a
bundle does not hold or entries were left unsealed too long (the first problem is named), 2 for
a reversed --from/--to, 78 for configuration errors, including no store at the config's
data_dir (``STORE_NOT_FOUND``: these commands never create one; verify, trail and export open it
read-only). ``--json`` prints one JSON document and nothing else; progress bars go to stderr
only when it is a terminal (``cli.progress``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from edoc_axis.audit.auditor import Auditor
from edoc_axis.audit.bundle import (
    BundleReport,
    anchors_from,
    bundle_summary,
    verify_bundle_file,
)
from edoc_axis.audit.verification import Problem
from edoc_axis.cli.base import config_option, echo_json, json_option, reported_errors
from edoc_axis.cli.display import stored_time
from edoc_axis.cli.progress import progress, stderr_is_terminal
from edoc_axis.config.load import load_settings
from edoc_axis.directory import Directory
from edoc_axis.edxml.model import STATUS_CODES
from edoc_axis.errors import EXIT_INVALID, EdocAxisError, ErrorCode, NotFound
from edoc_axis.node.wiring import load_identity, load_trust

DATE = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"])
TROUBLE_KINDS = frozenset({"publish_failed", "rejected", "dead_lettered"})
TROUBLE_STATUSES = frozenset({"02", "16"})  # rejected, take-back refused


def _ordered(first: Any, last: Any, what: str) -> None:
    """Refuse a reversed range as a usage error (exit 2)."""
    if first is not None and last is not None and first > last:
        raise click.BadParameter(
            f"--from {_shown(first)} is after --to {_shown(last)}: give the {what} oldest "
            "first", param_hint="'--from'/'--to'")


def _shown(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat()
    return str(value)


def status_meaning(code: str | None) -> str | None:
    """The edXML meaning of a status code (01 arrived, 02 rejected, ...)."""
    known = STATUS_CODES.get(code or "")
    return known[1] if known else None


def _signer_of(directory: Directory | None, fingerprint: str | None) -> dict[str, str | None]:
    """Who a certificate fingerprint belongs to, by the agency directory."""
    agency = directory.by_fingerprint(fingerprint) if directory and fingerprint else None
    return {"organ_id": agency.organ_id if agency else None,
            "name": agency.name if agency else None}


def _who(signer: Mapping[str, str | None], fingerprint: str) -> str:
    named = " ".join(v for v in (signer.get("organ_id"), signer.get("name")) if v)
    return f"{named} (certificate {fingerprint[:16]}...)" if named else \
        f"certificate {fingerprint[:16]}... (not in the directory)"


def _summary(events: Sequence[Mapping[str, Any]], problems: int) -> str:
    """``N entries: 2 published, 3 status_received (01 x2, 03 x1); 0 problems``."""
    kinds = Counter(e["event"] for e in events)
    codes: dict[str, Counter[str]] = {}
    for e in events:
        if e.get("status"):
            codes.setdefault(e["event"], Counter())[e["status"]] += 1
    parts = []
    for kind, count in kinds.items():
        detail = codes.get(kind)
        shown = f" ({', '.join(f'{c} x{n}' for c, n in sorted(detail.items()))})" if detail \
            else ""
        parts.append(f"{count} {kind}{shown}")
    return f"{len(events)} entries: {', '.join(parts)}; {problems} problem(s)"


def _trouble(events: Sequence[Mapping[str, Any]]) -> int:
    return sum(1 for e in events
               if e["event"] in TROUBLE_KINDS or e.get("status") in TROUBLE_STATUSES)


def _date(value: dt.datetime) -> dt.date | dt.datetime:
    """A date given without a time is a whole day; with a time, that instant in UTC."""
    if value.time() == dt.time(0):
        return value.date()
    return value.replace(tzinfo=dt.UTC)


@contextmanager
def _auditor(config_path: Path | None, *, sealing: bool = False,
             writable: bool = False) -> Iterator[Auditor]:
    """The node's auditor: read-only unless ``writable``; never creates a store."""
    settings = load_settings(config_path)
    identity = load_identity(settings) if sealing else None
    auditor = Auditor.open(settings, load_trust(settings), identity, writable=writable)
    try:
        yield auditor
    finally:
        auditor.close()


def _describe(problem: Problem) -> str:
    where = f"seq {problem.seq}: " if problem.seq is not None else ""
    return f"{where}{problem.code}: {problem.message}"


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit chain: every package and receipt, hash-linked and signed.

    Verify it (`verify`), follow one document (`trail`), export it for spreadsheets
    (`export`), hand evidence to an auditor (`bundle`, checked with `verify-bundle`), and move
    old entries to archive files (`archive`).
    """


@audit_group.command("verify")
@config_option
@click.option("--from", "first", type=click.IntRange(min=1), default=None,
              help="First entry (seq) to check; default: from the start, archives included.")
@click.option("--to", "last", type=click.IntRange(min=1), default=None,
              help="Last entry (seq) to check; default: the newest.")
@click.option("--no-receipts", is_flag=True,
              help="Check the chain and checkpoints only, not the stored signatures.")
@json_option
def verify_command(config_path: Path | None, first: int | None, last: int | None,
                   no_receipts: bool, as_json: bool) -> None:
    """Recompute the chain, check every checkpoint and every stored receipt signature.

    Names the first entry that does not hold (edited, deleted, inserted, reordered, a receipt
    whose signature fails, or entries left unsealed longer than the checkpoint interval: the
    node was killed, or checkpoints removed). Reads the store without changing it; no store at
    data_dir is an error (78). Exit 0 only when everything holds, 65 otherwise.
    """
    _ordered(first, last, "entries")
    with reported_errors(), _auditor(config_path) as auditor:
        span = auditor.log.span()
        total = 0 if span is None else (last or span[1]) - (first or span[0]) + 1
        with progress("verifying", enabled=not as_json) as bar:
            report = auditor.verify(first, last, receipts=not no_receipts,
                                    progress=lambda done: bar.of(done, total))
    if as_json:
        echo_json(report.to_dict())
    else:
        chain = report.chain
        click.echo(f"entries {chain.first_seq}..{chain.last_seq} ({chain.entries}), "
                   f"checkpoints {chain.checkpoints}, receipts checked {chain.receipts}, "
                   f"archives {len(report.archives)}")
        if chain.unsealed:
            click.echo(f"note: {chain.unsealed} newest entries are not sealed by a checkpoint "
                       "yet (`edoc-axis audit seal`)")
        if report.ok:
            click.echo("OK: the audit chain holds")
        else:
            first_problem = report.first
            if first_problem is not None:
                click.echo(f"FAILED: {_describe(first_problem)}", err=True)
            count = len(report.problems) + chain.problem_count
            for problem in (report.problems + chain.problems)[1:20]:
                click.echo(f"  also {_describe(problem)}", err=True)
            click.echo(f"{count} problem(s)", err=True)
    if not report.ok:
        sys.exit(EXIT_INVALID)


@audit_group.command("trail")
@config_option
@click.argument("document_id")
@json_option
def trail_command(config_path: Path | None, document_id: str, as_json: bool) -> None:
    """The full timeline of one document across all recipients: who, what status (and what it
    means), when, and which agency's certificate signed it; then a summary line of counts."""
    with reported_errors(), _auditor(config_path) as auditor:
        events = auditor.trail(document_id)
        directory = _directory_of(auditor)
    for e in events:
        e["status_meaning"] = status_meaning(e["status"])
        e["signed_by"] = _signer_of(directory, e["signer"]) if e["signer"] else None
    problems = _trouble(events)
    if as_json:
        echo_json({"document_id": document_id, "events": events, "problems": problems})
        return
    click.echo(f"document {document_id}")
    for e in events:
        status = f" status {e['status']} ({e['status_meaning'] or 'unknown code'})" \
            if e["status"] else ""
        signer = f" signed by {_who(e['signed_by'], e['signer'])}" if e["signer"] else ""
        who = e["counterpart"] or "-"
        warned = e["detail"].get("warnings")
        warnings = f" warnings {','.join(warned)}" if warned else ""
        click.echo(f"  {e['seq']:>8}  {stored_time(e['at'])}  {e['event']:<16} {who}{status}"
                   f"{signer}{warnings}")
    click.echo(_summary(events, problems))


def _directory_of(auditor: Auditor) -> Directory | None:
    """The node's agency directory, to name signers (None when it cannot be read: the trail
    then shows fingerprints only)."""
    try:
        return Directory.load(auditor.settings.directory_path)
    except (EdocAxisError, OSError):
        return None


@audit_group.command("export")
@config_option
@click.option("--from", "since", type=DATE, required=True, help="First day (YYYY-MM-DD, UTC).")
@click.option("--to", "until", type=DATE, required=True, help="Last day, included (UTC).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True, help="JSON Lines (one entry per line) or CSV with a header.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (default: standard output).")
def export_command(config_path: Path | None, since: dt.datetime, until: dt.datetime, fmt: str,
                   output: Path | None) -> None:
    """Stream the entries recorded between two dates as JSON Lines or CSV.

    A progress bar goes to stderr when it is a terminal and the output is not (-o, or stdout
    redirected).
    """
    _ordered(since, until, "days")
    with reported_errors(), _auditor(config_path) as auditor:
        lo, hi = _date(since), _date(until)
        shown = output is not None or not sys.stdout.isatty()
        total = auditor.export_count(lo, hi) if shown and stderr_is_terminal() else 0
        with progress("exporting", enabled=shown) as bar:
            done = [0]

            def step(count: int) -> None:
                done[0] += count
                bar.of(done[0], total)

            if output is None:
                auditor.export(lo, hi, fmt, sys.stdout, progress=step)
                return
            with output.open("w", encoding="utf-8", newline="") as sink:
                count = auditor.export(lo, hi, fmt, sink, progress=step)
    click.echo(f"exported {count} entries to {output}", err=True)


@audit_group.command("bundle")
@config_option
@click.argument("document_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The evidence bundle to write (a .zip file).")
@json_option
def bundle_command(config_path: Path | None, document_id: str, output: Path,
                   as_json: bool) -> None:
    """Pack the signed document, every signed receipt, the chain entries involved and a
    checkpoint covering them; check it anywhere with `edoc-axis audit verify-bundle`."""
    with reported_errors(), _auditor(config_path, sealing=True) as auditor:
        with progress("bundling", enabled=not as_json) as bar:
            data = auditor.bundle(document_id, progress=bar.of)
        output.write_bytes(data)
        summary = bundle_summary(data)
    if as_json:
        echo_json({"output": str(output), "bytes": len(data),
                   "sha256": hashlib.sha256(data).hexdigest(), **summary})
        return
    click.echo(f"wrote {output} ({len(data)} bytes): {len(summary['packages'])} signed "
               f"packages, entries {', '.join(f'{a}..{b}' for a, b in summary['segments'])}")


@audit_group.command("verify-bundle")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--trust", "anchors", type=click.Path(dir_okay=False, path_type=Path),
              multiple=True, required=True, help="Root CA certificate (PEM); repeatable.")
@json_option
def verify_bundle_command(bundle: Path, anchors: tuple[Path, ...], as_json: bool) -> None:
    """Check an evidence bundle with only the CA certificate: no node or database needed.

    Exit 0 when every chain segment, checkpoint and signed package holds, 65 otherwise. A
    --trust CA that did not issue the node's certificate is one finding,
    AUDIT_BUNDLE_UNTRUSTED (the bundle cannot be attributed; nothing was found altered), not a
    verdict on each package.
    """
    with reported_errors():
        try:
            data = bundle.read_bytes()
        except OSError as exc:
            raise NotFound(f"cannot read {bundle}: {exc.strerror}",
                           code=ErrorCode.FILE_UNREADABLE) from exc
        report = verify_bundle_file(data, anchors_from(list(anchors)))
    if as_json:
        echo_json(report.to_dict())
    else:
        _show_bundle(report)
    if not report.ok:
        sys.exit(EXIT_INVALID)


def _show_bundle(report: BundleReport) -> None:
    """The bundle's timeline, statuses with their meaning, signers by OrganId and name, the
    first problem (a trust failure alone when nothing else is wrong) and a summary line."""
    if report.document_id is None:  # not a bundle: only the finding
        click.echo(f"FAILED: {_describe(report.problems[0])}", err=True)
        return
    click.echo(f"document {report.document_id} (node {report.organ_id}): "
               f"{report.entries} entries, {report.checkpoints} checkpoints, "
               f"{len(report.packages)} signed packages")
    events = []
    for e in report.events:
        code = _status_code(e.detail)
        signer = report.signers.get(e.signer or "")
        events.append({"event": e.kind, "status": code})
        status = f" status {code} ({status_meaning(code) or 'unknown code'})" if code else ""
        who = f" signed by {_who({'organ_id': signer.organ_id, 'name': signer.name}, e.signer)}" \
            if signer and e.signer else ""
        click.echo(f"  {e.seq:>8}  {stored_time(e.at)}  {e.kind:<16} {e.counterpart or '-'}"
                   f"{status}{who}")
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if report.ok:
        click.echo("OK: the bundle holds")
    else:
        click.echo(f"FAILED: {_describe(report.problems[0])}", err=True)
        for problem in report.problems[1:20]:
            click.echo(f"  also {_describe(problem)}", err=True)
    click.echo(_summary(events, len(report.problems)))


def _status_code(detail: str | None) -> str | None:
    if not detail or not detail.startswith("{"):
        return None
    try:
        code = json.loads(detail).get("code")
    except ValueError:
        return None
    return code if isinstance(code, str) else None


@audit_group.command("archive")
@config_option
@click.option("--before", type=DATE, required=True,
              help="Archive entries recorded before this day (YYYY-MM-DD, UTC).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for the archive file (keep it; back it up).")
@json_option
def archive_command(config_path: Path | None, before: dt.datetime, out_dir: Path,
                    as_json: bool) -> None:
    """Move old entries into a sealed archive file; `audit verify` continues across it.

    The archive ends on the last checkpoint before the date, so its agency signature covers it.
    """
    with reported_errors(), _auditor(config_path, writable=True) as auditor:
        span = auditor.log.span()
        total = span[1] - span[0] + 1 if span else 0
        with progress("archiving", enabled=not as_json) as bar:
            done = [0]

            def step(count: int) -> None:
                done[0] += count
                bar.of(done[0], total)

            record = auditor.archive(_date(before), out_dir, progress=step)
    if as_json:
        echo_json({"archived": record is not None, **({
            "first_seq": record.first_seq, "last_seq": record.last_seq, "path": record.path,
            "sha256": record.sha256} if record is not None else {})})
        return
    if record is None:
        click.echo("nothing to archive: no checkpointed entry before that date")
        return
    click.echo(f"archived entries {record.first_seq}..{record.last_seq} to {record.path} "
               f"(sha256 {record.sha256})")


@audit_group.command("seal")
@config_option
@json_option
def seal_command(config_path: Path | None, as_json: bool) -> None:
    """Sign a checkpoint of the chain's head now (with this agency's key).

    A running node seals on its own (every audit.every_seconds) and at every clean stop; seal by
    hand after a node was killed, when `audit verify` reports AUDIT_UNSEALED_TAIL.
    """
    with reported_errors(), _auditor(config_path, sealing=True) as auditor:
        checkpoint = auditor.seal()
    if as_json:
        echo_json({"sealed": checkpoint is not None, **({
            "seq": checkpoint.seq, "head_hash": checkpoint.head_hash, "at": checkpoint.at,
            } if checkpoint is not None else {})})
        return
    if checkpoint is None:
        click.echo("the head is already sealed")
    else:
        click.echo(f"sealed seq {checkpoint.seq} (head {checkpoint.head_hash}) at "
                   f"{stored_time(checkpoint.at)}")
