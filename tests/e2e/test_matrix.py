"""`harness matrix` as a user runs it: a small grid, a known incompatibility, an unavailable server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HARNESS = [sys.executable, "-m", "harness.cli"]


def run_matrix(out, *args, env=None, timeout=300):
    proc = subprocess.run([*HARNESS, "matrix", "--out", str(out), *args], capture_output=True, text=True, timeout=timeout, env=env)
    results = out / "results.json"
    return proc.returncode, (json.loads(results.read_text()) if results.exists() else None), proc.stdout + proc.stderr


def test_small_grid_has_a_case_per_pair_and_scenario_and_a_matrix_in_the_report(tmp_path):
    store = tmp_path / "conformance"
    code, data, output = run_matrix(tmp_path, "--clients", "pymodbus,jsmodbus", "--servers", "simulator", "-n", "0",
                                    "--conformance", str(store))
    assert data is not None, output
    grid = [c for c in data["cases"] if "server" in c["tags"]]
    pairs = {(c["tags"]["client"], c["tags"]["server"]) for c in grid}
    assert pairs == {("pymodbus", "simulator"), ("jsmodbus", "simulator")}
    scenarios = {c["tags"]["scenario"] for c in grid}
    assert len(grid) == 2 * len(scenarios) >= 18
    # client-side conformance ran for both client stacks, each case with evidence
    client_side = [c for c in data["cases"] if c["suite"] == "modbus_client"]
    assert {c["tags"]["client"] for c in client_side} == {"pymodbus", "jsmodbus"} and len(client_side) >= 16
    assert all(c["evidence"]["notes"] for c in client_side)
    assert "Client-side conformance" in output and "Traceback" not in output, output
    got = {c["id"]: c for c in data["cases"]}
    # pymodbus against the reference device: every scenario passes
    assert {c["verdict"] for c in grid if c["tags"]["client"] == "pymodbus"} == {"PASS"}
    # a known incompatibility is a FAIL with evidence, and the run says so by its exit code
    jsmq = got["IOP-MAX-QUANTITY-jsmodbus-simulator"]
    assert jsmq["verdict"] == "FAIL" and jsmq["evidence"]["expected"] and jsmq["evidence"]["notes"], jsmq
    assert any(n.startswith("attribution: client side: jsmodbus fails MBC-3.1.3-REQUEST-FRAME") for n in jsmq["evidence"]["notes"])
    # the cell carries the frames the client sent and got, recorded by the relay in between
    assert [f["direction"] for f in jsmq["evidence"]["frames"]][:2] == ["tx", "rx"]
    # the server's own conformance run was made and stored for attribution
    stored = json.loads((store / "modbus" / "simulator" / "results.json").read_text())
    assert stored["summary"]["overall"] == "COMPLIANT" and (store / "modbus" / "simulator" / "stack.json").exists()
    assert code == 1, output
    report = (tmp_path / "report.html").read_text()
    assert "Interoperability matrix" in report and "jsmodbus" in report


def test_a_server_that_cannot_start_is_an_error_cell_with_the_reason(tmp_path):
    env = dict(os.environ, HARNESS_NODE=str(tmp_path / "no-such-node"))
    code, data, output = run_matrix(tmp_path, "--clients", "pymodbus", "--servers", "jsmodbus", "-n", "0",
                                    "--conformance", str(tmp_path / "store"), env=env)
    assert data is not None, output
    grid = [c for c in data["cases"] if "server" in c["tags"]]
    assert grid and {c["verdict"] for c in grid} == {"ERROR"}
    assert all("could not be started" in c["message"] for c in grid)
    assert "jsmodbus: no conformance run" in output  # said, and the matrix went on
    assert code in (1, 2), output  # 1 when the client-side cases found something


def test_opcua_grid_runs_every_scenario_for_each_pair(tmp_path):
    code, data, output = run_matrix(tmp_path, "--protocol", "opcua", "--clients", "asyncua,node-opcua",
                                    "--servers", "simulator", "-n", "0", "--no-conformance")
    assert data is not None, output
    grid = [c for c in data["cases"] if "server" in c["tags"]]
    pairs = {(c["tags"]["client"], c["tags"]["server"]) for c in grid}
    assert pairs == {("asyncua", "simulator"), ("node-opcua", "simulator")}
    assert {c["tags"]["scenario"] for c in grid} >= {"BROWSE", "READ", "WRITE", "CALL", "SUBSCRIPTION", "SECURITY", "STATUS"}
    assert {c["verdict"] for c in grid} == {"PASS"}, output
    # OPC UA client-side conformance ran beside the grid, for both client stacks
    client_side = [c for c in data["cases"] if c["suite"] == "opcua_client"]
    assert {c["tags"]["client"] for c in client_side} == {"asyncua", "node-opcua"}
    assert all(c["evidence"]["frames"] for c in client_side if c["verdict"] in ("PASS", "FAIL"))
    assert code == 1, output  # both client stacks break the buffer-size rules (README findings)
