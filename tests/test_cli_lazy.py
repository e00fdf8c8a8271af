"""The lazy CLI: the root help imports no command, and the table matches the commands it names."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from edoc_axis.cli import COMMANDS, main

HEAVY = ("pika", "signxml", "lxml", "http.server", "structlog")
# Runs the root help in a fresh interpreter and prints what got imported.
ROOT_HELP = """
import contextlib, io, sys
from edoc_axis.cli import main
help = io.StringIO()
try:
    with contextlib.redirect_stdout(help):
        main(["--help"], prog_name="edoc-axis")
except SystemExit as exit:
    assert exit.code == 0, exit.code
assert "Commands:" in help.getvalue()
print(" ".join(sorted(name for name in sys.modules
                      if name.split(".")[0] in {"edoc_axis", *HEAVY} or name == "http.server")))
"""


def _loaded_by_root_help() -> set[str]:
    code = f"HEAVY = {HEAVY!r}\n{ROOT_HELP}"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True, timeout=60)
    return set(done.stdout.split())


def _every_command_path() -> list[tuple[str, ...]]:
    """Every group and command under the root, as argument paths (imports every command)."""
    paths: list[tuple[str, ...]] = []

    def walk(path: tuple[str, ...], group: click.Group) -> None:
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, (path, name)
            paths.append((*path, name))
            if isinstance(command, click.Group):
                walk((*path, name), command)

    walk((), main)
    return paths


def test_root_help_imports_no_command_module_nor_heavy_library() -> None:
    """`edoc-axis --help` loads no command module, and none of pika, signxml, lxml, structlog."""
    loaded = _loaded_by_root_help()
    assert loaded == {"edoc_axis", "edoc_axis.cli", "edoc_axis.cli.lazy"}


def test_table_names_the_commands_with_their_own_help() -> None:
    """Each table entry loads a command of that name whose short help is the table's summary."""
    for entry in COMMANDS:
        command = entry.load()
        assert command.name == entry.name
        placeholder = click.Command(entry.name, help=entry.summary)
        for limit in (45, 80, 1000):
            assert command.get_short_help_str(limit) == placeholder.get_short_help_str(limit)


def test_root_help_from_the_table_equals_the_help_of_the_loaded_commands() -> None:
    """The command list printed from the table is the one the real commands would print."""
    runner = CliRunner()
    lazy = runner.invoke(main, ["--help"], terminal_width=100)
    eager = click.Group(name=main.name, params=main.params, help=main.help,
                        context_settings=main.context_settings,
                        commands=[entry.load() for entry in COMMANDS])
    loaded = runner.invoke(eager, ["--help"], terminal_width=100)
    assert lazy.exit_code == loaded.exit_code == 0
    assert lazy.output == loaded.output
    assert "Commands:" in lazy.output


# A shell with nothing set up: no DMS system, a config variable naming no file.
BARE_ENVIRONMENT = {"EDOC_AXIS_DMS_SYSTEMID": None, "EDOC_AXIS_DMS_SECRET": None,
                    "EDOC_AXIS_DMS_ENDPOINT": None, "EDOC_AXIS_CONFIG": "/nonexistent/node.toml"}


@pytest.mark.parametrize("path", _every_command_path(), ids=" ".join)
def test_every_group_and_command_has_help(path: tuple[str, ...]) -> None:
    """`edoc-axis <group> [<command>] --help` works for every group and command, also in a
    shell where nothing is set up (no `Missing option '--systemid'`, no config error)."""
    for env in ({}, BARE_ENVIRONMENT):
        result = CliRunner(env=env).invoke(main, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"Usage: main {' '.join(path)} ")


def test_unknown_command_is_a_usage_error() -> None:
    """A command that is not in the table exits 2 with click's usage message."""
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.output
