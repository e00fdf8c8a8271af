"""`edoc-axis dlq list|show` as an operator reads them: a header row, "no dead letters" when
there are none, and x-death as JSON (issue 13 item 8)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import pika
import pytest
from conftest import EDOC_AXIS_EXE, Axis, build_edxml_document

from edoc_axis.node.node import Node
from edoc_axis.node.runner import Runner
from edoc_axis.transport.provision import check_queues
from edoc_axis.transport.topology import Topology

G22, H41, H42 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H42"
VIETNAM_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00")


def edoc_axis(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``edoc-axis`` as a person would, in its own process."""
    return subprocess.run([*EDOC_AXIS_EXE, *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.fixture
def h41(axis: Axis) -> Iterator[Node]:
    """H41's node running on the test axis."""
    node = Node.from_settings(axis.settings(H41))
    runner = Runner(node).start()
    yield node
    runner.stop()
    node.close()


@pytest.mark.broker
def test_dlq_list_and_show_read_as_tables_and_json(axis: Axis, h41: Node) -> None:
    """An empty DLQ says so; a dead letter is listed under a header; `show` is JSON throughout."""
    config = str(axis.config(H41))
    empty = edoc_axis("dlq", "list", "-c", config)
    assert (empty.returncode, empty.stdout) == (0, "no dead letters\n")
    connection = pika.BlockingConnection(pika.URLParameters(axis.url(H42)))
    try:  # no user_id: H41 refuses it (SENDER_NO_USER_ID) into its dead-letter queue
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("edoc.axis", H41, build_edxml_document(G22, H41), mandatory=True,
                              properties=pika.BasicProperties(message_id="anonymous-1",
                                                              type="edoc", delivery_mode=2))
    finally:
        connection.close()
    dead, deadline = Topology().dead_queue_for(H41), time.monotonic() + 20
    while check_queues(axis.admin_url, Topology(), [H41])[dead] < 1:
        assert time.monotonic() < deadline, "no dead letter"
        time.sleep(0.05)
    listed = edoc_axis("dlq", "list", "-c", config)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["MESSAGE", "DEATH", "COUNT", "USER", "BYTES", "NODE'S", "REASON"]
    assert row.split()[:4] == ["anonymous-1", "rejected", "1", "-"]
    assert "SENDER_NO_USER_ID:" in row
    shown = edoc_axis("dlq", "show", "-c", config, "anonymous-1")
    assert shown.returncode == 0, shown.stderr
    letter = json.loads(shown.stdout)
    [death] = letter["headers"]["x-death"]
    assert death["count"] == 1 and death["reason"] == "rejected"  # a number, not "1L"
    assert VIETNAM_TIME.fullmatch(death["time"])  # not datetime.datetime(...)
    assert "datetime" not in shown.stdout and "1L" not in shown.stdout
