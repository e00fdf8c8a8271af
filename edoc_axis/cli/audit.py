"""``edoc-axis audit``: verify, trace, export, bundle and archive the node's audit chain.

Exit codes: 0 when everything checked holds, 65 when the chain, a checkpoint, a receipt or a
bundle does not hold or entries were left unsealed too long (the first problem is named), 78 for
configuration errors, including no store at the config's data_dir (``STORE_NOT_FOUND``: these
commands never create one; verify, trail and export open it read-only).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from edoc_axis.audit.auditor import Auditor
from edoc_axis.audit.bundle import anchors_from, verify_bundle_file
from edoc_axis.audit.verification import Problem
from edoc_axis.cli.base import config_option, echo_json, json_option, reported_errors
from edoc_axis.config.load import load_settings
from edoc_axis.errors import EXIT_INVALID, ErrorCode, NotFound
from edoc_axis.node.wiring import load_identity, load_trust

DATE = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"])
PROGRESS_MIN_ENTRIES = 20_000  # below this, a run is quick enough to need no progress bar


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
    where = f"seq {problem.seq}" if problem.seq is not None else "file"
    return f"{where}: {problem.code}: {problem.message}"


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
    with reported_errors(), _auditor(config_path) as auditor:
        span = auditor.log.span()
        total = 0 if span is None else (last or span[1]) - (first or span[0]) + 1
        if total >= PROGRESS_MIN_ENTRIES and not as_json:
            with click.progressbar(length=total, label="verifying", file=sys.stderr) as bar:
                done = [0]

                def advance(count: int) -> None:
                    bar.update(count - done[0])
                    done[0] = count

                report = auditor.verify(first, last, receipts=not no_receipts, progress=advance)
        else:
            report = auditor.verify(first, last, receipts=not no_receipts)
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
    """The full timeline of one document across all recipients: who, what status, when, and
    which certificate signed it."""
    with reported_errors(), _auditor(config_path) as auditor:
        events = auditor.trail(document_id)
    if as_json:
        echo_json({"document_id": document_id, "events": events})
        return
    click.echo(f"document {document_id}")
    for e in events:
        status = f" status {e['status']}" if e["status"] else ""
        signer = f" signed by {e['signer'][:16]}..." if e["signer"] else ""
        who = e["counterpart"] or "-"
        warned = e["detail"].get("warnings")
        warnings = f" warnings {','.join(warned)}" if warned else ""
        click.echo(f"  {e['seq']:>8}  {e['at']}  {e['event']:<16} {who}{status}{signer}{warnings}")


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
    """Stream the entries recorded between two dates as JSON Lines or CSV."""
    with reported_errors(), _auditor(config_path) as auditor:
        lo, hi = _date(since), _date(until)
        if output is None:
            auditor.export(lo, hi, fmt, sys.stdout)
            return
        total = auditor.export_count(lo, hi)
        with output.open("w", encoding="utf-8", newline="") as sink, click.progressbar(
            length=total, label="exporting", file=sys.stderr
        ) as bar:
            count = auditor.export(lo, hi, fmt, sink, progress=bar.update)
    click.echo(f"exported {count} entries to {output}", err=True)


@audit_group.command("bundle")
@config_option
@click.argument("document_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The evidence bundle to write (a .zip file).")
def bundle_command(config_path: Path | None, document_id: str, output: Path) -> None:
    """Pack the signed document, every signed receipt, the chain entries involved and a
    checkpoint covering them; check it anywhere with `edoc-axis audit verify-bundle`."""
    with reported_errors(), _auditor(config_path, sealing=True) as auditor:
        data = auditor.bundle(document_id)
        output.write_bytes(data)
    click.echo(f"wrote {output} ({len(data)} bytes)")


@audit_group.command("verify-bundle")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--trust", "anchors", type=click.Path(dir_okay=False, path_type=Path),
              multiple=True, required=True, help="Root CA certificate (PEM); repeatable.")
@json_option
def verify_bundle_command(bundle: Path, anchors: tuple[Path, ...], as_json: bool) -> None:
    """Check an evidence bundle with only the CA certificate: no node or database needed.

    Exit 0 when every chain segment, checkpoint and signed package holds, 65 otherwise.
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
        click.echo(f"document {report.document_id} (node {report.organ_id}): "
                   f"{report.entries} entries, {report.checkpoints} checkpoints, "
                   f"{len(report.packages)} signed packages")
        for e in report.events:
            click.echo(f"  {e.seq:>8}  {e.at}  {e.kind:<16} {e.counterpart or '-'}")
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
        if report.ok:
            click.echo("OK: the bundle holds")
        else:
            click.echo(f"FAILED: {_describe(report.problems[0])}", err=True)
            for problem in report.problems[1:20]:
                click.echo(f"  also {_describe(problem)}", err=True)
    if not report.ok:
        sys.exit(EXIT_INVALID)


@audit_group.command("archive")
@config_option
@click.option("--before", type=DATE, required=True,
              help="Archive entries recorded before this day (YYYY-MM-DD, UTC).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for the archive file (keep it; back it up).")
def archive_command(config_path: Path | None, before: dt.datetime, out_dir: Path) -> None:
    """Move old entries into a sealed archive file; `audit verify` continues across it.

    The archive ends on the last checkpoint before the date, so its agency signature covers it.
    """
    with reported_errors(), _auditor(config_path, writable=True) as auditor:
        span = auditor.log.span()
        with click.progressbar(length=span[1] - span[0] + 1 if span else 0, label="archiving",
                               file=sys.stderr) as bar:
            record = auditor.archive(_date(before), out_dir, progress=bar.update)
    if record is None:
        click.echo("nothing to archive: no checkpointed entry before that date")
        return
    click.echo(f"archived entries {record.first_seq}..{record.last_seq} to {record.path} "
               f"(sha256 {record.sha256})")


@audit_group.command("seal")
@config_option
def seal_command(config_path: Path | None) -> None:
    """Sign a checkpoint of the chain's head now (with this agency's key).

    A running node seals on its own (every audit.every_seconds) and at every clean stop; seal by
    hand after a node was killed, when `audit verify` reports AUDIT_UNSEALED_TAIL.
    """
    with reported_errors(), _auditor(config_path, sealing=True) as auditor:
        checkpoint = auditor.seal()
    if checkpoint is None:
        click.echo("the head is already sealed")
    else:
        click.echo(f"sealed seq {checkpoint.seq} (head {checkpoint.head_hash}) at {checkpoint.at}")
