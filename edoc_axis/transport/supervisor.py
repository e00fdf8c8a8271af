"""Supervising one broker connection: connect, reconnect with backoff, reopen the channel, stop.

pika never reconnects by itself and is not thread-safe. A :class:`Supervisor` runs one
``SelectConnection`` at a time in the thread that calls :meth:`Supervisor.run`, reconnects after
a capped, jittered exponential backoff until :meth:`Supervisor.stop`, and reopens a channel the
broker closed. What to do on the channel is the subclass's (the
:class:`~edoc_axis.transport.link.Link`): it opens the channel's work in ``_on_channel_open``,
forgets it in ``_lose_channel``, winds down in ``_begin_stop`` and ``_on_stopped``, and
``_resume``s publishing when the broker unblocks the connection.

A failure to connect is mapped once (:func:`~edoc_axis.transport.connection.connect_error`):
a refused login or vhost, or TLS that cannot work, is logged as an error with what to fix
every time it happens; a broker that cannot be reached as a warning naming host:port. Both keep
the retry loop. :meth:`Supervisor.wait_started` tells a caller how the first attempt ended, so
``edoc-axis run`` can refuse to start with credentials the broker refuses.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions

from edoc_axis.errors import ConfigError, EdocAxisError
from edoc_axis.log import get_logger
from edoc_axis.transport.connection import connect_error, failure_reason

log = get_logger(__name__)

CHANNEL_CLOSE_HINTS = {
    404: "queue or exchange missing: provision the broker topology",
    403: "permission refused: check the broker user's permissions",
    406: "refused by the broker (user_id must equal the connection's user)",
}


class Supervisor:
    """Owner of one broker connection at a time, in the thread that calls :meth:`run`."""

    def __init__(self, params: Any, *, name: str, backoff_initial: float,
                 backoff_max: float) -> None:
        self.name = name
        self.last_error: str | None = None
        self.last_failure: EdocAxisError | None = None  # why the last connection attempt failed
        self._first_attempt = threading.Event()  # the first connection opened or failed
        self._params = params
        self._backoff_initial, self._backoff_max = backoff_initial, backoff_max
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connection: Any = None
        self._channel: Any = None
        self._blocked = False
        self._attempt = 0
        self._stop_started = False

    # --- to be provided by the subclass (called in the supervising thread) --------------------

    def _on_channel_open(self, channel: Any) -> None:
        """Make ``channel`` the current ``self._channel`` and start its work."""
        raise NotImplementedError

    def _lose_channel(self) -> None:
        """Forget the channel (set ``self._channel`` to None) and what was pending on it."""
        raise NotImplementedError

    def _begin_stop(self) -> None:
        """Wind down, then ``_close_connection``."""
        raise NotImplementedError

    def _resume(self) -> None:
        """The broker unblocked the connection: publish again."""
        raise NotImplementedError

    def _on_stopped(self) -> None:
        """:meth:`run` is about to return."""
        raise NotImplementedError

    # --- public, thread-safe ------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to wind down (the Link stops consuming and waits briefly for
        confirms), close the connection and return; from any thread."""
        self._stopping.set()
        self._call_soon(self._begin_stop)

    def wait_started(self, timeout: float) -> EdocAxisError | None:
        """Wait (at most ``timeout`` s) for the first connection attempt to end: None when it
        opened (or has not ended yet), else why it failed (the loop keeps retrying)."""
        if not self._first_attempt.wait(timeout):
            return None
        return self.last_failure

    def run(self) -> None:
        """Connect, work, and reconnect with backoff until :meth:`stop` (blocks)."""
        while not self._stopping.is_set():
            self._run_connection()
            if self._stopping.is_set():
                break
            delay = self._next_backoff()
            log.info("broker_reconnect_scheduled", link=self.name, delay=round(delay, 2),
                     error=self.last_error)
            self._stopping.wait(delay)
        self._on_stopped()

    # --- connection lifecycle (supervising thread only) ------------------------------------

    def _call_soon(self, callback: Callable[[], None]) -> None:
        with self._lock:
            connection = self._connection
        if connection is not None:
            connection.ioloop.add_callback_threadsafe(callback)

    def _next_backoff(self) -> float:
        self._attempt += 1
        ceiling = min(self._backoff_max, self._backoff_initial * 2.0 ** (self._attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto

    def _run_connection(self) -> None:
        connection = pika.SelectConnection(
            self._params, on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_connection_closed)
        with self._lock:
            self._connection = connection
        if self._stopping.is_set():
            connection.ioloop.add_callback_threadsafe(self._begin_stop)
        try:
            connection.ioloop.start()
        except Exception as exc:
            # A bug or an unexpected pika state must not end the supervisor: drop this
            # connection (unacked deliveries return, in-flight messages are republished).
            self.last_error = f"link failed: {exc!r}"
            log.exception("broker_link_failed", link=self.name, error=repr(exc))
            if connection.is_open:
                try:
                    connection.close()
                    connection.ioloop.start()  # until the close completes
                except Exception:  # noqa: S110 - already failing; the socket goes with it
                    pass
        finally:
            with self._lock:
                self._connection = None
            self._lose_channel()
            self._stop_started = False
            connection.ioloop.close()  # its wake-up socket pair

    def _on_open_error(self, connection: Any, error: Any) -> None:
        failure = connect_error(error, self._params) if isinstance(error, BaseException) else (
            connect_error(pika.exceptions.AMQPConnectionError(str(error)), self._params))
        self.last_failure = failure
        self.last_error = str(failure)
        self._first_attempt.set()
        if isinstance(failure, ConfigError):  # retrying will not help until someone fixes it
            log.error("broker_login_refused", link=self.name, code=failure.code,
                      error=failure.message)
        else:
            log.warning("broker_connect_failed", link=self.name, code=failure.code,
                        error=failure.message)
        connection.ioloop.stop()

    def _on_connection_closed(self, connection: Any, reason: Any) -> None:
        if not self._stopping.is_set():
            said = failure_reason(reason) if isinstance(reason, BaseException) else str(reason)
            self.last_error = f"connection closed: {said}"
            log.warning("broker_connection_lost", link=self.name, reason=said)
        self._lose_channel()
        connection.ioloop.stop()

    def _on_connection_open(self, connection: Any) -> None:
        self.last_failure = None
        self._first_attempt.set()
        if self._stopping.is_set():
            connection.close()
            return
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        self._open_channel()

    def _on_blocked(self, _connection: Any, _frame: Any) -> None:
        self._blocked = True
        log.warning("broker_blocked_publishing", link=self.name)

    def _on_unblocked(self, _connection: Any, _frame: Any) -> None:
        self._blocked = False
        log.info("broker_unblocked_publishing", link=self.name)
        self._resume()

    def _open_channel(self) -> None:
        connection = self._connection
        if connection is None or not connection.is_open or self._stopping.is_set():
            return
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_closed(self, channel: Any, reason: Any) -> None:
        if channel is not self._channel:
            return
        self._lose_channel()
        if self._stopping.is_set():
            self._close_connection()
            return
        code = getattr(reason, "reply_code", None)
        text = getattr(reason, "reply_text", repr(reason))
        self.last_error = f"channel closed: ({code}) {text}"
        log.warning("broker_channel_closed", link=self.name, code=code, reason=text,
                    hint=CHANNEL_CLOSE_HINTS.get(code) if isinstance(code, int) else None)
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.ioloop.call_later(self._next_backoff(), self._open_channel)

    def _close_connection(self) -> None:
        connection = self._connection
        if connection is None:
            return
        if connection.is_closed:
            connection.ioloop.stop()
        elif not connection.is_closing:
            try:
                connection.close()
            except pika.exceptions.ConnectionWrongStateError:
                connection.ioloop.stop()
