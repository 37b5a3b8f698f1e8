"""The Modbus robustness suite end to end: the bundled simulator passes every case and stays
within bounded memory; planted weaknesses (a framing bug that silences the device, writes that
are acknowledged and lost) FAIL the cases naming them, with the minimised input or the shortest
write sequence as evidence; `harness replay` shows the failure again on a fresh device and not
on a sound one."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.profile import example_profile_path
from simulators.modbus.faults import stream_has_bad_length

from .helpers import HARNESS, certify, certify_all_pass_within_memory, simulator_process, verdicts

ROOT = Path(__file__).resolve().parents[2]
ROBUSTNESS = ["--suite", "modbus_robustness", "--no-archive"]


def _simulator(*faults: str):
    return simulator_process("modbus", *faults)


def _replay(run: Path, case: str, url: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, "replay", str(run), case, "--target", url], capture_output=True, text=True, timeout=120)


def test_simulator_passes_every_robustness_case_within_bounded_memory(tmp_path):
    data = certify_all_pass_within_memory("modbus", tmp_path, "modbus_robustness", growth_limit_kib=32 * 1024)
    for case in data["cases"]:
        if case["id"] in ("ROB-MB-FLOOD", "ROB-MB-STORM", "ROB-MB-IDLE", "ROB-MB-SLOW"):
            monitor = case["evidence"]["monitor"]
            assert monitor["ok"] and monitor["counts"]["during"]["ok"] > 0, case["id"]


def test_planted_weaknesses_fail_with_minimised_evidence_and_replay(tmp_path):
    with _simulator("hang-on-bad-length=1500", "lose-writes:every=7") as sim:
        code, data, output = certify(sim.url, tmp_path / "run", *ROBUSTNESS, "-k", "MALFORMED or STATEFUL")
    assert data is not None and code == 1, output
    got = verdicts(data)
    assert got == {"ROB-MB-MALFORMED": "FAIL", "ROB-MB-STATEFUL-REGISTERS": "FAIL", "ROB-MB-STATEFUL-COILS": "FAIL"}, output
    cases = {c["id"]: c for c in data["cases"]}
    malformed = cases["ROB-MB-MALFORMED"]["evidence"]
    replay = malformed["replay"]
    # the suite found, without being told, that a bad MBAP length silences the device, and shrank
    # it to a few bytes: a bare header, or a short frame with the bad header after it (the kind
    # may be any that carries such a length, random bytes included; the seed is the run's own)
    frame = bytes.fromhex(replay["frames"][0])
    assert stream_has_bad_length(frame), replay  # what the fault reacts to, anywhere in the input's bytes
    assert malformed["attack"]["minimised"] is True
    if replay["kind"] != "malformed:oversized":
        assert len(frame) <= 16, replay  # at most two MBAP headers and two bytes of PDU
    assert replay["seed"] == data["run"]["seed"]
    stateful = cases["ROB-MB-STATEFUL-REGISTERS"]["evidence"]
    assert "do not hold what was last written" in cases["ROB-MB-STATEFUL-REGISTERS"]["message"]
    assert stateful["replay"]["frames"] and any(n.startswith("1. ") for n in stateful["notes"])

    with _simulator("hang-on-bad-length=0") as fresh:
        shown = _replay(tmp_path / "run", "ROB-MB-MALFORMED", fresh.url)
    assert shown.returncode == 1 and "REPRODUCED" in shown.stdout, shown.stdout + shown.stderr
    with _simulator() as sound:
        clean = _replay(tmp_path / "run", "ROB-MB-MALFORMED", sound.url)
    assert clean.returncode == 0 and "Not reproduced" in clean.stdout, clean.stdout + clean.stderr


def test_a_device_that_stays_silent_fails_without_hanging_the_run(tmp_path):
    """A device that goes silent for good: the fuzz case FAILs with the first input that did it
    (it cannot be shrunk without the device coming back) and every later case ends too."""
    with _simulator("hang-on-bad-length=0") as sim:
        code, data, output = certify(sim.url, tmp_path, *ROBUSTNESS, "-k", "MALFORMED or FLOOD")
    assert data is not None and data["run"]["status"] == "finished", output
    got = verdicts(data)
    assert got["ROB-MB-MALFORMED"] == "FAIL", output
    assert got["ROB-MB-FLOOD"] in ("FAIL", "ERROR"), output
    malformed = next(c for c in data["cases"] if c["id"] == "ROB-MB-MALFORMED")
    assert malformed["evidence"]["attack"]["minimised"] is False or "not minimised" in malformed["message"]


def test_replay_names_the_cases_that_have_input(tmp_path):
    with _simulator("hang-on-bad-length=1500") as sim:
        _code, data, output = certify(sim.url, tmp_path, *ROBUSTNESS, "-k", "MALFORMED")
        assert data is not None, output
        result = _replay(tmp_path, "ROB-MB-NOPE", sim.url)
    assert result.returncode == 2 and "ROB-MB-MALFORMED" in result.stderr, result.stderr


def test_stock_jsmodbus_dies_on_a_malformed_request_the_fuzzer_finds_and_shrinks(tmp_path):
    """jsmodbus 5.0.0 as shipped (without the peer script's catch of uncaught exceptions) ends
    node on a write request that throws inside it.  The fuzzer finds such a request without
    being told which; the profile's restart command (here: the same server started again on its
    port) brings the server back after each death, so the input is shrunk like any other, and the
    next case finds the server serving.  The replay kills a fresh server again.  The seed is one
    with which the fuzzer meets such a request within its 300 inputs (input 48); not every seed
    does, which is why a run records its seed."""
    from harness.peers.node_modbus_servers import start_jsmodbus_server

    with start_jsmodbus_server(example_profile_path(), stock=True) as peer:
        restart = list(peer.argv)
        restart[restart.index("--port") + 1] = "{port}"
        profile = tmp_path / "device.yaml"
        profile.write_text(example_profile_path().read_text(encoding="utf-8") + "\nrobustness:\n"
                           "  recovery_time_ms: 500\n  monitor_timeout_ms: 300\n  restart_timeout_ms: 20000\n"
                           f"  restart_command: {json.dumps(restart)}\n", encoding="utf-8")
        code, data, output = certify(peer.url, tmp_path / "run", *ROBUSTNESS, "-k", "MALFORMED or STORM",
                                     "--seed", "1350613311", profile=profile, timeout=300)
    assert data is not None and code == 1, output
    got = verdicts(data)
    assert got == {"ROB-MB-MALFORMED": "FAIL", "ROB-MB-STORM": "PASS"}, output
    case = data["cases"][0]
    attack = case["evidence"]["attack"]
    assert "did not come back" in case["message"] and attack["minimised"] and attack["reproduced"], case["message"]
    assert attack["restarts"] > 1 and attack["restored"], attack
    assert len(attack["preceding"]) == 5, attack
    frame = bytes.fromhex(case["evidence"]["replay"]["frames"][0])
    assert len(frame) <= 12 and frame[7] in (5, 6), frame.hex()  # a single write past the end of jsmodbus's buffer
    with start_jsmodbus_server(example_profile_path(), stock=True) as fresh:
        shown = _replay(tmp_path / "run", "ROB-MB-MALFORMED", fresh.url)
    assert shown.returncode == 1 and "REPRODUCED" in shown.stdout, shown.stdout + shown.stderr


def test_a_device_found_down_before_a_case_is_restarted_by_the_profiles_command_and_stopped_after(tmp_path):
    """The restart command may be the device itself, started in the foreground: here nothing
    listens on the target when the run starts, the first case finds the device down and the
    command starts it (noted in that case's evidence), the cases run against it, and the run
    stops it at the end."""
    from harness.peers.base import free_port

    port = free_port()  # a restarted device must come back on the target's port
    command = [sys.executable, "-m", "simulators.modbus", str(example_profile_path()), "--port", "{port}"]
    profile = tmp_path / "device.yaml"
    profile.write_text(example_profile_path().read_text(encoding="utf-8") + "\nrobustness:\n  recovery_time_ms: 500\n"
                       f"  restart_command: {json.dumps(command)}\n", encoding="utf-8")
    # under plain pytest: `harness certify` refuses a target that does not answer before the run
    results = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "pytest", "conformance_suites/modbus_robustness", "-p", "no:cacheprovider",
                          "-q", "--target", f"modbus+tcp://127.0.0.1:{port}", "--profile", str(profile),
                          "--results-json", str(results), "-k", "FLOOD or SLOW"],
                         capture_output=True, text=True, timeout=240, cwd=ROOT)
    output = run.stdout + run.stderr
    data = json.loads(results.read_text()) if results.exists() else None
    assert data is not None and run.returncode == 0, output
    assert verdicts(data) == {"ROB-MB-FLOOD": "PASS", "ROB-MB-SLOW": "PASS"}, output
    first = data["cases"][0]["evidence"]["notes"]
    assert any("did not answer before this case" in n and "brought it back" in n for n in first), first
    assert not any("did not answer before this case" in n for n in data["cases"][1]["evidence"]["notes"])
    with pytest.raises(OSError):  # the device the command started was stopped with the run
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
