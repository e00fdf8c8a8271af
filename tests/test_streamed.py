"""Attachments streamed into a package (edxml.streamed, `package new --attach`): the same bytes
as add_attachment + build, in bounded memory, and extraction still capped."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_document

from edoc_axis.edxml.attachment import add_attachment, write_attachment
from edoc_axis.edxml.model import DocumentPackage
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.streamed import link_placeholder, write_package, zip_stream
from edoc_axis.edxml.write import build
from edoc_axis.errors import MalformedPackage

FILES = {"scan.pdf": os.urandom(3 * 1024 * 1024 + 7), "empty.txt": b"",
         "to-trinh.docx": b"text " * 10_000}


def _streamed(files: dict[str, bytes]) -> bytes:
    doc = make_document()
    zips = {}
    for name, content in files.items():
        zipped = io.BytesIO()
        digest = zip_stream(name, io.BytesIO(content), len(content), zipped)
        zipped.seek(0)
        zips[link_placeholder(doc, name, digest)[1]] = zipped
    out = io.BytesIO()
    written = write_package(build(doc), zips, out)
    assert written == len(out.getvalue())
    return out.getvalue()


def test_streamed_package_is_byte_identical_to_add_attachment() -> None:
    """Zipping in chunks and streaming the base64 gives exactly add_attachment + build's bytes."""
    doc = make_document()
    for name, content in FILES.items():
        add_attachment(doc, name, content)
    assert _streamed(FILES) == build(doc)


def test_streamed_attachments_extract_to_the_original_files() -> None:
    """Every streamed attachment reads back as its file, through the capped extractor."""
    pkg = parse(_streamed(FILES))
    assert isinstance(pkg, DocumentPackage)
    for att in pkg.attachments:
        sink = io.BytesIO()
        assert write_attachment(att, sink).name == att.attachment_name
        assert sink.getvalue() == FILES[att.attachment_name or ""]
    big = next(att for att in pkg.attachments if att.attachment_name == "scan.pdf")
    with pytest.raises(MalformedPackage) as err:  # the zip-bomb cap stays in force
        write_attachment(big, io.BytesIO(), max_bytes=1024 * 1024)
    assert err.value.code == "ATTACHMENT_INVALID"


def test_placeholders_and_sizes_are_checked() -> None:
    """A missing placeholder, a folder in the name, or a file that changed size is refused."""
    with pytest.raises(ValueError, match="exactly once"):
        write_package(b"<a>x</a>", {"EdocAxisPlaceholderX": io.BytesIO()}, io.BytesIO())
    with pytest.raises(ValueError, match="bare file name"):
        zip_stream("a/b.pdf", io.BytesIO(b"x"), 1, io.BytesIO())
    with pytest.raises(ValueError, match="did the file change"):
        zip_stream("b.pdf", io.BytesIO(b"xy"), 1, io.BytesIO())


def _peak_rss_mb(args: list[str]) -> float:
    """Run the CLI with ``args`` under /usr/bin/time; the command's own peak RSS in MB (time
    forks it from its own small process: the test process's size is not inherited)."""
    run = subprocess.run(["/usr/bin/time", "-f", "peak-kb %M", sys.executable, "-m",
                          "edoc_axis", *args], check=True, capture_output=True, text=True)
    return int(run.stderr.strip().splitlines()[-1].split()[-1]) / 1024


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs /usr/bin/time")
def test_package_new_attach_runs_in_bounded_memory(tmp_path: Path) -> None:
    """`package new --attach` of a 30 MB incompressible file peaks well under twice the file
    (it used to hold the file, its ZIP and its base64 at once), and the file extracts intact."""
    scan = tmp_path / "scan.pdf"
    content = os.urandom(30 * 1024 * 1024)
    scan.write_bytes(content)
    out = tmp_path / "pkg.edxml"
    args = ["package", "new", "--from", "000.00.00.G22", "--to", "000.00.00.H41",
            "--subject", "Scan", "--code-number", "1", "--code-notation", "QD",
            "--attach", str(scan), "-o", str(out)]
    peak_mb = _peak_rss_mb(args)
    assert peak_mb < 2 * 30, f"peak RSS {peak_mb:.0f} MB for a 30 MB file"
    pkg = parse(out.read_bytes())
    assert isinstance(pkg, DocumentPackage)
    sink = io.BytesIO()
    write_attachment(pkg.attachments[0], sink)
    assert sink.getvalue() == content
