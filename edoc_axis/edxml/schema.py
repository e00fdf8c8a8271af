"""Validation of edXML packages: hardened parse, our XSD (lxml), then the business rules.

``validate`` reports every finding (code, message, element path, value, line), each weighed by
a reception profile (``edxml.profile``: ``strict`` refuses every finding, ``received`` only
warns about harmless deviations), and never raises for a bad package. ``accept`` is the node's
entry point: the package read once (``parsed.ParsedPackage``) plus the warnings the profile lets
through, or the first refusing finding raised as ``HostileInput``/``MalformedPackage``/
``SchemaViolation``/``RuleViolation``; ``check`` is ``accept`` under ``strict``. Each takes the
bytes or a ``ParsedPackage`` already read, which is judged without being parsed again. The
XSDs ship inside the wheel (``edoc_axis.schemas``). Compiled schemas are cached per thread
because an lxml ``XMLSchema`` must not validate from two threads at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from functools import cache
from importlib.resources import files
from typing import Any

from lxml import etree

from edoc_axis.edxml.finding import Finding, element_path, element_value
from edoc_axis.edxml.limits import DEFAULT_LIMITS, XmlLimits
from edoc_axis.edxml.model import NS, Package
from edoc_axis.edxml.parsed import ParsedPackage, parsed_from_tree
from edoc_axis.edxml.parser import parse_xml
from edoc_axis.edxml.profile import STRICT, Severity, severity
from edoc_axis.edxml.read import detect_kind, from_tree
from edoc_axis.edxml.rule import check_rules
from edoc_axis.errors import EdocAxisError, ErrorCode, PackageRejected

SCHEMA_FILES = {"edoc": "edxml-document.xsd", "status": "edxml-status.xsd"}
# The codes the XSD check (and the kind detection before it) report; what each means is
# in the registry (edoc_axis.errors).
SCHEMA_CODES: frozenset[ErrorCode] = frozenset({
    ErrorCode.SCHEMA_UNEXPECTED_ELEMENT,
    ErrorCode.SCHEMA_MISSING_ELEMENT,
    ErrorCode.SCHEMA_VIOLATION,
    ErrorCode.PACKAGE_NOT_EDXML,
    ErrorCode.PACKAGE_STRUCTURE,
})
_SCHEMA_PACKAGE = "edoc_axis.schemas"
_thread = threading.local()

__all__ = [
    "SCHEMA_CODES",
    "Accepted",
    "ValidationReport",
    "accept",
    "check",
    "load_schema",
    "validate",
]


@dataclass(slots=True)
class ValidationReport:
    """The outcome of ``validate``: every finding weighed by ``profile``, and the package model
    when no finding refuses it."""

    findings: list[Finding] = field(default_factory=list)
    package: Package | None = None
    kind: str | None = None
    profile: str = STRICT

    @property
    def errors(self) -> list[Finding]:
        """The findings that refuse the package."""
        return [f for f in self.findings if f.severity == Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        """The findings reported without refusing the package."""
        return [f for f in self.findings if f.severity != Severity.ERROR]

    @property
    def valid(self) -> bool:
        """True when no finding refuses the package (warnings allowed)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (without the model)."""
        return {
            "valid": self.valid,
            "kind": self.kind,
            "profile": self.profile,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class Accepted:
    """A package a profile accepts, as read once, and the findings it only warns about."""

    parsed: ParsedPackage
    warnings: tuple[Finding, ...] = ()

    @property
    def package(self) -> Package:
        """The package model."""
        return self.parsed.model


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


def validate(
    data: bytes | ParsedPackage, limits: XmlLimits = DEFAULT_LIMITS, profile: str = STRICT
) -> ValidationReport:
    """Check a package: every finding, weighed by ``profile``; nothing raised."""
    if isinstance(data, ParsedPackage):
        report = ValidationReport(
            _weigh(_findings(data.root, data.kind), profile), None, data.kind, profile
        )
        if report.valid:
            report.package = data.model
        return report
    try:
        root = parse_xml(data, limits).getroot()
        kind = detect_kind(root)
    except PackageRejected as exc:
        return ValidationReport(_weigh([_finding(exc)], profile), profile=profile)
    report = ValidationReport(_weigh(_findings(root, kind), profile), None, kind, profile)
    if report.valid:
        try:
            report.package = from_tree(root)
        except PackageRejected as exc:  # unreachable for schema- and rule-valid trees; kept safe
            report.findings.extend(_weigh([_finding(exc)], profile))
    return report


def accept(
    data: bytes | ParsedPackage, limits: XmlLimits = DEFAULT_LIMITS, profile: str = STRICT
) -> Accepted:
    """The package ``profile`` accepts, read once, with the findings it only warns about.

    Raises the first refusing finding as the matching ``PackageRejected`` (hostile or
    malformed bytes as ``HostileInput``/``MalformedPackage``, straight from the parser). Bytes
    are parsed once and the model read only after the findings allow it.
    """
    if isinstance(data, ParsedPackage):
        root, kind = data.root, data.kind
    else:
        root = parse_xml(data, limits).getroot()
        kind = detect_kind(root)
    report = ValidationReport(_weigh(_findings(root, kind), profile), None, kind, profile)
    raise_for(report)
    parsed = data if isinstance(data, ParsedPackage) else parsed_from_tree(data, root)
    return Accepted(parsed, tuple(report.warnings))


def check(data: bytes | ParsedPackage, limits: XmlLimits = DEFAULT_LIMITS) -> Package:
    """The package model ``strict`` accepts, or the first finding raised with its code."""
    return accept(data, limits, STRICT).package


def _findings(root: etree._Element, kind: str) -> list[Finding]:
    # The rules run on schema-invalid trees too (they assume no shape), so that one report
    # lists every finding, not the XSD's alone.
    return _schema_findings(root, kind) + check_rules(root, kind)


def _weigh(findings: list[Finding], profile: str) -> list[Finding]:
    return [replace(f, severity=severity(f.code, profile, f.place).value) for f in findings]


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
        code = ErrorCode.SCHEMA_UNEXPECTED_ELEMENT
    elif "Missing child element" in message:
        code = ErrorCode.SCHEMA_MISSING_ELEMENT
    else:
        code = ErrorCode.SCHEMA_VIOLATION
    line = int(entry.line) if entry.line else None
    el = _locate(root, str(entry.message), line)
    if el is None:
        return Finding(code, message, None, line)
    return Finding(code, message, element_path(el), line, element_value(el))


def _locate(root: etree._Element, message: str, line: int | None) -> etree._Element | None:
    """The element a libxml2 message ``Element '{ns}Name': ...`` at ``line`` is about."""
    if not message.startswith("Element '"):
        return None
    tag = message[len("Element '") :].split("'", 1)[0]
    for el in root.iter(tag):
        if line is None or el.sourceline == line:
            return el
    return None


def raise_for(report: ValidationReport) -> None:
    """Raise the first refusing finding of a report as its code's class in the registry
    (``SchemaViolation``, ``RuleViolation``, ``MalformedPackage``, ...)."""
    errors = report.errors
    if not errors:
        return
    first = errors[0]
    raise first.code.error(first.message, code=first.code, element=first.element, line=first.line)
