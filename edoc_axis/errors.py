"""The error tree of edoc_axis, grouped by what the caller should do next.

Every error carries a stable machine ``code`` (used in CLI output, status 02 reasons, logs and
HTTP answers), and, where known, the agency, the package id and the element the problem is about.

- ``PackageRejected``: the package is permanently unacceptable; retrying will not help.
- ``TemporaryFailure``: something outside the package failed (broker, disk); retry later.
- ``ConfigError``: the node's own configuration is wrong; an administrator must act.

Library exceptions are converted to these at the module boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any

# Process exit codes of the CLI (see README "Exit codes"); sysexits.h values where one fits.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INVALID = 65  # EX_DATAERR: the input package is invalid
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: broker or another service unreachable
EXIT_CONFIG = 78  # EX_CONFIG: configuration error


class EdocAxisError(Exception):
    """Root of every error edoc_axis raises on purpose."""

    code = "EDOC_AXIS_ERROR"
    exit_code = EXIT_FAILURE

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        agency: str | None = None,
        package_id: str | None = None,
        element: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.agency = agency
        self.package_id = package_id
        self.element = element
        self.line = line

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: code, message, and the context fields that are known."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        for key in ("agency", "package_id", "element", "line"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def __str__(self) -> str:
        where = []
        if self.element:
            where.append(self.element)
        if self.line:
            where.append(f"line {self.line}")
        suffix = f" ({', '.join(where)})" if where else ""
        return f"{self.code}: {self.message}{suffix}"


# --- permanent: the package itself is unacceptable -------------------------------------------


class PackageRejected(EdocAxisError):
    """The package can never be accepted as it is."""

    code = "PACKAGE_REJECTED"
    exit_code = EXIT_INVALID


class HostileInput(PackageRejected):
    """The bytes are dangerous or absurd (DTD, entities, oversize, nesting, bad encoding)."""

    code = "XML_HOSTILE"


class MalformedPackage(PackageRejected):
    """The bytes are not well-formed XML, or not an edXML package at all."""

    code = "XML_MALFORMED"


class SchemaViolation(PackageRejected):
    """The package breaks the structure our XSD describes."""

    code = "SCHEMA_VIOLATION"


class RuleViolation(PackageRejected):
    """The package breaks a business rule (formats, domains, references)."""

    code = "RULE_VIOLATION"


class SignatureInvalid(PackageRejected):
    """The XML digital signature is missing, broken, or does not bind to the sender."""

    code = "SIG_INVALID"


class UnknownAgency(PackageRejected):
    """An OrganId the agency directory does not list."""

    code = "AGENCY_UNKNOWN"


class SpoofedSender(PackageRejected):
    """The transport identity (broker user) does not belong to the package's From agency."""

    code = "SENDER_SPOOFED"


class PackageTooLarge(PackageRejected):
    """The package exceeds a configured size limit."""

    code = "PACKAGE_TOO_LARGE"


# --- temporary: retry later --------------------------------------------------------------------


class TemporaryFailure(EdocAxisError):
    """A failure outside the package; the same operation may succeed later."""

    code = "TEMPORARY_FAILURE"
    exit_code = EXIT_UNAVAILABLE


class BrokerUnavailable(TemporaryFailure):
    """RabbitMQ cannot be reached or refused the operation for now."""

    code = "BROKER_UNAVAILABLE"


class StoreBusy(TemporaryFailure):
    """The node's store is locked or out of space for now."""

    code = "STORE_BUSY"


# --- administrator action needed ---------------------------------------------------------------


class ConfigError(EdocAxisError):
    """The node's configuration, keys or directory are wrong or missing."""

    code = "CONFIG_ERROR"
    exit_code = EXIT_CONFIG


class TrustError(ConfigError):
    """Trust material (CA, certificate, key, CRL) cannot be loaded or used."""

    code = "TRUST_ERROR"


class RequestRefused(EdocAxisError):
    """A DMS request was refused before it reached the node (authentication, headers, size).

    Codes: AUTH_* for authentication, HASH_FILE_MISMATCH, FROM_NOT_ALLOWED, BODY_TOO_LARGE,
    BAD_REQUEST, ... (see gateway.server). The client raises it too, with the server's code.
    """

    code = "REQUEST_REFUSED"


class NotFound(EdocAxisError):
    """A document, package or entry the caller named does not exist in the store."""

    code = "NOT_FOUND"
