"""`edoc-axis track`, `inbox list|show`, as an operator runs them on a dev bench (no broker)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from edoc_axis.cli import main

G22, H41 = "000.00.00.G22", "000.00.00.H41"
VIETNAM_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00")


def run(*args: str | Path) -> Result:
    """Invoke ``edoc-axis`` in-process."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """Two dev agencies made by `init --dev`; G22 has sent one document to H41 (queued)."""
    for organ_id in (G22, H41):
        result = run("init", "--dev", "--organ-id", organ_id, "--data-dir", tmp_path / organ_id,
                     "--ca", tmp_path / "ca", "--directory", tmp_path / "directory.toml",
                     "--key-type", "p256")
        assert result.exit_code == 0, result.output
    document = tmp_path / "document.edxml"
    result = run("package", "new", "--from", G22, "--to", H41, "--subject", "Giấy mời",
                 "--code-number", "12", "--code-notation", "VPCP-TTĐT", "-o", document)
    assert result.exit_code == 0, result.output
    return tmp_path


def _config(bench: Path, organ_id: str) -> Path:
    return bench / organ_id / "node.toml"


def test_track_accepts_the_package_id_send_prints(bench: Path) -> None:
    """`track` takes the package id `send` prints first, or the DocumentId (issue 13.6)."""
    sent = run("send", "-c", _config(bench, G22), bench / "document.edxml")
    assert sent.exit_code == 0, sent.output
    package_id, document_id = sent.output.split()[:2]
    by_package = run("track", "-c", _config(bench, G22), package_id)
    assert by_package.exit_code == 0, by_package.output
    by_document = run("track", "-c", _config(bench, G22), document_id)
    assert by_document.output == by_package.output
    lines = by_package.output.splitlines()
    assert lines[0] == f"document {document_id}"
    assert lines[2].split() == ["RECIPIENT", "STATE", "PACKAGE"]  # header rows (issue 13.8)
    assert lines[3].split() == [H41, "queued", package_id]
    assert lines[4].split() == ["AT", "STATE", "STATUS", "NOTE"]
    at, state, status = lines[5].split()
    assert VIETNAM_TIME.fullmatch(at) and (state, status) == ("queued", "-")
    unknown = run("track", "-c", _config(bench, G22), "no-such-id")
    assert unknown.exit_code == 1 and "DOCUMENT_NOT_SENT" in unknown.output
    received = run("track", "-c", _config(bench, H41), package_id)  # not sent by H41
    assert received.exit_code == 1 and "DOCUMENT_NOT_SENT" in received.output


def test_inbox_list_says_when_empty_and_has_a_header(bench: Path) -> None:
    """An empty inbox says so; a filtered empty list says the filter matched nothing."""
    result = run("inbox", "list", "-c", _config(bench, H41))
    assert (result.exit_code, result.output) == (0, "inbox is empty\n")
    result = run("inbox", "list", "-c", _config(bench, H41), "--pickup", "new")
    assert (result.exit_code, result.output) == (0, "no received package matching the filters\n")
