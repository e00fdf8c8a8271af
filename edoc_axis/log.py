"""Structured logging: structlog configured in exactly one place.

Events are snake_case verbs with key-values. On a terminal they render for humans; otherwise
(services, CI, pipes) one JSON object per line. Never log document bodies or keys.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog


def configure_logging(
    level: str = "info", *, json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Configure structlog (and the stdlib root logger that pika uses) once per process.

    ``json=None`` picks JSON unless ``stream`` is a terminal. Logs go to stderr by default so
    that command output on stdout stays machine-readable.
    """
    out = stream if stream is not None else sys.stderr
    if json is None:
        json = not out.isatty()
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if json:
        processors.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries (pika) log through the stdlib: render their records with the same renderer so a
    # JSON log stays one JSON object per line.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    handler.set_name("edoc_axis")
    root = logging.getLogger()
    # Replace only our own handler on reconfiguration; leave others (pytest's capture) in place.
    for old in [h for h in root.handlers if h.get_name() == "edoc_axis"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    # pika reports every failed connection attempt at ERROR with a traceback-like text; the
    # transport's supervisor already logs each attempt as one event, so keep pika quiet unless
    # debugging.
    pika_level = logging.DEBUG if numeric <= logging.DEBUG else logging.CRITICAL
    logging.getLogger("pika").setLevel(pika_level)


def get_logger(name: str) -> Any:
    """A structlog logger bound with the module name."""
    return structlog.get_logger(name)
