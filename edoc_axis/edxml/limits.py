"""Bounds on untrusted XML: the frozen ``XmlLimits`` every hardened parse applies.

Kept apart from ``parser`` (and free of lxml) so that settings can hold limits without loading
an XML library: ``import edoc_axis.config`` must stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_BYTES = 15 * 1024 * 1024  # RabbitMQ 4.x refuses messages over 16 MiB by default
DEFAULT_MAX_DEPTH = 48  # the deepest real edXML path (signature X509 data) is about 12
DEFAULT_MAX_ELEMENTS = 100_000  # a package with thousands of recipients stays far below


@dataclass(frozen=True, slots=True)
class XmlLimits:
    """Bounds applied to every untrusted document."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_elements: int = DEFAULT_MAX_ELEMENTS


DEFAULT_LIMITS = XmlLimits()
