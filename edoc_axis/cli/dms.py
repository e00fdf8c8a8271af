"""``edoc-axis dms ...``: act as an agency's DMS against a node's gateway (or the axis itself).

Every command signs its call with the system's id and secret exactly as the axis SDK does.
The endpoint, system id and secret come from options or EDOC_AXIS_DMS_ENDPOINT,
EDOC_AXIS_DMS_SYSTEMID and EDOC_AXIS_DMS_SECRET (prefer the variable for the secret).
``selftest`` runs the conformance kit (``edoc_axis.gateway.conformance``) and also takes them as its
own options, the secret from a file. ``add`` is the node administrator's side: it adds a DMS
system to the node's config (``edoc_axis.config.dms_system``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from edoc_axis.cli.base import config_option, echo_json, reported_errors
from edoc_axis.config.dms_system import add_dms_system
from edoc_axis.config.schema import CONFIG_ENV
from edoc_axis.config.settings import DEFAULT_LISTEN
from edoc_axis.edxml.model import StatusPackage
from edoc_axis.edxml.read import parse
from edoc_axis.errors import EXIT_FAILURE, ConfigError, ErrorCode
from edoc_axis.gateway.client import DmsClient
from edoc_axis.gateway.conformance import DEFAULT_TIMEOUT, Selftest, SelftestOptions, failed

_KIND = click.Choice(["edoc", "status"])
DEFAULT_ENDPOINT = f"http://{DEFAULT_LISTEN}"


@dataclass(frozen=True, slots=True)
class _Target:
    """The gateway and DMS system named by the group's options."""

    endpoint: str
    systemid: str | None
    secret: str | None
    sdk_quirks: bool


def _client(ctx: click.Context) -> DmsClient:
    """A client for the group's target, closed with the command; usage error when incomplete."""
    target = ctx.find_object(_Target)
    if target is None or not target.systemid:
        raise click.UsageError("Missing option '--systemid' (or EDOC_AXIS_DMS_SYSTEMID).")
    if not target.secret:
        raise click.UsageError("Missing option '--secret' (or EDOC_AXIS_DMS_SECRET).")
    with reported_errors():
        client = DmsClient(target.endpoint, target.systemid, target.secret,
                           sdk_quirks=target.sdk_quirks)
    ctx.call_on_close(client.close)
    return client


@click.group("dms")
@click.option(
    "--endpoint",
    envvar="EDOC_AXIS_DMS_ENDPOINT",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    help="Base URL of the node's DMS gateway.",
)
@click.option(
    "--systemid",
    envvar="EDOC_AXIS_DMS_SYSTEMID",
    help="The DMS system id configured on the node ([[dms]] systemid).",
)
@click.option(
    "--secret",
    envvar="EDOC_AXIS_DMS_SECRET",
    help="The shared secret (better: set EDOC_AXIS_DMS_SECRET).",
)
@click.option(
    "--sdk-quirks",
    is_flag=True,
    help="Sign like the Java SDK 2.0.1: unpadded hash-file, CRLF after the body, one timestamp "
    "and sticky headers for the client's life, and header values written as the low byte of "
    "each character (so Vietnamese text in a header fails with AUTH_HEADER_ENCODING, as with "
    "the SDK: percent-encode it).",
)
@click.pass_context
def dms_group(
    ctx: click.Context, endpoint: str, systemid: str | None, secret: str | None,
    sdk_quirks: bool
) -> None:
    """Call a node's DMS gateway the way an agency's document system does.

    `add` is for the node's administrator: it lists a DMS system in the node's config.

    Exit codes: 0 ok, 1 refused by the gateway (its ErrorCode is printed) or a selftest step
    failed, 2 usage, 69 unreachable, 78 configuration error (`add`).
    """
    ctx.obj = _Target(endpoint, systemid, secret, sdk_quirks)


@dms_group.command("send")
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--from", "from_organ", metavar="ORGANID",
              help="Sender OrganId, the system's agency (default: the package's From/OrganId).")
@click.option("--to", "recipients", multiple=True, help="Recipient OrganId (repeatable).")
@click.option(
    "--type",
    "kind",
    type=_KIND,
    help="edoc for a document, status for a status package (default: what the package is).",
)
@click.pass_context
def send_command(
    ctx: click.Context, package: Path, from_organ: str | None, recipients: tuple[str, ...],
    kind: str | None
) -> None:
    """Submit PACKAGE (an .edxml file); prints the DocId.

    The sender (the SDK's `from`) and the message type are read from the package unless
    --from and --type say otherwise.
    """
    client = _client(ctx)
    with reported_errors():
        data = package.read_bytes()
        if from_organ is None or kind is None:
            parsed = parse(data)
            from_organ = from_organ or parsed.sender.organ_id
            kind = kind or ("status" if isinstance(parsed, StatusPackage) else "edoc")
        click.echo(
            client.send_edoc(data, from_organ=from_organ, to=list(recipients) or None,
                             message_type=kind)
        )


@dms_group.command("add")
@config_option
@click.option("--systemid", "new_systemid", required=True,
              help="The id the DMS's SDK will be configured with, e.g. vbdh.")
@click.option("--secret-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the shared secret (default: dms-SYSTEMID.secret next to the "
                   "config).")
@click.option("--generate-secret", is_flag=True,
              help="Create the secret file (mode 0600) with a random secret; refused if it "
                   "exists. Without it the file must already hold a secret (16+ characters).")
def add_command(config_path: Path | None, new_systemid: str, secret_file: Path | None,
                generate_secret: bool) -> None:
    """Let a DMS system call this node's gateway: add a [[dms]] table to the node's config.

    The table names the system, this node's organ_id and the secret file (the secret itself
    stays out of the config). The config is edited in place, comments kept, and only when the
    result loads; a systemid already configured is refused. Restart `edoc-axis run` to serve
    the new system, then hand the DMS vendor the endpoint, systemid and secret.

    \b
      edoc-axis dms add -c nodes/g22/node.toml --systemid vbdh --generate-secret
    """
    if config_path is None:
        if not os.environ.get(CONFIG_ENV):
            raise click.UsageError(f"Missing option '--config' (or {CONFIG_ENV}).")
        config_path = Path(os.environ[CONFIG_ENV])
    with reported_errors():
        secret = secret_file or config_path.parent / f"dms-{new_systemid.strip()}.secret"
        added = add_dms_system(config_path, new_systemid, secret, generate_secret=generate_secret)
    made = "generated" if added.secret_generated else "existing"
    click.echo(f"added DMS system {added.systemid} for {added.organ_id} to {config_path}")
    click.echo(f"  secret file  {added.secret_file} ({made}; hand it to the DMS vendor out of "
               "band)")
    click.echo(f"  endpoint     http://{added.listen}/ (once `edoc-axis run` is restarted)")


@dms_group.command("list")
@click.option("--type", "kind", type=_KIND, default="edoc", show_default=True)
@click.pass_context
def list_command(ctx: click.Context, kind: str) -> None:
    """List received packages not yet acknowledged done (JSON; "[]" and a note on stderr when
    nothing waits)."""
    client = _client(ctx)
    with reported_errors():
        waiting = client.received(kind)
    echo_json(waiting)
    if not waiting:
        click.echo(f"nothing waits for the DMS ({kind})", err=True)


@dms_group.command("get")
@click.argument("doc_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the package here (default: stdout).",
)
@click.pass_context
def get_command(ctx: click.Context, doc_id: str, output: Path | None) -> None:
    """Fetch the received package DOC_ID."""
    client = _client(ctx)
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
@click.pass_context
def ack_command(ctx: click.Context, doc_id: str, state: str, description: str | None) -> None:
    """Acknowledge pickup of DOC_ID: done (stored), fail (could not take it) or processing."""
    client = _client(ctx)
    with reported_errors():
        client.update_status(doc_id, state, description)
    click.echo(f"{doc_id}: {state}")


@dms_group.command("sent")
@click.option("--type", "kind", type=_KIND, default="edoc", show_default=True)
@click.option("--doc-id", help="Only this sent package.")
@click.pass_context
def sent_command(ctx: click.Context, kind: str, doc_id: str | None) -> None:
    """Per-recipient tracking of sent packages (JSON; "[]" and a note on stderr when none)."""
    client = _client(ctx)
    with reported_errors():
        sent = client.sent(kind, doc_id)
    echo_json(sent)
    if not sent:
        click.echo(f"no sent packages ({kind})" + (f" with DocId {doc_id}" if doc_id else ""),
                   err=True)


@dms_group.command("agencies")
@click.pass_context
def agencies_command(ctx: click.Context) -> None:
    """The agency directory as the node lists it (JSON)."""
    client = _client(ctx)
    with reported_errors():
        echo_json(client.agencies())


@dms_group.command("selftest")
@click.option("--endpoint", "endpoint", help="Base URL of the node's DMS gateway "
              "(default: the group's --endpoint).")
@click.option("--systemid", help="The DMS system id (default: the group's --systemid).")
@click.option("--secret-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding the shared secret (default: the group's --secret).")
@click.option("--from", "from_organ", metavar="ORGANID",
              help="The system's agency (default: learned from the gateway's lists).")
@click.option("--to", "to_organ", metavar="ORGANID",
              help="The recipient (default: the only other agency, e.g. the sandbox peer).")
@click.option("--timeout", type=click.FloatRange(1), default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds to wait for the recipient's statuses after sending.")
@click.option("--expect", default="01,03", show_default=True, metavar="CODES",
              help="Status codes that must come back, comma-separated (01 alone for a real "
                   "agency, which answers 03 only when a clerk registers the document).")
@click.option("--json", "as_json", is_flag=True, help="Print the steps as a JSON list.")
@click.pass_context
def selftest_command(
    ctx: click.Context, *, endpoint: str | None, systemid: str | None, secret_file: Path | None,
    from_organ: str | None, to_organ: str | None, timeout: float, expect: str, as_json: bool,
) -> None:
    """Check a DMS setup end to end against a node's gateway (or `edoc-axis sandbox`).

    Runs the vendor's side of the whole cycle: getAgenciesList, sendEdoc of a small generated
    document, getSentEdocList, then waits for the recipient's statuses 01 and 03 in
    getReceivedEdocList(messagetype=status), fetches them with getEdoc, acknowledges them with
    updateStatus done, and answers a document that replies to ours with a business status.
    Prints one line per step: name, PASS/FAIL/SKIP, what was expected and what came back.
    Only packages about the test document are touched. `edoc-axis dms --sdk-quirks selftest`
    signs like the Java SDK 2.0.1.

    Exit codes: 0 every step passed (or was skipped), 1 a step failed (named on the last line),
    2 usage.
    """
    target = ctx.find_object(_Target) or _Target(DEFAULT_ENDPOINT, None, None, False)
    systemid = systemid or target.systemid
    if not systemid:
        raise click.UsageError("Missing option '--systemid'.")
    secret = target.secret
    with reported_errors():
        if secret_file is not None:
            secret = _read_secret(secret_file)
        if not secret:
            raise click.UsageError("Missing option '--secret-file'.")
        codes = tuple(c.strip() for c in expect.split(",") if c.strip())
        if not codes or not all(c.isdigit() and len(c) == 2 for c in codes):
            raise click.BadParameter(f"{expect!r} is not a list of status codes like 01,03",
                                     param_hint="--expect")
        client = DmsClient(endpoint or target.endpoint, systemid, secret,
                           sdk_quirks=target.sdk_quirks, timeout=min(timeout, 30.0))
    ctx.call_on_close(client.close)
    options = SelftestOptions(systemid=systemid, from_organ=from_organ, to_organ=to_organ,
                              timeout=timeout, expect=codes)
    report = (lambda step: None) if as_json else (lambda step: click.echo(step.line()))
    steps = Selftest(client, options, report=report,
                     progress=lambda text: click.echo(text, err=True)).run()
    bad = failed(steps)
    if as_json:
        echo_json([step.to_dict() for step in steps])
    elif bad is None:
        skipped = sum(1 for step in steps if step.result == "SKIP")
        click.echo(f"selftest passed: {len(steps)} steps"
                   + (f" ({skipped} skipped)" if skipped else ""))
    else:
        click.echo(f"selftest FAILED at step '{bad.name}'")
    if bad is not None:
        sys.exit(EXIT_FAILURE)


def _read_secret(path: Path) -> str:
    """The secret in ``path`` without surrounding white space (as the node reads secret_file)."""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the secret file {path}: {exc}",
                          code=ErrorCode.DMS_SECRET_FILE) from exc
    if not secret:
        raise ConfigError(f"the secret file {path} is empty", code=ErrorCode.DMS_SECRET_FILE)
    return secret
