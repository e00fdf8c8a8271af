"""`edoc-axis sandbox` (ops.sandbox), and the stdlib signing example against its gateway."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import RunningSandbox, make_document, start_sandbox, stop_sandbox

from edoc_axis.edxml.model import Code, Organization
from edoc_axis.edxml.write import build

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "scripts" / "dms_sign_example.py"


def rabbitmqctl(*args: str, check: bool = True) -> str:
    """Run rabbitmqctl quietly; its stdout."""
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    return subprocess.run([exe, "-q", *args], capture_output=True, text=True, timeout=60,
                          check=check).stdout


def vhosts() -> set[str]:
    """The broker's vhosts."""
    return set(rabbitmqctl("list_vhosts", "--no-table-headers", "name").splitlines())


def users() -> set[str]:
    """The broker's user names."""
    return {line.split("\t")[0] for line in
            rabbitmqctl("list_users", "--no-table-headers").splitlines()}


def example(
    sandbox: RunningSandbox, secret_file: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the signing example with the bare interpreter: -I -S, so no site-packages at all."""
    info = sandbox.info
    return subprocess.run(
        [sys.executable, "-I", "-S", str(EXAMPLE), "--endpoint", info["endpoint"], "--systemid",
         info["systemid"], "--secret-file", secret_file, *args],
        capture_output=True, text=True, timeout=60, check=False)


def test_sandbox_prints_what_a_dms_vendor_needs(sandbox: RunningSandbox) -> None:
    """Endpoint, systemid, secret file (0600) and both OrganIds are printed; the gateway is up."""
    info, output = sandbox.info, sandbox.output()
    for value in (info["endpoint"], info["systemid"], info["secret_file"], info["agency"],
                  info["peer"], info["selftest_command"]):
        assert value in output
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", info["endpoint"])
    assert info["vhost"] == sandbox.vhost and info["vhost_created"] is True
    secret = Path(info["secret_file"])
    assert secret.stat().st_mode & 0o777 == 0o600
    assert len(secret.read_text(encoding="utf-8").strip()) >= 16
    assert f'secret_file = "{secret}"' in (sandbox.dir / "agency" / "node.toml").read_text(
        encoding="utf-8")
    health = f"{info['endpoint']}/healthz"  # http://127.0.0.1:PORT, checked just above
    with urllib.request.urlopen(health, timeout=10) as response:  # noqa: S310
        assert json.load(response)["status"] == "OK"


def test_signing_example_lists_and_sends_through_the_gateway(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """The stdlib-only example signs getAgenciesList, getReceivedEdocList and sendEdoc: all OK."""
    info = sandbox.info
    document = make_document(
        sender=Organization(info["agency"], info["agency_name"]),
        recipients=[Organization(info["peer"], info["peer_name"])],
        document_id=f"{info['agency']},2024/03/05,{uuid.uuid4().int % 10**9}/VD-KY")
    document.code = Code(document.document_id.rsplit(",", 1)[1].split("/")[0], "VD-KY")
    package = tmp_path / "document.edxml"
    package.write_bytes(build(document))
    done = example(sandbox, info["secret_file"], "--send", str(package), "--from", info["agency"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "getAgenciesList: OK 0" in done.stdout
    assert f"agency {info['agency']}" in done.stdout and f"agency {info['peer']}" in done.stdout
    assert "getReceivedEdocList: OK 0" in done.stdout
    assert re.search(r"sendEdoc: OK 0 .*\n  sent: DocId [0-9a-f-]{36}\n", done.stdout)


def test_signing_example_shows_the_refusal_of_a_wrong_secret(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """With a wrong secret the example prints the gateway's AUTH_BAD_HMAC and exits 1."""
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("not-the-sandbox-secret-0123456789", encoding="utf-8")
    done = example(sandbox, str(wrong))
    assert done.returncode == 1
    assert done.stdout.startswith("getAgenciesList: FAIL AUTH_BAD_HMAC")


def test_sandbox_keeps_an_existing_vhost_and_its_identity_across_restarts(tmp_path: Path) -> None:
    """A vhost it did not create survives SIGINT (its users do not); a restart keeps systemid and
    secret; a vhost it created is removed with its users on SIGTERM."""
    state = tmp_path / "state"
    existing = f"edoc-sandbox-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", existing)
    try:
        first = start_sandbox(state, existing)
        assert first.info["vhost_created"] is False
        assert "existing, kept on stop" in first.output()
        assert stop_sandbox(first, signal.SIGINT) == 0
        assert existing in vhosts()
        assert not any(user.endswith(f".{existing}") for user in users())
        assert not (state / "sandbox.json").exists()
    finally:
        rabbitmqctl("delete_vhost", existing, check=False)  # never hide the failure above
    fresh = f"edoc-sandbox-{uuid.uuid4().hex[:10]}"
    second = start_sandbox(state, fresh)
    try:
        assert second.info["vhost_created"] is True
        assert (second.info["systemid"], second.info["secret_file"]) == (
            first.info["systemid"], first.info["secret_file"])
        assert fresh in vhosts()
        assert {f"{o}.{fresh}" for o in (second.info["agency"], second.info["peer"])} <= users()
    finally:
        code = stop_sandbox(second)
    assert code == 0
    assert fresh not in vhosts()
    assert not any(user.endswith(f".{fresh}") for user in users())


def test_readme_shows_the_signing_code_of_the_example_script() -> None:
    """The README's Python signing example is the script's own code, so what runs is shown."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Signing a call yourself", 1)[1]
    shown = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "def signed_headers(" in shown
    assert shown in EXAMPLE.read_text(encoding="utf-8")
