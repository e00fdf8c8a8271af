"""The ``edoc-axis`` command line: the root group and the table of its commands.

Commands only parse arguments, load settings and call into the package; each command area is
one module here, imported only when one of its commands runs (or shows its ``--help``), so
``edoc-axis --help`` loads none of pika, signxml, lxml or the HTTP server. May import anything
but the store's internals (see the import contracts in setup.cfg). Exit codes: 0 ok,
1 failure, 2 usage, 65 invalid input, 69 broker unavailable, 78 configuration error.
"""

from __future__ import annotations

import click

from edoc_axis import __version__
from edoc_axis.cli.lazy import LazyCommand, LazyGroup

# name, where the command lives, and the first paragraph of its help (kept equal by a test).
COMMANDS = (
    LazyCommand("audit", "edoc_axis.cli.audit:audit_group",
                "The tamper-evident audit chain: every package and receipt, hash-linked and "
                "signed."),
    LazyCommand("broker", "edoc_axis.cli.broker:broker_group",
                "The axis on RabbitMQ: exchange edoc.axis, per agency a bounded quorum queue "
                "edoc.in.<OrganId>, a bounded dead-letter queue edoc.dead.<OrganId> (via "
                "edoc.dlx) and a user that may only publish to the axis and read its own "
                "queues."),
    LazyCommand("directory", "edoc_axis.cli.admin:directory_group",
                "List, show and check the agency directory (agencies, broker users, "
                "certificates)."),
    LazyCommand("dlq", "edoc_axis.cli.node:dlq_group",
                "This agency's dead-letter queue: refused or undeliverable messages."),
    LazyCommand("dms", "edoc_axis.cli.dms:dms_group",
                "Call a node's DMS gateway the way an agency's document system does."),
    LazyCommand("doctor", "edoc_axis.cli.doctor:doctor_command",
                "Check that this node can run: config, data dir, store, key and certificate "
                "(match, OrganId, expiry, listed fingerprint), trust anchors, CRLs, directory, "
                "broker and queue."),
    LazyCommand("inbox", "edoc_axis.cli.inbox:inbox_group",
                "Received documents and statuses, with their DMS pickup state."),
    LazyCommand("init", "edoc_axis.cli.admin:init_command",
                "Write a working node config for a new agency."),
    LazyCommand("package", "edoc_axis.cli.packages:package_group",
                "Build and inspect edXML packages."),
    LazyCommand("pki", "edoc_axis.cli.trust:pki_group",
                "Create a test/demo CA, issue agency signing certificates, revoke them, publish "
                "CRLs."),
    LazyCommand("run", "edoc_axis.cli.node:run_command",
                "Run the node: consume this agency's queue and relay its outbox until "
                "SIGTERM/SIGINT."),
    LazyCommand("sandbox", "edoc_axis.cli.sandbox:sandbox_command",
                "Run a sandbox axis on the local broker for testing a DMS against a node."),
    LazyCommand("send", "edoc_axis.cli.node:send_command",
                "Submit edXML package FILES for sending (validated, signed by policy, queued)."),
    LazyCommand("sign", "edoc_axis.cli.trust:sign_command",
                "Sign an unsigned edXML package (enveloped XML-DSig, last child of "
                "edXMLHeader)."),
    LazyCommand("status", "edoc_axis.cli.node:status_group",
                "Send business statuses about documents."),
    LazyCommand("track", "edoc_axis.cli.inbox:track_command",
                "Per-recipient state and status timeline of a sent document."),
    LazyCommand("validate", "edoc_axis.cli.packages:validate_command",
                "Check edXML packages: structure (XSD) and business rules, not signatures."),
    LazyCommand("verify", "edoc_axis.cli.trust:verify_command",
                "Verify a package's signature and its binding to From/OrganId."),
)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edoc-axis")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    envvar="EDOC_AXIS_LOG_LEVEL",
    help="How much to log (to stderr).",
)
@click.option(
    "--log-json/--log-text",
    default=None,
    help="Log as JSON lines or as text (default: text on a terminal, JSON otherwise).",
)
def main(log_level: str, log_json: bool | None) -> None:
    """edoc-axis: run and inspect a node of the national e-document interchange axis.

    Exit codes: 0 ok, 1 failure, 2 usage error, 65 invalid input, 69 broker unavailable,
    78 configuration error.
    """
    # Imported here, when a command runs: structlog alone costs ~50 ms, a third of the budget
    # of `edoc-axis --help`, which never logs.
    from edoc_axis.log import configure_logging

    configure_logging(log_level, json=log_json)
