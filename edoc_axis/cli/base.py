"""What the ``edoc-axis`` commands share: common options, JSON output, and turning an
``EdocAxisError`` into a message on stderr and its exit code."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from edoc_axis.errors import EdocAxisError

config_option = click.option(
    "-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    default=None, help="Node config file (default: the file named by $EDOC_AXIS_CONFIG).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON (non-ASCII kept readable) on stdout."""
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def fail(error: EdocAxisError) -> NoReturn:
    """Print an error for a human on stderr and exit with the error's exit code."""
    click.echo(f"error: {error}", err=True)
    sys.exit(error.exit_code)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn an ``EdocAxisError`` raised inside a command into a message and its exit code."""
    try:
        yield
    except EdocAxisError as exc:
        fail(exc)
