"""``edoc-axis broker``: the axis on RabbitMQ, as definitions JSON or applied to a dev broker."""

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
from edoc_axis.errors import ConfigError
from edoc_axis.transport.provision import BrokerAccount, check_queues, definitions, provision
from edoc_axis.transport.topology import Topology, url_with_vhost, vhost_of

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_ADMIN_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _parse_agency(value: str) -> BrokerAccount:
    organ_id, sep, rest = value.partition("=")
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
                              code="BROKER_PASSWORDS_SYNTAX", line=number)
        passwords[user.strip()] = password
    return passwords


def _accounts(directory: Path | None, passwords_file: Path | None,
              agencies: tuple[str, ...]) -> list[BrokerAccount]:
    accounts = [_parse_agency(value) for value in agencies]
    if directory is not None:
        if passwords_file is None:
            raise click.UsageError("--directory needs --passwords FILE (USER=PASSWORD lines)")
        known = _read_passwords(passwords_file)
        fresh: dict[str, str] = {}
        for agency in Directory.load(directory).agencies:
            password = known.get(agency.broker_user)
            if password is None:
                password = fresh[agency.broker_user] = secrets.token_urlsafe(24)
            accounts.append(BrokerAccount(agency.organ_id, agency.broker_user, password))
        if fresh:
            # New agencies get a generated password, kept in the file for their node configs.
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
            with os.fdopen(os.open(passwords_file, flags, 0o600), "a", encoding="utf-8") as out:
                out.writelines(f"{user}={password}\n" for user, password in fresh.items())
            click.echo(f"generated passwords for {len(fresh)} broker user(s) in {passwords_file}",
                       err=True)
    if not accounts:
        raise click.UsageError("name the agencies with --directory or --agency")
    return accounts


def _agency_options(command: F) -> F:
    for option in reversed([
        click.option("--directory", type=click.Path(dir_okay=False, path_type=Path),
                     help="Agency directory file (TOML); every agency in it gets a broker user."),
        click.option("--passwords", "passwords_file",
                     type=click.Path(dir_okay=False, path_type=Path),
                     help="File of USER=PASSWORD lines for --directory; users missing from it "
                          "get a generated password appended (file mode 0600)."),
        click.option("--agency", "agencies", multiple=True, metavar="ORGANID=USER:PASSWORD",
                     help="An agency and its broker credentials (repeatable)."),
        click.option("--delivery-limit", type=click.IntRange(1), default=5, show_default=True,
                     help="Deliveries of one message before it is dead-lettered."),
    ]):
        command = option(command)
    return command


@click.group("broker")
def broker_group() -> None:
    """The axis on RabbitMQ: exchange edoc.axis, per agency a quorum queue edoc.in.<OrganId>,
    a dead-letter queue edoc.dead.<OrganId> (via edoc.dlx) and a user that may only publish to
    the axis and read its own queues."""


@broker_group.command("definitions")
@_agency_options
@click.option("--vhost", default="/", show_default=True, help="Virtual host of the axis.")
def definitions_command(*, directory: Path | None, passwords_file: Path | None,
                        agencies: tuple[str, ...], delivery_limit: int, vhost: str) -> None:
    """Print RabbitMQ definitions JSON for the axis (for `rabbitmqctl import_definitions FILE`).

    Passwords appear only as salted SHA-256 hashes.
    """
    with reported_errors():
        accounts = _accounts(directory, passwords_file, agencies)
        document = definitions(accounts, vhost, Topology(delivery_limit=delivery_limit))
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@broker_group.command("provision")
@_agency_options
@click.option("--url", default=DEFAULT_ADMIN_URL, show_default=True,
              envvar="EDOC_AXIS_BROKER_ADMIN_URL",
              help="Admin URL of the LOCAL dev broker (rabbitmqctl must work here).")
@click.option("--vhost", default=None, help="Virtual host (default: the URL's).")
def provision_command(*, directory: Path | None, passwords_file: Path | None,
                      agencies: tuple[str, ...], delivery_limit: int, url: str,
                      vhost: str | None) -> None:
    """Create the axis on the local dev broker (idempotent), then check every queue exists.

    Needs rabbitmqctl (run as root or the rabbitmq user). For a production broker, import the
    output of `edoc-axis broker definitions` there instead.
    """
    with reported_errors():
        accounts = _accounts(directory, passwords_file, agencies)
        topology = Topology(delivery_limit=delivery_limit)
        target = vhost if vhost is not None else vhost_of(url)
        provision(url, accounts, topology, target)
        counts = check_queues(url_with_vhost(url, target), topology,
                              [a.organ_id for a in accounts])
    for account in accounts:
        queue = topology.queue_for(account.organ_id)
        dead = topology.dead_queue_for(account.organ_id)
        click.echo(f"{account.organ_id}\tuser {account.user}\t{queue} ({counts[queue]} ready)"
                   f"\t{dead} ({counts[dead]} dead)")
