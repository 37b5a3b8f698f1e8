"""The four Python Modbus client adapters against the bundled simulator on loopback.

Every test runs once per stack, made through `harness.adapters.registry.make_client`, so what
is checked is the adapter as the matrix uses it: values read equal the profile's (as
`harness.profile.encode_point` produces them), writes read back, the simulator's exception
answers arrive as `ModbusException` with the exact code, and the misbehaving simulator
(`faults=`) gives the mapped error types within the timeout.  An operation a stack lacks is
skipped with the adapter's reason.  Where a stack does something wrong (returns an answer it
should have rejected), the test stays as it should be and is marked
`xfail(strict=True, reason="finding: ...")`, so the day the stack is fixed the test says so.
"""

from __future__ import annotations

import socket
import time
from importlib.metadata import version

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
STACKS = ["pymodbus", "modbus-tk", "umodbus", "pyModbusTCP"]
DISTRIBUTIONS = {"pymodbus": "pymodbus", "modbus-tk": "modbus_tk", "umodbus": "uModbus", "pyModbusTCP": "pyModbusTCP"}
TIMEOUT = 2.0  # normal operations (generous: a loaded CI machine must not flake)
FAULT_TIMEOUT = 0.5  # tests that wait for a timeout


def _finding(stack: str, reason: str, raises=pytest.fail.Exception):
    """The stack's parameter, marked as a known wrong behaviour of that stack.  `raises` is how
    the test fails for it (by default pytest's own failure: "DID NOT RAISE"); failing any other
    way is a real failure, not the finding."""
    return pytest.param(stack, marks=pytest.mark.xfail(strict=True, raises=raises, reason=f"finding: {reason}"))


@pytest.fixture(scope="module")
def simulator():
    """One simulator for the module: tests write only inside the profile's writable ranges,
    each stack at its own addresses, so they do not disturb each other."""
    from simulators.modbus.server import start_in_thread

    with start_in_thread(PROFILE) as sim:
        yield sim


@pytest.fixture
def faulty():
    """Starts a simulator with the given faults; stops every one at the end of the test."""
    from simulators.modbus.server import start_in_thread

    started = []

    def start(*faults: str):
        sim = start_in_thread(PROFILE, faults=list(faults))
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture(params=STACKS)
def stack(request) -> str:
    return request.param


@pytest.fixture
def client(stack, simulator):
    c = make_client(stack)
    c.connect(simulator.host, simulator.port, unit=PROFILE.modbus.unit_id, timeout=TIMEOUT)
    yield c
    c.close()


def base(stack: str, table: str) -> int:
    """A writable test address of its own for each stack (profile: coils 2000.., holding 200..)."""
    writable = PROFILE.modbus.writable[Table(table)]
    return writable.start + STACKS.index(stack) * 40


@pytest.fixture
def closed_port():
    """A loopback port nobody listens on: held bound (not listening) for the whole test, so no
    other test's server can take it meanwhile; a connect to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def connect_faulty(stack: str, sim, timeout: float = FAULT_TIMEOUT):
    c = make_client(stack)
    c.connect(sim.host, sim.port, unit=PROFILE.modbus.unit_id, timeout=timeout)
    return c


def unsupported_skips(call, *args):
    try:
        return call(*args)
    except Unsupported as exc:
        pytest.skip(f"{exc} ({exc.detail})" if exc.detail else str(exc))


# --------------------------------------------------------------------------- identity


def test_name_and_version(stack):
    c = make_client(stack)
    assert c.name == stack
    assert c.version == version(DISTRIBUTIONS[stack])


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
    assert coils[:3] == [True, False, True]
    assert [i for i, b in enumerate(coils) if b] == [0, 2, 19, 21, 22]
    inputs = client.read_discrete_inputs(0, 3)
    assert inputs == [True, False, True]
    registers = client.read_input_registers(0, 13)
    assert len(registers) == 13 and all(type(v) is int and 0 <= v <= 0xFFFF for v in registers)
    assert registers[10] == 5000 and registers[11] == 0xFFF4  # frequency, temperature -12


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
    unsupported_skips(client.mask_write_register, address, 0x00F2, 0x0025)
    assert client.read_holding_registers(address, 1) == [0x0017]


def test_read_write_registers(client, stack):
    address = base(stack, "holding_registers") + 20
    client.write_registers(address, [1, 1, 1, 1])
    # the write happens before the read (§6.17): reading the written range gives the new values
    result = unsupported_skips(client.read_write_registers, address, 4, address + 1, [7, 8])
    assert result == [1, 7, 8, 1]
    assert client.read_holding_registers(address, 4) == [1, 7, 8, 1]


# --------------------------------------------------------------------------- FC43 / MEI 14


def test_device_identification_streams(client):
    expected = {oid: value.encode() for oid, value in PROFILE.device_id_objects().items()}
    basic = unsupported_skips(client.read_device_identification, 1, 0)
    assert basic == {oid: expected[oid] for oid in (0, 1, 2)}
    regular = client.read_device_identification(2, 0)  # the profile claims the regular level
    assert regular == {oid: v for oid, v in expected.items() if oid <= 0x7F}


def test_device_identification_individual_access(client):
    one = unsupported_skips(client.read_device_identification, 4, 1)
    assert one == {1: PROFILE.device["product_code"].encode()}
    with pytest.raises(ModbusException) as info:
        client.read_device_identification(4, 0x50)  # an object the device does not hold
    assert (info.value.code, info.value.function_code) == (2, 43)


# --------------------------------------------------------------------------- exception answers


@pytest.mark.parametrize(
    "method, args, fc",
    [
        ("read_holding_registers", (400, 1), 3),
        ("read_input_registers", (299, 2), 4),
        ("read_coils", (4000, 1), 1),
        ("read_discrete_inputs", (1999, 2), 2),
        ("write_register", (400, 1), 6),
        ("write_coil", (4000, True), 5),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_illegal_address_gives_exception_02(client, method, args, fc):
    with pytest.raises(ModbusException) as info:
        getattr(client, method)(*args)
    assert (info.value.code, info.value.function_code) == (2, fc)
    assert client.read_holding_registers(0, 1) == [100]  # the connection is still usable


ILLEGAL_QUANTITIES = [
    ("read_holding_registers", (0, 126), 3),
    ("read_input_registers", (0, 0), 4),
    ("read_coils", (0, 2001), 1),
    ("write_coils", (2000, [False] * 1969), 15),  # 1969 > 1968, still a 253-byte PDU
    ("write_registers", (200, []), 16),  # 124 would not fit a 253-byte PDU: 0 is the one to try
]


def test_illegal_quantity_gives_exception_03(client):
    """Each request the stack agrees to send must come back as exception 03; a request the stack
    refuses to send is `Unsupported`; any returned value would be a wrong answer."""
    sent, refused = [], []
    for method, args, fc in ILLEGAL_QUANTITIES:
        try:
            result = getattr(client, method)(*args)
        except Unsupported as exc:
            refused.append(f"{method}: {exc.detail or exc}")
            continue
        except ModbusException as exc:
            assert (exc.code, exc.function_code) == (3, fc), method
            sent.append(method)
            continue
        pytest.fail(f"{method}{args[:1]} returned {result!r:.60} instead of raising")
    if not sent:
        pytest.skip("the stack refuses every illegal quantity before sending: " + "; ".join(refused))


def test_exception_code_is_passed_exactly(stack, faulty):
    sim = faulty("exception=6:fc=3", "exception=11:fc=4")
    c = connect_faulty(stack, sim, TIMEOUT)
    try:
        with pytest.raises(ModbusException) as info:
            c.read_holding_registers(0, 1)
        assert (info.value.code, info.value.function_code) == (6, 3)
        with pytest.raises(ModbusException) as info:
            c.read_input_registers(0, 1)
        assert (info.value.code, info.value.function_code) == (11, 4)
    finally:
        c.close()


@pytest.mark.parametrize(
    "stack",
    [
        "pymodbus",
        "modbus-tk",
        _finding(
            "umodbus",
            "umodbus raises KeyError(7) for the exception response 81 07 (its exception table has no 07: it "
            "stops at 01-06, 08, 0A, 0B), so the code is lost; the adapter can only report BadResponse",
            raises=BadResponse,
        ),
        "pyModbusTCP",
    ],
)
def test_exception_code_outside_the_spec_table_is_passed_exactly(stack, faulty):
    """07 (NEGATIVE ACKNOWLEDGE, from the older Modicon documents) is not in V1.1b3's table (§7),
    but an exception response is one whatever its code, and the client must say which."""
    c = connect_faulty(stack, faulty("exception=7:fc=1"), TIMEOUT)
    try:
        with pytest.raises(ModbusException) as info:
            c.read_coils(0, 1)
        assert (info.value.code, info.value.function_code) == (7, 1)
    finally:
        c.close()


# --------------------------------------------------------------------------- transport failures


def test_connect_to_closed_port_fails_fast(stack, closed_port):
    c = make_client(stack)
    start = time.monotonic()
    with pytest.raises(ConnectFailed) as info:
        c.connect("127.0.0.1", closed_port, timeout=FAULT_TIMEOUT)
    assert time.monotonic() - start < FAULT_TIMEOUT + 0.5
    assert str(info.value) and info.value.detail


def test_no_reply_times_out(stack, faulty):
    c = connect_faulty(stack, faulty("no-reply"))
    try:
        start = time.monotonic()
        with pytest.raises(Timeout):
            c.read_holding_registers(0, 2)
        elapsed = time.monotonic() - start
        assert FAULT_TIMEOUT * 0.8 <= elapsed < FAULT_TIMEOUT + 1.0
    finally:
        c.close()


def test_close_mid_reply_is_a_lost_connection(stack, faulty):
    c = connect_faulty(stack, faulty("close-mid-reply"))
    try:
        with pytest.raises((ConnectionLost, BadResponse)):
            c.read_holding_registers(0, 2)
    finally:
        c.close()


def test_late_answer_is_not_taken_for_the_next_request(stack, faulty):
    """FC03 answers 0.5 s late, after the 0.3 s timeout: the FC04 asked next must get its own
    answer, not the stale FC03 one (for umodbus this is the adapter's socket handling: it drops
    the connection after a timeout, since the stack cannot tell answers apart)."""
    c = connect_faulty(stack, faulty("delay=500:fc=3"), timeout=0.3)
    try:
        with pytest.raises(Timeout):
            c.read_holding_registers(0, 2)
        # wait until the late answer is surely in the socket (or dropped with it); a stack that
        # only drains before sending (modbus-tk) would otherwise race with its arrival
        time.sleep(0.7)
        assert c.read_input_registers(10, 2) == [5000, 0xFFF4]
    finally:
        c.close()


def test_server_gone(stack):
    from simulators.modbus.server import start_in_thread

    sim = start_in_thread(PROFILE)
    c = make_client(stack)
    try:
        c.connect(sim.host, sim.port, unit=PROFILE.modbus.unit_id, timeout=FAULT_TIMEOUT)
        assert c.read_holding_registers(0, 1) == [100]
        sim.stop()
        start = time.monotonic()
        with pytest.raises((ConnectionLost, ConnectFailed)):
            c.read_holding_registers(0, 1)
        with pytest.raises((ConnectionLost, ConnectFailed)):  # and again, once the stack knows
            c.read_holding_registers(0, 1)
        assert time.monotonic() - start < 2 * FAULT_TIMEOUT + 1.0
    finally:
        c.close()
        sim.stop()


UMODBUS_NO_MBAP_CHECK = "umodbus never compares the answer's MBAP header with the request's"


@pytest.mark.parametrize(
    "stack",
    [
        "pymodbus",  # skips the frame and waits: Timeout
        "modbus-tk",  # ModbusInvalidMbapError: BadResponse
        _finding("umodbus", f"{UMODBUS_NO_MBAP_CHECK}: FC03 0/2 answered with transaction id + 1 is returned as [100, 65535]"),
        "pyModbusTCP",  # 'MBAP checking error': BadResponse
    ],
)
def test_wrong_transaction_id_is_not_accepted(stack, faulty):
    c = connect_faulty(stack, faulty("wrong-tid"))
    try:
        with pytest.raises((BadResponse, Timeout)):
            c.read_holding_registers(0, 2)
    finally:
        c.close()


@pytest.mark.parametrize(
    "stack",
    [
        "pymodbus",
        "modbus-tk",
        _finding("umodbus", f"{UMODBUS_NO_MBAP_CHECK}: FC03 0/2 answered with unit id 2 instead of 1 is returned as [100, 65535]"),
        "pyModbusTCP",
    ],
)
def test_wrong_unit_id_is_not_accepted(stack, faulty):
    c = connect_faulty(stack, faulty("wrong-unit"))
    try:
        with pytest.raises((BadResponse, Timeout)):
            c.read_holding_registers(0, 2)
    finally:
        c.close()


def test_unit_id_is_sent(stack, simulator):
    """The simulator answers unit 1 only: a client on unit 2 must get no answer."""
    c = make_client(stack)
    c.connect(simulator.host, simulator.port, unit=2, timeout=FAULT_TIMEOUT)
    try:
        with pytest.raises(Timeout):
            c.read_holding_registers(0, 1)
    finally:
        c.close()


def test_errors_are_adapter_errors_only(stack):
    """Nothing of the stack's own leaves the adapter, even when used before connect()."""
    c = make_client(stack)
    with pytest.raises(AdapterError):
        c.read_holding_registers(0, 1)
