"""The DMS gateway served over HTTP(S) by aiohttp: headers in, ``DmsGateway``, bytes out.

aiohttp's low-level server on asyncio was chosen by measurement (README, "DMS gateway"): an
idle connection costs a few kilobytes instead of a thread, bodies are streamed with flow control
(an unread body is not buffered beyond ~64 KiB), it serves TLS and bounds header sizes, and its
protocol object lets us answer its own parse errors in the protocol's JSON. What it lacks, caps
per client address and deadlines for a request's head and for the whole request, is
``gateway.guard``, wrapped around each connection.

Each request is answered in this order: the early HTTP refusals (``precheck``: path, method,
Content-Length), authentication from the headers alone (``DmsGateway.authenticate``: no byte of
an unauthenticated body is read, and the connection is closed after the refusal), the body read
to its Content-Length within the request's deadline (``BODY_INCOMPLETE`` when the client ends it
early, ``REQUEST_TIMEOUT`` when it is late), then the call on a bounded pool of worker threads
(the node's calls block on SQLite and signing) so the event loop keeps answering others.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from edoc_axis import __version__
from edoc_axis.config.settings import ApiSettings, DmsSystemSettings
from edoc_axis.errors import ConfigError, EdocAxisError, ErrorCode
from edoc_axis.gateway.auth import mangled_headers
from edoc_axis.gateway.guard import Guards, ServerLimits
from edoc_axis.gateway.ledger import RequestLedger
from edoc_axis.gateway.protocol import DmsBackend, Request, Response, call_name, refused
from edoc_axis.gateway.service import DEFAULT_MAX_BODY_BYTES, DmsGateway
from edoc_axis.gateway.tls import server_context
from edoc_axis.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")
DEFAULT_WORKERS = 16  # threads answering calls; the node's own pool bounds its store connections
MAX_HEADER_FIELD_BYTES = 32 * 1024  # one header line; the sign-header repeats every signed value
MAX_REQUEST_LINE_BYTES = 8190
MAX_HEADERS = 128
SERVER = f"edoc-axis/{__version__}"


def _headers(request: web.BaseRequest) -> dict[str, list[str]]:
    """Headers by lowercase name, values as the raw latin-1 text (``protocol.Request``)."""
    collected: dict[str, list[str]] = {}
    for name, value in request.raw_headers:
        collected.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return collected


class _HttpProtocol(RequestHandler):
    """aiohttp's HTTP protocol, answering its own refusals (unparsable request line, oversized
    or malformed headers) in the protocol's JSON shape instead of text."""

    refuse: Callable[[EdocAxisError], Response]
    guards: Guards

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        reason = (message or "bad request").strip().splitlines()[0]
        guard = self.guards.of(self)
        mangled = mangled_headers(guard.head) if guard is not None and status < 500 else None
        if status >= 500:
            # Not a client's fault but ours (a bug past the handler's own guard): keep the trace.
            log.error("dms_http_error", error=type(exc).__name__ if exc else None, exc_info=exc)
            refusal = refused(ErrorCode.INTERNAL_ERROR, "internal error; see the node log")
        elif mangled is not None:
            refusal = mangled
        elif isinstance(exc, LineTooLong) or "too many headers" in reason.lower():
            refusal = refused(ErrorCode.HEADER_TOO_LARGE,
                              "the request line or a header is too large")
        elif "content-length" in reason.lower():
            refusal = refused(ErrorCode.BAD_HEADER, f"bad Content-Length: {reason}")
        else:
            refusal = refused(ErrorCode.BAD_REQUEST, f"malformed HTTP request: {reason}")
        response = _web_response(self.refuse(refusal))
        response.force_close()
        return response


def _web_response(answer: Response) -> web.Response:
    headers = {"Content-Type": answer.content_type, "Server": SERVER, **answer.headers}
    response = web.Response(status=answer.status, body=answer.body, headers=headers)
    if answer.close:
        response.force_close()
    return response


class DmsServer:
    """The gateway on aiohttp; ``start()`` serves in the background, ``stop()`` ends it."""

    def __init__(
        self,
        backend: DmsBackend,
        systems: Iterable[DmsSystemSettings],
        api: ApiSettings | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        limits: ServerLimits | None = None,
        workers: int = DEFAULT_WORKERS,
        clock: Callable[[], float] = time.time,
        ledger: RequestLedger | None = None,
    ) -> None:
        self.gateway = DmsGateway(
            backend, systems, api, max_body_bytes=max_body_bytes, clock=clock, ledger=ledger
        )
        api = self.gateway.api
        self.limits = limits or ServerLimits()
        self._tls = server_context(api)
        host, port = api.address()
        try:
            # Bound now, so that a taken port is a ConfigError here and the address is known.
            self._socket = socket.create_server(
                (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                backlog=1024)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {api.listen}: {exc.strerror}", element="api.listen"
            ) from exc
        self._socket.setblocking(False)
        if port == 0:  # /openapi.json's servers name the port the system chose
            shown = f"[{host}]" if ":" in host else host
            self.gateway.api = replace(api, listen=f"{shown}:{self._socket.getsockname()[1]}")
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dms-gateway")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._shutdown_timeout = 5.0
        self.guards: Guards | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); port is real even when 0 was configured."""
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """Base URL a client uses as its endpoint (https when TLS is configured)."""
        host, port = self.address
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"

    # -- running

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()``."""
        log.info("dms_gateway_listening", url=self.url)
        try:
            asyncio.run(self._serve())
        finally:
            self._ready.set()
            self._done.set()

    def start(self) -> None:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever, name="edoc-dms-gateway", daemon=True
            )
            self._thread.start()
            self._ready.wait(10)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close idle connections, let running calls finish, release the port."""
        self._shutdown_timeout = timeout
        if self._ready.is_set() and not self._done.is_set():
            loop, stopping = self._loop, self._stopping
            if loop is not None and stopping is not None:
                with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                    loop.call_soon_threadsafe(stopping.set)
            self._done.wait(timeout + 5)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._socket.close()
        self._pool.shutdown(wait=True)
        log.info("dms_gateway_stopped")

    def __enter__(self) -> DmsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._stopping = loop, asyncio.Event()
        limits = self.limits
        http = web.Server(self._answer_request, loop=loop)

        def make_protocol() -> _HttpProtocol:
            protocol = _HttpProtocol(
                http, loop=loop, access_log=None,  # type: ignore[arg-type] # None: no access log
                tcp_keepalive=True,
                # aiohttp's own idle close is only a backstop behind the guard's deadlines.
                keepalive_timeout=limits.idle_timeout + limits.header_timeout,
                max_line_size=MAX_REQUEST_LINE_BYTES, max_field_size=MAX_HEADER_FIELD_BYTES,
                max_headers=MAX_HEADERS,
                lingering_time=0,  # never read on to drain a body left unread: close instead
                auto_decompress=False)  # a body is the package bytes, never inflated
            protocol.refuse = self._refuse_parse
            protocol.guards = guards
            return protocol

        guards = self.guards = Guards(limits, make_protocol, self._refuse)
        server = await loop.create_server(
            guards, sock=self._socket, ssl=self._tls,
            ssl_handshake_timeout=limits.header_timeout if self._tls else None)
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            http.pre_shutdown()  # idle connections close now, busy ones after their answer
            await http.shutdown(self._shutdown_timeout)

    # -- one request

    def _refuse(self, code: ErrorCode, message: str) -> Response:
        return self.gateway.refuse(refused(code, message), None, close=True)

    def _refuse_parse(self, exc: EdocAxisError) -> Response:
        return self.gateway.refuse(exc, None, close=True)

    async def _answer_request(self, request: web.BaseRequest) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        guard = self.guards.of(request.protocol) if self.guards else None
        if guard is not None:
            deadline = guard.head_received(request.content)
        else:  # pragma: no cover - every connection comes through the guards
            deadline = loop.time() + self.limits.request_timeout
        try:
            response = _web_response(await self._answer(request, deadline))
            with contextlib.suppress(ConnectionError):  # the client left; nobody to tell
                await response.prepare(request)
                await response.write_eof()
            return response
        finally:
            if guard is not None:
                guard.answered()

    async def _answer(self, request: web.BaseRequest, deadline: float) -> Response:
        gateway = self.gateway
        method, path = request.method, request.raw_path.split("?", 1)[0]
        headers = _headers(request)
        early = gateway.precheck(method, path, headers)
        if early is not None:
            return early
        call = call_name(path)
        if call is None:
            return await self._in_pool(gateway.serve_path, path)
        head = Request(method, path, headers)
        length = int(headers.get("content-length", ["0"])[0].strip() or 0)
        auth = gateway.authenticate(call, head)
        if isinstance(auth, Response):
            auth.close = auth.close or length > 0  # its body stays unread
            return auth
        if length:
            if "100-continue" in ",".join(headers.get("expect", [])).lower():
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await self._read_body(request, call, length, deadline)
            if isinstance(body, Response):
                return body
            head.body = body
        return await self._in_pool(gateway.answer, call, auth, head)

    async def _read_body(
        self, request: web.BaseRequest, call: str, length: int, deadline: float
    ) -> bytes | Response:
        try:
            async with asyncio.timeout_at(deadline):
                body = await request.content.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            return self.gateway.refuse(refused(
                ErrorCode.BODY_INCOMPLETE,
                f"the body ended after {len(exc.partial)} of the {length} bytes its "
                "Content-Length announced"), call, close=True)
        except TimeoutError:
            return self.gateway.refuse(refused(
                ErrorCode.REQUEST_TIMEOUT,
                f"the body ({length} bytes) did not arrive within the request deadline of "
                f"{self.limits.request_timeout:g} s"), call, close=True)
        self.gateway.metrics.body_read(call, length)
        return body

    async def _in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
