"""Bounds on untrusted XML: the frozen ``XmlLimits`` every hardened parse applies.

Kept apart from ``parser`` (and free of lxml) so that settings can hold limits without loading
an XML library: ``import edoc_axis.config`` must stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
# Scanned decrees with annexes are routinely 10-50 MB; the national client accepts 50 MB.
DEFAULT_MAX_BYTES = 50 * MIB
# The most ``limits.max_package_bytes`` may be set to (config load refuses more: CONFIG_LIMIT).
MAX_ALLOWED_BYTES = 200 * MIB
DEFAULT_MAX_DEPTH = 48  # the deepest real edXML path (signature X509 data) is about 12
DEFAULT_MAX_ELEMENTS = 100_000  # a package with thousands of recipients stays far below


@dataclass(frozen=True, slots=True)
class XmlLimits:
    """Bounds applied to every untrusted document."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_elements: int = DEFAULT_MAX_ELEMENTS


DEFAULT_LIMITS = XmlLimits()
