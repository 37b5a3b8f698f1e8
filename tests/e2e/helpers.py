"""Running `harness certify` as a user would: a subprocess, its exit code, its results.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.peers.base import PeerProcess, python_peer_env
from harness.profile import example_profile_path

HARNESS = [sys.executable, "-m", "harness.cli"]


def certify(url: str, out: Path, *args: str, profile: Path | None = None, timeout: float = 240) -> tuple[int, dict | None, str]:
    cmd = [*HARNESS, "certify", url, "--profile", str(profile or example_profile_path()), "--out", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    results = out / "results.json"
    data = json.loads(results.read_text()) if results.exists() else None
    return proc.returncode, data, proc.stdout + proc.stderr


def verdicts(data: dict) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in data["cases"]}


def simulator_process(protocol: str, *faults: str) -> PeerProcess:
    """`harness simulate` of the example device's `protocol` face, as its own process (so that its
    memory can be measured), with planted faults."""
    argv = [*HARNESS, "simulate", str(example_profile_path()), "--protocol", protocol]
    for fault in faults:
        argv += ["--fault", fault]
    return PeerProcess("simulator", argv, scheme="opc.tcp" if protocol == "opcua" else "modbus+tcp",
                       env=python_peer_env(), startup_timeout=60)


def rss_kib(pid: int) -> int:
    """The resident memory of process `pid` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def certify_all_pass_within_memory(protocol: str, out: Path, suite: str, growth_limit_kib: int) -> dict:
    """Certify a fresh simulator of `protocol` with `suite`; assert every case PASSes and the
    simulator's resident memory grew less than `growth_limit_kib` over the run; the results."""
    with simulator_process(protocol) as sim:
        before = rss_kib(sim.pid)
        code, data, output = certify(sim.url, out, "--suite", suite, "--no-archive")
        after = rss_kib(sim.pid)
    assert data is not None, output
    bad = {c["id"]: c["message"] for c in data["cases"] if c["verdict"] != "PASS"}
    assert bad == {}, output
    assert code == 0
    print(f"{protocol} simulator RSS before {before} KiB, after {suite} {after} KiB")
    # the floods, storms and fuzzing leave no growth behind beyond the allocator's slack
    assert after - before < growth_limit_kib, f"simulator RSS grew from {before} to {after} KiB"
    return data
