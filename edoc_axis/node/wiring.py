"""Reading a node's parts from its settings: the signing identity, the trust store, and the
audit log sealed with that identity.

What ``Node.from_settings`` (and the auditor) need before any journey runs; a file that cannot
be read is a ``ConfigError`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from edoc_axis.audit.log import AuditLog, Sealer, key_sealer
from edoc_axis.config.settings import Settings
from edoc_axis.errors import ConfigError
from edoc_axis.store import Store
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
                          code="KEYS_UNREADABLE") from exc
    return Identity(key, cert, chain)


def load_trust(settings: Settings) -> TrustStore:
    """The trust store of the settings' anchors and CRLs."""
    try:
        return TrustStore.from_pem([p.read_bytes() for p in settings.trust.anchors],
                                   [p.read_bytes() for p in settings.trust.crls])
    except OSError as exc:
        raise ConfigError(f"cannot read trust anchors or CRLs: {exc}",
                          code="TRUST_UNREADABLE") from exc


def audit_sealer(identity: Identity, organ_id: str) -> Sealer:
    """Sign the audit chain's head with the agency key (the store gets only this callable)."""
    return key_sealer(identity.key, identity.cert, organ_id)


def audit_log(settings: Settings, store: Store, identity: Identity) -> AuditLog:
    """The audit chain of ``store``, sealed with ``identity`` by the settings' policy."""
    return AuditLog.of_settings(settings, store, identity)
