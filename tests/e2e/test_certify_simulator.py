"""The Modbus suite against the bundled simulator: all pass, and each planted fault is caught."""

from __future__ import annotations

import socket
import subprocess

import pytest

from simulators.modbus.faults import parse_fault
from simulators.modbus.server import start_in_thread

from .helpers import HARNESS, certify, verdicts


def test_clean_simulator_is_compliant_serial_and_parallel(example_profile, tmp_path):
    with start_in_thread(example_profile) as sim:
        url = f"modbus+tcp://{sim.host}:{sim.port}"
        code, serial, output = certify(url, tmp_path / "serial")
        assert code == 0, output
        code_n, parallel, output_n = certify(url, tmp_path / "parallel", "-n", "2")
        assert code_n == 0, output_n
    bad = {k: v for k, v in verdicts(serial).items() if v not in ("PASS", "NOT_APPLICABLE")}
    assert not bad, bad
    assert serial["summary"]["overall"] == "COMPLIANT"
    assert verdicts(parallel) == verdicts(serial)
    assert len(serial["cases"]) >= 90
    # the files a lab gets
    for name in ("report.html", "junit.xml", "capture.pcap", "results.json"):
        assert (tmp_path / "serial" / name).stat().st_size > 0
    assert serial["dut"]["objects"]["VendorName"] == "Example Automation"
    assert serial["run"]["status"] == "finished" and serial["run"]["seed"] is not None
    coverage = serial["summary"]["coverage"]["modbus"]
    assert coverage["tested"] >= coverage["catalogued"] - 2


# fault -> (cases that must FAIL, a -k expression selecting them and a control case)
FAULTS = {
    "wrong-tid": ({"MB-MBAP-TID-0000", "MB-MBAP-TID-FFFF"}, "MB-MBAP-TID"),
    "wrong-unit": ({"MB-MBAP-UID"}, "MB-MBAP-UID"),
    "wrong-length": ({"MB-MBAP-LEN"}, "MB-MBAP-LEN"),
    "truncate": ({"MB-MBAP-LEN"}, "MB-MBAP-LEN"),
    "close-mid-reply": ({"MB-MBAP-LEN"}, "MB-MBAP-LEN"),
    "delay=800": ({"PICS-RESPONSE-TIME"}, "PICS-RESPONSE-TIME"),
    "no-reply": ({"PICS-RESPONSE-TIME"}, "PICS-RESPONSE-TIME"),
    "exception=4:fc=3": ({"MB-FC03-QTY-1", "MB-FC03-ADDR-FIRST"}, "MB-FC03-QTY-1 or MB-FC03-ADDR-FIRST"),
    "exception=2:fc=1": ({"MB-FC01-PACKING"}, "MB-FC01-PACKING"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_fails_the_case_naming_the_broken_rule(example_profile, tmp_path, fault):
    must_fail, selection = FAULTS[fault]
    with start_in_thread(example_profile, [parse_fault(fault)]) as sim:
        code, data, output = certify(f"modbus+tcp://{sim.host}:{sim.port}", tmp_path, "-k", selection)
    assert data is not None, output
    got = verdicts(data)
    assert must_fail <= set(got), got
    assert {cid: got[cid] for cid in must_fail} == {cid: "FAIL" for cid in must_fail}, output
    assert code == 1
    for case in data["cases"]:
        if case["verdict"] == "FAIL":
            assert case["evidence"]["frames"], f"{case['id']} failed without evidence"
            assert case["message"]


def test_unreachable_target_is_one_line_and_exit_3(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    proc = subprocess.run([*HARNESS, "certify", f"modbus+tcp://127.0.0.1:{port}", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert lines == [f"harness: target unreachable: modbus+tcp://127.0.0.1:{port} (Connection refused)"]


def test_usage_errors_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: harness.profile/1\nmodbus: {function_codes: [3], tables: {coils: {start: 0, count: x}}}\n")
    proc = subprocess.run([*HARNESS, "certify", "modbus+tcp://127.0.0.1:1", "--profile", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    proc = subprocess.run([*HARNESS, "certify", "ftp://x"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown target scheme" in proc.stderr


def test_interrupted_run_leaves_readable_results(example_profile, tmp_path):
    import json
    import signal
    import time

    from harness.profile import example_profile_path

    with start_in_thread(example_profile, [parse_fault("delay=150")]) as sim:
        proc = subprocess.Popen([*HARNESS, "certify", f"modbus+tcp://{sim.host}:{sim.port}", "--profile",
                                 str(example_profile_path()), "--out", str(tmp_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        results = tmp_path / "results.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if results.exists() and json.loads(results.read_text())["cases"]:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    data = json.loads(results.read_text())
    assert data["run"]["status"] == "interrupted"
    assert 0 < len(data["cases"]) < 90


def test_certify_without_profile_probes_first(simulator, tmp_path):
    proc = subprocess.run([*HARNESS, "certify", f"modbus+tcp://{simulator.host}:{simulator.port}", "--out", str(tmp_path),
                           "-k", "MBAP or FC03"], capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    assert "No --profile given: probing" in output
    assert (tmp_path / "profile.probed.yaml").exists()
    import json

    data = json.loads((tmp_path / "results.json").read_text())
    assert data["profile"]["source"].endswith("profile.probed.yaml")
    assert proc.returncode == 0, output


def test_suites_lists_cases_and_requirements():
    proc = subprocess.run([*HARNESS, "suites"], capture_output=True, text=True, timeout=120, env={"COLUMNS": "250", "PATH": ""})
    assert proc.returncode == 0, proc.stderr
    assert "MB-FC03-QTY-126" in proc.stdout and "MBTCP-3.1.3-TID" in proc.stdout
    proc = subprocess.run([*HARNESS, "suites", "--requirements"], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "250", "PATH": ""})
    assert "MB-AP-6.17-ORDER" in proc.stdout and "V1.1b3" in proc.stdout


def test_capture_decodes_as_modbus_tcp(example_profile, tmp_path):
    import shutil

    if shutil.which("tshark") is None:
        pytest.fail("tshark is missing: run scripts/install-system-packages.sh (make test does)")
    with start_in_thread(example_profile) as sim:
        code, data, output = certify(f"modbus+tcp://{sim.host}:{sim.port}", tmp_path, "-k", "MB-FC03 or MB-MBAP-TID")
    assert code == 0, output
    fields = subprocess.run(["tshark", "-r", str(tmp_path / "capture.pcap"), "-Y", "mbtcp", "-T", "fields",
                             "-e", "mbtcp.trans_id", "-e", "modbus.func_code"], capture_output=True, text=True, timeout=120)
    rows = [line.split("\t") for line in fields.stdout.splitlines() if line.strip()]
    assert any(r[0] == "65535" for r in rows), rows[:5]  # MB-MBAP-TID-FFFF's frames
    assert any(r[1] == "3" for r in rows), rows[:5]
    frames = data["capture"]["frames"]
    assert frames and all(frames.values())
