"""Making the axis layout exist on a broker, and checking that it does.

- :func:`definitions`: the RabbitMQ definitions JSON (users, their limits and permissions,
  exchanges, queues, bindings, the bound policies) an administrator imports on a production
  broker. A user logs in with a password (salted hash in the JSON; the dev bench) or, with no
  password at all, as its agency's TLS certificate (EXTERNAL login; its name is what the broker
  reads from the certificate);
- :func:`provision`, :func:`list_vhosts`, :func:`delete_vhost`, :func:`delete_user`: dev-only
  actions on a broker node of this machine through ``rabbitmqctl`` (``node`` names one other
  than the default);
- :func:`declare_topology` (needs configure rights) and :func:`check_queues` (passive, for
  ``doctor``) over AMQP, on short blocking connections.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from edoc_axis.errors import BrokerUnavailable, ConfigError, ErrorCode
from edoc_axis.transport.connection import Endpoint, blocking_channel
from edoc_axis.transport.topology import (
    PERMISSIONS_CONFIGURE_NONE,
    Topology,
    read_pattern,
    vhost_of,
    write_pattern,
)

AXIS_TOPOLOGY = Topology()  # the default layout (frozen: safe as an argument default)
# What one agency user may hold open: a node's Link and a failover twin, doctor, dlq commands.
USER_MAX_CONNECTIONS = 8
USER_MAX_CHANNELS = 32


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    """One agency's broker identity: OrganId, RabbitMQ user, and its password or None (the user
    logs in as its TLS certificate: EXTERNAL, no password exists); ``queue_token`` ends the
    names of its queues (``Topology.queue_token``)."""

    organ_id: str
    user: str
    password: str | None = None
    queue_token: str = ""

    def __repr__(self) -> str:  # never print a password in logs or tracebacks
        login = "certificate" if self.password is None else "'***'"
        return f"BrokerAccount(organ_id={self.organ_id!r}, user={self.user!r}, password={login})"

    def layout(self, topology: Topology) -> Topology:
        """``topology`` naming this agency's queues (with its token)."""
        return replace(topology, queue_token=self.queue_token)


@dataclass(frozen=True, slots=True)
class UserLimits:
    """What one agency user may hold open at once (``rabbitmqctl set_user_limits``).

    RabbitMQ 3.10 has no per-user publish rate; an agency's publishing is bounded by these caps,
    the recipients' queue bounds and the broker's own flow control, which slows every
    connection that publishes faster than the queues take in.
    """

    max_connections: int = USER_MAX_CONNECTIONS
    max_channels: int = USER_MAX_CHANNELS

    def as_json(self) -> dict[str, int]:
        """The ``limits`` object of a user in the definitions JSON."""
        return {"max-connections": self.max_connections, "max-channels": self.max_channels}


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt4 + sha256(salt4 + password))."""
    salt = os.urandom(4) if salt is None else salt
    if len(salt) != 4:
        raise ValueError("RabbitMQ password salts are exactly 4 bytes")
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def definitions(
    accounts: Iterable[BrokerAccount], vhost: str, topology: Topology = AXIS_TOPOLOGY,
    limits: UserLimits | None = None,
) -> dict[str, Any]:
    """RabbitMQ definitions (``rabbitmqctl import_definitions``) for the axis in ``vhost``.

    One user per agency (a salted SHA-256 hash, or no password for certificate login; no tags;
    connection and channel caps), permissions configure ``^$``, write on the axis exchange only,
    read on its own queues only; both exchanges, per agency a bounded quorum queue bound by its
    OrganId plus a bounded dead-letter queue on the dead-letter exchange, and the policies that
    bound queues declared before bounds existed.
    """
    accounts = list(accounts)
    caps = (limits or UserLimits()).as_json()
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
        "policies": [
            {"vhost": vhost, "name": name, "pattern": pattern, "apply-to": "queues",
             "priority": 0, "definition": definition}
            for name, pattern, definition in topology.bound_policies()
        ],
    }
    for account in accounts:
        layout = account.layout(topology)
        out["users"].append({
            "name": account.user,
            # "" is no password: PLAIN logins fail, only the certificate (EXTERNAL) logs in.
            "password_hash": "" if account.password is None else password_hash(account.password),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": [],
            "limits": caps,
        })
        out["permissions"].append({
            "user": account.user,
            "vhost": vhost,
            "configure": PERMISSIONS_CONFIGURE_NONE,
            "write": write_pattern(layout),
            "read": read_pattern(layout, account.organ_id),
        })
        queue = layout.queue_for(account.organ_id)
        dead = layout.dead_queue_for(account.organ_id)
        out["queues"].append(
            {"name": queue, **queue_defaults, "arguments": layout.queue_arguments()})
        out["queues"].append(
            {"name": dead, **queue_defaults, "arguments": layout.dead_queue_arguments()})
        for source, destination in ((layout.exchange, queue), (layout.dead_exchange, dead)):
            out["bindings"].append({
                "source": source, "vhost": vhost, "destination": destination,
                "destination_type": "queue", "routing_key": account.organ_id, "arguments": {},
            })
    return out


def _check_accounts(accounts: Sequence[BrokerAccount]) -> None:
    seen_ids: set[str] = set()
    seen_users: set[str] = set()
    for account in accounts:
        if not account.organ_id or not account.user or account.password == "":
            raise ConfigError(
                f"broker account for {account.organ_id!r} needs an OrganId, a user and a "
                "password (or none at all, for certificate login)",
                code=ErrorCode.BROKER_ACCOUNT_INCOMPLETE, agency=account.organ_id or None)
        if account.organ_id in seen_ids or account.user in seen_users:
            raise ConfigError(
                f"agency {account.organ_id!r} / user {account.user!r} is listed twice",
                code=ErrorCode.BROKER_ACCOUNT_DUPLICATE, agency=account.organ_id)
        seen_ids.add(account.organ_id)
        seen_users.add(account.user)


def provision(
    admin_url: str,
    accounts: Iterable[BrokerAccount],
    topology: Topology = AXIS_TOPOLOGY,
    vhost: str | None = None,
    *,
    limits: UserLimits | None = None,
    node: str | None = None,
) -> None:
    """Apply :func:`definitions` to a dev broker of this machine (``rabbitmqctl
    import_definitions``; ``node``: a RabbitMQ node other than the default one).

    Importing is idempotent (existing users get the new password, existing queues keep their
    arguments; the bound policies still apply to them). ``admin_url`` must point at this
    machine: ``rabbitmqctl`` only talks to local nodes; on a production broker an administrator
    imports the JSON of ``edoc-axis broker definitions``.
    """
    host = urlparse(admin_url).hostname or "localhost"
    if host not in {"localhost", "127.0.0.1", "::1"}:
        raise ConfigError(
            f"provision only works on a local dev broker (URL names {host}); import the output "
            "of `edoc-axis broker definitions` on the broker host instead",
            code=ErrorCode.BROKER_NOT_LOCAL)
    target = vhost if vhost is not None else vhost_of(admin_url)
    document = definitions(accounts, target, topology, limits)
    exe = [_rabbitmqctl_path(), *(["-n", node] if node else [])]
    # Through stdin: the password hashes never touch the disk, and the broker's own user need
    # not be able to read a temporary file of ours.
    _rabbitmqctl(exe, "import_definitions", "--format", "json", stdin=json.dumps(document))
    _await_bindings(exe, target, document["bindings"])
    # Dev convenience: the admin of the URL may inspect the vhost (dead letters, queue depths).
    admin = unquote(urlparse(admin_url).username or "guest")
    subprocess.run([*exe, "-q", "set_permissions", "-p", target, admin, ".*", ".*", ".*"],
                   capture_output=True, timeout=60, check=False)


def list_vhosts() -> set[str]:
    """The virtual hosts of the local dev broker."""
    return set(_rabbitmqctl([_rabbitmqctl_path()], "list_vhosts", "--no-table-headers",
                            "name").splitlines())


def delete_vhost(vhost: str) -> None:
    """Delete a vhost of the local dev broker, with its queues and messages."""
    _rabbitmqctl([_rabbitmqctl_path()], "delete_vhost", vhost)


def delete_user(user: str) -> None:
    """Delete a user of the local dev broker."""
    _rabbitmqctl([_rabbitmqctl_path()], "delete_user", user)


def _rabbitmqctl_path() -> str:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    if not Path(exe).exists():
        raise ConfigError("rabbitmqctl not found; is RabbitMQ installed here?",
                          code=ErrorCode.BROKER_CTL_MISSING)
    return exe


def _rabbitmqctl(exe: list[str], *args: str, stdin: str | None = None) -> str:
    try:
        result = subprocess.run([*exe, "-q", *args], input=stdin, capture_output=True, text=True,
                                timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerUnavailable(f"rabbitmqctl {args[0]} failed: {exc}",
                                code=ErrorCode.BROKER_PROVISION_FAILED) from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BrokerUnavailable(
            f"rabbitmqctl {args[0]} failed: {detail[-1] if detail else result.returncode}",
            code=ErrorCode.BROKER_PROVISION_FAILED)
    return result.stdout


def _await_bindings(exe: list[str], vhost: str, bindings: list[dict[str, Any]],
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
                code=ErrorCode.BROKER_PROVISION_FAILED)
        time.sleep(0.2)


def declare_topology(url: str | Endpoint, topology: Topology, organ_ids: Iterable[str]) -> None:
    """Declare exchanges, queues and bindings with pika (needs configure rights; idempotent)."""
    with blocking_channel(url) as channel:
        for exchange in (topology.exchange, topology.dead_exchange):
            channel.exchange_declare(exchange, exchange_type="direct", durable=True)
        for organ_id in organ_ids:
            queue, dead = topology.queue_for(organ_id), topology.dead_queue_for(organ_id)
            channel.queue_declare(queue, durable=True, arguments=topology.queue_arguments())
            channel.queue_declare(dead, durable=True, arguments=topology.dead_queue_arguments())
            channel.queue_bind(queue, topology.exchange, routing_key=organ_id)
            channel.queue_bind(dead, topology.dead_exchange, routing_key=organ_id)


def check_queues(url: str | Endpoint, topology: Topology,
                 organ_ids: Iterable[str]) -> dict[str, int]:
    """Message count per existing agency queue, by passive declares (no configure right needed).

    Raises :class:`NotFound` (code ``BROKER_NOT_FOUND``) naming the first missing queue.
    """
    counts: dict[str, int] = {}
    with blocking_channel(url) as channel:
        channel.exchange_declare(topology.exchange, passive=True)
        for organ_id in organ_ids:
            for queue in (topology.queue_for(organ_id), topology.dead_queue_for(organ_id)):
                counts[queue] = channel.queue_declare(queue, passive=True).method.message_count
    return counts
