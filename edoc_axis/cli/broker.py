"""``edoc-axis broker``: the axis on RabbitMQ, as definitions JSON or applied to a dev broker.

Agencies come from the directory (or ``--agency``). With ``--login password`` each broker user
has a password (kept in a ``--passwords`` file; the dev bench); with ``--login certificate``
no password exists: the user is the name RabbitMQ reads from the agency's TLS certificate
(its first subjectAltName URI, ``urn:qcvn102:organid:<OrganId>``), and ``--certs`` checks
that each agency certificate maps to its agency's user. ``--queue-key`` makes each agency's
queue names end in a secret token (issue 11, hole 7); the bounds options size every queue and
cap every user's connections and channels (hole 6).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from edoc_axis.cli.base import reported_errors
from edoc_axis.directory import Directory
from edoc_axis.errors import ConfigError, ErrorCode
from edoc_axis.transport.provision import (
    USER_MAX_CHANNELS,
    USER_MAX_CONNECTIONS,
    BrokerAccount,
    UserLimits,
    check_queues,
    definitions,
    provision,
)
from edoc_axis.transport.topology import (
    DEAD_QUEUE_MAX_BYTES,
    DEAD_QUEUE_MAX_LENGTH,
    QUEUE_MAX_BYTES,
    QUEUE_MAX_LENGTH,
    Topology,
    queue_token,
    url_with_vhost,
    vhost_of,
)
from edoc_axis.trust import certificate as trust

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_ADMIN_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
LOGINS = ("password", "certificate")


def _parse_agency(value: str, login: str) -> BrokerAccount:
    organ_id, sep, rest = value.partition("=")
    if login == "certificate":  # the user is what the certificate names
        if not organ_id or sep:
            raise click.BadParameter(f"{value!r} is not an OrganId (no user or password with "
                                     "--login certificate)", param_hint="--agency")
        return BrokerAccount(organ_id, trust.organ_id_uri(organ_id))
    user, sep2, password = rest.partition(":")
    if not (sep and sep2 and organ_id and user and password):
        raise click.BadParameter(f"{value!r} is not ORGANID=USER:PASSWORD", param_hint="--agency")
    return BrokerAccount(organ_id, user, password)


def _read_passwords(path: Path) -> dict[str, str]:
    passwords: dict[str, str] = {}
    if not path.exists():
        return passwords
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition("=")
        if not sep or not user.strip() or not password:
            raise ConfigError(f"{path} line {number}: expected USER=PASSWORD",
                              code=ErrorCode.BROKER_PASSWORDS_SYNTAX, line=number)
        passwords[user.strip()] = password
    return passwords


def _append_private(path: Path, lines: list[str]) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    with os.fdopen(os.open(path, flags, 0o600), "a", encoding="utf-8") as out:
        out.writelines(lines)


def _directory_accounts(directory: Path, passwords_file: Path | None,
                        login: str) -> list[BrokerAccount]:
    agencies = Directory.load(directory).agencies
    if login == "certificate":
        wrong = [f"{a.organ_id}: broker_user {a.broker_user!r}, but its certificate logs in as "
                 f"{trust.organ_id_uri(a.organ_id)!r}" for a in agencies
                 if a.broker_user != trust.organ_id_uri(a.organ_id)]
        if wrong:
            raise ConfigError("with certificate login the directory's broker_user must be the "
                              "name the certificate carries:\n  " + "\n  ".join(wrong),
                              code=ErrorCode.BROKER_USER_NOT_CERTIFICATE)
        return [BrokerAccount(a.organ_id, a.broker_user) for a in agencies]
    if passwords_file is None:
        raise click.UsageError("--directory needs --passwords FILE (USER=PASSWORD lines)")
    known = _read_passwords(passwords_file)
    fresh: dict[str, str] = {}
    accounts = []
    for agency in agencies:
        password = known.get(agency.broker_user)
        if password is None:
            password = fresh[agency.broker_user] = secrets.token_urlsafe(24)
        accounts.append(BrokerAccount(agency.organ_id, agency.broker_user, password))
    if fresh:
        # New agencies get a generated password, kept in the file for their node configs.
        _append_private(passwords_file, [f"{user}={pw}\n" for user, pw in fresh.items()])
        click.echo(f"generated passwords for {len(fresh)} broker user(s) in {passwords_file}",
                   err=True)
    return accounts


def _queue_key(path: Path) -> bytes:
    """The administrator's queue-naming key (hex in ``path``; made, mode 0600, when missing)."""
    if not path.exists():
        _append_private(path, [secrets.token_hex(32) + "\n"])
        click.echo(f"created the queue-naming key {path}: keep it with the broker's "
                   "definitions, never give it to an agency", err=True)
    try:
        key = bytes.fromhex(path.read_text(encoding="utf-8").strip())
    except ValueError as exc:
        raise ConfigError(f"{path} does not hold a hex key",
                          code=ErrorCode.BROKER_QUEUE_KEY) from exc
    if len(key) < 16:
        raise ConfigError(f"{path}: the key must be at least 16 bytes",
                          code=ErrorCode.BROKER_QUEUE_KEY)
    return key


def _check_certificates(folder: Path, accounts: list[BrokerAccount]) -> list[str]:
    """Map each agency certificate in ``folder`` to the broker user it logs in as; raise
    naming every certificate that maps to no listed user, or to another agency's."""
    users = {a.user: a.organ_id for a in accounts}
    lines, problems = [], []
    for path, certs, problem in trust.certificate_files(folder):
        if problem is not None:
            problems.append(f"{path}: {problem}")
            continue
        for cert in certs[:1]:  # the holder's certificate; what follows is its chain
            organ_id, login = trust.organ_id_of(cert), trust.broker_login_of(cert)
            if organ_id is None and login is None:
                continue  # a CA or another kind of certificate
            if login is None or users.get(login) != organ_id:
                problems.append(f"{path}: issued to {organ_id or 'no single OrganId'}, logs in "
                                f"as {login or 'nobody (no SAN URI)'}, which is not "
                                f"{'its agency' if login in users else 'a listed broker user'}")
            else:
                lines.append(f"{path.relative_to(folder)} -> broker user {login}")
    if problems:
        raise ConfigError("certificates that would not log in as their agency:\n  "
                          + "\n  ".join(problems), code=ErrorCode.BROKER_CERT_MISMATCH)
    return lines


def _accounts(options: dict[str, Any]) -> list[BrokerAccount]:
    login: str = options["login"]
    accounts = [_parse_agency(value, login) for value in options["agencies"]]
    if options["directory"] is not None:
        accounts += _directory_accounts(options["directory"], options["passwords_file"], login)
    if not accounts:
        raise click.UsageError("name the agencies with --directory or --agency")
    if options["certs"] is not None:
        for line in _check_certificates(options["certs"], accounts):
            click.echo(line, err=True)
    if options["queue_key"] is not None:
        key = _queue_key(options["queue_key"])
        accounts = [BrokerAccount(a.organ_id, a.user, a.password, queue_token(key, a.organ_id))
                    for a in accounts]
    return accounts


def _layout(options: dict[str, Any]) -> tuple[Topology, UserLimits]:
    topology = Topology(delivery_limit=options["delivery_limit"],
                        max_length=options["max_length"], max_bytes=options["max_bytes"],
                        dead_max_length=options["dead_max_length"],
                        dead_max_bytes=options["dead_max_bytes"])
    return topology, UserLimits(options["max_connections"], options["max_channels"])


def _agency_options(command: F) -> F:
    count, size = click.IntRange(1), click.IntRange(1024)
    for option in reversed([
        click.option("--directory", type=click.Path(dir_okay=False, path_type=Path),
                     help="Agency directory file (TOML); every agency in it gets a broker user."),
        click.option("--login", type=click.Choice(LOGINS), default="password",
                     show_default=True,
                     help="How agencies log in: a password (dev bench), or their TLS "
                          "certificate (EXTERNAL: no password; the user is the certificate's "
                          "first subjectAltName URI, urn:qcvn102:organid:<OrganId>)."),
        click.option("--passwords", "passwords_file",
                     type=click.Path(dir_okay=False, path_type=Path),
                     help="--login password with --directory: file of USER=PASSWORD lines; "
                          "users missing from it get a generated password appended (mode 0600)."),
        click.option("--agency", "agencies", multiple=True,
                     metavar="ORGANID=USER:PASSWORD | ORGANID",
                     help="An agency and its broker credentials (repeatable); with --login "
                          "certificate only its OrganId (the user is its certificate's)."),
        click.option("--certs", type=click.Path(file_okay=False, exists=True, path_type=Path),
                     help="--login certificate: folder of agency certificates (PEM) to map to "
                          "their broker users; a certificate that would log in as no listed "
                          "agency, or as another, is an error."),
        click.option("--queue-key", type=click.Path(dir_okay=False, path_type=Path),
                     help="Secret key (hex file; created when missing) making each agency's "
                          "queue names end in a token only it is told: other agencies cannot "
                          "read its queue depth. Give each agency its token (`broker "
                          "queue-token`) for broker.queue_token."),
        click.option("--delivery-limit", type=count, default=5, show_default=True,
                     help="Deliveries of one message before it is dead-lettered."),
        click.option("--max-length", type=count, default=QUEUE_MAX_LENGTH, show_default=True,
                     help="Messages an agency's queue holds; publishers past it get a nack "
                          "and retry later."),
        click.option("--max-bytes", type=size, default=QUEUE_MAX_BYTES, show_default=True,
                     help="Bytes an agency's queue holds (same overflow)."),
        click.option("--dead-max-length", type=count, default=DEAD_QUEUE_MAX_LENGTH,
                     show_default=True,
                     help="Dead letters an agency's dead-letter queue keeps (the oldest go)."),
        click.option("--dead-max-bytes", type=size, default=DEAD_QUEUE_MAX_BYTES,
                     show_default=True, help="Bytes of dead letters kept (the oldest go)."),
        click.option("--max-connections", type=count, default=USER_MAX_CONNECTIONS,
                     show_default=True, help="Connections one agency user may hold open."),
        click.option("--max-channels", type=count, default=USER_MAX_CHANNELS,
                     show_default=True, help="Channels one agency user may hold open."),
    ]):
        command = option(command)
    return command


@click.group("broker")
def broker_group() -> None:
    """The axis on RabbitMQ: exchange edoc.axis, per agency a bounded quorum queue
    edoc.in.<OrganId>, a bounded dead-letter queue edoc.dead.<OrganId> (via edoc.dlx) and a
    user that may only publish to the axis and read its own queues."""


@broker_group.command("definitions")
@_agency_options
@click.option("--vhost", default="/", show_default=True, help="Virtual host of the axis.")
def definitions_command(vhost: str, **options: Any) -> None:
    """Print RabbitMQ definitions JSON for the axis (for `rabbitmqctl import_definitions FILE`).

    Passwords appear only as salted SHA-256 hashes; certificate-login users have none.
    """
    with reported_errors():
        accounts = _accounts(options)
        topology, limits = _layout(options)
        document = definitions(accounts, vhost, topology, limits)
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@broker_group.command("provision")
@_agency_options
@click.option("--url", default=DEFAULT_ADMIN_URL, show_default=True,
              envvar="EDOC_AXIS_BROKER_ADMIN_URL",
              help="Admin URL of the LOCAL dev broker (rabbitmqctl must work here).")
@click.option("--vhost", default=None, help="Virtual host (default: the URL's).")
@click.option("--node", default=None,
              help="RabbitMQ node name for rabbitmqctl, when not the default one.")
def provision_command(url: str, vhost: str | None, node: str | None, **options: Any) -> None:
    """Create the axis on the local dev broker (idempotent), then check every queue exists.

    Needs rabbitmqctl (run as root or the rabbitmq user). For a production broker, import the
    output of `edoc-axis broker definitions` there instead.
    """
    with reported_errors():
        accounts = _accounts(options)
        topology, limits = _layout(options)
        target = vhost if vhost is not None else vhost_of(url)
        provision(url, accounts, topology, target, limits=limits, node=node)
        admin = url_with_vhost(url, target)
        counts = {q: n for a in accounts
                  for q, n in check_queues(admin, a.layout(topology), [a.organ_id]).items()}
    for account in accounts:
        layout = account.layout(topology)
        queue, dead = layout.queue_for(account.organ_id), layout.dead_queue_for(account.organ_id)
        click.echo(f"{account.organ_id}\tuser {account.user}\t{queue} ({counts[queue]} ready)"
                   f"\t{dead} ({counts[dead]} dead)")


@broker_group.command("queue-token")
@click.option("--queue-key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              required=True, help="The queue-naming key given to `definitions`/`provision`.")
@click.argument("organ_ids", nargs=-1, required=True)
def queue_token_command(queue_key: Path, organ_ids: tuple[str, ...]) -> None:
    """Print each agency's queue token (for its node's broker.queue_token)."""
    with reported_errors():
        key = _queue_key(queue_key)
    for organ_id in organ_ids:
        click.echo(f"{organ_id}\t{queue_token(key, organ_id)}")
