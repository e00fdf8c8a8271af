"""Connection-level bounds of the DMS gateway: caps per client address and deadlines per request.

aiohttp's server parses HTTP, streams bodies and limits header sizes, but has no deadline for a
request's head or for a whole request, and no cap per client; a client trickling one byte every
few seconds would keep its connection for ever. ``ConnectionGuard`` sits between asyncio and
aiohttp's protocol for one connection and adds them (``ServerLimits``):

- ``max_connections`` open in all (over it: 503 ``SERVER_BUSY``) and
  ``max_connections_per_client`` from one IP address (over it: 429 ``TOO_MANY_CONNECTIONS``),
  answered at once in the protocol's JSON and closed, before a byte is read;
- ``idle_timeout``: a connection with no request under way, new or kept alive, is closed
  silently after it;
- ``header_timeout``: once a request's first byte arrived, its head must be complete within it,
  else 408 ``REQUEST_TIMEOUT`` and the connection is closed (slow-loris);
- ``request_timeout``: from the first byte of a request to its answer. The server answers 408
  when the body is not complete by then; the guard aborts a connection whose answer is still not
  written ``WRITE_GRACE`` seconds later (a client that does not read).

An idle connection costs a few kilobytes and one timer, so thousands are held cheaply.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol, cast

from edoc_axis.errors import ErrorCode
from edoc_axis.gateway.protocol import Response

WRITE_GRACE = 10.0  # seconds past request_timeout for writing an answer before the abort
HEAD_KEPT = 64 * 1024  # bytes of a request's head kept to explain a refusal of the HTTP parser


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Bounds of the gateway's server (seconds and connection counts)."""

    max_connections: int = 4096
    max_connections_per_client: int = 64
    idle_timeout: float = 30.0
    header_timeout: float = 10.0
    request_timeout: float = 120.0  # a 16 MiB body at ~1 Mbit/s fits


class Phase(enum.Enum):
    """Where a connection is in its current request."""

    IDLE = "idle"  # no byte of a request yet
    HEAD = "head"  # bytes of a request's head arrived; the head is not complete
    ANSWER = "answer"  # the head is complete: reading the body, answering


def raw_answer(response: Response) -> bytes:
    """``response`` as HTTP/1.1 bytes that end the connection (for answers written without
    the HTTP server: the connection is refused or its head never completed)."""
    status = HTTPStatus(response.status)
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


class Body(Protocol):
    """The body stream of the request under way (aiohttp's StreamReader)."""

    def feed_eof(self) -> None:
        """The client sends no more."""
        ...


# A refusal the guard sends: (code, message) -> the protocol's answer, counted and logged.
Refuse = Callable[[ErrorCode, str], Response]


class Guards:
    """The protocol factory of the listening socket: one ``ConnectionGuard`` per connection
    around one HTTP protocol from ``make_protocol``; counts open connections per address."""

    def __init__(
        self, limits: ServerLimits, make_protocol: Callable[[], asyncio.Protocol], refuse: Refuse
    ) -> None:
        self.limits = limits
        self._make_protocol = make_protocol
        self.refuse = refuse
        self._per_client: dict[str, int] = {}
        self._open = 0
        self._by_protocol: dict[object, ConnectionGuard] = {}

    def __call__(self) -> ConnectionGuard:
        return ConnectionGuard(self)

    def of(self, protocol: object) -> ConnectionGuard | None:
        """The guard of the connection an HTTP protocol serves."""
        return self._by_protocol.get(protocol)

    @property
    def open_connections(self) -> int:
        """Connections admitted and not yet closed."""
        return self._open

    def admit(self, client: str) -> Response | None:
        """Count a new connection from ``client``, or the refusal to send it instead."""
        limits = self.limits
        if self._open >= limits.max_connections:
            return self.refuse(ErrorCode.SERVER_BUSY, "too many connections")
        if self._per_client.get(client, 0) >= limits.max_connections_per_client:
            return self.refuse(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"{limits.max_connections_per_client} connections from this address are open",
            )
        self._open += 1
        self._per_client[client] = self._per_client.get(client, 0) + 1
        return None

    def attach(self, guard: ConnectionGuard) -> asyncio.Protocol:
        """A new HTTP protocol for an admitted connection, known by its guard."""
        protocol = self._make_protocol()
        self._by_protocol[protocol] = guard
        return protocol

    def release(self, client: str, protocol: asyncio.Protocol | None) -> None:
        """Forget a closed connection."""
        if protocol is None:
            return
        self._by_protocol.pop(protocol, None)
        self._open -= 1
        left = self._per_client.get(client, 1) - 1
        if left > 0:
            self._per_client[client] = left
        else:
            self._per_client.pop(client, None)


class ConnectionGuard(asyncio.Protocol):
    """One connection: admits it, keeps its deadlines, passes every event to the HTTP protocol."""

    def __init__(self, guards: Guards) -> None:
        self._guards = guards
        self._limits = guards.limits
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._inner: asyncio.Protocol | None = None
        self._client = ""
        self._timer: asyncio.TimerHandle | None = None
        self.phase = Phase.IDLE
        self.started = 0.0  # loop time of the current request's first byte
        self._more_waiting = False  # bytes of a next request arrived while answering
        self._body: Body | None = None
        self._head = bytearray()
        self._eof = False  # the client half-closed: nothing more will come

    # -- asyncio.Protocol, passed on to the HTTP protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._client = str(peer[0]) if peer else ""
        refusal = self._guards.admit(self._client)
        if refusal is not None:
            transport.write(raw_answer(refusal))
            transport.close()
            return
        self._inner = self._guards.attach(self)
        self._inner.connection_made(transport)
        self._arm(self._limits.idle_timeout, self._idle_expired)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self.phase is Phase.IDLE:
            self._request_begins()
        elif self.phase is Phase.ANSWER:
            self._more_waiting = True
        if self.phase is Phase.HEAD and len(self._head) < HEAD_KEPT:
            self._head += data[: HEAD_KEPT - len(self._head)]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is None:
            return None
        head_complete = self.phase is Phase.HEAD and (
            b"\r\n\r\n" in self._head or b"\n\n" in self._head)
        if self.phase is Phase.ANSWER or head_complete:
            # The client sends no more after a complete head: end the request's body, so that
            # the server answers BODY_INCOMPLETE when it is short, and keep the connection
            # open for writing the answer.
            self._eof = True
            if self._body is not None:
                self._body.feed_eof()
            return True
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._guards.release(self._client, self._inner)
        if self._inner is not None:
            self._inner.connection_lost(exc)
            self._inner = None
        self._body = None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    # -- called by the server around each request

    @property
    def head(self) -> bytes:
        """The first bytes (up to ``HEAD_KEPT``) of the request head being received."""
        return bytes(self._head)

    def head_received(self, body: Body) -> float:
        """The request's head is complete; returns its deadline (loop time) for the answer."""
        if self.phase is not Phase.HEAD:  # a pipelined head already parsed
            self._request_begins()
        self.phase = Phase.ANSWER
        self._body = body
        self._head.clear()
        if self._eof:
            body.feed_eof()
        deadline = self.started + self._limits.request_timeout
        self._arm(deadline + WRITE_GRACE - self._loop.time(), self._answer_expired)
        return deadline

    def answered(self) -> None:
        """The answer is written; the connection waits for the next request."""
        self._body = None
        if self._transport is None or self._transport.is_closing():
            return
        if self._eof:  # no next request can come
            self._transport.close()
            return
        self.phase = Phase.IDLE
        if self._more_waiting:
            self._more_waiting = False
            self._request_begins()
        else:
            self._arm(self._limits.idle_timeout, self._idle_expired)

    # -- deadlines

    def _request_begins(self) -> None:
        self.phase = Phase.HEAD
        self.started = self._loop.time()
        self._head.clear()
        self._arm(self._limits.header_timeout, self._head_expired)

    def _arm(self, delay: float, action: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self._loop.call_later(max(delay, 0.0), action)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle_expired(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _head_expired(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        refusal = self._guards.refuse(
            ErrorCode.REQUEST_TIMEOUT,
            f"the request's headers did not arrive within {self._limits.header_timeout:g} s",
        )
        with contextlib.suppress(OSError, RuntimeError):
            transport.write(raw_answer(refusal))
        transport.close()

    def _answer_expired(self) -> None:
        if self._transport is not None:
            self._transport.abort()
