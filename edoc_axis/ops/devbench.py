"""The dev test bench behind ``edoc-axis init --dev``: dev CA, agency keys, directory, broker users.

Several agencies of one bench share a dev CA folder (the layout ``edoc-axis pki init-ca``
makes, so ``pki issue/revoke`` work on it), one agency directory file and one file of dev
broker passwords. ``dev_identity`` gives an agency its signing key and certificate from the
CA and lists it, with the certificate's fingerprint, in the directory; ``dev_password`` hands
out its broker password. Concurrent inits of several agencies are serialised by a lock file
in each shared folder. Not for production.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from cryptography import x509

from edoc_axis.config.settings import Settings
from edoc_axis.directory import Agency, Directory, save_agency
from edoc_axis.edxml.identifier import organ_parent
from edoc_axis.errors import ConfigError, EdocAxisError, ErrorCode, TrustError
from edoc_axis.ops import pki
from edoc_axis.trust import certificate as trust

DEV_CRL_DAYS = 30
# The layout of a CA folder made by `edoc-axis pki init-ca` (edoc_axis.cli.trust), so that
# `pki issue/revoke` work on a dev CA made here and `init --ca` accepts one made there.
CA_KEY, CA_CERT, CA_CRL, CA_CRL_NUMBER = "ca.key", "ca.pem", "crl.pem", "crlnumber"
INTERMEDIATE_KEY, INTERMEDIATE_CERT = "intermediate.key", "intermediate.pem"
AGENCY_KEY, AGENCY_CERT = "agency.key.pem", "agency.cert.pem"
DEV_PASSWORDS = "broker-passwords"  # next to the directory file, shared by the dev agencies


def dev_identity(
    settings: Settings,
    ca_dir: Path,
    *,
    ca_given: bool = False,
    name: str | None = None,
    code: str | None = None,
    parent: str | None = None,
    key_type: str = "rsa2048",
    force: bool = False,
) -> list[str]:
    """Dev CA (made unless given), agency key + certificate, and the directory entry.

    ``ca_given``: ``ca_dir`` was named by the administrator, so a folder that holds other files
    is refused rather than turned into a CA. Returns notes for the administrator.
    """
    notes: list[str] = []
    label = name or settings.organ_id
    with locked(ca_dir):
        if (ca_dir / CA_CERT).exists():
            ca_key, ca_cert = _issuing_ca(ca_dir)
            notes.append(f"dev CA {ca_dir} reused")
        elif ca_given and any(
            not p.name.startswith(".") for p in ca_dir.iterdir()
        ):
            raise TrustError(f"--ca {ca_dir} is not a CA folder (no {CA_CERT}); make one with "
                              "`edoc-axis pki init-ca` or name a new folder",
                              code=ErrorCode.TRUST_NO_CA)
        else:
            ca_key, ca_cert = pki.init_ca("edoc_axis Dev Root CA")
            _write_private(ca_dir / CA_KEY, pki.key_to_pem(ca_key))
            (ca_dir / CA_CERT).write_bytes(pki.cert_to_pem(ca_cert))
            crl = pki.make_crl(ca_key, ca_cert, days=DEV_CRL_DAYS)
            (ca_dir / CA_CRL).write_bytes(pki.crl_to_pem(crl))
            (ca_dir / CA_CRL_NUMBER).write_text("1\n")
            notes.append(f"dev CA created in {ca_dir}")
        if not (ca_dir / CA_CRL).exists():
            raise TrustError(f"{ca_dir} has no {CA_CRL}; publish one with `edoc-axis pki crl`",
                              code=ErrorCode.TRUST_NO_CRL)
    cert = _reusable_certificate(settings, ca_cert) if not force else None
    if cert is None:
        key, cert = pki.issue_agency_certificate(
            ca_key, ca_cert, settings.organ_id, label, key_type=key_type)
        _write_private(settings.keys.key, pki.key_to_pem(key))
        settings.keys.cert.write_bytes(pki.cert_to_pem(cert))
        notes.append(f"signing key and certificate issued for {settings.organ_id}")
    else:
        notes.append(f"existing signing key and certificate of {settings.organ_id} reused")
    fp = trust.fingerprint(cert)
    with locked(settings.directory_path.parent):
        current = (Directory.load(settings.directory_path).find(settings.organ_id)
                   if settings.directory_path.exists() else None)
        implied = organ_parent(settings.organ_id)
        if current is None:
            agency = Agency(
                organ_id=settings.organ_id, code=code or settings.organ_id, name=label,
                parent=parent, broker_user=settings.broker.user, fingerprints=(fp,))
        else:
            # Dev keys are replaced, not rolled over: the old key is gone with the old cert.
            agency = replace(
                current, code=code or current.code, name=name or current.name,
                parent=parent or current.parent, broker_user=settings.broker.user,
                fingerprints=(fp,))
        save_agency(settings.directory_path, agency)
    notes.append(f"directory {settings.directory_path}: {settings.organ_id} listed "
                 f"(fingerprint {fp[:16]}...)")
    if implied and agency.parent is None:
        notes.append(f"parent {implied} not set (use --parent once it is listed)")
    return notes


def dev_broker_user(bench_dir: Path, organ_id: str) -> str:
    """The dev broker user of ``organ_id`` on the bench whose shared folder (directory,
    passwords) is ``bench_dir``: ``dev-<6 hex>.<OrganId>``. RabbitMQ users are global to a
    broker, so two benches (two clones, two CI jobs) using one broker must not share a name, or
    each `broker provision` resets the other's password. The prefix is derived from the host
    and the folder: rerunning a bench in place reuses its users."""
    where = f"{socket.gethostname()}:{bench_dir.expanduser().absolute()}"
    return f"dev-{hashlib.sha256(where.encode()).hexdigest()[:6]}.{organ_id}"


def recorded_password(path: Path, user: str) -> str | None:
    """``user``'s password in a USER=PASSWORD file (None when the file or the user is absent)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        name, sep, password = line.strip().partition("=")
        if sep and name.strip() == user and password:
            return password
    return None


def dev_password(path: Path, user: str) -> str:
    """``user``'s password from a USER=PASSWORD file (the format `broker provision --passwords`
    reads), appending a new random one when the user is not in it yet."""
    with locked(path.parent):
        password = recorded_password(path, user)
        if password is None:
            password = secrets.token_urlsafe(24)
            _append_password(path, user, password)
        return password


def record_password(path: Path, user: str, password: str, *, force: bool = False) -> bool:
    """Keep ``user``'s ``password`` (given in ``init --broker-url``) in the bench's passwords
    file, so that `broker provision --passwords` gives the broker this one rather than a new
    one. True when the file changed. Another password already there is a conflict
    (``BROKER_PASSWORD_CONFLICT``) unless ``force`` replaces it."""
    with locked(path.parent):
        known = recorded_password(path, user)
        if known == password:
            return False
        if known is None:
            _append_password(path, user, password)
            return True
        if not force:
            raise ConfigError(
                f"{path} already holds another password for broker user {user}: give that "
                "one in --broker-url, or pass --force to replace it (then rerun `edoc-axis "
                "broker provision --passwords ...`)", code=ErrorCode.BROKER_PASSWORD_CONFLICT,
                element="broker.url")
        kept = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
                if line.strip().partition("=")[0].strip() != user]
        _write_private(path, "".join([*kept, f"{user}={password}\n"]).encode())
        return True


def _append_password(path: Path, user: str, password: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(f"{user}={password}\n")


def _issuing_ca(ca_dir: Path) -> tuple[trust.PrivateKey, x509.Certificate]:
    """The CA of ``ca_dir`` that issues agency certificates: the intermediate if there is one."""
    names = ((INTERMEDIATE_KEY, INTERMEDIATE_CERT) if (ca_dir / INTERMEDIATE_CERT).exists()
             else (CA_KEY, CA_CERT))
    try:
        key = trust.load_private_key((ca_dir / names[0]).read_bytes())
        cert = trust.load_certificate((ca_dir / names[1]).read_bytes())
    except OSError as exc:
        raise TrustError(f"cannot read the dev CA in {ca_dir}: {exc}",
                          code=ErrorCode.TRUST_NO_CA) from exc
    return key, cert


def _reusable_certificate(settings: Settings, ca_cert: x509.Certificate) -> x509.Certificate | None:
    """The agency's existing dev certificate when it fits (same OrganId and CA, key matches)."""
    try:
        cert = trust.load_certificate(settings.keys.cert.read_bytes())
        key = trust.load_private_key(settings.keys.key.read_bytes())
    except (OSError, EdocAxisError):
        return None
    fits = (trust.organ_id_of(cert) == settings.organ_id and cert.issuer == ca_cert.subject
            and trust.key_matches(key, cert)
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
def locked(folder: Path) -> Iterator[None]:
    """Serialise inits of several agencies sharing one dev CA or directory folder."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".edoc-axis.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
