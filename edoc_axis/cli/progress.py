"""Progress bars for long commands: drawn on stderr only when a person watches it.

Nothing is drawn when stderr is not a terminal (piped, redirected, a CI log) or when the caller
disables it (``--json``), so scripted output stays clean; and nothing for work under
``PROGRESS_MIN_ENTRIES`` units, which ends before a bar would help.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

PROGRESS_MIN_ENTRIES = 500  # below this, a run ends before a progress bar would help


def stderr_is_terminal() -> bool:
    """Whether a person watches stderr (progress is drawn only then)."""
    return sys.stderr.isatty()


class Progress:
    """A progress bar on stderr when it is a terminal and the work is more than trivial;
    otherwise nothing is drawn (piped output and --json stay clean)."""

    def __init__(self, label: str, *, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled and stderr_is_terminal()
        self._bar: Any = None
        self._done = 0

    def of(self, done: int, total: int) -> None:
        """``done`` of ``total`` units finished (the bar starts on the first call)."""
        if not self.enabled or (self._bar is None and total < PROGRESS_MIN_ENTRIES):
            return
        if self._bar is None:
            self._bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self._bar.__enter__()
        if done - self._done >= max(1, total // 200) or done >= total:  # redraw every 0.5 %
            self._bar.update(done - self._done)
            self._done = done

    def close(self) -> None:
        """Finish the bar (a newline on the terminal), if one was drawn."""
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@contextmanager
def progress(label: str, *, enabled: bool = True) -> Iterator[Progress]:
    """A ``Progress`` (drawn only when ``enabled`` and stderr is a terminal), closed on exit."""
    bar = Progress(label, enabled=enabled)
    try:
        yield bar
    finally:
        bar.close()
