"""Opening the broker: pika connection parameters for an :class:`Endpoint`, and short blocking
channels.

An endpoint is a URL plus, for ``amqps://``, what TLS needs: the CA certificates the broker's
certificate must chain to (the axis trust anchors; never the system store), and the agency's
client certificate. With ``external`` the node logs in as that certificate (SASL EXTERNAL,
RabbitMQ's ``rabbitmq_auth_mechanism_ssl``): the broker user *is* the certificate's identity and
no password exists. A bare URL string is an endpoint without TLS material (the dev bench).

A :class:`~edoc_axis.transport.link.Link` keeps one long-lived connection; admin work
(declaring, checking queues, dead-letter peeks and replays) uses :func:`blocking_channel`, which
opens a connection for one job and turns pika's errors into the node's (``ConfigError`` for
refused credentials or a broker certificate that does not verify, ``NotFound`` for a missing
queue, ``BrokerUnavailable`` otherwise).

:func:`connect_error` is the one mapping of a failure to open a connection (pika's, the
socket's, TLS's; a host name that does not resolve reaches us as a bare ``socket.gaierror``) to
the node's error, naming host:port, user and vhost and what to fix in ``broker.url``: the
blocking connections and the Link's supervisor both use it.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.credentials
import pika.exceptions

from edoc_axis.errors import BrokerUnavailable, ConfigError, EdocAxisError, ErrorCode, NotFound

URL_HINT = "check broker.url (host and port) and that RabbitMQ runs there"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the broker is and how to prove who we are to it (see the module docstring)."""

    url: str
    ca_files: tuple[Path, ...] = ()  # amqps: the broker's certificate must chain to one of these
    cert_file: Path | None = None  # amqps: the client certificate (PEM), sent when asked
    key_file: Path | None = None  # its private key (PEM)
    external: bool = False  # log in as the client certificate (EXTERNAL), not user:password

    def __repr__(self) -> str:  # the URL may hold a password
        parts = urlsplit(self.url)
        url = self.url
        if parts.password is not None:
            url = parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}"
                                 ).geturl()
        return f"Endpoint(url={url!r}, external={self.external})"

    @property
    def tls(self) -> bool:
        """True for ``amqps://``."""
        return urlsplit(self.url).scheme == "amqps"


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    """The client TLS context of ``endpoint``: TLS 1.2+, the broker's certificate verified
    against ``ca_files`` only (and its host name), the client certificate loaded when given."""
    if not endpoint.ca_files:
        raise ConfigError("amqps:// needs the CA certificates that issued the broker's "
                          "certificate (broker.ca_files, or the node's trust anchors)",
                          code=ErrorCode.BROKER_TLS_CONFIG)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        for ca_file in endpoint.ca_files:
            context.load_verify_locations(cafile=str(ca_file))
        if endpoint.cert_file is not None:
            context.load_cert_chain(str(endpoint.cert_file),
                                    str(endpoint.key_file) if endpoint.key_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the broker TLS files: {exc}",
                          code=ErrorCode.BROKER_TLS_CONFIG) from exc
    return context


def parameters(target: str | Endpoint, **settings: Any) -> Any:
    """pika connection parameters of ``target`` with ``settings`` set on them (a bad URL or
    unusable TLS files: ConfigError)."""
    endpoint = target if isinstance(target, Endpoint) else Endpoint(target)
    url = endpoint.url
    if endpoint.external:  # the URL's user only names the certificate's; pika wants no user
        parts = urlsplit(url)
        url = parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()
    try:
        params = pika.URLParameters(url)
    except Exception as exc:  # pika raises assorted errors for a bad URL
        raise ConfigError(f"invalid broker URL: {exc}", code=ErrorCode.BROKER_URL_INVALID) from exc
    if endpoint.external and not endpoint.tls:
        raise ConfigError("certificate login (EXTERNAL) needs an amqps:// URL",
                          code=ErrorCode.BROKER_TLS_CONFIG)
    if endpoint.tls and isinstance(target, Endpoint):
        params.ssl_options = pika.SSLOptions(tls_context(endpoint), params.host)
    if endpoint.external:
        if endpoint.cert_file is None:
            raise ConfigError("certificate login (EXTERNAL) needs the client certificate",
                              code=ErrorCode.BROKER_TLS_CONFIG)
        params.credentials = pika.credentials.ExternalCredentials()
    for name, value in settings.items():
        setattr(params, name, value)
    return params


def tls_failure(exc: BaseException) -> ConfigError | None:
    """The node's error for a connection failure that TLS caused, else None: the broker's
    certificate does not verify (``BROKER_TLS_UNTRUSTED``), or the broker refused ours
    (``BROKER_TLS_REFUSED``: not issued by a CA it trusts, expired, or none sent). pika reports
    both only as text inside its connection errors. Under TLS 1.3 the broker judges the client
    certificate after the client's handshake is done, so its refusal may reach the client as
    the alert or, in a race, as the connection simply ending (an SSL EOF) as it opens."""
    text = repr(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return ConfigError(
            f"the broker's TLS certificate does not verify against the configured CA "
            f"certificates (broker.ca_files, else the trust anchors): {exc}",
            code=ErrorCode.BROKER_TLS_UNTRUSTED)
    if any(mark in text for mark in ("TLSV1_ALERT", "SSLV3_ALERT", "CERTIFICATE_REQUIRED",
                                     "SSLEOFError", "EOF occurred in violation of protocol")):
        return ConfigError(
            f"the broker refused this node's TLS client certificate (issued by a CA it does "
            f"not trust, expired, or missing): {exc}", code=ErrorCode.BROKER_TLS_REFUSED)
    return None


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception pika wrapped (workflow and connector errors nest the socket's)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "exceptions", None)  # AMQPConnectionWorkflowFailed: every attempt
        candidate = (inner[-1] if inner else getattr(exc, "exception", None)
                     or next((a for a in exc.args if isinstance(a, BaseException)), None))
        if not isinstance(candidate, BaseException):
            break
        exc = candidate
    return exc


_SOCKET_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (socket.gaierror, "the host name does not resolve"),
    (ConnectionRefusedError, "the connection was refused (nothing listens on that port)"),
    (TimeoutError, "no answer (timed out)"),
)


def failure_reason(exc: BaseException) -> str:
    """Why a connection could not be opened, or was lost, in words (never a repr chain)."""
    cause = _root_cause(exc)
    for kind, words in _SOCKET_REASONS:
        if isinstance(cause, kind):
            detail = getattr(cause, "strerror", None)
            return f"{words} ({detail})" if kind is socket.gaierror and detail else words
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    text = str(cause)
    said = re.search(r"'([A-Z_]+ - [^']*)'", text)  # the broker's own words: 'NOT_ALLOWED - ...'
    if said:
        return said.group(1)
    return text.strip(" ,()\"'") or type(cause).__name__


def connect_error(exc: BaseException, params: Any) -> EdocAxisError:
    """The node's error for a failure to open a connection with pika ``params``: refused login
    (``BROKER_AUTH_FAILED``) or vhost (``BROKER_VHOST_REFUSED``) and TLS failures are
    ``ConfigError``s; anything else (no such host, refused, timed out, dropped) is
    ``BROKER_UNAVAILABLE``. Each names host:port, and the user and vhost where they matter."""
    where = f"{params.host}:{params.port}"
    user = getattr(params.credentials, "username", None)
    who = f"user {user!r}" if user else "this node's certificate"
    vhost = params.virtual_host
    if isinstance(exc, pika.exceptions.ProbableAuthenticationError
                  | pika.exceptions.AuthenticationError):
        return ConfigError(
            f"the broker at {where} refused the login of {who} (vhost {vhost!r}): check the "
            "user and password in broker.url (or the certificate), and that the broker was "
            "provisioned with them", code=ErrorCode.BROKER_AUTH_FAILED)
    if isinstance(exc, pika.exceptions.ProbableAccessDeniedError):
        return ConfigError(
            f"the broker at {where} refused {who} access to vhost {vhost!r} "
            f"({failure_reason(exc)}): check the vhost in broker.url, and that the broker was "
            "provisioned there",
            code=ErrorCode.BROKER_VHOST_REFUSED)
    failure = tls_failure(exc)
    if failure is not None:
        return ConfigError(f"TLS with the broker at {where}: {failure.message}", code=failure.code)
    return BrokerUnavailable(
        f"cannot reach the broker at {where}: {failure_reason(exc)}; {URL_HINT}")


@contextmanager
def blocking_channel(target: str | Endpoint) -> Iterator[Any]:
    """A channel on a fresh blocking connection, closed afterwards (errors mapped, see above)."""
    params = parameters(target, connection_attempts=1, socket_timeout=10, heartbeat=30)
    try:
        connection = pika.BlockingConnection(params)
    except (pika.exceptions.AMQPError, OSError) as exc:  # ssl.SSLError and gaierror are OSErrors
        raise connect_error(exc, params) from exc
    try:
        yield connection.channel()
    except pika.exceptions.ChannelClosedByBroker as exc:
        code = (ErrorCode.BROKER_ACCESS_REFUSED if exc.reply_code == 403
                else ErrorCode.BROKER_CHANNEL_CLOSED)
        if exc.reply_code == 404:
            raise NotFound(f"broker: {exc.reply_text}", code=ErrorCode.BROKER_NOT_FOUND) from exc
        raise BrokerUnavailable(f"broker refused: {exc.reply_text}", code=code) from exc
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailable(f"broker operation failed at {params.host}:{params.port}: "
                                f"{failure_reason(exc)}; retry") from exc
    finally:
        if connection.is_open:
            connection.close()
