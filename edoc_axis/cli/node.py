"""``edoc-axis run|send|status|dlq``: run a node, hand it packages and statuses, and work its
dead letters.

``send`` and ``status set`` write to the node's store and return at once: the running node
(``edoc-axis run``) relays what they queued, also when they ran while it or the broker was down.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from edoc_axis.cli.base import config_option, echo_json, json_option, reported_errors
from edoc_axis.cli.display import echo_table, jsonable
from edoc_axis.config.load import load_settings
from edoc_axis.config.settings import Settings
from edoc_axis.errors import EXIT_FAILURE, ConfigError, EdocAxisError, ErrorCode, NotFound
from edoc_axis.gateway.backend import host
from edoc_axis.node.folder_lock import node_folder
from edoc_axis.node.node import Node
from edoc_axis.node.runner import Runner, data_file
from edoc_axis.node.wiring import broker_endpoint, broker_topology
from edoc_axis.ops.doctor import password_refused
from edoc_axis.store import Store
from edoc_axis.transport.deadletter import dead_letters, replay_dead_letter

# --- run and send ------------------------------------------------------------------------------

START_WAIT_SECONDS = 15.0  # how long `run` waits for its first broker connection to open or fail


@click.command("run")
@config_option
def run_command(config_path: Path | None) -> None:
    """Run the node: consume this agency's queue and relay its outbox until SIGTERM/SIGINT.

    Received documents are stored and answered with a signed status 01; statuses update the
    tracking of sent documents. With [[dms]] systems in the config (or api.enabled), the DMS
    gateway (axis client protocol) is served on api.listen too. One node per data folder: a
    second `run` on it is refused (NODE_RUNNING, exit 1), and so is a start whose broker login
    is refused (BROKER_AUTH_FAILED, exit 78); a broker that cannot be reached is retried with
    backoff. Stops cleanly (gateway calls finished, pending confirms awaited briefly, store
    closed).
    """
    with reported_errors():
        settings = load_settings(config_path)
        with node_folder(settings.data_dir):  # one running node per data folder
            _run(settings)


def _run(settings: Settings) -> None:
    node = Node.from_settings(settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    runner = Runner(node)
    try:
        hosted = host(node, runner.link)  # before the Link: a busy port fails fast
    except EdocAxisError:
        node.close()
        raise
    runner.start()
    # Credentials the broker refuses will not work on the next try either: refuse to start.
    # A broker that cannot be reached now may be back soon: keep retrying, the outbox waits.
    failure = runner.link.wait_started(START_WAIT_SECONDS)
    if isinstance(failure, ConfigError):
        if hosted is not None:
            hosted.stop()
        runner.stop()
        node.close()
        if failure.code == ErrorCode.BROKER_AUTH_FAILED and not settings.broker.certificate_login:
            # why, as doctor says it: the password against the bench's provisioned one
            raise ConfigError(password_refused(settings), code=failure.code) from failure
        raise failure
    if failure is not None:
        click.echo(f"warning: {failure} (retrying; the outbox waits)", err=True)
    click.echo(f"node {settings.organ_id} running (store {settings.store_path})", err=True)
    if hosted is not None:
        click.echo(f"DMS gateway on {hosted.url} ({len(settings.dms)} system(s))", err=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        if hosted is not None:
            hosted.stop()
        runner.stop()
        node.close()
    click.echo(f"node {settings.organ_id} stopped", err=True)


@click.command("send")
@config_option
@json_option
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def send_command(config_path: Path | None, as_json: bool, files: tuple[Path, ...]) -> None:
    """Submit edXML package FILES for sending (validated, signed by policy, queued).

    Prints the package id and recipients of each. Works while the node or the broker is down:
    the running node relays queued packages. A package already submitted is not sent twice
    (the original id is printed, marked duplicate).
    """
    with reported_errors():
        node = Node.from_settings(load_settings(config_path))
    failure: EdocAxisError | None = None
    results: list[dict[str, Any]] = []
    try:
        for path in files:
            try:
                result = node.submit(data_file(path))
            except EdocAxisError as exc:
                failure = exc
                click.echo(f"error: {path}: {exc}", err=True)
                results.append({"file": str(path), "error": exc.to_dict()})
                continue
            results.append({"file": str(path), **result.to_dict()})
            if not as_json:
                mark = " (duplicate: already submitted)" if result.duplicate else ""
                click.echo(f"{result.package_id}  {result.document_id}  -> "
                           f"{', '.join(result.recipients)}{mark}")
    finally:
        node.close()
    if as_json:
        echo_json(results)
    if failure is not None:
        sys.exit(failure.exit_code if len(files) == 1 else EXIT_FAILURE)


# --- status ----------------------------------------------------------------------------------


@click.group("status")
def status_group() -> None:
    """Send business statuses about documents."""


@status_group.command("set")
@config_option
@click.argument("document_id")
@click.argument("code", type=click.Choice(["02", "03", "04", "05", "06", "13", "15", "16"]))
@click.option("--to", "to", help="Only this counterpart agency (OrganId).")
@click.option("--description", help="Free text carried in the status (Description).")
def status_set(config_path: Path | None, document_id: str, code: str, to: str | None,
               description: str | None) -> None:
    """Send status CODE about DOCUMENT_ID: 02-06, 15, 16 to the document's sender (as a
    recipient), 13 (take back) to every recipient or --to (as the sender)."""
    with reported_errors():
        node = Node.from_settings(load_settings(config_path))
        try:
            results = node.set_status(document_id, code, description=description, to=to)
        finally:
            node.close()
    for r in results:
        mark = " (already sent; not repeated)" if r.duplicate else ""
        click.echo(f"{r.package_id}  status {code} -> {', '.join(r.recipients)}{mark}")


# --- dead letters ------------------------------------------------------------------------------


@click.group("dlq")
def dlq_group() -> None:
    """This agency's dead-letter queue: refused or undeliverable messages."""


@dlq_group.command("list")
@config_option
@json_option
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
def dlq_list(config_path: Path | None, as_json: bool, limit: int) -> None:
    """Peek at dead letters (nothing is removed), with the node's recorded reason."""
    with reported_errors():
        settings = load_settings(config_path)
        letters = dead_letters(broker_endpoint(settings), broker_topology(settings),
                               settings.organ_id, limit)
        reasons = _reasons(settings)
    rows = [{"message_id": d.message_id, "user_id": d.user_id, "type": d.type,
             "death": d.reason, "count": d.count, "size": len(d.body),
             "rejection": reasons.get(d.message_id or "")} for d in letters]
    if as_json:
        echo_json(rows)
        return
    echo_table(("MESSAGE", "DEATH", "COUNT", "USER", "BYTES", "NODE'S REASON"),
               [(row["message_id"], row["death"] or "-", row["count"], row["user_id"] or "-",
                 row["size"], row["rejection"] or "-") for row in rows],
               empty="no dead letters")


@dlq_group.command("show")
@config_option
@click.argument("message_id")
@click.option("--body", is_flag=True, help="Write the message bytes to stdout instead.")
def dlq_show(config_path: Path | None, message_id: str, body: bool) -> None:
    """Show one dead letter as JSON: headers (x-death with its times in Vietnam time, +07:00),
    death reason and why the node refused it."""
    with reported_errors():
        settings = load_settings(config_path)
        letters = dead_letters(broker_endpoint(settings), broker_topology(settings),
                               settings.organ_id, 10_000)
        found = [d for d in letters if d.message_id == message_id]
        if not found:
            raise NotFound(f"no dead letter with message id {message_id}")
        reasons = _reasons(settings)
    letter = found[0]
    if body:
        sys.stdout.buffer.write(letter.body)
        return
    echo_json({"message_id": letter.message_id, "user_id": letter.user_id, "type": letter.type,
                "routing_key": letter.routing_key, "death": letter.reason,
                "queue": letter.queue, "count": letter.count, "size": len(letter.body),
                "rejection": reasons.get(message_id),
                "headers": jsonable(letter.headers)})


@dlq_group.command("replay")
@config_option
@click.argument("message_id")
def dlq_replay(config_path: Path | None, message_id: str) -> None:
    """Put a dead letter back on this agency's queue (after fixing the cause)."""
    with reported_errors():
        settings = load_settings(config_path)
        if not replay_dead_letter(broker_endpoint(settings), broker_topology(settings),
                                  settings.organ_id, message_id, settings.broker.user):
            raise NotFound(f"no dead letter with message id {message_id}")
        node = Node.from_settings(settings)
        try:
            node.note_replayed(message_id)  # the audit chain records the operator's replay
        finally:
            node.close()
    click.echo(f"replayed {message_id}")


def _reasons(settings: Settings) -> dict[str, str]:
    store = Store(settings.store_path)
    try:
        return {r.message_id: f"{r.code}: {r.reason}" for r in store.rejections(limit=100_000)
                if r.message_id}
    finally:
        store.close()

