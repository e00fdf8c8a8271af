"""Validation of edXML packages: hardened parse, our XSD (lxml), then the business rules.

``validate`` reports every problem as a ``Finding`` (code, message, element path, line) and never
raises for a bad package; ``check`` is the node's entry point and raises the first problem as
``HostileInput``/``MalformedPackage``/``SchemaViolation``/``RuleViolation``. The XSDs ship inside
the wheel (``edoc_axis.schemas``). Compiled schemas are cached per thread because an lxml
``XMLSchema`` must not validate from two threads at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

from lxml import etree

from edoc_axis.errors import (
    EdocAxisError,
    MalformedPackage,
    PackageRejected,
    RuleViolation,
    SchemaViolation,
)
from edoc_axis.package import NS, Package, detect_kind, from_tree
from edoc_axis.parser import DEFAULT_LIMITS, XmlLimits, parse_xml
from edoc_axis.rule import RULE_CODES, Finding, check_rules, element_path

SCHEMA_FILES = {"edoc": "edxml-document.xsd", "status": "edxml-status.xsd"}
SCHEMA_CODES: dict[str, str] = {
    "SCHEMA_UNEXPECTED_ELEMENT": "an element the structure does not allow at that place",
    "SCHEMA_MISSING_ELEMENT": "a required child element is missing",
    "SCHEMA_VIOLATION": "another structural error (text where elements belong, attributes...)",
    "PACKAGE_NOT_EDXML": "the root is not edXML in the QCVN 102:2016 namespace",
    "PACKAGE_STRUCTURE": "no edXMLEnvelope/edXMLHeader/MessageHeader to tell the kind from",
}
_SCHEMA_PACKAGE = "edoc_axis.schemas"
_thread = threading.local()

__all__ = [
    "RULE_CODES",
    "SCHEMA_CODES",
    "Finding",
    "ValidationReport",
    "check",
    "load_schema",
    "validate",
]


@dataclass(slots=True)
class ValidationReport:
    """The outcome of ``validate``: findings, and the package model when it is valid."""

    findings: list[Finding] = field(default_factory=list)
    package: Package | None = None
    kind: str | None = None

    @property
    def valid(self) -> bool:
        """True when there is no finding."""
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (without the model)."""
        return {
            "valid": self.valid,
            "kind": self.kind,
            "findings": [f.to_dict() for f in self.findings],
        }


@cache
def _schema_source(name: str) -> bytes:
    return files(_SCHEMA_PACKAGE).joinpath(name).read_bytes()


class _PackagedSchemas(etree.Resolver):
    """Resolves ``xs:include`` between our XSDs from the installed package, never the network."""

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> Any:
        name = (system_url or "").rsplit("/", 1)[-1]
        if name.endswith(".xsd"):
            return self.resolve_string(_schema_source(name), context)
        return None


def load_schema(kind: str) -> etree.XMLSchema:
    """Compile the XSD of ``kind`` (``edoc`` or ``status``) from the installed package."""
    # Trusted input (our own XSD), so a plain parser with a resolver for our includes only.
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(_PackagedSchemas())
    name = SCHEMA_FILES[kind]
    doc = etree.fromstring(_schema_source(name), parser, base_url=f"edoc-axis-schemas:/{name}")
    return etree.XMLSchema(doc.getroottree())


def _schema(kind: str) -> etree.XMLSchema:
    cached: dict[str, etree.XMLSchema] | None = getattr(_thread, "schemas", None)
    if cached is None:
        cached = _thread.schemas = {}
    schema = cached.get(kind)
    if schema is None:
        schema = cached[kind] = load_schema(kind)
    return schema


def validate(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> ValidationReport:
    """Check bytes as an edXML package: every problem becomes a finding; nothing is raised."""
    try:
        root = parse_xml(data, limits).getroot()
        kind = detect_kind(root)
    except PackageRejected as exc:
        return ValidationReport([_finding(exc)])
    findings = _schema_findings(root, kind) or check_rules(root, kind)
    if findings:
        return ValidationReport(findings, None, kind)
    try:
        package = from_tree(root)
    except PackageRejected as exc:  # unreachable for schema- and rule-valid trees; kept safe
        return ValidationReport([_finding(exc)], None, kind)
    return ValidationReport([], package, kind)


def check(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> Package:
    """The package model of valid bytes, or the first problem raised with its code."""
    root = parse_xml(data, limits).getroot()
    kind = detect_kind(root)
    findings = _schema_findings(root, kind) or check_rules(root, kind)
    raise_for(ValidationReport(findings, None, kind))
    return from_tree(root)


def _finding(exc: EdocAxisError) -> Finding:
    return Finding(exc.code, exc.message, exc.element, exc.line)


def _schema_findings(root: etree._Element, kind: str) -> list[Finding]:
    schema = _schema(kind)
    if schema.validate(root):
        return []
    return [_explain(root, entry) for entry in schema.error_log]


def _explain(root: etree._Element, entry: Any) -> Finding:
    message = str(entry.message).replace(f"{{{NS}}}", "")
    if "This element is not expected" in message:
        code = "SCHEMA_UNEXPECTED_ELEMENT"
    elif "Missing child element" in message:
        code = "SCHEMA_MISSING_ELEMENT"
    else:
        code = "SCHEMA_VIOLATION"
    line = int(entry.line) if entry.line else None
    return Finding(code, message, _locate(root, str(entry.message), line), line)


def _locate(root: etree._Element, message: str, line: int | None) -> str | None:
    """Our element path for a libxml2 message ``Element '{ns}Name': ...`` at ``line``."""
    if not message.startswith("Element '"):
        return None
    tag = message[len("Element '") :].split("'", 1)[0]
    for el in root.iter(tag):
        if line is None or el.sourceline == line:
            return element_path(el)
    return None


def raise_for(report: ValidationReport) -> None:
    """Raise the first finding of an invalid report as the matching ``PackageRejected``."""
    if report.valid:
        return
    first = report.findings[0]
    cls: type[PackageRejected]
    if first.code.startswith("SCHEMA_"):
        cls = SchemaViolation
    elif first.code in RULE_CODES:
        cls = RuleViolation
    else:
        cls = MalformedPackage
    raise cls(first.message, code=first.code, element=first.element, line=first.line)
