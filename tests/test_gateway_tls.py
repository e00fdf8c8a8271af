"""HTTPS for the DMS gateway (gateway.tls): real TLS handshakes with certificates of the dev PKI."""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_api import ORGAN_A, PACKAGE, SYSTEM_A, InMemoryNode, start

from edoc_axis.config.settings import ApiSettings
from edoc_axis.errors import ConfigError, TemporaryFailure
from edoc_axis.gateway.client import DmsClient
from edoc_axis.gateway.tls import server_context
from edoc_axis.ops import pki


@dataclass(frozen=True)
class TlsFiles:
    """A CA, the gateway's certificate for 127.0.0.1 and a DMS client certificate (PEM files)."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Certificates issued by a fresh dev CA."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert = pki.init_ca("gateway test CA")
    key, cert = pki.issue_tls_certificate(ca_key, ca_cert, "gateway", hosts=("127.0.0.1",))
    client_key, client_cert = pki.issue_tls_certificate(ca_key, ca_cert, "dms-a", client=True)
    files = TlsFiles(folder / "ca.pem", folder / "cert.pem", folder / "key.pem",
                     folder / "client.pem", folder / "client.key")
    files.ca.write_bytes(pki.cert_to_pem(ca_cert))
    files.cert.write_bytes(pki.cert_to_pem(cert))
    files.key.write_bytes(pki.key_to_pem(key))
    files.client_cert.write_bytes(pki.cert_to_pem(client_cert))
    files.client_key.write_bytes(pki.key_to_pem(client_key))
    return files


def trusting(files: TlsFiles, *, with_cert: bool = False) -> ssl.SSLContext:
    """A client context trusting the test CA, optionally presenting the DMS certificate."""
    context = ssl.create_default_context(cafile=str(files.ca))
    if with_cert:
        context.load_cert_chain(files.client_cert, files.client_key)
    return context


def test_call_over_https(tls_files: TlsFiles) -> None:
    """With tls_cert/tls_key the gateway speaks HTTPS: the URL says so, the certificate verifies
    against the CA and a signed sendEdoc goes through."""
    node = InMemoryNode()
    server = start(node, tls_cert=tls_files.cert, tls_key=tls_files.key)
    try:
        assert server.url.startswith("https://127.0.0.1:")
        with DmsClient(server.url, SYSTEM_A.systemid, SYSTEM_A.secret,
                       ssl_context=trusting(tls_files)) as client:
            assert client.send_edoc(PACKAGE, from_organ=ORGAN_A) == "DOC-1"
        with socket.create_connection(server.address, timeout=5) as raw, \
                trusting(tls_files).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        server.stop()
    assert node.submitted[0][1] == PACKAGE


def test_plain_http_to_the_https_port_gets_nothing(tls_files: TlsFiles) -> None:
    """A client speaking plain HTTP to the TLS port is not answered in clear text."""
    server = start(InMemoryNode(), tls_cert=tls_files.cert, tls_key=tls_files.key)
    try:
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            with contextlib.suppress(ConnectionResetError):
                data = sock.recv(65536)  # a TLS alert at most, then the end
        assert not data.startswith(b"HTTP/")
    finally:
        server.stop()


def test_client_certificate_required(tls_files: TlsFiles) -> None:
    """With tls_client_ca, a DMS without a client certificate is refused in the handshake; one
    presenting a certificate from that CA is served."""
    node = InMemoryNode()
    server = start(node, tls_cert=tls_files.cert, tls_key=tls_files.key,
                   tls_client_ca=tls_files.ca)
    try:
        without = DmsClient(server.url, SYSTEM_A.systemid, SYSTEM_A.secret,
                            ssl_context=trusting(tls_files))
        with without, pytest.raises((TemporaryFailure, ssl.SSLError)):
            without.agencies()
        with DmsClient(server.url, SYSTEM_A.systemid, SYSTEM_A.secret,
                       ssl_context=trusting(tls_files, with_cert=True)) as client:
            assert client.send_edoc(PACKAGE, from_organ=ORGAN_A) == "DOC-1"
    finally:
        server.stop()


def test_tls_settings_are_checked(tls_files: TlsFiles, tmp_path: Path) -> None:
    """A certificate without its key, a client CA without a certificate and an unreadable file
    are ConfigErrors naming the key; no TLS settings: plain HTTP."""
    assert server_context(ApiSettings()) is None
    cases = [
        (ApiSettings(tls_cert=tls_files.cert), "api.tls_key"),
        (ApiSettings(tls_client_ca=tls_files.ca), "api.tls_client_ca"),
        (ApiSettings(tls_cert=tmp_path / "missing.pem", tls_key=tls_files.key), "api.tls_cert"),
        (ApiSettings(tls_cert=tls_files.cert, tls_key=tls_files.key,
                     tls_client_ca=tmp_path / "missing.pem"), "api.tls_client_ca"),
    ]
    for api, element in cases:
        with pytest.raises(ConfigError) as caught:
            server_context(api)
        assert caught.value.element == element
