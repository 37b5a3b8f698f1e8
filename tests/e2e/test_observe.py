"""`harness observe` as a user runs it: a client device polls the listening address, the run judges it.

The "device" here is the harness's own raw Modbus connection, which sends exactly the bytes a
test asks for: a well-behaved poller, and one that breaks each rule once.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from harness.codec.modbus.adu import encode_tcp
from harness.profile import example_profile_path
from harness.transport.modbus_tcp import ModbusTcpConnection

LISTENING = re.compile(r"listening on modbus\+tcp://127\.0\.0\.1:(\d+)")


class ObserveRun:
    def __init__(self, out, duration: float):
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "observe", "modbus+tcp://127.0.0.1:0", "--profile", str(example_profile_path()),
             "--duration", str(duration), "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.port = None
        deadline = time.monotonic() + 60
        while self.port is None and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if m := LISTENING.search(line):
                self.port = int(m.group(1))
        assert self.port, "".join(self.lines)

    def finish(self, timeout: float = 120):
        rest, _ = self.proc.communicate(timeout=timeout)
        output = "".join(self.lines) + rest
        results = self.out / "results.json"
        return self.proc.returncode, (json.loads(results.read_text()) if results.exists() else None), output


@pytest.fixture
def observe(tmp_path):
    runs = []

    def start(duration: float) -> ObserveRun:
        runs.append(ObserveRun(tmp_path, duration))
        return runs[-1]

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def by_id(results):
    return {c["id"]: c for c in results["cases"]}


def test_a_well_behaved_poller_passes_every_rule(observe, tmp_path):
    run = observe(3)
    with ModbusTcpConnection("127.0.0.1", run.port, timeout=2.0) as conn:
        for _ in range(5):
            reply = conn.request(bytes.fromhex("03 0000 000a"))
            assert reply.raw[7] == 0x03  # the simulator answered through the relay
    code, results, output = run.finish()
    assert results is not None, output
    cases = by_id(results)
    assert {c["verdict"] for c in cases.values()} == {"PASS"}, output
    assert "5 request(s) on 1 connection(s) judged" in " ".join(cases["MBO-FRAME"]["evidence"]["notes"])
    assert len(cases["MBO-FRAME"]["evidence"]["frames"]) == 10  # every request and answer of the exchange
    assert results["dut"]["role"] == "client" and results["dut"]["connections"]
    assert code == 0, output
    for name in ("traffic.json", "report.html", "junit.xml", "capture.pcap"):
        assert (tmp_path / name).exists(), name


def test_each_broken_rule_fails_its_case_with_the_offending_frames(observe):
    run = observe(3)
    with ModbusTcpConnection("127.0.0.1", run.port, timeout=1.0) as conn:
        conn.request(bytes.fromhex("03 0000 007e"))  # 126 registers: over the limit
        conn.request(bytes.fromhex("07"))  # FC07: not claimed by the example device
        conn.send_pdu(bytes.fromhex("03 0000 0001"), unit=9)  # a unit the device does not answer
        # two requests with one transaction id, in one segment: both outstanding at once
        conn.send_raw(encode_tcp(77, 1, bytes.fromhex("03 0000 0001")) + encode_tcp(77, 1, bytes.fromhex("03 0001 0001")))
        conn.receive(), conn.receive()
        conn.send_pdu(bytes.fromhex("03 0000"))  # a PDU too short for FC03
        time.sleep(0.3)
    code, results, output = run.finish()
    assert results is not None, output
    cases = by_id(results)
    for cid in ("MBO-LIMITS", "MBO-FC-CLAIMED", "MBO-UNIT", "MBO-TID", "MBO-FRAME"):
        assert cases[cid]["verdict"] == "FAIL", (cid, cases[cid]["message"])
        assert "1 of 6 request(s)" in cases[cid]["message"], cases[cid]["message"]
    assert "transaction identifier 77" in cases["MBO-TID"]["message"]
    assert "unit identifier 9" in cases["MBO-UNIT"]["message"]
    limits = cases["MBO-LIMITS"]["evidence"]["frames"]
    assert [f["direction"] for f in limits] == ["tx", "rx"] and "126" in limits[0]["summary"]
    assert code == 1, output


def test_no_client_is_inconclusive_and_says_where_it_listened(observe):
    run = observe(1)
    code, results, output = run.finish()
    assert results is not None, output
    assert {c["verdict"] for c in results["cases"]} == {"INCONCLUSIVE"}
    assert f"127.0.0.1:{run.port}" in results["cases"][0]["message"]
    assert code == 2, output
