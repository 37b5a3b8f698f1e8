"""Modbus TCP throughput: the bundled simulator against pymodbus and libmodbus, side by side.

    .venv/bin/python benchmarks/modbus_throughput.py [--duration 3] [--connections 4] [--depth 8]

Each server runs in its own process, one at a time, loaded with the same profile; the same client
drives all three in the same run: `benchmarks/loadgen.c`, a pipelined C load generator (compiled
once into ~/.cache/protocol-harness/bin/) that keeps DEPTH FC3 requests (quantity 10) outstanding
on each of CONNECTIONS connections and measures every request's latency.  Each configuration
runs REPEAT times without warm-up; the table shows the median of each figure.  A second table
repeats the measurement at depth 1 (one request at a time per connection, which is how most
Modbus clients behave); `--no-depth1` skips it.  Servers run as shipped: pymodbus on the default
asyncio loop, the simulator on whatever loop it picks (uvloop when installed).

A server that cannot take pipelined requests is measured at depth 1 (what a client sees from it),
and the table says so: that is its real behaviour, not a handicap we add.  pymodbus 3.16 is such a
server (it drops every request that arrives in the same read as the one it is answering).

Ratios are simulator / pymodbus and simulator / libmodbus requests per second: they compare
servers measured side by side on this machine, unlike absolute numbers.  The load generator
shares the machine's cores with the server under test; the note says how many there are.

Finally, the wall time of the whole conformance suite against the simulator
(`harness certify ...`), when that command is available.  Defaults finish in under 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.peers.base import PeerError, PeerProcess, build_c_program, python_argv, python_peer_env  # noqa: E402
from harness.profile import example_profile_path, load_profile  # noqa: E402

LOADGEN_SOURCE = Path(__file__).resolve().with_name("loadgen.c")


# ---------------------------------------------------------------------- servers


def start_simulator(profile_path: Path, unit: int) -> PeerProcess:
    argv = python_argv("simulators.modbus", str(profile_path), "--port", "0")
    return PeerProcess("simulator", argv, version="bundled", unit=unit, env=python_peer_env(), cwd=ROOT).start()


def start_pymodbus(profile_path: Path, unit: int) -> PeerProcess:
    from harness.peers.pymodbus_server import start_pymodbus_server

    return start_pymodbus_server(profile_path)


def start_libmodbus(profile_path: Path, unit: int) -> PeerProcess:
    from harness.peers.libmodbus_server import start_libmodbus_server

    return start_libmodbus_server(profile_path)


SERVERS = (("simulator", start_simulator), ("pymodbus", start_pymodbus), ("libmodbus", start_libmodbus))


def _short(exc: BaseException) -> str:
    """First line of a PeerError plus the last line of the peer's stderr, if any."""
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    head = lines[0] if lines else type(exc).__name__
    detail = ""
    if "stderr tail:" in text:
        tail = text.split("stderr tail:", 1)[1].split("stdout tail:", 1)[0]
        tail_lines = [line.strip() for line in tail.splitlines() if line.strip() and line.strip() != "(empty)"]
        detail = tail_lines[-1] if tail_lines else ""
    return f"{head}: {detail}" if detail else head


# ---------------------------------------------------------------------- load generator


def run_loadgen(binary: Path, peer: PeerProcess, connections: int, depth: int, duration: float,
                unit: int, address: int, quantity: int) -> dict:
    argv = [str(binary), peer.host, str(peer.port), str(connections), str(depth), str(duration),
            str(unit), str(address), str(quantity)]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    except subprocess.TimeoutExpired:
        return {"error": f"load generator did not finish within {duration + 30:g} s"}
    try:
        data = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"load generator failed (exit {result.returncode}): {result.stderr.strip()[-300:]}"}
    if result.returncode != 0 and "error" not in data:
        data["error"] = f"load generator exit {result.returncode}"
    return data


def _series(binary: Path, peer: PeerProcess, args, depth: int, unit: int, address: int, notes: list[str]) -> list[dict]:
    runs: list[dict] = []
    for _ in range(args.repeat):
        if not peer.running:
            notes.append(f"server exited (code {peer.proc.returncode}) during the benchmark")
            break
        r = run_loadgen(binary, peer, args.connections, depth, args.duration, unit, address, args.quantity)
        if "error" in r:
            notes.append(r["error"])
            break
        if r.get("fallback_connections") and depth > 1:
            return [r]  # the caller decides: this server drops pipelined requests
        runs.append(r)
    return runs


def _medians(runs: list[dict], depth: int, notes: list[str]) -> dict:
    result = {"depth": depth, "runs": len(runs), "notes": notes}
    for key in ("rps", "p50_us", "p99_us"):
        result[key] = statistics.median(r[key] for r in runs)
    for key in ("exceptions", "bad", "lost", "stalls", "disconnects"):
        total = sum(r.get(key, 0) for r in runs)
        if total:
            notes.append(f"{key}: {total}")
    return result


def measure(name: str, starter, binary: Path, args, profile_path: Path, unit: int, address: int) -> dict:
    """Start the server; run the load `repeat` times at --depth and at depth 1; stop it.

    Returns {"name", "version", "pipelined": medians, "depth1": medians} or {"unavailable": why}.
    A server that drops pipelined requests gets its depth-1 figures in the pipelined table too.
    """
    row: dict = {"name": name}
    try:
        peer = starter(profile_path, unit)
    except (PeerError, OSError) as exc:
        row["unavailable"] = _short(exc)
        return row
    except Exception as exc:  # noqa: BLE001 - a broken peer must not stop the benchmark
        row["unavailable"] = f"{type(exc).__name__}: {exc}"
        return row
    with peer:
        row["version"] = peer.version
        notes: list[str] = []
        runs = _series(binary, peer, args, args.depth, unit, address, notes)
        drops = bool(runs and runs[0].get("fallback_connections") and args.depth > 1)
        if drops:
            first = runs[0]
            runs = []
        if not drops and runs:
            row["pipelined"] = _medians(runs, args.depth, notes)
        if args.depth > 1 and not args.no_depth1 or drops:
            notes1: list[str] = []
            runs1 = _series(binary, peer, args, 1, unit, address, notes1)
            if runs1:
                row["depth1"] = _medians(runs1, 1, notes1)
                if drops:
                    why = (f"drops pipelined requests ({first['lost']} of the first requests at depth "
                           f"{args.depth} never answered): measured at depth 1")
                    row["pipelined"] = dict(row["depth1"], notes=[why, *notes1])
            elif notes1:
                notes.extend(notes1)
        if "pipelined" not in row and "depth1" not in row:
            row["unavailable"] = "; ".join(notes) or "no measurement"
    return row


# ---------------------------------------------------------------------- suite wall time


def suite_wall_time(profile_path: Path, unit: int, timeout: float) -> str:
    harness_cmd = Path(sys.executable).parent / "harness"
    if not harness_cmd.exists():
        found = shutil.which("harness")
        if not found:
            return "suite: not available yet (no `harness` command)"
        harness_cmd = Path(found)
    try:
        probe = subprocess.run([str(harness_cmd), "certify", "--help"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "suite: not available yet (`harness certify --help` hangs)"
    if probe.returncode != 0:
        err = (probe.stderr or probe.stdout).strip().splitlines()
        return f"suite: not available yet (`harness certify --help`: {err[-1] if err else probe.returncode})"
    try:
        peer = start_simulator(profile_path, unit)
    except PeerError as exc:
        return f"suite: not available (simulator: {_short(exc)})"
    with peer, tempfile.TemporaryDirectory(prefix="bench-certify-") as out:
        cmd = [str(harness_cmd), "certify", peer.url, "--profile", str(profile_path), "--out", out]
        t0 = time.monotonic()
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return f"suite: did not finish within {timeout:g} s against the simulator"
        wall = time.monotonic() - t0
        cases = ""
        results = Path(out) / "results.json"
        if results.exists():
            try:
                data = json.loads(results.read_text())
                cases = f", {len(data.get('cases', []))} cases"
            except (OSError, ValueError):
                pass
        meaning = {0: "compliant", 1: "not compliant", 2: "usage/harness error", 3: "target unreachable"}
        verdict = meaning.get(result.returncode, "unexpected exit")
        return f"suite: harness certify against the simulator took {wall:.1f} s wall (exit {result.returncode} = {verdict}{cases})"


# ---------------------------------------------------------------------- output


def hardware_note(args) -> str:
    cpus = os.cpu_count() or 0
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "load average unknown"
    return (
        f"hardware: nproc={cpus}{' (' + model + ')' if model else ''}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; {load} at start (other work on the machine skews results)\n"
        f"note: the load generator runs on the same {cpus} core(s) as the server under test "
        "(one server at a time); compare ratios, not absolute numbers"
    )


def _table(rows: list[dict], key: str, title: str) -> list[str]:
    head = f"{'server':<10} {'version':<9} {'depth':>5} {'req/s':>10} {'p50 µs':>9} {'p99 µs':>9}  notes"
    out = [title, head, "-" * len(head)]
    for r in rows:
        m = r.get(key)
        if "unavailable" in r or m is None:
            why = r.get("unavailable", "not measured")
            out.append(f"{r['name']:<10} {'-':<9} {'-':>5} {'-':>10} {'-':>9} {'-':>9}  not available ({why})")
            continue
        out.append(
            f"{r['name']:<10} {r.get('version', '?')[:9]:<9} {m['depth']:>5} {m['rps']:>10,.0f} "
            f"{m['p50_us']:>9,.0f} {m['p99_us']:>9,.0f}  {'; '.join(m['notes'])}"
        )
    out.append("")
    sim = rows_by(rows, key).get("simulator")
    for other in ("pymodbus", "libmodbus"):
        label = f"simulator / {other}"
        theirs = rows_by(rows, key).get(other)
        if sim and theirs and theirs["rps"] > 0:
            depths = "" if sim["depth"] == theirs["depth"] else f"  (depth {sim['depth']} vs {theirs['depth']})"
            out.append(f"  {label:<22} {sim['rps'] / theirs['rps']:6.2f}x req/s{depths}")
        else:
            out.append(f"  {label:<22}    n/a ({'simulator' if not sim else other} not measured)")
    return out


def rows_by(rows: list[dict], key: str) -> dict:
    return {r["name"]: r[key] for r in rows if r.get(key)}


def render(rows: list[dict], args) -> str:
    title = (f"At depth {args.depth} (pipelined: {args.depth} requests outstanding per connection)"
             if args.depth > 1 else "At depth 1 (one request at a time per connection)")
    out = _table(rows, "pipelined", title)
    if args.depth > 1 and not args.no_depth1:
        out.append("")
        out += _table(rows, "depth1", "At depth 1 (one request at a time per connection, like most Modbus clients)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (default 3)")
    parser.add_argument("--connections", type=int, default=4, help="client connections (default 4)")
    parser.add_argument("--depth", type=int, default=8, help="requests outstanding per connection (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per server; the median is shown (default 3)")
    parser.add_argument("--quantity", type=int, default=10, help="registers per FC3 read (default 10)")
    parser.add_argument("--profile", type=Path, default=example_profile_path(), help="device profile")
    parser.add_argument("--servers", default="simulator,pymodbus,libmodbus", help="comma-separated subset")
    parser.add_argument("--suite-timeout", type=float, default=60.0, help="seconds allowed for the suite run")
    parser.add_argument("--no-suite", action="store_true", help="skip the conformance-suite wall time")
    parser.add_argument("--no-depth1", action="store_true", help="skip the depth-1 comparison")
    args = parser.parse_args(argv)

    t_start = time.monotonic()
    profile = load_profile(args.profile)
    unit = profile.modbus.unit_id if profile.modbus else 1
    holding = [t for t in (profile.modbus.tables if profile.modbus else {}) if t.value == "holding_registers"]
    address = profile.modbus.tables[holding[0]].start if holding else 0
    try:
        binary = build_c_program(LOADGEN_SOURCE, "loadgen")
    except PeerError as exc:
        print(f"cannot build the load generator: {exc}", file=sys.stderr)
        return 2

    print(f"Modbus TCP throughput: FC3 read of {args.quantity} holding registers at {address}, unit {unit}; "
          f"{args.connections} connections x depth {args.depth}, {args.duration:g} s per run, "
          f"median of {args.repeat} runs, no warm-up")
    print(hardware_note(args))
    print()
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    rows = [measure(name, starter, binary, args, args.profile, unit, address) for name, starter in SERVERS if name in wanted]
    print(render(rows, args))
    print()
    if args.no_suite:
        print("suite: skipped (--no-suite)")
    else:
        print(suite_wall_time(args.profile, unit, args.suite_timeout))
    print(f"benchmark wall time: {time.monotonic() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
