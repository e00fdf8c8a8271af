#!/usr/bin/env python3
"""Large-document benchmark (issue 12): memory and time of big packages at the edges and in a hop.

  attach     `edoc-axis package new --attach` of a file of random (incompressible) bytes,
             default 200 MB: wall time and peak RSS of the command (/usr/bin/time), against
             the aim of at most 2x the file.
  hop        for packages of 50 MB and 200 MB (a random attachment; built with `package new`):
             the work one hop does on them, each size in a fresh process so its peak RSS is
             its own: hardened parse + hash (read_package), schema + rules (schema.accept),
             sign (trust.signature.sign_tree, on the parsed tree), verify (signature.verify of
             the signed bytes: parse + signxml). Per phase: wall time and the process's peak
             RSS after it; signxml's share (sign + verify) is printed, as it holds whole trees
             (a canonical copy and two deep copies of the tree per call) -- measured, not
             worked around: canonicalization is signxml's/lxml's, never hand-rolled.
  e2e        the same packages between two nodes (two `edoc-axis run` processes) through
             the real broker, in chunks: wall time submit to 01, MB/s, each node's peak RSS.
  e2e-kill   the same, SIGKILLing the recipient mid-transfer and starting it again: the
             package must arrive once, byte-identical, with one 01, nothing left staged.

    .venv/bin/python scripts/bench_large.py [attach] [hop] [e2e] [--attach-mb 200]
        [--sizes 50,200]

Sizes are decimal MB (10**6 bytes). The load average is printed: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MB = 10**6
ROOT = Path(__file__).resolve().parent.parent
NEW_ARGS = ["package", "new", "--from", "000.00.00.G22", "--from-name", "Văn phòng Chính phủ",
            "--to", "000.00.00.H41", "--subject", "Bench", "--code-number", "1",
            "--code-notation", "VPCP-TTĐT", "--place", "Hà Nội"]


def _random_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            step = min(left, 8 * 1024 * 1024)
            out.write(os.urandom(step))
            left -= step


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` under /usr/bin/time: (wall seconds, peak RSS in MB) of the command itself."""
    run = subprocess.run(["/usr/bin/time", "-f", "bench-time %e %M", *cmd], capture_output=True,
                         text=True, check=False)
    if run.returncode:
        sys.exit(f"failed ({run.returncode}): {' '.join(cmd)}\n{run.stderr[-2000:]}")
    line = [x for x in run.stderr.splitlines() if x.startswith("bench-time ")][-1]
    _, wall, kb = line.split()
    return float(wall), int(kb) / 1024


def bench_attach(size_mb: int, work: Path) -> None:
    """Peak RSS and wall time of `package new --attach` of a ``size_mb`` MB random file."""
    source = work / "scan.bin"
    _random_file(source, size_mb * MB)
    out = work / "attach.edxml"
    wall, peak = _timed([sys.executable, "-m", "edoc_axis", *NEW_ARGS,
                         "--attach", str(source), "-o", str(out)])
    size = out.stat().st_size
    source.unlink()
    out.unlink()
    verdict = "ok" if peak <= 2 * size_mb else "OVER"
    print(f"attach     file {size_mb} MB -> package {size / MB:.0f} MB: {wall:.1f} s, "
          f"peak RSS {peak:.0f} MB = {peak / size_mb:.2f}x the file (aim <= 2x: {verdict})")


def package_of(size_mb: int, work: Path) -> Path:
    """An unsigned package of about ``size_mb`` MB (one random attachment), built by the CLI."""
    source = work / "annex.pdf"
    _random_file(source, size_mb * MB * 3 // 4 - 8192)
    out = work / f"package-{size_mb}.edxml"
    subprocess.run([sys.executable, "-m", "edoc_axis", *NEW_ARGS, "--attach", str(source),
                    "-o", str(out)], check=True)
    source.unlink()
    return out


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hop_child(path: Path) -> None:
    """In a fresh process: the phases of one hop on the package at ``path``; prints JSON."""
    from edoc_axis.edxml import schema
    from edoc_axis.edxml.limits import MAX_ALLOWED_BYTES, XmlLimits
    from edoc_axis.edxml.parsed import read_package
    from edoc_axis.edxml.profile import STRICT
    from edoc_axis.ops import pki
    from edoc_axis.trust import signature
    from edoc_axis.trust.chain import TrustStore

    limits = XmlLimits(max_bytes=MAX_ALLOWED_BYTES)
    ca_key, ca_cert = pki.init_ca()
    crl = pki.make_crl(ca_key, ca_cert)
    key, cert = pki.issue_agency_certificate(ca_key, ca_cert, "000.00.00.G22", "VPCP")
    trust = TrustStore(anchors=[ca_cert], crls=[crl])
    phases: list[tuple[str, float, float]] = [("start (imports, keys)", 0.0, _peak_mb())]

    def phase(name: str, started: float) -> None:
        phases.append((name, time.perf_counter() - started, _peak_mb()))

    t = time.perf_counter()
    data = path.read_bytes()
    phase("read the bytes", t)
    t = time.perf_counter()
    parsed = read_package(data, limits)
    phase("parse + SHA-256 (read_package)", t)
    t = time.perf_counter()
    schema.accept(parsed, limits, STRICT)
    phase("schema + rules (accept)", t)
    t = time.perf_counter()
    signed, _tree = signature.sign_tree(parsed.root, key, cert)
    phase("sign (signxml, parsed tree)", t)
    del _tree, parsed, data
    t = time.perf_counter()
    signature.verify(signed, trust, limits=limits)
    phase("verify (parse + signxml)", t)
    print(json.dumps({"size": path.stat().st_size, "signed": len(signed), "phases": phases}))


def bench_hop(sizes: list[int], work: Path) -> None:
    """Each size in its own process; a table of phases."""
    for size_mb in sizes:
        path = package_of(size_mb, work)
        run = subprocess.run([sys.executable, __file__, "--hop-child", str(path)],
                             capture_output=True, text=True, check=False)
        path.unlink()
        if run.returncode:
            print(f"hop        {size_mb} MB: failed\n{run.stderr[-3000:]}")
            continue
        report = json.loads(run.stdout.strip().splitlines()[-1])
        size = report["size"] / MB
        print(f"hop        package {size:.0f} MB (signed {report['signed'] / MB:.0f} MB)")
        total = sum(p[1] for p in report["phases"])
        sig = sum(p[1] for p in report["phases"] if "signxml" in p[0])
        previous = report["phases"][0][2]
        for name, seconds, peak in report["phases"]:
            print(f"  {name:32} {seconds:7.2f} s  peak RSS {peak:7.0f} MB "
                  f"(+{peak - previous:5.0f})  = {peak / size:5.2f}x the package")
            previous = peak
        print(f"  {'total':32} {total:7.2f} s  {size / total:.1f} MB/s; signxml (sign + verify) "
              f"{sig:.2f} s = {100 * sig / total:.0f}% of the time")


def _vm_hwm_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _recorded_chunks(store_path: Path) -> int:
    """Chunks a node's store has recorded for transfers under way (0 before it exists)."""
    from edoc_axis.store import Store

    if not store_path.exists():
        return 0
    store = Store(store_path, create=False, read_only=True)
    try:
        with store.snapshot() as view:
            return sum(len(view.transfers.chunks(user, transfer))
                       for user, transfer in view.transfers.idle_since(time.time() + 60))
    finally:
        store.close()


def _kill_recipient(bench: Any, config: Path, size: int) -> int:
    """SIGKILL the recipient node once it recorded a third of the chunks, start it again;
    returns how many it had recorded."""
    from edoc_axis.config.load import load_settings

    recipient = load_settings(config, env={})
    wanted = -(-size // recipient.broker.chunk_bytes) // 3
    while (recorded := _recorded_chunks(recipient.store_path)) < wanted:
        time.sleep(0.05)
    bench.procs[1].send_signal(signal.SIGKILL)
    bench.procs[1].wait()
    bench.start([config])
    bench.procs[1] = bench.procs.pop()
    return int(recorded)


def _report_once(submitter: Any, package_id: str, document_id: str, config: Path,
                 killed_at: int) -> None:
    """Print whether the package arrived once, byte-identical, with one 01, nothing staged."""
    from edoc_axis.config.load import load_settings
    from edoc_axis.node.node import Node

    [delivery] = submitter.store.deliveries(document_id)
    codes = [h.status_code for h in submitter.store.history(delivery.id)]
    settings = load_settings(config, env={})
    recipient = Node.from_settings(settings)
    try:
        inbox = recipient.store.inbox(kind="edoc")
        same = (len(inbox) == 1 and recipient.store.body(inbox[0].package_id)
                == submitter.store.body(package_id))
    finally:
        recipient.close()
    staged = [p for p in (settings.data_dir / "transfers").rglob("*") if p.is_file()]
    print(f"e2e kill   recipient SIGKILLed with {killed_at} chunks recorded, restarted: "
          f"{len(inbox)} package(s) stored, byte-identical {same}, statuses {codes}, "
          f"{len(staged)} file(s) left staged")


def end_to_end(size_mb: int, work: Path, *, kill: bool = False) -> None:
    """A package of ``size_mb`` MB between two nodes through the real broker, in chunks.

    Two ``edoc-axis run`` processes on a throwaway vhost and PKI (scripts/bench_node.py's
    Bench), package limit 200 MiB; the package is signed here and submitted into the sender's
    store from this process (as bench_node does), then timed until its 01 is recorded at the
    sender. Reported: wall time, MB/s, each node's peak RSS (VmHWM) against the aim of 3x.
    ``kill``: SIGKILL the recipient once it recorded a third of the chunks, start it again, and
    check the package arrives once, byte-identical, with one 01 and nothing left staged (the
    peak RSS is then the restarted recipient's).
    """
    import dataclasses

    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_node

    from edoc_axis.config.load import load_settings
    from edoc_axis.config.render import write_config
    from edoc_axis.edxml.limits import MAX_ALLOWED_BYTES, XmlLimits
    from edoc_axis.node.node import Node
    from edoc_axis.trust.signature import sign

    base = work / f"e2e-{size_mb}{'-kill' if kill else ''}"
    base.mkdir()
    bench = bench_node.Bench(base)
    try:
        configs = []
        for organ_id in (bench_node.SENDER, bench_node.RECIPIENT):
            path = bench.config(organ_id, "run")
            settings = load_settings(path, env={})
            settings = dataclasses.replace(settings, limits=dataclasses.replace(
                settings.limits, max_bytes=MAX_ALLOWED_BYTES))
            write_config(path, settings, force=True)
            configs.append(path)
        source = package_of(size_mb, work)
        key, cert = bench.keys[bench_node.SENDER]
        signed = sign(source.read_bytes(), key, cert,
                      limits=XmlLimits(max_bytes=MAX_ALLOWED_BYTES))
        source.unlink()
        submitter = Node.from_settings(load_settings(configs[0], env={}))
        bench.start(configs)
        bench.wait_ready([bench_node.SENDER, bench_node.RECIPIENT])
        started = time.perf_counter()
        result = submitter.submit(signed)
        submitted = time.perf_counter() - started
        killed_at = _kill_recipient(bench, configs[1], len(signed)) if kill else 0
        deadline = time.monotonic() + 1800
        while {d.state for d in submitter.store.deliveries(result.document_id)} != {"arrived"}:
            if time.monotonic() > deadline:
                raise SystemExit(f"e2e {size_mb} MB: no 01 within 30 minutes")
            time.sleep(0.2)
        wall = time.perf_counter() - started
        peaks = [_vm_hwm_mb(proc.pid) for proc in bench.procs]
        size = len(signed) / MB
        if kill:
            bench.stop()
            _report_once(submitter, result.package_id, result.document_id, configs[1], killed_at)
        submitter.close()
        print(f"e2e        package {size:.0f} MB: {wall:.1f} s submit to 01 ({submitted:.1f} s "
              f"of it the submit), {size / wall:.1f} MB/s")
        for name, peak in zip(("sender", "recipient"), peaks, strict=True):
            verdict = "ok" if peak <= 3 * size else "OVER"
            print(f"  {name} node peak RSS {peak:.0f} MB = {peak / size:.2f}x the package "
                  f"(aim <= 3x: {verdict})")
    finally:
        bench.close()


def main() -> None:
    """Run the chosen benchmarks."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="*", choices=["attach", "hop", "e2e", "e2e-kill", []],
                    help="what to run (default: attach hop)")
    ap.add_argument("--attach-mb", type=int, default=200)
    ap.add_argument("--sizes", default="50,200", help="package sizes in MB, comma-separated")
    ap.add_argument("--hop-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.hop_child:
        hop_child(args.hop_child)
        return
    what = args.what or ["attach", "hop"]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp:
        work = Path(tmp)
        if "attach" in what:
            bench_attach(args.attach_mb, work)
        if "hop" in what:
            bench_hop(sizes, work)
        if "e2e" in what:
            for size_mb in sizes:
                end_to_end(size_mb, work)
        if "e2e-kill" in what:
            for size_mb in sizes:
                end_to_end(size_mb, work, kill=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
