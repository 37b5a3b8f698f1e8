"""The OPC UA liveness probe against the bundled simulator over real loopback TCP.

The probe must say OK for the device's known values, WRONG (with the reason) for a wrong
expectation or an unknown node, MISSING when the server is gone or silent, each within its
timeout and without raising, and come back by itself (a new session) when the server does.
"""

from __future__ import annotations

import socket
import time

import pytest

from harness.codec.opcua import uacp
from harness.liveness import MISSING, OK, WRONG, LivenessMonitor
from harness.liveness_opcua import NodeCheck, checks_from_profile, judge_read, opcua_probe, replay_alive, same_value
from harness.opcua import ua
from harness.profile import example_profile_path, load_profile
from simulators.device import start_device_in_thread

TIMEOUT = 0.5
SLACK = 1.0  # what a busy machine may add to a probe's bound
NS = "urn:example-automation:pm100:data"


@pytest.fixture(scope="module")
def profile():
    return load_profile(example_profile_path())


@pytest.fixture(scope="module")
def checks(profile):
    return checks_from_profile(profile)


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    with start_device_in_thread(example_profile_path(), ("opcua",), cert_dir=tmp_path_factory.mktemp("pki")) as dev:
        yield dev


def timed(probe, timeout=TIMEOUT):
    begin = time.monotonic()
    result = probe(timeout)
    assert time.monotonic() - begin < timeout + SLACK, "the probe overran its timeout"
    return result


def test_checks_from_profile_pick_read_only_points_with_their_opcua_values(profile, checks):
    assert checks == [
        NodeCheck(f"nsu={NS};s=PowerMeter.voltage_l1", 230.5),  # input register, float32
        NodeCheck(f"nsu={NS};s=PowerMeter.alarm", True),  # discrete input
        NodeCheck(f"nsu={NS};s=PowerMeter.current_l1", 12.25),  # input register, little word order
    ]
    scaled = {c.node_id: c.expected for c in checks_from_profile(profile, limit=10)}
    assert scaled[f"nsu={NS};s=PowerMeter.energy_total"] == 123456.7  # raw 1234567 x scale 0.1
    assert f"nsu={NS};s=PowerMeter.serial" not in scaled  # strings are left out
    assert not any("ct_ratio" in n for n in scaled)  # writable points too
    assert all(c.expected is None for c in checks_from_profile(profile, with_values=False))


def test_judging_values_and_node_ids():
    assert same_value(230.5, 230.5) and same_value(12.25, 12.250000001) and not same_value(230.5, 231.0)
    assert same_value(True, True) and not same_value(True, 1) and not same_value(1, True)
    assert same_value([1, 2], [1, 2]) and not same_value([1, 2], [1, 2, 3]) and same_value("SN", "SN")
    fault = ua.ServiceFault()
    fault.ResponseHeader.ServiceResult = ua.StatusCode(ua.StatusCodes.BadSessionIdInvalid)
    problem, in_doubt = judge_read([NodeCheck("i=2258")], fault)
    assert "ServiceFault" in problem and "BadSessionIdInvalid" in problem and in_doubt
    with pytest.raises(ValueError, match="is not a node id"):
        NodeCheck("PowerMeter.V")  # no identifier type
    with pytest.raises(ValueError, match="opc.tcp://"):
        opcua_probe("modbus+tcp://127.0.0.1:502", [NodeCheck("i=2258")])


def test_the_example_device_answers_right_over_one_session(device, checks):
    probe = opcua_probe(device.urls["opcua"], checks)
    try:
        assert timed(probe) == (OK, "")
        channel = probe._channel
        for _ in range(20):
            assert timed(probe) == (OK, "")
        assert probe._channel is channel, "the session is kept between calls"
    finally:
        probe.close()


def test_a_wrong_expectation_or_an_unknown_node_is_wrong(device, checks):
    wrong = opcua_probe(device.urls["opcua"], [NodeCheck(checks[0].node_id, 1.0), checks[1]])
    unknown = opcua_probe(device.urls["opcua"], [NodeCheck(f"nsu={NS};s=PowerMeter.nope")])
    stranger = opcua_probe(device.urls["opcua"], [NodeCheck("nsu=urn:not-here;s=X")])
    try:
        status, detail = timed(wrong)
        assert status == WRONG and detail == f"nsu={NS};s=PowerMeter.voltage_l1: got 230.5, expected 1.0"
        status, detail = timed(unknown)
        assert status == WRONG and detail.endswith("BadNodeIdUnknown")
        status, detail = timed(stranger)
        assert status == WRONG and "urn:not-here is not in the server's NamespaceArray" in detail
    finally:
        for probe in (wrong, unknown, stranger):
            probe.close()


def test_a_server_gone_is_missing_and_a_silent_one_too_until_it_speaks_again(tmp_path, checks):
    """With ua-hang-on-bad-size the server goes silent for a while after a Hello whose size is
    wrong: the probe's session times out (MISSING, within the timeout), and once the server
    speaks again the probe opens a new session by itself; a stopped server is MISSING at once."""
    with start_device_in_thread(example_profile_path(), ("opcua",), faults=["ua-hang-on-bad-size=1200"],
                                cert_dir=tmp_path / "pki") as dev:
        url = dev.urls["opcua"]
        probe = opcua_probe(url, checks)
        assert timed(probe) == (OK, "")
        bad = uacp.encode(uacp.Hello(0, 65536, 65536, 0, 0, url))
        with socket.create_connection(("127.0.0.1", dev.device.opcua.port), timeout=2) as sock:
            sock.sendall(bad[:4] + (20).to_bytes(4, "little") + bad[8:])  # MessageSize 20: below a Hello's 32
            time.sleep(0.2)  # for the server to read it (there is no answer to wait for)
            status, detail = timed(probe)
        assert status == MISSING and "within 0.5 s" in detail, detail
        deadline = time.monotonic() + 5
        while (result := timed(probe))[0] != OK and time.monotonic() < deadline:
            time.sleep(0.1)
        assert result == (OK, ""), result
        assert replay_alive(url, {"checks": [{"node_id": c.node_id, "expected": c.expected} for c in checks]}, TIMEOUT, 2)
        assert replay_alive(url, {}, TIMEOUT, 2) is None
    status, detail = timed(probe)
    assert status == MISSING and "cannot connect" in detail, detail
    probe.close()
    assert probe(TIMEOUT) == (MISSING, "the probe was closed")


def test_the_monitor_watches_through_the_probe(device, checks):
    probe = opcua_probe(device.urls["opcua"], checks)
    with LivenessMonitor(probe, interval_s=0.05, timeout_s=TIMEOUT) as monitor:
        time.sleep(0.5)
        start = monitor.mark("nothing happens")
        end = monitor.mark("still nothing")
        monitor.wait_until_ok(1.0)
        time.sleep(0.3)
    report = monitor.report(attack=(start, end), recovery_limit_s=1.0)
    assert report.ok, report.problems
    assert report.before.ok >= 5 and report.before.wrong == report.before.missing == 0
    assert probe._thread is not None and not probe._thread.is_alive(), "stopping the monitor closes the probe"
