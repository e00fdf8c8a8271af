"""``edoc-axis pki ...``, ``sign`` and ``verify``: agency certificates and package signatures.

A CA directory made by ``pki init-ca`` holds: ``ca.pem``/``ca.key`` (the root, the trust anchor
to give ``verify --trust``), optionally ``intermediate.pem``/``intermediate.key`` (the issuing
CA), ``crl.pem`` (the CRLs of every CA in the directory, give it to ``verify --crl``),
``revoked.json`` and ``crlnumber``. Private keys are written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import click
from cryptography import x509

from edoc_axis.cli.base import reported_errors
from edoc_axis.errors import EXIT_INVALID, ErrorCode, PackageRejected, TrustError
from edoc_axis.ops import pki
from edoc_axis.trust import certificate as trust
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.policy import SignaturePolicy
from edoc_axis.trust.signature import sign, verify

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (never briefly world-readable)."""
    if path.exists():
        raise TrustError(f"{path} exists; refusing to overwrite a private key",
                         code=ErrorCode.TRUST_EXISTS)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TrustError(f"cannot read {path}: {exc.strerror}",
                         code=ErrorCode.TRUST_UNREADABLE) from exc


class _CaDir:
    """The files of a CA directory (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.root_cert_path = path / "ca.pem"
        self.root_key_path = path / "ca.key"
        self.int_cert_path = path / "intermediate.pem"
        self.int_key_path = path / "intermediate.key"
        self.crl_path = path / "crl.pem"
        self.revoked_path = path / "revoked.json"
        self.number_path = path / "crlnumber"

    def cas(self) -> list[tuple[trust.PrivateKey, x509.Certificate]]:
        """Every CA of the directory, root first."""
        if not self.root_cert_path.exists():
            raise TrustError(f"{self.path} is not a CA directory (no ca.pem)",
                             code=ErrorCode.TRUST_NO_CA)
        out = [
            (
                trust.load_private_key(_read(self.root_key_path)),
                trust.load_certificate(_read(self.root_cert_path)),
            )
        ]
        if self.int_cert_path.exists():
            out.append(
                (
                    trust.load_private_key(_read(self.int_key_path)),
                    trust.load_certificate(_read(self.int_cert_path)),
                )
            )
        return out

    def issuing(self) -> tuple[trust.PrivateKey, x509.Certificate]:
        """The CA that issues agency certificates: the intermediate if there is one."""
        return self.cas()[-1]

    def revoked(self) -> list[dict[str, str]]:
        if not self.revoked_path.exists():
            return []
        entries: list[dict[str, str]] = json.loads(_read(self.revoked_path))
        return entries

    def write_crls(self, days: int) -> int:
        number = int(self.number_path.read_text()) + 1 if self.number_path.exists() else 1
        revoked = self.revoked()
        pem = b""
        for key, cert in self.cas():
            issuer = cert.subject.rfc4514_string()
            items = [
                pki.Revocation(int(r["serial"], 16), dt.datetime.fromisoformat(r["revoked_at"]))
                for r in revoked
                if r["issuer"] == issuer
            ]
            pem += pki.crl_to_pem(pki.make_crl(key, cert, items, days=days, crl_number=number))
        self.crl_path.write_bytes(pem)
        self.number_path.write_text(f"{number}\n")
        return number


@click.group("pki")
def pki_group() -> None:
    """Create a test/demo CA, issue agency signing certificates, revoke them, publish CRLs."""


@pki_group.command("init-ca")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="New CA dir.")
@click.option("--name", default="edoc_axis Root CA", show_default=True, help="CA common name.")
@click.option(
    "--key-type", type=click.Choice(pki.KEY_TYPES), default="rsa2048", show_default=True
)
@click.option("--days", type=int, default=pki.DEFAULT_CA_DAYS, show_default=True)
@click.option("--intermediate", is_flag=True, help="Also create an issuing intermediate CA.")
@click.option("--crl-days", type=int, default=pki.DEFAULT_CRL_DAYS, show_default=True)
def init_ca_command(  # noqa: PLR0917 - click passes each option as an argument
    out: Path, name: str, key_type: str, days: int, intermediate: bool, crl_days: int
) -> None:
    """Create a root CA (and optionally an intermediate) in OUT, with a first empty CRL."""
    with reported_errors():
        ca = _CaDir(out)
        if ca.root_cert_path.exists():
            raise TrustError(f"{out} already holds a CA", code=ErrorCode.TRUST_EXISTS)
        out.mkdir(parents=True, exist_ok=True)
        key, cert = pki.init_ca(name, key_type=key_type, days=days)
        _write_private(ca.root_key_path, pki.key_to_pem(key))
        ca.root_cert_path.write_bytes(pki.cert_to_pem(cert))
        if intermediate:
            ikey, icert = pki.issue_intermediate(
                key, cert, f"{name} Issuing CA", key_type=key_type
            )
            _write_private(ca.int_key_path, pki.key_to_pem(ikey))
            ca.int_cert_path.write_bytes(pki.cert_to_pem(icert))
        ca.write_crls(crl_days)
        click.echo(f"root CA: {ca.root_cert_path} (trust anchor)")
        if intermediate:
            click.echo(f"issuing CA: {ca.int_cert_path}")
        click.echo(f"CRL: {ca.crl_path}")


@pki_group.command("issue")
@click.option("--ca", "ca_dir", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option("--organ-id", required=True, help="Agency code, e.g. 000.00.00.G22.")
@click.option("--name", required=True, help="Agency name (certificate CN).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option(
    "--key-type", type=click.Choice(pki.KEY_TYPES), default="rsa2048", show_default=True
)
@click.option("--days", type=int, default=pki.DEFAULT_AGENCY_DAYS, show_default=True)
def issue_command(  # noqa: PLR0917 - click passes each option as an argument
    ca_dir: Path, organ_id: str, name: str, out: Path, key_type: str, days: int
) -> None:
    """Issue an agency signing certificate: OUT/key.pem (0600), OUT/cert.pem, OUT/chain.pem.

    The OrganId is bound as the subjectAltName URI urn:qcvn102:organid:<ORGAN_ID>; key usage
    digitalSignature + nonRepudiation.
    """
    with reported_errors():
        ca = _CaDir(ca_dir)
        ca_key, ca_cert = ca.issuing()
        out.mkdir(parents=True, exist_ok=True)
        key, cert = pki.issue_agency_certificate(
            ca_key, ca_cert, organ_id, name, key_type=key_type, days=days
        )
        _write_private(out / "key.pem", pki.key_to_pem(key))
        (out / "cert.pem").write_bytes(pki.cert_to_pem(cert))
        chain = [c for _, c in ca.cas()[1:]]
        (out / "chain.pem").write_bytes(b"".join(pki.cert_to_pem(c) for c in chain))
        click.echo(f"{organ_id}: {out / 'cert.pem'} (fingerprint {trust.fingerprint(cert)})")


@pki_group.command("revoke")
@click.option("--ca", "ca_dir", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option("--crl-days", type=int, default=pki.DEFAULT_CRL_DAYS, show_default=True)
@click.argument("cert_file", type=_FILE)
def revoke_command(ca_dir: Path, crl_days: int, cert_file: Path) -> None:
    """Revoke the certificate in CERT_FILE and publish a new crl.pem."""
    with reported_errors():
        ca = _CaDir(ca_dir)
        cert = trust.load_certificate(_read(cert_file))
        issuers = {c.subject.rfc4514_string() for _, c in ca.cas()}
        issuer = cert.issuer.rfc4514_string()
        if issuer not in issuers:
            raise TrustError(f"{cert_file} was not issued by this CA",
                             code=ErrorCode.TRUST_FOREIGN_CERT)
        entries = ca.revoked()
        serial = f"{cert.serial_number:x}"
        if not any(e["serial"] == serial and e["issuer"] == issuer for e in entries):
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            entries.append({"serial": serial, "issuer": issuer, "revoked_at": now.isoformat()})
            ca.revoked_path.write_text(json.dumps(entries, indent=2) + "\n")
        number = ca.write_crls(crl_days)
        click.echo(f"revoked serial {serial}; CRL #{number} written to {ca.crl_path}")


@pki_group.command("crl")
@click.option("--ca", "ca_dir", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option("--days", type=int, default=pki.DEFAULT_CRL_DAYS, show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Also copy the CRLs here.")
def crl_command(ca_dir: Path, days: int, output: Path | None) -> None:
    """Publish fresh CRLs (valid DAYS) of every CA in the directory to crl.pem."""
    with reported_errors():
        ca = _CaDir(ca_dir)
        number = ca.write_crls(days)
        if output is not None:
            output.write_bytes(ca.crl_path.read_bytes())
        click.echo(f"CRL #{number} written to {output or ca.crl_path}")


@pki_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("cert_file", type=_FILE)
def show_command(as_json: bool, cert_file: Path) -> None:
    """Summarise a certificate: subject, OrganId, serial, fingerprint, validity, days left."""
    with reported_errors():
        summary = trust.certificate_summary(trust.load_certificate(_read(cert_file)))
        if as_json:
            click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
            return
        for field, value in summary.items():
            click.echo(f"{field:20} {value if value is not None else '(none)'}")


@click.command("sign")
@click.argument("package_file", type=_FILE)
@click.option("--key", "key_file", required=True, type=_FILE, help="Agency private key (PEM).")
@click.option("--cert", "cert_file", required=True, type=_FILE, help="Agency certificate (PEM).")
@click.option("--chain", "chain_file", type=_FILE, help="Intermediate CA certificates (PEM).")
@click.option(
    "--algorithm",
    type=click.Choice(["rsa-sha256", "ecdsa-sha256"]),
    default=None,
    help="Default: follows the key type.",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Output file (default stdout)."
)
def sign_command(  # noqa: PLR0917 - click passes each option as an argument
    package_file: Path,
    key_file: Path,
    cert_file: Path,
    chain_file: Path | None,
    algorithm: str | None,
    output: Path | None,
) -> None:
    """Sign an unsigned edXML package (enveloped XML-DSig, last child of edXMLHeader)."""
    with reported_errors():
        chain_pem = _read(chain_file).strip() if chain_file else b""
        chain = trust.load_certificates(chain_pem) if chain_pem else []
        signed = sign(
            _read(package_file),
            trust.load_private_key(_read(key_file)),
            trust.load_certificate(_read(cert_file)),
            chain=chain,
            algorithm=algorithm,
        )
        if output is None:
            sys.stdout.buffer.write(signed)
            sys.stdout.buffer.flush()
        else:
            output.write_bytes(signed)


@click.command("verify")
@click.argument("package_file", type=_FILE)
@click.option(
    "--trust", "anchors", multiple=True, type=_FILE, help="Trust anchor CA (PEM); repeat."
)
@click.option("--crl", "crls", multiple=True, type=_FILE, help="CRL file (PEM/DER); repeat.")
@click.option("--chain", "chains", multiple=True, type=_FILE, help="Extra intermediates (PEM).")
@click.option(
    "--fingerprint",
    "fingerprints",
    multiple=True,
    help="Allowed signer SHA-256 fingerprint (from the agency directory); repeat.",
)
@click.option("--allow-unsigned", is_flag=True, help="Accept a package with no signature.")
@click.option("--allow-sha1", is_flag=True, help="Accept legacy SHA-1 signatures (with a warning).")
@click.option("--no-crl-check", is_flag=True, help="Do not fail when a CRL is missing/stale.")
@click.option(
    "--accept-edxml-namespace",
    is_flag=True,
    help="Verify a Signature written in the edXML namespace as if it were XML-DSig.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify_command(  # noqa: PLR0917 - click passes each option as an argument
    package_file: Path,
    anchors: tuple[Path, ...],
    crls: tuple[Path, ...],
    chains: tuple[Path, ...],
    fingerprints: tuple[str, ...],
    allow_unsigned: bool,
    allow_sha1: bool,
    no_crl_check: bool,
    accept_edxml_namespace: bool,
    as_json: bool,
) -> None:
    """Verify a package's signature and its binding to From/OrganId.

    Exit 0 when valid, 65 when invalid (the reason code is printed), 78 for bad trust material.
    """
    with reported_errors():
        if not anchors:
            raise TrustError("give at least one --trust CA certificate",
                             code=ErrorCode.TRUST_NO_ANCHORS)
        store = TrustStore.from_pem(
            [_read(p) for p in anchors], [_read(p) for p in crls], [_read(p) for p in chains]
        )
        policy = SignaturePolicy(
            require_signature=not allow_unsigned,
            allow_sha1=allow_sha1,
            crl_required=not no_crl_check,
            accept_edxml_namespace=accept_edxml_namespace,
        )
        try:
            result = verify(
                _read(package_file), store, policy, allowed_fingerprints=fingerprints or None
            )
        except PackageRejected as exc:
            if not as_json:
                raise
            click.echo(json.dumps({"valid": False, **exc.to_dict()}, ensure_ascii=False))
            sys.exit(EXIT_INVALID)
        if as_json:
            click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
            return
        if result.signed:
            click.echo(
                f"valid: signed by {result.signer_organ_id} ({result.subject}), "
                f"serial {result.serial}, fingerprint {result.fingerprint}"
            )
        else:
            click.echo("valid: unsigned (accepted by --allow-unsigned)")
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
