"""Settings loaded once: a TOML file plus ``EDOC_AXIS_*`` environment overrides, checked whole.

``load_settings`` reads the file (``--config``, else the one ``EDOC_AXIS_CONFIG`` names, else
none), lets each key's variable override it, converts every value to its field's type, checks
what spans several values, and returns ``Settings`` or raises one ``ConfigError`` listing every
problem: it never returns half-valid settings. Unknown file keys are errors (a typo must not fall
back to a default silently); an ``EDOC_AXIS_*`` variable that names nothing edoc_axis reads is
logged as a warning with the nearest known name (the environment may hold variables of other
tools, so it is not refused). Relative paths in the file resolve against the file's folder,
those from the environment against the current directory.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edoc_axis.config.convert import convert
from edoc_axis.config.dms import dms_systems
from edoc_axis.config.problems import Problems
from edoc_axis.config.schema import (
    CONFIG_ENV,
    DMS_TABLE,
    ENV_PREFIX,
    OTHER_VARIABLES,
    SECTIONS,
    TOP_KEYS,
    ZERO_ALLOWED,
    Key,
    all_keys,
)
from edoc_axis.config.settings import BROKER_LOGINS, DmsSystemSettings, Settings
from edoc_axis.config.zone import timezone_named
from edoc_axis.edxml.identifier import is_valid_organ_id
from edoc_axis.edxml.limits import MAX_ALLOWED_BYTES
from edoc_axis.edxml.profile import PROFILES
from edoc_axis.errors import ConfigError, ErrorCode
from edoc_axis.log import get_logger
from edoc_axis.transport.chunk import MAX_CHUNK_BYTES, MIN_CHUNK_BYTES

log = get_logger(__name__)

_LISTEN = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")
NO_FILE_HINT = f"no config file: pass --config or set {CONFIG_ENV}"


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``path`` (or the file ``EDOC_AXIS_CONFIG`` names) plus env overrides.

    Without any file, every required key must come from the environment. Raises
    ``ConfigError`` naming the offending key(s); never returns half-valid settings.
    """
    environ = os.environ if env is None else env
    if path is None and environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV])
    keys = all_keys()
    misspelt: dict[str, str] = {}  # a known variable -> the stray one that looks like it
    for name, nearest in stray_variables(environ, keys):
        hint = {"did_you_mean": nearest} if nearest else {}
        log.warning("config_variable_ignored", variable=name,
                    reason=f"no setting or option of edoc_axis is named {name}", **hint)
        if nearest:
            misspelt.setdefault(nearest, name)
    raw: dict[str, Any] = {}
    base = Path.cwd()
    config_path: Path | None = None
    if path is not None:
        config_path = Path(path).expanduser().absolute()
        base = config_path.parent
        raw = _read(config_path)
    problems = Problems(str(config_path) if config_path else "environment")
    dms_raw = raw.pop(DMS_TABLE, None)
    file_values = _flatten(raw, keys, problems)
    values: dict[str, Any] = {}
    cwd = Path.cwd()
    for dotted, key in keys.items():
        if key.variable in environ:
            raw_value: Any = environ[key.variable]
            where, from_env, value_base = f"{key.variable} (environment)", True, cwd
        elif dotted in file_values:
            raw_value = file_values[dotted]
            where, from_env, value_base = dotted, False, base
        else:
            if key.required:
                stray = misspelt.get(key.variable)
                near = f" ({stray} is set: did you mean {key.variable}?)" if stray else ""
                problems.add(ErrorCode.CONFIG_MISSING, dotted, f"'{dotted}' is required{near}")
            continue
        try:
            values[dotted] = convert(dotted, key.kind, raw_value, value_base,
                                     from_env=from_env, allow_zero=dotted in ZERO_ALLOWED)
        except ValueError as exc:
            problems.add(ErrorCode.CONFIG_TYPE, dotted, f"{where} {exc}")
    _validate(values, problems)
    dms = dms_systems(dms_raw, values.get("organ_id"), base, problems)
    if config_path is None and problems.has(ErrorCode.CONFIG_MISSING):
        problems.hint = NO_FILE_HINT  # said once, not on every missing key
    problems.raise_if_any()
    return _build(values, keys, config_path, dms)


def stray_variables(
    environ: Mapping[str, str], keys: Mapping[str, Key] | None = None
) -> Iterator[tuple[str, str | None]]:
    """Each ``EDOC_AXIS_*`` variable (in any case) that is neither a key's variable nor one of
    ``OTHER_VARIABLES``, with the nearest known name (None when nothing is close)."""
    known = {key.variable for key in (keys or all_keys()).values()} | OTHER_VARIABLES
    # Compared without the common prefix, which would make every name look alike.
    suffixes = {name[len(ENV_PREFIX):]: name for name in known}
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or name in known:
            continue
        close = difflib.get_close_matches(upper[len(ENV_PREFIX):], list(suffixes), n=1)
        yield name, suffixes[close[0]] if close else None


def broker_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable AMQP URL, or None when it is."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("amqp", "amqps"):
        return f"must use the amqp:// or amqps:// scheme, not '{parts.scheme or url}'"
    if not parts.hostname:
        return "names no host"
    if port == 0:
        return "has port 0"
    return None


def _read(config_path: Path) -> dict[str, Any]:
    try:
        with config_path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {config_path} does not exist (create one with `edoc-axis init`)",
            code=ErrorCode.CONFIG_NOT_FOUND,
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {config_path}: {exc.strerror}",
            code=ErrorCode.CONFIG_NOT_FOUND
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {config_path} is not valid TOML: {exc}", code=ErrorCode.CONFIG_SYNTAX
        ) from exc


def _flatten(raw: Mapping[str, Any], keys: Mapping[str, Key], problems: Problems) -> dict[str, Any]:
    """The file's values by dotted key; unknown keys and misplaced tables become problems."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name in SECTIONS:
            if not isinstance(value, dict):
                problems.add(ErrorCode.CONFIG_TYPE, name, f"'{name}' must be a table ([{name}])")
                continue
            for sub, subvalue in value.items():
                dotted = f"{name}.{sub}"
                if dotted in keys:
                    out[dotted] = subvalue
                else:
                    problems.add(ErrorCode.CONFIG_UNKNOWN_KEY, dotted, _unknown(dotted, keys))
        elif name in keys:
            out[name] = value
        else:
            problems.add(ErrorCode.CONFIG_UNKNOWN_KEY, name, _unknown(name, keys))
    return out


def _unknown(dotted: str, keys: Mapping[str, Key]) -> str:
    close = difflib.get_close_matches(dotted, list(keys), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key '{dotted}'{hint}"


def _validate(values: Mapping[str, Any], problems: Problems) -> None:
    """Checks that span more than the type of one value."""
    organ_id = values.get("organ_id")
    if isinstance(organ_id, str) and not is_valid_organ_id(organ_id):
        problems.add(
            ErrorCode.CONFIG_ORGAN_ID,
            "organ_id",
            f"organ_id '{organ_id}' is not an agency code (expected like 000.00.00.G22)",
        )
    url = values.get("broker.url")
    if isinstance(url, str):
        problem = broker_url_problem(url)
        if problem:
            problems.add(ErrorCode.CONFIG_BROKER_URL, "broker.url", f"broker.url {problem}")
    login = values.get("broker.login", "password")
    if login not in BROKER_LOGINS:
        problems.add(ErrorCode.CONFIG_BROKER_LOGIN, "broker.login",
                     f"broker.login '{login}' must be one of {', '.join(BROKER_LOGINS)}")
    elif login == "certificate" and isinstance(url, str):
        parts = urlsplit(url)
        if parts.scheme != "amqps" or parts.password is not None or not parts.username:
            problems.add(ErrorCode.CONFIG_BROKER_LOGIN, "broker.url",
                         "broker.login = \"certificate\" needs amqps://USER@HOST:PORT/VHOST, "
                         "USER being the user the certificate logs in as, and no password")
    _validate_sizes(values, problems)
    profile = values.get("validation.submit_profile")
    if isinstance(profile, str) and profile not in PROFILES:
        problems.add(
            ErrorCode.CONFIG_PROFILE,
            "validation.submit_profile",
            f"validation.submit_profile '{profile}' must be one of {', '.join(PROFILES)}",
        )
    listen = values.get("api.listen")
    if isinstance(listen, str):
        match = _LISTEN.match(listen)
        if not match or not 0 < int(match["port"]) < 65536:
            problems.add(
                ErrorCode.CONFIG_LISTEN, "api.listen", f"api.listen '{listen}' must be HOST:PORT"
            )
    zone = values.get("api.timezone")
    if isinstance(zone, str):
        try:
            timezone_named(zone)
        except ValueError as exc:
            problems.add(ErrorCode.CONFIG_TIMEZONE, "api.timezone", f"api.timezone: {exc}")


def _validate_sizes(values: Mapping[str, Any], problems: Problems) -> None:
    """The package limit and the chunk size, each within what the node and broker carry."""
    max_bytes = values.get("limits.max_package_bytes")
    # One setting bounds every door (gateway, send, reception, the parser); 200 MiB at most.
    if isinstance(max_bytes, int) and max_bytes > MAX_ALLOWED_BYTES:
        problems.add(
            ErrorCode.CONFIG_LIMIT,
            "limits.max_package_bytes",
            f"limits.max_package_bytes {max_bytes} is over the most allowed, "
            f"{MAX_ALLOWED_BYTES} bytes ({MAX_ALLOWED_BYTES / 2**20:g} MiB)",
        )
    chunk = values.get("broker.chunk_bytes")
    # A chunk must stay one broker message under RabbitMQ 4.x's 16 MiB default.
    if isinstance(chunk, int) and not MIN_CHUNK_BYTES <= chunk <= MAX_CHUNK_BYTES:
        problems.add(
            ErrorCode.CONFIG_LIMIT,
            "broker.chunk_bytes",
            f"broker.chunk_bytes {chunk} must be from {MIN_CHUNK_BYTES} "
            f"({MIN_CHUNK_BYTES // 1024} KiB) to {MAX_CHUNK_BYTES} ({MAX_CHUNK_BYTES >> 20} MiB)",
        )


def _build(
    values: Mapping[str, Any], keys: Mapping[str, Key], config_path: Path | None,
    dms: tuple[DmsSystemSettings, ...],
) -> Settings:
    per_section: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for dotted, value in values.items():
        key = keys[dotted]
        if key.section is not None:
            per_section[key.section][key.attr] = value
    top = {key.attr: values[key.dotted] for key in TOP_KEYS}
    sections = {section: SECTIONS[section](**kwargs) for section, kwargs in per_section.items()}
    return Settings(**top, **sections, dms=dms, config_path=config_path)
