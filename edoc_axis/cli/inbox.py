"""``edoc-axis inbox|track``: read what the node's store holds, without the broker.

``inbox`` lists, shows and exports received packages with their DMS pickup state; ``track``
shows the per-recipient state and status timeline of a sent document. Both read the store
through ``Store``'s queries and need neither the broker nor the signing key.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import click

from edoc_axis.cli.base import config_option, echo_json, json_option, reported_errors
from edoc_axis.cli.display import echo_table, stored_time
from edoc_axis.cli.packages import save_attachment
from edoc_axis.config.load import load_settings
from edoc_axis.config.settings import Settings
from edoc_axis.edxml.model import DocumentPackage
from edoc_axis.edxml.read import parse
from edoc_axis.errors import EdocAxisError, ErrorCode, NotFound
from edoc_axis.store import Store
from edoc_axis.store.records import PICKUP_STATES, Delivery


@click.group("inbox")
def inbox_group() -> None:
    """Received documents and statuses, with their DMS pickup state."""


@inbox_group.command("list")
@config_option
@json_option
@click.option("--pickup", type=click.Choice(PICKUP_STATES), help="Only this pickup state.")
@click.option("--kind", type=click.Choice(["edoc", "status"]), help="Only documents or statuses.")
@click.option("--limit", type=click.IntRange(1), default=1000, show_default=True)
def inbox_list(config_path: Path | None, as_json: bool, pickup: str | None, kind: str | None,
               limit: int) -> None:
    """List received packages, oldest first (times in Vietnam time, +07:00)."""
    with reported_errors():
        store = Store(load_settings(config_path).store_path)
        entries = store.inbox(pickup=pickup, kind=kind, limit=limit)  # type: ignore[arg-type]
        store.close()
    if as_json:
        echo_json([_entry_dict(e) for e in entries])
        return
    rows = [(e.package_id, stored_time(e.received_at), e.pickup,
             f"status {e.status_code}" if e.kind == "status" else "document", e.sender,
             e.document_id) for e in entries]
    filtered = " matching the filters" if pickup or kind else ""
    echo_table(("PACKAGE", "RECEIVED", "PICKUP", "WHAT", "FROM", "DOCUMENT"), rows,
               empty="inbox is empty" if not filtered else f"no received package{filtered}")


def _entry_dict(entry: Any) -> dict[str, Any]:
    return {k: getattr(entry, k) for k in entry.__slots__}


@inbox_group.command("show")
@config_option
@json_option
@click.argument("package_id")
def inbox_show(config_path: Path | None, as_json: bool, package_id: str) -> None:
    """Show one received package's record (sender, DocumentId, digest, pickup state), and the
    warnings it was accepted with (harmless deviations the "received" profile let through)."""
    with reported_errors():
        store = Store(load_settings(config_path).store_path)
        try:
            entry, record = store.inbox_entry(package_id), store.package(package_id)
        finally:
            store.close()
    info = {**_entry_dict(record), "pickup": entry.pickup, "pickup_note": entry.pickup_note}
    if as_json:
        echo_json(info)
        return
    info["created_at"] = stored_time(record.created_at)
    warnings = info.pop("warnings")
    for key, value in info.items():
        if value not in (None, "", ()):
            click.echo(f"{key:>16}: {', '.join(value) if isinstance(value, tuple) else value}")
    for warning in warnings:
        value = f" {warning['value']!r}" if warning.get("value") is not None else ""
        click.echo(f"{'warning':>16}: {warning['code']} {warning.get('element') or ''}{value}: "
                   f"{warning['message']}")


COPY_CHUNK = 1024 * 1024  # bytes per read when streaming a body out


@inbox_group.command("export")
@config_option
@click.argument("package_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here (default: stdout).")
@click.option("--attachments", "attachments_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write each attached file, as the sender's original bytes, into this "
                   "folder (an existing file is never overwritten).")
def inbox_export(config_path: Path | None, package_id: str, output: Path | None,
                 attachments_dir: Path | None) -> None:
    """Write a received package's exact signed bytes, and with --attachments its files.

    The files are unzipped whichever way the sender packed them. Exit 65 when an attachment
    cannot be unpacked (the others are still written).
    """
    with reported_errors():
        settings = load_settings(config_path)
        store = Store(settings.store_path)
        try:
            store.inbox_entry(package_id)
            # Streamed from the store (a large body is a file there): never whole in memory.
            with store.open_body(package_id) as stream:
                if output is None:
                    shutil.copyfileobj(stream, sys.stdout.buffer, COPY_CHUNK)
                else:
                    with output.open("wb") as out:
                        shutil.copyfileobj(stream, out, COPY_CHUNK)
                        written = out.tell()
                    click.echo(f"wrote {written} bytes to {output}", err=True)
            body = store.body(package_id) if attachments_dir is not None else b""
        finally:
            store.close()
    if attachments_dir is not None:
        _export_attachments(body, settings, attachments_dir)


def _export_attachments(body: bytes, settings: Settings, directory: Path) -> None:
    with reported_errors():  # the limits the node accepted the package under
        pkg = parse(body, settings.limits)
    attachments = pkg.attachments if isinstance(pkg, DocumentPackage) else []
    failure: EdocAxisError | None = None
    for index, att in enumerate(attachments, 1):
        try:
            path, unpacked = save_attachment(att, directory, index)
        except EdocAxisError as exc:
            failure = exc
            click.echo(f"error: {exc}", err=True)
            continue
        click.echo(f"wrote {unpacked.size} bytes to {path}", err=True)
    if not attachments:
        click.echo("the package has no attachments", err=True)
    if failure is not None:
        sys.exit(failure.exit_code)


# --- track ------------------------------------------------------------------------------------


@click.command("track")
@config_option
@json_option
@click.argument("sent_id", metavar="ID")
def track_command(config_path: Path | None, as_json: bool, sent_id: str) -> None:
    """Per-recipient state and status timeline of a sent document.

    ID is the DocumentId (every package sent about that document) or the package id that
    `edoc-axis send` prints first (that package only). Times are Vietnam time (+07:00).
    """
    with reported_errors():
        store = Store(load_settings(config_path).store_path)
        try:
            deliveries = _sent_deliveries(store, sent_id)
            timeline = {d.id: store.history(d.id) for d in deliveries}
        finally:
            store.close()
    if as_json:
        echo_json([{**_entry_dict(d), "history": [_entry_dict(h) for h in timeline[d.id]]}
                    for d in deliveries])
        return
    click.echo(f"document {deliveries[0].document_id}")
    for d in deliveries:
        click.echo("")
        echo_table(("RECIPIENT", "STATE", "PACKAGE"), [(d.recipient, d.state, d.package_id)],
                   empty="")
        echo_table(("AT", "STATE", "STATUS", "NOTE"),
                   [(stored_time(h.at), h.state, h.status_code or "-", h.description or "")
                    for h in timeline[d.id]], empty="no steps recorded", indent="    ")


def _sent_deliveries(store: Store, sent_id: str) -> list[Delivery]:
    """The deliveries ``sent_id`` names: a DocumentId's, or else one sent package's."""
    deliveries = store.deliveries(sent_id)
    if deliveries:
        return deliveries
    try:
        record = store.package(sent_id)
    except NotFound:
        record = None
    if record is not None and record.direction == "out":
        deliveries = [d for d in store.deliveries(record.document_id)
                      if d.package_id == sent_id]
    if not deliveries:
        raise NotFound(f"nothing was sent with DocumentId or package id {sent_id}",
                       code=ErrorCode.DOCUMENT_NOT_SENT)
    return deliveries
