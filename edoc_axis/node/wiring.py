"""Reading a node's parts from its settings: the signing identity, the trust store, the
audit log sealed with that identity, and how to reach the broker.

What ``Node.from_settings`` (and the auditor) need before any journey runs; a file that cannot
be read is a ``ConfigError`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from edoc_axis.audit.log import AuditLog, Sealer, key_sealer
from edoc_axis.config.settings import Settings
from edoc_axis.errors import ConfigError, ErrorCode, TrustError
from edoc_axis.store import Store
from edoc_axis.transport.connection import Endpoint
from edoc_axis.transport.topology import Topology
from edoc_axis.trust.certificate import (
    PrivateKey,
    load_certificates,
    load_private_key,
)
from edoc_axis.trust.chain import TrustStore


@dataclass(frozen=True, slots=True)
class Identity:
    """The agency's signing key, certificate and intermediates."""

    key: PrivateKey
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


def load_identity(settings: Settings) -> Identity:
    """Read the signing key, certificate and chain named in the settings."""
    try:
        key = load_private_key(settings.keys.key.read_bytes())
        cert = load_certificates(settings.keys.cert.read_bytes())[0]
        chain = tuple(c for p in settings.keys.chain for c in load_certificates(p.read_bytes()))
    except OSError as exc:
        raise ConfigError(f"cannot read the signing key or certificate: {exc}",
                          code=ErrorCode.KEYS_UNREADABLE) from exc
    return Identity(key, cert, chain)


def load_trust(settings: Settings) -> TrustStore:
    """The trust store of the settings' anchors and CRLs."""
    try:
        return TrustStore.from_pem([p.read_bytes() for p in settings.trust.anchors],
                                   [p.read_bytes() for p in settings.trust.crls])
    except OSError as exc:
        raise TrustError(f"cannot read trust anchors or CRLs: {exc}",
                          code=ErrorCode.TRUST_UNREADABLE) from exc


def broker_endpoint(settings: Settings) -> Endpoint:
    """The broker as this node reaches it: for amqps, the broker's certificate verified against
    ``broker.ca_files`` (else the trust anchors), the agency certificate as the TLS client
    certificate, and with ``login = "certificate"`` the login as that certificate."""
    broker = settings.broker
    return Endpoint(broker.url, ca_files=broker.ca_files or settings.trust.anchors,
                    cert_file=settings.keys.cert, key_file=settings.keys.key,
                    external=broker.certificate_login)


def broker_topology(settings: Settings) -> Topology:
    """The axis layout as this node sees it: its queues' names (with its token) and limits."""
    return Topology(delivery_limit=settings.broker.delivery_limit,
                    queue_token=settings.broker.queue_token)


def audit_sealer(identity: Identity, organ_id: str) -> Sealer:
    """Sign the audit chain's head with the agency key (the store gets only this callable)."""
    return key_sealer(identity.key, identity.cert, organ_id)


def audit_log(settings: Settings, store: Store, identity: Identity) -> AuditLog:
    """The audit chain of ``store``, sealed with ``identity`` by the settings' policy."""
    return AuditLog.of_settings(settings, store, identity)
