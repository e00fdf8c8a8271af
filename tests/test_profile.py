"""Reception profiles: the severity table, every finding of a package, and `validate --profile`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import (
    DATA,
    DEVIANT_TRACE_ORGAN_ID,
    HOSTILE_PACKAGES,
    INVALID_PACKAGES,
    build_edxml_document,
    expected_code,
    with_deviations,
)

from edoc_axis.cli import main
from edoc_axis.edxml.profile import PROFILES, RECEIVED, SEVERITIES, STRICT, Severity, severity
from edoc_axis.edxml.rule import RULE_CODES
from edoc_axis.edxml.schema import SCHEMA_CODES, accept, check, validate
from edoc_axis.errors import RuleViolation, SchemaViolation

TRACE = "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList"
HEADER = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"
DEVIATIONS = {"EMPTY_ELEMENT", "ORGANID_FORMAT", "SURPLUS_WHITESPACE"}
MALFORMED_FROM = {"<OrganId>000.00.00.G22</OrganId>": "<OrganId>28.22.G22</OrganId>"}
# Invalid corpus files whose only finding the received profile lets through.
HARMLESS_CORPUS = {
    "EMPTY_ELEMENT--response-for.edxml",
    "EMPTY_ELEMENT--to-places.edxml",
    "ORGANID_FORMAT--trace.edxml",
    "SURPLUS_WHITESPACE--trace-organid.edxml",
}


def _deviant(**replacements: str) -> bytes:
    data = with_deviations(build_edxml_document())
    for old, new in replacements.items():
        data = data.replace(old.encode(), new.encode(), 1)
    return data


# --- the table ---------------------------------------------------------------------------------


def test_strict_refuses_every_finding() -> None:
    """Every row of the table is an error under strict."""
    assert {row.strict for row in SEVERITIES.values()} == {Severity.ERROR}


def test_only_harmless_deviations_warn_when_received() -> None:
    """Exactly the declared harmless deviations are warnings under received."""
    warned = {key for key, row in SEVERITIES.items() if row.received == Severity.WARNING}
    assert warned == {("ORGANID_FORMAT", "TraceHeader"), "EMPTY_ELEMENT", "SURPLUS_WHITESPACE"}


def test_table_weighs_every_rule_and_schema_code() -> None:
    """Each rule and schema code has a row, and each row names a known code."""
    codes = {key[0] if isinstance(key, tuple) else key for key in SEVERITIES}
    assert set(RULE_CODES) | set(SCHEMA_CODES) <= codes
    hostile = {expected_code(path) for path in HOSTILE_PACKAGES}
    assert hostile <= codes
    unknown = codes - set(RULE_CODES) - set(SCHEMA_CODES)
    assert all(code.startswith(("XML_", "PACKAGE_")) for code in unknown)


def test_unknown_codes_and_profiles_refuse() -> None:
    """A code or a profile the table does not know refuses (fail closed)."""
    assert severity("SOME_NEW_RULE", RECEIVED) == Severity.ERROR
    assert severity("EMPTY_ELEMENT", "lenient") == Severity.ERROR
    assert severity("ORGANID_FORMAT", RECEIVED, "To") == Severity.ERROR
    assert severity("ORGANID_FORMAT", RECEIVED, "TraceHeader") == Severity.WARNING
    assert PROFILES == (STRICT, RECEIVED)


# --- the corpora under `received` ---------------------------------------------------------------


@pytest.mark.parametrize("path", INVALID_PACKAGES + HOSTILE_PACKAGES, ids=lambda path: path.name)
def test_received_lets_through_only_the_harmless_corpus(path: Path) -> None:
    """Under received the harmless files pass with their one warning; all else is refused."""
    report = validate(path.read_bytes(), profile=RECEIVED)
    codes = {f.code for f in report.findings}
    assert codes == {expected_code(path)}
    if path.name in HARMLESS_CORPUS:
        assert report.valid and report.package is not None
        assert [f.severity for f in report.findings] == ["warning"]
    else:
        assert not report.valid and report.package is None
        assert {f.severity for f in report.findings} == {"error"}


# --- three deviations --------------------------------------------------------------------------


def test_three_deviations_are_warnings_when_received() -> None:
    """Empty ResponseFor, a TraceHeader OrganId 28.22.H17 and padded Subject: three warnings."""
    report = validate(_deviant(), profile=RECEIVED)
    assert report.valid and report.package is not None
    assert report.errors == []
    found = {(f.code, f.element, f.value) for f in report.warnings}
    assert found == {
        ("EMPTY_ELEMENT", f"{HEADER}/ResponseFor", ""),
        ("ORGANID_FORMAT", f"{TRACE}/TraceHeader[2]/OrganId", DEVIANT_TRACE_ORGAN_ID),
        ("SURPLUS_WHITESPACE", f"{HEADER}/Subject", "  Về việc thử nghiệm trục liên thông"),
    }
    assert report.package.subject == "Về việc thử nghiệm trục liên thông"


def test_three_deviations_are_errors_when_strict() -> None:
    """The same package under strict: the same three findings, all refusing."""
    report = validate(_deviant(), profile=STRICT)
    assert not report.valid and report.package is None
    assert {f.code for f in report.errors} == DEVIATIONS and len(report.errors) == 3
    assert report.warnings == []


@pytest.mark.parametrize("organ_id", ["28.22.H17", "H17", "000.00.00.h17", "01.02.G22"])
def test_any_trace_organid_form_only_warns(organ_id: str) -> None:
    """Malformed TraceHeader OrganIds are named with their value and only warn when received."""
    data = _deviant(**{DEVIANT_TRACE_ORGAN_ID: organ_id})
    report = validate(data, profile=RECEIVED)
    assert report.valid
    [finding] = [f for f in report.findings if f.code == "ORGANID_FORMAT"]
    assert finding.value == organ_id and finding.severity == "warning"


def test_white_space_around_a_trace_organid_only_warns() -> None:
    """A padded TraceHeader OrganId is a white-space warning, not a malformed id."""
    report = validate(_deviant(**{DEVIANT_TRACE_ORGAN_ID: " 000.00.00.H17\n"}), profile=RECEIVED)
    assert report.valid
    assert {f.code for f in report.findings} == {"EMPTY_ELEMENT", "SURPLUS_WHITESPACE"}


def test_malformed_from_is_refused_even_when_received() -> None:
    """A From OrganId 28.22.G22 refuses under received; the harmless findings are still listed."""
    data = _deviant(**MALFORMED_FROM)
    report = validate(data, profile=RECEIVED)
    assert not report.valid and report.package is None
    [error] = report.errors
    assert (error.code, error.element, error.value) == ("ORGANID_FORMAT", f"{HEADER}/From/OrganId",
                                                        "28.22.G22")
    assert {f.code for f in report.warnings} == DEVIATIONS
    with pytest.raises(RuleViolation) as info:
        accept(data, profile=RECEIVED)
    assert info.value.code == "ORGANID_FORMAT" and info.value.element == f"{HEADER}/From/OrganId"


def test_empty_response_for_of_a_status_is_refused_when_received() -> None:
    """A status's ResponseFor routes it: empty, it is a schema error under every profile."""
    status = (DATA / "valid" / "status-03.edxml").read_bytes()
    start, end = status.index(b"<ResponseFor>"), status.index(b"</ResponseFor>")
    empty = status[:start] + b"<ResponseFor/>" + status[end + len(b"</ResponseFor>"):]
    report = validate(empty, profile=RECEIVED)
    assert not report.valid
    assert "SCHEMA_MISSING_ELEMENT" in {f.code for f in report.errors}


def test_schema_and_rule_findings_are_reported_together() -> None:
    """An unknown element and a rule finding in one package are both listed."""
    data = _deviant(**{"<Subject>": "<Urgency>1</Urgency><Subject>"})
    report = validate(data, profile=RECEIVED)
    assert {f.code for f in report.errors} == {"SCHEMA_UNEXPECTED_ELEMENT"}
    assert {f.code for f in report.warnings} == DEVIATIONS
    with pytest.raises(SchemaViolation):
        accept(data, profile=RECEIVED)


def test_accept_returns_the_warnings_and_check_stays_strict() -> None:
    """accept() under received gives the model and its warnings; check() refuses the same bytes."""
    accepted = accept(_deviant(), profile=RECEIVED)
    assert accepted.package.sender.organ_id == "000.00.00.G22"
    assert {f.code for f in accepted.warnings} == DEVIATIONS
    with pytest.raises(RuleViolation):
        check(_deviant())


def test_layout_white_space_is_not_surplus() -> None:
    """Pretty-printed empty containers and wrapped base64 are no value with white space."""
    data = build_edxml_document(attachment=b"x" * 300)
    wrapped = data.replace(b"<ContentTransferEncoded>", b"<ContentTransferEncoded>\n  ")
    spaced = wrapped.replace(b"<edXMLManifest version=\"1.0\">",
                             b"<edXMLManifest version=\"1.0\">\n   ")
    assert spaced != data
    assert validate(spaced, profile=STRICT).findings == []


# --- edoc-axis validate --profile ---------------------------------------------------------------


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def deviant_file(tmp_path: Path) -> Path:
    """The three-deviation package written to a file."""
    path = tmp_path / "deviant.edxml"
    path.write_bytes(_deviant())
    return path


def test_cli_received_lists_three_warnings_and_exits_0(deviant_file: Path) -> None:
    """--profile received prints each warning with code, element and value; exit 0."""
    code, out = _run("validate", "--profile", "received", str(deviant_file))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    assert all(line.startswith(f"{deviant_file}:") for line in lines)
    assert sorted(line.split(": ", 2)[1].split()[1] for line in lines[:3]) == sorted(DEVIATIONS)
    assert all(": warning " in line for line in lines[:3])
    assert (f"warning ORGANID_FORMAT {TRACE}/TraceHeader[2]/OrganId '{DEVIANT_TRACE_ORGAN_ID}': "
            in out)
    assert lines[3] == f"{deviant_file}: valid, 3 warning(s)"


def test_cli_strict_lists_three_errors_and_exits_65(deviant_file: Path) -> None:
    """The default profile (strict) prints the same three findings as errors; exit 65."""
    for args in (("validate",), ("validate", "--profile", "strict")):
        code, out = _run(*args, str(deviant_file))
        assert code == 65
        lines = out.splitlines()
        assert len(lines) == 3 and all(": error " in line for line in lines)
        assert f"error ORGANID_FORMAT {TRACE}/TraceHeader[2]/OrganId '28.22.H17': " in out


def test_cli_json_lists_every_finding(deviant_file: Path) -> None:
    """--json lists every finding with severity, code, element, value and line."""
    code, out = _run("validate", "--json", "--profile", "received", str(deviant_file))
    assert code == 0
    doc = json.loads(out)
    assert doc["valid"] is True and doc["profile"] == "received"
    [package] = doc["packages"]
    assert (package["errors"], package["warnings"]) == (0, 3)
    findings = package["findings"]
    assert {f["code"] for f in findings} == DEVIATIONS
    assert {f["severity"] for f in findings} == {"warning"}
    assert all(set(f) == {"code", "severity", "message", "element", "value", "line"}
               for f in findings)
    code, out = _run("validate", "--json", str(deviant_file))
    assert code == 65
    assert {f["severity"] for f in json.loads(out)["packages"][0]["findings"]} == {"error"}


def test_cli_received_still_refuses_a_malformed_from(tmp_path: Path) -> None:
    """A malformed From/OrganId exits 65 under received, the warnings printed beside it."""
    path = tmp_path / "from.edxml"
    path.write_bytes(_deviant(**MALFORMED_FROM))
    code, out = _run("validate", "--profile", "received", str(path))
    assert code == 65
    assert f"error ORGANID_FORMAT {HEADER}/From/OrganId '28.22.G22': " in out
    assert out.count(": warning ") == 3
    assert not any(line.startswith(f"{path}: valid") for line in out.splitlines())


def test_cli_unknown_profile_is_a_usage_error(deviant_file: Path) -> None:
    """--profile takes only strict or received (exit 2)."""
    assert _run("validate", "--profile", "lenient", str(deviant_file))[0] == 2
