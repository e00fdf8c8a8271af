"""Tests for the trust CLI: pki init-ca/issue/revoke/crl/show, sign and verify with exit codes."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from edoc_axis.cli import main


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, edxml_document: Callable[..., bytes]) -> Path:
    """A CA with an intermediate and two agencies, made with the CLI itself."""
    base = tmp_path_factory.mktemp("cli-pki")
    run = CliRunner().invoke
    assert run(main, ["pki", "init-ca", "--out", str(base / "ca"), "--intermediate"]).exit_code == 0
    for organ_id, key_type in (("000.00.00.G22", "rsa2048"), ("000.00.00.H41", "p256")):
        result = run(
            main,
            [
                "pki",
                "issue",
                "--ca",
                str(base / "ca"),
                "--organ-id",
                organ_id,
                "--name",
                f"Agency {organ_id}",
                "--out",
                str(base / organ_id),
                "--key-type",
                key_type,
            ],
        )
        assert result.exit_code == 0, result.output
    (base / "doc.xml").write_bytes(edxml_document(attachment=b"PK zip"))
    return base


def _sign(base: Path, organ_id: str, out: str) -> Path:
    agency = base / organ_id
    result = CliRunner().invoke(
        main,
        [
            "sign",
            str(base / "doc.xml"),
            "--key",
            str(agency / "key.pem"),
            "--cert",
            str(agency / "cert.pem"),
            "--chain",
            str(agency / "chain.pem"),
            "-o",
            str(base / out),
        ],
    )
    assert result.exit_code == 0, result.output
    return base / out


def _verify(base: Path, path: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        [
            "verify",
            str(path),
            "--trust",
            str(base / "ca" / "ca.pem"),
            "--crl",
            str(base / "ca" / "crl.pem"),
            *extra,
        ],
    )
    return result.exit_code, result.output


def test_keys_are_private(workdir: Path) -> None:
    """Every private key the CLI writes has mode 0600."""
    for key in [
        workdir / "ca" / "ca.key",
        workdir / "ca" / "intermediate.key",
        workdir / "000.00.00.G22" / "key.pem",
    ]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_show_prints_summary(workdir: Path) -> None:
    """pki show prints subject, OrganId, serial, fingerprint, validity and days to expiry."""
    result = CliRunner().invoke(
        main, ["pki", "show", "--json", str(workdir / "000.00.00.G22" / "cert.pem")]
    )
    assert result.exit_code == 0
    summary = json.loads(result.output)
    assert summary["organ_id"] == "000.00.00.G22"
    assert summary["days_to_expiry"] in (729, 730)
    assert {"subject", "serial", "fingerprint_sha256", "not_before", "not_after"} <= set(summary)
    text = CliRunner().invoke(main, ["pki", "show", str(workdir / "000.00.00.G22" / "cert.pem")])
    assert "000.00.00.G22" in text.output and "days_to_expiry" in text.output


def test_sign_and_verify_exit_codes(workdir: Path) -> None:
    """A genuine package exits 0; From mismatch and tampering exit 65 with their codes."""
    good = _sign(workdir, "000.00.00.G22", "good.xml")
    code, out = _verify(workdir, good)
    assert code == 0, out
    assert "000.00.00.G22" in out
    wrong = _sign(workdir, "000.00.00.H41", "wrong.xml")
    code, out = _verify(workdir, wrong, "--json")
    assert code == 65
    assert json.loads(out)["code"] == "SIGNER_MISMATCH"
    tampered = workdir / "tampered.xml"
    tampered.write_bytes(good.read_bytes().replace("Hà Nội".encode(), b"Hue"))
    code, out = _verify(workdir, tampered)
    assert code == 65
    assert "SIG_DIGEST_MISMATCH" in out


def test_unsigned_policy_flags(workdir: Path) -> None:
    """Unsigned: exit 65 SIG_MISSING, exit 0 with --allow-unsigned."""
    code, out = _verify(workdir, workdir / "doc.xml")
    assert code == 65 and "SIG_MISSING" in out
    code, out = _verify(workdir, workdir / "doc.xml", "--allow-unsigned", "--json")
    assert code == 0 and json.loads(out)["signed"] is False


def test_missing_crl_and_no_crl_check(workdir: Path) -> None:
    """Without --crl verification fails closed (CRL_MISSING); --no-crl-check accepts."""
    good = _sign(workdir, "000.00.00.G22", "good2.xml")
    result = CliRunner().invoke(
        main, ["verify", str(good), "--trust", str(workdir / "ca" / "ca.pem")]
    )
    assert result.exit_code == 65 and "CRL_MISSING" in result.output
    result = CliRunner().invoke(
        main, ["verify", str(good), "--trust", str(workdir / "ca" / "ca.pem"), "--no-crl-check"]
    )
    assert result.exit_code == 0


def test_fingerprint_allow_list(workdir: Path) -> None:
    """--fingerprint restricts signers to the directory's certificates."""
    good = _sign(workdir, "000.00.00.G22", "good3.xml")
    code, out = _verify(workdir, good, "--fingerprint", "00" * 32)
    assert code == 65 and "CERT_NOT_IN_DIRECTORY" in out


def test_verify_without_trust_is_config_error(workdir: Path) -> None:
    """verify with no --trust exits 78 (configuration error)."""
    result = CliRunner().invoke(main, ["verify", str(workdir / "doc.xml")])
    assert result.exit_code == 78


def test_revoke_then_crl(tmp_path: Path, edxml_document: Callable[..., bytes]) -> None:
    """pki revoke publishes a CRL on which the certificate is revoked (exit 65 CERT_REVOKED)."""
    run = CliRunner().invoke
    assert run(main, ["pki", "init-ca", "--out", str(tmp_path / "ca")]).exit_code == 0
    assert (
        run(
            main,
            [
                "pki",
                "issue",
                "--ca",
                str(tmp_path / "ca"),
                "--organ-id",
                "000.00.00.G22",
                "--name",
                "VPCP",
                "--out",
                str(tmp_path / "000.00.00.G22"),
            ],
        ).exit_code
        == 0
    )
    (tmp_path / "doc.xml").write_bytes(edxml_document())
    signed = _sign(tmp_path, "000.00.00.G22", "signed.xml")
    assert _verify(tmp_path, signed)[0] == 0
    result = run(
        main,
        [
            "pki",
            "revoke",
            "--ca",
            str(tmp_path / "ca"),
            str(tmp_path / "000.00.00.G22" / "cert.pem"),
        ],
    )
    assert result.exit_code == 0, result.output
    code, out = _verify(tmp_path, signed)
    assert code == 65 and "CERT_REVOKED" in out
    assert run(main, ["pki", "crl", "--ca", str(tmp_path / "ca"), "--days", "3"]).exit_code == 0
    assert _verify(tmp_path, signed)[0] == 65


def test_init_ca_refuses_to_overwrite(workdir: Path) -> None:
    """init-ca into an existing CA directory fails instead of replacing keys."""
    result = CliRunner().invoke(main, ["pki", "init-ca", "--out", str(workdir / "ca")])
    assert result.exit_code == 78
