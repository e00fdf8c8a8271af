"""Node settings: TOML file, EDOC_AXIS_* overrides, validation, rendering."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edoc_axis.config.load import load_settings, stray_variables
from edoc_axis.config.render import render_config, render_example, write_config
from edoc_axis.config.schema import CONFIG_ENV, OTHER_VARIABLES
from edoc_axis.config.settings import BrokerSettings
from edoc_axis.edxml.limits import DEFAULT_LIMITS, XmlLimits
from edoc_axis.errors import ConfigError
from edoc_axis.transport.topology import MAX_MESSAGE_BYTES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "node.example.toml"

MINIMAL = """\
organ_id = "000.00.00.H41"
data_dir = "state"
directory = "../directory.toml"

[broker]
url = "amqp://000.00.00.H41:secret@127.0.0.1:5672/edoc"

[keys]
key = "keys/agency.key.pem"
cert = "/etc/edoc/agency.cert.pem"

[trust]
anchors = ["ca.pem"]
crls = ["crl.pem"]
"""


def _write(tmp_path: Path, text: str = MINIMAL) -> Path:
    path = tmp_path / "node" / "node.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads() -> None:
    """The shipped annotated example loads as it is and names the Government Office."""
    settings = load_settings(EXAMPLE, env={})
    assert settings.organ_id == "000.00.00.G22"
    assert settings.broker.user == "urn:qcvn102:organid:000.00.00.G22"
    assert settings.broker.certificate_login
    assert settings.broker.vhost == "edoc"
    assert settings.directory_path == EXAMPLE.parent / "directory.example.toml"
    assert settings.signature.require_signature is True
    assert settings.limits.max_bytes == 50 * 1024 * 1024


def test_example_file_is_the_rendered_example() -> None:
    """config/node.example.toml is exactly what render_example() produces (no drift)."""
    assert EXAMPLE.read_text(encoding="utf-8") == render_example()


def test_example_documents_every_key() -> None:
    """Every key line of the example is preceded by a comment explaining it."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[index - 1].startswith("#"), line


def test_relative_paths_resolve_against_the_file_folder(tmp_path: Path) -> None:
    """Relative paths are taken from the config file's folder, absolute ones are kept."""
    path = _write(tmp_path)
    settings = load_settings(path, env={})
    base = path.parent
    assert settings.data_dir == base / "state"
    assert settings.store_path == base / "state" / "node.sqlite3"
    assert settings.directory_path == base / ".." / "directory.toml"
    assert settings.keys.key == base / "keys" / "agency.key.pem"
    assert settings.keys.cert == Path("/etc/edoc/agency.cert.pem")
    assert settings.trust.anchors == (base / "ca.pem",)
    assert settings.config_path == path


def test_defaults_apply(tmp_path: Path) -> None:
    """Keys left out take the documented defaults."""
    settings = load_settings(_write(tmp_path), env={})
    assert settings.broker.heartbeat == 30
    assert settings.broker.prefetch == 64
    assert settings.broker.publish_window == 256
    assert settings.broker.delivery_limit == 5
    assert settings.keys.chain == ()
    assert settings.signature.crl_required is True
    assert settings.signature.accept_unsigned_status is False
    assert settings.api.listen == "127.0.0.1:8470"


def test_env_overrides_with_type_conversion(tmp_path: Path) -> None:
    """EDOC_AXIS_* variables override the file, converted to each field's type."""
    path = _write(tmp_path)
    env = {
        "EDOC_AXIS_ORGAN_ID": "000.00.00.G22",
        "EDOC_AXIS_DATA_DIR": "/srv/edoc",
        "EDOC_AXIS_BROKER_URL": "amqps://u:p@broker:5671/%2F",
        "EDOC_AXIS_BROKER_PREFETCH": "16",
        "EDOC_AXIS_SIGNATURE_CRL_REQUIRED": "no",
        "EDOC_AXIS_SIGNATURE_ALLOW_SHA1": "TRUE",
        "EDOC_AXIS_TRUST_ANCHORS": "/a/root1.pem, /a/root2.pem",
        "EDOC_AXIS_KEYS_CHAIN": "",
        "EDOC_AXIS_LOG_LEVEL": "debug",  # other EDOC_AXIS_ variables are not config keys
    }
    settings = load_settings(path, env=env)
    assert settings.organ_id == "000.00.00.G22"
    assert settings.data_dir == Path("/srv/edoc")
    assert settings.broker.url == "amqps://u:p@broker:5671/%2F"
    assert settings.broker.vhost == "/"
    assert settings.broker.prefetch == 16
    assert settings.signature.crl_required is False
    assert settings.signature.allow_sha1 is True
    assert settings.trust.anchors == (Path("/a/root1.pem"), Path("/a/root2.pem"))
    assert settings.keys.chain == ()


def test_env_names_the_file(tmp_path: Path) -> None:
    """EDOC_AXIS_CONFIG names the config file when no path is given."""
    path = _write(tmp_path)
    settings = load_settings(env={"EDOC_AXIS_CONFIG": str(path)})
    assert settings.config_path == path


def test_env_only_without_file(tmp_path: Path) -> None:
    """Without a file every required key can come from the environment."""
    env = {
        "EDOC_AXIS_ORGAN_ID": "000.00.00.G22",
        "EDOC_AXIS_DATA_DIR": str(tmp_path),
        "EDOC_AXIS_DIRECTORY": str(tmp_path / "d.toml"),
        "EDOC_AXIS_BROKER_URL": "amqp://g22:pw@localhost/",
        "EDOC_AXIS_KEYS_KEY": str(tmp_path / "k.pem"),
        "EDOC_AXIS_KEYS_CERT": str(tmp_path / "c.pem"),
    }
    settings = load_settings(env=env)
    assert settings.config_path is None
    assert settings.broker.user == "g22"


def test_missing_required_key_names_it() -> None:
    """A missing required key is reported by name, with a hint when there is no file."""
    with pytest.raises(ConfigError) as err:
        load_settings(env={})
    assert err.value.code == "CONFIG_MISSING"
    assert "'organ_id' is required" in err.value.message
    assert "'broker.url' is required" in err.value.message
    assert err.value.message.count("EDOC_AXIS_CONFIG") == 1


def test_unknown_key_rejected(tmp_path: Path) -> None:
    """A misspelt key is an error naming the key and suggesting the right one."""
    path = _write(tmp_path, MINIMAL.replace("[broker]\n", "[broker]\nprefech = 10\n"))
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert err.value.code == "CONFIG_UNKNOWN_KEY"
    assert err.value.element == "broker.prefech"
    assert "did you mean 'broker.prefetch'" in err.value.message


def test_unknown_section_rejected(tmp_path: Path) -> None:
    """An unknown top-level key or table is an error too."""
    path = _write(tmp_path, MINIMAL + "\n[brokr]\nurl = 'x'\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert err.value.element == "brokr"


@pytest.mark.parametrize(
    ("text", "key", "code"),
    [
        ('organ_id = "01.02.G22"', "organ_id", "CONFIG_ORGAN_ID"),
        ('organ_id = "000.00.00.g22"', "organ_id", "CONFIG_ORGAN_ID"),
    ],
)
def test_bad_organ_id(tmp_path: Path, text: str, key: str, code: str) -> None:
    """A malformed OrganId is refused."""
    path = _write(tmp_path, MINIMAL.replace('organ_id = "000.00.00.H41"', text))
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert (err.value.element, err.value.code) == (key, code)


def test_lenient_organ_id_accepted(tmp_path: Path) -> None:
    """The lenient form seen in real traffic (last group letter + 2 letters/digits) loads."""
    settings = load_settings(_write(tmp_path), env={"EDOC_AXIS_ORGAN_ID": "001.00.20.TT2"})
    assert settings.organ_id == "001.00.20.TT2"


@pytest.mark.parametrize(
    "url", ["http://broker/", "broker:5672", "amqp:///edoc", "amqp://h:99999/"]
)
def test_bad_broker_url(tmp_path: Path, url: str) -> None:
    """Only amqp:// and amqps:// URLs naming a host are accepted."""
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path), env={"EDOC_AXIS_BROKER_URL": url})
    assert err.value.element == "broker.url"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("prefetch = 0", "broker.prefetch"),
        ("heartbeat = -5", "broker.heartbeat"),
        ('prefetch = "64"', "broker.prefetch"),
        ("prefetch = true", "broker.prefetch"),
    ],
)
def test_bad_integers(tmp_path: Path, line: str, key: str) -> None:
    """Integers must be positive whole numbers of the TOML integer type."""
    path = _write(tmp_path, MINIMAL.replace("[broker]\n", f"[broker]\n{line}\n"))
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert (err.value.code, err.value.element) == ("CONFIG_TYPE", key)


def test_bad_env_values_name_the_variable(tmp_path: Path) -> None:
    """An unparsable environment value names the variable."""
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path), env={"EDOC_AXIS_SIGNATURE_ALLOW_SHA1": "maybe"})
    assert "EDOC_AXIS_SIGNATURE_ALLOW_SHA1" in err.value.message


def test_limit_over_the_most_allowed(tmp_path: Path) -> None:
    """max_package_bytes may be raised to 200 MiB, not beyond: more is CONFIG_LIMIT at load."""
    env = {"EDOC_AXIS_LIMITS_MAX_PACKAGE_BYTES": str(200 * 1024 * 1024)}
    assert load_settings(_write(tmp_path), env=env).limits.max_bytes == 200 * 1024 * 1024
    env = {"EDOC_AXIS_LIMITS_MAX_PACKAGE_BYTES": str(200 * 1024 * 1024 + 1)}
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path), env=env)
    assert err.value.element == "limits.max_package_bytes"
    assert err.value.code == "CONFIG_LIMIT" and "200 MiB" in err.value.message


def test_chunk_bytes_outside_one_broker_message_is_refused(tmp_path: Path) -> None:
    """broker.chunk_bytes from 64 KiB to 15 MiB loads; outside that is CONFIG_LIMIT at load."""
    for ok in (64 * 1024, 15 * 1024 * 1024):
        env = {"EDOC_AXIS_BROKER_CHUNK_BYTES": str(ok)}
        assert load_settings(_write(tmp_path), env=env).broker.chunk_bytes == ok
    for bad in (64 * 1024 - 1, 15 * 1024 * 1024 + 1):
        env = {"EDOC_AXIS_BROKER_CHUNK_BYTES": str(bad)}
        with pytest.raises(ConfigError) as err:
            load_settings(_write(tmp_path), env=env)
        assert err.value.element == "broker.chunk_bytes"
        assert err.value.code == "CONFIG_LIMIT" and "15 MiB" in err.value.message


def test_limits_section_is_the_parsers_limits(tmp_path: Path) -> None:
    """[limits] loads as edxml's own XmlLimits: max_package_bytes is its max_bytes, and the
    defaults are the parser's defaults (one type, one default, no mirror)."""
    assert load_settings(_write(tmp_path), env={}).limits == DEFAULT_LIMITS
    text = MINIMAL + "\n[limits]\nmax_package_bytes = 1_000_000\nmax_depth = 20\n"
    settings = load_settings(_write(tmp_path, text), env={})
    assert settings.limits == XmlLimits(max_bytes=1_000_000, max_depth=20)
    env = {"EDOC_AXIS_LIMITS_MAX_PACKAGE_BYTES": str(MAX_MESSAGE_BYTES)}
    assert load_settings(_write(tmp_path), env=env).limits.max_bytes == MAX_MESSAGE_BYTES
    target = tmp_path / "again" / "node.toml"
    write_config(target, settings)
    assert "max_package_bytes = 1_000_000\n" in target.read_text(encoding="utf-8")
    assert load_settings(target, env={}).limits == settings.limits


def test_all_problems_listed(tmp_path: Path) -> None:
    """Several problems come back in one error, one line each."""
    text = MINIMAL.replace('"000.00.00.H41"', '"bad"', 1) + "\n[api]\nlisten = 'nowhere'\n"
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, text), env={})
    assert "2 problems" in err.value.message
    assert "organ_id" in err.value.message and "api.listen" in err.value.message


def test_toml_syntax_error(tmp_path: Path) -> None:
    """A broken TOML file gives a ConfigError with the parser's position."""
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, "organ_id = \n"), env={})
    assert err.value.code == "CONFIG_SYNTAX"
    assert "line 1" in err.value.message


def test_missing_file() -> None:
    """A config path that does not exist is a clear error."""
    with pytest.raises(ConfigError) as err:
        load_settings(Path("/nonexistent/node.toml"), env={})
    assert err.value.code == "CONFIG_NOT_FOUND"


def test_render_round_trip(tmp_path: Path) -> None:
    """write_config writes a file that loads back to equal settings, paths made relative."""
    settings = load_settings(_write(tmp_path), env={})
    target = tmp_path / "node" / "copy.toml"
    write_config(target, settings)
    again = load_settings(target, env={})
    assert again == settings.__class__(**{**_fields(settings), "config_path": target})
    text = target.read_text(encoding="utf-8")
    assert 'data_dir = "state"' in text
    assert target.stat().st_mode & 0o077 == 0
    with pytest.raises(ConfigError) as err:
        write_config(target, settings)
    assert err.value.code == "CONFIG_EXISTS"
    write_config(target, settings, force=True)
    assert render_config(settings).startswith("# edoc_axis node configuration")


def _fields(settings: object) -> dict[str, object]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}  # type: ignore[attr-defined]


def test_broker_password_never_in_repr() -> None:
    """The broker password does not appear in the settings' repr (logs, tracebacks)."""
    broker = BrokerSettings(url="amqp://user:s3cr3t@host:5672/v")
    assert "s3cr3t" not in repr(broker)
    assert broker.redacted_url == "amqp://user:***@host:5672/v"
    assert BrokerSettings(url="amqp://host").user == "guest"


# --- DMS gateway: [api] options and [[dms]] systems ---------------------------------------------

DMS_SYSTEM = """
[[dms]]
systemid = "vbdh-h41"
secret = "0123456789abcdef0123"
organ_id = "000.00.00.H41"
"""


def test_dms_systems_load_and_round_trip(tmp_path: Path) -> None:
    """[[dms]] tables load (secret kept out of repr) and render back to equal settings."""
    settings = load_settings(_write(tmp_path, MINIMAL + DMS_SYSTEM), env={})
    assert [(s.systemid, s.organ_id) for s in settings.dms] == [("vbdh-h41", "000.00.00.H41")]
    assert settings.dms[0].secret == "0123456789abcdef0123"
    assert "0123456789abcdef0123" not in repr(settings.dms)
    again = tmp_path / "again" / "node.toml"
    write_config(again, settings)
    assert load_settings(again, env={}).dms == settings.dms


def test_dms_secret_file(tmp_path: Path) -> None:
    """secret_file names a file (relative to the config) holding the secret."""
    path = _write(tmp_path, MINIMAL + DMS_SYSTEM.replace(
        'secret = "0123456789abcdef0123"', 'secret_file = "dms.secret"'))
    (path.parent / "dms.secret").write_text("fedcba9876543210fedcba\n", encoding="utf-8")
    assert load_settings(path, env={}).dms[0].secret == "fedcba9876543210fedcba"


@pytest.mark.parametrize(
    ("table", "element"),
    [
        (DMS_SYSTEM.replace("000.00.00.H41", "000.00.00.G22"), "dms[1].organ_id"),
        (DMS_SYSTEM.replace("0123456789abcdef0123", "short"), "dms[1].secret"),
        (DMS_SYSTEM.replace('systemid = "vbdh-h41"', 'systemid = ""'), "dms[1].systemid"),
        (DMS_SYSTEM + "colour = 1\n", "dms[1].colour"),
        (DMS_SYSTEM + DMS_SYSTEM.replace("[[dms]]", ""), None),
    ],
)
def test_dms_system_problems_are_named(tmp_path: Path, table: str, element: str | None) -> None:
    """A wrong organ_id, short secret, empty systemid, unknown or repeated key is refused."""
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, MINIMAL + table), env={})
    if element is not None:
        assert info.value.element == element


def test_duplicate_systemid_is_refused(tmp_path: Path) -> None:
    """Two [[dms]] tables with one systemid are refused."""
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, MINIMAL + DMS_SYSTEM + DMS_SYSTEM), env={})
    assert "configured twice" in str(info.value)


def test_api_max_timestamp_age_zero_means_no_limit(tmp_path: Path) -> None:
    """api.max_timestamp_age accepts 0 (no limit) but not a negative number."""
    path = _write(tmp_path, MINIMAL + "\n[api]\nmax_timestamp_age = 0\nenabled = true\n")
    settings = load_settings(path, env={})
    assert settings.api.max_timestamp_age == 0
    assert settings.api.enabled
    with pytest.raises(ConfigError):
        load_settings(path, env={"EDOC_AXIS_API_MAX_TIMESTAMP_AGE": "-1"})


def test_submit_profile_defaults_to_strict_and_can_be_received(tmp_path: Path) -> None:
    """[validation] submit_profile is strict unless the file or the environment says received."""
    assert load_settings(_write(tmp_path), env={}).validation.submit_profile == "strict"
    text = MINIMAL + '\n[validation]\nsubmit_profile = "received"\n'
    relaxed = load_settings(_write(tmp_path, text), env={})
    assert relaxed.validation.submit_profile == "received"
    env = {"EDOC_AXIS_VALIDATION_SUBMIT_PROFILE": "received"}
    assert load_settings(_write(tmp_path), env=env).validation.submit_profile == "received"


def test_unknown_submit_profile_is_refused(tmp_path: Path) -> None:
    """A profile other than strict or received is a config error naming the key."""
    text = MINIMAL + '\n[validation]\nsubmit_profile = "lenient"\n'
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, text), env={})
    assert err.value.code == "CONFIG_PROFILE"
    assert err.value.element == "validation.submit_profile"
    assert "strict, received" in err.value.message


# --- EDOC_AXIS_* variables and the missing config file, as a person meets them -----------------


def _cli(cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``edoc-axis ARGV`` run in ``cwd`` with only the EDOC_AXIS_ variables given."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("EDOC_AXIS_")}
    return subprocess.run([sys.executable, "-m", "edoc_axis", "--log-text", *argv],
                          cwd=cwd, env={**clean, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


def test_misspelt_variable_is_named_with_the_nearest_setting(tmp_path: Path) -> None:
    """A misspelt EDOC_AXIS_ variable gets a warning naming the variable it resembles, and the
    missing key it would have set says so; the command goes on to its own answer."""
    done = _cli(tmp_path, "inbox", "list", EDOC_AXIS_BROKR_URL="amqp://h/",
                edoc_axis_keys_cert="c.pem")
    assert done.returncode == 78
    assert re.search(r"warning.*config_variable_ignored.*did_you_mean=EDOC_AXIS_BROKER_URL"
                     r".*variable=EDOC_AXIS_BROKR_URL", done.stderr)
    assert re.search(r"did_you_mean=EDOC_AXIS_KEYS_CERT.*variable=edoc_axis_keys_cert",
                     done.stderr)
    assert ("'broker.url' is required (EDOC_AXIS_BROKR_URL is set: did you mean "
            "EDOC_AXIS_BROKER_URL?)") in done.stderr


def test_known_variables_raise_no_warning(tmp_path: Path) -> None:
    """Settings' variables, EDOC_AXIS_CONFIG and the CLI's own (log level, DMS client, broker
    admin URL) are known: a command loading a config warns about none of them."""
    path = _write(tmp_path)
    done = _cli(tmp_path, "inbox", "list", EDOC_AXIS_CONFIG=str(path), EDOC_AXIS_LOG_LEVEL="info",
                EDOC_AXIS_DMS_SECRET="x" * 20, EDOC_AXIS_DMS_SYSTEMID="vbdh",
                EDOC_AXIS_DMS_ENDPOINT="http://127.0.0.1:1/", EDOC_AXIS_BROKER_PREFETCH="8",
                EDOC_AXIS_BROKER_ADMIN_URL="http://guest:guest@127.0.0.1:15672/")
    assert done.returncode == 0, done.stderr
    assert "config_variable_ignored" not in done.stderr


def test_no_config_file_hint_is_said_once(tmp_path: Path) -> None:
    """Without a config file, `inbox list` and `doctor` list every missing key and say once
    how to name the file."""
    for argv in (("inbox", "list"), ("doctor", "--no-broker")):
        done = _cli(tmp_path, *argv)
        output = done.stdout + done.stderr
        assert output.count(CONFIG_ENV) == 1, output
        assert "6 problems in environment (no config file: pass --config or set" in output
        for key in ("organ_id", "data_dir", "directory", "broker.url", "keys.key", "keys.cert"):
            assert f"  - '{key}' is required\n" in output
        assert not output.rstrip().endswith("(organ_id)")


def test_stray_variables_compare_names_without_the_prefix() -> None:
    """Only EDOC_AXIS_ names (any case) that no setting or command reads are stray; the nearest
    name is found on the part after the prefix, and nothing is offered when nothing is close."""
    env = {"EDOC_AXIS_SIGNATURE_ALLOW_SHA": "1", "EDOC_AXIS_LOG_LEVEL": "debug",
           "EDOC_AXIS_BROKER_URL": "amqp://h/", "EDOC_AXIS_ZZZ": "1", "PATH": "/bin",
           "Edoc_Axis_Data_Dir": "/x"}
    assert dict(stray_variables(env)) == {
        "EDOC_AXIS_SIGNATURE_ALLOW_SHA": "EDOC_AXIS_SIGNATURE_ALLOW_SHA1",
        "EDOC_AXIS_ZZZ": None,
        "Edoc_Axis_Data_Dir": "EDOC_AXIS_DATA_DIR",
    }


def test_other_variables_are_the_clis_own() -> None:
    """OTHER_VARIABLES is EDOC_AXIS_CONFIG plus exactly the variables the CLI's options read."""
    cli = Path(__file__).resolve().parent.parent / "edoc_axis" / "cli"
    envvars = {name for path in cli.glob("*.py")
               for name in re.findall(r'envvar="(EDOC_AXIS_\w+)"', path.read_text("utf-8"))}
    assert envvars | {CONFIG_ENV} == OTHER_VARIABLES
