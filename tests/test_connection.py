"""Opening the broker: every connection failure is one of the node's errors naming host:port and
what to fix in broker.url, for every command (issue 13 item 1)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pika.exceptions
import pytest

from edoc_axis.config.load import load_settings
from edoc_axis.errors import BrokerUnavailable, ConfigError, ErrorCode
from edoc_axis.transport.connection import connect_error, parameters

G22 = "000.00.00.G22"
EDOC = str(Path(sys.executable).parent / "edoc-axis")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def dev_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dev agency made by `init --dev` (its broker is never provisioned: only URLs vary)."""
    root = tmp_path_factory.mktemp("bench")
    done = subprocess.run([EDOC, "init", "--dev", "--organ-id", G22, "--data-dir",
                           str(root / "g22"), "--key-type", "p256"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return root / "g22" / "node.toml"


def _with_address(config: Path, address: str) -> str:
    parts = urlsplit(load_settings(config, env={}).broker.url)
    return parts._replace(netloc=f"{parts.netloc.rsplit('@', 1)[0]}@{address}").geturl()


@pytest.mark.parametrize("command", [("doctor",), ("dlq", "list")])
@pytest.mark.parametrize("address", ["no-such-broker.invalid:5672", "127.0.0.1:{free}"])
def test_an_unreachable_broker_is_broker_unavailable_with_exit_69(
        dev_config: Path, command: tuple[str, ...], address: str) -> None:
    """A host that does not resolve, or a port nobody listens on: BROKER_UNAVAILABLE naming
    host:port and broker.url, exit 69, no traceback and no pika repr."""
    address = address.format(free=_free_port())
    env = {**os.environ, "EDOC_AXIS_BROKER_URL": _with_address(dev_config, address)}
    done = subprocess.run([EDOC, *command, "-c", str(dev_config)], capture_output=True,
                          text=True, env=env, check=False, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 69, output
    assert "BROKER_UNAVAILABLE" in output and address in output and "broker.url" in output
    assert "Traceback" not in output and "gaierror" not in output
    assert "AMQPConnectionError" not in output and "ConnectionRefusedError(" not in output


def test_every_connection_failure_maps_to_a_node_error() -> None:
    """Socket, TLS and pika failures to connect each become a node error naming host:port."""
    params = parameters("amqp://u:p@broker.example:5673/axis")
    refused = pika.exceptions.AMQPConnectionError(
        pika.adapters.utils.connection_workflow.AMQPConnectorSocketConnectError(
            ConnectionRefusedError(111, "Connection refused")))
    cases: list[tuple[BaseException, type[Exception], str]] = [
        (socket.gaierror(-2, "Name or service not known"), BrokerUnavailable, "does not resolve"),
        (refused, BrokerUnavailable, "refused (nothing listens"),
        (TimeoutError(), BrokerUnavailable, "timed out"),
        (pika.exceptions.StreamLostError("Stream connection lost"), BrokerUnavailable, "lost"),
        (ssl.SSLError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
         ConfigError, "does not verify"),
        (pika.exceptions.ProbableAuthenticationError(
            "ConnectionClosedByBroker: (403) 'ACCESS_REFUSED - Login was refused'"),
         ConfigError, "refused the login of user 'u' (vhost 'axis')"),
        (pika.exceptions.ProbableAccessDeniedError(
            "ConnectionClosedByBroker: (530) 'NOT_ALLOWED - vhost axis not found'"),
         ConfigError, "NOT_ALLOWED - vhost axis not found"),
    ]
    for exc, kind, words in cases:
        error = connect_error(exc, params)
        assert isinstance(error, kind), (exc, error)
        assert "broker.example:5673" in error.message and words in error.message, error.message
        assert "broker.url" in error.message or error.code in (
            ErrorCode.BROKER_TLS_UNTRUSTED, ErrorCode.BROKER_TLS_REFUSED)
