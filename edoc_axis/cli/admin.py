"""Setting up a node: ``edoc-axis init`` and ``directory list|show|check``.

``init`` writes a working config for a new agency; with ``--dev`` it also makes the agency's
signing key and certificate from a dev CA (shared between the agencies of one test bench) and
lists the agency, with its certificate fingerprint, in the agency directory (``devbench``).
``directory check --certs`` matches the directory's fingerprints against certificate files.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import click
from cryptography import x509

from edoc_axis.cli.base import config_option, echo_json, reported_errors
from edoc_axis.cli.display import echo_table
from edoc_axis.config.dms_system import add_dms_system
from edoc_axis.config.load import broker_url_problem, load_settings
from edoc_axis.config.render import write_config
from edoc_axis.config.settings import (
    BROKER_LOGINS,
    ApiSettings,
    BrokerSettings,
    KeySettings,
    Settings,
    TrustSettings,
)
from edoc_axis.directory import CertificateFacts, Directory
from edoc_axis.edxml.identifier import is_valid_organ_id
from edoc_axis.errors import EXIT_CONFIG, ConfigError, ErrorCode
from edoc_axis.ops.devbench import (
    AGENCY_CERT,
    AGENCY_KEY,
    CA_CERT,
    CA_CRL,
    DEV_PASSWORDS,
    INTERMEDIATE_CERT,
    dev_broker_user,
    dev_identity,
    dev_password,
    record_password,
)
from edoc_axis.ops.pki import KEY_TYPES
from edoc_axis.transport.topology import url_with_vhost
from edoc_axis.trust import certificate as trust

# --- init ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitRequest:
    """What ``edoc-axis init`` was asked to do."""

    organ_id: str
    data_dir: Path
    output: Path | None = None
    broker_url: str | None = None
    broker_user: str | None = None
    vhost: str | None = None
    listen: str | None = None
    directory: Path | None = None
    name: str | None = None
    code: str | None = None
    parent: str | None = None
    dev: bool = False
    ca_dir: Path | None = None
    key_type: str = "rsa2048"
    broker_passwords: Path | None = None
    broker_login: str = "password"
    broker_ca: tuple[Path, ...] = ()
    broker_queue_token: str = ""
    force: bool = False
    dms_systemid: str | None = None
    dms_secret_file: Path | None = None


@dataclass(slots=True)
class InitResult:
    """What ``init`` wrote, for the summary printed to the administrator."""

    settings: Settings
    notes: list[str] = field(default_factory=list)


def init_node(request: InitRequest) -> InitResult:
    """Write a config for a new agency (and dev keys plus a directory entry with ``dev``)."""
    organ_id = request.organ_id.strip()
    if not is_valid_organ_id(organ_id):
        raise ConfigError(
            f"--organ-id '{organ_id}' is not an agency code (expected like 000.00.00.G22)",
            code=ErrorCode.CONFIG_ORGAN_ID, element="organ_id")
    data_dir = request.data_dir.expanduser().absolute()
    output = (request.output or data_dir / "node.toml").expanduser().absolute()
    if output.exists() and not request.force:
        raise ConfigError(f"{output} already exists; pass --force to overwrite it",
                          code=ErrorCode.CONFIG_EXISTS)
    notes: list[str] = []
    directory_path = (request.directory or data_dir / "directory.toml").expanduser().absolute()
    url = _broker_url(request, organ_id, directory_path, notes)
    if request.broker_login == "certificate":
        url = _certificate_url(url, organ_id, given=request.broker_url is not None)
        notes.append(f"broker user {trust.organ_id_uri(organ_id)}: the agency certificate "
                     "logs in as it (EXTERNAL, no password); the broker administrator creates "
                     "it with `edoc-axis broker definitions --login certificate`")
    ca_dir = (request.ca_dir or data_dir / "pki" / "ca").expanduser().absolute()
    if request.dev:
        anchor, crl = ca_dir / CA_CERT, ca_dir / CA_CRL
    else:
        anchor, crl = data_dir / "trust" / "root-ca.pem", data_dir / "trust" / "root-ca.crl"
    chain = (ca_dir / INTERMEDIATE_CERT,) if (ca_dir / INTERMEDIATE_CERT).exists() else ()
    settings = Settings(
        organ_id=organ_id,
        data_dir=data_dir,
        broker=BrokerSettings(url=url, login=request.broker_login,
                              ca_files=tuple(p.expanduser().absolute() for p in request.broker_ca),
                              queue_token=request.broker_queue_token.strip()),
        keys=KeySettings(key=data_dir / "keys" / AGENCY_KEY, cert=data_dir / "keys" / AGENCY_CERT,
                         chain=chain if request.dev else ()),
        trust=TrustSettings(anchors=(anchor,), crls=(crl,)),
        directory_path=directory_path,
        api=ApiSettings(listen=request.listen) if request.listen else ApiSettings(),
    )
    settings.api.address()  # a --listen that is not HOST:PORT is refused before writing
    data_dir.mkdir(parents=True, exist_ok=True)
    if request.dev:
        notes.extend(dev_identity(
            settings, ca_dir, ca_given=request.ca_dir is not None, name=request.name,
            code=request.code, parent=request.parent, key_type=request.key_type,
            force=request.force))
    else:
        notes.append(f"put the agency key and certificate at {settings.keys.key} and "
                     f"{settings.keys.cert}, the CA certificate and CRL at {anchor} and {crl}")
    write_config(output, settings, force=request.force)
    if request.dms_systemid:
        notes.append(_add_dms(output, request.dms_systemid, request.dms_secret_file))
    # What we wrote must load: a config that init itself cannot read is a bug, not a user error.
    return InitResult(load_settings(output, env={}), notes)


def _add_dms(config: Path, systemid: str, secret_file: Path | None) -> str:
    """List the DMS system in the config just written; its secret file is made when missing."""
    secret = (secret_file or config.parent / f"dms-{systemid.strip()}.secret").expanduser()
    added = add_dms_system(config, systemid, secret, generate_secret=not secret.exists())
    made = "generated" if added.secret_generated else "existing"
    return (f"DMS system {added.systemid}: secret in {added.secret_file} ({made}); its SDK "
            f"endpoint is http://{added.listen}/ (`edoc-axis dms add` lists more systems)")


def _broker_url(request: InitRequest, organ_id: str, directory_path: Path,
                notes: list[str]) -> str:
    """The broker URL ``init`` writes. ``--dev`` without ``--broker-url`` invents a local one
    whose user carries the bench's prefix (RabbitMQ users are global to a broker: two benches
    naming the same user would overwrite each other's password). A password the dev bench is
    given (``--broker-url``) is recorded in its passwords file, the one `broker provision
    --passwords` gives the broker, so that provisioning never invents another."""
    passwords = (request.broker_passwords
                 or directory_path.parent / DEV_PASSWORDS).expanduser().absolute()
    url = request.broker_url
    if url is None:
        if not request.dev:
            raise ConfigError("--broker-url is required (only --dev invents one)",
                              code=ErrorCode.CONFIG_MISSING, element="broker.url")
        user = request.broker_user or dev_broker_user(directory_path.parent, organ_id)
        password = dev_password(passwords, user)
        url = (f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:5672/"
               f"{quote(request.vhost or '/', safe='')}")
    elif request.broker_user:
        raise click.UsageError("--broker-user names the user of an invented URL (--dev): "
                               "with --broker-url, write the user in it")
    elif request.vhost is not None:
        url = url_with_vhost(url, request.vhost)
    problem = broker_url_problem(url)
    if problem:
        raise ConfigError(f"--broker-url {problem}", code=ErrorCode.CONFIG_BROKER_URL,
                          element="broker.url")
    parts = urlsplit(url)
    if request.broker_login == "password" and (request.dev or request.broker_passwords):
        user = unquote(parts.username or "guest")
        if parts.password is not None:
            record_password(passwords, user, unquote(parts.password), force=request.force)
        notes.append(f"broker user {user}, password in {passwords}; create it with `edoc-axis "
                     f"broker provision --directory {directory_path} --passwords {passwords}"
                     + (f" --vhost {unquote(parts.path[1:])}`" if parts.path not in ("", "/")
                        else "`"))
    return url


def _certificate_url(url: str, organ_id: str, *, given: bool) -> str:
    """``url`` naming the user the agency certificate logs in as (certificate login)."""
    parts = urlsplit(url)
    user = trust.organ_id_uri(organ_id)
    if not given or parts.scheme != "amqps" or parts.password is not None:
        raise ConfigError("--broker-login certificate needs --broker-url amqps://HOST:PORT/VHOST "
                          "(no password: the certificate is the login)",
                          code=ErrorCode.CONFIG_BROKER_LOGIN, element="broker.url")
    if parts.username and unquote(parts.username) != user:
        raise ConfigError(f"the agency certificate logs in as {user}, not "
                          f"{unquote(parts.username)}", code=ErrorCode.CONFIG_BROKER_LOGIN,
                          element="broker.url")
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{quote(user, safe='')}@{host}").geturl()


@click.command("init")
@click.option("--organ-id", required=True, help="The agency's OrganId, e.g. 000.00.00.G22.")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the node's state (store, keys); created if missing.")
@click.option("--broker-url", help="amqp(s)://USER:PASSWORD@HOST:PORT/VHOST of this agency's "
              "broker user. Required unless --dev (then a local user named after the bench and "
              "the OrganId). With --dev its password is recorded in the bench's passwords file.")
@click.option("--broker-user", help="--dev without --broker-url: the broker user to invent "
              "(default: dev-<bench>.<OrganId>, a prefix of this bench's own, since RabbitMQ "
              "users are shared by every bench on one broker).")
@click.option("--vhost", help="The broker's virtual host (default: the URL's, or / with --dev); "
              "give `broker provision` the same --vhost.")
@click.option("--listen", help="HOST:PORT the DMS gateway listens on (api.listen; default "
              "127.0.0.1:8470). Two nodes on one machine need two ports.")
@click.option("--directory", "directory", type=click.Path(dir_okay=False, path_type=Path),
              help="Agency directory file (default: DATA_DIR/directory.toml).")
@click.option("--name", help="Agency name (certificate and directory entry; --dev).")
@click.option("--code", help="Newer national code of the agency (directory entry; --dev).")
@click.option("--parent", help="OrganId of the parent agency (directory entry; --dev).")
@click.option("--dev", is_flag=True, help="Also make dev keys from a dev CA and list the agency "
              "in the directory. Not for production.")
@click.option("--ca", "ca_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Dev CA folder shared by several agencies: one made by `pki init-ca`, or a "
              "new one created here when missing (default: DATA_DIR/pki/ca).")
@click.option("--key-type", type=click.Choice(KEY_TYPES), default="rsa2048",
              show_default=True, help="Key type of the dev signing key.")
@click.option("--broker-login", type=click.Choice(BROKER_LOGINS), default="password",
              show_default=True,
              help="certificate: log in to the broker (amqps) as the agency certificate, no "
              "password; --broker-url then names no user (it is the certificate's).")
@click.option("--broker-ca", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CA certificate(s) the broker's TLS certificate must chain to (default: the "
              "trust anchors).")
@click.option("--broker-queue-token", default="",
              help="This agency's queue token, from the broker administrator.")
@click.option("--broker-passwords", type=click.Path(dir_okay=False, path_type=Path),
              help="--dev: USER=PASSWORD file the dev broker password is taken from or added "
              f"to (default: {DEV_PASSWORDS} next to the directory file).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the config (default: DATA_DIR/node.toml).")
@click.option("--force", is_flag=True, help="Overwrite an existing config (and dev key).")
@click.option("--dms-systemid", help="Also let this DMS system call the node's gateway: a "
              "[[dms]] table, as `edoc-axis dms add` writes it.")
@click.option("--dms-secret-file", type=click.Path(dir_okay=False, path_type=Path),
              help="The DMS system's secret file, made (0600, random) when missing (default: "
              "dms-SYSTEMID.secret next to the config).")
def init_command(**options: Any) -> None:
    """Write a working node config for a new agency.

    Example for a test bench of two agencies sharing one dev CA, directory and broker (their
    broker users are dev-<bench>.<OrganId>, their passwords in nodes/broker-passwords):

    \b
      edoc-axis init --dev --organ-id 000.00.00.G22 --data-dir nodes/g22 \\
          --ca nodes/ca --directory nodes/directory.toml --vhost bench
      edoc-axis init --dev --organ-id 000.00.00.H41 --data-dir nodes/h41 \\
          --ca nodes/ca --directory nodes/directory.toml --vhost bench --listen 127.0.0.1:8471
      edoc-axis broker provision --directory nodes/directory.toml \\
          --passwords nodes/broker-passwords --vhost bench
      edoc-axis doctor --config nodes/g22/node.toml
    """
    with reported_errors():
        result = init_node(InitRequest(**options))
    settings = result.settings
    click.echo(f"wrote {settings.config_path} for {settings.organ_id}")
    for note in result.notes:
        click.echo(f"  {note}")
    click.echo(f"next: edoc-axis doctor --config {settings.config_path}")


# --- directory -----------------------------------------------------------------------------------


def _load_directory(config_path: Path | None, file: Path | None) -> Directory:
    if file is not None:
        return Directory.load(file)
    return Directory.load(load_settings(config_path).directory_path)


directory_file_option = click.option(
    "-f", "--file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Directory file to read (default: the one the node config names).")


@click.group("directory")
def directory_group() -> None:
    """List, show and check the agency directory (agencies, broker users, certificates)."""


@directory_group.command("list")
@config_option
@directory_file_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def directory_list(config_path: Path | None, file: Path | None, as_json: bool) -> None:
    """List every agency: OrganId, code, broker user, fingerprints, parent and name."""
    with reported_errors():
        directory = _load_directory(config_path, file)
    if as_json:
        echo_json([a.to_dict() for a in directory])
        return
    echo_table(("ORGAN_ID", "CODE", "BROKER_USER", "CERTS", "PARENT", "NAME"),
               [(a.organ_id, a.code, a.broker_user, len(a.fingerprints), a.parent or "-", a.name)
                for a in directory], empty="the directory lists no agency")


@directory_group.command("show")
@click.argument("organ_id")
@config_option
@directory_file_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def directory_show(organ_id: str, config_path: Path | None, file: Path | None,
                   as_json: bool) -> None:
    """Show one agency: codes, name, parent, children, broker user, fingerprints, contacts."""
    with reported_errors():
        directory = _load_directory(config_path, file)
        agency = directory.get(organ_id)
    children = [c.organ_id for c in directory.children(organ_id)]
    if as_json:
        echo_json({**agency.to_dict(), "children": children})
        return
    parent = directory.find(agency.parent) if agency.parent else None
    click.echo(f"organ_id:     {agency.organ_id}")
    click.echo(f"code:         {agency.code}")
    click.echo(f"name:         {agency.name}")
    click.echo(f"parent:       {agency.parent or '-'}" + (f" ({parent.name})" if parent else ""))
    click.echo(f"children:     {', '.join(children) or '-'}")
    click.echo(f"broker_user:  {agency.broker_user}")
    click.echo("fingerprints: " + ("\n              ".join(agency.fingerprints) or "-"))
    for key in ("email", "phone", "fax"):
        value = getattr(agency, key)
        if value:
            click.echo(f"{key + ':':<14}{value}")


def certificate_facts(folder: Path) -> tuple[list[CertificateFacts], list[str]]:
    """Facts about every agency certificate in ``folder`` (recursively), and unreadable files.

    CA certificates and files holding no certificate (keys, CRLs) are skipped.
    """
    facts: list[CertificateFacts] = []
    problems: list[str] = []
    now = dt.datetime.now(dt.UTC)
    for path, certs, problem in trust.certificate_files(folder):
        if problem is not None:
            problems.append(f"{path}: {problem}")
            continue
        for cert in certs:
            if _is_ca(cert):
                continue
            facts.append(CertificateFacts(
                source=str(path.relative_to(folder)), fingerprint=trust.fingerprint(cert),
                organ_id=trust.organ_id_of(cert), expired=cert.not_valid_after_utc < now))
    return facts, problems


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (x509.ExtensionNotFound, ValueError):
        return False


@directory_group.command("check")
@config_option
@directory_file_option
@click.option("--certs", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of agency certificates (PEM) to check against the fingerprints.")
def directory_check(config_path: Path | None, file: Path | None, certs: Path | None) -> None:
    """Validate the directory; with --certs, also match certificates and fingerprints.

    Exit 0 when it is usable, 78 when it has problems (each printed on its own line).
    """
    with reported_errors():
        directory = _load_directory(config_path, file)
    problems, warnings = directory.problems(), directory.warnings()
    if certs is not None:
        facts, unreadable = certificate_facts(certs)
        cert_problems, cert_warnings = directory.check_certificates(facts)
        problems += unreadable + cert_problems
        warnings += cert_warnings
    for warning in warnings:
        click.echo(f"warning: {warning}")
    for problem in problems:
        click.echo(f"problem: {problem}")
    if problems:
        click.echo(f"{directory.source}: {len(problems)} problem(s)", err=True)
        sys.exit(EXIT_CONFIG)
    click.echo(f"ok: {directory.source} lists {len(directory)} agencies")
