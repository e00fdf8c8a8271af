"""The annotated TOML of node settings: the shipped example and the file ``init`` writes.

``render_config`` writes every key of ``config.schema`` with its explanation, paths under the
file's folder made relative, so that loading the result gives back equal settings. The example
(``config/node.example.toml``) is ``render_example()`` verbatim (a test keeps them equal).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edoc_axis.config.dms import MIN_DMS_SECRET_CHARS
from edoc_axis.config.schema import SECTIONS, TOP_KEYS, section_keys
from edoc_axis.config.settings import BrokerSettings, KeySettings, Settings, TrustSettings
from edoc_axis.errors import ConfigError, ErrorCode

_HEADER = """\
# edoc_axis node configuration (TOML).
#
# Every key can be overridden by an environment variable: EDOC_AXIS_<KEY> for the top-level keys
# (EDOC_AXIS_ORGAN_ID, EDOC_AXIS_DATA_DIR, EDOC_AXIS_DIRECTORY) and EDOC_AXIS_<SECTION>_<KEY> for
# the others (EDOC_AXIS_BROKER_URL, EDOC_AXIS_SIGNATURE_REQUIRE_SIGNATURE=false, ...). Lists come
# from the environment as comma-separated values. EDOC_AXIS_CONFIG names this file.
# Relative paths in this file are resolved against the folder this file is in.
# Unknown keys are refused, so a misspelt key is an error rather than a silent default.
# Check a node with `edoc-axis doctor`.
"""

_DOCS: dict[str, str] = {
    "organ_id": "This agency's code (OrganId, mã định danh, QCVN 102:2016), e.g. 000.00.00.G22.\n"
    "It must be listed in the agency directory with this node's certificate fingerprint.",
    "data_dir": "Folder for the node's state: the SQLite store (node.sqlite3) and working files.\n"
    "Must be writable by the node and backed up.",
    "directory": "The agency directory (TOML, [[agency]] tables): every agency's OrganId, code,\n"
    "name, parent, broker user and certificate fingerprints. See directory.example.toml.",
    "broker": "RabbitMQ connection.",
    "broker.url": "amqp:// or amqps:// URL: amqp://USER:PASSWORD@HOST:PORT/VHOST (vhost %2F = /).\n"
    "USER is this agency's broker user; it must equal broker_user in the directory, because\n"
    "RabbitMQ stamps it on every message as user_id and recipients check it against From.\n"
    "With login = \"certificate\": amqps://USER@HOST:5671/VHOST, no password; USER is what the\n"
    "certificate logs in as, urn%3Aqcvn102%3Aorganid%3A<OrganId> (':' written %3A).",
    "broker.heartbeat": "AMQP heartbeat in seconds: a dead connection is noticed within ~2x this.",
    "broker.blocked_connection_timeout": "Seconds to wait while the broker blocks publishers\n"
    "(memory or disk alarm) before dropping the connection and reconnecting.",
    "broker.prefetch": "Unacknowledged deliveries the broker may push to this node at once.",
    "broker.publish_window": "Published messages awaiting a publisher confirm at once.",
    "broker.delivery_limit": "Deliveries of one message before it is dead-lettered (poison\n"
    "messages); must match the queue's x-delivery-limit.",
    "broker.login": "\"password\" (the URL's USER:PASSWORD; the dev bench) or \"certificate\":\n"
    "over amqps, log in as this agency's certificate ([keys] cert and key; RabbitMQ's EXTERNAL\n"
    "mechanism): no broker password exists, the broker user is the certificate's identity.",
    "broker.ca_files": "CA certificates (PEM) the broker's TLS certificate must chain to, for\n"
    "amqps. Empty: the [trust] anchors. The system's CA store is never used.",
    "broker.queue_token": "The token ending this agency's queue names, from the broker's\n"
    "administrator (`edoc-axis broker queue-token`): without it another agency could read this\n"
    "agency's queue depth. Empty: the plain names edoc.in.<OrganId> (dev bench).",
    "broker.chunk_bytes": "A package larger than this travels as chunk messages of this size\n"
    "(64 KiB to 15 MiB), each confirmed, assembled on disk by the recipient.",
    "broker.transfer_timeout": "Seconds a partly received large package may wait for its next\n"
    "chunk before its chunks are deleted (TRANSFER_ABANDONED).",
    "keys": "This agency's signing identity (PEM files).",
    "keys.key": "Private key signing packages and receipts. Keep it readable by the node only.",
    "keys.cert": "Certificate of that key; carries this agency's OrganId.",
    "keys.chain": "Intermediate CA certificates sent along with signatures (may be empty).",
    "trust": "What this node trusts when verifying other agencies' signatures.",
    "trust.anchors": "Root CA certificates (PEM). Signatures must chain to one of these.",
    "trust.crls": "Certificate revocation lists (PEM or DER), refreshed by the administrator.",
    "signature": "Signature policy.",
    "signature.require_signature": "Refuse packages that carry no XML signature.",
    "signature.allow_sha1": "Accept SHA-1 digests/signatures (legacy peers only; weak).",
    "signature.crl_required": "Fail closed: refuse a signature when no fresh CRL covers its\n"
    "issuer. Turn off only on a test bench.",
    "signature.sign_unsigned_submissions": "Sign documents submitted to this node unsigned\n"
    "(by `edoc-axis send` or the DMS API) with this agency's key before sending.",
    "signature.accept_unsigned_status": "Accept unsigned status packages from legacy peers.",
    "signature.accept_edxml_namespace": "Verify a Signature written in the edXML namespace (some\n"
    "producers drop the XML-DSig namespace) as XML-DSig, with a warning; off: refused.",
    "limits": "Bounds for every package parsed (hostile input protection).",
    "limits.max_package_bytes": "Largest package in bytes, at every door (DMS gateway,\n"
    "send, reception, the parser). 50 MiB by default; at most 200 MiB (209715200).\n"
    "A package over broker.chunk_bytes crosses the broker in chunks.",
    "limits.max_depth": "Deepest XML nesting accepted.",
    "limits.max_elements": "Most XML elements accepted in one package.",
    "validation": "How strictly packages are judged (reception profiles). Received packages are\n"
    "always judged by \"received\": harmless deviations the deployed axis delivers (an empty\n"
    "optional element, an odd OrganId in a TraceHeader, white space around a value) are kept\n"
    "as warnings with the package; everything touching security or routing is refused.",
    "validation.submit_profile": "Profile for packages this node sends (`edoc-axis send`, the\n"
    "DMS gateway): \"strict\" refuses every finding; \"received\" lets the harmless ones through.",
    "api": "HTTP API for document management software (DMS).",
    "api.listen": "HOST:PORT the DMS gateway listens on (keep it on loopback or a private\n"
    "network unless tls_cert is set: DMS systems authenticate by HMAC, but plain HTTP is\n"
    "readable on the way).",
    "api.enabled": "Serve the gateway even when no [[dms]] system is configured (health and\n"
    "metrics only). It is always served when [[dms]] tables exist.",
    "api.max_timestamp_age": "Oldest accepted request timestamp, in seconds. 0 = no limit: the\n"
    "Java SDK stamps the time once, when its object is created, and DMS software keeps one\n"
    "object for its whole life. Exact repeats of a signed request are answered from the store\n"
    "and change nothing, whatever its age. Set a limit (e.g. 300) only for DMS software that\n"
    "builds a fresh SDK object per call. Timestamps more than 300 s ahead are always refused.",
    "api.timezone": "Time zone of the DMS host's clock: the SDK's timestamp carries no zone.\n"
    "An IANA name (Asia/Ho_Chi_Minh, UTC) or an offset (+07:00). List times are answered in it.",
    "api.tls_cert": "Serve HTTPS with this certificate (PEM, the server certificate first,\n"
    "then its intermediates) and tls_key. Unset: plain HTTP.",
    "api.tls_key": "The private key (PEM) of tls_cert.",
    "api.tls_client_ca": "Also require a client certificate from every DMS, issued by a CA in\n"
    "this PEM file (needs tls_cert). Unset: HMAC only.",
    "audit": "The tamper-evident audit chain: how often its head is signed (a checkpoint).\n"
    "Entries after the last checkpoint are not yet sealed; `edoc-axis audit seal` forces one.",
    "audit.every_entries": "Sign a checkpoint after this many new entries.",
    "audit.every_seconds": "... or when the last checkpoint is this many seconds old: checked at\n"
    "each new entry and, while the node runs, on a timer (a quarter of this, at most 15 s). A\n"
    "clean stop seals the rest; `audit verify` reports entries left unsealed much longer.",
}


# What an optional key left unset (None) is shown with, commented out.
_UNSET_EXAMPLES = {
    "api.tls_cert": "tls/gateway.cert.pem",
    "api.tls_key": "tls/gateway.key.pem",
    "api.tls_client_ca": "tls/dms-client-ca.pem",
}


def _toml_value(value: Any, base: Path | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:_}" if value >= 10_000 else str(value)
    if isinstance(value, Path):
        return json.dumps(_relative(value, base), ensure_ascii=False)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(item, base) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _relative(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in text.splitlines())


def render_config(settings: Settings, *, base_dir: Path | None = None) -> str:
    """Annotated TOML for ``settings``; paths under ``base_dir`` are written relative to it.

    Writing the result to a file in ``base_dir`` and loading it gives back equal settings.
    """
    out = [_HEADER]
    for key in TOP_KEYS:
        value = _toml_value(getattr(settings, key.attr), base_dir)
        out.append(f"\n{_comment(_DOCS[key.dotted])}{key.dotted} = {value}\n")
    for section in SECTIONS:
        obj = getattr(settings, section)
        out.append(f"\n{_comment(_DOCS[section])}[{section}]\n")
        for key in section_keys(section):
            name = key.dotted.split(".", 1)[1]
            current = getattr(obj, key.attr)
            if current is None:  # an optional key left unset: shown commented out
                unset = f"# {name} = {_toml_value(_UNSET_EXAMPLES[key.dotted], None)}\n"
                out.append(f"{_comment(_DOCS[key.dotted])}{unset}")
                continue
            value = _toml_value(current, base_dir)
            out.append(f"{_comment(_DOCS[key.dotted])}{name} = {value}\n")
    out.append(_render_dms(settings))
    return "".join(out)


_DMS_DOC = """\
DMS systems allowed to call the gateway (one [[dms]] table each). systemid and secret are
what the DMS's axis SDK is configured with; organ_id must be this node's organ_id. Use
secret_file = "path" instead of secret to keep the secret out of this file. The DMS points
its SDK endpoint at http://<api.listen>/ and sees each package's node id as its docId.
"""


def _render_dms(settings: Settings) -> str:
    if not settings.dms:
        example = (
            f'[[dms]]\nsystemid = "vbdh"\nsecret = "CHANGE-ME-{"0" * MIN_DMS_SECRET_CHARS}"\n'
            f"organ_id = {_toml_value(settings.organ_id, None)}\n"
        )
        return "\n" + _comment(_DMS_DOC) + _comment(example)
    tables = "".join(
        f"[[dms]]\nsystemid = {_toml_value(s.systemid, None)}\n"
        f"secret = {_toml_value(s.secret, None)}\norgan_id = {_toml_value(s.organ_id, None)}\n"
        for s in settings.dms
    )
    return "\n" + _comment(_DMS_DOC) + tables


def example_settings(base_dir: Path) -> Settings:
    """The settings of the annotated example (the Government Office's node)."""
    return Settings(
        organ_id="000.00.00.G22",
        data_dir=Path("/var/lib/edoc-axis"),
        directory_path=base_dir / "directory.example.toml",
        broker=BrokerSettings(
            url="amqps://urn%3Aqcvn102%3Aorganid%3A000.00.00.G22@broker.example.gov.vn:5671/edoc",
            login="certificate",
            queue_token="CHANGE-ME-ask-the-broker-administrator"),  # noqa: S106 - a placeholder
        keys=KeySettings(
            key=base_dir / "keys" / "agency.key.pem", cert=base_dir / "keys" / "agency.cert.pem"
        ),
        trust=TrustSettings(
            anchors=(base_dir / "trust" / "root-ca.pem",),
            crls=(base_dir / "trust" / "root-ca.crl",),
        ),
    )


def render_example() -> str:
    """The annotated example config shipped as ``config/node.example.toml``."""
    base = Path("/example")
    return render_config(example_settings(base), base_dir=base)


def write_config(path: Path, settings: Settings, *, force: bool = False) -> None:
    """Write ``settings`` as an annotated TOML file at ``path`` (mode 0600: it holds a password).

    Refuses to replace an existing file unless ``force``; paths under the file's folder are
    written relative to it so the node folder can be moved as a whole.
    """
    path = Path(path).absolute()
    if path.exists() and not force:
        raise ConfigError(
            f"{path} already exists; pass --force to overwrite it", code=ErrorCode.CONFIG_EXISTS
        )
    text = render_config(settings, base_dir=path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
