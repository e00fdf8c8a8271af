"""``edoc-axis validate`` and ``edoc-axis package new|show``: check, build and read packages.

These commands parse arguments, then call ``edxml.schema``, ``edxml.read`` and ``edxml.write``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import tomllib
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from edoc_axis.cli.base import reported_errors
from edoc_axis.cli.display import edxml_time
from edoc_axis.edxml.attachment import Attachment, Unpacked, write_attachment
from edoc_axis.edxml.identifier import VN_TZ, format_date, make_document_id
from edoc_axis.edxml.limits import DEFAULT_MAX_BYTES, XmlLimits
from edoc_axis.edxml.model import (
    BUSINESS_DOC_TYPES,
    PRIORITIES,
    STATUS_CODES,
    STEERING_TYPES,
    Business,
    BusinessDocumentInfo,
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    OtherInfo,
    Package,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusPackage,
)
from edoc_axis.edxml.profile import PROFILES, STRICT
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.schema import ValidationReport, validate
from edoc_axis.edxml.status import new_status
from edoc_axis.edxml.streamed import link_placeholder, write_package, zip_stream
from edoc_axis.edxml.write import append_trace_header, build
from edoc_axis.errors import EXIT_INVALID, EXIT_OK, ConfigError, EdocAxisError

PACKAGE_SUFFIXES = (".edxml", ".xml")


# --- validate ----------------------------------------------------------------------------------


def _package_files(paths: tuple[Path, ...]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PACKAGE_SUFFIXES
            )
            yield from found
        else:
            yield path


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    # Read one byte past the limit: enough for the parser to refuse it, never the whole file.
    with path.open("rb") as stream:
        return stream.read(max_bytes + 1)


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document for machines.")
@click.option(
    "--profile",
    type=click.Choice(PROFILES),
    default=STRICT,
    show_default=True,
    help="strict: every finding refuses (what the node sends). received: harmless deviations "
    "(empty optional elements, odd TraceHeader OrganIds, white space around values) are "
    "warnings (what the node receives).",
)
@click.option(
    "--max-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_BYTES,
    show_default=True,
    help="Refuse packages larger than this many bytes.",
)
def validate_command(paths: tuple[Path, ...], as_json: bool, profile: str, max_bytes: int) -> None:
    """Check edXML packages: structure (XSD) and business rules, not signatures.

    PATHS are package files or folders (searched recursively for *.edxml and *.xml). Prints
    every finding of a package, one line each: "PATH:LINE: SEVERITY CODE ELEMENT 'VALUE':
    MESSAGE" (SEVERITY is error or warning under --profile), then "PATH: valid" when nothing
    refuses it ("valid, N warnings" when some findings are only warnings).
    Exit status: 0 when every package is valid (warnings allowed), 65 when any is refused,
    2 on usage errors.
    """
    files = list(_package_files(paths))
    if not files:
        raise click.UsageError("no *.edxml or *.xml package files under the given paths")
    limits = XmlLimits(max_bytes=max_bytes)
    results: list[tuple[Path, ValidationReport]] = []
    for path in files:
        try:
            data = _read_bounded(path, max_bytes)
        except OSError as exc:
            raise click.FileError(str(path), hint=exc.strerror) from exc
        report = validate(data, limits, profile)
        results.append((path, report))
        if not as_json:
            _echo_report(path, report)
    all_valid = all(report.valid for _, report in results)
    if as_json:
        out = {
            "valid": all_valid,
            "profile": profile,
            "packages": [{"path": str(path), **report.to_dict()} for path, report in results],
        }
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    sys.exit(EXIT_OK if all_valid else EXIT_INVALID)


def _echo_report(path: Path | str, report: ValidationReport, *, err: bool = False) -> None:
    for finding in report.findings:
        where = f"{path}:{finding.line}" if finding.line else str(path)
        element = f" {finding.element}" if finding.element else ""
        value = f" {finding.value!r}" if finding.value is not None else ""
        click.echo(f"{where}: {finding.severity} {finding.code}{element}{value}: {finding.message}",
                   err=err)
    if report.valid and not err:
        warnings = len(report.warnings)
        click.echo(f"{path}: valid" + (f", {warnings} warning(s)" if warnings else ""))


# --- package new / show ------------------------------------------------------------------------


@click.group("package")
def package_group() -> None:
    """Build and inspect edXML packages."""


def _load_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read package description {path}: {exc}") from exc


def _org(data: dict[str, Any] | str) -> Organization:
    if isinstance(data, str):
        return Organization(data)
    return Organization(**{k: str(v) for k, v in data.items()})


def _str_fields(data: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in data.items()}


def _business(data: dict[str, Any]) -> Business:
    info = data.get("document_info")
    return Business(
        doc_type=int(data.get("doc_type", 0)),
        document_id=data.get("document_id"),
        reason=data.get("reason"),
        paper=str(data["paper"]) if "paper" in data else "0",
        document_info=BusinessDocumentInfo(
            document_info=info.get("document_info"),
            document_receiver=info.get("document_receiver"),
            receivers=[
                Receiver(str(r["organ_id"]), str(r["receiver_type"]))
                for r in info.get("receivers", [])
            ],
        )
        if info
        else None,
        replacements=[
            ReplacementInfo(str(r["document_id"]), [str(o) for o in r.get("organ_ids", [])])
            for r in data.get("replacements", [])
        ],
        staff_info=StaffInfo(**_str_fields(data["staff_info"])) if "staff_info" in data else None,
    )


def _document(spec: dict[str, Any]) -> DocumentPackage:
    code = spec.get("code", {})
    prom = spec.get("promulgation", {})
    doc_type = spec.get("document_type", {})
    sender = _org(spec["from"])
    day = str(prom.get("date") or format_date(datetime.now(VN_TZ).date()))
    number, notation = str(code.get("number", "")), str(code.get("notation", ""))
    doc = DocumentPackage(
        sender=sender,
        recipients=[_org(t) for t in spec.get("to", [])],
        code=Code(number, notation),
        promulgation=PromulgationInfo(str(prom.get("place", "")), day),
        document_type=DocumentType(
            str(doc_type.get("type", "1")),
            str(doc_type.get("type_detail", "1")),
            str(doc_type.get("type_name", "Công văn")),
        ),
        subject=str(spec.get("subject", "")),
        document_id=spec.get("document_id")
        or make_document_id(sender.organ_id, day, number, notation),
        content=spec.get("content"),
        signer=SignerInfo(**_str_fields(spec["signer"])) if "signer" in spec else None,
        due_date=spec.get("due_date"),
        to_places=[str(p) for p in spec.get("to_places", [])],
        other_info=_other_info(spec["other_info"]) if "other_info" in spec else None,
        response_for=[ResponseFor(**_str_fields(r)) for r in spec.get("response_for", [])],
        steering_type=str(spec["steering_type"]) if "steering_type" in spec else None,
        business=_business(spec.get("business", {})),
    )
    if spec.get("trace", True):
        append_trace_header(doc, sender.organ_id, spec.get("timestamp"))
    return doc


def _other_info(data: dict[str, Any]) -> OtherInfo:
    appendixes = [str(a) for a in data.get("appendixes", [])]
    fields = _str_fields({k: v for k, v in data.items() if k != "appendixes"})
    if "direction" in data and isinstance(data["direction"], bool):
        fields["direction"] = "true" if data["direction"] else "false"
    return OtherInfo(**fields, appendixes=appendixes)


def _status(spec: dict[str, Any]) -> StatusPackage:
    response = spec.get("response_for")
    if not response or "organ_id" not in response:
        raise click.UsageError("a status needs response_for.organ_id (--to) and its document")
    status = new_status(
        _org(spec["from"]),
        ResponseFor(**_str_fields(response)),
        str(spec.get("status_code", "")),
        description=spec.get("description"),
        staff_info=StaffInfo(**_str_fields(spec["staff_info"])) if "staff_info" in spec else None,
    )
    if "timestamp" in spec:
        status.timestamp = str(spec["timestamp"])
    return status


def _merge_options(spec: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    """Command-line options override the TOML description."""
    if opts["from_id"]:
        sender = spec.get("from")
        sender = dict(sender) if isinstance(sender, dict) else {}
        sender["organ_id"] = opts["from_id"]
        spec["from"] = sender
    if opts["from_name"]:
        spec.setdefault("from", {})["organ_name"] = opts["from_name"]
    for key in ("subject", "document_id", "status_code", "description", "steering_type"):
        if opts.get(key) is not None:
            spec[key] = opts[key]
    if spec.get("kind", "edoc") == "status":
        response = spec.setdefault("response_for", {})
        if opts["to"]:
            response["organ_id"] = opts["to"][0]
        for key in ("code", "promulgation_date", "document_id"):
            if opts.get(f"response_{key}"):
                response[key] = opts[f"response_{key}"]
    elif opts["to"]:
        spec["to"] = [{"organ_id": organ} for organ in opts["to"]]
    return _merge_document_options(spec, opts)


def _merge_document_options(spec: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    if opts["code_number"] is not None or opts["code_notation"] is not None:
        code = spec.setdefault("code", {})
        code["number"] = opts["code_number"] or code.get("number", "")
        code["notation"] = opts["code_notation"] or code.get("notation", "")
    if opts["date"]:
        spec.setdefault("promulgation", {})["date"] = opts["date"]
    if opts["place"]:
        spec.setdefault("promulgation", {})["place"] = opts["place"]
    if opts["priority"] is not None:
        spec.setdefault("other_info", {})["priority"] = opts["priority"]
    if opts["business_type"] is not None:
        business = spec.setdefault("business", {})
        business["doc_type"] = opts["business_type"]
        if opts["business_document_id"]:
            business["document_id"] = opts["business_document_id"]
        if opts["reason"]:
            business["reason"] = opts["reason"]
    return spec


@package_group.command("new")
@click.option(
    "--from-toml",
    "toml_path",
    type=click.Path(exists=True, path_type=Path),
    help="TOML description of the package (options below override it).",
)
@click.option(
    "--kind",
    type=click.Choice(["edoc", "status"]),
    default=None,
    help="Document (edoc, default) or status package.",
)
@click.option("--from", "from_id", metavar="ORGANID", help="Sender's OrganId.")
@click.option("--from-name", help="Sender's OrganName.")
@click.option(
    "--to",
    multiple=True,
    metavar="ORGANID",
    help="Recipient OrganId (repeatable); for a status, the addressee.",
)
@click.option("--subject", help="Subject line of the document.")
@click.option("--code-number", help="CodeNumber (số).")
@click.option("--code-notation", help="CodeNotation (ký hiệu), e.g. VPCP-TTĐT.")
@click.option("--date", metavar="YYYY/MM/DD", help="PromulgationDate (default: today).")
@click.option("--place", help="Place of promulgation.")
@click.option("--document-id", help="DocumentId (default: OrganId,date,number/notation).")
@click.option("--priority", type=click.Choice(sorted(PRIORITIES)), help="OtherInfo/Priority.")
@click.option("--steering-type", type=click.Choice(sorted(STEERING_TYPES)), help="SteeringType.")
@click.option(
    "--business-type",
    type=click.IntRange(0, 3),
    help="BussinessDocType: 0 new, 1 revoke, 2 update, 3 replace.",
)
@click.option("--business-document-id", help="Bussiness/DocumentId: the document operated on.")
@click.option("--reason", help="BussinessDocReason.")
@click.option("--status-code", type=click.Choice(sorted(STATUS_CODES)), help="Status code.")
@click.option("--description", help="Status Description.")
@click.option("--response-code", help="Status: the document's Code (number/notation).")
@click.option("--response-promulgation-date", help="Status: the document's PromulgationDate.")
@click.option("--response-document-id", help="Status: the document's DocumentId.")
@click.option(
    "--attach",
    "attachments",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Attach a file (zipped, labelled application/zip, under its own name); repeatable.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the package here instead of stdout.",
)
def new_command(
    toml_path: Path | None,
    kind: str | None,
    output: Path | None,
    attachments: tuple[Path, ...],
    **opts: Any,
) -> None:
    """Build a document or status package from options and/or a TOML description.

    The package is unsigned UTF-8 edXML; sign it with the signing commands before sending.
    It is checked as `edoc-axis validate` checks it (strict profile) before anything is
    written: a package validate would refuse is not written; its findings go to stderr, in
    validate's form, and the exit status is 65.
    """
    with reported_errors():
        spec = _load_toml(toml_path)
        if kind:
            spec["kind"] = kind
        spec = _merge_options(spec, opts)
        if "from" not in spec:
            raise click.UsageError("the sender is required: --from ORGANID or [from] in TOML")
        base = toml_path.parent if toml_path else Path.cwd()
        files = [base / str(f) for f in spec.get("attachments", [])] + list(attachments)
        try:
            built: Package = _status(spec) if spec.get("kind") == "status" else _document(spec)
        except (KeyError, TypeError, ValueError) as exc:
            raise click.UsageError(f"incomplete or wrong package description: {exc}") from exc
        with contextlib.ExitStack() as stack:
            # Each file is zipped into a temporary file in chunks and linked by a placeholder;
            # its base64 is streamed into the output at the end: never whole in memory.
            zips = {}
            for path in files:
                if not isinstance(built, DocumentPackage):
                    raise click.UsageError("a status package carries no attachments")
                try:
                    source = stack.enter_context(path.open("rb"))
                    size = os.fstat(source.fileno()).st_size
                except OSError as exc:
                    raise click.FileError(str(path), hint=exc.strerror) from exc
                zipped = stack.enter_context(tempfile.TemporaryFile())
                digest = zip_stream(path.name, source, size, zipped)
                zipped.seek(0)
                zips[link_placeholder(built, path.name, digest)[1]] = zipped
            data = build(built)
            # The same check as `validate`, so nothing is written that validate would refuse.
            report = validate(data, XmlLimits(), STRICT)
            if not report.valid:
                _echo_report(output or "package", report, err=True)
                click.echo("error: the package is not valid: nothing written", err=True)
                sys.exit(EXIT_INVALID)
            if output is None:
                write_package(data, zips, sys.stdout.buffer)
            else:
                with output.open("wb") as out:
                    write_package(data, zips, out)


@package_group.command("show")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--extract",
    "extract_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write each attached file, as the sender's original bytes, into this folder.",
)
def show_command(file: Path, extract_dir: Path | None) -> None:
    """Print a readable summary of a package: kind, parties, ids, subject, attachments.

    Each attachment line gives the file's name, size and type once unzipped, and how it was
    packed (zip; zip labelled with the file's type; not zipped). With --extract the files are
    written into the folder; an existing file is never overwritten ("name (2).pdf" instead).
    Times are Vietnam time with the offset written out (2026-12-02T09:30:00+07:00), as every
    command prints them. Does not validate the package (use `edoc-axis validate`); exit 65 when
    it cannot be read
    at all, or when --extract is given and an attachment cannot be unpacked.
    """
    with reported_errors():
        built = parse(_read_bounded(file, DEFAULT_MAX_BYTES))
        for label, value in _summary(built):
            click.echo(f"{label + ':':<16}{value}")
    attachments = built.attachments if isinstance(built, DocumentPackage) else []
    failed = False
    for index, att in enumerate(attachments, 1):
        try:
            if extract_dir is None:
                unpacked, where = write_attachment(att, _Discard()), ""
            else:
                path, unpacked = save_attachment(att, extract_dir, index)
                where = f"  -> {path}"
            line = _attachment_line(att, unpacked) + where
        except EdocAxisError as exc:
            failed = failed or extract_dir is not None
            name = att.attachment_name or "?"
            line = f"{name}  unreadable: {exc.message}  {att.content_type or '?'}  {att.content_id}"
        click.echo(f"{'attachment:':<16}{line}")
    if failed:
        sys.exit(EXIT_INVALID)


def _org_line(org: Organization) -> str:
    return f"{org.organ_id}  {org.organ_name}".rstrip()


def _summary(pkg: Package) -> Iterator[tuple[str, str]]:
    yield "kind", pkg.kind
    yield "from", _org_line(pkg.sender)
    if isinstance(pkg, StatusPackage):
        yield "to", pkg.response_for.organ_id
        meaning = STATUS_CODES.get(pkg.status_code)
        text = f"{meaning[1]} (sent by the {meaning[0]})" if meaning else "unknown code"
        yield "status", f"{pkg.status_code} {text}"
        yield "document id", pkg.response_for.document_id
        yield "document code", pkg.response_for.code
        if pkg.description:
            yield "description", pkg.description
        yield "timestamp", edxml_time(pkg.timestamp)
        yield "signed", "yes" if pkg.signed else "no"
        return
    for recipient in pkg.recipients:
        yield "to", _org_line(recipient)
    yield "document id", pkg.document_id or "-"
    yield "code", f"{pkg.code.number}/{pkg.code.notation}"
    yield "promulgated", f"{pkg.promulgation.date} {pkg.promulgation.place}".strip()
    doc_type = pkg.document_type
    yield "type", f"{doc_type.type}/{doc_type.type_detail} {doc_type.type_name}"
    yield "subject", pkg.subject
    business = BUSINESS_DOC_TYPES.get(pkg.business_doc_type, "unknown")
    yield "business", f"{pkg.business_doc_type} {business}"
    if pkg.business is not None and pkg.business.document_id:
        yield "about document", pkg.business.document_id
    if pkg.other_info is not None and pkg.other_info.priority:
        priority = pkg.other_info.priority
        yield "priority", f"{priority} {PRIORITIES.get(priority, 'unknown')}"
    if pkg.steering_type:
        yield "steering", f"{pkg.steering_type} {STEERING_TYPES.get(pkg.steering_type, '?')}"
    for trace in pkg.trace_headers:
        yield "trace", f"{trace.organ_id} at {edxml_time(trace.timestamp)}"
    yield "signed", "yes" if pkg.signed else "no"


_PACKING = {"zip": "zipped", "zip-mislabelled": "zipped, labelled", "plain": "not zipped"}


def _attachment_line(att: Attachment, unpacked: Unpacked) -> str:
    encoded_size = len(att.encoded) * 3 // 4 - att.encoded[-2:].count("=")
    packing = _PACKING[unpacked.packing]
    if unpacked.packing == "zip-mislabelled":
        packing += f" {att.content_type or 'with no type'}"
    elif unpacked.packing == "plain" and unpacked.content_type == "application/zip":
        packing = "a ZIP file, kept whole"
    return (
        f"{unpacked.name}  {unpacked.size} bytes ({encoded_size} encoded)  "
        f"{unpacked.content_type}  {packing}  {att.content_id}"
    )


class _Discard:
    """A sink that keeps nothing: show measures files without holding them."""

    def write(self, data: bytes, /) -> int:
        return len(data)


def save_attachment(att: Attachment, directory: Path, index: int) -> tuple[Path, Unpacked]:
    """Write one attached file into ``directory`` (created if missing) and return its path.

    The name is the attachment's own, reduced to a bare file name (``attachment-INDEX`` when
    nothing usable is left). Written under a temporary name and then linked in, so a file that
    fails half way (``ATTACHMENT_INVALID``) leaves nothing, and an existing file is never
    replaced: the next free ``name (2).ext`` is taken.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        partial = directory / f".{uuid.uuid4().hex}.partial"
        try:
            with partial.open("xb") as sink:
                unpacked = write_attachment(att, sink)
            return _claim(partial, directory, _file_name(unpacked.name, index)), unpacked
        finally:
            partial.unlink(missing_ok=True)
    except OSError as exc:
        raise click.FileError(str(directory), hint=exc.strerror or str(exc)) from exc


def _file_name(name: str, index: int) -> str:
    base = "".join(ch for ch in name.replace("\\", "/").rsplit("/", 1)[-1] if ch.isprintable())
    base = base.strip()
    if base in ("", ".", ".."):
        base = f"attachment-{index}"
    stem, suffix = os.path.splitext(base)
    if len(suffix.encode()) > 32:
        stem, suffix = base, ""
    while len((stem + suffix).encode()) > 240 and stem:  # NAME_MAX is 255 bytes, less " (n)"
        stem = stem[:-1]
    return stem + suffix


def _claim(partial: Path, directory: Path, name: str) -> Path:
    stem, suffix = os.path.splitext(name)
    for n in range(1, 10_000):
        target = directory / (name if n == 1 else f"{stem} ({n}){suffix}")
        try:
            os.link(partial, target)  # fails if target exists: never overwrites
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links
            if target.exists():
                continue
            partial.rename(target)
        return target
    raise FileExistsError(f"no free name for {name}")
