"""`edoc-axis dms add`, `init --dms-systemid` and `dms send`, run as an administrator and a DMS
integrator would (issue 13 items 5 and 15)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import EDOC_AXIS_EXE, RunningSandbox

from edoc_axis.cli import main
from edoc_axis.config.load import load_settings
from edoc_axis.errors import ConfigError

G22 = "000.00.00.G22"
README = Path(__file__).resolve().parent.parent / "README.md"


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    """Invoke ``edoc-axis`` in-process."""
    return CliRunner(env=env).invoke(main, [str(a) for a in args], catch_exceptions=False)


def _init(root: Path, *extra: str) -> Path:
    result = run("init", "--dev", "--organ-id", G22, "--data-dir", root / "g22", "--ca",
                 root / "ca", "--directory", root / "directory.toml", "--key-type", "p256",
                 *extra)
    assert result.exit_code == 0, result.output
    return root / "g22" / "node.toml"


def _readme_dms_commands() -> list[list[str]]:
    """The `edoc-axis dms add` lines of the README's "DMS gateway" section, as arguments."""
    section = README.read_text(encoding="utf-8").split("## DMS gateway", 1)[1].split("\n## ")[0]
    return [line.split("#")[0].split()[1:] for line in section.splitlines()
            if line.startswith("edoc-axis dms add")]


def test_readme_snippet_appended_to_an_init_config_used_to_fail(tmp_path: Path) -> None:
    """The trap: a second [api] table after init's own is refused by TOML (why `dms add`)."""
    config = _init(tmp_path)
    with config.open("a", encoding="utf-8") as fh:
        fh.write('\n[api]\nlisten = "127.0.0.1:8470"\n')
    with pytest.raises(ConfigError, match=r"twice|already"):
        load_settings(config, env={})


def test_the_readme_dms_add_command_lists_a_system_that_loads(tmp_path: Path) -> None:
    """The README's `dms add` command, run on an `init` config, adds a [[dms]] system whose
    secret file is 0600; the config's comments stay; a repeat is DMS_SYSTEM_EXISTS (78)."""
    config = _init(tmp_path)
    [command] = _readme_dms_commands()
    assert command[:3] == ["dms", "add", "-c"] and "--generate-secret" in command
    before = config.read_text(encoding="utf-8")
    result = run(*command[:3], config, *command[4:])
    assert result.exit_code == 0, result.output
    settings = load_settings(config, env={})
    [system] = settings.dms
    assert (system.systemid, system.organ_id) == ("vbdh", G22)
    secret_file = config.parent / "dms-vbdh.secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert system.secret == secret_file.read_text(encoding="utf-8").strip()
    assert len(system.secret) >= 32
    text = config.read_text(encoding="utf-8")
    assert text.startswith(before) and system.secret not in text  # appended, secret kept out
    assert "secret file" in result.output and "http://127.0.0.1:8470/" in result.output
    again = run(*command[:3], config, *command[4:])
    assert again.exit_code == 78 and "DMS_SYSTEM_EXISTS" in again.output
    assert config.read_text(encoding="utf-8") == text
    assert tomllib.loads(text)["dms"][0]["secret_file"] == "dms-vbdh.secret"


def test_dms_add_refuses_a_missing_secret_and_keeps_an_existing_one(tmp_path: Path) -> None:
    """Without --generate-secret the secret file must exist; --generate-secret never overwrites
    one; both refusals leave the config as it was."""
    config = _init(tmp_path)
    text = config.read_text(encoding="utf-8")
    missing = run("dms", "add", "-c", config, "--systemid", "vbdh")
    assert missing.exit_code == 78 and "DMS_SECRET_FILE" in missing.output
    secret = tmp_path / "given.secret"
    secret.write_text("a long shared secret\n", encoding="utf-8")
    kept = run("dms", "add", "-c", config, "--systemid", "ext", "--secret-file", secret,
               "--generate-secret")
    assert kept.exit_code == 78 and "DMS_SECRET_EXISTS" in kept.output
    assert config.read_text(encoding="utf-8") == text
    assert secret.read_text(encoding="utf-8") == "a long shared secret\n"
    by_env = run("dms", "add", "--systemid", "ext", "--secret-file", secret,
                 env={"EDOC_AXIS_CONFIG": str(config)})
    assert by_env.exit_code == 0, by_env.output
    [system] = load_settings(config, env={}).dms
    assert system.secret == "a long shared secret"


def test_init_with_dms_systemid_writes_a_gateway_ready_config(tmp_path: Path) -> None:
    """`init --dms-systemid` writes the [[dms]] table and a 0600 secret; --dms-secret-file
    names an existing secret, which is used as it is."""
    config = _init(tmp_path, "--dms-systemid", "vbdh")
    [system] = load_settings(config, env={}).dms
    secret_file = config.parent / "dms-vbdh.secret"
    assert system.secret == secret_file.read_text(encoding="utf-8").strip()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    given = tmp_path / "shared.secret"
    given.write_text("x" * 20, encoding="utf-8")
    config = _init(tmp_path, "--force", "--dms-systemid", "ext", "--dms-secret-file", str(given))
    [system] = load_settings(config, env={}).dms
    assert (system.systemid, system.secret) == ("ext", "x" * 20)


def test_dms_send_reads_from_and_type_from_the_package(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """`dms send PACKAGE` without --from submits as the package's From/OrganId (issue 13.15)."""
    info = sandbox.info
    document = tmp_path / "document.edxml"
    built = run("package", "new", "--from", info["agency"], "--to", info["peer"],
                "--subject", "Thử nghiệm", "--code-number", "7", "--code-notation", "TN",
                "-o", document)
    assert built.exit_code == 0, built.output
    env = {**os.environ, "EDOC_AXIS_DMS_SECRET":
           Path(info["secret_file"]).read_text(encoding="utf-8").strip()}
    done = subprocess.run(
        [*EDOC_AXIS_EXE, "dms", "--endpoint", info["endpoint"], "--systemid", info["systemid"],
         "send", str(document)], capture_output=True, text=True, timeout=60, env=env,
        check=False)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"[0-9a-f-]{36}\n", done.stdout)


def test_dms_send_help_needs_no_systemid() -> None:
    """`edoc-axis dms send --help` works in a shell without any EDOC_AXIS_DMS_* variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDOC_AXIS_")}
    done = subprocess.run([*EDOC_AXIS_EXE, "dms", "send", "--help"], capture_output=True,
                          text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "--from ORGANID" in done.stdout and "[required]" not in done.stdout
