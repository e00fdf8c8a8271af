"""A sandbox axis for DMS vendors: a node for a test agency with its DMS gateway, and a peer node.

``edoc-axis sandbox`` runs both nodes in one process on the local broker, in a vhost of their
own. The test agency's gateway has one DMS system (a generated systemid, the secret in a file);
the vendor points the SDK at it. The peer agency plays the other side of the axis:

- its node answers every document it receives with a signed status 01 (as every node does);
- the sandbox's peer logic then sends status 03 (accepted) and a reply document whose
  ``ResponseFor`` names the received document, so the DMS has something to receive, acknowledge
  and answer with a business status of its own;
- at the first start it sends one welcome document, so the DMS's inbox is never empty and
  ``dms selftest`` can learn the DMS's agency from ``getReceivedEdocList``.

Provisioning reuses the ``init --dev`` bench (``devbench``: dev CA, agency keys, directory
entries, broker passwords) and ``transport.provision.provision``. Broker users are named
``<OrganId>.<vhost>`` so sandboxes in different vhosts never share a user. Those
users are removed on stop, the vhost only when this sandbox created it. Everything else stays
in the state folder, so a restart keeps the systemid, the secret and the keys.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from shlex import quote as shell_quote
from urllib.parse import quote

from edoc_axis.config.load import load_settings
from edoc_axis.config.render import write_config
from edoc_axis.config.settings import (
    ApiSettings,
    BrokerSettings,
    KeySettings,
    Settings,
    TrustSettings,
)
from edoc_axis.edxml.identifier import VN_TZ, format_date, make_document_id
from edoc_axis.edxml.model import (
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    PromulgationInfo,
    ResponseFor,
)
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.write import append_trace_header, build
from edoc_axis.errors import (
    BrokerUnavailable,
    ConfigError,
    EdocAxisError,
    ErrorCode,
    TemporaryFailure,
)
from edoc_axis.gateway.backend import HostedGateway, host
from edoc_axis.log import get_logger
from edoc_axis.node.folder_lock import exclusive
from edoc_axis.node.node import Node
from edoc_axis.node.runner import Runner
from edoc_axis.ops.devbench import (
    AGENCY_CERT,
    AGENCY_KEY,
    CA_CERT,
    CA_CRL,
    DEV_PASSWORDS,
    dev_identity,
    dev_password,
)
from edoc_axis.store.records import Pickup
from edoc_axis.transport import provision as broker
from edoc_axis.transport.topology import Topology

log = get_logger(__name__)

ADMIN_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
BROKER_ADDRESS = "127.0.0.1:5672"
DEFAULT_DIR = Path("edoc-sandbox")
DEFAULT_VHOST = "edoc-sandbox"
DEFAULT_PORT = 8470
INFO_FILE = "sandbox.json"  # present while the sandbox runs
LOCK_FILE = ".sandbox.lock"
SYSTEMID_FILE, SECRET_FILE = "dms.systemid", "dms.secret"
READY_TIMEOUT = 30.0
PEER_POLL_SECONDS = 0.2
_VHOST = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")  # also part of the broker user names


@dataclass(frozen=True, slots=True)
class Role:
    """One agency of the sandbox."""

    folder: str
    organ_id: str
    name: str


AGENCY = Role("agency", "000.00.00.Z01", "Cơ quan thử nghiệm (DMS của nhà cung cấp)")
PEER = Role("peer", "000.00.00.Z02", "Cơ quan đối tác (sandbox)")
REPLY_NOTATION = "SANDBOX-REPLY"
WELCOME_NOTATION = "SANDBOX-WELCOME"


@dataclass(frozen=True, slots=True)
class SandboxInfo:
    """What a DMS vendor needs to connect, as printed and written to ``sandbox.json``."""

    endpoint: str
    systemid: str
    secret_file: str
    agency: str
    agency_name: str
    peer: str
    peer_name: str
    vhost: str
    vhost_created: bool
    state_dir: str

    @property
    def selftest_command(self) -> str:
        """The ``edoc-axis dms selftest`` command line that checks this sandbox."""
        return (f"edoc-axis dms selftest --endpoint {self.endpoint} --systemid "
                f"{shell_quote(self.systemid)} --secret-file {shell_quote(self.secret_file)} "
                f"--from {self.agency} --to {self.peer}")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, with the selftest command."""
        return {**asdict(self), "selftest_command": self.selftest_command}


def free_port(port: int = 0) -> int:
    """``port`` if nobody listens on it on 127.0.0.1 (0: any free port); checked before the
    slow provisioning so a taken port fails at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the gateway binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"port {port} on 127.0.0.1 is taken ({exc.strerror}); choose "
                              "another with --port (0: any free port)",
                              code=ErrorCode.SANDBOX_PORT_BUSY) from exc
        return int(probe.getsockname()[1])


class Sandbox:
    """Provision and run the sandbox; use :meth:`running` (a context manager)."""

    def __init__(self, state_dir: Path, *, vhost: str = DEFAULT_VHOST,
                 port: int = DEFAULT_PORT) -> None:
        if not _VHOST.match(vhost):
            raise ConfigError(f"--vhost {vhost!r}: use 1-100 letters, digits, '.', '_' or '-'",
                              code=ErrorCode.SANDBOX_VHOST)
        self.dir = state_dir.expanduser().absolute()
        self.vhost = vhost
        self.port = free_port(port)
        self._created_vhost = False

    def user(self, role: Role) -> str:
        """The broker user of a sandbox agency (unique per vhost)."""
        return f"{role.organ_id}.{self.vhost}"

    @contextmanager
    def running(self, progress: Callable[[str], None] = lambda _: None) -> Iterator[SandboxInfo]:
        """Provision, start both nodes and the peer logic; stop and clean up on exit."""
        with self._exclusive():
            yield from self._run(progress)

    def _run(self, progress: Callable[[str], None]) -> Iterator[SandboxInfo]:
        nodes: list[Node] = []
        runners: list[Runner] = []
        hosted: HostedGateway | None = None
        responder: PeerResponder | None = None
        info_path = self.dir / INFO_FILE
        try:
            settings = self.provision(progress)
            progress(f"starting the nodes of {AGENCY.organ_id} and {PEER.organ_id}")
            agency_node = Node.from_settings(settings[AGENCY.folder])
            nodes.append(agency_node)
            peer_node = Node.from_settings(settings[PEER.folder])
            nodes.append(peer_node)
            agency_runner = Runner(agency_node)
            hosted = host(agency_node, agency_runner.link, force=True)
            if hosted is None:  # host(force=True) always serves; keeps the type checker honest
                raise ConfigError("the DMS gateway did not start", code=ErrorCode.SANDBOX_GATEWAY)
            runners.append(agency_runner.start())
            runners.append(Runner(peer_node).start())
            responder = PeerResponder(peer_node, AGENCY).start()
            self._await_ready(agency_node, runners)
            info = self._info(settings[AGENCY.folder], hosted.url)
            _write_text(info_path, json.dumps(info.to_dict(), ensure_ascii=False, indent=2))
            log.info("sandbox_started", endpoint=info.endpoint, vhost=self.vhost,
                     agency=AGENCY.organ_id, peer=PEER.organ_id)
            yield info
        finally:
            with suppress(FileNotFoundError):
                info_path.unlink()
            if responder is not None:
                responder.stop()
            if hosted is not None:
                hosted.stop()
            for runner in runners:
                runner.stop()
            for node in nodes:
                node.close()
            self._clean_broker(progress)
            log.info("sandbox_stopped", vhost=self.vhost, vhost_removed=self._created_vhost)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One sandbox per state folder: two would share the nodes' stores."""
        def refusal(pid: int | None) -> ConfigError:
            return ConfigError(f"another sandbox (pid {pid if pid else 'unknown'}) is running on "
                               f"{self.dir}; stop it or use another --dir",
                               code=ErrorCode.SANDBOX_RUNNING)

        with exclusive(self.dir / LOCK_FILE, refusal):
            yield

    # --- provisioning ----------------------------------------------------------------------

    def provision(self, progress: Callable[[str], None]) -> dict[str, Settings]:
        """Dev CA, both agencies (keys, directory, configs), the DMS system and the broker."""
        self.dir.mkdir(parents=True, exist_ok=True)
        progress(f"dev CA, agency keys and directory in {self.dir}")
        accounts: list[broker.BrokerAccount] = []
        settings: dict[str, Settings] = {}
        for role in (AGENCY, PEER):
            account = broker.BrokerAccount(
                role.organ_id, self.user(role), dev_password(self.dir / DEV_PASSWORDS,
                                                             self.user(role)))
            accounts.append(account)
            settings[role.folder] = self._node_settings(role, account)
        progress(f"broker vhost {self.vhost}: exchange, queues and users of both agencies")
        self._created_vhost = self.vhost not in broker.list_vhosts()
        broker.provision(ADMIN_URL, accounts, Topology(), self.vhost)
        return settings

    def _node_settings(self, role: Role, account: broker.BrokerAccount) -> Settings:
        data_dir = self.dir / role.folder
        ca_dir = self.dir / "ca"
        url = (f"amqp://{quote(account.user, safe='')}:{quote(account.password or '', safe='')}"
               f"@{BROKER_ADDRESS}/{quote(self.vhost, safe='')}")
        settings = Settings(
            organ_id=role.organ_id, data_dir=data_dir, broker=BrokerSettings(url=url),
            keys=KeySettings(key=data_dir / "keys" / AGENCY_KEY,
                             cert=data_dir / "keys" / AGENCY_CERT),
            trust=TrustSettings(anchors=(ca_dir / CA_CERT,), crls=(ca_dir / CA_CRL,)),
            directory_path=self.dir / "directory.toml",
            api=ApiSettings(listen=f"127.0.0.1:{self.port}"),
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        for note in dev_identity(settings, ca_dir, name=role.name):
            log.info("sandbox_provisioned", organ_id=role.organ_id, note=note)
        config = data_dir / "node.toml"
        write_config(config, settings, force=True)
        if role is AGENCY:
            systemid, secret_file = self._dms_system()
            with config.open("a", encoding="utf-8") as out:
                out.write(f"\n[[dms]]\nsystemid = {json.dumps(systemid)}\n"
                          f"secret_file = {json.dumps(str(secret_file))}\n"
                          f"organ_id = {json.dumps(role.organ_id)}\n")
        return load_settings(config, env={})

    def _dms_system(self) -> tuple[str, Path]:
        """The DMS system id and secret file, generated at the first start and kept."""
        systemid_path, secret_path = self.dir / SYSTEMID_FILE, self.dir / SECRET_FILE
        if not systemid_path.exists():
            _write_text(systemid_path, f"sandbox-{secrets.token_hex(4)}\n")
        if not secret_path.exists():
            _write_text(secret_path, secrets.token_urlsafe(32) + "\n")
        return systemid_path.read_text(encoding="utf-8").strip(), secret_path

    def _await_ready(self, agency_node: Node, runners: list[Runner]) -> None:
        """Ready: both nodes are connected to the broker and the welcome document (sent at the
        first start) has reached the agency, so the route between them works."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not (all(r.link.connected for r in runners)
                   and agency_node.store.inbox(kind="edoc", limit=1)):
            if time.monotonic() > deadline:
                raise TemporaryFailure(
                    f"the sandbox nodes did not connect and exchange the welcome document "
                    f"within {READY_TIMEOUT:.0f} s; is the broker at {BROKER_ADDRESS} healthy?",
                    code=ErrorCode.SANDBOX_NOT_READY)
            time.sleep(PEER_POLL_SECONDS)

    def _info(self, settings: Settings, url: str) -> SandboxInfo:
        system = settings.dms[0]
        return SandboxInfo(
            endpoint=url, systemid=system.systemid, secret_file=str(self.dir / SECRET_FILE),
            agency=AGENCY.organ_id, agency_name=AGENCY.name, peer=PEER.organ_id,
            peer_name=PEER.name, vhost=self.vhost, vhost_created=self._created_vhost,
            state_dir=str(self.dir))

    def _clean_broker(self, progress: Callable[[str], None]) -> None:
        """Remove the sandbox's users (named after the vhost, so nobody else's), and the vhost
        only when this sandbox created it."""
        try:
            if self._created_vhost:
                progress(f"removing broker vhost {self.vhost} (created by this sandbox)")
                broker.delete_vhost(self.vhost)
            for role in (AGENCY, PEER):
                with suppress(BrokerUnavailable):  # never provisioned: nothing to remove
                    broker.delete_user(self.user(role))
        except EdocAxisError as exc:
            log.warning("sandbox_cleanup_failed", vhost=self.vhost, error=str(exc))


class PeerResponder:
    """The peer's logic: 03 and a reply for every received document; statuses filed away."""

    def __init__(self, node: Node, counterpart: Role) -> None:
        self.node = node
        self.counterpart = counterpart
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sandbox-peer", daemon=True)

    def start(self) -> PeerResponder:
        """Send the welcome document (first start only), then answer in a thread."""
        if not self.node.store.packages(direction="out", kind="edoc", limit=1):
            self.node.submit(build(self._welcome()))
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering (the current answer finishes)."""
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(PEER_POLL_SECONDS):
            self.answer_pending()

    def answer_pending(self) -> int:
        """Answer every document not answered yet; file received statuses. How many answered."""
        store = self.node.store
        answered = 0
        for entry in store.inbox(pickup="new", kind="edoc"):
            pickup: Pickup
            try:
                self.node.set_status(entry.document_id, "03", to=entry.sender,
                                     description="Sandbox: đã tiếp nhận (accepted)")
                document = parse(store.body(entry.package_id), self.node.limits)
                if isinstance(document, DocumentPackage):
                    self.node.submit(build(self._reply(document, entry.id)))
                pickup, note = "done", "answered by the sandbox peer: 03 and a reply"
                answered += 1
            except EdocAxisError as exc:  # never retried in a loop: the log says why
                log.warning("sandbox_peer_answer_failed", package_id=entry.package_id,
                            error=str(exc))
                pickup, note = "fail", exc.code
            with store.transaction() as txn:
                txn.set_pickup(entry.package_id, pickup, note)
            log.info("sandbox_peer_answered", document_id=entry.document_id, pickup=pickup)
        for entry in store.inbox(pickup="new", kind="status"):
            with store.transaction() as txn:
                txn.set_pickup(entry.package_id, "done", "filed by the sandbox peer")
        return answered

    def _document(self, number: str, notation: str, subject: str,
                  to: Organization) -> DocumentPackage:
        today = format_date(datetime.now(VN_TZ).date())
        me = self.node.me
        document = DocumentPackage(
            sender=Organization(me.organ_id, me.name), recipients=[to],
            code=Code(number, notation), promulgation=PromulgationInfo("Hà Nội", today),
            document_type=DocumentType("1", "2", "Công văn"), subject=subject[:500],
            document_id=make_document_id(me.organ_id, today, number, notation))
        append_trace_header(document, me.organ_id)
        return document

    def _welcome(self) -> DocumentPackage:
        return self._document(
            "1", WELCOME_NOTATION, "Chào mừng đến hộp cát trục liên thông (welcome to the sandbox)",
            Organization(self.counterpart.organ_id, self.counterpart.name))

    def _reply(self, received: DocumentPackage, number: int) -> DocumentPackage:
        reply = self._document(str(number)[-11:], REPLY_NOTATION,
                               f"Trả lời: {received.subject}", received.sender)
        reply.response_for = [ResponseFor(
            organ_id=received.sender.organ_id,
            code=f"{received.code.number}/{received.code.notation}",
            promulgation_date=received.promulgation.date,
            document_id=received.document_id or "")]
        return reply


def _write_text(path: Path, text: str) -> None:
    """Write a small file atomically with mode 0600 (secrets, and files others poll for)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)
