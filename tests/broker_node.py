"""A TLS broker for the tests: an extra RabbitMQ node (``scripts/broker_node``) with an amqps
listener, certificate login (EXTERNAL) and a loopback admin listener, and the server
certificate it presents (issued by the test CA, so nodes verify it against their trust anchors).

The main broker is never reconfigured or restarted: other tests use it meanwhile.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "broker_node"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def issue_server_certificate(ca_key: Any, ca_cert: x509.Certificate, host: str = "localhost",
                             *, days: int = 30) -> tuple[ec.EllipticCurvePrivateKey,
                                                        x509.Certificate]:
    """A TLS server certificate for ``host`` and 127.0.0.1 (P-256, serverAuth) from the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


@dataclass
class TlsBroker:
    """A running extra node: where it listens and how to drive it."""

    dir: Path
    node: str
    amqps_port: int
    amqp_port: int

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """``rabbitmqctl`` against this node (raises with its output when it fails)."""
        result = subprocess.run(["bash", str(SCRIPT), "ctl", str(self.dir), "-q", *args],
                                capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise AssertionError(f"rabbitmqctl {' '.join(args)} failed: "
                                 f"{result.stdout}{result.stderr}{self.log_tail()}")
        return result.stdout

    def admin_url(self, vhost: str) -> str:
        """The guest user's plain AMQP URL on the loopback admin listener."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/{quote(vhost, safe='')}"

    def amqps_url(self, vhost: str, user: str | None = None) -> str:
        """The amqps:// URL of the TLS listener (``user`` only names who the certificate is)."""
        who = f"{quote(user, safe='')}@" if user else ""
        return f"amqps://{who}localhost:{self.amqps_port}/{quote(vhost, safe='')}"

    def log_tail(self, lines: int = 40) -> str:
        """The end of the node's log files."""
        out = []
        for path in sorted((self.dir / "log").glob("*.log")):
            out.append(f"\n---- {path.name} ----\n" + "\n".join(
                path.read_text(errors="replace").splitlines()[-lines:]))
        return "".join(out)


def start_tls_broker(base: Path, ca_path: Path, ca_key: Any,
                     ca_cert: x509.Certificate) -> TlsBroker:
    """Start the extra node under ``base`` (server certificate issued here); fails the test
    with the broker's log tail when it does not start."""
    key, cert = issue_server_certificate(ca_key, ca_cert)
    key_path, cert_path = base / "server.key", base / "server.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    home = base / "node"
    amqps, amqp, dist = free_port(), free_port(), free_port()
    name = f"edoc-tls-{os.getpid()}@localhost"
    result = subprocess.run(
        ["bash", str(SCRIPT), "start", str(home), "--ca", str(ca_path), "--cert", str(cert_path),
         "--key", str(key_path), "--amqps-port", str(amqps), "--amqp-port", str(amqp),
         "--dist-port", str(dist), "--name", name],
        capture_output=True, text=True, timeout=180, check=False)
    broker = TlsBroker(home, name, amqps, amqp)
    if result.returncode != 0:
        stop_tls_broker(broker)
        raise AssertionError(f"the TLS broker node did not start:\n{result.stderr}"
                             f"{broker.log_tail()}")
    return broker


def stop_tls_broker(broker: TlsBroker) -> None:
    """Stop the extra node and wait for it to end."""
    subprocess.run(["bash", str(SCRIPT), "stop", str(broker.dir)], capture_output=True,
                   timeout=120, check=False)
