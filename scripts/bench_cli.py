"""Benchmark of the CLI's start-up: wall time of ``edoc-axis --help`` and some commands' help.

Each command line runs ``--runs`` times as a fresh process (subprocess, as a user types it);
prints the median and the maximum in milliseconds, and which heavy libraries the process loaded
(pika, signxml, lxml, http.server). Run: ``.venv/bin/python scripts/bench_cli.py [--runs 10]``.
Aim (issue 10, "a lazy CLI"): ``edoc-axis --help`` in at most 150 ms on the 2-core dev machine.
``--check`` exits 1 when the median of ``edoc-axis --help`` is over ``--budget-ms``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (
    (),
    ("validate",),
    ("package",),
    ("doctor",),
    ("inbox",),
    ("send",),
    ("audit", "verify"),
    ("dms", "send"),
)
HEAVY = ("pika", "signxml", "lxml", "http.server")
# Prints which heavy modules a run of the CLI with these arguments has loaded.
PROBE = (
    "import sys; from edoc_axis.cli import main\n"
    "try:\n    main(sys.argv[1:], prog_name='edoc-axis')\nexcept SystemExit:\n    pass\n"
    f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
)


def executable() -> str:
    """The ``edoc-axis`` script of this interpreter's environment (else the one on PATH)."""
    beside = Path(sys.executable).with_name("edoc-axis")
    found = str(beside) if beside.exists() else shutil.which("edoc-axis")
    if found is None:
        raise SystemExit("edoc-axis is not installed (run scripts/setup)")
    return found


def wall_times(argv: list[str], runs: int) -> list[float]:
    """Wall seconds of ``runs`` fresh runs of ``argv`` (output discarded; each must exit 0)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def heavy_modules(args: tuple[str, ...]) -> str:
    """The heavy libraries loaded by ``edoc-axis ARGS --help`` (in a fresh interpreter)."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args, "--help"], check=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per command line")
    parser.add_argument("--budget-ms", type=float, default=150.0,
                        help="budget of `edoc-axis --help` (median)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when `edoc-axis --help` is over the budget")
    options = parser.parse_args()
    cli = executable()
    subprocess.run([cli, "--help"], check=True, stdout=subprocess.DEVNULL)  # warm the disk cache
    print(f"{'command':<28} {'median ms':>9} {'max ms':>7}  heavy modules loaded")
    top_median = 0.0
    for args in COMMANDS:
        times = wall_times([cli, *args, "--help"], options.runs)
        median, worst = statistics.median(times) * 1000, max(times) * 1000
        if not args:
            top_median = median
        label = " ".join(("edoc-axis", *args, "--help"))
        print(f"{label:<28} {median:>9.0f} {worst:>7.0f}  {heavy_modules(args) or '-'}")
    verdict = "within" if top_median <= options.budget_ms else "OVER"
    print(f"edoc-axis --help: median {top_median:.0f} ms, {verdict} the budget of "
          f"{options.budget_ms:.0f} ms ({options.runs} runs each)")
    return 1 if options.check and top_median > options.budget_ms else 0


if __name__ == "__main__":
    sys.exit(main())
