"""Live demo: three agencies exchange a document over the local RabbitMQ and receipts flow back.

Run through ``scripts/demo`` (which installs what is missing first). Every step is an
``edoc-axis`` command, printed before it runs, so the demo doubles as a walkthrough of the CLI:

1. a development CA and three agencies (keys, certificates, node configs, agency directory);
2. the broker topology and one broker user per agency, in a vhost of the demo's own;
3. three nodes started as separate processes;
4. the Government Office sends one document with an attachment to two agencies;
5. both recipients store it and answer with a signed status 01 (arrived);
6. one recipient's clerk registers it: status 03 (accepted) flows back;
7. the sender's timeline and audit trail are shown and verified; the nodes stop cleanly.

State lives under ``var/demo`` and is recreated on every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EDOC = str(Path(sys.executable).parent / "edoc-axis")
VHOST = "edoc-demo"
AGENCIES = {
    "000.00.00.G22": "Văn phòng Chính phủ",
    "000.00.00.H41": "Ủy ban nhân dân tỉnh Nghệ An",
    "000.00.00.G12": "Bộ Thông tin và Truyền thông",
}
SENDER, *RECIPIENTS = AGENCIES


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def edoc(*args: str, capture: bool = False) -> str:
    """Run one edoc-axis command, echoing it; stop the demo on failure."""
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"$ edoc-axis {shown}", flush=True)
    done = subprocess.run([EDOC, *args], text=True, capture_output=capture, check=False)
    if done.returncode != 0:
        if capture:
            sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"demo: `edoc-axis {shown}` failed with exit {done.returncode}")
    return done.stdout if capture else ""


def rabbitmqctl(*args: str) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([exe, "-q", *args], check=False, capture_output=True, timeout=120)


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.3)
    raise SystemExit(f"demo: timed out waiting for {what}")


def config_of(work: Path, organ_id: str) -> str:
    return str(work / organ_id / "node.toml")


def inbox(work: Path, organ_id: str, kind: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [EDOC, "inbox", "list", "-c", config_of(work, organ_id), "--json", "--kind", kind],
        text=True, capture_output=True, check=False,
    )
    return list(json.loads(out.stdout)) if out.returncode == 0 and out.stdout.strip() else []


def track(work: Path, document_id: str) -> list[dict[str, Any]]:
    """The sender's deliveries of a document: one row per recipient with state and history."""
    out = subprocess.run(
        [EDOC, "track", document_id, "-c", config_of(work, SENDER), "--json"],
        text=True, capture_output=True, check=False,
    )
    return list(json.loads(out.stdout)) if out.returncode == 0 and out.stdout.strip() else []


def recipient_states(deliveries: list[dict[str, Any]]) -> dict[str, str]:
    return {str(row["recipient"]): str(row["state"]) for row in deliveries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "demo")
    work: Path = parser.parse_args().work.absolute()

    step("1. A development CA and three agencies")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    directory = work / "directory.toml"
    passwords = work / "broker-passwords"  # init --dev writes each agency's broker password here
    edoc("pki", "init-ca", "--out", str(work / "ca"))
    for organ_id, name in AGENCIES.items():
        # Broker users get this bench's prefix (dev-<hex>.<OrganId>): users are global to the
        # broker, and another bench provisioning the same agencies must not reset them.
        edoc("init", "--dev", "--organ-id", organ_id, "--name", name,
             "--data-dir", str(work / organ_id), "--ca", str(work / "ca"),
             "--directory", str(directory), "--vhost", VHOST)
    edoc("directory", "list", "-f", str(directory))

    step("2. The broker: exchange, one quorum queue and one user per agency")
    rabbitmqctl("delete_vhost", VHOST)
    rabbitmqctl("add_vhost", VHOST)
    edoc("broker", "provision", "--directory", str(directory), "--passwords", str(passwords),
         "--vhost", VHOST)
    edoc("doctor", "--config", config_of(work, SENDER))

    step("3. Three nodes, each its own process")
    nodes: dict[str, subprocess.Popen[bytes]] = {}
    for organ_id in AGENCIES:
        log = (work / organ_id / "node.log").open("wb")
        nodes[organ_id] = subprocess.Popen(
            [EDOC, "--log-json", "--log-level", "info", "run", "-c", config_of(work, organ_id)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        print(f"   node {organ_id} started (pid {nodes[organ_id].pid}, log {log.name})")
    try:
        exchange(work)
    finally:
        step("7. Stopping the nodes (SIGTERM)")
        for proc in nodes.values():
            proc.send_signal(signal.SIGTERM)
        for organ_id, proc in nodes.items():
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            print(f"   node {organ_id} stopped, exit {code}")
    print("\nDemo complete. State, logs and packages are under", work)


def exchange(work: Path) -> None:
    step("4. The Government Office sends a document with an attachment to two agencies")
    attachment = work / "cong-van-123.txt"
    attachment.write_text(
        "Công văn số 123/VPCP-TTĐT về việc triển khai trục liên thông văn bản quốc gia.\n",
        encoding="utf-8",
    )
    document = work / "document.edxml"
    to_args = [arg for organ_id in RECIPIENTS for arg in ("--to", organ_id)]
    edoc("package", "new", "--from", SENDER, "--from-name", AGENCIES[SENDER], *to_args,
         "--subject", "Về việc triển khai trục liên thông văn bản quốc gia",
         "--code-number", "123", "--code-notation", "VPCP-TTĐT", "--place", "Hà Nội",
         "--attach", str(attachment), "-o", str(document))
    edoc("package", "show", str(document))
    sent = json.loads(edoc("send", "-c", config_of(work, SENDER), "--json", str(document),
                           capture=True))
    result = sent[0] if isinstance(sent, list) else sent
    document_id = str(result["document_id"])
    print(f"   submitted: document {document_id} to {', '.join(result['recipients'])}")

    step("5. Arrivals, and status 01 (arrived) flowing back to the sender")
    for organ_id in RECIPIENTS:
        wait_for(f"the document at {organ_id}", lambda o=organ_id: inbox(work, o, "edoc"))
        print(f"   {organ_id}: document stored in its inbox")
    def all_arrived() -> bool:
        states = recipient_states(track(work, document_id))
        return bool(states) and all(s not in ("queued", "sent") for s in states.values())

    wait_for("status 01 from every recipient", all_arrived)
    edoc("inbox", "list", "-c", config_of(work, RECIPIENTS[0]))
    edoc("track", document_id, "-c", config_of(work, SENDER))

    step("6. The clerk at Nghệ An registers the document: status 03 (accepted)")
    edoc("status", "set", document_id, "03", "-c", config_of(work, RECIPIENTS[0]),
         "--description", "Văn thư đã tiếp nhận, vào sổ")
    wait_for("status 03 at the sender", lambda: recipient_states(
        track(work, document_id)).get(RECIPIENTS[0]) == "accepted")
    edoc("track", document_id, "-c", config_of(work, SENDER))

    step("6b. The sender's tamper-evident receipt log: the trail, then a full verification")
    edoc("audit", "trail", document_id, "-c", config_of(work, SENDER))
    edoc("audit", "verify", "-c", config_of(work, SENDER))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
