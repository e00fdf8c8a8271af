"""Opening the broker: pika connection parameters from a URL, and short blocking channels.

A :class:`~edoc_axis.transport.link.Link` keeps one long-lived connection; admin work
(declaring, checking queues, dead-letter peeks and replays) uses :func:`blocking_channel`, which
opens a connection for one job and turns pika's errors into the node's (``ConfigError`` for
refused credentials, ``NotFound`` for a missing queue, ``BrokerUnavailable`` otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
import pika.exceptions

from edoc_axis.errors import BrokerUnavailable, ConfigError, NotFound


def parameters(url: str, **settings: Any) -> Any:
    """``pika.URLParameters`` of ``url`` with ``settings`` set on it (a bad URL: ConfigError)."""
    try:
        params = pika.URLParameters(url)
    except Exception as exc:  # pika raises assorted errors for a bad URL
        raise ConfigError(f"invalid broker URL: {exc}", code="BROKER_URL_INVALID") from exc
    for name, value in settings.items():
        setattr(params, name, value)
    return params


@contextmanager
def blocking_channel(url: str) -> Iterator[Any]:
    """A channel on a fresh blocking connection, closed afterwards (errors mapped, see above)."""
    params = parameters(url, connection_attempts=1, socket_timeout=10, heartbeat=30)
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.ProbableAuthenticationError as exc:
        raise ConfigError(f"broker refused the credentials: {exc}",
                          code="BROKER_AUTH_FAILED") from exc
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailable(f"cannot connect to the broker: {exc!r}") from exc
    try:
        yield connection.channel()
    except pika.exceptions.ChannelClosedByBroker as exc:
        code = "BROKER_ACCESS_REFUSED" if exc.reply_code == 403 else "BROKER_CHANNEL_CLOSED"
        if exc.reply_code == 404:
            raise NotFound(f"broker: {exc.reply_text}", code="BROKER_NOT_FOUND") from exc
        raise BrokerUnavailable(f"broker refused: {exc.reply_text}", code=code) from exc
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailable(f"broker operation failed: {exc!r}") from exc
    finally:
        if connection.is_open:
            connection.close()
