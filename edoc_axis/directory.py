"""The agency directory: who is on the axis, under which broker user, with which certificates.

A TOML file of ``[[agency]]`` tables (see ``config/directory.example.toml``) binding each
agency's OrganId to its newer national code, name, parent, broker user and the SHA-256
fingerprints of its signing certificates (several at once during a key rollover). The file is
validated as a whole on load and every problem is reported at once, so an administrator fixes
the file in one pass. Lookups by OrganId, broker user and fingerprint serve the node's identity
checks (OrganId <-> certificate <-> broker user).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from edoc_axis.edxml.identifier import is_valid_organ_id, organ_parent
from edoc_axis.errors import ConfigError, ErrorCode, UnknownAgency

NATIONAL_CODE = re.compile(r"^[0-9A-Z.]{1,35}$")  # Decision 20/2020/QĐ-TTg identifiers
FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
# Anything RabbitMQ and (percent-encoded) an AMQP URL carry, including the ':' of the
# urn:qcvn102:organid:<OrganId> user an agency's certificate logs in as.
_BROKER_USER = re.compile(r"^[^\s/@]{1,255}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REQUIRED = ("organ_id", "code", "name", "broker_user")
_OPTIONAL_TEXT = ("parent", "email", "phone", "fax")


@dataclass(frozen=True, slots=True)
class Agency:
    """One agency on the axis."""

    organ_id: str
    code: str
    name: str
    parent: str | None
    broker_user: str
    fingerprints: tuple[str, ...] = ()
    email: str | None = None
    phone: str | None = None
    fax: str | None = None

    def trusts(self, fingerprint: str) -> bool:
        """Whether a certificate with this SHA-256 fingerprint may sign for this agency."""
        return normalize_fingerprint(fingerprint) in self.fingerprints

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (absent optional fields left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def normalize_fingerprint(value: str) -> str:
    """Lowercase hex without separators (``AB:CD:..`` as openssl prints it -> ``abcd..``)."""
    return value.strip().replace(":", "").lower()


class Directory:
    """Every agency on the axis, validated as a whole; lookups by OrganId, user, fingerprint."""

    def __init__(self, agencies: Iterable[Agency], *, source: str = "<directory>") -> None:
        self.source = source
        self._agencies = tuple(agencies)
        problems = _problems(self._agencies)
        if problems:
            raise _error(problems, source)
        self._by_id = {a.organ_id: a for a in self._agencies}
        self._by_user = {a.broker_user: a for a in self._agencies}
        self._by_fingerprint = {fp: a for a in self._agencies for fp in a.fingerprints}

    @classmethod
    def load(cls, path: Path) -> Directory:
        """Read and validate a directory file; ``ConfigError`` lists every problem in it."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"agency directory {path} does not exist", code=ErrorCode.DIRECTORY_NOT_FOUND
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read agency directory {path}: {exc}", code=ErrorCode.DIRECTORY_NOT_FOUND
            ) from exc
        return cls.parse(text, source=str(path))

    @classmethod
    def parse(cls, text: str, *, source: str = "<directory>") -> Directory:
        """Validate directory TOML text."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"agency directory {source} is not valid TOML: {exc}",
                code=ErrorCode.DIRECTORY_SYNTAX
            ) from exc
        return cls.from_data(data, source=source)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, source: str = "<directory>") -> Directory:
        """Validate the decoded TOML of a directory (``{"agency": [{...}, ...]}``)."""
        problems: list[str] = []
        for key in data:
            if key != "agency":
                problems.append(
                    f"unknown top-level key '{key}' (only [[agency]] tables belong here)"
                )
        tables = data.get("agency", [])
        if not isinstance(tables, list):
            problems.append("'agency' must be an array of tables ([[agency]])")
            tables = []
        agencies: list[Agency] = []
        for index, table in enumerate(tables, start=1):
            agency = _agency_from_table(index, table, problems)
            if agency is not None:
                agencies.append(agency)
        if problems:
            # Report table-level problems together with the cross-agency ones.
            problems.extend(_problems(agencies))
            raise _error(problems, source)
        return cls(agencies, source=source)

    @property
    def agencies(self) -> tuple[Agency, ...]:
        """Every agency, in file order."""
        return self._agencies

    def get(self, organ_id: str) -> Agency:
        """The agency with this OrganId; ``UnknownAgency`` when the directory does not list it."""
        agency = self._by_id.get(organ_id)
        if agency is None:
            raise UnknownAgency(
                f"agency {organ_id} is not in the agency directory", agency=organ_id
            )
        return agency

    def find(self, organ_id: str) -> Agency | None:
        """The agency with this OrganId, or None."""
        return self._by_id.get(organ_id)

    def by_broker_user(self, user: str) -> Agency | None:
        """The agency whose broker user this is, or None."""
        return self._by_user.get(user)

    def by_fingerprint(self, fingerprint: str) -> Agency | None:
        """The agency that lists this certificate fingerprint, or None."""
        return self._by_fingerprint.get(normalize_fingerprint(fingerprint))

    def children(self, organ_id: str) -> tuple[Agency, ...]:
        """Agencies whose parent is ``organ_id``."""
        return tuple(a for a in self._agencies if a.parent == organ_id)

    def __contains__(self, organ_id: object) -> bool:
        return organ_id in self._by_id

    def __iter__(self) -> Iterator[Agency]:
        return iter(self._agencies)

    def __len__(self) -> int:
        return len(self._agencies)

    def problems(self) -> list[str]:
        """Entries that load but cannot work: an agency without any certificate fingerprint."""
        return [
            f"{agency.organ_id}: no certificate fingerprint listed; "
            "no signature from this agency (not even a receipt) can be accepted"
            for agency in self._agencies
            if not agency.fingerprints
        ]

    def warnings(self) -> list[str]:
        """Oddities worth a look that do not stop anything (reported by ``directory check``)."""
        out: list[str] = []
        for agency in self._agencies:
            expected = organ_parent(agency.organ_id) if is_valid_organ_id(agency.organ_id) else None
            if agency.parent and expected and expected != agency.parent and expected in self:
                out.append(
                    f"{agency.organ_id}: parent {agency.parent} differs from {expected}, "
                    "the parent its OrganId implies"
                )
        return out

    def check_certificates(
        self, certificates: Iterable[CertificateFacts]
    ) -> tuple[list[str], list[str]]:
        """Problems and warnings between the directory and a set of certificates.

        Problems: a certificate naming no listed agency, or whose agency does not list its
        fingerprint, or listed under another agency, or expired. Warnings: an agency none of
        whose fingerprints belongs to a given certificate (the set may be partial).
        """
        problems: list[str] = []
        warnings: list[str] = []
        seen: set[str] = set()
        for cert in certificates:
            seen.add(cert.fingerprint)
            where = f"{cert.source} ({cert.fingerprint[:16]}...)"
            if cert.organ_id is None:
                problems.append(f"{where}: carries no single OrganId")
                continue
            agency = self.find(cert.organ_id)
            if agency is None:
                problems.append(f"{where}: OrganId {cert.organ_id} is not in the directory")
            elif not agency.trusts(cert.fingerprint):
                problems.append(
                    f"{where}: fingerprint not listed for {cert.organ_id}; "
                    "its signatures would be refused"
                )
            owner = self.by_fingerprint(cert.fingerprint)
            if owner is not None and owner.organ_id != cert.organ_id:
                problems.append(
                    f"{where}: listed under {owner.organ_id} but issued to {cert.organ_id}"
                )
            if cert.expired:
                problems.append(f"{where}: certificate of {cert.organ_id} has expired")
        for agency in self._agencies:
            if agency.fingerprints and not any(fp in seen for fp in agency.fingerprints):
                warnings.append(
                    f"{agency.organ_id}: none of its fingerprints matches a given certificate"
                )
        return problems, warnings


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """What ``check_certificates`` needs to know about one certificate (computed by trust)."""

    source: str
    fingerprint: str
    organ_id: str | None
    expired: bool = False


def _agency_from_table(index: int, table: Any, problems: list[str]) -> Agency | None:
    if not isinstance(table, dict):
        problems.append(f"agency #{index}: must be a table")
        return None
    label = f"agency #{index}"
    if isinstance(table.get("organ_id"), str):
        label += f" ({table['organ_id']})"
    known = {f.name for f in fields(Agency)}
    mine = [f"{label}: unknown key '{key}'" for key in table if key not in known]
    values = _text_values(label, table, mine)
    prints = table.get("fingerprints", [])
    if not isinstance(prints, list) or not all(isinstance(p, str) for p in prints):
        mine.append(f"{label}: 'fingerprints' must be a list of strings")
    else:
        values["fingerprints"] = tuple(normalize_fingerprint(p) for p in prints)
    problems.extend(mine)
    return None if mine else Agency(**values)


def _text_values(label: str, table: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in (*_REQUIRED, *_OPTIONAL_TEXT):
        value = table.get(key)
        if value is None and key in _OPTIONAL_TEXT:
            values[key] = None
            continue
        if not isinstance(value, str) or (key in _REQUIRED and not value.strip()):
            kind = "is required (a non-empty string)" if key in _REQUIRED else "must be a string"
            problems.append(f"{label}: '{key}' {kind}")
        else:
            values[key] = value.strip() or None
    return values


def _problems(agencies: Iterable[Agency]) -> list[str]:
    """Every problem of a list of agencies, one line each."""
    agencies = list(agencies)
    problems: list[str] = []
    first_seen: dict[tuple[str, str], int] = {}
    ids = {a.organ_id for a in agencies}
    for index, agency in enumerate(agencies):
        label = agency.organ_id
        problems.extend(f"{label}: {p}" for p in _field_problems(agency, ids))
        keys = [("OrganId", agency.organ_id), ("code", agency.code),
                ("broker_user", agency.broker_user)]
        keys += [("fingerprint", fp) for fp in dict.fromkeys(agency.fingerprints)]
        for kind, value in keys:
            other = first_seen.setdefault((kind, value), index)
            if other != index:
                problems.append(
                    f"{label}: {kind} {value} is already used by agency #{other + 1} "
                    f"({agencies[other].organ_id})"
                )
    problems.extend(_cycles(agencies))
    return problems


def _field_problems(agency: Agency, ids: set[str]) -> Iterator[str]:
    if not is_valid_organ_id(agency.organ_id):
        yield "is not a valid OrganId (expected like 000.00.00.G22)"
    if not NATIONAL_CODE.match(agency.code):
        yield f"code '{agency.code}' must be 1-35 characters of 0-9, A-Z and '.'"
    if not agency.name.strip():
        yield "name is empty"
    if not _BROKER_USER.match(agency.broker_user):
        yield (
            f"broker_user '{agency.broker_user}' must be 1-255 characters without spaces, "
            "'/' or '@'"
        )
    if agency.parent is not None:
        if agency.parent == agency.organ_id:
            yield "is its own parent"
        elif agency.parent not in ids:
            yield f"parent {agency.parent} is not in the directory"
    if len(set(agency.fingerprints)) != len(agency.fingerprints):
        yield "lists the same fingerprint twice"
    for fp in agency.fingerprints:
        if not FINGERPRINT.match(fp):
            yield f"fingerprint '{fp}' is not 64 hex digits (SHA-256 of the DER certificate)"
    if agency.email is not None and not _EMAIL.match(agency.email):
        yield f"email '{agency.email}' is not an e-mail address"


def _cycles(agencies: list[Agency]) -> list[str]:
    parent_of = {a.organ_id: a.parent for a in agencies if a.parent and a.parent != a.organ_id}
    reported: set[str] = set()
    out: list[str] = []
    for start in parent_of:
        path: list[str] = []
        node: str | None = start
        while node is not None and node not in path:
            path.append(node)
            node = parent_of.get(node)
        if node is not None and node not in reported:
            loop = path[path.index(node) :]
            reported.update(loop)
            out.append(f"{node}: parents form a cycle ({' -> '.join([*loop, node])})")
    return out


def _error(problems: list[str], source: str) -> ConfigError:
    if len(problems) == 1:
        return ConfigError(f"agency directory {source}: {problems[0]}",
                           code=ErrorCode.DIRECTORY_INVALID)
    lines = "\n".join(f"  - {p}" for p in problems)
    return ConfigError(
        f"agency directory {source} has {len(problems)} problems:\n{lines}",
        code=ErrorCode.DIRECTORY_INVALID,
    )


# --- writing: `edoc-axis init` adds or updates one agency -----------------------------------

DIRECTORY_HEADER = """\
# edoc_axis agency directory: every agency on the axis, one [[agency]] table each.
#   organ_id      OrganId (mã định danh, QCVN 102:2016), e.g. 000.00.00.G22
#   code          newer national identifier (Decision 20/2020/QĐ-TTg): <= 35 chars of 0-9 A-Z .
#   name          the agency's name
#   parent        OrganId of the parent agency (optional; must be listed here too)
#   broker_user   the RabbitMQ user of this agency's node (messages carry it as user_id)
#   fingerprints  SHA-256 of each signing certificate (DER), lowercase hex; list the old and the
#                 new one during a key rollover (`edoc-axis pki show CERT` prints it)
#   email, phone, fax  contact details (optional)
# Check the file with `edoc-axis directory check`.
"""


def render_agency(agency: Agency) -> str:
    """One ``[[agency]]`` table as TOML text."""
    lines = ["[[agency]]"]
    for f in fields(agency):
        value = getattr(agency, f.name)
        if value is None:
            continue
        if isinstance(value, tuple):
            if len(value) <= 1:
                rendered = "[" + ", ".join(json.dumps(v) for v in value) + "]"
            else:
                rendered = "[\n" + "".join(f"  {json.dumps(v)},\n" for v in value) + "]"
        else:
            rendered = json.dumps(value, ensure_ascii=False)  # valid TOML basic string
        lines.append(f"{f.name} = {rendered}")
    return "\n".join(lines) + "\n"


def upsert_agency_text(text: str, agency: Agency) -> str:
    """``text`` (a directory file) with ``agency``'s table replaced, or appended when new.

    Comments and other agencies' tables are kept as written.
    """
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == "[[agency]]"]
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        # Trailing comments and blank lines belong to what follows, not to this table.
        body_end = end
        while body_end > start + 1 and _is_filler(lines[body_end - 1]):
            body_end -= 1
        block = "".join(lines[start:body_end])
        try:
            tables = tomllib.loads(block).get("agency", [])
        except tomllib.TOMLDecodeError:
            continue
        if tables and tables[0].get("organ_id") == agency.organ_id:
            return "".join([*lines[:start], render_agency(agency), *lines[body_end:]])
    head = text if text else DIRECTORY_HEADER
    if head and not head.endswith("\n"):
        head += "\n"
    return f"{head}\n{render_agency(agency)}"


def _is_filler(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def save_agency(path: Path, agency: Agency) -> Directory:
    """Add or update ``agency`` in the directory file at ``path`` (created when missing).

    The result is validated before it replaces the file (atomically), so a bad entry never
    reaches the disk; returns the new directory.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    new_text = upsert_agency_text(text, agency)
    directory = Directory.parse(new_text, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new_text, encoding="utf-8")
    os.replace(tmp, path)
    return directory


def with_fingerprint(agency: Agency, fingerprint: str, *, keep_old: bool = True) -> Agency:
    """``agency`` listing ``fingerprint`` too (first), or only it when ``keep_old`` is False."""
    fp = normalize_fingerprint(fingerprint)
    old = tuple(f for f in agency.fingerprints if f != fp) if keep_old else ()
    return replace(agency, fingerprints=(fp, *old))


__all__ = [
    "Agency",
    "CertificateFacts",
    "Directory",
    "normalize_fingerprint",
    "render_agency",
    "save_agency",
    "upsert_agency_text",
    "with_fingerprint",
]
