"""Soak: agencies exchange a large stream of documents while the broker restarts and nodes die.

The scenario of ``tests/test_resilience.py`` at a larger scale, set up the way an administrator
would (``edoc-axis pki init-ca``, ``init --dev``, ``broker provision`` in a vhost of its own,
nodes as ``edoc-axis run`` processes). A background stream submits multi-recipient documents
with ``edoc-axis send``; meanwhile the RabbitMQ application is restarted (``rabbitmqctl
stop_app``/``start_app``) and nodes are killed with SIGKILL and started again, spread evenly over
the stream. Then every inbox and every receipt log is reconciled with what was sent, and a
report is printed: sent, delivered per recipient, receipts, duplicates suppressed, dead letters
with reasons. Exit status 1 on any discrepancy (or when the time budget runs out), 0 otherwise.

    .venv/bin/python scripts/soak_node.py --agencies 4 --documents 1200 --broker-restarts 2 \
        --node-kills 3

Restarting the RabbitMQ application disconnects every client of the machine's broker.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from edoc_axis.config.load import load_settings
from edoc_axis.edxml.model import Code, DocumentPackage, Organization
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.write import build
from edoc_axis.errors import EdocAxisError
from edoc_axis.store import Store
from edoc_axis.transport.deadletter import dead_letters
from edoc_axis.transport.provision import check_queues
from edoc_axis.transport.topology import Topology

ROOT = Path(__file__).resolve().parent.parent
EDOC = [sys.executable, "-m", "edoc_axis"]
ORGAN_IDS = ("000.00.00.G22", "000.00.00.H41", "000.00.00.H42", "000.00.00.G12",
             "000.00.00.H29", "000.00.00.H57")
TOPOLOGY = Topology()


class SoakFailed(Exception):
    """The scenario could not run (setup, a fault, or the time budget)."""


def run(*args: str, timeout: float = 120) -> str:
    """Run a command; raise SoakFailed with its output when it fails."""
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        raise SoakFailed(f"`{' '.join(args[:4])} ...` exit {done.returncode}: "
                         f"{done.stderr.strip()[-800:]}")
    return done.stdout


def tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def wait_for(what: str, condition: Callable[[], Any], deadline: float,
             interval: float = 0.1) -> Any:
    """Poll ``condition`` until truthy; SoakFailed at the (monotonic) deadline."""
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SoakFailed(f"timed out waiting for {what}")
        time.sleep(interval)


# --- the axis ----------------------------------------------------------------------------------


@dataclass
class NodeProc:
    """One agency's `edoc-axis run` process."""

    organ_id: str
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDOC_AXIS_")}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*EDOC, "--log-json", "--log-level", "info", "run", "-c", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)
        self.proc = None

    def terminate(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)
        finally:
            self.proc = None

    def store(self) -> Store:
        return Store(load_settings(self.config, env={}).store_path)


@dataclass
class Axis:
    """The soak's agencies, vhost and nodes."""

    work: Path
    vhost: str
    users: dict[str, str]
    nodes: dict[str, NodeProc] = field(default_factory=dict)

    @property
    def admin_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:5672/{quote(self.vhost, safe='')}"


def set_up(work: Path, organ_ids: tuple[str, ...]) -> Axis:
    """A dev CA, one node config per agency, the directory, and the broker topology."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run_id = uuid.uuid4().hex[:8]
    axis = Axis(work, f"edoc-soak-{run_id}",
                {o: f"soak-{run_id}-{o}" for o in organ_ids})
    directory = work / "directory.toml"
    passwords = work / "broker-passwords"
    secret = {o: secrets.token_urlsafe(18) for o in organ_ids}
    passwords.write_text("".join(f"{axis.users[o]}={secret[o]}\n" for o in organ_ids),
                         encoding="utf-8")
    passwords.chmod(0o600)
    run(*EDOC, "pki", "init-ca", "--out", str(work / "ca"))
    for organ_id in organ_ids:
        url = (f"amqp://{quote(axis.users[organ_id], safe='')}:{secret[organ_id]}"
               f"@127.0.0.1:5672/{quote(axis.vhost, safe='')}")
        run(*EDOC, "init", "--dev", "--organ-id", organ_id, "--name", f"Cơ quan {organ_id}",
            "--data-dir", str(work / organ_id), "--ca", str(work / "ca"),
            "--directory", str(directory), "--broker-url", url)
        axis.nodes[organ_id] = NodeProc(organ_id, work / organ_id / "node.toml",
                                        work / organ_id / "node.log")
    run(tool("rabbitmqctl"), "-q", "add_vhost", axis.vhost)
    run(tool("rabbitmqctl"), "-q", "set_permissions", "-p", axis.vhost, "guest",
        ".*", ".*", ".*")
    run(*EDOC, "broker", "provision", "--directory", str(directory), "--passwords",
        str(passwords), "--vhost", axis.vhost)
    return axis


def tear_down(axis: Axis) -> None:
    for node in axis.nodes.values():
        if node.proc is not None:
            node.proc.kill()
            node.proc.wait(10)
    subprocess.run([tool("rabbitmqctl"), "-q", "delete_vhost", axis.vhost],
                   capture_output=True, timeout=120, check=False)
    for user in axis.users.values():
        subprocess.run([tool("rabbitmqctl"), "-q", "delete_user", user], capture_output=True,
                       timeout=60, check=False)


# --- documents and the stream -----------------------------------------------------------------


def templates(axis: Axis) -> dict[str, DocumentPackage]:
    """One document per sender, built with `edoc-axis package new` (with an attachment)."""
    attachment = axis.work / "cong-van.txt"
    attachment.write_text("Công văn thử nghiệm trục liên thông (soak).\n" * 40, encoding="utf-8")
    made = {}
    for organ_id in axis.nodes:
        others = [a for o in axis.nodes if o != organ_id for a in ("--to", o)]
        path = axis.work / organ_id / "template.edxml"
        run(*EDOC, "package", "new", "--from", organ_id, "--from-name", f"Cơ quan {organ_id}",
            *others, "--subject", "Về việc thử nghiệm độ bền của trục liên thông",
            "--code-number", "1", "--code-notation", "SOAK-TTĐT", "--place", "Hà Nội",
            "--date", "2024/05/06", "--attach", str(attachment), "-o", str(path))
        pkg = parse(path.read_bytes())
        assert isinstance(pkg, DocumentPackage)
        made[organ_id] = pkg
    return made


@dataclass(frozen=True)
class Sent:
    """One submitted document."""

    sender: str
    document_id: str
    recipients: tuple[str, ...]


class Stream:
    """Submits the documents with `edoc-axis send`, ``chunk`` files per command, in a thread."""

    def __init__(self, axis: Axis, documents: int, chunk: int, seed: int) -> None:
        self.axis = axis
        self.sent: list[Sent] = []
        self.errors: list[str] = []
        self.submitted = 0
        self.total = documents
        rng = random.Random(seed)
        senders = list(axis.nodes)
        base = templates(axis)
        self.plan: list[tuple[str, list[bytes]]] = []
        number = 0
        while number < documents:
            sender = senders[len(self.plan) % len(senders)]
            others = [o for o in senders if o != sender]
            bodies = []
            for _ in range(min(chunk, documents - number)):
                number += 1
                recipients = rng.sample(others, rng.randint(1, len(others)))
                bodies.append(document(base[sender], recipients, number))
            self.plan.append((sender, bodies))
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def start(self) -> Stream:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        for index, (sender, bodies) in enumerate(self.plan):
            node = self.axis.nodes[sender]
            folder = node.config.parent / "outgoing"
            folder.mkdir(exist_ok=True)
            files = []
            for n, body in enumerate(bodies):
                path = folder / f"chunk{index:04d}-{n:03d}.edxml"
                path.write_bytes(body)
                files.append(str(path))
            out = subprocess.run([*EDOC, "send", "--json", "-c", str(node.config), *files],
                                 capture_output=True, text=True, timeout=300, check=False)
            if out.returncode != 0:
                self.errors.append(f"send at {sender}: exit {out.returncode}: {out.stderr}")
                continue
            for result in json.loads(out.stdout):
                if result.get("duplicate"):
                    self.errors.append(f"send at {sender}: unexpected duplicate {result}")
                self.sent.append(Sent(sender, str(result["document_id"]),
                                      tuple(result["recipients"])))
            self.submitted += len(bodies)


def document(template: DocumentPackage, recipients: list[str], number: int) -> bytes:
    """The template with its own number, DocumentId and recipients."""
    template.code = Code(str(number), "SOAK-TTĐT")
    template.document_id = (f"{template.sender.organ_id},{template.promulgation.date},"
                            f"{number}/SOAK-TTĐT")
    template.recipients = [Organization(r, f"Cơ quan {r}") for r in recipients]
    return build(template)


# --- faults ------------------------------------------------------------------------------------


def restart_broker(axis: Axis, deadline: float) -> float:
    """stop_app, start_app, then wait for the node and every axis queue (quorum leaders)."""
    started = time.monotonic()
    run(tool("rabbitmqctl"), "-q", "stop_app", timeout=180)
    run(tool("rabbitmqctl"), "-q", "start_app", timeout=180)
    wait_for("rabbitmq running", lambda: subprocess.run(
        [tool("rabbitmq-diagnostics"), "-q", "check_running"], capture_output=True,
        timeout=60, check=False).returncode == 0, deadline, 0.5)

    def queues_up() -> bool:
        try:
            check_queues(axis.admin_url, TOPOLOGY, list(axis.nodes))
        except EdocAxisError:
            return False
        return True

    wait_for("axis queues after the restart", queues_up, deadline, 0.3)
    return time.monotonic() - started


def stored_documents(axis: Axis) -> int:
    total = 0
    for node in axis.nodes.values():
        store = node.store()
        total += store.count("inbox")
        store.close()
    return total


def inject_faults(axis: Axis, stream: Stream, *, restarts: int, kills: int, seed: int,
                  deadline: float) -> list[str]:
    """Spread broker restarts and SIGKILLs evenly over the stream; returns what was done."""
    faults = ["restart"] * restarts + ["kill"] * kills
    random.Random(seed).shuffle(faults)
    victims = list(axis.nodes)
    done: list[str] = []
    for index, fault in enumerate(faults):
        mark = stream.total * (index + 1) // (len(faults) + 1)
        def reached(m: int = mark) -> bool:
            return stream.submitted >= m or not stream.alive()

        wait_for(f"{mark} documents submitted", reached, deadline)
        if fault == "restart":
            seconds = restart_broker(axis, deadline)
            done.append(f"broker app restarted at {stream.submitted} submitted "
                        f"(back in {seconds:.1f} s)")
        else:
            victim = axis.nodes[victims[index % len(victims)]]
            before = stored_documents(axis)
            victim.kill()
            # Down while the others keep sending to it: wait for some traffic elsewhere.
            def moved(b: int = before) -> bool:
                return stored_documents(axis) >= b + 20 or not stream.alive()

            wait_for("traffic while a node is down", moved, deadline)
            victim.start()
            done.append(f"SIGKILL {victim.organ_id} at {stream.submitted} submitted, restarted")
    return done


# --- reconciliation ----------------------------------------------------------------------------


def receipts_complete(axis: Axis, sent: list[Sent]) -> bool:
    expected = Counter(s.sender for s in sent for _ in s.recipients)
    for organ_id, node in axis.nodes.items():
        store = node.store()
        arrived = sum(1 for d in store.deliveries(limit=10_000_000) if d.state == "arrived")
        store.close()
        if arrived < expected[organ_id]:
            return False
    return True


def log_counts(node: NodeProc) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in node.log.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        counts[str(event.get("event"))] += 1
        if event.get("event") == "broker_link_ready" and event.get("republishing"):
            counts["republishing_after_reconnect"] += int(event["republishing"])
    return counts


def reconcile(axis: Axis, sent: list[Sent]) -> list[str]:
    """Print the report; return the discrepancies."""
    problems: list[str] = []
    expected_in = {o: {(s.document_id, s.sender) for s in sent if o in s.recipients}
                   for o in axis.nodes}
    expected_out = {o: {(s.document_id, r) for s in sent if s.sender == o for r in s.recipients}
                    for o in axis.nodes}
    deliveries_total = sum(len(s.recipients) for s in sent)
    print(f"\nsent: {len(sent)} documents, {deliveries_total} deliveries "
          f"({deliveries_total / max(len(sent), 1):.2f} recipients per document)")
    header = (f"{'agency':<15}{'sent':>6}{'expect in':>10}{'inbox':>7}{'missing':>8}"
              f"{'twice':>6}{'extra':>6}{'01 due':>8}{'01 ok':>7}{'01 twice':>9}"
              f"{'dups':>6}{'links':>6}{'repub':>6}{'rejects':>8}{'fail':>5}")
    print(header)
    for organ_id, node in axis.nodes.items():
        store = node.store()
        inbox = Counter((e.document_id, e.sender)
                        for e in store.inbox(kind="edoc", limit=10_000_000))
        receipts = Counter((e.document_id, e.sender)
                           for e in store.inbox(kind="status", limit=10_000_000)
                           if e.status_code == "01")
        deliveries = store.deliveries(limit=10_000_000)
        arrived = {(d.document_id, d.recipient) for d in deliveries if d.state == "arrived"}
        not_arrived = [(d.document_id, d.recipient, d.state, d.reason) for d in deliveries
                       if d.state != "arrived"]
        rejections = store.rejections(limit=100_000)
        outbox = store.outbox_counts()
        store.close()
        counts = log_counts(node)
        missing = expected_in[organ_id] - set(inbox)
        extra = set(inbox) - expected_in[organ_id]
        twice = [k for k, n in inbox.items() if n > 1]
        receipts_twice = [k for k, n in receipts.items() if n > 1]
        receipts_missing = expected_out[organ_id] - arrived
        sent_here = sum(1 for s in sent if s.sender == organ_id)
        print(f"{organ_id:<15}{sent_here:>6}{len(expected_in[organ_id]):>10}{len(inbox):>7}"
              f"{len(missing):>8}{len(twice):>6}{len(extra):>6}"
              f"{len(expected_out[organ_id]):>8}{len(expected_out[organ_id] & arrived):>7}"
              f"{len(receipts_twice):>9}{counts['duplicate_received']:>6}"
              f"{counts['broker_link_ready']:>6}{counts['republishing_after_reconnect']:>6}"
              f"{len(rejections):>8}{outbox['failed']:>5}")
        for label, items in (("missing from inbox", missing), ("stored twice", twice),
                             ("not sent to it", extra),
                             ("receipt 01 missing", receipts_missing),
                             ("receipt 01 stored twice", receipts_twice)):
            if items:
                problems.append(f"{organ_id}: {len(items)} {label}, e.g. {sorted(items)[:3]}")
        if not_arrived:
            problems.append(f"{organ_id}: {len(not_arrived)} deliveries not arrived, e.g. "
                            f"{not_arrived[:3]}")
        if outbox["failed"] or outbox["pending"]:
            problems.append(f"{organ_id}: outbox {outbox}")
        for r in rejections:
            problems.append(f"{organ_id}: rejected {r.message_id} from {r.identified_sender}: "
                            f"{r.code} {r.reason}")
    print("\ndead letters:")
    explained_none = True
    for organ_id in axis.nodes:
        letters = dead_letters(axis.admin_url, TOPOLOGY, organ_id, limit=10_000)
        reasons = Counter(f"{d.reason} ({d.type})" for d in letters)
        print(f"  {organ_id}: {len(letters)} {dict(reasons) if letters else ''}")
        for letter in letters:
            explained_none = False
            problems.append(f"{organ_id}: dead letter {letter.message_id} type {letter.type} "
                            f"reason {letter.reason} (count {letter.count})")
    if explained_none:
        print("  (none: every message was stored or answered)")
    print("\ncolumns: expect in = documents addressed to the agency; 01 due/ok = receipts "
          "expected/recorded at the sender; dups = duplicate deliveries recognised and "
          "answered again (not stored twice); links = broker connections made (the first, "
          "after reconnects and after restarts of the node); repub = messages republished "
          "after a reconnect")
    return problems


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agencies", type=int, default=4, choices=range(2, len(ORGAN_IDS) + 1))
    parser.add_argument("--documents", type=int, default=1200)
    parser.add_argument("--chunk", type=int, default=40, help="files per `edoc-axis send`")
    parser.add_argument("--broker-restarts", type=int, default=2)
    parser.add_argument("--node-kills", type=int, default=3)
    parser.add_argument("--time-budget", type=float, default=900, help="seconds in all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "soak")
    parser.add_argument("--keep", action="store_true", help="keep the vhost and users")
    return soak(parser.parse_args())


def soak(args: argparse.Namespace) -> int:
    """Set up, stream with faults, reconcile, report; 1 on any discrepancy."""
    deadline = time.monotonic() + args.time_budget
    started = time.monotonic()
    organ_ids = ORGAN_IDS[:args.agencies]
    print(f"soak: {args.agencies} agencies, {args.documents} documents, "
          f"{args.broker_restarts} broker restarts, {args.node_kills} node kills", flush=True)
    axis = set_up(args.work.absolute(), organ_ids)
    problems: list[str] = []
    stream: Stream | None = None
    try:
        for node in axis.nodes.values():
            node.start()
        stream = Stream(axis, args.documents, args.chunk, args.seed)
        print(f"setup done in {time.monotonic() - started:.1f} s; streaming", flush=True)
        stream_started = time.monotonic()
        stream.start()
        for line in inject_faults(axis, stream, restarts=args.broker_restarts,
                                  kills=args.node_kills, seed=args.seed, deadline=deadline):
            print(f"  fault: {line}", flush=True)
        wait_for("the stream to finish", lambda: not stream.alive(), deadline, 0.2)
        submitted_in = time.monotonic() - stream_started
        problems += stream.errors
        wait_for("every receipt at every sender",
                 lambda: receipts_complete(axis, stream.sent), deadline, 0.5)
        settled_in = time.monotonic() - stream_started
        print(f"stream submitted in {submitted_in:.1f} s; all receipts after "
              f"{settled_in:.1f} s", flush=True)
        for organ_id, node in axis.nodes.items():
            code = node.terminate()
            if code != 0:
                problems.append(f"{organ_id}: `edoc-axis run` exit {code} on SIGTERM")
        problems += reconcile(axis, stream.sent)
    except SoakFailed as exc:
        problems.append(str(exc))
        try:
            problems += reconcile(axis, stream.sent if stream else [])
        except Exception as inner:  # report what we can
            problems.append(f"reconciliation failed: {inner!r}")
    finally:
        if not args.keep:
            tear_down(axis)
        else:
            for node in axis.nodes.values():
                node.terminate()
    print(f"\ntotal {time.monotonic() - started:.1f} s; state under {axis.work}")
    if problems:
        print(f"\nDISCREPANCIES ({len(problems)}):")
        for problem in problems[:50]:
            print(f"  - {problem}")
        return 1
    print("\nOK: every document in every intended inbox exactly once, every receipt at every "
          "sender exactly once, no dead letters.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
