"""``edoc-axis audit`` after a real exchange: verify, trail, export, seal, archive, and evidence
bundles checked with only the CA certificate from another directory."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import AuditedExchange, Pki

from edoc_axis.cli import main
from edoc_axis.errors import EXIT_CONFIG, EXIT_INVALID

pytestmark = pytest.mark.broker

G22, H41 = "000.00.00.G22", "000.00.00.H41"


def run(*args: str) -> tuple[int, str, str]:
    """Run ``edoc-axis`` in-process; (exit code, stdout, stderr)."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_verify_holds_then_names_the_edited_entry(audited_exchange: AuditedExchange) -> None:
    """`audit verify` exits 0 on the intact chain and 65 naming the entry an attacker edited."""
    config = str(audited_exchange.config(G22))
    code, out, _ = run("audit", "verify", "-c", config)
    assert code == 0, out
    assert "OK: the audit chain holds" in out
    code, out, _ = run("audit", "verify", "-c", config, "--json", "--no-receipts")
    assert code == 0 and json.loads(out)["receipts"] == 0
    conn = sqlite3.connect(audited_exchange.settings[G22].store_path, isolation_level=None)
    conn.execute("UPDATE audit_entry SET counterpart = '000.00.00.H42' WHERE seq = 2")
    conn.close()
    code, _, err = run("audit", "verify", "-c", config)
    assert code == EXIT_INVALID
    assert "FAILED: seq 2: AUDIT_EDITED" in err
    code, _, _ = run("audit", "verify", "-c", config, "--from", "3")
    assert code == 0  # the range after the edit still holds


def test_trail_shows_every_recipient_status_and_signer(
    audited_exchange: AuditedExchange,
) -> None:
    """`audit trail` lists submission, receipts and statuses with their signing certificates."""
    x = audited_exchange
    code, out, _ = run("audit", "trail", x.document_id, "-c", str(x.config(G22)), "--json")
    assert code == 0
    events = json.loads(out)["events"]
    received = [(e["counterpart"], e["status"], e["signer"]) for e in events
                if e["event"] == "status_received"]
    h41, h42 = x.axis.agencies[H41].fingerprint, x.axis.agencies["000.00.00.H42"].fingerprint
    assert (H41, "01", h41) in received
    assert (H41, "03", h41) in received
    assert ("000.00.00.H42", "01", h42) in received
    assert any(e["event"] == "status_sent" and e["status"] == "13" for e in events)
    code, out, _ = run("audit", "trail", x.document_id, "-c", str(x.config(G22)))
    assert code == 0 and "status_received" in out and "status 03" in out
    code, _, err = run("audit", "trail", "nope", "-c", str(x.config(G22)))
    assert code != 0 and "no audit entry" in err


def test_export_jsonl_and_csv(audited_exchange: AuditedExchange, tmp_path: Path) -> None:
    """`audit export` writes every entry of the period as JSON Lines or CSV."""
    import datetime as dt

    x = audited_exchange
    today = dt.datetime.now(dt.UTC).date().isoformat()
    config = str(x.config(G22))
    code, out, _ = run("audit", "export", "-c", config, "--from", today, "--to", today)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    target = tmp_path / "audit.csv"
    code, _, err = run("audit", "export", "-c", config, "--from", today, "--to", today,
                       "--format", "csv", "-o", str(target))
    assert code == 0 and f"exported {len(lines)} entries" in err
    table = list(csv.reader(target.read_text(encoding="utf-8").splitlines()))
    assert table[0][:3] == ["seq", "at", "kind"]
    assert len(table) == len(lines) + 1
    code, out, _ = run("audit", "export", "-c", config, "--from", "2001-01-01",
                       "--to", "2001-01-02")
    assert code == 0 and out == ""


def test_bundle_verifies_elsewhere_with_only_the_ca(
    audited_exchange: AuditedExchange, tmp_path: Path
) -> None:
    """A bundle checks out from another directory with only the CA PEM; tampering fails."""
    x = audited_exchange
    bundle = tmp_path / "evidence.zip"
    code, out, _ = run("audit", "bundle", x.document_id, "-c", str(x.config(G22)),
                       "-o", str(bundle))
    assert code == 0, out
    clean = tmp_path / "auditor"
    clean.mkdir()
    (clean / "ca.pem").write_bytes(x.axis.pki.ca_path.read_bytes())
    (clean / "evidence.zip").write_bytes(bundle.read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDOC_AXIS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "edoc_axis", "audit", "verify-bundle", "evidence.zip",
         "--trust", "ca.pem", "--json"], cwd=clean, env=env, capture_output=True, text=True,
        timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["document_id"] == x.document_id
    assert len(report["packages"]) >= 5  # document, two 01, the 03 and the 13 sent
    # a receipt changed inside the bundle
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.startswith("packages/") and b"<StatusCode>03<" in data:
                data = data.replace(b"<StatusCode>03<", b"<StatusCode>06<")
            dst.writestr(name, data)
    code, _, err = run("audit", "verify-bundle", str(tampered), "--trust", str(clean / "ca.pem"))
    assert code == EXIT_INVALID and "AUDIT_BUNDLE_PACKAGE" in err
    # an entry rewritten inside the bundle
    rewritten = tmp_path / "rewritten.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(rewritten, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "entries.jsonl":
                assert b'\\"code\\":\\"03\\"' in data
                data = data.replace(b'\\"code\\":\\"03\\"', b'\\"code\\":\\"06\\"')
            dst.writestr(name, data)
    code, _, err = run("audit", "verify-bundle", str(rewritten), "--trust",
                       str(clean / "ca.pem"))
    assert code == EXIT_INVALID and "AUDIT_EDITED" in err
    # a CA that did not issue the node's certificate
    other = tmp_path / "other-ca.pem"
    other.write_bytes(x.axis.pki.agencies[G22].cert_path.read_bytes())
    code, _, _ = run("audit", "verify-bundle", str(bundle), "--trust", str(other))
    assert code == EXIT_INVALID
    code, _, err = run("audit", "verify-bundle", str(tmp_path / "missing.zip"), "--trust",
                       str(clean / "ca.pem"))
    assert code != 0 and "cannot read" in err and "Traceback" not in err


def test_seal_and_archive_then_verify(audited_exchange: AuditedExchange, tmp_path: Path) -> None:
    """`audit archive` moves sealed entries out; `audit verify` still holds across it."""
    import datetime as dt

    x = audited_exchange
    config = str(x.config(G22))
    code, out, _ = run("audit", "seal", "-c", config)
    assert code == 0 and "already sealed" in out  # the fixture sealed the head
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    code, out, _ = run("audit", "archive", "-c", config, "--before", tomorrow,
                       "--out", str(tmp_path / "archive"))
    assert code == 0 and "archived entries 1.." in out
    assert len(list((tmp_path / "archive").glob("*.zip"))) == 1
    code, out, _ = run("audit", "seal", "-c", config)
    assert code == 0 and "sealed seq" in out
    code, out, _ = run("audit", "verify", "-c", config, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["archives"][0]["checked"] is True
    assert report["first_seq"] > 1
    code, out, _ = run("audit", "archive", "-c", config, "--before", "2001-01-01",
                       "--out", str(tmp_path / "archive"))
    assert code == 0 and "nothing to archive" in out


# --- no broker: a node config written from the session PKI ------------------------------------


def node_config(pki: Pki, base: Path, **audit: int) -> Path:
    """A G22 node config whose data folder is ``base / "data"`` (not created here)."""
    from edoc_axis.config.render import write_config
    from edoc_axis.config.settings import (
        AuditSettings,
        BrokerSettings,
        KeySettings,
        Settings,
        TrustSettings,
    )

    settings = Settings(
        organ_id=G22, data_dir=base / "data", directory_path=base / "directory.toml",
        broker=BrokerSettings(url="amqp://guest:guest@127.0.0.1:5672/%2F"),
        keys=KeySettings(key=pki.agencies[G22].key_path, cert=pki.agencies[G22].cert_path),
        trust=TrustSettings(anchors=(pki.ca_path,), crls=(pki.crl_path,)),
        audit=AuditSettings(**audit),
    )
    path = base / "node.toml"
    write_config(path, settings, force=True)
    return path


def test_auditor_commands_refuse_a_missing_store_and_create_nothing(
    pki: Pki, tmp_path: Path
) -> None:
    """verify, trail, export, bundle, seal and archive on a node with no store: STORE_NOT_FOUND,
    exit 78 (configuration), and no store file or data folder appears."""
    config = str(node_config(pki, tmp_path))
    commands = (
        ("verify",), ("verify", "--json"), ("trail", "doc-1"),
        ("export", "--from", "2026-01-01", "--to", "2026-01-02"),
        ("bundle", "doc-1", "-o", str(tmp_path / "evidence.zip")), ("seal",),
        ("archive", "--before", "2026-01-01", "--out", str(tmp_path / "archive")),
    )
    for command in commands:
        code, out, err = run("audit", *command, "-c", config)
        assert code == EXIT_CONFIG, (command, out, err)
        assert "STORE_NOT_FOUND" in err and str(tmp_path / "data") in err, (command, err)
        assert "OK" not in out
        assert not (tmp_path / "data").exists(), command
    assert not (tmp_path / "evidence.zip").exists()


def test_verify_reports_an_old_unsealed_tail_and_seal_clears_it(pki: Pki, tmp_path: Path) -> None:
    """Entries left unsealed longer than the interval are a finding (exit 65) naming how many,
    since when and `edoc-axis audit seal`; after the seal, verify holds and notes nothing."""
    from edoc_axis.audit.log import AuditLog, key_sealer
    from edoc_axis.store import Store

    config = node_config(pki, tmp_path, every_entries=1000, every_seconds=300)
    g22 = pki.agencies[G22]
    store = Store(tmp_path / "data" / "node.sqlite3")
    log = AuditLog(store, G22, sealer=key_sealer(g22.key, g22.cert, G22))
    with store.transaction() as txn:
        log.append(txn, "submitted", package_id="p1", at="2026-01-05T08:00:00.000000Z")
    log.seal_now()
    unsealed = AuditLog(store, G22)  # a writer that died before sealing (no key: never seals)
    with store.transaction() as txn:
        for n, at in enumerate(("2026-01-05T08:00:05.000000Z", "2026-01-05T08:00:06.000000Z")):
            unsealed.append(txn, "published", package_id="p1", counterpart=f"H4{n}", at=at)
    store.close()
    code, out, err = run("audit", "verify", "-c", str(config))
    assert code == EXIT_INVALID, out + err
    assert "FAILED: seq 3: AUDIT_UNSEALED_TAIL" in err
    assert "2 entries" in err and "2026-01-05T08:00:05" in err and "edoc-axis audit seal" in err
    code, out, _ = run("audit", "verify", "-c", str(config), "--json")
    report = json.loads(out)
    assert code == EXIT_INVALID and report["unsealed"] == 2
    assert report["problems"][0]["code"] == "AUDIT_UNSEALED_TAIL"
    code, out, _ = run("audit", "seal", "-c", str(config))
    assert code == 0 and "sealed seq 4" in out
    code, out, err = run("audit", "verify", "-c", str(config))
    assert code == 0, out + err
    assert "OK: the audit chain holds" in out and "not sealed" not in out
    code, out, _ = run("audit", "verify", "-c", str(config), "--json")
    assert code == 0 and json.loads(out)["unsealed"] == 0


# --- issue 13: what an auditor reads, scripts, progress ----------------------------------------


def test_verify_bundle_with_the_wrong_ca_is_one_trust_finding(
    audited_exchange: AuditedExchange, tmp_path: Path
) -> None:
    """With a --trust CA that did not issue the node's certificate, verify-bundle says once, at
    the top, that the checkpoints are signed by no one trusted, and blames no package."""
    x = audited_exchange
    bundle = tmp_path / "evidence.zip"
    code, _, _ = run("audit", "bundle", x.document_id, "-c", str(x.config(G22)), "-o", str(bundle))
    assert code == 0
    from edoc_axis.ops import pki as dev_pki

    wrong = tmp_path / "wrong-ca.pem"  # a CA, but not the one that issued the agencies' certs
    wrong.write_bytes(dev_pki.cert_to_pem(dev_pki.init_ca("Another Root CA", key_type="p256")[1]))
    code, out, err = run("audit", "verify-bundle", str(bundle), "--trust", str(wrong))
    assert code == EXIT_INVALID
    failed = [line for line in err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "AUDIT_BUNDLE_UNTRUSTED" in failed[0], err
    assert f"signed by {G22}" in failed[0] and "cannot be attributed" in failed[0]
    assert "nothing in it was found altered" in failed[0]
    assert "signatures of 5 package(s) do not chain to that CA either" in failed[0]
    assert "also" not in err and "AUDIT_BUNDLE_PACKAGE" not in err
    assert "does not belong here" not in err and "candidates exhausted" not in err
    assert "problem(s)" in out.splitlines()[-1]
    code, out, _ = run("audit", "verify-bundle", str(bundle), "--trust", str(wrong), "--json")
    report = json.loads(out)
    assert code == EXIT_INVALID and report["untrusted"] is True
    assert [p["code"] for p in report["problems"]] == ["AUDIT_BUNDLE_UNTRUSTED"]


def test_verify_bundle_of_a_file_that_is_not_a_bundle(pki: Pki, tmp_path: Path) -> None:
    """A file that is not a bundle gets AUDIT_BUNDLE_MALFORMED saying what was expected, and
    no `None` anywhere."""
    for name, data in (("notes.txt", b"just some notes\n"), ("other.zip", _zip({"a.txt": b"x"}))):
        target = tmp_path / name
        target.write_bytes(data)
        code, out, err = run("audit", "verify-bundle", str(target), "--trust", str(pki.ca_path))
        assert code == EXIT_INVALID, out + err
        assert "AUDIT_BUNDLE_MALFORMED" in err and "expected an evidence bundle" in err
        assert "None" not in out + err and "Traceback" not in err


def _zip(members: dict[str, bytes]) -> bytes:
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_trail_and_bundle_name_statuses_and_signers(
    audited_exchange: AuditedExchange, tmp_path: Path
) -> None:
    """trail and verify-bundle show what each status means and the signer's OrganId and name,
    and end with a summary line of counts."""
    from edoc_axis.directory import Directory

    x = audited_exchange
    h41 = Directory.load(x.axis.directory_path).get(H41)
    fingerprint = x.axis.agencies[H41].fingerprint
    code, out, _ = run("audit", "trail", x.document_id, "-c", str(x.config(G22)))
    assert code == 0, out
    received = [line for line in out.splitlines() if "status_received" in line and H41 in line]
    assert any("status 01 (arrived: the recipient's system has the document)" in line
               for line in received), out
    assert any("status 03 (accepted / registered by the clerk)" in line for line in received)
    assert all(f"signed by {H41} {h41.name} (certificate {fingerprint[:16]}...)" in line
               for line in received), out
    summary = out.splitlines()[-1]
    assert summary.startswith(f"{len(out.splitlines()) - 2} entries: ")
    assert "status_received (01 x2, 03 x1)" in summary and summary.endswith("; 0 problem(s)")
    code, out, _ = run("audit", "trail", x.document_id, "-c", str(x.config(G22)), "--json")
    events = json.loads(out)["events"]
    signed = [e for e in events if e["event"] == "status_received" and e["counterpart"] == H41]
    assert signed[0]["signed_by"] == {"organ_id": H41, "name": h41.name}
    assert signed[0]["status_meaning"].startswith("arrived")
    bundle = tmp_path / "evidence.zip"
    run("audit", "bundle", x.document_id, "-c", str(x.config(G22)), "-o", str(bundle))
    code, out, _ = run("audit", "verify-bundle", str(bundle), "--trust", str(x.axis.pki.ca_path))
    assert code == 0, out
    assert any("status 01 (arrived" in line and f"signed by {H41}" in line
               for line in out.splitlines()), out
    assert "OK: the bundle holds" in out and out.splitlines()[-1].endswith("; 0 problem(s)")


def test_bundle_seal_archive_json_and_reversed_ranges(
    audited_exchange: AuditedExchange, tmp_path: Path
) -> None:
    """bundle, seal and archive answer --json; a reversed --from/--to is a usage error (2)."""
    import datetime as dt

    x = audited_exchange
    config = str(x.config(G22))
    bundle = tmp_path / "evidence.zip"
    code, out, err = run("audit", "bundle", x.document_id, "-c", config, "-o", str(bundle),
                         "--json")
    assert code == 0 and err == ""
    made = json.loads(out)
    assert made["document_id"] == x.document_id and made["bytes"] == bundle.stat().st_size
    assert len(made["packages"]) >= 5 and made["segments"]
    code, out, _ = run("audit", "seal", "-c", config, "--json")
    assert code == 0 and json.loads(out) == {"sealed": False}
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    code, out, err = run("audit", "archive", "-c", config, "--before", tomorrow,
                         "--out", str(tmp_path / "archive"), "--json")
    assert code == 0 and err == ""
    archived = json.loads(out)
    assert archived["archived"] is True and archived["first_seq"] == 1
    assert Path(archived["path"]).is_file()
    code, out, _ = run("audit", "seal", "-c", config, "--json")
    sealed = json.loads(out)
    assert code == 0 and sealed["sealed"] is True and sealed["seq"] > archived["last_seq"]
    code, out, _ = run("audit", "verify", "-c", config, "--json")
    assert code == 0 and json.loads(out)["unsealed"] == 0  # the seal's own checkpoint is sealed
    code, out, _ = run("audit", "archive", "-c", config, "--before", "2001-01-01",
                       "--out", str(tmp_path / "archive"), "--json")
    assert code == 0 and json.loads(out) == {"archived": False}
    for command in (("verify", "--from", "9", "--to", "3"),
                    ("export", "--from", "2026-02-01", "--to", "2026-01-01")):
        code, out, err = run("audit", *command, "-c", config)
        assert code == 2, (command, out, err)
        assert "is after --to" in err and "oldest first" in err and out == ""


def _on_terminal(args: list[str], *, stderr_tty: bool) -> tuple[int, str, str]:
    """Run ``edoc-axis ARGS`` in a subprocess with stdout piped and stderr on a pseudo-terminal
    (``stderr_tty``) or piped; (exit code, stdout, what stderr showed)."""
    import pty
    import select

    env = {k: v for k, v in os.environ.items() if not k.startswith("EDOC_AXIS_")}
    command = [sys.executable, "-m", "edoc_axis", *args]
    if not stderr_tty:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        return proc.returncode, proc.stdout, proc.stderr
    master, slave = pty.openpty()
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=slave,
                          stdin=subprocess.DEVNULL) as proc:
        os.close(slave)
        shown = b""
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        out = proc.stdout.read().decode() if proc.stdout else ""
        code = proc.wait(timeout=120)
    os.close(master)
    return code, out, shown.decode(errors="replace")


def test_progress_is_drawn_on_a_terminal_only(pki: Pki, tmp_path: Path) -> None:
    """verify, export, bundle and archive draw a progress bar on stderr when it is a terminal
    and the work is more than trivial; piped stderr and --json get none."""
    import datetime as dt

    from edoc_axis.audit.log import AuditLog, key_sealer
    from edoc_axis.store import Store

    config = str(node_config(pki, tmp_path, every_entries=100_000, every_seconds=86_400))
    g22 = pki.agencies[G22]
    store = Store(tmp_path / "data" / "node.sqlite3")
    log = AuditLog(store, G22, sealer=key_sealer(g22.key, g22.cert, G22))
    with store.transaction() as txn:
        for n in range(1200):
            log.append(txn, "published", package_id=f"p{n}", document_id="doc-1",
                       counterpart=H41)
    log.seal_now()
    store.close()
    today = dt.datetime.now(dt.UTC).date().isoformat()
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    runs = (
        ("verifying", ["audit", "verify", "-c", config]),
        ("exporting", ["audit", "export", "-c", config, "--from", today, "--to", today,
                       "-o", str(tmp_path / "log.jsonl")]),
        ("bundling", ["audit", "bundle", "doc-1", "-c", config, "-o", str(tmp_path / "e.zip")]),
    )
    for label, args in runs:
        code, out, shown = _on_terminal(args, stderr_tty=True)
        assert code == 0, (args, out, shown)
        assert label in shown and "100%" in shown, (label, shown)
        assert label not in out
        code, out, err = _on_terminal(args, stderr_tty=False)
        assert code == 0 and label not in err and label not in out, (label, err)
    code, out, shown = _on_terminal(["audit", "verify", "-c", config, "--json"], stderr_tty=True)
    assert code == 0 and "verifying" not in shown and json.loads(out)["entries"] > 1200
    code, out, shown = _on_terminal(["audit", "bundle", "doc-1", "-c", config, "--json",
                                     "-o", str(tmp_path / "e.zip")], stderr_tty=True)
    assert code == 0 and "bundling" not in shown and json.loads(out)["document_id"] == "doc-1"
    code, out, shown = _on_terminal(["audit", "archive", "-c", config, "--before", tomorrow,
                                     "--out", str(tmp_path / "archive")], stderr_tty=True)
    assert code == 0 and "archiving" in shown and "archived entries 1.." in out, shown
