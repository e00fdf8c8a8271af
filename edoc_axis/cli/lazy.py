"""A click group that imports a command's module only when that command is used.

click's documented lazy-loading pattern: each command is named in a static table with the
dotted path of the click object that implements it, and ``get_command`` imports that module
on first use. The table also carries each command's one-line help, so the group's own
``--help`` lists every command without importing any of them (pika, signxml, lxml and the HTTP
server cost far more to load than printing the list). A test keeps the table's help equal to
each command's own.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A command of the group: its name, where it lives (``module:attribute``) and its summary."""

    name: str
    target: str
    summary: str

    def load(self) -> click.Command:
        """Import the command's module and return the click command it names."""
        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


class LazyGroup(click.Group):
    """A ``click.Group`` whose commands come from a table of ``LazyCommand``, loaded on use."""

    def __init__(self, *args: Any, lazy_commands: Iterable[LazyCommand] = (),
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = {entry.name: entry for entry in lazy_commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, sorted (as click lists them), without importing any command."""
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command named ``cmd_name``, importing its module the first time."""
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            self.add_command(self.lazy_commands[cmd_name].load(), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The "Commands" section of ``--help`` from the table's summaries: nothing is imported.

        Placeholder commands carrying the summaries let click shorten each line exactly as it
        shortens a real command's help.
        """
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                command = click.Command(name, help=self.lazy_commands[name].summary)
            if not command.hidden:
                rows.append((name, command))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])
