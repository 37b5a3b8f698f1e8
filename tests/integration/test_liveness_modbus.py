"""The Modbus liveness probe and monitor against the bundled simulator over real loopback TCP.

Faults make the simulator answer wrongly or not at all (simulators/modbus/faults.py); the
probe must say WRONG or MISSING with a reason, within its timeout, and never raise.
"""

from __future__ import annotations

import re
import time

import pytest

from harness.liveness import MISSING, OK, WRONG, LivenessMonitor
from harness.liveness_modbus import PointCheck, checks_from_profile, judge_response, modbus_probe
from harness.profile import example_profile_path, load_profile
from simulators.modbus.faults import parse_fault
from simulators.modbus.server import start_in_thread

TIMEOUT = 0.3
SLACK = 1.0  # what a busy machine may add to a probe's bound


@pytest.fixture(scope="module")
def profile():
    return load_profile(example_profile_path())


@pytest.fixture(scope="module")
def checks(profile):
    return checks_from_profile(profile)


def probe_once(port, checks, unit=1, timeout=TIMEOUT):
    probe = modbus_probe("127.0.0.1", port, unit, checks)
    try:
        begin = time.monotonic()
        result = probe(timeout)
        assert time.monotonic() - begin < timeout + SLACK, "the probe overran its timeout"
        return result
    finally:
        probe.close()


def test_checks_from_profile_pick_read_only_points_with_their_values(profile, checks):
    assert [(c.table, c.address, c.count) for c in checks] == [
        ("input_registers", 0, 2),  # voltage_l1 float32 230.5
        ("discrete_inputs", 0, 1),  # alarm true
        ("input_registers", 2, 2),  # current_l1 float32 12.25, little word order
    ]
    assert checks[0].expected == (0x4366, 0x8000)
    assert checks[1].expected == (1,)
    assert checks[2].expected == (0x0000, 0x4144)
    assert all(c.expected is None for c in checks_from_profile(profile, with_values=False))
    assert len(checks_from_profile(profile, limit=5)) == 5


def test_the_example_device_answers_right(profile, checks):
    with start_in_thread(profile) as sim:
        probe = modbus_probe("127.0.0.1", sim.port, 1, checks)
        try:
            assert [probe(TIMEOUT) for _ in range(3)] == [(OK, "")] * 3  # one connection, reused
        finally:
            probe.close()


def test_a_value_other_than_expected_is_wrong(profile):
    wrong = [PointCheck("input_registers", 10, 1, (5001,)), PointCheck("discrete_inputs", 0, 3, (1, 1, 1))]
    with start_in_thread(profile) as sim:
        assert probe_once(sim.port, wrong[:1]) == (WRONG, "FC04 @10x1: got [5000], expected [5001]")
        assert probe_once(sim.port, wrong[1:]) == (WRONG, "FC02 @0x3: got [1, 0, 1], expected [1, 1, 1]")


def test_an_exception_response_is_wrong(profile):
    outside = [PointCheck("input_registers", 1000, 2)]  # the device has input registers 0..299
    with start_in_thread(profile) as sim:
        assert probe_once(sim.port, outside) == (WRONG, "FC04 @1000x2: exception 02")


@pytest.mark.parametrize(
    "fault, detail",
    [
        ("wrong-tid", "FC04 @0x2: tid mismatch: reply has transaction id 2, request had 1"),
        ("wrong-unit", "FC04 @0x2: unit id 2 in the reply, request had 1"),
        ("exception=6", "FC04 @0x2: exception 06"),
    ],
)
def test_faulty_answers_are_wrong(profile, checks, fault, detail):
    with start_in_thread(profile, [parse_fault(fault)]) as sim:
        assert probe_once(sim.port, checks) == (WRONG, detail)


@pytest.mark.parametrize(
    "fault, detail",
    [
        ("no-reply", f"no answer within {TIMEOUT:g} s (FC04 @0x2)"),
        ("truncate", f"no answer within {TIMEOUT:g} s (FC04 @0x2, 12 bytes of a reply came)"),
        ("close-mid-reply", "connection closed by the device after 6 bytes of a reply (FC04 @0x2)"),
    ],
)
def test_no_answer_is_missing(profile, checks, fault, detail):
    with start_in_thread(profile, [parse_fault(fault)]) as sim:
        assert probe_once(sim.port, checks) == (MISSING, detail)


def test_a_stopped_device_is_missing_and_the_probe_reconnects_when_it_is_back(profile, checks):
    sim = start_in_thread(profile)
    port = sim.port
    probe = modbus_probe("127.0.0.1", port, 1, checks)
    try:
        assert probe(TIMEOUT) == (OK, "")
        sim.stop()
        status, detail = probe(TIMEOUT)  # the old connection is gone
        assert status == MISSING and detail.startswith(("connection closed by the device", "connection lost")), detail
        assert probe(TIMEOUT) == (MISSING, f"connection refused by 127.0.0.1:{port}")
        with start_in_thread(profile, port=port) as again:
            assert again.port == port
            assert probe(TIMEOUT) == (OK, "")
    finally:
        probe.close()
        sim.stop()


def test_the_monitor_sees_the_device_recover_when_the_fault_is_removed(profile, checks):
    with start_in_thread(profile, [parse_fault("no-reply")]) as sim:
        with LivenessMonitor(modbus_probe("127.0.0.1", sim.port, 1, checks), interval_s=0.05, timeout_s=0.2) as monitor:
            start = 0.0  # the device is "under attack" from the monitor's first read
            time.sleep(0.4)
            # the simulator's faults are read on each request: clearing them ends the "attack"
            sim.loop.call_soon_threadsafe(sim.simulator.faults.clear)
            end = monitor.mark("attack end")
            assert monitor.wait_until_ok(3.0) is not None
            time.sleep(0.2)
    report = monitor.report(attack=(start, end), recovery_limit_s=1.0, tolerate_during=True)
    assert report.ok, report.problems
    assert report.during.missing >= 2 and report.during.ok == 0
    assert report.recovered_after_s is not None and 0 <= report.recovered_after_s <= 1.0
    strict = monitor.report(attack=(start, end), recovery_limit_s=1.0)
    assert any(re.match(r"stopped answering at \+0\.\d\d s for 0\.\d\d s during the attack: no answer within 0\.2 s", p)
               for p in strict.problems), strict.problems
    assert report.to_dict()["counts"]["after"]["ok"] >= 1


def test_a_monitor_at_50_ms_for_a_second_takes_twenty_samples(profile, checks):
    with start_in_thread(profile) as sim:
        with LivenessMonitor(modbus_probe("127.0.0.1", sim.port, 1, checks), interval_s=0.05, timeout_s=0.5) as monitor:
            time.sleep(1.0)
            elapsed = monitor.now()
    samples = monitor.samples
    expected = int(elapsed / 0.05) + 1
    accounted = len(samples) + monitor.slow_slots + monitor.lost_slots
    assert abs(accounted - expected) <= 2, (len(samples), monitor.slow_slots, monitor.lost_slots, expected)
    assert {s.status for s in samples} == {OK}, [s for s in samples if s.status != OK]
    assert monitor.timing_error().count == len(samples)


def test_judge_response_reads_what_the_codec_decodes():
    check = PointCheck("holding_registers", 100, 2, (3, 4))
    assert judge_response(check, bytes.fromhex("0304 0003 0004")) is None
    assert judge_response(check, bytes.fromhex("0304 0001 0002")) == "FC03 @100x2: got [1, 2], expected [3, 4]"
    assert judge_response(check, bytes.fromhex("0302 0003")) == "FC03 @100x2: byte count 2 for 2 registers (expected 4)"
    assert judge_response(check, bytes.fromhex("0305 0003 0004")).startswith("FC03 @100x2: malformed reply: byte count says 5")
    assert judge_response(check, bytes.fromhex("0404 0003 0004")) == "FC03 @100x2: reply has function code 04"
    assert judge_response(check, bytes.fromhex("8404")) == "FC03 @100x2: exception 04 for function code 04"
    coils = PointCheck("coils", 0, 10, (1, 0, 1, 0, 0, 0, 0, 0, 1, 1))
    assert judge_response(coils, bytes.fromhex("0102 0503")) is None
    assert judge_response(coils, bytes.fromhex("0101 05")) == "FC01 @0x10: byte count 1 for 10 bits (expected 2)"


def test_point_checks_refuse_what_cannot_be_read():
    with pytest.raises(ValueError, match="table must be one of"):
        PointCheck("registers", 0, 1)
    with pytest.raises(ValueError, match="count must be 1..125"):
        PointCheck("input_registers", 0, 126)
    with pytest.raises(ValueError, match="give one per item"):
        PointCheck("discrete_inputs", 0, 2, (1,))
    with pytest.raises(ValueError, match="at least one PointCheck"):
        modbus_probe("127.0.0.1", 1, 1, [])
