"""Tests of edoc_axis.edxml.attachment: the application/zip convention on write, three on read."""

from __future__ import annotations

import base64
import io
import random
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DATA, VALID_PACKAGES, Axis, make_document

from edoc_axis.cli import main
from edoc_axis.edxml import attachment as a
from edoc_axis.edxml.model import DocumentPackage
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.schema import validate
from edoc_axis.edxml.write import append_trace_header, build
from edoc_axis.errors import MalformedPackage
from edoc_axis.node.node import Node

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(range(256)) * 8
TEXT = "Kính gửi: Ủy ban nhân dân tỉnh Nghệ An\r\n".encode() * 20
FILES = {"to-trinh.pdf": PDF, "phu-luc.txt": TEXT, "Quyết định số 12.pdf": PDF + b"12"}


def _zip(members: dict[str, bytes], *, utf8_flag: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    raw = buffer.getvalue()
    if utf8_flag:
        return raw
    # Some producers store a UTF-8 member name without the ZIP's UTF-8 flag (bit 11).
    out = bytearray(raw)
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = out.find(signature)
        while at >= 0:
            out[at + flag_at + 1] &= ~0x08 & 0xFF
            at = out.find(signature, at + 4)
    return bytes(out)


def _attachment(raw: bytes, name: str | None, content_type: str | None) -> a.Attachment:
    return a.Attachment("cid:1", name, content_type=content_type,
                        encoded=base64.b64encode(raw).decode())


def _docx() -> bytes:
    return _zip({
        "[Content_Types].xml": b'<?xml version="1.0"?><Types/>',
        "_rels/.rels": b"<Relationships/>",
        "word/document.xml": "<w:document>Báo cáo</w:document>".encode(),
    })


def _installed_base(att: a.Attachment) -> bytes:
    """What the national client SDK hands the DMS: unzipped only when labelled application/zip."""
    raw = base64.b64decode(att.encoded)
    if att.content_type != "application/zip":
        return raw
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        return archive.read(archive.infolist()[0])


# --- write -------------------------------------------------------------------------------------


def test_written_package_labels_zip_keeps_name_description_and_validates() -> None:
    """Attachment and Reference say application/zip; name and Description stay the caller's."""
    doc = make_document()
    att = a.add_attachment(doc, "Quyết định số 12.pdf", PDF, description="Toàn văn")
    data = build(doc)
    assert data.count(b"<ContentType>application/zip</ContentType>") == 2
    assert validate(data).valid
    parsed = parse(data)
    assert isinstance(parsed, DocumentPackage)
    [ref], [got] = parsed.manifest, parsed.attachments
    assert (ref.content_type, ref.attachment_name, ref.description) == (
        "application/zip", "Quyết định số 12.pdf", "Toàn văn")
    assert (got.content_type, got.attachment_name, got.description) == (
        "application/zip", "Quyết định số 12.pdf", "Toàn văn")
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(att.encoded))) as archive:
        assert archive.namelist() == ["Quyết định số 12.pdf"]  # the inner type: its extension


@pytest.mark.parametrize("name", list(FILES))
def test_recipient_and_installed_base_get_the_bytes_sent(name: str) -> None:
    """Through build and parse, our reader and the installed base's rule both give the file back."""
    doc = make_document()
    a.add_attachment(doc, name, FILES[name])
    parsed = parse(build(doc))
    assert isinstance(parsed, DocumentPackage)
    [att] = parsed.attachments
    assert a.extract_attachment(att) == (name, FILES[name])
    assert _installed_base(att) == FILES[name]


def test_content_ids_link_both_sides_and_stay_unique() -> None:
    """Attachment and Reference share a cid: id; the same file added twice gets another."""
    doc = make_document()
    first = a.add_attachment(doc, "công văn.pdf", PDF)
    second = a.add_attachment(doc, "công văn.pdf", PDF)
    assert first.content_id.startswith("cid:") and first.content_id != second.content_id
    assert [r.content_id for r in doc.manifest] == [first.content_id, second.content_id]
    assert a.add_attachment(make_document(), "công văn.pdf", PDF) == first  # deterministic


def test_add_attachment_refuses_a_path_for_a_name() -> None:
    """A name with a folder in it is a caller's bug, not a ZIP member path."""
    with pytest.raises(ValueError, match="bare file name"):
        a.add_attachment(make_document(), "../etc/passwd", b"x")


# --- read: the three conventions ---------------------------------------------------------------


@pytest.mark.parametrize(
    "label", ["application/zip", "application/x-zip-compressed", "Application/ZIP; name=x"])
def test_read_zip_labelled_zip(label: str) -> None:
    """(a) Labelled as a ZIP: the member named like the attachment, else the only member."""
    named = _attachment(_zip({"ghi-chu.txt": b"note", "Quyết định.pdf": PDF}), "Quyết định.pdf",
                        label)
    unpacked_sink = io.BytesIO()
    unpacked = a.write_attachment(named, unpacked_sink)
    assert (unpacked.name, unpacked.packing, unpacked_sink.getvalue()) == (
        "Quyết định.pdf", "zip", PDF)
    only = _attachment(_zip({"cong-van.txt": TEXT}), "vanban.zip", label)
    assert a.extract_attachment(only) == ("cong-van.txt", TEXT)


def test_read_zip_of_several_files_labelled_zip_is_the_file() -> None:
    """(a) A multi-file ZIP with no member named like it is a ZIP sent as itself: kept whole."""
    bundle = _zip({"a.pdf": PDF, "b.txt": TEXT})
    assert a.extract_attachment(_attachment(bundle, "ho-so.zip", "application/zip")) == (
        "ho-so.zip", bundle)


def test_read_zip_labelled_with_the_inner_type() -> None:
    """(b) The old convention: a one-member ZIP named like the attachment is unwrapped."""
    att = _attachment(_zip({"Quyết định số 12.pdf": PDF}), "Quyết định số 12.pdf",
                      "application/pdf")
    sink = io.BytesIO()
    unpacked = a.write_attachment(att, sink)
    assert (unpacked.name, unpacked.packing, sink.getvalue()) == (
        "Quyết định số 12.pdf", "zip-mislabelled", PDF)
    assert unpacked.content_type == "application/pdf"


def test_read_mislabelled_zip_with_unflagged_utf8_or_other_member_name() -> None:
    """(b) Also unwrapped: a UTF-8 name stored without the flag, or another name, same extension."""
    unflagged = _zip({"Quyết định.pdf": PDF}, utf8_flag=False)
    with zipfile.ZipFile(io.BytesIO(unflagged)) as archive:
        assert archive.namelist() != ["Quyết định.pdf"]  # zipfile reads it as cp437
    assert a.extract_attachment(_attachment(unflagged, "quyết định.PDF", "application/pdf")) == (
        "quyết định.PDF", PDF)
    renamed = _attachment(_zip({"QD12.pdf": PDF}), "Quyết định số 12.pdf", "application/pdf")
    assert a.extract_attachment(renamed) == ("Quyết định số 12.pdf", PDF)
    other = _zip({"bang-tinh.xlsx": b"x"})
    assert a.extract_attachment(_attachment(other, "Quyết định.pdf", "application/pdf"))[1] == other


def test_read_not_zipped() -> None:
    """(c) Bytes that are no ZIP are the file, whatever the label says about them."""
    for label in ("application/pdf", "application/octet-stream", None):
        sink = io.BytesIO()
        unpacked = a.write_attachment(_attachment(PDF, "to-trinh.pdf", label), sink)
        assert (unpacked.name, unpacked.packing, sink.getvalue()) == ("to-trinh.pdf", "plain", PDF)


def test_docx_sent_unzipped_is_returned_untouched() -> None:
    """An OOXML file is itself a ZIP; sent unzipped under its own type it must not be unpacked."""
    docx = _docx()
    ooxml = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    for label in (ooxml, "application/octet-stream", None):
        assert a.extract_attachment(_attachment(docx, "Báo cáo.docx", label)) == (
            "Báo cáo.docx", docx)


def test_docx_wrapped_once_is_unwrapped_once() -> None:
    """A .docx zipped by add_attachment, or by the old convention, comes back as the .docx."""
    docx = _docx()
    doc = make_document()
    assert a.extract_attachment(a.add_attachment(doc, "Báo cáo.docx", docx)) == (
        "Báo cáo.docx", docx)
    old = _attachment(_zip({"Báo cáo.docx": docx}), "Báo cáo.docx", "application/msword")
    assert a.extract_attachment(old) == ("Báo cáo.docx", docx)


def test_valid_corpus_attachments_unwrap_to_their_text() -> None:
    """The corpora (zipped, labelled text/plain or not at all) unwrap to the text file."""
    seen = 0
    for path in VALID_PACKAGES:
        pkg = parse(path.read_bytes())
        for att in pkg.attachments if isinstance(pkg, DocumentPackage) else []:
            name, content = a.extract_attachment(att)
            assert name == att.attachment_name and name.endswith(".txt")
            assert not content.startswith(b"PK") and content.decode("utf-8")
            seen += 1
    assert seen >= 10
    assert validate((DATA / "valid" / "doc-two-attachments.edxml").read_bytes()).valid


# --- refusals ------------------------------------------------------------------------------------


def test_zip_bomb_is_refused_before_the_cap_reaches_the_sink() -> None:
    """A member over max_bytes raises ATTACHMENT_INVALID; no more than the cap was written."""
    bomb = a.add_attachment(make_document(), "zeros.bin", bytes(5_000_000))
    assert len(bomb.encoded) < 20_000

    class Counter:
        written = 0

        def write(self, data: bytes, /) -> int:
            self.written += len(data)
            return len(data)

    sink = Counter()
    with pytest.raises(MalformedPackage) as big:
        a.write_attachment(bomb, sink, max_bytes=1000)
    assert big.value.code == "ATTACHMENT_INVALID" and "over 1000 bytes" in big.value.message
    assert sink.written <= 1000
    assert a.write_attachment(bomb, sink, max_bytes=5_000_000).size == 5_000_000


def test_bad_base64_and_false_zip_label_are_refused() -> None:
    """Bad base64, or a ZIP label over bytes that are no ZIP, raise ATTACHMENT_INVALID."""
    for att in (a.Attachment("cid:y", "y", encoded="@@@"),
                a.Attachment("cid:y", "y", encoded="Zm9vé"),
                _attachment(PDF, "a.pdf", "application/zip"),
                _attachment(_zip({}), "a.pdf", "application/zip")):
        with pytest.raises(MalformedPackage) as bad:
            a.extract_attachment(att)
        assert bad.value.code == "ATTACHMENT_INVALID"


def test_damaged_archives_raise_attachment_invalid_never_a_library_error() -> None:
    """Flipped bytes in a wrapper (member names, headers, deflate data) give a clear code or
    a file; zlib, struct or Unicode errors never escape."""
    wrapper = base64.b64decode(a.add_attachment(make_document(), "Quyết định.pdf", PDF).encoded)
    rng = random.Random(102)
    outcomes = set()
    for _ in range(600):
        raw = bytearray(wrapper)
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        for label in ("application/zip", "application/pdf"):
            try:
                outcomes.add(a.write_attachment(_attachment(bytes(raw), "Quyết định.pdf", label),
                                                io.BytesIO()).packing)
            except MalformedPackage as exc:
                assert exc.code == "ATTACHMENT_INVALID"
                outcomes.add("refused")
    assert "refused" in outcomes and "zip" in outcomes


# --- through the node and the CLI ----------------------------------------------------------------


@pytest.mark.broker
def test_files_survive_sign_route_and_inbox_export(
    two_nodes: tuple[Node, Node], axis: Axis, tmp_path: Path
) -> None:
    """Sent through a node over the broker, `inbox export --attachments` gives back every file."""
    g22, h41 = two_nodes
    doc = make_document()
    append_trace_header(doc, "000.00.00.G22", "2024/03/05 09:00:00")
    for name, content in FILES.items():
        a.add_attachment(doc, name, content)
    result = g22.submit(build(doc))
    deadline = time.monotonic() + 20
    while not h41.store.inbox(kind="edoc"):
        assert time.monotonic() < deadline, "the document did not arrive"
        time.sleep(0.02)
    [entry] = h41.store.inbox(kind="edoc")
    assert b"Signature" in h41.store.body(entry.package_id)
    out = tmp_path / "export"
    run = CliRunner().invoke(main, [
        "inbox", "export", "-c", str(axis.config("000.00.00.H41")), entry.package_id,
        "-o", str(tmp_path / "signed.edxml"), "--attachments", str(out)])
    assert run.exit_code == 0, run.output
    assert {f.name: f.read_bytes() for f in out.iterdir()} == FILES
    assert (tmp_path / "signed.edxml").read_bytes() == g22.store.body(result.package_id)
