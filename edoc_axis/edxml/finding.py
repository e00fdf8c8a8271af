"""Findings: one problem in a package, located by element path, quoted value and source line.

The XSD check (``schema``) and the business rules (``rule``, ``manifest``, ``direction``) report
in this one shape so that a single report lists them all; ``Findings`` collects them during one
pass over a tree. A finding's weight (refuse or warn) is set later by ``profile``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lxml import etree

from edoc_axis.edxml.model import q
from edoc_axis.errors import ErrorCode

MAX_VALUE_CHARS = 120  # a finding quotes at most this much of the value it judged

# Base64 is no value to quote (and runs to megabytes).
_NOT_A_VALUE = q("ContentTransferEncoded")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a package: a stable code, a message, the element path, the value judged
    (its raw text, cut at ``MAX_VALUE_CHARS``), the source line, and its severity under the
    profile it was weighed by (``edxml.profile``; ``error`` until weighed). ``place`` names
    the element that changes the code's weight (``TraceHeader``), if any."""

    code: ErrorCode
    message: str
    element: str | None = None
    line: int | None = None
    value: str | None = None
    severity: str = "error"
    place: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (without ``place``, which only keys the severity table)."""
        out = asdict(self)
        del out["place"]
        return out


class Findings:
    """The findings of one pass over one package, collected instead of stopping at the first."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def add(
        self, code: ErrorCode, message: str, el: etree._Element, place: str | None = None,
        value: str | None = None,
    ) -> None:
        """Record ``code`` at ``el``, quoting ``value`` (default: the element's own text)."""
        judged = element_value(el) if value is None else value
        self.findings.append(
            Finding(code, message, element_path(el), el.sourceline, judged, place=place)
        )


def element_text(el: etree._Element) -> str:
    """The text of an element as the rules judge it: without surrounding white space."""
    return (el.text or "").strip()


def element_value(el: etree._Element) -> str | None:
    """The raw text of a leaf element, cut at ``MAX_VALUE_CHARS``; None for containers and
    base64 (an attachment is no value to quote)."""
    if el.tag == _NOT_A_VALUE or any(isinstance(child.tag, str) for child in el):
        return None
    text = el.text or ""
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def element_path(el: etree._Element) -> str:
    """``/edXML/edXMLEnvelope/...`` by local names; ``[n]`` (1-based) among same-named siblings."""
    steps: list[str] = []
    node: etree._Element | None = el
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [s for s in parent if s.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))
