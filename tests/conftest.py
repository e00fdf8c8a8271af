"""Shared fixtures. Each area keeps its fixtures in its own section below."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The test corpora: tests/data/{valid,invalid,hostile}."""
    return DATA


# --- broker: one throwaway vhost per test session on the real RabbitMQ ------------------------


def _rabbitmqctl(*args: str) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([exe, "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def broker_vhost() -> Iterator[str]:
    """A fresh vhost on 127.0.0.1:5672 for this test session, deleted afterwards.

    Runs never see each other's messages: every name lives inside this vhost.
    """
    vhost = f"edoc-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield vhost
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def broker_url(broker_vhost: str) -> str:
    """AMQP URL of the session vhost as the admin (guest) user."""
    from urllib.parse import quote

    return f"amqp://guest:guest@127.0.0.1:5672/{quote(broker_vhost, safe='')}"


# --- packages (issue: edXML packages) ----------------------------------------------------------

# --- trust (issue: PKI and signatures) ---------------------------------------------------------

# --- node (issue: routing) ---------------------------------------------------------------------
