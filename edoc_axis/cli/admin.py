"""Setting up and checking a node: ``edoc-axis init``, ``directory list|show|check``, ``doctor``.

``init`` writes a working config for a new agency; with ``--dev`` it also makes the agency's
signing key and certificate from a dev CA (shared between the agencies of one test bench) and
lists the agency, with its certificate fingerprint, in the agency directory. ``doctor`` checks
everything a node needs before it runs and prints one line per check.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edoc_axis import transport, trust
from edoc_axis.cli.base import reported_errors
from edoc_axis.config import (
    BrokerSettings,
    KeySettings,
    Settings,
    TrustSettings,
    broker_url_problem,
    load_settings,
    write_config,
)
from edoc_axis.directory import Agency, CertificateFacts, Directory, save_agency
from edoc_axis.errors import EXIT_CONFIG, EXIT_FAILURE, ConfigError, EdocAxisError
from edoc_axis.package import is_valid_organ_id, organ_parent
from edoc_axis.topology import Topology

EXPIRY_WARNING_DAYS = 30
DEV_CRL_DAYS = 30
# The layout of a CA folder made by `edoc-axis pki init-ca` (edoc_axis.cli.trust), so that
# `pki issue/revoke` work on a dev CA made here and `init --ca` accepts one made there.
CA_KEY, CA_CERT, CA_CRL, CA_CRL_NUMBER = "ca.key", "ca.pem", "crl.pem", "crlnumber"
INTERMEDIATE_KEY, INTERMEDIATE_CERT = "intermediate.key", "intermediate.pem"
AGENCY_KEY, AGENCY_CERT = "agency.key.pem", "agency.cert.pem"
DEV_PASSWORDS = "broker-passwords"  # next to the directory file, shared by the dev agencies

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Node config file (default: the file named by $EDOC_AXIS_CONFIG).",
)


# --- init ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitRequest:
    """What ``edoc-axis init`` was asked to do."""

    organ_id: str
    data_dir: Path
    output: Path | None = None
    broker_url: str | None = None
    directory: Path | None = None
    name: str | None = None
    code: str | None = None
    parent: str | None = None
    dev: bool = False
    ca_dir: Path | None = None
    key_type: str = "rsa2048"
    broker_passwords: Path | None = None
    force: bool = False


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
            code="CONFIG_ORGAN_ID", element="organ_id")
    data_dir = request.data_dir.expanduser().absolute()
    output = (request.output or data_dir / "node.toml").expanduser().absolute()
    if output.exists() and not request.force:
        raise ConfigError(f"{output} already exists; pass --force to overwrite it",
                          code="CONFIG_EXISTS")
    notes: list[str] = []
    directory_path = (request.directory or data_dir / "directory.toml").expanduser().absolute()
    url = request.broker_url
    if url is None:
        if not request.dev:
            raise ConfigError("--broker-url is required (only --dev invents one)",
                              code="CONFIG_MISSING", element="broker.url")
        passwords = (request.broker_passwords
                     or directory_path.parent / DEV_PASSWORDS).expanduser().absolute()
        url = f"amqp://{organ_id}:{_dev_password(passwords, organ_id)}@127.0.0.1:5672/%2F"
        notes.append(f"broker user {organ_id}, password in {passwords}; create it with "
                     f"`edoc-axis broker provision --directory {directory_path} "
                     f"--passwords {passwords}`")
    problem = broker_url_problem(url)
    if problem:
        raise ConfigError(f"--broker-url {problem}", code="CONFIG_BROKER_URL",
                          element="broker.url")
    ca_dir = (request.ca_dir or data_dir / "pki" / "ca").expanduser().absolute()
    if request.dev:
        anchor, crl = ca_dir / CA_CERT, ca_dir / CA_CRL
    else:
        anchor, crl = data_dir / "trust" / "root-ca.pem", data_dir / "trust" / "root-ca.crl"
    chain = (ca_dir / INTERMEDIATE_CERT,) if (ca_dir / INTERMEDIATE_CERT).exists() else ()
    settings = Settings(
        organ_id=organ_id,
        data_dir=data_dir,
        broker=BrokerSettings(url=url),
        keys=KeySettings(key=data_dir / "keys" / AGENCY_KEY, cert=data_dir / "keys" / AGENCY_CERT,
                         chain=chain if request.dev else ()),
        trust=TrustSettings(anchors=(anchor,), crls=(crl,)),
        directory_path=directory_path,
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    if request.dev:
        notes.extend(_dev_identity(request, settings, ca_dir))
    else:
        notes.append(f"put the agency key and certificate at {settings.keys.key} and "
                     f"{settings.keys.cert}, the CA certificate and CRL at {anchor} and {crl}")
    write_config(output, settings, force=request.force)
    # What we wrote must load: a config that init itself cannot read is a bug, not a user error.
    return InitResult(load_settings(output, env={}), notes)


def _dev_identity(request: InitRequest, settings: Settings, ca_dir: Path) -> list[str]:
    """Dev CA (made unless given), agency key + certificate, and the directory entry."""
    notes: list[str] = []
    name = request.name or settings.organ_id
    with _locked(ca_dir):
        if (ca_dir / CA_CERT).exists():
            ca_key, ca_cert = _issuing_ca(ca_dir)
            notes.append(f"dev CA {ca_dir} reused")
        elif request.ca_dir is not None and any(
            not p.name.startswith(".") for p in ca_dir.iterdir()
        ):
            raise ConfigError(f"--ca {ca_dir} is not a CA folder (no {CA_CERT}); make one with "
                              "`edoc-axis pki init-ca` or name a new folder", code="TRUST_NO_CA")
        else:
            ca_key, ca_cert = trust.init_ca("edoc_axis Dev Root CA")
            _write_private(ca_dir / CA_KEY, trust.key_to_pem(ca_key))
            (ca_dir / CA_CERT).write_bytes(trust.cert_to_pem(ca_cert))
            crl = trust.make_crl(ca_key, ca_cert, days=DEV_CRL_DAYS)
            (ca_dir / CA_CRL).write_bytes(trust.crl_to_pem(crl))
            (ca_dir / CA_CRL_NUMBER).write_text("1\n")
            notes.append(f"dev CA created in {ca_dir}")
        if not (ca_dir / CA_CRL).exists():
            raise ConfigError(f"{ca_dir} has no {CA_CRL}; publish one with `edoc-axis pki crl`",
                              code="TRUST_NO_CRL")
    cert = _reusable_certificate(settings, ca_cert) if not request.force else None
    if cert is None:
        key, cert = trust.issue_agency_certificate(
            ca_key, ca_cert, settings.organ_id, name, key_type=request.key_type)
        _write_private(settings.keys.key, trust.key_to_pem(key))
        settings.keys.cert.write_bytes(trust.cert_to_pem(cert))
        notes.append(f"signing key and certificate issued for {settings.organ_id}")
    else:
        notes.append(f"existing signing key and certificate of {settings.organ_id} reused")
    fp = trust.fingerprint(cert)
    with _locked(settings.directory_path.parent):
        current = (Directory.load(settings.directory_path).find(settings.organ_id)
                   if settings.directory_path.exists() else None)
        implied = organ_parent(settings.organ_id)
        if current is None:
            agency = Agency(
                organ_id=settings.organ_id, code=request.code or settings.organ_id, name=name,
                parent=request.parent, broker_user=settings.broker.user, fingerprints=(fp,))
        else:
            # Dev keys are replaced, not rolled over: the old key is gone with the old cert.
            agency = replace(
                current, code=request.code or current.code, name=request.name or current.name,
                parent=request.parent or current.parent, broker_user=settings.broker.user,
                fingerprints=(fp,))
        save_agency(settings.directory_path, agency)
    notes.append(f"directory {settings.directory_path}: {settings.organ_id} listed "
                 f"(fingerprint {fp[:16]}...)")
    if implied and agency.parent is None:
        notes.append(f"parent {implied} not set (use --parent once it is listed)")
    return notes


def _dev_password(path: Path, user: str) -> str:
    """``user``'s password from a USER=PASSWORD file (the format `broker provision --passwords`
    reads), appending a new random one when the user is not in it yet."""
    with _locked(path.parent):
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                name, sep, password = line.strip().partition("=")
                if sep and name.strip() == user and password:
                    return password
        password = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(f"{user}={password}\n")
        return password


def _issuing_ca(ca_dir: Path) -> tuple[trust.PrivateKey, x509.Certificate]:
    """The CA of ``ca_dir`` that issues agency certificates: the intermediate if there is one."""
    names = ((INTERMEDIATE_KEY, INTERMEDIATE_CERT) if (ca_dir / INTERMEDIATE_CERT).exists()
             else (CA_KEY, CA_CERT))
    try:
        key = trust.load_private_key((ca_dir / names[0]).read_bytes())
        cert = trust.load_certificate((ca_dir / names[1]).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read the dev CA in {ca_dir}: {exc}",
                          code="TRUST_NO_CA") from exc
    return key, cert


def _reusable_certificate(settings: Settings, ca_cert: x509.Certificate) -> x509.Certificate | None:
    """The agency's existing dev certificate when it fits (same OrganId and CA, key matches)."""
    try:
        cert = trust.load_certificate(settings.keys.cert.read_bytes())
        key = trust.load_private_key(settings.keys.key.read_bytes())
    except (OSError, EdocAxisError):
        return None
    fits = (trust.organ_id_of(cert) == settings.organ_id and cert.issuer == ca_cert.subject
            and key_matches(key, cert)
            and cert.not_valid_after_utc > dt.datetime.now(dt.UTC))
    return cert if fits else None


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise inits of several agencies sharing one dev CA or directory folder."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".edoc-axis.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def key_matches(key: trust.PrivateKey, cert: x509.Certificate) -> bool:
    """Whether ``key`` is the private half of ``cert``'s public key."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


@click.command("init")
@click.option("--organ-id", required=True, help="The agency's OrganId, e.g. 000.00.00.G22.")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the node's state (store, keys); created if missing.")
@click.option("--broker-url", help="amqp(s)://USER:PASSWORD@HOST:PORT/VHOST of this agency's "
              "broker user. Required unless --dev (then a local user named after the OrganId).")
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
@click.option("--key-type", type=click.Choice(trust.KEY_TYPES), default="rsa2048",
              show_default=True, help="Key type of the dev signing key.")
@click.option("--broker-passwords", type=click.Path(dir_okay=False, path_type=Path),
              help="--dev: USER=PASSWORD file the dev broker password is taken from or added "
              f"to (default: {DEV_PASSWORDS} next to the directory file).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the config (default: DATA_DIR/node.toml).")
@click.option("--force", is_flag=True, help="Overwrite an existing config (and dev key).")
def init_command(**options: Any) -> None:
    """Write a working node config for a new agency.

    Example for a test bench of two agencies sharing one dev CA, directory and broker:

    \b
      edoc-axis init --dev --organ-id 000.00.00.G22 --data-dir nodes/g22 \\
          --ca nodes/ca --directory nodes/directory.toml
      edoc-axis init --dev --organ-id 000.00.00.H41 --data-dir nodes/h41 \\
          --ca nodes/ca --directory nodes/directory.toml
      edoc-axis broker provision --directory nodes/directory.toml \\
          --passwords nodes/broker-passwords
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
        click.echo(json.dumps([a.to_dict() for a in directory], ensure_ascii=False, indent=2))
        return
    rows = [("ORGAN_ID", "CODE", "BROKER_USER", "CERTS", "PARENT", "NAME")]
    rows += [(a.organ_id, a.code, a.broker_user, str(len(a.fingerprints)), a.parent or "-", a.name)
             for a in directory]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) +
                   "  " + row[5])


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
        click.echo(json.dumps({**agency.to_dict(), "children": children}, ensure_ascii=False,
                              indent=2))
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
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".pem", ".crt", ".cer") or not path.is_file():
            continue
        data = path.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" not in data:
            continue
        try:
            certs = trust.load_certificates(data)
        except EdocAxisError as exc:
            problems.append(f"{path}: {exc.message}")
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


# --- doctor --------------------------------------------------------------------------------------

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
BrokerCheck = Callable[[Settings], str | None]


@dataclass(frozen=True, slots=True)
class Check:
    """One line of ``doctor``: what was checked, the verdict, and why."""

    name: str
    status: str
    detail: str

    def line(self) -> str:
        """``ok    name: detail``."""
        return f"{self.status:<5} {self.name}: {self.detail}"


def broker_check(settings: Settings) -> str | None:
    """Why the broker is not usable by this node (None when it is): connect with the node's
    credentials, and find the axis exchange and the agency's queue and dead-letter queue."""
    topology = Topology(delivery_limit=settings.broker.delivery_limit)
    # pika logs a refused login as ERROR with a traceback; the check line already says why.
    pika_log = logging.getLogger("pika")
    level = pika_log.level
    pika_log.setLevel(logging.CRITICAL)
    try:
        transport.check_queues(settings.broker.url, topology, [settings.organ_id])
    except EdocAxisError as exc:
        return str(exc)
    finally:
        pika_log.setLevel(level)
    return None


class _Doctor:
    """Runs the checks in order; later checks use what earlier ones loaded."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.checks: list[Check] = []

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def run(self, config_path: Path | None, env: dict[str, str] | None,
            check_broker: BrokerCheck | None) -> list[Check]:
        try:
            settings = load_settings(config_path, env)
        except ConfigError as exc:
            self.add("config", FAIL, str(exc))
            return self.checks
        self.add("config", OK, f"{settings.config_path or 'environment'} for {settings.organ_id}")
        self._data_dir(settings)
        cert = self._keys(settings)
        self._directory(settings, cert)
        self._trust(settings, cert)
        if check_broker is None:
            self.add("broker", SKIP, "not checked (--no-broker)")
        else:
            reason = check_broker(settings)
            queue = Topology().queue_for(settings.organ_id)
            where = f"{settings.broker.redacted_url} as {settings.broker.user}"
            self.add("broker", FAIL if reason else OK,
                     reason or f"{where}: exchange, {queue} and its dead-letter queue found")
        return self.checks

    def _data_dir(self, settings: Settings) -> None:
        folder = settings.data_dir
        if not folder.is_dir():
            self.add("data dir", FAIL, f"{folder} does not exist or is not a folder")
            self.add("store", SKIP, "no data dir")
            return
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
                pass
        except OSError as exc:
            self.add("data dir", FAIL, f"{folder} is not writable ({exc.strerror})")
        else:
            self.add("data dir", OK, f"{folder} is writable")
        store = settings.store_path
        if store.exists():
            ok = store.is_file() and os.access(store, os.R_OK | os.W_OK)
            self.add("store", OK if ok else FAIL,
                     f"{store} " + ("is readable and writable" if ok else "is not read/writable"))
        else:
            ok = os.access(folder, os.W_OK)
            self.add("store", OK if ok else FAIL,
                     f"{store} will be created" if ok else f"{store} cannot be created")

    def _keys(self, settings: Settings) -> x509.Certificate | None:
        """Key, certificate, their match, OrganId and expiry; the certificate when it loads."""
        key = cert = None
        try:
            key = trust.load_private_key(settings.keys.key.read_bytes())
        except OSError as exc:
            self.add("signing key", FAIL, f"cannot read {settings.keys.key} ({exc.strerror})")
        except EdocAxisError as exc:
            self.add("signing key", FAIL, f"{settings.keys.key}: {exc.message}")
        try:
            cert = trust.load_certificate(settings.keys.cert.read_bytes())
        except OSError as exc:
            self.add("certificate", FAIL, f"cannot read {settings.keys.cert} ({exc.strerror})")
        except EdocAxisError as exc:
            self.add("certificate", FAIL, f"{settings.keys.cert}: {exc.message}")
        if key is not None and cert is not None:
            if key_matches(key, cert):
                self.add("signing key", OK, f"{settings.keys.key} matches the certificate")
            else:
                self.add("signing key", FAIL,
                         f"{settings.keys.key} is not the key of {settings.keys.cert}")
        if cert is None:
            return None
        organ_id = trust.organ_id_of(cert)
        if organ_id == settings.organ_id:
            self.add("certificate", OK, f"{settings.keys.cert} is issued to {organ_id}")
        else:
            self.add("certificate", FAIL, f"{settings.keys.cert} is issued to "
                     f"{organ_id or 'no single OrganId'}, not {settings.organ_id}")
        self._expiry(cert)
        return cert

    def _expiry(self, cert: x509.Certificate) -> None:
        end = cert.not_valid_after_utc
        left = end - self.now
        when = f"{end:%Y-%m-%d}"
        if self.now < cert.not_valid_before_utc:
            self.add("expiry", FAIL, f"certificate not valid before "
                     f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z")
        elif left.total_seconds() <= 0:
            self.add("expiry", FAIL, f"certificate expired on {when}")
        elif left.days < EXPIRY_WARNING_DAYS:
            self.add("expiry", WARN, f"certificate expires in {left.days} days ({when}): renew it")
        else:
            self.add("expiry", OK, f"certificate valid until {when} ({left.days} days)")

    def _directory(self, settings: Settings, cert: x509.Certificate | None) -> None:
        try:
            directory = Directory.load(settings.directory_path)
        except ConfigError as exc:
            self.add("directory", FAIL, str(exc))
            return
        agency = directory.find(settings.organ_id)
        problems = directory.problems()
        if agency is None:
            problems.insert(0, f"{settings.organ_id} (this node) is not listed")
        elif agency.broker_user != settings.broker.user:
            problems.insert(0, f"{settings.organ_id} has broker_user {agency.broker_user}, "
                            f"but the config connects as {settings.broker.user}")
        if problems:
            self.add("directory", FAIL, "; ".join(problems))
        else:
            self.add("directory", OK, f"{settings.directory_path}: {len(directory)} agencies")
        if cert is not None and agency is not None:
            fp = trust.fingerprint(cert)
            listed = agency.trusts(fp)
            self.add("fingerprint", OK if listed else FAIL,
                     f"{fp[:16]}... is listed for {settings.organ_id}" if listed else
                     f"{fp} is not listed for {settings.organ_id}: peers will refuse "
                     "this node's signatures")

    def _trust(self, settings: Settings, cert: x509.Certificate | None) -> None:
        anchors: list[x509.Certificate] = []
        failed = False
        for path in settings.trust.anchors:
            try:
                anchors += trust.load_certificates(path.read_bytes())
            except OSError as exc:
                failed = True
                self.add("trust anchors", FAIL, f"cannot read {path} ({exc.strerror})")
            except EdocAxisError as exc:
                failed = True
                self.add("trust anchors", FAIL, f"{path}: {exc.message}")
        if not anchors and not failed:
            self.add("trust anchors", FAIL, "none configured ([trust] anchors)")
        elif not failed:
            self.add("trust anchors", OK, f"{len(anchors)} loaded")
        crls = self._crls(settings)
        if cert is None or not anchors:
            return
        try:
            chain = [c for item in settings.keys.chain
                     for c in trust.load_certificates(item.read_bytes())]
            store = trust.TrustStore(anchors=anchors, crls=crls)
            checked = store.validate(cert, chain, crl_required=settings.signature.crl_required,
                                     at=self.now)
        except OSError as exc:
            self.add("chain", FAIL, f"cannot read the [keys] chain ({exc})")
        except EdocAxisError as exc:
            self.add("chain", FAIL, f"own certificate would be refused by peers: {exc}")
        else:
            detail = "own certificate chains to a trust anchor and is not revoked"
            if checked.warnings:
                self.add("chain", WARN, f"{detail}; " + "; ".join(checked.warnings))
            else:
                self.add("chain", OK, detail)

    def _crls(self, settings: Settings) -> list[x509.CertificateRevocationList]:
        loaded: list[x509.CertificateRevocationList] = []
        required = settings.signature.crl_required
        if not settings.trust.crls:
            self.add("crls", FAIL if required else WARN,
                     "none configured" + (" but signature.crl_required is on: every signature "
                                          "would be refused" if required else ""))
            return loaded
        for path in settings.trust.crls:
            try:
                crls = trust.load_crls(path.read_bytes())
            except OSError as exc:
                self.add("crls", FAIL, f"cannot read {path} ({exc.strerror})")
                continue
            except EdocAxisError as exc:
                self.add("crls", FAIL, f"{path}: {exc.message}")
                continue
            loaded += crls
            for crl in crls:
                label = f"{path} ({_common_name(crl.issuer)})"
                next_update = crl.next_update_utc
                if next_update is None or next_update < self.now:
                    self.add("crls", FAIL if required else WARN,
                             f"{label} is out of date (next update {next_update}); fetch a new one")
                else:
                    hours = (next_update - self.now).total_seconds() / 3600
                    status = WARN if hours < 24 else OK
                    self.add("crls", status, f"{label} fresh until {next_update:%Y-%m-%d %H:%M}Z")
        return loaded


def _common_name(name: x509.Name) -> str:
    names = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else name.rfc4514_string()


def diagnose(config_path: Path | None = None, *, env: dict[str, str] | None = None,
             check_broker: BrokerCheck | None = broker_check,
             now: dt.datetime | None = None) -> list[Check]:
    """Every doctor check in order (``check_broker=None`` skips the broker)."""
    return _Doctor(now or dt.datetime.now(dt.UTC)).run(config_path, env, check_broker)


@click.command("doctor")
@config_option
@click.option("--no-broker", is_flag=True, help="Skip the broker check (offline).")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor_command(config_path: Path | None, no_broker: bool, as_json: bool) -> None:
    """Check that this node can run: config, data dir, store, key and certificate (match,
    OrganId, expiry, listed fingerprint), trust anchors, CRLs, directory, broker and queue.

    One line per check (ok / warn / FAIL / skip). Exit 0 when nothing failed, 1 otherwise.
    """
    checks = diagnose(config_path, check_broker=None if no_broker else broker_check)
    if as_json:
        click.echo(json.dumps([{"check": c.name, "status": c.status, "detail": c.detail}
                               for c in checks], ensure_ascii=False, indent=2))
    else:
        for check in checks:
            click.echo(check.line())
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        click.echo(f"{len(failed)} check(s) failed", err=True)
        sys.exit(EXIT_FAILURE)
