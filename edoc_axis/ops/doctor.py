"""``edoc-axis doctor``'s checks: can this node run? One verdict per check, in order.

Config, data dir and store, signing key and certificate (match, OrganId, expiry, fingerprint
listed in the directory), directory, trust anchors, CRLs, the own chain as peers would judge it,
for amqps the broker's TLS (its CA certificates; with certificate login the user the certificate
logs in as and how long it still can; whether the queue names are secret), and the broker
(connect as the node does, find the exchange and the agency's queues).
``diagnose`` returns the checks; printing them is the command's job (``cli/admin.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from cryptography import x509

from edoc_axis.config.load import load_settings
from edoc_axis.config.settings import Settings
from edoc_axis.directory import Directory
from edoc_axis.errors import EXIT_FAILURE, ConfigError, EdocAxisError, ErrorCode
from edoc_axis.node.wiring import broker_endpoint, broker_topology
from edoc_axis.ops.devbench import DEV_PASSWORDS, recorded_password
from edoc_axis.transport.provision import check_queues
from edoc_axis.trust import certificate as trust
from edoc_axis.trust.chain import TrustStore

_T = TypeVar("_T")
EXPIRY_WARNING_DAYS = 30

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
BrokerCheck = Callable[[Settings], EdocAxisError | str | None]


@dataclass(frozen=True, slots=True)
class Check:
    """One line of ``doctor``: what was checked, the verdict, and why."""

    name: str
    status: str
    detail: str
    exit_code: int = EXIT_FAILURE  # what `doctor` exits with when this alone failed

    def line(self) -> str:
        """``ok    name: detail``."""
        return f"{self.status:<5} {self.name}: {self.detail}"


def broker_check(settings: Settings) -> EdocAxisError | None:
    """Why the broker is not usable by this node (None when it is): connect with the node's
    credentials, and find the axis exchange and the agency's queue and dead-letter queue."""
    # pika logs a refused login as ERROR with a traceback; the check line already says why.
    pika_log = logging.getLogger("pika")
    level = pika_log.level
    pika_log.setLevel(logging.CRITICAL)
    try:
        check_queues(broker_endpoint(settings), broker_topology(settings), [settings.organ_id])
    except EdocAxisError as exc:
        if exc.code == ErrorCode.BROKER_AUTH_FAILED and not settings.broker.certificate_login:
            return ConfigError(password_refused(settings), code=exc.code)
        return exc
    finally:
        pika_log.setLevel(level)
    return None


def password_refused(settings: Settings) -> str:
    """Why the broker refused this node's password, judged against the dev bench's passwords
    file (next to the directory): the file that `broker provision --passwords` gave the broker."""
    broker = settings.broker
    user = broker.user
    where = f"{urlsplit(broker.url).hostname}:{urlsplit(broker.url).port or 5672}"
    file = settings.directory_path.parent / DEV_PASSWORDS
    vhost = f" --vhost {broker.vhost}" if broker.vhost != "/" else ""
    provision = (f"`edoc-axis broker provision --directory {settings.directory_path} "
                 f"--passwords {file}{vhost}`")
    head = f"the broker at {where} refused user {user}'s password (vhost {broker.vhost!r})"
    known = recorded_password(file, user)
    if known is None:
        return (f"{head}: check the password in broker.url; on a dev bench, the broker gets "
                f"the passwords of {file}, which does not list {user}")
    if known != urlsplit(broker.url).password:
        return (f"{head}: the password in broker.url differs from the one provisioned (see "
                f"{file}): rerun {provision} after fixing that file, or fix broker.url")
    return (f"{head}, although broker.url has the password of {file}: the broker holds "
            f"another (never provisioned, or changed since, e.g. by another bench): rerun "
            f"{provision}")


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
        if urlsplit(settings.broker.url).scheme == "amqps":
            self._broker_tls(settings, cert)
        if check_broker is None:
            self.add("broker", SKIP, "not checked (--no-broker)")
        else:
            reason = check_broker(settings)
            queue = broker_topology(settings).queue_for(settings.organ_id)
            login = "certificate" if settings.broker.certificate_login else "password"
            where = f"{settings.broker.redacted_url} as {settings.broker.user} ({login} login)"
            if reason:
                exit_code = (reason.exit_code if isinstance(reason, EdocAxisError)
                             else EXIT_FAILURE)
                self.checks.append(Check("broker", FAIL, str(reason), exit_code))
            else:
                self.add("broker", OK, f"{where}: exchange, {queue} and its dead-letter "
                         "queue found")
        return self.checks

    def _broker_tls(self, settings: Settings, cert: x509.Certificate | None) -> None:
        """The CA certificates verifying the broker; with certificate login, the user the
        agency certificate logs in as and how long it still can; secret queue names."""
        broker = settings.broker
        cas = broker.ca_files or settings.trust.anchors
        unreadable = [f"{p} ({exc})" for p in cas for exc in _read_error(p)]
        if not cas or unreadable:
            self.add("broker tls", FAIL, "no CA certificates to verify the broker with"
                     if not cas else "cannot read " + ", ".join(unreadable))
        else:
            source = "broker.ca_files" if broker.ca_files else "the trust anchors"
            self.add("broker tls", OK, f"the broker's certificate is verified against {source}")
        if broker.certificate_login:
            self._broker_login(settings, cert)
        if broker.queue_token:
            self.add("queue names", OK, "this agency's queue names end in its secret token")
        else:
            self.add("queue names", WARN, "broker.queue_token is empty: the queue names are "
                     "guessable, and any agency can read this agency's queue depth and "
                     "consumers; ask the broker administrator for the token")

    def _broker_login(self, settings: Settings, cert: x509.Certificate | None) -> None:
        if cert is None:
            self.add("broker login", FAIL, "no readable certificate to log in with")
            return
        login = trust.broker_login_of(cert)
        user = settings.broker.user
        if login != user:
            self.add("broker login", FAIL, f"{settings.keys.cert} logs in as "
                     f"{login or 'nobody (no subjectAltName URI)'}, but broker.url names {user}")
            return
        left = cert.not_valid_after_utc - self.now
        when = f"{cert.not_valid_after_utc:%Y-%m-%d}"
        if left.total_seconds() <= 0:
            self.add("broker login", FAIL, f"the TLS client certificate expired on {when}: the "
                     "broker refuses it")
        elif left.days < EXPIRY_WARNING_DAYS:
            self.add("broker login", WARN, f"the TLS client certificate expires in {left.days} "
                     f"days ({when}); after that the broker refuses this node: renew it")
        else:
            self.add("broker login", OK, f"the certificate logs in as {user} (valid until "
                     f"{when})")

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

    def _load(self, name: str, path: Path, load: Callable[[bytes], _T]) -> _T | None:
        """What ``load`` reads from the file ``path``; None, and a failed ``name`` check saying
        why, when the file cannot be read or does not hold it."""
        try:
            return load(path.read_bytes())
        except OSError as exc:
            self.add(name, FAIL, f"cannot read {path} ({exc.strerror})")
        except EdocAxisError as exc:
            self.add(name, FAIL, f"{path}: {exc.message}")
        return None

    def _keys(self, settings: Settings) -> x509.Certificate | None:
        """Key, certificate, their match, OrganId and expiry; the certificate when it loads."""
        key = self._load("signing key", settings.keys.key, trust.load_private_key)
        cert = self._load("certificate", settings.keys.cert, trust.load_certificate)
        if key is not None and cert is not None:
            if trust.key_matches(key, cert):
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
            loaded = self._load("trust anchors", path, trust.load_certificates)
            if loaded is None:
                failed = True
            else:
                anchors += loaded
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
            store = TrustStore(anchors=anchors, crls=crls)
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
            crls = self._load("crls", path, trust.load_crls)
            if crls is None:
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


def _read_error(path: Path) -> list[str]:
    """Why a PEM file of certificates cannot be used (empty when it can)."""
    try:
        trust.load_certificates(path.read_bytes())
    except OSError as exc:
        return [exc.strerror or str(exc)]
    except EdocAxisError as exc:
        return [exc.message]
    return []


def _common_name(name: x509.Name) -> str:
    names = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else name.rfc4514_string()


def diagnose(config_path: Path | None = None, *, env: dict[str, str] | None = None,
             check_broker: BrokerCheck | None = broker_check,
             now: dt.datetime | None = None) -> list[Check]:
    """Every doctor check in order (``check_broker=None`` skips the broker)."""
    return _Doctor(now or dt.datetime.now(dt.UTC)).run(config_path, env, check_broker)
