"""The root ``edoc-axis`` group and what every command shares: logging setup and error exits."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click

from edoc_axis import __version__
from edoc_axis.errors import EdocAxisError
from edoc_axis.log import configure_logging

F = TypeVar("F", bound=Callable[..., Any])


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edoc-axis")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    envvar="EDOC_AXIS_LOG_LEVEL",
    help="How much to log (to stderr).",
)
@click.option(
    "--log-json/--log-text",
    default=None,
    help="Log as JSON lines or as text (default: text on a terminal, JSON otherwise).",
)
def main(log_level: str, log_json: bool | None) -> None:
    """edoc-axis: run and inspect a node of the national e-document interchange axis.

    Exit codes: 0 ok, 1 failure, 2 usage error, 65 invalid input, 69 broker unavailable,
    78 configuration error.
    """
    configure_logging(log_level, json=log_json)


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
