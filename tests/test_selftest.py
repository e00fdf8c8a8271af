"""`edoc-axis dms selftest` (gateway.conformance) against a real sandbox gateway and broker."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EDOC_AXIS_EXE, RunningSandbox

from edoc_axis.cli import main
from edoc_axis.errors import ErrorCode, RequestRefused
from edoc_axis.gateway.conformance import HINTS, explain

pytestmark = pytest.mark.broker

ALL_STEPS = ["auth", "agencies", "sendEdoc", "getSentEdocList", "status 01", "status 03",
             "updateStatus done", "tracking", "reply document", "business status"]


def selftest(sandbox: RunningSandbox, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `edoc-axis dms selftest` against the sandbox with its systemid and ``args``."""
    info = sandbox.info
    return subprocess.run(
        [*EDOC_AXIS_EXE, "dms", "selftest", "--endpoint", info["endpoint"], "--systemid",
         info["systemid"], *args], capture_output=True, text=True, timeout=120, check=False)


def test_printed_selftest_command_passes_every_step(sandbox: RunningSandbox) -> None:
    """The exact command the sandbox prints exits 0 with one PASS line per step of the cycle."""
    command = sandbox.info["selftest_command"]
    assert command in sandbox.output()
    argv = shlex.split(command)
    assert argv[:3] == ["edoc-axis", "dms", "selftest"]
    done = subprocess.run([*EDOC_AXIS_EXE, *argv[1:]], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split("  ")[0].strip() for line in lines[:-1]] == ALL_STEPS
    assert all(" PASS " in line for line in lines[:-1])
    assert lines[-1] == f"selftest passed: {len(ALL_STEPS)} steps"


def test_selftest_learns_both_agencies_and_reports_json(sandbox: RunningSandbox) -> None:
    """Without --from/--to the agencies come from the gateway; --json lists the same steps."""
    done = selftest(sandbox, "--secret-file", sandbox.info["secret_file"], "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = json.loads(done.stdout)
    assert [s["step"] for s in steps] == ALL_STEPS
    assert {s["result"] for s in steps} == {"PASS"}
    assert set(steps[0]) == {"step", "result", "expected", "got"}
    agencies = steps[1]["got"]
    assert f"from {sandbox.info['agency']} (from the gateway's" in agencies
    assert f"to {sandbox.info['peer']} (the only other agency)" in agencies
    assert "status 03 from" in steps[5]["got"] and "signed" in steps[5]["got"]


def test_wrong_secret_fails_at_auth_with_bad_hmac_explained(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A wrong secret stops the run at the auth step, naming AUTH_BAD_HMAC and what it means."""
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("not-the-sandbox-secret-0123456789\n", encoding="utf-8")
    done = selftest(sandbox, "--secret-file", str(wrong))
    assert done.returncode == 1
    first, last = done.stdout.splitlines()
    assert first.startswith("auth ") and " FAIL " in first
    assert "AUTH_BAD_HMAC" in first
    assert f"the secret the node holds for systemid {sandbox.info['systemid']}" in first
    assert last == "selftest FAILED at step 'auth'"


def test_missing_status_fails_its_step_after_the_timeout(sandbox: RunningSandbox) -> None:
    """A status that never comes fails its own step once --timeout has passed (bounded wait)."""
    done = selftest(sandbox, "--secret-file", sandbox.info["secret_file"], "--expect", "01,06",
                    "--timeout", "1", "--json")
    assert done.returncode == 1
    steps = json.loads(done.stdout)
    assert [s["result"] for s in steps] == ["PASS"] * 5 + ["FAIL"]
    assert steps[-1]["step"] == "status 06"
    assert "no status 06 after 1 s" in steps[-1]["got"]
    assert "01" in steps[-1]["got"]


def test_unreachable_endpoint_fails_at_auth(tmp_path: Path) -> None:
    """Nothing listening at the endpoint is a FAIL at auth with DMS_UNREACHABLE explained."""
    secret = tmp_path / "dms.secret"
    secret.write_text("s" * 32, encoding="utf-8")
    result = CliRunner().invoke(main, ["dms", "selftest", "--endpoint", "http://127.0.0.1:9",
                                       "--systemid", "vbdh", "--secret-file", str(secret)])
    assert result.exit_code == 1
    assert "DMS_UNREACHABLE" in result.output
    assert "is the node (or sandbox) running" in result.output
    assert result.output.splitlines()[-1] == "selftest FAILED at step 'auth'"


def test_missing_secret_is_a_usage_error(tmp_path: Path) -> None:
    """Without a secret (file, option or variable) selftest is a usage error, exit 2."""
    result = CliRunner(env={"EDOC_AXIS_DMS_SECRET": None}).invoke(
        main, ["dms", "selftest", "--systemid", "vbdh"])
    assert result.exit_code == 2
    assert "--secret-file" in result.output


def test_every_refusal_of_a_signed_call_has_a_hint_that_fits_idempotent_repeats() -> None:
    """Each AUTH_* code and REQUEST_IN_PROGRESS is explained; AUTH_REPLAY no longer tells the DMS
    to sign every call afresh (exact repeats are answered again), only a changed body is."""
    codes = {c for c in ErrorCode if c.startswith("AUTH_")} | {ErrorCode.REQUEST_IN_PROGRESS}
    assert codes <= set(HINTS)
    replay = explain(RequestRefused("already answered", code="AUTH_REPLAY"), "vbdh")
    assert "afresh" not in replay
    assert "exact repeat" in replay and "another body" in replay
    busy = explain(RequestRefused("in progress", code="REQUEST_IN_PROGRESS"), "vbdh")
    assert "send the same request again" in busy and "not applied twice" in busy
    encoding = explain(RequestRefused("mangled", code="AUTH_HEADER_ENCODING"), "vbdh")
    assert "low byte" in encoding and "percent-encode" in encoding
