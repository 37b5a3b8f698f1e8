"""The reference Modbus simulator on the wire: MBAP rules, robustness, fault injection, the CLI.

MBAP rules are those of the MODBUS Messaging on TCP/IP Implementation Guide V1.0b (§3.1.3,
§4.4.2).  Real TCP on loopback port 0; every socket operation has a timeout.
"""

from __future__ import annotations

import logging
import os
import re
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.profile import example_profile_path, parse_profile
from raw_client import TIMEOUT, RawClient, frame
from simulators.modbus import FaultSyntaxError, ModbusSimulator, parse_fault, start_in_thread
from simulators.modbus.server import _Connection

REPO = Path(__file__).resolve().parents[2]

PROFILE_YAML = """
profile: harness.profile/1
device: {vendor_name: Test Vendor, product_code: TV-1, revision: "2.0"}
modbus:
  function_codes: [1, 2, 3, 4, 5, 6, 15, 16, 22, 23, 43]
  unit_ids: [1, 7]
  tables:
    coils:             {start: 0, count: 2000}
    discrete_inputs:   {start: 0, count: 2000}
    holding_registers: {start: 0, count: 200}
    input_registers:   {start: 0, count: 200}
points:
  - {name: first, table: holding_registers, address: 0, type: uint16, value: 0x1234, writable: true}
"""
READ_ONE = bytes.fromhex("0300000001")  # answers 03 02 12 34
READ_ONE_ANSWER = bytes.fromhex("03021234")


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def profile():
    return parse_profile(PROFILE_YAML, "wire-device.yaml")


@pytest.fixture(scope="module")
def errors():
    """ERROR records the simulator logs (a failing request or connection is a bug here)."""
    handler = _Records()
    logger = logging.getLogger("simulators.modbus")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


@pytest.fixture
def sim(profile, errors):
    errors.clear()
    with start_in_thread(profile) as running:
        yield running
    assert not errors, [r.getMessage() for r in errors]


@pytest.fixture
def client(sim):
    with RawClient(sim.host, sim.port) as c:
        yield c


def simulator_with(profile, *faults: str):
    return start_in_thread(profile, faults=[parse_fault(f) for f in faults])


# =========================================================================== MBAP rules


def test_transaction_and_unit_ids_are_echoed(client):
    for tid, unit in ((0, 1), (0xBEEF, 7), (0xFFFF, 1)):
        assert client.request(READ_ONE, tid=tid, unit=unit) == READ_ONE_ANSWER


def test_unit_id_not_in_the_profile_gets_no_reply(client):
    client.send(frame(READ_ONE, tid=5, unit=2))
    client.expect_silence()
    assert client.request(READ_ONE, tid=6) == READ_ONE_ANSWER  # the connection still works


def test_protocol_id_other_than_0_is_discarded_and_the_connection_stays_open(client):
    # TCP guide §4.4.2.2: "the indication is simply discarded".
    client.send(frame(READ_ONE, tid=9, protocol=1) + frame(READ_ONE, tid=10, protocol=0xFFFF))
    client.expect_silence()
    assert client.request(READ_ONE, tid=11) == READ_ONE_ANSWER


@pytest.mark.parametrize("length", [0, 1, 255, 0xFFFF])
def test_length_outside_2_to_254_closes_the_connection(sim, length):
    with RawClient(sim.host, sim.port) as client:
        # the request before the bad header is still answered, then the stream is closed
        client.send(frame(READ_ONE, tid=1) + frame(READ_ONE, tid=2, length=length))
        assert client.read_adu()[0] == 1
        assert client.is_closed_by_peer()
    with RawClient(sim.host, sim.port) as client:  # and the server serves new connections
        assert client.request(READ_ONE) == READ_ONE_ANSWER


def test_longest_legal_frame_is_served(client):
    pdu = bytes.fromhex("0F0000") + struct.pack(">HB", 1968, 246) + b"\x00" * 246  # 252-byte PDU
    assert client.request(pdu + b"") == pdu[:5]
    # 253 bytes: over-long for FC15, so the engine answers 03 rather than the framing closing
    assert client.request(pdu + b"\x00") == bytes((0x8F, 3))


def test_request_split_across_segments_is_reassembled(client):
    data = frame(READ_ONE, tid=0x0102)
    for part in (data[:3], data[3:8], data[8:]):
        client.send(part)
        time.sleep(0.02)
    assert client.read_adu() == (0x0102, 0, 5, 1, READ_ONE_ANSWER)


def test_request_dribbled_one_byte_at_a_time(client):
    for byte in frame(bytes.fromhex("0300000003"), tid=77):
        client.send(bytes((byte,)))
        time.sleep(0.002)
    tid, _protocol, _length, _unit, pdu = client.read_adu()
    assert tid == 77 and pdu[:2] == b"\x03\x06"


def test_pipelined_requests_are_all_answered_with_matching_ids(client):
    requests = {tid: bytes((3, 0, tid - 1, 0, 1)) for tid in range(1, 17)}
    requests[17] = bytes.fromhex("0300C80001")  # an exception in the middle of the batch
    requests[18] = bytes.fromhex("0700")  # an unsupported function too
    client.send(b"".join(frame(pdu, tid=tid) for tid, pdu in requests.items()))
    answers = {}
    for _ in requests:
        tid, protocol, _length, unit, pdu = client.read_adu()
        assert (protocol, unit) == (0, 1)
        answers[tid] = pdu
    assert list(answers) == list(requests)  # answered in order, nothing lost or repeated
    assert answers[1] == READ_ONE_ANSWER
    assert answers[17] == b"\x83\x02" and answers[18] == b"\x87\x01"
    assert all(answers[t][:2] == b"\x03\x02" for t in range(1, 17))


def test_pipelined_frame_with_a_partial_tail(client):
    data = frame(READ_ONE, tid=1) + frame(READ_ONE, tid=2)
    client.send(data + frame(READ_ONE, tid=3)[:4])
    assert [client.read_adu()[0] for _ in range(2)] == [1, 2]
    client.send(frame(READ_ONE, tid=3)[4:])
    assert client.read_adu()[0] == 3


def test_answers_to_one_batch_leave_in_one_write(profile):
    simulator = ModbusSimulator(profile)
    writes: list[bytes] = []

    class Transport:
        def write(self, data):
            writes.append(bytes(data))

        def get_extra_info(self, name):
            return None

    connection = _Connection(simulator)
    connection.connection_made(Transport())
    connection.data_received(b"".join(frame(READ_ONE, tid=t) for t in range(3)) + frame(READ_ONE, tid=3)[:5])
    assert len(writes) == 1 and len(writes[0]) == 3 * 11
    connection.data_received(frame(READ_ONE, tid=3)[5:])
    assert writes[1] == frame(READ_ONE_ANSWER, tid=3)


def test_malformed_frames_then_a_correct_answer_on_a_new_connection(sim):
    for garbage in (b"\x00" * 7, b"\xff" * 300, frame(b"", length=1), b"\x00\x01\x00\x00\x01\x00\x01\x03"):
        with RawClient(sim.host, sim.port) as client:
            client.send(garbage)
            client.recv_all_until_quiet(0.05)
        with RawClient(sim.host, sim.port) as client:
            assert client.request(READ_ONE) == READ_ONE_ANSWER


def test_client_closing_mid_frame_does_not_disturb_others(sim):
    with RawClient(sim.host, sim.port) as other:
        with RawClient(sim.host, sim.port) as client:
            client.send(frame(READ_ONE)[:9])
        assert other.request(READ_ONE) == READ_ONE_ANSWER


def test_stop_closes_open_connections(profile):
    running = start_in_thread(profile)
    client = RawClient(running.host, running.port)
    try:
        assert client.request(READ_ONE) == READ_ONE_ANSWER
        running.stop()
        assert client.is_closed_by_peer()
    finally:
        client.close()
        running.stop()
    assert not running.thread.is_alive()


@pytest.fixture(scope="module")
def fuzz_sim(profile, errors):
    with start_in_thread(profile) as running:
        yield running


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=1, max_size=600))
def test_random_bytes_never_kill_the_server(fuzz_sim, errors, garbage):
    with RawClient(fuzz_sim.host, fuzz_sim.port) as client:
        client.send(garbage)
    with RawClient(fuzz_sim.host, fuzz_sim.port) as client:
        client.send(garbage)
        client.recv_all_until_quiet(0.005)
    with RawClient(fuzz_sim.host, fuzz_sim.port) as client:
        assert client.request(bytes.fromhex("0400000001")) == b"\x04\x02\x00\x00"
    assert not errors, [r.getMessage() for r in errors]


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tid=st.integers(0, 0xFFFF), pdu=st.binary(min_size=1, max_size=253))
def test_random_pdus_get_a_well_formed_answer(fuzz_sim, errors, tid, pdu):
    with RawClient(fuzz_sim.host, fuzz_sim.port) as client:
        client.send(frame(pdu, tid=tid))
        r_tid, protocol, length, unit, answer = client.read_adu()
    assert (r_tid, protocol, unit, length) == (tid, 0, 1, len(answer) + 1)
    assert 2 <= len(answer) <= 253
    if answer[0] & 0x80:
        assert answer[0] == (pdu[0] | 0x80) and len(answer) == 2 and answer[1] in (1, 2, 3)
    else:
        assert answer[0] == pdu[0]
    assert not errors, [r.getMessage() for r in errors]


CLAIMED = [1, 2, 3, 4, 5, 6, 15, 16, 22, 23, 43]


@st.composite
def plausible_pdus(draw) -> bytes:
    """Requests near the valid ones: claimed codes, small addresses, quantities near the limits."""
    fc = draw(st.sampled_from(CLAIMED))
    address = draw(st.integers(0, 2100) | st.integers(0, 0xFFFF))
    quantity = draw(st.integers(0, 130) | st.integers(1960, 2010) | st.integers(0, 0xFFFF))
    if fc in (15, 16):
        size = (quantity + 7) // 8 if fc == 15 else 2 * quantity
        size = draw(st.sampled_from([size, size + 1, max(size - 1, 0)])) & 0xFF
        data = draw(st.binary(min_size=0, max_size=min(size, 247)))
        return struct.pack(">BHHB", fc, address, quantity & 0xFFFF, size) + data
    if fc == 23:
        write_quantity = draw(st.integers(0, 125))
        return struct.pack(">BHHHHB", 23, address, quantity & 0xFFFF, draw(st.integers(0, 300)), write_quantity, 2 * write_quantity & 0xFF) + bytes(2 * write_quantity)
    if fc == 43:
        return bytes((43, draw(st.sampled_from([0x0E, 0x0D])), draw(st.integers(0, 6)), draw(st.integers(0, 255))))
    return struct.pack(">BHH", fc, address, quantity & 0xFFFF) + draw(st.binary(max_size=2))


@pytest.fixture(scope="module")
def engine(profile):
    return ModbusSimulator(profile).engine


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pdu=plausible_pdus() | st.binary(min_size=1, max_size=253))
def test_engine_answers_every_pdu_by_the_rules(engine, errors, pdu):
    """In process and fast: every PDU gets an echo of its function code or exception 01/02/03."""
    answer = engine.handle_pdu(pdu)
    assert answer is not None and 2 <= len(answer) <= 253
    if answer[0] & 0x80:
        assert answer[0] == (pdu[0] | 0x80) and len(answer) == 2 and answer[1] in (1, 2, 3)
    else:
        assert answer[0] == pdu[0]
    assert not errors, [r.getMessage() for r in errors]


# =========================================================================== faults


@pytest.mark.parametrize(
    "text, kind, value, fc, every",
    [
        ("delay=200", "delay", 200, None, None),
        ("no-reply", "no-reply", None, None, None),
        ("wrong-tid:fc=3", "wrong-tid", None, 3, None),
        ("exception=6:fc=16:every=2", "exception", 6, 16, 2),
        ("close-mid-reply:every=5", "close-mid-reply", None, None, 5),
        (" Truncate ", "truncate", None, None, None),
        ("exception=0x0B", "exception", 11, None, None),
    ],
)
def test_parse_fault(text, kind, value, fc, every):
    fault = parse_fault(text)
    assert (fault.kind, fault.value, fault.fc, fault.every) == (kind, value, fc, every)
    assert parse_fault(str(fault)) == fault


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty fault"),
        ("slow", "unknown fault 'slow'.*known faults: delay, no-reply"),
        ("delay", "delay needs a milliseconds, e.g. 'delay=200'"),
        ("delay=soon", "milliseconds must be a whole number"),
        ("delay=-5", "must be from 0"),
        ("no-reply=3", "no-reply takes no value"),
        ("exception", "needs a exception code"),
        ("exception=256", "from 1 to 255"),
        ("delay=10:unit=3", "unknown filter 'unit=3'.*':fc=N'.*':every=N'"),
        ("delay=10:fc=200", "fc must be from 1 to 127"),
        ("delay=10:every=0", "every must be from 1"),
        ("delay=10:fc=3:fc=4", "appears twice"),
    ],
)
def test_parse_fault_errors_say_the_right_syntax(text, message):
    with pytest.raises(FaultSyntaxError, match=message):
        parse_fault(text)
    assert issubclass(FaultSyntaxError, ValueError)


def test_fault_delay(profile):
    with simulator_with(profile, "delay=150") as sim, RawClient(sim.host, sim.port) as client:
        started = time.monotonic()
        assert client.request(READ_ONE) == READ_ONE_ANSWER
        assert time.monotonic() - started >= 0.14


def test_fault_delay_for_one_function_code_lets_others_overtake(profile):
    with simulator_with(profile, "delay=300:fc=3") as sim, RawClient(sim.host, sim.port) as client:
        client.send(frame(READ_ONE, tid=1) + frame(bytes.fromhex("0400000001"), tid=2))
        assert [client.read_adu()[0] for _ in range(2)] == [2, 1]


def test_fault_no_reply(profile):
    with simulator_with(profile, "no-reply") as sim, RawClient(sim.host, sim.port) as client:
        client.send(frame(READ_ONE))
        client.expect_silence(0.3)


def test_fault_no_reply_every_second_request(profile):
    with simulator_with(profile, "no-reply:every=2") as sim, RawClient(sim.host, sim.port) as client:
        client.send(b"".join(frame(READ_ONE, tid=t) for t in range(1, 6)))
        answered = [client.read_adu()[0] for _ in range(3)]
        assert answered == [1, 3, 5]
        client.expect_silence()


def test_fault_wrong_tid(profile):
    with simulator_with(profile, "wrong-tid") as sim, RawClient(sim.host, sim.port) as client:
        client.send(frame(READ_ONE, tid=41) + frame(READ_ONE, tid=0xFFFF))
        assert client.read_adu() == (42, 0, 5, 1, READ_ONE_ANSWER)
        assert client.read_adu()[0] == 0


def test_fault_wrong_unit(profile):
    with simulator_with(profile, "wrong-unit") as sim, RawClient(sim.host, sim.port) as client:
        client.send(frame(READ_ONE, unit=7))
        assert client.read_adu() == (1, 0, 5, 8, READ_ONE_ANSWER)


def test_fault_wrong_length(profile):
    with simulator_with(profile, "wrong-length") as sim, RawClient(sim.host, sim.port) as client:
        client.send(frame(READ_ONE))
        assert client.recv_all_until_quiet() == bytes.fromhex("0001 0000 0006 01") + READ_ONE_ANSWER


def test_fault_exception_answers_without_executing(sim, profile):
    with simulator_with(profile, "exception=6") as faulty, RawClient(faulty.host, faulty.port) as client:
        assert client.request(READ_ONE) == b"\x83\x06"
        assert client.request(bytes.fromhex("0600000099")) == b"\x86\x06"
        assert faulty.store.read("holding_registers", 0) == [0x1234]


def test_fault_lose_writes_answers_as_stored_and_stores_nothing(profile):
    """A lost write is answered exactly as a stored one, an illegal one with its exception as
    usual (AP V1.1b3 §6.6, §6.12): only the storing is missing."""
    with simulator_with(profile, "lose-writes") as sim, RawClient(sim.host, sim.port) as client:
        assert client.request("0600000099") == bytes.fromhex("0600000099")  # FC06 echo
        assert client.request("100000000204aaaabbbb") == bytes.fromhex("1000000002")  # FC16 address, quantity
        assert client.request("0500010000") == bytes.fromhex("0500010000") and client.request("05000100ff") == b"\x85\x03"
        assert client.request("0600c80001") == b"\x86\x02"  # address 200: outside the 200 registers
        assert client.request("10000000020300") == b"\x90\x03"  # byte count 3 for 2 registers
        assert client.request(READ_ONE) == READ_ONE_ANSWER
        assert sim.store.read("holding_registers", 0, 2) == [0x1234, 0]


def test_fault_lose_writes_every_nth_write_only(profile):
    with simulator_with(profile, "lose-writes:every=2") as sim, RawClient(sim.host, sim.port) as client:
        for address, value in ((1, 0x11), (2, 0x22), (3, 0x33), (4, 0x44)):
            assert client.request(bytes([6, 0, address, 0, value])) == bytes([6, 0, address, 0, value])
        assert sim.store.read("holding_registers", 1, 4) == [0x11, 0, 0x33, 0]


def test_fault_exception_for_one_function_code(profile):
    with simulator_with(profile, "exception=4:fc=16") as sim, RawClient(sim.host, sim.port) as client:
        assert client.request(READ_ONE) == READ_ONE_ANSWER
        assert client.request(bytes.fromhex("1000000001020001")) == b"\x90\x04"


def test_fault_truncate(profile):
    with simulator_with(profile, "truncate") as sim, RawClient(sim.host, sim.port) as client:
        client.send(frame(READ_ONE, tid=3))
        assert client.recv_all_until_quiet() == frame(READ_ONE_ANSWER, tid=3)[:-1]


def test_fault_close_mid_reply(profile):
    with simulator_with(profile, "close-mid-reply") as sim:
        with RawClient(sim.host, sim.port) as client:
            client.send(frame(READ_ONE, tid=3) + frame(READ_ONE, tid=4))
            assert client.recv_all_until_quiet(TIMEOUT) == frame(READ_ONE_ANSWER, tid=3)[:5]
            assert client.is_closed_by_peer()


def test_fault_close_mid_reply_after_a_delay(profile):
    with simulator_with(profile, "close-mid-reply:every=2", "delay=100") as sim:
        with RawClient(sim.host, sim.port) as client:
            client.send(frame(READ_ONE, tid=1) + frame(READ_ONE, tid=2))
            expected = frame(READ_ONE_ANSWER, tid=1) + frame(READ_ONE_ANSWER, tid=2)[:5]
            assert client.recv_all_until_quiet(TIMEOUT) == expected
            assert client.is_closed_by_peer()


def test_several_faults_at_once_with_filters(profile):
    with simulator_with(profile, "wrong-tid", "wrong-unit:fc=4", "exception=2:fc=3:every=3") as sim:
        with RawClient(sim.host, sim.port) as client:
            read_input = bytes.fromhex("0400000001")
            client.send(b"".join(frame(READ_ONE, tid=t) for t in (10, 20, 30)) + frame(read_input, tid=40))
            answers = [client.read_adu() for _ in range(4)]
    assert answers[0] == (11, 0, 5, 1, READ_ONE_ANSWER)
    assert answers[1] == (21, 0, 5, 1, READ_ONE_ANSWER)
    assert answers[2] == (31, 0, 3, 1, b"\x83\x02")
    assert answers[3] == (41, 0, 5, 2, b"\x04\x02\x00\x00")


def test_simulator_accepts_fault_texts(profile):
    simulator = ModbusSimulator(profile, faults=["delay=5:fc=3"])
    assert [str(f) for f in simulator.faults] == ["delay=5:fc=3"]


# =========================================================================== command line


def _start_cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-m", "simulators.modbus", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _first_line(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the simulator printed nothing in time"
    return proc.stdout.readline()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_its_address_serves_and_stops_cleanly(stop_signal):
    proc = _start_cli(str(example_profile_path()), "--fault", "delay=1:fc=4")
    try:
        line = _first_line(proc)
        match = re.fullmatch(r"listening on modbus\+tcp://127\.0\.0\.1:(\d+)\n", line)
        assert match, line
        with RawClient("127.0.0.1", int(match.group(1))) as client:
            assert client.request(bytes.fromhex("0300000001"))[:2] == b"\x03\x02"
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""  # exactly one line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fault", "slow"], "unknown fault 'slow'"),
        (["--port", "0"], None),
    ],
)
def test_cli_rejects_bad_input_with_status_2(tmp_path, args, message):
    profile_arg = str(example_profile_path()) if message else str(tmp_path / "missing.yaml")
    proc = _start_cli(profile_arg, *args)
    try:
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert (message or "cannot read the profile") in err
