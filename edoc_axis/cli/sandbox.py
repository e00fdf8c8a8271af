"""``edoc-axis sandbox``: a local test axis for DMS vendors (the logic is ``ops.sandbox``)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from edoc_axis.cli.base import reported_errors
from edoc_axis.ops.sandbox import DEFAULT_DIR, DEFAULT_PORT, DEFAULT_VHOST, Sandbox, SandboxInfo


def _render(info: SandboxInfo) -> str:
    origin = "created by this sandbox" if info.vhost_created else "existing, kept on stop"
    return "\n".join([
        f"edoc-axis sandbox running (state in {info.state_dir}, broker vhost {info.vhost}: "
        f"{origin})",
        f"  DMS endpoint   {info.endpoint}",
        f"  systemid       {info.systemid}",
        f"  secret file    {info.secret_file}",
        f"  your agency    {info.agency}  {info.agency_name}  (the SDK's 'from')",
        f"  peer agency    {info.peer}  {info.peer_name}",
        "                 answers every document with 01, then 03 and a reply document",
        "",
        "Check a DMS setup against it with:",
        f"  {info.selftest_command}",
        "",
        "Stop with Ctrl-C (SIGINT) or SIGTERM.",
    ])


@click.command("sandbox")
@click.option("--dir", "state_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_DIR, show_default=True,
              help="State folder (dev CA, keys, node stores, the DMS secret); kept between "
                   "runs, so the systemid and secret stay the same.")
@click.option("--vhost", default=DEFAULT_VHOST, show_default=True,
              help="Broker vhost on the local RabbitMQ; created if missing and then removed "
                   "on stop (an existing one is kept).")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port of the DMS gateway on 127.0.0.1 (0: any free port).")
def sandbox_command(state_dir: Path, vhost: str, port: int) -> None:
    """Run a sandbox axis on the local broker for testing a DMS against a node.

    Starts a node for a test agency with its DMS gateway (a generated systemid and secret file)
    and a peer agency that answers every document with status 01 (arrived), then 03
    (accepted) and a reply document. Prints the endpoint, systemid, secret file, both
    OrganIds and the `edoc-axis dms selftest` command to run against it, then runs until
    SIGINT/SIGTERM and stops cleanly.

    Needs a local RabbitMQ with rabbitmqctl (as `scripts/setup` installs). Exit codes:
    0 stopped cleanly, 69 broker unavailable, 78 configuration error (e.g. the port is taken).
    """
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with reported_errors():
        sandbox = Sandbox(state_dir, vhost=vhost, port=port)
        with sandbox.running(lambda message: click.echo(f"sandbox: {message}", err=True)) as info:
            click.echo(_render(info))
            stop.wait()
    click.echo("sandbox stopped", err=True)
