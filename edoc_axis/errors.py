"""The error tree of edoc_axis, grouped by what the caller should do next, and the one registry
of its codes.

Every error carries a stable machine ``code`` (used in CLI output, status 02 reasons, logs and
HTTP answers), and, where known, the agency, the package id and the element the problem is about.

- ``PackageRejected``: the package is permanently unacceptable; retrying will not help.
- ``TemporaryFailure``: something outside the package failed (broker, disk); retry later.
- ``ConfigError``: the node's own configuration is wrong; an administrator must act.

Library exceptions are converted to these at the module boundary with ``raise ... from exc``.

``ErrorCode`` is the registry: each code once, with its error class (which fixes the CLI exit
code), its HTTP status at the DMS gateway and a meaning an operator can act on. Raise sites name
members (``code=ErrorCode.SIG_MISSING``); a member is a ``str`` equal to its name, so JSON, logs,
the store and ``exc.code == "SIG_MISSING"`` see plain text. Codes only reported, never raised,
are registered too: an edXML finding with the class it is raised as when it refuses a package,
an audit verification problem with ``AuditProblem``. An error built with an unregistered code
is refused with ``ValueError`` (a programming error); a code from outside (a gateway's answer)
goes through ``ErrorCode.lookup``. The README's "Error codes" table is generated from the
registry (``scripts/codes_table.py``). Registry and classes share this module because each
class's own code is a member: split, the two would import each other.
"""

from __future__ import annotations

from enum import StrEnum, auto
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

    code: ErrorCode  # each class's own code, bound below the registry
    exit_code = EXIT_FAILURE

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        agency: str | None = None,
        package_id: str | None = None,
        element: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = ErrorCode.registered(code)
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

    exit_code = EXIT_INVALID


class HostileInput(PackageRejected):
    """The bytes are dangerous or absurd (DTD, entities, oversize, nesting, bad encoding)."""


class MalformedPackage(PackageRejected):
    """The bytes are not well-formed XML, or not an edXML package at all."""


class SchemaViolation(PackageRejected):
    """The package breaks the structure our XSD describes."""


class RuleViolation(PackageRejected):
    """The package breaks a business rule (formats, domains, references)."""


class SignatureInvalid(PackageRejected):
    """The XML digital signature is missing, broken, or does not bind to the sender."""


class UnknownAgency(PackageRejected):
    """An OrganId the agency directory does not list."""


class SpoofedSender(PackageRejected):
    """The transport identity (broker user) does not belong to the package's From agency."""



class PackageTooLarge(PackageRejected):
    """The package exceeds a configured size limit."""



# --- temporary: retry later --------------------------------------------------------------------


class TemporaryFailure(EdocAxisError):
    """A failure outside the package; the same operation may succeed later."""

    exit_code = EXIT_UNAVAILABLE


class BrokerUnavailable(TemporaryFailure):
    """RabbitMQ cannot be reached or refused the operation for now."""


class StoreBusy(TemporaryFailure):
    """The node's store is locked or out of space for now."""


# --- administrator action needed ---------------------------------------------------------------


class ConfigError(EdocAxisError):
    """The node's configuration, keys or directory are wrong or missing."""

    exit_code = EXIT_CONFIG


class TrustError(ConfigError):
    """Trust material (CA, certificate, key, CRL) cannot be loaded or used."""


class RequestRefused(EdocAxisError):
    """A DMS request was refused before it reached the node (authentication, headers, size).

    Its codes carry their own HTTP status in the registry. The DMS client raises it too, with
    the code the server answered (``ErrorCode.lookup``).
    """


class NotFound(EdocAxisError):
    """A document, package or entry the caller named does not exist in the store."""



class AuditProblem(EdocAxisError):
    """Not raised: the class of the problems an audit verification lists in its report (an
    edited, deleted or unsealed entry, a broken bundle). ``audit verify`` and ``audit
    verify-bundle`` exit with ``EXIT_INVALID`` when their report lists one."""

    exit_code = EXIT_INVALID


# --- the registry ------------------------------------------------------------------------------


class ErrorCode(StrEnum):
    """Every code edoc_axis raises or reports: ``NAME = auto(), ErrorClass, HTTP status, meaning``.

    The value is the name. ``error`` is the class raised with the code and ``exit_code`` the
    CLI's exit code for it (its class's); ``http_status`` is the DMS gateway's answer to it: by
    class (``PackageRejected`` 422, ``SpoofedSender`` 403, ``PackageTooLarge`` 413,
    ``TemporaryFailure`` 503, ``ConfigError`` 500, ``NotFound`` 404, else 400) except for the
    gateway's own refusals, which name theirs; ``meaning`` says in one line what it means and
    what to do.
    """

    error: type[EdocAxisError]
    http_status: int
    meaning: str

    def __new__(
        cls, value: str, error: type[EdocAxisError], http_status: int, meaning: str
    ) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.error = error
        member.http_status = http_status
        member.meaning = meaning
        return member

    @staticmethod
    def _generate_next_value_(name: str, start: int, count: int, last_values: list[Any]) -> str:
        return name

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for an error with this code (its class's)."""
        return self.error.exit_code

    @classmethod
    def registered(cls, code: str) -> ErrorCode:
        """``code`` as its member; ``ValueError`` when it is not registered (a programming
        error: add a row here, or use ``lookup`` for a code from outside)."""
        member = cls._value2member_map_.get(code)
        if not isinstance(member, ErrorCode):
            raise ValueError(
                f"unregistered error code {code!r}: add it to edoc_axis.errors.ErrorCode"
            )
        return member

    @classmethod
    def lookup(cls, text: str) -> ErrorCode:
        """The member for a code that comes from outside (a gateway's ``ErrorCode``), or
        ``REMOTE_REFUSED`` when this version does not know it: keep ``text`` in the message."""
        member = cls._value2member_map_.get(text)
        return member if isinstance(member, ErrorCode) else cls.REMOTE_REFUSED

    # -- the tree's own codes (an error raised without a code carries its class's)
    EDOC_AXIS_ERROR = auto(), EdocAxisError, 400, (
        "an error without a more specific code: read its message")
    PACKAGE_REJECTED = auto(), PackageRejected, 422, (
        "the package can never be accepted as it is: fix it")
    XML_HOSTILE = auto(), HostileInput, 422, (
        "dangerous or absurd bytes: send a plain UTF-8 edXML package")
    XML_MALFORMED = auto(), MalformedPackage, 422, "not well-formed XML: fix it at the line named"
    SCHEMA_VIOLATION = auto(), SchemaViolation, 422, (
        "the package breaks the edXML structure (text, attributes, ...): fix the element named")
    RULE_VIOLATION = auto(), RuleViolation, 422, (
        "the package breaks a business rule: see the message")
    SIG_INVALID = auto(), SignatureInvalid, 422, (
        "the signature does not hold: see the message, re-sign")
    AGENCY_UNKNOWN = auto(), UnknownAgency, 422, (
        "the OrganId is not in the agency directory: correct it, or add the agency there")
    SENDER_SPOOFED = auto(), SpoofedSender, 403, (
        "From/OrganId is not the agency of the broker user that published it: refused as forged")
    PACKAGE_TOO_LARGE = auto(), PackageTooLarge, 413, (
        "the package exceeds limits.max_package_bytes: send a smaller one")
    PACKAGE_TOO_LARGE_FOR_BROKER = auto(), PackageTooLarge, 413, (
        "a single broker message over what the broker carries (16 MiB); packages over "
        "broker.chunk_bytes travel in chunks, so this is a message built another way")
    CHUNK_MALFORMED = auto(), PackageRejected, 422, (
        "a chunk message of a large package lacks or garbles its chunk headers: refused")
    CHUNK_CORRUPT = auto(), PackageRejected, 422, (
        "a chunk of a large package does not match its SHA-256: refused; the transfer completes "
        "only if the sender publishes it again, else it is abandoned")
    TRANSFER_CORRUPT = auto(), PackageRejected, 422, (
        "the chunks of a large package do not make the package their headers name (size or "
        "SHA-256): the transfer is dropped")
    TRANSFER_ABANDONED = auto(), PackageRejected, 422, (
        "a large package's transfer got no chunk within broker.transfer_timeout: its chunks "
        "were deleted; the sender must send it again")
    TEMPORARY_FAILURE = auto(), TemporaryFailure, 503, "something outside the package failed: retry"
    BROKER_UNAVAILABLE = auto(), BrokerUnavailable, 503, (
        "RabbitMQ cannot be reached or refused for now: check the broker, then retry")
    STORE_BUSY = auto(), StoreBusy, 503, (
        "the node's SQLite store is locked or out of space: free disk space, then retry")
    STORE_BODY_MISSING = auto(), StoreBusy, 503, (
        "a package body file under the store's bodies folder is missing: restore it from backup")
    CONFIG_ERROR = auto(), ConfigError, 500, "the node's configuration is wrong: see the message"
    TRUST_ERROR = auto(), TrustError, 500, (
        "trust material (CA, certificate, key, CRL) cannot be used: see the message")
    REQUEST_REFUSED = auto(), RequestRefused, 400, "the DMS request was refused: see the message"
    NOT_FOUND = auto(), NotFound, 404, (
        "no such document, package, call or entry: check the id or path named")

    # -- the hardened XML door (edxml.parser): always refused, under every profile
    XML_TOO_LARGE = auto(), HostileInput, 422, (
        "the bytes exceed the size limit before parsing: send a smaller package")
    XML_ENCODING = auto(), HostileInput, 422, "not UTF-8 (UTF-16, another charset): send UTF-8"
    XML_EMPTY = auto(), MalformedPackage, 422, "the input is empty: send the package's bytes"
    XML_NOT_XML = auto(), MalformedPackage, 422, (
        "not XML at all (binary data, NUL bytes, no '<'): send the edXML file itself")
    XML_DOCTYPE = auto(), HostileInput, 422, "a DOCTYPE (DTD) is never allowed in edXML: remove it"
    XML_ENTITY = auto(), HostileInput, 422, (
        "entity declarations or references are refused: remove them")
    XML_TOO_MANY_ELEMENTS = auto(), HostileInput, 422, (
        "more elements than limits.max_elements: refused before building the tree")
    XML_TOO_DEEP = auto(), HostileInput, 422, "elements nested deeper than limits.max_depth"

    # -- structure (edxml.read, edxml.schema, trust.structure)
    PACKAGE_NOT_EDXML = auto(), MalformedPackage, 422, (
        "the root element is not edXML in the QCVN 102:2016 namespace: send an edXML package")
    PACKAGE_STRUCTURE = auto(), MalformedPackage, 422, (
        "a required header element is missing (edXMLEnvelope/edXMLHeader/MessageHeader, ...)")
    PACKAGE_VALUE = auto(), MalformedPackage, 422, (
        "a value the model needs cannot be read (e.g. BussinessDocType not an integer)")
    SCHEMA_UNEXPECTED_ELEMENT = auto(), SchemaViolation, 422, (
        "an element the structure does not allow at that place: remove or move it")
    SCHEMA_MISSING_ELEMENT = auto(), SchemaViolation, 422, (
        "a required child element is missing: add it")
    ATTACHMENT_INVALID = auto(), MalformedPackage, 422, (
        "an attachment cannot be decoded or saved (name, base64): fix the Attachment named")

    # -- business rules (edxml.rule, edxml.manifest, edxml.direction); weights in edxml.profile
    CARDINALITY = auto(), RuleViolation, 422, (
        "an element occurs more or fewer times than the standard allows")
    ORGANID_FORMAT = auto(), RuleViolation, 422, (
        "an OrganId is not NNN.NN.NN.XNN (or the lenient NNN.NN.NN.XAA form)")
    DATE_FORMAT = auto(), RuleViolation, 422, (
        "a date is not a real yyyy/MM/dd date (dd/MM/yyyy is named as such)")
    TIMESTAMP_FORMAT = auto(), RuleViolation, 422, "a timestamp is not a real yyyy/MM/dd HH:mm:ss"
    PRIORITY_DOMAIN = auto(), RuleViolation, 422, "OtherInfo/Priority is not 0-4"
    STEERING_TYPE_DOMAIN = auto(), RuleViolation, 422, "SteeringType is not 1, 2 or 3"
    DOCUMENT_TYPE_DOMAIN = auto(), RuleViolation, 422, (
        "DocumentType/Type is not 1 or 2, or TypeDetail is not an integer")
    STATUS_CODE_DOMAIN = auto(), RuleViolation, 422, "StatusCode is not 01-06, 13, 15 or 16"
    BUSINESS_DOC_TYPE_DOMAIN = auto(), RuleViolation, 422, "BussinessDocType is not 0-3"
    RECEIVER_TYPE_DOMAIN = auto(), RuleViolation, 422, "Receiver/ReceiverType is not 0 or 1"
    BUSINESS_DOC_DETAIL = auto(), RuleViolation, 422, (
        "update details on a non-update, or replacements on a non-replace")
    INTEGER_FORMAT = auto(), RuleViolation, 422, (
        "PromulgationAmount, PageAmount or Paper is not an integer")
    BOOLEAN_FORMAT = auto(), RuleViolation, 422, "OtherInfo/Direction is not true/false"
    RECIPIENT_DUPLICATE = auto(), RuleViolation, 422, "the same OrganId appears twice in To"
    MANIFEST_UNMATCHED = auto(), RuleViolation, 422, (
        "a manifest Reference has no (or more than one) matching Attachment")
    ATTACHMENT_UNMATCHED = auto(), RuleViolation, 422, (
        "an Attachment has no matching manifest Reference")
    BASE64_INVALID = auto(), RuleViolation, 422, "ContentTransferEncoded is not valid base64"
    LENGTH_LIMIT = auto(), RuleViolation, 422, (
        "a value is longer than the limit production axes apply")
    STATUS_DIRECTION = auto(), RuleViolation, 422, (
        "a status goes the wrong way between the document's sender and recipient")
    EMPTY_ELEMENT = auto(), RuleViolation, 422, (
        "an optional container is present but empty (e.g. ResponseFor in a document)")
    SURPLUS_WHITESPACE = auto(), RuleViolation, 422, "a value has white space before or after it"

    # -- the node's journeys (node.submit, node.receive, node.receipt, gateway.backend)
    FROM_NOT_THIS_AGENCY = auto(), RuleViolation, 422, (
        "From/OrganId is another agency: a node sends only for its own organ_id")
    NOT_ADDRESSED_HERE = auto(), RuleViolation, 422, (
        "the package reached an agency it is not addressed to (To or ResponseFor)")
    STATUS_UNKNOWN_DOCUMENT = auto(), RuleViolation, 422, (
        "a status about a document never exchanged with its sender")
    STATUS_CODE_NOT_ALLOWED = auto(), RuleViolation, 422, (
        "this side of the exchange cannot send that status code: use one the message lists")
    MESSAGETYPE_MISMATCH = auto(), RuleViolation, 422, (
        "header messagetype names edoc but the package is a status (or the reverse)")
    TO_NOT_IN_PACKAGE = auto(), RuleViolation, 422, (
        "header to names an agency the package does not address: make them agree")
    SENDER_NO_USER_ID = auto(), SpoofedSender, 403, (
        "a broker message without user_id: its publisher is unknown, so it is refused")
    DOCUMENT_NOT_SENT = auto(), NotFound, 404, "no document with that id was sent (to that agency)"
    DOCUMENT_NOT_RECEIVED = auto(), NotFound, 404, (
        "no document with that id was received (from that agency)")
    FILE_UNREADABLE = auto(), NotFound, 404, "a file named on the command line cannot be read"
    UNROUTABLE = auto(), UnknownAgency, 422, (
        "the broker has no queue for the recipient: provision its agency on the broker, resend")

    # -- signatures (trust.signature, trust.structure, trust.xmldsig)
    SIG_MISSING = auto(), SignatureInvalid, 422, (
        "the package is unsigned: sign it, or let the node sign (sign_unsigned_submissions)")
    SIG_DUPLICATE = auto(), SignatureInvalid, 422, "more than one Signature: a package carries one"
    SIG_ALREADY_SIGNED = auto(), SignatureInvalid, 422, (
        "the package is already signed: sign it once")
    SIG_MISPLACED = auto(), SignatureInvalid, 422, (
        "the Signature is not the last child of edXMLHeader: move it there")
    SIG_STRUCTURE = auto(), SignatureInvalid, 422, (
        "the Signature's elements are not SignedInfo, SignatureValue, KeyInfo as XML-DSig wants")
    SIG_ALGORITHM = auto(), SignatureInvalid, 422, (
        "an algorithm (c14n, signature, digest, transform) not on the allow-list, or SHA-1")
    SIG_REFERENCE = auto(), SignatureInvalid, 422, (
        'not one Reference with URI="" and the enveloped-signature transform')
    SIG_KEYINFO = auto(), SignatureInvalid, 422, (
        "KeyInfo must carry the signer's X509Certificate (X509Data only): add it")
    SIG_COMMENT_INJECTION = auto(), SignatureInvalid, 422, (
        "a comment or processing instruction splits a signed text: refused as an attack")
    SIG_WRONG_NAMESPACE = auto(), SignatureInvalid, 422, (
        "the Signature is not in the XML-DSig namespace (edXML's only by signature policy)")
    SIG_DIGEST_MISMATCH = auto(), SignatureInvalid, 422, (
        "the package was changed after it was signed: ask the sender to send it again")
    SIG_VALUE = auto(), SignatureInvalid, 422, (
        "the signature value does not verify with the certificate in KeyInfo")
    SIGNER_MISMATCH = auto(), SignatureInvalid, 422, (
        "the certificate's OrganId is not From/OrganId: sign with the sender's own certificate")
    SIGN_FAILED = auto(), TrustError, 500, (
        "signing failed (key, certificate or algorithm): check keys.key and keys.cert")

    # -- certificates and CRLs (trust.chain, trust.signature)
    CERT_NOT_YET_VALID = auto(), SignatureInvalid, 422, (
        "the signer certificate is not valid yet: check the clocks of both sides")
    CERT_EXPIRED = auto(), SignatureInvalid, 422, (
        "the signer certificate has expired: the sender needs a new certificate")
    CERT_UNTRUSTED = auto(), SignatureInvalid, 422, (
        "the certificate does not chain to a configured trust anchor (trust.anchors)")
    CERT_REVOKED = auto(), SignatureInvalid, 422, (
        "the signer certificate is revoked by its CA's CRL: refused for good")
    CERT_KEY_USAGE = auto(), SignatureInvalid, 422, (
        "the certificate may not sign packages (needs digitalSignature+nonRepudiation, not a CA)")
    CERT_NO_ORGAN_ID = auto(), SignatureInvalid, 422, (
        "the certificate binds no single OrganId (urn:qcvn102:organid: SAN URI)")
    CERT_NOT_IN_DIRECTORY = auto(), SignatureInvalid, 422, (
        "the certificate's fingerprint is not listed for the sender: add it to the directory")
    CRL_MISSING = auto(), SignatureInvalid, 422, (
        "no CRL of the issuer is configured and signature.crl_required is on: add trust.crls")
    CRL_EXPIRED = auto(), SignatureInvalid, 422, (
        "the issuer's CRL is past its next update: fetch a fresh CRL")

    # -- trust material (trust.certificate, node.wiring, cli trust / pki, ops.devbench)
    TRUST_BAD_CERT = auto(), TrustError, 500, (
        "a certificate file is not PEM certificates: fix the file")
    TRUST_BAD_CRL = auto(), TrustError, 500, "a CRL file is neither PEM nor DER: fix the file"
    TRUST_BAD_KEY = auto(), TrustError, 500, (
        "the private key cannot be read, is not RSA/EC, or does not fit the certificate")
    TRUST_NO_ANCHORS = auto(), TrustError, 500, "no trust anchor is configured: set trust.anchors"
    TRUST_UNREADABLE = auto(), TrustError, 500, (
        "a trust anchor or CRL file cannot be read: check paths")
    TRUST_EXISTS = auto(), TrustError, 500, "the key or CA already exists: refused to overwrite it"
    TRUST_NO_CA = auto(), TrustError, 500, (
        "the folder holds no CA (ca.pem): make one with pki init-ca")
    TRUST_NO_CRL = auto(), TrustError, 500, (
        "the dev CA has no CRL: publish one with `edoc-axis pki crl`")
    TRUST_FOREIGN_CERT = auto(), TrustError, 500, "the certificate was not issued by this CA"
    KEYS_UNREADABLE = auto(), ConfigError, 500, (
        "the signing key or certificate (keys.*) cannot be read: check the paths and modes")

    # -- configuration (config, directory, cli admin)
    CONFIG_NOT_FOUND = auto(), ConfigError, 500, (
        "the config file does not exist or cannot be read: pass --config (edoc-axis init)")
    CONFIG_SYNTAX = auto(), ConfigError, 500, (
        "the config file is not valid TOML: fix the line named")
    CONFIG_TYPE = auto(), ConfigError, 500, (
        "a setting has the wrong type or form: fix the key named")
    CONFIG_UNKNOWN_KEY = auto(), ConfigError, 500, (
        "a key the config does not know (a typo?): fix or remove it")
    CONFIG_MISSING = auto(), ConfigError, 500, "a required setting is missing: add the key named"
    CONFIG_ORGAN_ID = auto(), ConfigError, 500, "organ_id is not an agency code like 000.00.00.G22"
    CONFIG_BROKER_URL = auto(), ConfigError, 500, "broker.url is not a usable amqp(s):// URL"
    CONFIG_BROKER_LOGIN = auto(), ConfigError, 500, (
        "broker.login is unknown, or certificate login lacks amqps://USER@ without a password")
    CONFIG_LIMIT = auto(), ConfigError, 500, (
        "a size setting is out of range (limits.max_package_bytes over 200 MiB, "
        "broker.chunk_bytes outside 64 KiB..15 MiB): fix it")
    CONFIG_PROFILE = auto(), ConfigError, 500, "validation.submit_profile is not strict or received"
    CONFIG_LISTEN = auto(), ConfigError, 500, "api.listen is not HOST:PORT"
    CONFIG_TIMEZONE = auto(), ConfigError, 500, "api.timezone is not a known zone or UTC offset"
    CONFIG_DMS = auto(), ConfigError, 500, (
        "a [[dms]] table is wrong (systemid, organ_id, secret): fix the key named")
    CONFIG_EXISTS = auto(), ConfigError, 500, "the config file exists: pass --force to overwrite it"
    DIRECTORY_NOT_FOUND = auto(), ConfigError, 500, "the agency directory file cannot be read"
    DIRECTORY_SYNTAX = auto(), ConfigError, 500, "the agency directory is not valid TOML"
    DIRECTORY_INVALID = auto(), ConfigError, 500, "the agency directory has errors: see the list"
    DIRECTORY_MISSING_SELF = auto(), ConfigError, 500, (
        "this node's organ_id is not in the agency directory: add the agency")
    DMS_AGENCY_MISMATCH = auto(), ConfigError, 500, (
        "a [[dms]] system is configured for another agency than this node's")
    DMS_SECRET_FILE = auto(), ConfigError, 500, "the DMS secret file cannot be read or is empty"
    DMS_SYSTEM_EXISTS = auto(), ConfigError, 500, (
        "a [[dms]] table already has that systemid: choose another one (or edit the config)")
    DMS_SECRET_EXISTS = auto(), ConfigError, 500, (
        "the secret file exists: refused to overwrite it (without --generate-secret it is used)")
    STORE_NOT_FOUND = auto(), ConfigError, 500, (
        "no node store (or not an edoc-axis one) at data_dir: fix data_dir; `run` creates it")

    # -- the broker (transport, cli broker)
    BROKER_URL_INVALID = auto(), ConfigError, 500, "pika cannot read the broker URL: fix broker.url"
    BROKER_TLS_CONFIG = auto(), ConfigError, 500, (
        "amqps:// needs broker.ca_files (and a client certificate for EXTERNAL login) that load")
    BROKER_TLS_UNTRUSTED = auto(), ConfigError, 500, (
        "the broker's TLS certificate does not verify against broker.ca_files: fix the CA files")
    BROKER_TLS_REFUSED = auto(), ConfigError, 500, (
        "the broker refused our TLS client certificate (untrusted CA, expired, none): renew it")
    BROKER_USER_NOT_CERTIFICATE = auto(), ConfigError, 500, (
        "with certificate login, a directory broker_user is not the name its certificate carries")
    BROKER_CERT_MISMATCH = auto(), ConfigError, 500, (
        "a certificate given to `broker definitions --certs` would not log in as its agency")
    BROKER_QUEUE_KEY = auto(), ConfigError, 500, (
        "the queue key file does not hold a hex key of at least 16 bytes")
    BROKER_AUTH_FAILED = auto(), ConfigError, 500, (
        "the broker refused the credentials: check the user and password (or certificate)")
    BROKER_VHOST_REFUSED = auto(), ConfigError, 500, (
        "the broker refused the user access to broker.url's vhost (none, or no permissions)")
    BROKER_ACCESS_REFUSED = auto(), BrokerUnavailable, 503, (
        "the broker refused access (403) to an exchange or queue: check the user's permissions")
    BROKER_CHANNEL_CLOSED = auto(), BrokerUnavailable, 503, "the broker closed the channel: retry"
    BROKER_NOT_FOUND = auto(), NotFound, 404, (
        "the broker has no such queue or exchange (404): declare the topology")
    BROKER_NACK = auto(), BrokerUnavailable, 503, (
        "the broker did not take a published message now: it is published again")
    BROKER_REPLAY_FAILED = auto(), BrokerUnavailable, 503, (
        "a dead letter could not be published again: check the broker, then retry")
    BROKER_ACCOUNT_INCOMPLETE = auto(), ConfigError, 500, (
        "a broker account lacks its OrganId, user or password")
    BROKER_ACCOUNT_DUPLICATE = auto(), ConfigError, 500, "an agency or broker user is listed twice"
    BROKER_NOT_LOCAL = auto(), ConfigError, 500, (
        "provision runs only against a local dev broker: import `broker definitions` instead")
    BROKER_CTL_MISSING = auto(), ConfigError, 500, "rabbitmqctl is not installed here"
    BROKER_PROVISION_FAILED = auto(), BrokerUnavailable, 503, (
        "rabbitmqctl failed or timed out: see its message, then retry")
    BROKER_PASSWORD_CONFLICT = auto(), ConfigError, 500, (
        "init --broker-url gives a password the bench's passwords file holds another one for")
    BROKER_PASSWORDS_SYNTAX = auto(), ConfigError, 500, (
        "a line of the passwords file is not USER=PASSWORD")

    # -- the DMS gateway's own refusals (gateway.auth, gateway.service, gateway.server)
    AUTH_MISSING = auto(), RequestRefused, 401, (
        "a required XroadVnpt-* header was not sent or not signed")
    AUTH_UNKNOWN_SYSTEM = auto(), RequestRefused, 401, (
        "no [[dms]] table has that systemid: use the node's systemid")
    AUTH_BAD_HMAC = auto(), RequestRefused, 401, (
        "the HMAC of the sign-header does not match: the secret is not the node's")
    AUTH_BAD_SIGN_HEADER = auto(), RequestRefused, 401, (
        "XroadVnpt-sign-header is not the compact JSON of the signed headers")
    AUTH_HEADER_MISMATCH = auto(), RequestRefused, 401, (
        "a header differs from (or is missing in) XroadVnpt-sign-header")
    AUTH_BAD_TIMESTAMP = auto(), RequestRefused, 401, (
        "the timestamp is not the SDK's ddMMyyyy'T'HHmmss+SSSS form")
    AUTH_TIMESTAMP_SKEW = auto(), RequestRefused, 401, (
        "the timestamp is too far ahead or too old: compare clocks and api.timezone")
    AUTH_REPLAY = auto(), RequestRefused, 401, (
        "these signed headers were answered already, for another body: sign afresh")
    AUTH_HEADER_ENCODING = auto(), RequestRefused, 401, (
        "a header arrived one byte per character (Java SDK): send ASCII or percent-encode")
    REQUEST_IN_PROGRESS = auto(), RequestRefused, 409, (
        "the same signed request is being answered: send it again after Retry-After")
    FROM_NOT_ALLOWED = auto(), RequestRefused, 403, (
        "this systemid may not send for that agency: use its [[dms]] organ_id as from")
    HASH_FILE_MISMATCH = auto(), RequestRefused, 400, (
        "hash-file is not the SHA-256 of the body: hash the bytes actually sent")
    BAD_REQUEST = auto(), RequestRefused, 400, (
        "a header or the body is missing or malformed: see message")
    BAD_HEADER = auto(), RequestRefused, 400, "a bad Content-Length header: send one decimal length"
    METHOD_NOT_ALLOWED = auto(), RequestRefused, 405, (
        "protocol calls are POST (service paths GET): use that method")
    LENGTH_REQUIRED = auto(), RequestRefused, 411, (
        "send a Content-Length, not chunked transfer encoding")
    BODY_TOO_LARGE = auto(), RequestRefused, 413, (
        "the body exceeds the gateway's limit: send a smaller package")
    HEADER_TOO_LARGE = auto(), RequestRefused, 431, "the request's headers are too large"
    HEADER_JSON_TOO_DEEP = auto(), RequestRefused, 400, (
        "JSON in a header (sign-header, to) is nested too deep: send the flat JSON of the SDK")
    BODY_INCOMPLETE = auto(), RequestRefused, 400, (
        "the body ended before its Content-Length: send the whole package")
    REQUEST_TIMEOUT = auto(), RequestRefused, 408, (
        "the headers or the body did not arrive within the gateway's deadline: send faster")
    TOO_MANY_CONNECTIONS = auto(), RequestRefused, 429, (
        "this client address has too many open connections: close idle ones, retry shortly")
    SERVER_BUSY = auto(), RequestRefused, 503, (
        "the gateway is at its connection limit: retry shortly")
    INTERNAL_ERROR = auto(), RequestRefused, 500, (
        "the gateway failed unexpectedly: the node log has the ref in the message")
    NODE_UNAVAILABLE = auto(), RequestRefused, 503, (
        "/healthz: the node behind the gateway does not answer: check the node")
    REMOTE_REFUSED = auto(), RequestRefused, 400, (
        "the gateway answered a code this version does not know (kept in the message)")

    # -- the DMS client and selftest (gateway.client, ops.sandbox)
    DMS_UNREACHABLE = auto(), TemporaryFailure, 503, (
        "nothing answers at the DMS endpoint: is the node running, is the URL its api.listen?")
    BAD_ANSWER = auto(), EdocAxisError, 400, (
        "the endpoint does not speak the axis protocol: is it the gateway's base URL?")
    BAD_ENDPOINT = auto(), EdocAxisError, 400, "the endpoint is not an http(s) URL"
    BAD_HEADER_VALUE = auto(), EdocAxisError, 400, "a header value holds CR or LF: remove them"
    SANDBOX_PORT_BUSY = auto(), ConfigError, 500, "the sandbox port is taken: choose another --port"
    SANDBOX_VHOST = auto(), ConfigError, 500, "--vhost: use 1-100 letters, digits, '.', '_' or '-'"
    SANDBOX_GATEWAY = auto(), ConfigError, 500, "the sandbox's DMS gateway did not start"
    SANDBOX_RUNNING = auto(), ConfigError, 500, "another sandbox runs on that --dir: stop it"
    NODE_RUNNING = auto(), EdocAxisError, 400, (
        "another `edoc-axis run` (pid named) holds this data_dir: stop it, or use another data_dir")
    SANDBOX_NOT_READY = auto(), TemporaryFailure, 503, (
        "the sandbox nodes did not exchange their welcome document in time: check the broker")

    # -- the audit chain and evidence (audit.*): raised, or listed in a verification report
    AUDIT_MALFORMED = auto(), EdocAxisError, 400, "an audit entry or checkpoint cannot be read"
    AUDIT_CHECKPOINT_SIGNATURE = auto(), SignatureInvalid, 422, (
        "a checkpoint's signature does not verify with a trusted agency certificate")
    AUDIT_NOT_SEALED = auto(), EdocAxisError, 400, (
        "entries after the last checkpoint: seal the chain first (`edoc-axis audit seal`)")
    AUDIT_EMPTY = auto(), EdocAxisError, 400, "nothing to archive"
    AUDIT_GAP = auto(), EdocAxisError, 400, "the entries to archive are not consecutive"
    AUDIT_BUNDLE_MALFORMED = auto(), EdocAxisError, 400, (
        "the evidence file is not a readable bundle or archive (zip, manifest)")
    AUDIT_BUNDLE_NAME = auto(), EdocAxisError, 400, "a package file name is unusable or repeated"
    AUDIT_NO_DOCUMENT = auto(), NotFound, 404, "no audit entry is about that document"
    AUDIT_NO_KEY = auto(), NotFound, 404, "sealing needs the node's signing key (keys.*)"
    AUDIT_EDITED = auto(), AuditProblem, 400, "an entry's fields were changed after it was written"
    AUDIT_DELETED = auto(), AuditProblem, 400, "entries are missing (deleted)"
    AUDIT_INSERTED = auto(), AuditProblem, 400, "an entry was inserted into the chain"
    AUDIT_REORDERED = auto(), AuditProblem, 400, "entries were reordered"
    AUDIT_LINK_BROKEN = auto(), AuditProblem, 400, "an entry does not link to the hash before it"
    AUDIT_CHECKPOINT_HEAD = auto(), AuditProblem, 400, (
        "the chain no longer matches a checkpoint's signed head: rewritten after sealing")
    AUDIT_CHECKPOINT_MISSING = auto(), AuditProblem, 400, (
        "a checkpoint entry points at no stored checkpoint (deleted)")
    AUDIT_TRUNCATED = auto(), AuditProblem, 400, (
        "a checkpoint names entries beyond the end of the log")
    AUDIT_UNSEALED_TAIL = auto(), AuditProblem, 400, (
        "entries left unsealed past the checkpoint interval (node killed, or checkpoints "
        "removed): `edoc-axis audit seal`")
    AUDIT_RECEIPT_INVALID = auto(), AuditProblem, 400, (
        "the signed package behind an entry is missing or does not verify")
    AUDIT_ARCHIVE_MANIFEST = auto(), AuditProblem, 400, (
        "an archive's manifest does not describe its entries (count or head hash)")
    AUDIT_BUNDLE_UNSEALED = auto(), AuditProblem, 400, (
        "a chain segment of the bundle does not end on a valid checkpoint")
    AUDIT_BUNDLE_EMPTY = auto(), AuditProblem, 400, "the bundle holds no entry about its document"
    AUDIT_BUNDLE_PACKAGE = auto(), AuditProblem, 400, (
        "a package in the bundle matches no sealed entry")
    AUDIT_BUNDLE_UNTRUSTED = auto(), AuditProblem, 400, (
        "the bundle's checkpoints are signed by a certificate no --trust CA issued: verify with "
        "the CA of the bundle's agency (nothing was found altered)")


# Each class's own code: what an error raised without one carries.
for _own in (
    ErrorCode.EDOC_AXIS_ERROR, ErrorCode.PACKAGE_REJECTED, ErrorCode.XML_HOSTILE,
    ErrorCode.XML_MALFORMED, ErrorCode.SCHEMA_VIOLATION, ErrorCode.RULE_VIOLATION,
    ErrorCode.SIG_INVALID, ErrorCode.AGENCY_UNKNOWN, ErrorCode.SENDER_SPOOFED,
    ErrorCode.PACKAGE_TOO_LARGE, ErrorCode.TEMPORARY_FAILURE, ErrorCode.BROKER_UNAVAILABLE,
    ErrorCode.STORE_BUSY, ErrorCode.CONFIG_ERROR, ErrorCode.TRUST_ERROR,
    ErrorCode.REQUEST_REFUSED, ErrorCode.NOT_FOUND,
):
    _own.error.code = _own
