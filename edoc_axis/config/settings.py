"""The node's settings as values: ``Settings`` and one frozen type per section of the file.

A section whose concept lives lower down uses that layer's type rather than a mirror of it:
``[signature]`` is ``trust.policy.SignaturePolicy`` and ``[limits]`` is ``edxml.limits.XmlLimits``
(its ``max_bytes`` is the file's ``max_package_bytes``: the node's one package size limit).
Built by ``config.load`` (or in code, by tests and ``init``), then passed explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from urllib.parse import unquote, urlsplit

from edoc_axis.config.zone import DEFAULT_TIMEZONE, timezone_named
from edoc_axis.edxml.limits import XmlLimits
from edoc_axis.edxml.profile import STRICT
from edoc_axis.errors import ConfigError, ErrorCode
from edoc_axis.trust.policy import SignaturePolicy

STORE_FILENAME = "node.sqlite3"
DEFAULT_LISTEN = "127.0.0.1:8470"


BROKER_LOGINS = ("password", "certificate")


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """How this node reaches RabbitMQ; the URL's user is the agency's broker user.

    ``login = "certificate"``: over ``amqps://`` the node logs in as its agency certificate
    ([keys] cert and key; EXTERNAL, no password) and the URL's user (no password) names the
    user the certificate logs in as. ``ca_files`` verify the broker's TLS certificate (empty:
    the [trust] anchors). ``queue_token`` ends this agency's queue names (from the broker's
    administrator; empty: the guessable names of a dev bench).
    """

    url: str
    heartbeat: int = 30
    blocked_connection_timeout: int = 60
    prefetch: int = 64
    publish_window: int = 256
    delivery_limit: int = 5
    login: str = "password"
    ca_files: tuple[Path, ...] = ()
    queue_token: str = field(default="", repr=False)
    chunk_bytes: int = 4 * 1024 * 1024
    transfer_timeout: int = 3600

    def __repr__(self) -> str:  # the URL holds a password: never let it reach a log
        return (
            f"BrokerSettings(url={self.redacted_url!r}, heartbeat={self.heartbeat}, "
            f"blocked_connection_timeout={self.blocked_connection_timeout}, "
            f"prefetch={self.prefetch}, publish_window={self.publish_window}, "
            f"delivery_limit={self.delivery_limit}, login={self.login!r})"
        )

    @property
    def certificate_login(self) -> bool:
        """True when the node logs in as its certificate (EXTERNAL) rather than a password."""
        return self.login == "certificate"

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
class ValidationSettings:
    """Which reception profile (``edoc_axis.edxml.profile``) judges what this node is asked to send.

    Received packages are always judged by ``received``; submissions (``send``, the DMS
    gateway) by ``strict`` unless an agency whose DMS writes harmless deviations says otherwise.
    """

    submit_profile: str = STRICT


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The DMS gateway (``edoc_axis.gateway``): where it listens, how it reads timestamps, and
    its TLS certificate when it serves HTTPS."""

    listen: str = DEFAULT_LISTEN
    enabled: bool = False  # also served without this when [[dms]] systems are configured
    max_timestamp_age: int = 0  # seconds; 0 = no limit (SDK objects that keep one timestamp)
    timezone: str = DEFAULT_TIMEZONE  # the zone of the SDK's zone-less timestamp
    tls_cert: Path | None = None  # PEM certificate (chain) of the gateway: serve HTTPS
    tls_key: Path | None = None  # its private key (PEM)
    tls_client_ca: Path | None = None  # require DMS client certificates issued by this CA

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
            raise ConfigError(f"api.timezone: {exc}", code=ErrorCode.CONFIG_TIMEZONE,
                              element="api.timezone") from exc


@dataclass(frozen=True, slots=True)
class DmsSystemSettings:
    """One ``[[dms]]`` table: a DMS allowed to call the gateway, and the agency it speaks for."""

    systemid: str
    secret: str = field(repr=False)
    organ_id: str


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
    limits: XmlLimits = field(default_factory=XmlLimits)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    dms: tuple[DmsSystemSettings, ...] = ()
    audit: AuditSettings = field(default_factory=AuditSettings)
    config_path: Path | None = None  # the file these settings came from, if any

    @property
    def store_path(self) -> Path:
        """The node's SQLite database."""
        return self.data_dir / STORE_FILENAME
