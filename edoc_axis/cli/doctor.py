"""``edoc-axis doctor``: print the checks of ``edoc_axis.ops.doctor``, one line each."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edoc_axis.cli.base import config_option, echo_json
from edoc_axis.errors import EXIT_FAILURE
from edoc_axis.ops.doctor import FAIL, broker_check, diagnose


@click.command("doctor")
@config_option
@click.option("--no-broker", is_flag=True, help="Skip the broker check (offline).")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor_command(config_path: Path | None, no_broker: bool, as_json: bool) -> None:
    """Check that this node can run: config, data dir, store, key and certificate (match,
    OrganId, expiry, listed fingerprint), trust anchors, CRLs, directory, broker and queue.

    One line per check (ok / warn / FAIL / skip). Exit 0 when nothing failed; when only the
    broker check failed, its error's exit code (69: the broker cannot be reached, 78: it
    refused the login or vhost); 1 otherwise.
    """
    checks = diagnose(config_path, check_broker=None if no_broker else broker_check)
    if as_json:
        echo_json([{"check": c.name, "status": c.status, "detail": c.detail} for c in checks])
    else:
        for check in checks:
            click.echo(check.line())
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        click.echo(f"{len(failed)} check(s) failed", err=True)
        codes = {c.exit_code for c in failed}
        sys.exit(codes.pop() if len(codes) == 1 else EXIT_FAILURE)
