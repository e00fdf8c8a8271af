"""The node: one agency's façade over the journeys of a package, and the Link that runs them.

Each journey is its own collaborator, all sharing one ``Context`` (settings, store, directory,
trust, identity, limits, policies):
- ``Submitter`` (``submit``): a package this agency sends, checked, signed and stored;
- ``Relay`` (``fetch_outgoing`` / ``on_confirmed``): the outbox to the broker and back;
- ``Receiver`` (``handle_batch``): incoming messages checked, stored and answered 01/02;
- ``ChunkSender`` / ``ChunkReceiver``: a package over ``broker.chunk_bytes`` as chunk messages,
  wrapped around the relay and the receiver;
- ``Receipts`` (``set_status``): the statuses this agency signs and sends;
- the delivery state machine they follow is ``node.state`` (pure).
``Node`` keeps the one public surface callers use (the CLI, the gateway's backend, the sandbox).
"""

from __future__ import annotations

from edoc_axis.audit.sealing import seal_before_exit
from edoc_axis.config.settings import Settings
from edoc_axis.directory import Directory
from edoc_axis.edxml.parsed import ParsedPackage
from edoc_axis.node.chunk_receive import ChunkReceiver
from edoc_axis.node.chunk_send import ChunkSender
from edoc_axis.node.context import Context, SubmitResult
from edoc_axis.node.receipt import Receipts
from edoc_axis.node.receive import Receiver
from edoc_axis.node.relay import OUTBOX_POLL_SECONDS, Relay
from edoc_axis.node.submit import Submitter
from edoc_axis.node.wiring import Identity, broker_endpoint, load_identity, load_trust
from edoc_axis.store import Store
from edoc_axis.store.records import Event
from edoc_axis.transport.connection import Endpoint
from edoc_axis.transport.link import Link
from edoc_axis.transport.message import Confirmation, IncomingMessage, Outcome, OutgoingMessage
from edoc_axis.transport.topology import Topology
from edoc_axis.trust.chain import TrustStore


class Node:
    """One agency's node. Thread-safe for ``submit``/``set_status``; the relay and receive
    callbacks run in the Link's thread."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        directory: Directory,
        trust: TrustStore,
        identity: Identity,
        *,
        topology: Topology | None = None,
    ) -> None:
        ctx = self.context = Context.build(settings, store, directory, trust, identity,
                                           topology=topology)
        self.settings = settings
        self.organ_id = settings.organ_id
        self.store = store
        self.directory = directory
        self.trust = trust
        self.identity = identity
        self.topology = ctx.topology
        self.limits = ctx.limits
        self.me = ctx.me
        self.policy = ctx.policy
        self.status_policy = ctx.status_policy
        self.broker_user = ctx.broker_user
        self.audit = ctx.audit
        self.receipts = Receipts(ctx)
        self.submitter = Submitter(ctx, self.receipts)
        self.receiver = Receiver(ctx, self.receipts)
        self.relay = Relay(ctx)
        broker = settings.broker
        self.chunk_sender = ChunkSender(broker.chunk_bytes)
        self.chunk_receiver = ChunkReceiver(ctx, self.receipts,
                                            timeout=broker.transfer_timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> Node:
        """A node built from loaded settings: store, directory, trust and signing identity."""
        return cls(settings, Store(settings.store_path), Directory.load(settings.directory_path),
                   load_trust(settings), load_identity(settings))

    def close(self) -> None:
        """Seal the audit entries this process wrote, if still unsealed (``send`` while the
        node is stopped), then close the store's connections."""
        try:
            seal_before_exit(self.audit, only_written=True)
        finally:
            self.store.close()

    def submit(self, data: bytes | ParsedPackage) -> SubmitResult:
        """Validate, sign (by policy) and store a package for sending; wake the relay.
        ``data`` is the bytes, or the package as the caller already read it (parsed once).

        A second submission of the same package (sender, DocumentId, business operation,
        content digest) is recognised and answered with the original package id.
        """
        return self.submitter.submit(data)

    def set_status(self, document_id: str, code: str, *, description: str | None = None,
                   to: str | None = None) -> list[SubmitResult]:
        """Send a business status about a document: recipient codes go to its sender, 13 goes
        to every recipient (or ``to``). A repeat of an already sent code (except 05) is not
        sent again: the earlier package is returned with ``duplicate=True``."""
        return self.receipts.set_status(document_id, code, description=description, to=to)

    def fetch_outgoing(self, limit: int) -> list[OutgoingMessage]:
        """Up to ``limit`` pending outbox messages not already handed to the Link; a large
        package's chunks count one each (the rest follow in later calls)."""
        chunks = self.chunk_sender
        out = chunks.due(limit)
        if len(out) >= limit:
            return out
        return out + chunks.expand(self.relay.fetch_outgoing(limit - len(out)),
                                   limit - len(out))

    def on_confirmed(self, confirmations: list[Confirmation]) -> None:
        """Record broker outcomes: confirmed -> ``sent``; returned/too large -> ``failed``."""
        self.relay.on_confirmed(self.chunk_sender.settle(confirmations))

    def handle_batch(self, messages: list[IncomingMessage]) -> list[Outcome]:
        """Check, store (one transaction for the batch) and answer incoming messages."""
        return self.chunk_receiver.handle_batch(messages, self.receiver.handle_batch)

    def note_replayed(self, message_id: str) -> None:
        """Chain an operator's dead-letter replay (``edoc-axis dlq replay``) into the audit log."""
        self.audit.record(Event("replayed", None, None, None, None, {"message_id": message_id}))

    def link(self, url: str | Endpoint | None = None) -> Link:
        """The transport Link that consumes this agency's queue and relays its outbox."""
        broker = self.settings.broker
        link = Link(url or broker_endpoint(self.settings), self.topology,
                    user_id=self.broker_user, queue=self.topology.queue_for(self.organ_id),
                    handle_batch=self.handle_batch, fetch_outgoing=self.fetch_outgoing,
                    on_confirmed=self.on_confirmed, prefetch=broker.prefetch,
                    window=broker.publish_window, heartbeat=broker.heartbeat,
                    blocked_connection_timeout=broker.blocked_connection_timeout,
                    poll_interval=OUTBOX_POLL_SECONDS, name=f"edoc-axis node {self.organ_id}")
        self.context.wake = link.wake
        return link
