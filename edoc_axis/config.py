"""Node settings: one frozen dataclass loaded from a TOML file plus ``EDOC_AXIS_*`` overrides.

The file has three top-level keys (``organ_id``, ``data_dir``, ``directory``) and the tables
``[broker]``, ``[keys]``, ``[trust]``, ``[signature]``, ``[limits]``, ``[validation]``, ``[api]``
and ``[audit]``. Any key of the
file can be overridden by the environment variable ``EDOC_AXIS_<KEY>`` (top level) or
``EDOC_AXIS_<SECTION>_<KEY>`` (e.g. ``EDOC_AXIS_BROKER_URL``); ``EDOC_AXIS_CONFIG`` names the
file. Unknown keys are errors (a typo must not silently fall back to a default). Relative paths
in the file resolve against the file's folder; relative paths from the environment against the
current directory. The same schema renders the annotated example and the file ``init`` writes.
``[[dms]]`` tables (systemid, secret or secret_file, organ_id) list the DMS systems allowed to
call the gateway; they come from the file only (no environment override).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from edoc_axis.edxml.identifier import VN_TZ, is_valid_organ_id
from edoc_axis.edxml.limits import XmlLimits
from edoc_axis.edxml.profile import PROFILES, STRICT
from edoc_axis.errors import ConfigError
from edoc_axis.trust.policy import SignaturePolicy

CONFIG_ENV = "EDOC_AXIS_CONFIG"
ENV_PREFIX = "EDOC_AXIS_"
STORE_FILENAME = "node.sqlite3"
MIB = 1024 * 1024
# RabbitMQ 4.x refuses messages over 16 MiB by default; larger packages are a later issue.
BROKER_MAX_MESSAGE_BYTES = 16 * MIB
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_LISTEN = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")
DEFAULT_LISTEN = "127.0.0.1:8470"
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{1,2})(?::?(\d{2}))?$")
# Vietnam has kept UTC+7 without daylight saving since 1975: the fixed offset is exact, and
# serves hosts without the tz database.
_FIXED_ZONES = {"Asia/Ho_Chi_Minh": VN_TZ, "Asia/Saigon": VN_TZ, "UTC": UTC}


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """How this node reaches RabbitMQ; the URL's user is the agency's broker user."""

    url: str
    heartbeat: int = 30
    blocked_connection_timeout: int = 60
    prefetch: int = 64
    publish_window: int = 256
    delivery_limit: int = 5

    def __repr__(self) -> str:  # the URL holds a password: never let it reach a log
        return (
            f"BrokerSettings(url={self.redacted_url!r}, heartbeat={self.heartbeat}, "
            f"blocked_connection_timeout={self.blocked_connection_timeout}, "
            f"prefetch={self.prefetch}, publish_window={self.publish_window}, "
            f"delivery_limit={self.delivery_limit})"
        )

    @property
    def user(self) -> str:
        """The broker user name in the URL (``guest`` when absent, as pika assumes)."""
        name = urlsplit(self.url).username
        return unquote(name) if name else "guest"

    @property
    def vhost(self) -> str:
        """The virtual host named by the URL path (``/`` when the path is empty)."""
        path = urlsplit(self.url).path
        return unquote(path[1:]) if len(path) > 1 else "/"

    @property
    def redacted_url(self) -> str:
        """The URL with the password hidden, for messages and logs."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = parts.netloc.rsplit("@", 1)[1]
        return parts._replace(netloc=f"{parts.username}:***@{netloc}").geturl()


@dataclass(frozen=True, slots=True)
class KeySettings:
    """The agency's signing key and certificate (PEM), with intermediates to send along."""

    key: Path
    cert: Path
    chain: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class TrustSettings:
    """Trust anchors (CA certificates, PEM) and CRLs used to verify peers' signatures."""

    anchors: tuple[Path, ...] = ()
    crls: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Bounds applied to every package the node parses."""

    max_package_bytes: int = 15 * MIB
    max_depth: int = 48
    max_elements: int = 100_000

    def xml_limits(self) -> XmlLimits:
        """These limits as the hardened parser's ``XmlLimits``."""
        return XmlLimits(
            max_bytes=self.max_package_bytes,
            max_depth=self.max_depth,
            max_elements=self.max_elements,
        )


@dataclass(frozen=True, slots=True)
class ValidationSettings:
    """Which reception profile (``edoc_axis.edxml.profile``) judges what this node is asked to send.

    Received packages are always judged by ``received``; submissions (``send``, the DMS
    gateway) by ``strict`` unless an agency whose DMS writes harmless deviations says otherwise.
    """

    submit_profile: str = STRICT


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The DMS gateway (``edoc_axis.gateway``): where it listens and how it reads timestamps."""

    listen: str = DEFAULT_LISTEN
    enabled: bool = False  # also served without this when [[dms]] systems are configured
    max_timestamp_age: int = 0  # seconds; 0 = no limit (SDK objects that keep one timestamp)
    timezone: str = DEFAULT_TIMEZONE  # the zone of the SDK's zone-less timestamp

    def address(self) -> tuple[str, int]:
        """``listen`` as (host, port); raises ConfigError naming the key."""
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ConfigError(
                f"api.listen must be host:port, got {self.listen!r}", element="listen"
            )
        return host.strip("[]") or "127.0.0.1", int(port)

    def zone(self) -> tzinfo:
        """``timezone`` as a tzinfo; raises ConfigError (CONFIG_TIMEZONE) when unknown."""
        try:
            return timezone_named(self.timezone)
        except ValueError as exc:  # load_settings checked it; settings built in code may not be
            raise ConfigError(f"api.timezone: {exc}", code="CONFIG_TIMEZONE",
                              element="api.timezone") from exc


@dataclass(frozen=True, slots=True)
class DmsSystemSettings:
    """One ``[[dms]]`` table: a DMS allowed to call the gateway, and the agency it speaks for."""

    systemid: str
    secret: str = field(repr=False)
    organ_id: str


def timezone_named(name: str) -> tzinfo:
    """The zone an SDK timestamp is read in: an IANA name (``Asia/Ho_Chi_Minh``, ``UTC``) or a
    fixed offset (``+07:00``); raises ValueError naming what is accepted."""
    text = name.strip()
    offset = _OFFSET.match(text)
    if offset:
        sign, hours, minutes = offset.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta > timedelta(hours=14):
            raise ValueError(f"offset {text!r} is beyond ±14:00")
        return timezone(-delta if sign == "-" else delta, text)
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        if text in _FIXED_ZONES:
            return _FIXED_ZONES[text]
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as {DEFAULT_TIMEZONE} or UTC, "
            "or an offset such as +07:00)"
        ) from None


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """When the node signs its audit chain's head (a checkpoint), whichever comes first."""

    every_entries: int = 1000
    every_seconds: int = 300


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a node needs to know about itself, loaded once and passed explicitly."""

    organ_id: str
    data_dir: Path
    broker: BrokerSettings
    keys: KeySettings
    directory_path: Path
    trust: TrustSettings = field(default_factory=TrustSettings)
    signature: SignaturePolicy = field(default_factory=SignaturePolicy)
    limits: LimitSettings = field(default_factory=LimitSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    dms: tuple[DmsSystemSettings, ...] = ()
    audit: AuditSettings = field(default_factory=AuditSettings)
    config_path: Path | None = None  # the file these settings came from, if any

    @property
    def store_path(self) -> Path:
        """The node's SQLite database."""
        return self.data_dir / STORE_FILENAME


# --- the file schema ---------------------------------------------------------------------------

# Top-level keys: file key -> (Settings field, type, required).
_TOP: dict[str, tuple[str, Any]] = {
    "organ_id": ("organ_id", str),
    "data_dir": ("data_dir", Path),
    "directory": ("directory_path", Path),
}
_SECTIONS: dict[str, type[Any]] = {
    "broker": BrokerSettings,
    "keys": KeySettings,
    "trust": TrustSettings,
    "signature": SignaturePolicy,
    "limits": LimitSettings,
    "validation": ValidationSettings,
    "api": ApiSettings,
    "audit": AuditSettings,
}
_INTERNAL_FIELDS = frozenset({"config_path"})
_ZERO_ALLOWED = frozenset({"api.max_timestamp_age"})  # integers where 0 means "no limit"
DMS_TABLE = "dms"
DMS_KEYS = ("systemid", "secret", "secret_file", "organ_id")
MIN_DMS_SECRET_CHARS = 16


def _section_types(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _schema() -> dict[str, Any]:
    """Every dotted key the file may hold, mapped to its Python type."""
    out: dict[str, Any] = {key: typ for key, (_, typ) in _TOP.items()}
    for section, cls in _SECTIONS.items():
        for name, typ in _section_types(cls).items():
            out[f"{section}.{name}"] = typ
    return out


def env_name(dotted: str) -> str:
    """The variable overriding a dotted key: ``broker.url`` -> ``EDOC_AXIS_BROKER_URL``."""
    return ENV_PREFIX + dotted.replace(".", "_").upper()


def _required(dotted: str) -> bool:
    if "." not in dotted:
        return True
    section, name = dotted.split(".", 1)
    for f in fields(_SECTIONS[section]):
        if f.name == name:
            return f.default is MISSING and f.default_factory is MISSING
    return False


class _Problems:
    """Collects configuration problems so one error can list them all."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[str, str, str]] = []  # (code, dotted key, message)

    def add(self, code: str, key: str, message: str) -> None:
        self.items.append((code, key, message))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        code, key, _ = self.items[0]
        lines = [f"{m}" for _, _, m in self.items]
        if len(lines) == 1:
            message = f"{lines[0]} ({self.source})"
        else:
            message = f"{len(lines)} problems in {self.source}:\n" + "\n".join(
                f"  - {line}" for line in lines
            )
        raise ConfigError(message, code=code, element=key)


def _flatten(
    raw: Mapping[str, Any], schema: Mapping[str, Any], problems: _Problems
) -> dict[str, Any]:
    """The file's values by dotted key; unknown keys and misplaced tables become problems."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                problems.add("CONFIG_TYPE", key, f"'{key}' must be a table ([{key}])")
                continue
            for sub, subvalue in value.items():
                dotted = f"{key}.{sub}"
                if dotted in schema:
                    out[dotted] = subvalue
                else:
                    problems.add("CONFIG_UNKNOWN_KEY", dotted, _unknown(dotted, schema))
        elif key in schema:
            out[key] = value
        else:
            problems.add("CONFIG_UNKNOWN_KEY", key, _unknown(key, schema))
    return out


def _unknown(dotted: str, schema: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(dotted, list(schema), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key '{dotted}'{hint}"


def _convert(dotted: str, typ: Any, value: Any, base: Path, from_env: bool) -> Any:
    """One value converted to the field's type; raises ValueError with a reason.

    Values from the environment are strings and are parsed; values from the file must already
    have the right TOML type (a quoted "30" for an integer is a mistake worth reporting).
    """
    if typ is bool:
        return _bool(value, from_env)
    if typ is int:
        return _int(value, from_env, allow_zero=dotted in _ZERO_ALLOWED)
    if typ is str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return value.strip()
    if typ is Path:
        return _path(value, base)
    if typing.get_origin(typ) is tuple:
        if from_env and isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        if not isinstance(value, list):
            raise ValueError("must be a list of paths")
        return tuple(_path(item, base) for item in value)
    raise TypeError(f"no conversion for {dotted} ({typ})")  # pragma: no cover - schema bug


def _bool(value: Any, from_env: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_env and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("must be true or false")


def _int(value: Any, from_env: bool, *, allow_zero: bool = False) -> int:
    if from_env and isinstance(value, str):
        try:
            value = int(value.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"must be a whole number, not '{value}'") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"must be {'zero or ' if allow_zero else ''}positive, not {value}")
    return value


def _path(value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty path string")
    path = Path(value.strip()).expanduser()
    return path if path.is_absolute() else (base / path)


def _validate(values: Mapping[str, Any], problems: _Problems) -> None:
    """Checks that span more than the type of one value."""
    organ_id = values.get("organ_id")
    if isinstance(organ_id, str) and not is_valid_organ_id(organ_id):
        problems.add(
            "CONFIG_ORGAN_ID",
            "organ_id",
            f"organ_id '{organ_id}' is not an agency code (expected like 000.00.00.G22)",
        )
    url = values.get("broker.url")
    if isinstance(url, str):
        problem = broker_url_problem(url)
        if problem:
            problems.add("CONFIG_BROKER_URL", "broker.url", f"broker.url {problem}")
    max_bytes = values.get("limits.max_package_bytes")
    if isinstance(max_bytes, int) and max_bytes > BROKER_MAX_MESSAGE_BYTES:
        problems.add(
            "CONFIG_LIMIT",
            "limits.max_package_bytes",
            f"limits.max_package_bytes {max_bytes} is over the broker's message limit of "
            f"{BROKER_MAX_MESSAGE_BYTES} bytes (16 MiB); larger packages are not supported yet",
        )
    profile = values.get("validation.submit_profile")
    if isinstance(profile, str) and profile not in PROFILES:
        problems.add(
            "CONFIG_PROFILE",
            "validation.submit_profile",
            f"validation.submit_profile '{profile}' must be one of {', '.join(PROFILES)}",
        )
    listen = values.get("api.listen")
    if isinstance(listen, str):
        match = _LISTEN.match(listen)
        if not match or not 0 < int(match["port"]) < 65536:
            problems.add(
                "CONFIG_LISTEN", "api.listen", f"api.listen '{listen}' must be HOST:PORT"
            )
    zone = values.get("api.timezone")
    if isinstance(zone, str):
        try:
            timezone_named(zone)
        except ValueError as exc:
            problems.add("CONFIG_TIMEZONE", "api.timezone", f"api.timezone: {exc}")


def _dms_systems(
    raw: Any, organ_id: Any, base: Path, problems: _Problems
) -> tuple[DmsSystemSettings, ...]:
    """The ``[[dms]]`` tables: systemid, secret (or secret_file) and organ_id = this agency."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        problems.add("CONFIG_TYPE", DMS_TABLE, "'dms' must be an array of tables ([[dms]])")
        return ()
    systems: list[DmsSystemSettings] = []
    seen: set[str] = set()
    for number, table in enumerate(raw, start=1):
        where = f"dms[{number}]"
        for key in table:
            if key not in DMS_KEYS:
                problems.add("CONFIG_UNKNOWN_KEY", f"{where}.{key}",
                             f"unknown key '{key}' in {where} (allowed: {', '.join(DMS_KEYS)})")
        systemid, organ = table.get("systemid"), table.get("organ_id")
        secret = _dms_secret(table, where, base, problems)
        if not isinstance(systemid, str) or not systemid.strip() or any(
            c.isspace() or ord(c) < 32 for c in systemid.strip()
        ):
            problems.add("CONFIG_DMS", f"{where}.systemid",
                         f"{where}.systemid must be a non-empty name without spaces")
            continue
        systemid = systemid.strip()
        if systemid in seen:
            problems.add("CONFIG_DMS", f"{where}.systemid",
                         f"{where}.systemid '{systemid}' is configured twice")
        seen.add(systemid)
        if not isinstance(organ, str) or organ.strip() != organ_id:
            problems.add("CONFIG_DMS", f"{where}.organ_id",
                         f"{where}.organ_id must be this node's organ_id '{organ_id}' (a DMS "
                         f"speaks only for the agency of the node it calls), not {organ!r}")
            continue
        if secret is not None:
            systems.append(DmsSystemSettings(systemid, secret, organ.strip()))
    return tuple(systems)


def _dms_secret(
    table: Mapping[str, Any], where: str, base: Path, problems: _Problems
) -> str | None:
    secret, secret_file = table.get("secret"), table.get("secret_file")
    if (secret is None) == (secret_file is None):
        problems.add("CONFIG_DMS", f"{where}.secret",
                     f"{where} needs exactly one of secret or secret_file")
        return None
    if secret_file is not None:
        try:
            secret = _path(secret_file, base).read_text(encoding="utf-8").strip()
        except (ValueError, OSError) as exc:
            problems.add("CONFIG_DMS", f"{where}.secret_file",
                         f"{where}.secret_file cannot be read: {exc}")
            return None
    if not isinstance(secret, str) or len(secret.strip()) < MIN_DMS_SECRET_CHARS:
        problems.add("CONFIG_DMS", f"{where}.secret",
                     f"{where}.secret must be at least {MIN_DMS_SECRET_CHARS} characters")
        return None
    return secret.strip()


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


def _build(
    values: Mapping[str, Any], config_path: Path | None,
    dms: tuple[DmsSystemSettings, ...] = (),
) -> Settings:
    sections: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        kwargs = {
            key.split(".", 1)[1]: value
            for key, value in values.items()
            if key.startswith(section + ".")
        }
        sections[section] = cls(**kwargs)
    return Settings(
        organ_id=values["organ_id"],
        data_dir=values["data_dir"],
        directory_path=values["directory"],
        config_path=config_path,
        dms=dms,
        **sections,
    )


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``path`` (or the file ``EDOC_AXIS_CONFIG`` names) plus env overrides.

    Without any file, every required key must come from the environment. Raises
    ``ConfigError`` naming the offending key(s); never returns half-valid settings.
    """
    environ = os.environ if env is None else env
    if path is None and environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV])
    schema = _schema()
    raw: dict[str, Any] = {}
    base = Path.cwd()
    config_path: Path | None = None
    if path is not None:
        config_path = Path(path).expanduser().absolute()
        base = config_path.parent
        try:
            with config_path.open("rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(
                f"config file {config_path} does not exist (create one with `edoc-axis init`)",
                code="CONFIG_NOT_FOUND",
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot read config file {config_path}: {exc.strerror}", code="CONFIG_NOT_FOUND"
            ) from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"config file {config_path} is not valid TOML: {exc}", code="CONFIG_SYNTAX"
            ) from exc
    problems = _Problems(str(config_path) if config_path else "environment")
    dms_raw = raw.pop(DMS_TABLE, None)
    file_values = _flatten(raw, schema, problems)
    values: dict[str, Any] = {}
    cwd = Path.cwd()
    for dotted, typ in schema.items():
        name = env_name(dotted)
        if name in environ:
            raw_value: Any = environ[name]
            where, from_env, value_base = f"{name} (environment)", True, cwd
        elif dotted in file_values:
            raw_value = file_values[dotted]
            where, from_env, value_base = dotted, False, base
        else:
            if _required(dotted):
                hint = (
                    "" if config_path else f" (no config file: pass --config or set {CONFIG_ENV})"
                )
                problems.add("CONFIG_MISSING", dotted, f"'{dotted}' is required{hint}")
            continue
        try:
            values[dotted] = _convert(dotted, typ, raw_value, value_base, from_env)
        except ValueError as exc:
            problems.add("CONFIG_TYPE", dotted, f"{where} {exc}")
    _validate(values, problems)
    dms = _dms_systems(dms_raw, values.get("organ_id"), base, problems)
    problems.raise_if_any()
    return _build(values, config_path, dms)


# --- rendering: the annotated example and the file `init` writes --------------------------------

_HEADER = """\
# edoc_axis node configuration (TOML).
#
# Every key can be overridden by an environment variable: EDOC_AXIS_<KEY> for the top-level keys
# (EDOC_AXIS_ORGAN_ID, EDOC_AXIS_DATA_DIR, EDOC_AXIS_DIRECTORY) and EDOC_AXIS_<SECTION>_<KEY> for
# the others (EDOC_AXIS_BROKER_URL, EDOC_AXIS_SIGNATURE_REQUIRE_SIGNATURE=false, ...). Lists come
# from the environment as comma-separated values. EDOC_AXIS_CONFIG names this file.
# Relative paths in this file are resolved against the folder this file is in.
# Unknown keys are refused, so a misspelt key is an error rather than a silent default.
# Check a node with `edoc-axis doctor`.
"""

_DOCS: dict[str, str] = {
    "organ_id": "This agency's code (OrganId, mã định danh, QCVN 102:2016), e.g. 000.00.00.G22.\n"
    "It must be listed in the agency directory with this node's certificate fingerprint.",
    "data_dir": "Folder for the node's state: the SQLite store (node.sqlite3) and working files.\n"
    "Must be writable by the node and backed up.",
    "directory": "The agency directory (TOML, [[agency]] tables): every agency's OrganId, code,\n"
    "name, parent, broker user and certificate fingerprints. See directory.example.toml.",
    "broker": "RabbitMQ connection.",
    "broker.url": "amqp:// or amqps:// URL: amqp://USER:PASSWORD@HOST:PORT/VHOST (vhost %2F = /).\n"
    "USER is this agency's broker user; it must equal broker_user in the directory, because\n"
    "RabbitMQ stamps it on every message as user_id and recipients check it against From.",
    "broker.heartbeat": "AMQP heartbeat in seconds: a dead connection is noticed within ~2x this.",
    "broker.blocked_connection_timeout": "Seconds to wait while the broker blocks publishers\n"
    "(memory or disk alarm) before dropping the connection and reconnecting.",
    "broker.prefetch": "Unacknowledged deliveries the broker may push to this node at once.",
    "broker.publish_window": "Published messages awaiting a publisher confirm at once.",
    "broker.delivery_limit": "Deliveries of one message before it is dead-lettered (poison\n"
    "messages); must match the queue's x-delivery-limit.",
    "keys": "This agency's signing identity (PEM files).",
    "keys.key": "Private key signing packages and receipts. Keep it readable by the node only.",
    "keys.cert": "Certificate of that key; carries this agency's OrganId.",
    "keys.chain": "Intermediate CA certificates sent along with signatures (may be empty).",
    "trust": "What this node trusts when verifying other agencies' signatures.",
    "trust.anchors": "Root CA certificates (PEM). Signatures must chain to one of these.",
    "trust.crls": "Certificate revocation lists (PEM or DER), refreshed by the administrator.",
    "signature": "Signature policy.",
    "signature.require_signature": "Refuse packages that carry no XML signature.",
    "signature.allow_sha1": "Accept SHA-1 digests/signatures (legacy peers only; weak).",
    "signature.crl_required": "Fail closed: refuse a signature when no fresh CRL covers its\n"
    "issuer. Turn off only on a test bench.",
    "signature.sign_unsigned_submissions": "Sign documents submitted to this node unsigned\n"
    "(by `edoc-axis send` or the DMS API) with this agency's key before sending.",
    "signature.accept_unsigned_status": "Accept unsigned status packages from legacy peers.",
    "signature.accept_edxml_namespace": "Verify a Signature written in the edXML namespace (some\n"
    "producers drop the XML-DSig namespace) as XML-DSig, with a warning; off: refused.",
    "limits": "Bounds for every package parsed (hostile input protection).",
    "limits.max_package_bytes": "Largest package in bytes. At most 16 MiB (16777216): the\n"
    "broker's default message limit.",
    "limits.max_depth": "Deepest XML nesting accepted.",
    "limits.max_elements": "Most XML elements accepted in one package.",
    "validation": "How strictly packages are judged (reception profiles). Received packages are\n"
    "always judged by \"received\": harmless deviations the deployed axis delivers (an empty\n"
    "optional element, an odd OrganId in a TraceHeader, white space around a value) are kept\n"
    "as warnings with the package; everything touching security or routing is refused.",
    "validation.submit_profile": "Profile for packages this node sends (`edoc-axis send`, the\n"
    "DMS gateway): \"strict\" refuses every finding; \"received\" lets the harmless ones through.",
    "api": "HTTP API for document management software (DMS).",
    "api.listen": "HOST:PORT the DMS gateway listens on (keep it on loopback or a private\n"
    "network: DMS systems authenticate by HMAC, but the traffic is plain HTTP).",
    "api.enabled": "Serve the gateway even when no [[dms]] system is configured (health and\n"
    "metrics only). It is always served when [[dms]] tables exist.",
    "api.max_timestamp_age": "Oldest accepted request timestamp, in seconds. 0 = no limit: the\n"
    "Java SDK stamps the time once, when its object is created, and DMS software keeps one\n"
    "object for its whole life. Exact repeats of a signed request are answered from the store\n"
    "and change nothing, whatever its age. Set a limit (e.g. 300) only for DMS software that\n"
    "builds a fresh SDK object per call. Timestamps more than 300 s ahead are always refused.",
    "api.timezone": "Time zone of the DMS host's clock: the SDK's timestamp carries no zone.\n"
    "An IANA name (Asia/Ho_Chi_Minh, UTC) or an offset (+07:00). List times are answered in it.",
    "audit": "The tamper-evident audit chain: how often its head is signed (a checkpoint).\n"
    "Entries after the last checkpoint are not yet sealed; `edoc-axis audit seal` forces one.",
    "audit.every_entries": "Sign a checkpoint after this many new entries.",
    "audit.every_seconds": "... or when the last checkpoint is this many seconds old (checked\n"
    "at each new entry).",
}


def _toml_value(value: Any, base: Path | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:_}" if value >= 10_000 else str(value)
    if isinstance(value, Path):
        return json.dumps(_relative(value, base), ensure_ascii=False)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(item, base) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _relative(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in text.splitlines())


def render_config(settings: Settings, *, base_dir: Path | None = None) -> str:
    """Annotated TOML for ``settings``; paths under ``base_dir`` are written relative to it.

    Writing the result to a file in ``base_dir`` and loading it gives back equal settings.
    """
    out = [_HEADER]
    tops = {"organ_id": settings.organ_id, "data_dir": settings.data_dir,
            "directory": settings.directory_path}
    for key, value in tops.items():
        out.append("\n" + _comment(_DOCS[key]) + f"{key} = {_toml_value(value, base_dir)}\n")
    for section in _SECTIONS:
        obj = getattr(settings, section)
        out.append(f"\n{_comment(_DOCS[section])}[{section}]\n")
        for f in fields(obj):
            dotted = f"{section}.{f.name}"
            value = getattr(obj, f.name)
            out.append(_comment(_DOCS[dotted]) + f"{f.name} = {_toml_value(value, base_dir)}\n")
    out.append(_render_dms(settings))
    return "".join(out)


_DMS_DOC = """\
DMS systems allowed to call the gateway (one [[dms]] table each). systemid and secret are
what the DMS's axis SDK is configured with; organ_id must be this node's organ_id. Use
secret_file = "path" instead of secret to keep the secret out of this file. The DMS points
its SDK endpoint at http://<api.listen>/ and sees each package's node id as its docId.
"""


def _render_dms(settings: Settings) -> str:
    if not settings.dms:
        example = (
            f'[[dms]]\nsystemid = "vbdh"\nsecret = "CHANGE-ME-{"0" * MIN_DMS_SECRET_CHARS}"\n'
            f"organ_id = {_toml_value(settings.organ_id, None)}\n"
        )
        return "\n" + _comment(_DMS_DOC) + _comment(example)
    tables = "".join(
        f"[[dms]]\nsystemid = {_toml_value(s.systemid, None)}\n"
        f"secret = {_toml_value(s.secret, None)}\norgan_id = {_toml_value(s.organ_id, None)}\n"
        for s in settings.dms
    )
    return "\n" + _comment(_DMS_DOC) + tables


def example_settings(base_dir: Path) -> Settings:
    """The settings of the annotated example (the Government Office's node)."""
    return Settings(
        organ_id="000.00.00.G22",
        data_dir=Path("/var/lib/edoc-axis"),
        directory_path=base_dir / "directory.example.toml",
        broker=BrokerSettings(url="amqps://000.00.00.G22:CHANGE-ME@broker.example.gov.vn:5671/edoc"),
        keys=KeySettings(
            key=base_dir / "keys" / "agency.key.pem", cert=base_dir / "keys" / "agency.cert.pem"
        ),
        trust=TrustSettings(
            anchors=(base_dir / "trust" / "root-ca.pem",),
            crls=(base_dir / "trust" / "root-ca.crl",),
        ),
    )


def render_example() -> str:
    """The annotated example config shipped as ``config/node.example.toml``."""
    base = Path("/example")
    return render_config(example_settings(base), base_dir=base)


def write_config(path: Path, settings: Settings, *, force: bool = False) -> None:
    """Write ``settings`` as an annotated TOML file at ``path`` (mode 0600: it holds a password).

    Refuses to replace an existing file unless ``force``; paths under the file's folder are
    written relative to it so the node folder can be moved as a whole.
    """
    path = Path(path).absolute()
    if path.exists() and not force:
        raise ConfigError(
            f"{path} already exists; pass --force to overwrite it", code="CONFIG_EXISTS"
        )
    text = render_config(settings, base_dir=path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


__all__ = [
    "CONFIG_ENV",
    "DEFAULT_LISTEN",
    "DEFAULT_TIMEZONE",
    "ApiSettings",
    "AuditSettings",
    "BrokerSettings",
    "DmsSystemSettings",
    "KeySettings",
    "LimitSettings",
    "Settings",
    "TrustSettings",
    "ValidationSettings",
    "broker_url_problem",
    "env_name",
    "load_settings",
    "render_config",
    "render_example",
    "timezone_named",
    "write_config",
]
