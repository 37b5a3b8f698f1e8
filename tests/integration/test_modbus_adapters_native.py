"""The native and JavaScript Modbus client adapters (libmodbus via ctypes; modbus-serial and
jsmodbus via the node bridge) against the bundled simulator on loopback.

Every test runs once per stack, made through `harness.adapters.registry.make_client`, as the
matrix uses it: reads give the profile's values, writes read back, the simulator's exception
answers arrive as `ModbusException` with the exact code, the misbehaving simulator (`faults=`)
gives the mapped error types within the timeout, and an operation a stack lacks raises
`Unsupported`.  Where a stack does something the test says it should not, the test stays as
it should be and is marked `xfail(strict=True, reason="finding: ...")`: the day the stack is
fixed, the test says so.  The node bridge itself is checked too: a killed or hung node process
gives a clean error, a bad input line an error reply, and no node process outlives `close()`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from harness.adapters.errors import (
    AdapterError,
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    ModbusException,
    Timeout,
    Unsupported,
)
from harness.adapters.registry import make_client
from harness.codec.modbus.constants import Table
from harness.profile import encode_point, example_profile_path, load_profile

PROFILE = load_profile(example_profile_path())
UNIT = PROFILE.modbus.unit_id
STACKS = ["libmodbus", "modbus-serial", "jsmodbus"]
NODE_STACKS = ["modbus-serial", "jsmodbus"]
TIMEOUT = 2.0  # normal operations (generous: a loaded machine must not flake)
FAULT_TIMEOUT = 0.5  # tests that wait for a timeout
# what each stack lacks (the adapter raises Unsupported)
LACKS = {"libmodbus": {"read_device_identification"}, "jsmodbus": {"mask_write_register", "read_write_registers"}}


def _finding(stack: str, reason: str):
    """The stack's parameter, marked as a known wrong behaviour of that stack."""
    return pytest.param(stack, marks=pytest.mark.xfail(strict=True, reason=f"finding: {reason}"))


def _make(stack: str):
    try:
        return make_client(stack)
    except AdapterError as exc:  # NotInstalled: say how to install, do not fail the suite
        pytest.skip(f"{stack}: {exc}")


@pytest.fixture(scope="module")
def simulator():
    """One simulator for the module: tests write only inside the profile's writable ranges,
    each stack at its own addresses, so they do not disturb each other."""
    from simulators.modbus.server import start_in_thread

    with start_in_thread(PROFILE) as sim:
        yield sim


@pytest.fixture
def faulty():
    """Starts a simulator with the given faults (and profile); stops every one at the end."""
    from simulators.modbus.server import start_in_thread

    started = []

    def start(*faults: str, profile=PROFILE):
        sim = start_in_thread(profile, faults=list(faults))
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture(scope="module", params=STACKS)
def stack(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def client(stack, simulator):
    """One client per stack for the module (for the JS stacks: one node process)."""
    c = _make(stack)
    c.connect(simulator.host, simulator.port, unit=UNIT, timeout=TIMEOUT)
    yield c
    c.close()


def base(stack: str, table: str) -> int:
    """A writable test address of its own for each stack (profile: coils 2000.., holding 200..)."""
    writable = PROFILE.modbus.writable[Table(table)]
    return writable.start + STACKS.index(stack) * 40


def closed_port() -> int:
    """A loopback port nobody listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect_to(stack: str, sim, timeout: float = FAULT_TIMEOUT):
    c = _make(stack)
    c.connect(sim.host, sim.port, unit=UNIT, timeout=timeout)
    return c


def expect_supported(stack: str, op: str, call, *args):
    """Call an operation; where the stack lacks it, assert it says so with Unsupported."""
    if op in LACKS.get(stack, ()):
        with pytest.raises(Unsupported):
            call(*args)
        return None
    return call(*args)


def group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# --------------------------------------------------------------------------- identity


def test_name_and_version(stack):
    c = _make(stack)
    assert c.name == stack
    expected = {"libmodbus": "3.1.6", "modbus-serial": "8.0.25", "jsmodbus": "5.0.0"}[stack]
    assert c.version == expected


# --------------------------------------------------------------------------- reads


READERS = {
    Table.COILS: "read_coils",
    Table.DISCRETE_INPUTS: "read_discrete_inputs",
    Table.HOLDING_REGISTERS: "read_holding_registers",
    Table.INPUT_REGISTERS: "read_input_registers",
}


@pytest.mark.parametrize("point", PROFILE.points, ids=lambda p: p.name)
def test_read_point_gives_profile_value(client, point):
    words = getattr(client, READERS[point.table])(point.address, point.size)
    expected = encode_point(point, point.value)
    if point.table.is_bit:
        assert words == [bool(v) for v in expected]
    else:
        assert words == expected


def test_read_results_have_exact_types_and_length(client):
    coils = client.read_coils(0, 23)  # not a multiple of 8: the stack's padding must not show
    assert len(coils) == 23 and all(type(b) is bool for b in coils)
    assert [i for i, b in enumerate(coils) if b] == [0, 2, 19, 21, 22]
    assert client.read_discrete_inputs(0, 3) == [True, False, True]
    registers = client.read_input_registers(0, 13)
    assert len(registers) == 13 and all(type(v) is int and 0 <= v <= 0xFFFF for v in registers)
    assert registers[10] == 5000 and registers[11] == 0xFFF4  # frequency, temperature -12


def test_read_largest_quantities(client):
    # the spec's maxima (§6.1-6.4): 2000 bits, 125 registers in one request
    assert len(client.read_coils(0, 2000)) == 2000
    assert len(client.read_discrete_inputs(0, 2000)) == 2000
    assert client.read_holding_registers(0, 125)[0] == 100  # ct_ratio
    assert client.read_input_registers(0, 125)[10] == 5000


# --------------------------------------------------------------------------- writes


def test_write_coil_reads_back(client, stack):
    address = base(stack, "coils")
    client.write_coil(address, True)
    assert client.read_coils(address, 1) == [True]
    client.write_coil(address, False)
    assert client.read_coils(address, 1) == [False]


def test_write_register_reads_back(client, stack):
    address = base(stack, "holding_registers")
    client.write_register(address, 0xBEEF)
    assert client.read_holding_registers(address, 1) == [0xBEEF]


def test_write_coils_reads_back(client, stack):
    address = base(stack, "coils") + 1
    values = [True, False, True, True, False, False, True, False, True, True]  # 10: crosses a byte
    client.write_coils(address, values)
    assert client.read_coils(address, len(values)) == values


def test_write_registers_reads_back(client, stack):
    address = base(stack, "holding_registers") + 1
    values = [0, 1, 0x7FFF, 0x8000, 0xFFFF]
    client.write_registers(address, values)
    assert client.read_holding_registers(address, len(values)) == values


def test_mask_write_register(client, stack):
    address = base(stack, "holding_registers") + 10
    client.write_register(address, 0x0012)
    # Application Protocol V1.1b3 §6.16 example: 0x12 AND 0xF2 OR 0x25 -> 0x17
    expect_supported(stack, "mask_write_register", client.mask_write_register, address, 0x00F2, 0x0025)
    expected = 0x0012 if "mask_write_register" in LACKS.get(stack, ()) else 0x0017
    assert client.read_holding_registers(address, 1) == [expected]


def test_read_write_registers(client, stack):
    address = base(stack, "holding_registers") + 20
    client.write_registers(address, [1, 1, 1, 1])
    # the write happens before the read (§6.17): reading the written range gives the new values
    result = expect_supported(stack, "read_write_registers", client.read_write_registers, address, 4, address + 1, [7, 8])
    if result is not None:
        assert result == [1, 7, 8, 1]
        assert client.read_holding_registers(address, 4) == [1, 7, 8, 1]


# --------------------------------------------------------------------------- exceptions


@pytest.mark.parametrize(
    "call, args, fc",
    [
        ("read_holding_registers", (400, 1), 3),  # one past the 400 holding registers
        ("read_holding_registers", (399, 2), 3),  # starts inside, ends outside
        ("read_input_registers", (300, 1), 4),
        ("read_coils", (4000, 1), 1),
        ("read_discrete_inputs", (1999, 2), 2),
        ("write_register", (400, 1), 6),
        ("write_coil", (4000, True), 5),
        ("write_registers", (399, [1, 2]), 16),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_illegal_address_is_exception_2(client, call, args, fc):
    with pytest.raises(ModbusException) as info:
        getattr(client, call)(*args)
    assert info.value.code == 2
    assert info.value.function_code == fc


@pytest.mark.parametrize("call", ["read_holding_registers", "read_input_registers", "read_coils", "read_discrete_inputs"])
def test_illegal_quantity_is_exception_3(client, call):
    # quantity 0 is outside 1..125 / 1..2000 (§6.1-6.4); every stack sends it as asked
    with pytest.raises(ModbusException) as info:
        getattr(client, call)(0, 0)
    assert info.value.code == 3


def test_quantity_over_the_limit(client, stack):
    """126 registers: libmodbus refuses before sending (a plain AdapterError, not an answer of
    the device); the JS stacks send it and the simulator answers exception 03."""
    with pytest.raises(AdapterError) as info:
        client.read_holding_registers(0, 126)
    if stack == "libmodbus":
        assert not isinstance(info.value, ModbusException)
        assert "before sending" in str(info.value)
    else:
        assert isinstance(info.value, ModbusException) and info.value.code == 3
    assert client.read_holding_registers(0, 1) == [100]  # the connection is still usable


# --------------------------------------------------------------------------- FC43


def _device_objects(read_code: int) -> dict[int, bytes]:
    last = {1: 0x02, 2: 0x7F, 3: 0xFF}[read_code]
    return {oid: value.encode("utf-8") for oid, value in PROFILE.device_id_objects().items() if oid <= last}


@pytest.mark.parametrize("read_code", [1, 2])
def test_read_device_identification_stream(client, stack, read_code):
    result = expect_supported(stack, "read_device_identification", client.read_device_identification, read_code, 0)
    if result is not None:
        assert result == _device_objects(read_code)


def test_read_device_identification_individual(client, stack):
    result = expect_supported(stack, "read_device_identification", client.read_device_identification, 4, 5)
    if result is not None:
        assert result == {5: PROFILE.device_id_objects()[5].encode("utf-8")}


def test_read_device_identification_missing_object_is_exception_2(client, stack):
    if "read_device_identification" in LACKS.get(stack, ()):
        pytest.skip(f"{stack} has no FC43 (checked by test_read_device_identification_stream)")
    with pytest.raises(ModbusException) as info:
        client.read_device_identification(4, 0x42)  # §6.21: an object the device lacks -> 02
    assert info.value.code == 2 and info.value.function_code == 43


@pytest.mark.parametrize(
    "stack_name",
    [
        _finding("modbus-serial", "FC43 object values are decoded with Buffer 'ascii', which clears the high bit of "
                 "every byte: request 2B 0E 04 06, object 06 = 5a c3 a4 68 6c 65 72 20 53 c3 bc 64 ('Zähler Süd') "
                 "comes back as 5a 43 24 68 6c 65 72 20 53 43 3c 64 ('ZC$hler SC<d'), silently"),
        "jsmodbus",
    ],
)
def test_read_device_identification_non_ascii_bytes(faulty, stack_name):
    """Object values are octet strings (§6.21): the bytes must arrive unchanged."""
    profile = dataclasses.replace(PROFILE, device={**PROFILE.device, "user_application_name": "Zähler Süd"})
    sim = faulty(profile=profile)
    c = connect_to(stack_name, sim, TIMEOUT)
    try:
        assert c.read_device_identification(4, 6) == {6: "Zähler Süd".encode("utf-8")}
    finally:
        c.close()


# long identification strings: the regular stream needs several responses ("more follows", §6.21)
LONG_ID_PROFILE = dataclasses.replace(
    PROFILE, device={**PROFILE.device, "product_name": "P" * 200, "model_name": "M" * 200, "user_application_name": "U" * 150}
)


@pytest.mark.parametrize("stack_name", NODE_STACKS)
def test_read_device_identification_follows_more_follows(faulty, stack_name):
    sim = faulty(profile=LONG_ID_PROFILE)
    c = connect_to(stack_name, sim, TIMEOUT)
    try:
        expected = {oid: v.encode("utf-8") for oid, v in LONG_ID_PROFILE.device_id_objects().items() if oid <= 0x7F}
        assert c.read_device_identification(2, 0) == expected
    finally:
        c.close()


@pytest.mark.parametrize(
    "stack_name",
    [
        _finding("modbus-serial", "when the follow-up request of an FC43 stream gets an exception answer "
                 "(2B 0E 02 04 -> AB 04), the library's callback throws TypeError \"Cannot read properties of undefined "
                 "(reading 'data')\" asynchronously (uncaught: it ends a plain application) instead of reporting "
                 "exception 04, and the unconsumed frame wedges the connection: the next read throws again"),
        "jsmodbus",
    ],
)
def test_read_device_identification_follow_up_exception(faulty, stack_name):
    sim = faulty("exception=4:fc=43:every=2", profile=LONG_ID_PROFILE)  # the 2nd FC43 request fails
    c = connect_to(stack_name, sim, TIMEOUT)
    try:
        with pytest.raises(ModbusException) as info:
            c.read_device_identification(2, 0)
        assert info.value.code == 4
        assert c.read_holding_registers(0, 1) == [100]  # the connection is still usable
    finally:
        c.close()


# --------------------------------------------------------------------------- connection errors


def warm(stack: str, simulator):
    """A client that has connected once (for the JS stacks: its node process is running, so
    what is timed next is the connect, not node's start-up)."""
    c = _make(stack)
    c.connect(simulator.host, simulator.port, unit=UNIT, timeout=TIMEOUT)
    return c


def test_connect_to_closed_port_fails_within_timeout(stack, simulator):
    c = warm(stack, simulator)
    t0 = time.monotonic()
    try:
        with pytest.raises(ConnectFailed):
            c.connect("127.0.0.1", closed_port(), unit=UNIT, timeout=TIMEOUT)
        assert time.monotonic() - t0 < TIMEOUT  # refused at once, not waited out
    finally:
        c.close()


def test_connect_that_never_completes_fails_within_timeout(stack, simulator):
    # a listener with a full accept queue: Linux drops further SYNs, the connect hangs
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        pending = []
        try:
            for _ in range(3):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                pending.append(s)
            c = warm(stack, simulator)
            t0 = time.monotonic()
            try:
                with pytest.raises(ConnectFailed):
                    c.connect("127.0.0.1", port, unit=UNIT, timeout=FAULT_TIMEOUT)
                assert time.monotonic() - t0 < FAULT_TIMEOUT + 1.0
            finally:
                c.close()
        finally:
            for s in pending:
                s.close()


def test_no_reply_is_timeout(faulty, stack):
    sim = faulty("no-reply")
    c = connect_to(stack, sim)
    try:
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            c.read_holding_registers(0, 1)
        assert time.monotonic() - t0 < FAULT_TIMEOUT + 1.0
    finally:
        c.close()


@pytest.mark.parametrize(
    "stack_name",
    [
        "libmodbus",
        _finding("modbus-serial", "the peer closing the connection mid-reply does not fail the pending request: "
                 "FC3 read 0 x4 (tid 1) answered by 00 01 00 00 00 0b 01 03 then FIN -> TransactionTimedOutError "
                 "only after the full timeout (ModbusRTU emits 'close' at once)"),
        "jsmodbus",
    ],
)
def test_close_mid_reply_is_connection_lost_or_bad_response(faulty, stack_name):
    sim = faulty("close-mid-reply")
    c = connect_to(stack_name, sim)
    try:
        with pytest.raises((ConnectionLost, BadResponse)):
            c.read_holding_registers(0, 4)
        with pytest.raises(ConnectionLost):  # and the connection stays gone
            c.read_holding_registers(0, 4)
    finally:
        c.close()


# What each stack does with a response whose MBAP transaction id is the request's + 1:
# libmodbus and jsmodbus reject it at once; modbus-serial drops it (no transaction with that
# id is pending) and the request runs into its timeout.  Raising at all is the requirement.
WRONG_TID = {"libmodbus": BadResponse, "modbus-serial": Timeout, "jsmodbus": BadResponse}


def test_wrong_transaction_id_raises(faulty, stack, record_property):
    sim = faulty("wrong-tid")
    c = connect_to(stack, sim)
    try:
        with pytest.raises(AdapterError) as info:
            c.read_holding_registers(0, 4)
        record_property("wrong_tid_outcome", f"{type(info.value).__name__}: {info.value}")
        assert not isinstance(info.value, ModbusException)
        assert type(info.value) is WRONG_TID[stack]
    finally:
        c.close()


# --------------------------------------------------------------------------- not installed


@pytest.mark.parametrize("stack_name", NODE_STACKS)
def test_missing_npm_package_is_not_installed(monkeypatch, tmp_path, stack_name):
    from harness.adapters.errors import NotInstalled

    monkeypatch.setenv("HARNESS_NODE_MODULES", str(tmp_path))
    with pytest.raises(NotInstalled, match="install-node-packages.sh"):
        make_client(stack_name)


def test_missing_node_is_not_installed(monkeypatch, tmp_path):
    from harness.adapters.errors import NotInstalled

    monkeypatch.setenv("HARNESS_NODE", str(tmp_path / "no-node"))
    with pytest.raises(NotInstalled, match="install-node-packages.sh"):
        make_client("jsmodbus")


def test_missing_libmodbus_is_not_installed(monkeypatch):
    import ctypes

    from harness.adapters import libmodbus_client
    from harness.adapters.errors import NotInstalled

    def no_library(*args, **kwargs):
        raise OSError("libmodbus.so.5: cannot open shared object file")

    monkeypatch.setattr(libmodbus_client, "_lib", None)
    monkeypatch.setattr(ctypes, "CDLL", no_library)
    with pytest.raises(NotInstalled, match="libmodbus5"):
        make_client("libmodbus")


# --------------------------------------------------------------------------- node bridge


@pytest.mark.parametrize("stack_name", NODE_STACKS)
def test_close_leaves_no_node_process(simulator, stack_name):
    c = connect_to(stack_name, simulator, TIMEOUT)
    pid = c.pid
    assert pid is not None and not group_gone(pid)
    assert c.read_holding_registers(0, 1) == [100]
    c.close()
    assert group_gone(pid)
    c.close()  # twice is harmless


@pytest.mark.parametrize("stack_name", NODE_STACKS)
def test_killed_node_process_is_connection_lost(faulty, stack_name):
    sim = faulty("delay=3000")  # the request is in flight when node dies
    c = connect_to(stack_name, sim, timeout=5.0)
    pid = c.pid
    killer = threading.Timer(0.3, os.killpg, (pid, signal.SIGKILL))
    killer.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(ConnectionLost) as info:
            c.read_holding_registers(0, 1)
        assert time.monotonic() - t0 < 2.5  # noticed at once, not after the 3 s delay / 5 s timeout
        assert "died" in str(info.value)
        assert group_gone(pid)
        with pytest.raises(ConnectionLost):  # no bridge any more until the next connect
            c.read_holding_registers(0, 1)
    finally:
        killer.cancel()
        c.close()


def test_hung_node_process_is_timeout_and_killed(simulator):
    from harness.adapters.node_bridge import NodeBridge

    bridge = NodeBridge("jsmodbus").start()
    pid = bridge.pid
    try:
        os.kill(pid, signal.SIGSTOP)  # hangs: reads nothing, answers nothing
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            bridge.call("hello", {}, 0.3)
        assert time.monotonic() - t0 < 2.0
        assert group_gone(pid)
    finally:
        bridge.close()


def test_bridge_answers_bad_lines_with_errors():
    from harness.adapters.node_bridge import SCRIPT, node_binary, node_modules_dir

    proc = subprocess.Popen(
        [node_binary(), str(SCRIPT), "jsmodbus", "--node-modules", str(node_modules_dir())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        lines = b'not json\n[1, 2]\n{"id": 7, "op": "no_such_op"}\n{"id": 8, "op": "read_coils", "args": {}}\n{"id": 9, "op": "hello"}\n'
        out, _ = proc.communicate(lines, timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    replies = [json.loads(line) for line in out.decode().splitlines()]
    assert [r["id"] for r in replies] == [None, None, 7, 8, 9]
    assert [r["ok"] for r in replies] == [False, False, False, False, True]
    assert replies[2]["error"]["kind"] == "unsupported"
    assert replies[3]["error"]["kind"] == "closed"  # not connected
    assert replies[4]["result"]["stack"] == "jsmodbus" and replies[4]["result"]["version"] == "5.0.0"
    assert proc.returncode == 0  # stdin closed -> clean exit
