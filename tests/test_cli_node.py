"""`edoc-axis run` as an administrator starts it: one node per data folder, a refused broker login
at start is a configuration error, and a refused login later is an error in the log while the
node keeps retrying (issue 13 items 3 and 4). Real processes and the real broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from edoc_axis.config.load import load_settings
from edoc_axis.errors import EdocAxisError
from edoc_axis.transport import provision

G22 = "000.00.00.G22"
EDOC = str(Path(sys.executable).parent / "edoc-axis")
RABBITMQCTL = "/usr/sbin/rabbitmqctl"

pytestmark = pytest.mark.broker


def edoc(*args: str | Path, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one edoc-axis command to its end."""
    return subprocess.run([EDOC, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False, timeout=timeout)


@dataclass
class Bench:
    """One dev agency made by `init --dev`, provisioned in a vhost of its own."""

    root: Path
    user: str
    password: str

    @property
    def config(self) -> Path:
        return self.root / G22 / "node.toml"


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """init --dev in a fresh vhost, broker provision; the vhost and user deleted afterwards."""
    vhost = f"edoc-run-{uuid.uuid4().hex[:10]}"
    made = edoc("init", "--dev", "--organ-id", G22, "--data-dir", tmp_path / G22, "--key-type",
                "p256", "--directory", tmp_path / "directory.toml", "--vhost", vhost)
    assert made.returncode == 0, made.stderr
    broker = load_settings(tmp_path / G22 / "node.toml", env={}).broker
    try:
        done = edoc("broker", "provision", "--directory", tmp_path / "directory.toml",
                    "--passwords", tmp_path / "broker-passwords", "--vhost", vhost)
        assert done.returncode == 0, done.stderr
        yield Bench(tmp_path, broker.user, broker.url.split(":")[2].split("@")[0])
    finally:
        for cleanup in (lambda: provision.delete_vhost(vhost),
                        lambda: provision.delete_user(broker.user)):
            with suppress(EdocAxisError):
                cleanup()


class Node:
    """`edoc-axis --log-json --log-level info run` in a process of its own, its output in a
    file."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        self.proc = subprocess.Popen([EDOC, "--log-json", "--log-level", "info", "run", "-c",
                                      str(config)],
                                     stdout=self._out, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.text().splitlines():
            with suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == name:
                    found.append(event)
        return found

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._out.close()
        return code


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_second_run_on_one_data_folder_is_refused(bench: Bench) -> None:
    """The trap: a second `run` on the same data folder ran silently beside the first; now it
    exits 1 naming the first one's pid and the folder, and the first keeps running."""
    first = Node(bench.config, bench.root / "first.log")
    try:
        wait_for(lambda: "running" in first.text(), "the first node to start")
        second = edoc("run", "-c", bench.config)
        assert second.returncode == 1, second.stderr
        assert "NODE_RUNNING" in second.stderr
        assert f"another node (pid {first.proc.pid}) is running on {bench.root / G22}" in (
            second.stderr)
        assert "running" not in second.stderr.replace("is running on", "")
        assert first.proc.poll() is None
    finally:
        assert first.stop() == 0
    again = Node(bench.config, bench.root / "again.log")  # the lock went with its process
    try:
        wait_for(lambda: "running" in again.text(), "a node after the first stopped")
    finally:
        assert again.stop() == 0


def test_a_refused_login_at_start_exits_78_with_the_reason(bench: Bench) -> None:
    """The trap: a wrong broker password printed "running", then logged reprs forever; now the
    start fails with BROKER_AUTH_FAILED naming user, vhost and what to fix, exit 78."""
    url = load_settings(bench.config, env={}).broker.url.replace(bench.password, "wrong")
    done = edoc("run", "-c", bench.config, env={"EDOC_AXIS_BROKER_URL": url})
    assert done.returncode == 78, done.stderr
    assert "BROKER_AUTH_FAILED" in done.stderr and f"refused user {bench.user}'s password" in (
        done.stderr)
    assert "differs from the one provisioned" in done.stderr and "broker.url" in done.stderr
    assert "node 000.00.00.G22 running" not in done.stderr
    assert "Traceback" not in done.stderr and "ProbableAuthenticationError" not in done.stderr


def test_a_login_refused_after_the_start_is_an_error_each_retry(bench: Bench) -> None:
    """After a good start, a lost connection is retried; while the broker refuses the login
    each attempt is logged as an error with the hint, and the node reconnects once the
    password works again."""
    node = Node(bench.config, bench.root / "node.log")
    try:
        wait_for(lambda: "running" in node.text(), "the node to start")
        ctl = [RABBITMQCTL, "-q"]
        subprocess.run([*ctl, "change_password", bench.user, "changed-elsewhere"], check=True,
                       capture_output=True, timeout=60)
        subprocess.run([*ctl, "close_all_user_connections", bench.user, "test"], check=True,
                       capture_output=True, timeout=60)
        refusals = wait_for(lambda: len(node.events("broker_login_refused")) >= 2 and
                            node.events("broker_login_refused"), "two refused logins", 60)
        for event in refusals:
            assert event["level"] == "error" and event["code"] == "BROKER_AUTH_FAILED"
            assert bench.user in event["error"] and "broker.url" in event["error"]
        assert "ProbableAuthenticationError" not in node.text()
        assert node.proc.poll() is None  # still retrying
        subprocess.run([*ctl, "change_password", bench.user, bench.password], check=True,
                       capture_output=True, timeout=60)
        ready = len(node.events("broker_link_ready"))
        wait_for(lambda: len(node.events("broker_link_ready")) > ready,
                 "the node to log in again", 60)
    finally:
        assert node.stop() == 0
