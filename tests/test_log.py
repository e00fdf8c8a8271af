"""Structured logging: one JSON object per line, library records included."""

from __future__ import annotations

import io
import json
import logging

from edoc_axis.log import configure_logging, get_logger


def test_json_lines_include_stdlib_records() -> None:
    """structlog events and stdlib (library) records both come out as one JSON object a line."""
    out = io.StringIO()
    configure_logging("info", json=True, stream=out)
    get_logger("test").info("package_routed", package_id="p1", recipient="000.00.00.H41")
    logging.getLogger("some.library").warning("disk %s", "slow")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["event"] == "package_routed"
    assert lines[0]["recipient"] == "000.00.00.H41"
    assert lines[1] == {**lines[1], "event": "disk slow", "level": "warning"}
    assert lines[1]["logger"] == "some.library"


def test_pika_connection_noise_is_silenced_unless_debugging() -> None:
    """pika's per-attempt ERROR lines are dropped at info level; the transport logs them."""
    out = io.StringIO()
    configure_logging("info", json=True, stream=out)
    logging.getLogger("pika.adapters.utils.connection_workflow").error("connection refused")
    assert out.getvalue() == ""
    configure_logging("debug", json=True, stream=out)
    logging.getLogger("pika.adapters.utils.connection_workflow").error("connection refused")
    assert json.loads(out.getvalue().splitlines()[0])["event"] == "connection refused"
