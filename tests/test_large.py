"""Large packages through a node (issue 12): the size doors at submit, and a body stored as a
file travelling between two nodes and exported by streaming."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import Axis, make_document

from edoc_axis.cli import main
from edoc_axis.edxml import attachment as a
from edoc_axis.edxml.manifest import _base64_length
from edoc_axis.edxml.write import append_trace_header, build
from edoc_axis.errors import EdocAxisError, PackageTooLarge
from edoc_axis.node.node import Node
from edoc_axis.ops import pki
from edoc_axis.trust import signature
from edoc_axis.trust.chain import TrustStore

MIB = 1024 * 1024


@pytest.mark.broker
def test_submit_refuses_by_size_before_parsing(axis: Axis) -> None:
    """Over the package limit (50 MiB) is PACKAGE_TOO_LARGE at once, without parsing the bytes;
    over one broker message (16 MiB) is no longer refused by size (it travels in chunks)."""
    node = Node.from_settings(axis.settings("000.00.00.G22"))
    try:
        with pytest.raises(EdocAxisError) as parsed:
            node.submit(b"<edXML>" + b" " * (17 * MIB) + b"</edXML>")
        assert parsed.value.code not in ("PACKAGE_TOO_LARGE", "PACKAGE_TOO_LARGE_FOR_BROKER")
        for size, code in ((51 * MIB, "PACKAGE_TOO_LARGE"),):
            data = b"<edXML>" + b" " * size + b"</edXML>"
            started = time.perf_counter()
            with pytest.raises(PackageTooLarge) as err:
                node.submit(data)
            assert err.value.code == code
            assert time.perf_counter() - started < 0.5
    finally:
        node.close()


@pytest.mark.broker
def test_a_body_stored_as_a_file_travels_and_exports_by_streaming(
    two_nodes: tuple[Node, Node], axis: Axis, tmp_path: Path
) -> None:
    """A 3 MB package is a body file at the sender and at the recipient (not a blob), reaches
    H41 byte-identical, and `inbox export` writes it from the file."""
    g22, h41 = two_nodes
    doc = make_document()
    append_trace_header(doc, "000.00.00.G22", "2024/03/05 09:00:00")
    a.add_attachment(doc, "scan.pdf", os.urandom(2 * MIB))
    result = g22.submit(build(doc))
    sent = g22.store.body(result.package_id)
    assert len(sent) > MIB
    assert [p.name for p in g22.store.bodies.root.rglob("*") if p.is_file()] == [
        g22.store.package(result.package_id).sha256]
    deadline = time.monotonic() + 30
    while not h41.store.inbox(kind="edoc"):
        assert time.monotonic() < deadline, "the document did not arrive"
        time.sleep(0.05)
    [entry] = h41.store.inbox(kind="edoc")
    assert h41.store.body(entry.package_id) == sent
    assert any(p.is_file() for p in h41.store.bodies.root.rglob("*"))
    out = tmp_path / "exported.edxml"
    run = CliRunner().invoke(main, ["inbox", "export", "-c", str(axis.config("000.00.00.H41")),
                                    entry.package_id, "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert out.read_bytes() == sent


def test_a_package_with_a_30_mb_attachment_signs_and_verifies() -> None:
    """signxml re-parses the canonical signed content with trust's own parser: huge trees are
    on there too, so a text node over libxml2's 10 MB default verifies."""
    ca_key, ca_cert = pki.init_ca()
    key, cert = pki.issue_agency_certificate(ca_key, ca_cert, "000.00.00.G22", "VPCP")
    trust = TrustStore(anchors=[ca_cert], crls=[pki.make_crl(ca_key, ca_cert)])
    doc = make_document()
    a.add_attachment(doc, "scan.pdf", os.urandom(30 * MIB))
    signed = signature.sign(build(doc), key, cert)
    result = signature.verify(signed, trust)
    assert max(len(text) for text in result.signed_root.itertext()) > 40 * MIB


@pytest.mark.parametrize(("text", "length"), [
    ("", 0), ("QUJD", 4), ("QQ==", 4), ("QQ\n=\n=", 4), ("QQ=", 3), ("Q===", None),
    ("Q=Q=", None), ("QUJD!", None), ("é", None),
    ("A" * (4 * MIB - 1) + "==", 4 * MIB + 1), ("A" * (4 * MIB - 1) + "=A", None),
])
def test_base64_check_reads_in_slices_with_the_same_verdicts(text: str, length: int | None) -> None:
    """The sliced base64 check counts and refuses as the whole-text check did, padding split
    across a slice boundary included."""
    assert _base64_length(text) == length
