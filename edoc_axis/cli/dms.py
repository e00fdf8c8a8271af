"""``edoc-axis dms ...``: act as an agency's DMS against a node's gateway (or the axis itself).

Every command signs its call with the system's id and secret exactly as the axis SDK does.
The endpoint, system id and secret come from options or EDOC_AXIS_DMS_ENDPOINT,
EDOC_AXIS_DMS_SYSTEMID and EDOC_AXIS_DMS_SECRET (prefer the variable for the secret).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from edoc_axis.api import DEFAULT_LISTEN
from edoc_axis.cli.base import reported_errors
from edoc_axis.client import DmsClient

_KIND = click.Choice(["edoc", "status"])


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


@click.group("dms")
@click.option(
    "--endpoint",
    envvar="EDOC_AXIS_DMS_ENDPOINT",
    default=f"http://{DEFAULT_LISTEN}",
    show_default=True,
    help="Base URL of the node's DMS gateway.",
)
@click.option(
    "--systemid",
    envvar="EDOC_AXIS_DMS_SYSTEMID",
    required=True,
    help="The DMS system id configured on the node ([[dms]] systemid).",
)
@click.option(
    "--secret",
    envvar="EDOC_AXIS_DMS_SECRET",
    required=True,
    help="The shared secret (better: set EDOC_AXIS_DMS_SECRET).",
)
@click.option(
    "--sdk-quirks",
    is_flag=True,
    help="Sign like the Java SDK 2.0.1 (unpadded hash-file, CRLF after the body).",
)
@click.pass_context
def dms_group(
    ctx: click.Context, endpoint: str, systemid: str, secret: str, sdk_quirks: bool
) -> None:
    """Call a node's DMS gateway the way an agency's document system does.

    Exit codes: 0 ok, 1 refused by the gateway (its ErrorCode is printed), 69 unreachable.
    """
    client = DmsClient(endpoint, systemid, secret, sdk_quirks=sdk_quirks)
    ctx.call_on_close(client.close)
    ctx.obj = client


@dms_group.command("send")
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--from", "from_organ", required=True, help="Sender OrganId (the system's agency).")
@click.option("--to", "recipients", multiple=True, help="Recipient OrganId (repeatable).")
@click.option(
    "--type",
    "kind",
    type=_KIND,
    default="edoc",
    show_default=True,
    help="edoc for a document, status for a status package.",
)
@click.pass_obj
def send_command(
    client: DmsClient, package: Path, from_organ: str, recipients: tuple[str, ...], kind: str
) -> None:
    """Submit PACKAGE (an .edxml file); prints the DocId."""
    with reported_errors():
        click.echo(
            client.send_edoc(
                package.read_bytes(),
                from_organ=from_organ,
                to=list(recipients) or None,
                message_type=kind,
            )
        )


@dms_group.command("list")
@click.option("--type", "kind", type=_KIND, default="edoc", show_default=True)
@click.pass_obj
def list_command(client: DmsClient, kind: str) -> None:
    """List received packages not yet acknowledged done (JSON)."""
    with reported_errors():
        _echo_json(client.received(kind))


@dms_group.command("get")
@click.argument("doc_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the package here (default: stdout).",
)
@click.pass_obj
def get_command(client: DmsClient, doc_id: str, output: Path | None) -> None:
    """Fetch the received package DOC_ID."""
    with reported_errors():
        data = client.get_edoc(doc_id)
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
        click.echo(f"{output} ({len(data)} bytes)", err=True)


@dms_group.command("ack")
@click.argument("doc_id")
@click.argument("state", type=click.Choice(["done", "fail", "processing"]))
@click.option("--description", help="Free text, e.g. why it failed.")
@click.pass_obj
def ack_command(client: DmsClient, doc_id: str, state: str, description: str | None) -> None:
    """Acknowledge pickup of DOC_ID: done (stored), fail (could not take it) or processing."""
    with reported_errors():
        client.update_status(doc_id, state, description)
    click.echo(f"{doc_id}: {state}")


@dms_group.command("sent")
@click.option("--type", "kind", type=_KIND, default="edoc", show_default=True)
@click.option("--doc-id", help="Only this sent package.")
@click.pass_obj
def sent_command(client: DmsClient, kind: str, doc_id: str | None) -> None:
    """Per-recipient tracking of sent packages (JSON)."""
    with reported_errors():
        _echo_json(client.sent(kind, doc_id))


@dms_group.command("agencies")
@click.pass_obj
def agencies_command(client: DmsClient) -> None:
    """The agency directory as the node lists it (JSON)."""
    with reported_errors():
        _echo_json(client.agencies())
