"""The broker layout of the axis: names, per-agency users and permissions, as RabbitMQ definitions.

Pure data plus dev-only actions on the local broker through ``rabbitmqctl`` (:func:`provision`,
and listing or deleting vhosts and users for ``edoc-axis sandbox``); the AMQP side (declaring,
publishing, consuming) lives in :mod:`edoc_axis.transport.link`, the only pika importer. Everything
here must work on RabbitMQ 3.10 and 4.x alike: durable quorum queues only, an explicit
``x-delivery-limit`` everywhere (4.x otherwise defaults to 20), no classic mirroring.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from edoc_axis.errors import BrokerUnavailable, ConfigError, PackageTooLarge

# RabbitMQ 4.x refuses messages above 16 MiB by default; 3.10 allows more, we never rely on it.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

# Dead-letter queues are only peeked and replayed, never rejected on purpose; a huge limit keeps
# 4.x's default of 20 returns from silently dropping a dead letter that was peeked many times.
DEAD_QUEUE_DELIVERY_LIMIT = 1_000_000

PERMISSIONS_CONFIGURE_NONE = "^$"


@dataclass(frozen=True, slots=True)
class Topology:
    """Names and limits of the axis on the broker (the same for every node of one axis)."""

    exchange: str = "edoc.axis"
    dead_exchange: str = "edoc.dlx"
    queue_prefix: str = "edoc.in."
    dead_prefix: str = "edoc.dead."
    delivery_limit: int = 5
    max_message_bytes: int = MAX_MESSAGE_BYTES

    def queue_for(self, organ_id: str) -> str:
        """The agency's inbound quorum queue, e.g. ``edoc.in.000.00.00.H01``."""
        return f"{self.queue_prefix}{organ_id}"

    def dead_queue_for(self, organ_id: str) -> str:
        """The agency's dead-letter queue, fed by :attr:`dead_exchange` with the OrganId key."""
        return f"{self.dead_prefix}{organ_id}"

    def queue_arguments(self) -> dict[str, Any]:
        """Arguments of an agency's inbound queue (must match exactly on every declaration)."""
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_exchange,
        }

    @staticmethod
    def dead_queue_arguments() -> dict[str, Any]:
        """Arguments of an agency's dead-letter queue (quorum, no further dead-lettering)."""
        return {"x-queue-type": "quorum", "x-delivery-limit": DEAD_QUEUE_DELIVERY_LIMIT}

    def check_size(self, body: bytes, *, package_id: str | None = None) -> None:
        """Refuse a message body the broker would refuse (4.x: 16 MiB) before publishing it."""
        if len(body) > self.max_message_bytes:
            raise PackageTooLarge(
                f"message of {len(body)} bytes exceeds the broker limit of "
                f"{self.max_message_bytes} bytes",
                code="PACKAGE_TOO_LARGE",
                package_id=package_id,
            )


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    """One agency's broker identity: its OrganId, RabbitMQ user name and password."""

    organ_id: str
    user: str
    password: str

    def __repr__(self) -> str:  # never print a password in logs or tracebacks
        return f"BrokerAccount(organ_id={self.organ_id!r}, user={self.user!r}, password='***')"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt4 + sha256(salt4 + password))."""
    salt = os.urandom(4) if salt is None else salt
    if len(salt) != 4:
        raise ValueError("RabbitMQ password salts are exactly 4 bytes")
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def read_pattern(topology: Topology, organ_id: str) -> str:
    """The read-permission regex of one agency: its own inbound and dead-letter queues only."""
    return (
        f"^({re.escape(topology.queue_for(organ_id))}|"
        f"{re.escape(topology.dead_queue_for(organ_id))})$"
    )


def write_pattern(topology: Topology) -> str:
    """The write-permission regex of every agency: the axis exchange only."""
    return f"^{re.escape(topology.exchange)}$"


def definitions(
    accounts: Iterable[BrokerAccount], vhost: str, topology: Topology = Topology()
) -> dict[str, Any]:
    """RabbitMQ definitions (``rabbitmqctl import_definitions``) for the axis in ``vhost``.

    One user per agency (salted SHA-256 hash, no tags), permissions configure ``^$``, write on the
    axis exchange only, read on its own queues only; both exchanges, and per agency a quorum
    queue bound by its OrganId plus a dead-letter queue bound on the dead-letter exchange.
    """
    accounts = list(accounts)
    _check_accounts(accounts)
    exchange_defaults = {"vhost": vhost, "type": "direct", "durable": True,
                         "auto_delete": False, "internal": False, "arguments": {}}
    queue_defaults = {"vhost": vhost, "durable": True, "auto_delete": False}
    out: dict[str, Any] = {
        "users": [],
        "vhosts": [{"name": vhost}],
        "permissions": [],
        "exchanges": [
            {"name": topology.exchange, **exchange_defaults},
            {"name": topology.dead_exchange, **exchange_defaults},
        ],
        "queues": [],
        "bindings": [],
    }
    for account in accounts:
        out["users"].append({
            "name": account.user,
            "password_hash": password_hash(account.password),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": [],
        })
        out["permissions"].append({
            "user": account.user,
            "vhost": vhost,
            "configure": PERMISSIONS_CONFIGURE_NONE,
            "write": write_pattern(topology),
            "read": read_pattern(topology, account.organ_id),
        })
        queue = topology.queue_for(account.organ_id)
        dead = topology.dead_queue_for(account.organ_id)
        out["queues"].append(
            {"name": queue, **queue_defaults, "arguments": topology.queue_arguments()})
        out["queues"].append(
            {"name": dead, **queue_defaults, "arguments": topology.dead_queue_arguments()})
        for source, destination in ((topology.exchange, queue), (topology.dead_exchange, dead)):
            out["bindings"].append({
                "source": source, "vhost": vhost, "destination": destination,
                "destination_type": "queue", "routing_key": account.organ_id, "arguments": {},
            })
    return out


def _check_accounts(accounts: Sequence[BrokerAccount]) -> None:
    seen_ids: set[str] = set()
    seen_users: set[str] = set()
    for account in accounts:
        if not account.organ_id or not account.user or not account.password:
            raise ConfigError(
                f"broker account for {account.organ_id!r} needs an OrganId, a user and a password",
                code="BROKER_ACCOUNT_INCOMPLETE", agency=account.organ_id or None)
        if account.organ_id in seen_ids or account.user in seen_users:
            raise ConfigError(
                f"agency {account.organ_id!r} / user {account.user!r} is listed twice",
                code="BROKER_ACCOUNT_DUPLICATE", agency=account.organ_id)
        seen_ids.add(account.organ_id)
        seen_users.add(account.user)


def vhost_of(url: str) -> str:
    """The vhost an AMQP URL names (``/`` when the path is empty)."""
    path = urlparse(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def url_with_vhost(url: str, vhost: str) -> str:
    """The same AMQP URL pointing at another vhost."""
    return urlparse(url)._replace(path="/" + quote(vhost, safe="")).geturl()


def provision(
    admin_url: str,
    accounts: Iterable[BrokerAccount],
    topology: Topology = Topology(),
    vhost: str | None = None,
) -> None:
    """Apply :func:`definitions` to the local dev broker with ``rabbitmqctl import_definitions``.

    Importing is idempotent (existing users get the new password, existing queues are kept).
    ``admin_url`` must point at this machine: ``rabbitmqctl`` only talks to the local node; on a
    production broker an administrator imports the JSON of ``edoc-axis broker definitions``.
    """
    host = urlparse(admin_url).hostname or "localhost"
    if host not in {"localhost", "127.0.0.1", "::1"}:
        raise ConfigError(
            f"provision only works on a local dev broker (URL names {host}); import the output "
            "of `edoc-axis broker definitions` on the broker host instead",
            code="BROKER_NOT_LOCAL")
    target = vhost if vhost is not None else vhost_of(admin_url)
    document = definitions(accounts, target, topology)
    exe = _rabbitmqctl_path()
    # Through stdin: the password hashes never touch the disk, and the broker's own user need
    # not be able to read a temporary file of ours.
    _rabbitmqctl(exe, "import_definitions", "--format", "json", stdin=json.dumps(document))
    _await_bindings(exe, target, document["bindings"])
    # Dev convenience: the admin of the URL may inspect the vhost (dead letters, queue depths).
    admin = unquote(urlparse(admin_url).username or "guest")
    subprocess.run([exe, "-q", "set_permissions", "-p", target, admin, ".*", ".*", ".*"],
                   capture_output=True, timeout=60, check=False)


def list_vhosts() -> set[str]:
    """The virtual hosts of the local dev broker."""
    return set(_rabbitmqctl(_rabbitmqctl_path(), "list_vhosts", "--no-table-headers",
                            "name").splitlines())


def delete_vhost(vhost: str) -> None:
    """Delete a vhost of the local dev broker, with its queues and messages."""
    _rabbitmqctl(_rabbitmqctl_path(), "delete_vhost", vhost)


def delete_user(user: str) -> None:
    """Delete a user of the local dev broker."""
    _rabbitmqctl(_rabbitmqctl_path(), "delete_user", user)


def _rabbitmqctl_path() -> str:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    if not Path(exe).exists():
        raise ConfigError("rabbitmqctl not found; is RabbitMQ installed here?",
                          code="BROKER_CTL_MISSING")
    return exe


def _rabbitmqctl(exe: str, *args: str, stdin: str | None = None) -> str:
    try:
        result = subprocess.run([exe, "-q", *args], input=stdin, capture_output=True, text=True,
                                timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerUnavailable(f"rabbitmqctl {args[0]} failed: {exc}",
                                code="BROKER_PROVISION_FAILED") from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BrokerUnavailable(
            f"rabbitmqctl {args[0]} failed: {detail[-1] if detail else result.returncode}",
            code="BROKER_PROVISION_FAILED")
    return result.stdout


def _await_bindings(exe: str, vhost: str, bindings: list[dict[str, Any]],
                    timeout: float = 60.0) -> None:
    """Wait until the import is visible: rabbitmqctl says the import may finish asynchronously,
    and bindings are imported last."""
    wanted = {(b["source"], b["destination"], b["routing_key"]) for b in bindings}
    deadline = time.monotonic() + timeout
    while True:
        listing = _rabbitmqctl(exe, "list_bindings", "-p", vhost, "source_name",
                               "destination_name", "routing_key")
        present = {tuple(line.split("\t")) for line in listing.splitlines()}
        if wanted <= present:
            return
        if time.monotonic() > deadline:
            raise BrokerUnavailable(
                f"definitions import did not complete within {timeout:.0f} s",
                code="BROKER_PROVISION_FAILED")
        time.sleep(0.2)
