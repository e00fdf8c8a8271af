"""Tests of ``edoc-axis validate`` and ``edoc-axis package new|show`` (with --extract)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from conftest import DATA, VALID_PACKAGES, make_document

from edoc_axis.cli import main
from edoc_axis.edxml.attachment import Attachment, Reference
from edoc_axis.edxml.schema import validate
from edoc_axis.edxml.write import build


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_validate_valid_folder_exits_0() -> None:
    """A folder of valid packages: one 'valid' line per package and exit 0."""
    code, out = _run("validate", str(DATA / "valid"))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(VALID_PACKAGES)
    assert all(line.endswith(": valid") for line in lines)


def test_validate_invalid_prints_code_element_line_and_exits_65() -> None:
    """An invalid package prints 'path:line: error CODE element 'value': message', exits 65."""
    path = DATA / "invalid" / "DATE_FORMAT--dd-mm-yyyy.edxml"
    code, out = _run("validate", str(path), str(DATA / "valid" / "status-01.edxml"))
    assert code == 65
    first, second = out.splitlines()
    assert first.startswith(f"{path}:31: error DATE_FORMAT /edXML/edXMLEnvelope/edXMLHeader/")
    assert "PromulgationInfo/PromulgationDate '05/03/2024': " in first and "dd/MM/yyyy" in first
    assert second.endswith("status-01.edxml: valid")


def test_validate_hostile_folder_exits_65_without_traceback() -> None:
    """Hostile files are reported by code, never with a traceback."""
    code, out = _run("validate", str(DATA / "hostile"))
    assert code == 65
    assert "Traceback" not in out
    assert "XML_DOCTYPE" in out and "XML_ENCODING" in out and "XML_NOT_XML" in out


def test_validate_json() -> None:
    """--json prints one document with every package and its findings."""
    code, out = _run("validate", "--json", str(DATA / "invalid"))
    assert code == 65
    doc = json.loads(out)
    assert doc["valid"] is False
    by_name = {Path(p["path"]).name: p for p in doc["packages"]}
    finding = by_name["PRIORITY_DOMAIN--seven.edxml"]["findings"][0]
    assert finding["code"] == "PRIORITY_DOMAIN"
    assert finding["element"].endswith("/OtherInfo/Priority") and finding["line"] > 0


def test_validate_max_bytes(tmp_path: Path) -> None:
    """--max-bytes refuses larger packages with XML_TOO_LARGE."""
    code, out = _run("validate", "--max-bytes", "1000", str(DATA / "valid" / "status-01.edxml"))
    assert code == 65 and "XML_TOO_LARGE" in out


def test_validate_usage_errors(tmp_path: Path) -> None:
    """No path, a missing path, or a folder without packages: exit 2."""
    assert _run("validate")[0] == 2
    assert _run("validate", str(tmp_path / "missing.edxml"))[0] == 2
    assert _run("validate", str(tmp_path))[0] == 2


def test_package_new_document_with_attachment_then_show(tmp_path: Path) -> None:
    """package new builds a valid document with attachments; show lists them with sizes."""
    attachment = tmp_path / "to-trinh.pdf"
    attachment.write_bytes(b"%PDF-1.4 " + b"x" * 500)
    out_file = tmp_path / "doc.edxml"
    code, _ = _run(
        "package", "new",
        "--from", "000.00.00.G22", "--from-name", "Văn phòng Chính phủ",
        "--to", "000.00.00.H41", "--to", "000.00.00.H17",
        "--subject", "Về việc thử nghiệm", "--code-number", "12", "--code-notation", "VPCP-TTĐT",
        "--date", "2024/03/05", "--priority", "2", "--business-type", "0",
        "--attach", str(attachment), "-o", str(out_file),
    )  # fmt: skip
    assert code == 0
    report = validate(out_file.read_bytes())
    assert report.valid, report.findings
    code, shown = _run("package", "show", str(out_file))
    assert code == 0
    assert "kind:           edoc" in shown
    assert "000.00.00.G22,2024/03/05,12/VPCP-TTĐT" in shown
    assert "to-trinh.pdf  509 bytes" in shown
    assert "application/pdf  zipped  cid:" in shown
    assert "priority:       2 very urgent" in shown
    assert out_file.read_bytes().count(b"<ContentType>application/zip</ContentType>") == 2


def test_package_new_status_from_toml(tmp_path: Path) -> None:
    """A TOML description builds a status package; show explains the code."""
    spec = tmp_path / "status.toml"
    spec.write_text(
        """
kind = "status"
status_code = "13"
description = "Đề nghị thu hồi"
timestamp = "2024/03/06 08:00:00"
[from]
organ_id = "000.00.00.G22"
organ_name = "Văn phòng Chính phủ"
[response_for]
organ_id = "000.00.00.H41"
code = "12/VPCP-TTĐT"
promulgation_date = "2024/03/05"
document_id = "000.00.00.G22,2024/03/05,12/VPCP-TTĐT"
""",
        encoding="utf-8",
    )
    out_file = tmp_path / "status.edxml"
    code, _ = _run("package", "new", "--from-toml", str(spec), "-o", str(out_file))
    assert code == 0
    assert validate(out_file.read_bytes()).valid
    code, shown = _run("package", "show", str(out_file))
    assert code == 0
    assert "status:         13 the sender asks to take the document back" in shown
    assert "timestamp:      2024-03-06T08:00:00+07:00" in shown  # one labelled zone


def test_package_new_document_from_toml_to_stdout(tmp_path: Path) -> None:
    """A TOML document with business details and attachments goes to stdout and is valid."""
    (tmp_path / "phu-luc.txt").write_text("Phụ lục", encoding="utf-8")
    spec = tmp_path / "doc.toml"
    spec.write_text(
        """
subject = "Thay thế văn bản"
attachments = ["phu-luc.txt"]
steering_type = "2"
[from]
organ_id = "000.00.00.G22"
organ_name = "VPCP"
[[to]]
organ_id = "000.00.00.H41"
organ_name = "UBND tỉnh Nghệ An"
[code]
number = "13"
notation = "VPCP-TTĐT"
[promulgation]
place = "Hà Nội"
date = "2024/03/07"
[other_info]
priority = "0"
direction = true
[business]
doc_type = 3
document_id = "000.00.00.G22,2024/03/05,12/VPCP-TTĐT"
[[business.replacements]]
document_id = "000.00.00.G22,2024/03/05,12/VPCP-TTĐT"
organ_ids = ["000.00.00.H41"]
""",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["package", "new", "--from-toml", str(spec)])
    assert result.exit_code == 0, result.output
    report = validate(result.stdout_bytes)
    assert report.valid, report.findings
    assert report.package is not None and report.package.kind == "edoc"
    assert report.package.business_doc_type == 3  # type: ignore[union-attr]


def test_package_new_usage_errors(tmp_path: Path) -> None:
    """Missing sender, or attachments on a status, are usage errors (exit 2)."""
    assert _run("package", "new", "--subject", "x")[0] == 2
    extra = tmp_path / "a.txt"
    extra.write_text("a")
    code, _ = _run(
        "package", "new", "--kind", "status", "--from", "000.00.00.H41",
        "--to", "000.00.00.G22", "--status-code", "01", "--attach", str(extra),
    )  # fmt: skip
    assert code == 2


def test_package_show_garbage_exits_65(tmp_path: Path) -> None:
    """show on a file that is not a package prints the error code and exits 65."""
    result = CliRunner().invoke(
        main, ["package", "show", str(DATA / "hostile" / "XML_DOCTYPE--xxe-file.xml")]
    )
    assert result.exit_code == 65
    assert "XML_DOCTYPE" in result.output


def test_package_show_extract_writes_the_original_files(tmp_path: Path) -> None:
    """show --extract writes each file's sent bytes; a second run never overwrites the first."""
    files = {"Quyết định số 12.pdf": b"%PDF-1.4 " + bytes(range(256)),
             "ghi chú.txt": "xin chào".encode()}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    package = tmp_path / "doc.edxml"
    code, out = _run(
        "package", "new", "--from", "000.00.00.G22", "--to", "000.00.00.H41",
        "--subject", "Thử", "--code-number", "1", "--code-notation", "VPCP",
        *(arg for name in files for arg in ("--attach", str(tmp_path / name))),
        "-o", str(package),
    )  # fmt: skip
    assert code == 0, out
    out_dir = tmp_path / "out"
    for _ in range(2):
        code, shown = _run("package", "show", str(package), "--extract", str(out_dir))
        assert code == 0, shown
    written = {f.name: f.read_bytes() for f in out_dir.iterdir()}
    assert written == {**files, "Quyết định số 12 (2).pdf": files["Quyết định số 12.pdf"],
                       "ghi chú (2).txt": files["ghi chú.txt"]}
    assert f"-> {out_dir / 'ghi chú.txt'}" in shown or f"-> {out_dir / 'ghi chú (2).txt'}" in shown


def test_package_show_extract_keeps_hostile_names_inside_and_reports_bad_files(
    tmp_path: Path,
) -> None:
    """A name with a path stays in the folder; an unreadable file exits 65, the others written."""
    doc = make_document()
    for cid, name, encoded in (("cid:1", "../../evil\t.txt", "ZXZpbA=="),
                               ("cid:2", "..", "Ymlu"), ("cid:3", "hong.pdf", "UEsDBA==")):
        doc.attachments.append(Attachment(cid, name, content_type="application/zip" if
                                          cid == "cid:3" else None, encoded=encoded))
        doc.manifest.append(Reference(cid, None, None, name))
    package = tmp_path / "doc.edxml"
    package.write_bytes(build(doc))
    out_dir = tmp_path / "deep" / "out"
    code, shown = _run("package", "show", str(package), "--extract", str(out_dir))
    assert code == 65
    assert "hong.pdf  unreadable: attachment cid:3: labelled application/zip" in shown
    assert {f.name: f.read_bytes() for f in out_dir.iterdir()} == {
        "evil.txt": b"evil", "attachment-2": b"bin"}
    assert not (tmp_path / "evil.txt").exists()
    code, shown = _run("package", "show", str(package))
    assert code == 0 and "unreadable" in shown


def test_package_new_refuses_what_validate_refuses(tmp_path: Path) -> None:
    """`package new` writes nothing validate would refuse: same codes, exit 65 (issue 13.7)."""
    bad = tmp_path / "bad.edxml"
    result = CliRunner().invoke(main, [
        "package", "new", "--from", "000.00.00.G22", "--to", "H41", "--subject", "x",
        "--code-number", "1", "--code-notation", "A-B", "-o", str(bad)])
    assert result.exit_code == 65
    assert f"{bad}:11: error ORGANID_FORMAT " in result.output and "'H41'" in result.output
    assert "nothing written" in result.output and not bad.exists()
    take_back = tmp_path / "13.edxml"  # a 13 (take back) sent by the document's recipient
    result = CliRunner().invoke(main, [
        "package", "new", "--kind", "status", "--from", "000.00.00.H41", "--to", "000.00.00.G22",
        "--status-code", "13", "--response-document-id", "000.00.00.G22,2026/01/01,1/A",
        "--response-code", "1/A", "--response-promulgation-date", "2026/01/01",
        "-o", str(take_back)])
    assert result.exit_code == 65 and "error STATUS_DIRECTION " in result.output
    assert not take_back.exists()
    result = CliRunner().invoke(main, [  # to stdout: nothing on stdout either
        "package", "new", "--from", "000.00.00.G22", "--to", "H41", "--subject", "x",
        "--code-number", "1", "--code-notation", "A-B"])
    assert result.exit_code == 65 and result.stdout == ""
    good = tmp_path / "good.edxml"
    code, _ = _run("package", "new", "--from", "000.00.00.G22", "--to", "000.00.00.H41",
                   "--subject", "x", "--code-number", "1", "--code-notation", "A-B",
                   "-o", str(good))
    assert code == 0
    assert _run("validate", str(good)) == (0, f"{good}: valid\n")
