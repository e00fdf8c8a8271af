"""The DMS gateway on a threaded HTTP server: bytes in, ``DmsGateway.handle``, bytes out.

stdlib ``ThreadingHTTPServer`` is used on purpose: every refusal, including the early 413
(decided from Content-Length before the body is read) and http.server's own parse errors, goes
out in the protocol's JSON shape, which waitress (reads whole bodies before the app and answers
its own limits in text/plain) cannot do without patching its internals. Concurrency is bounded by
``max_connections`` (one thread each; over the limit: 503 SERVER_BUSY at once), slow clients by
``socket_timeout``. The protocol itself is ``gateway.service``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edoc_axis import __version__
from edoc_axis.config.settings import ApiSettings, DmsSystemSettings
from edoc_axis.errors import ConfigError
from edoc_axis.gateway.ledger import RequestLedger
from edoc_axis.gateway.protocol import DmsBackend, Request, Response, fail_payload, json_response
from edoc_axis.gateway.service import DEFAULT_MAX_BODY_BYTES, DmsGateway
from edoc_axis.log import get_logger

log = get_logger(__name__)

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_SOCKET_TIMEOUT = 30.0


class _Handler(BaseHTTPRequestHandler):
    """Adapts http.server to DmsGateway: JSON errors everywhere, early size refusal."""

    protocol_version = "HTTP/1.1"
    server_version = f"edoc-axis/{__version__}"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        # Per-connection read/write timeout against slow or stalled clients.
        self.request.settimeout(self.server.socket_timeout)
        # Headers and body go out in two writes; without NODELAY, Nagle plus the client's
        # delayed ACK adds ~40 ms to every answer.
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def _collect_headers(self) -> dict[str, list[str]]:
        collected: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            collected.setdefault(name.lower(), []).append(value)
        return collected

    def handle_expect_100(self) -> bool:
        early = self.server.gateway.precheck(self.command, self.path, self._collect_headers())
        if early is not None:
            self._write(early)
            return False
        return super().handle_expect_100()

    def _serve(self) -> None:
        gateway = self.server.gateway
        headers = self._collect_headers()
        early = gateway.precheck(self.command, self.path, headers)
        if early is not None:
            self._write(early)
            return
        length = int(headers.get("content-length", ["0"])[0].strip() or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True
            return
        path = self.path.split("?", 1)[0]
        self._write(gateway.handle(Request(self.command, path, headers, body)))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def do_HEAD(self) -> None:
        self._serve()

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, huge headers) in the protocol's shape."""
        err = {
            400: "BAD_REQUEST",
            414: "BAD_REQUEST",
            431: "HEADER_TOO_LARGE",
            501: "METHOD_NOT_ALLOWED",
            505: "BAD_REQUEST",
        }.get(code, "BAD_REQUEST")
        status = 405 if code == 501 else code
        self.close_connection = True
        # Parse errors can come before the version is known; always answer with a status line.
        self.request_version = self.protocol_version
        response = json_response(status, fail_payload(err, message or "bad request"), close=True)
        with contextlib.suppress(OSError):
            self._write(response)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http_request", line=format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        gateway: DmsGateway,
        max_connections: int,
        socket_timeout: float,
    ) -> None:
        self.gateway = gateway
        self.socket_timeout = socket_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._active: set[socket.socket] = set()
        self._active_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            # Over the connection limit: answer at once instead of queueing without bound.
            busy = json_response(503, fail_payload("SERVER_BUSY", "too many connections"))
            head = (
                f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(busy.body)}\r\nConnection: close\r\n"
                "Retry-After: 1\r\n\r\n"
            ).encode()
            try:
                request.settimeout(1.0)
                request.sendall(head + busy.body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        with self._active_lock:
            self._active.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active.discard(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("http_connection_error", client=str(client_address[0]))

    def drop_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self._active_lock:
            active = list(self._active)
        for sock in active:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class DmsServer:
    """The gateway on a threaded HTTP server; ``start()`` in the background, ``stop()`` to end."""

    def __init__(
        self,
        backend: DmsBackend,
        systems: Iterable[DmsSystemSettings],
        api: ApiSettings | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        clock: Callable[[], float] = time.time,
        ledger: RequestLedger | None = None,
    ) -> None:
        self.gateway = DmsGateway(
            backend, systems, api, max_body_bytes=max_body_bytes, clock=clock, ledger=ledger
        )
        api = self.gateway.api
        try:
            self._server = _Server(api.address(), self.gateway, max_connections, socket_timeout)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {api.listen}: {exc.strerror}", element="api.listen"
            ) from exc
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); port is real even when 0 was configured."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """Base URL a client uses as its endpoint."""
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()``."""
        log.info("dms_gateway_listening", url=self.url)
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever, name="edoc-dms-gateway", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close idle connections, let running calls finish, release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout)
            self._thread = None
        self._server.drop_connections()
        self._server.server_close()
        log.info("dms_gateway_stopped")

    def __enter__(self) -> DmsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
