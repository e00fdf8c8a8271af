"""What the journeys of one node share: its settings, store, directory, trust, identity,
limits and signature policies, signing and verifying with them, and the few conventions every
journey follows (digests, recipient order, the value a sending journey returns).

Built once per node (``Context.build``) and handed to each journey's collaborator; ``wake`` is
the one part that changes, when a Link starts running the node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from edoc_axis.audit.log import AuditLog
from edoc_axis.config.settings import Settings
from edoc_axis.directory import Agency, Directory
from edoc_axis.edxml.finding import Finding
from edoc_axis.edxml.limits import XmlLimits
from edoc_axis.edxml.model import Organization, Package
from edoc_axis.edxml.parsed import ParsedPackage
from edoc_axis.edxml.read import from_tree
from edoc_axis.edxml.write import build_tree
from edoc_axis.errors import ConfigError, ErrorCode
from edoc_axis.node.wiring import Identity, audit_log, broker_topology
from edoc_axis.store import Store
from edoc_axis.transport.topology import Topology
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.policy import SignaturePolicy
from edoc_axis.trust.signature import sign_tree, verify_tree


def _no_wake() -> None:
    """Until a Link runs the node, there is no relay to wake (it polls the outbox anyway)."""


@dataclass(slots=True)
class Context:
    """One agency's node parts, shared by submit, receive, receipts and relay."""

    settings: Settings
    store: Store
    directory: Directory
    trust: TrustStore
    identity: Identity
    topology: Topology
    me: Agency
    audit: AuditLog
    limits: XmlLimits
    policy: SignaturePolicy
    status_policy: SignaturePolicy
    wake: Callable[[], None] = field(default=_no_wake)

    @classmethod
    def build(cls, settings: Settings, store: Store, directory: Directory, trust: TrustStore,
              identity: Identity, *, topology: Topology | None = None) -> Context:
        """The parts for ``settings.organ_id``, which must be in ``directory``; every event the
        store records is chained into the audit log in its transaction."""
        me = directory.find(settings.organ_id)
        if me is None:
            raise ConfigError(f"this agency {settings.organ_id} is not in the agency directory",
                              code=ErrorCode.DIRECTORY_MISSING_SELF, agency=settings.organ_id)
        policy: SignaturePolicy = settings.signature
        log = audit_log(settings, store, identity)
        if store.on_event is None:
            log.attach()
        return cls(settings, store, directory, trust, identity,
                   topology or broker_topology(settings), me, log,
                   settings.limits, policy, policy.for_status())

    @property
    def organ_id(self) -> str:
        """This agency's OrganId."""
        return self.settings.organ_id

    @property
    def broker_user(self) -> str:
        """This agency's broker user (the ``user_id`` of everything it publishes)."""
        return self.settings.broker.user

    @property
    def me_org(self) -> Organization:
        """This agency as the From of the packages the node builds."""
        return Organization(self.organ_id, self.me.name)

    def sign(self, package: ParsedPackage | Package) -> bytes:
        """An unsigned package signed with this agency's key, as bytes; nothing is parsed.

        A package the hop read is signed in its tree (lent to the signer for the call, see
        ``signature.sign_tree``; it ends unchanged); a model the node made (a status) is laid
        out as the tree ``edxml.write.build`` would write, and signed without being serialised
        and read back."""
        root = package.root if isinstance(package, ParsedPackage) else build_tree(package)
        return sign_tree(root, self.identity.key, self.identity.cert,
                         chain=self.identity.chain)[0]

    def verified(self, parsed: ParsedPackage, agency: Agency,
                 policy: SignaturePolicy) -> tuple[Package, str | None]:
        """Verify the package read in ``parsed`` as signed by ``agency``; the model read from
        the *signed* content (the hop's one model: ``parsed.model`` is left unbuilt) and the
        signing certificate's fingerprint (for the audit chain). Nothing is parsed."""
        result = verify_tree(parsed.root, self.trust, policy,
                             allowed_fingerprints=agency.fingerprints or None)
        return from_tree(result.signed_root), result.fingerprint


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What ``submit`` or ``set_status`` stored (or recognised as already stored)."""

    package_id: str
    kind: str
    document_id: str
    recipients: tuple[str, ...]
    duplicate: bool = False

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {"package_id": self.package_id, "kind": self.kind,
                "document_id": self.document_id, "recipients": list(self.recipients),
                "duplicate": self.duplicate}


def sha256(data: bytes) -> str:
    """The hex SHA-256 the store, headers and audit chain name a package by."""
    return hashlib.sha256(data).hexdigest()


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """``values`` without repeats, in first-seen order (recipients keep the package's order)."""
    return tuple(dict.fromkeys(values))


def inserted(row: int | None, package_id: str) -> int:
    """The row of a package just added under a fresh id (None would mean an id clash)."""
    if row is None:  # only a package-id clash can cause this, and ids are fresh UUIDs
        raise RuntimeError(f"package id {package_id} is already stored")
    return row


def warning_codes(warnings: Iterable[Finding]) -> list[str] | None:
    """The distinct codes of accepted warnings, for logs and the audit entry (None: none)."""
    return sorted({f.code for f in warnings}) or None
