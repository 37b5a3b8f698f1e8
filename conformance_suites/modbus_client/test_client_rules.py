"""What a Modbus TCP client must do with what it receives, and must not send.

Each case runs for every client stack (`MBC-...-<stack>`) against the bundled simulator with a
planted fault.  A stack that returns data it should have refused FAILs; refusing (any adapter
error) passes, since the rules say what must not be delivered, not which error to raise.
"""

from __future__ import annotations

from harness.adapters.errors import AdapterError, ModbusException, Unsupported
from harness.codec.modbus.constants import Table
from harness.conformance import fail, not_applicable

from .support import AP, IG, rule


def _point(case, table: Table):
    for p in case.profile.points:
        if p.table is table and p.type == "uint16" and p.value is not None:
            return p
    not_applicable(f"the profile has no uint16 point in {table.value}")


def _refused(case, faults: tuple[str, ...], rule_text: str) -> None:
    client = case.client(*faults)
    point = _point(case, Table.INPUT_REGISTERS)
    got, error = case.attempt(f"read_input_registers({point.address}, 1) with {', '.join(faults)}",
                              client.read_input_registers, point.address, 1)
    if error is None:
        fail(f"the client returned {got!r} from a response it must refuse", expected=rule_text, observed=f"data {got!r}")


@rule("MBC-TID", "A response with another transaction id is not taken as the answer",
      requirements=["MBC-3.1.3-TID"], clause=f"{IG} §3.1.3, §4.4.1")
def test_wrong_transaction_id(client_case):
    _refused(client_case, ("wrong-tid",), "an error (the response carries another transaction id)")


@rule("MBC-UID", "A response with another unit id is not taken as the answer",
      requirements=["MBC-3.1.3-UID"], clause=f"{IG} §3.1.3, §4.4.1")
def test_wrong_unit_id(client_case):
    _refused(client_case, ("wrong-unit",), "an error (the response carries another unit id)")


@rule("MBC-TRUNCATED", "A truncated response is rejected",
      requirements=["MBC-3.1.3-FRAMING"], clause=f"{IG} §3.1.3")
def test_truncated_response(client_case):
    _refused(client_case, ("truncate",), "an error (the response is one byte short)")


@rule("MBC-LENGTH", "A response whose MBAP length does not match its bytes is rejected",
      requirements=["MBC-3.1.3-FRAMING"], clause=f"{IG} §3.1.3")
def test_wrong_length(client_case):
    _refused(client_case, ("wrong-length",), "an error (the MBAP length says one byte more than follows)")


@rule("MBC-EXCEPTION", "An exception response reaches the caller with its code",
      requirements=["MBC-7-EXCEPTION"], clause=f"{AP} §7")
def test_exception_code(client_case):
    client = client_case.client("exception=4")
    point = _point(client_case, Table.HOLDING_REGISTERS)
    got, error = client_case.attempt(f"read_holding_registers({point.address}, 1) answered 83 04",
                                     client.read_holding_registers, point.address, 1)
    if error is None:
        fail("an exception response was returned as data", expected="ModbusException 04", observed=f"data {got!r}")
    if not isinstance(error, ModbusException) or error.code != 4:
        fail(f"the exception reached the caller as {type(error).__name__}: {error}", expected="ModbusException with code 04",
             observed=f"{type(error).__name__}: {error}")


@rule("MBC-LATE", "A response after the timeout is not delivered to the next request",
      requirements=["MBC-4.4.1-LATE"], clause=f"{IG} §4.4.1")
def test_late_response(client_case):
    # Every 2nd FC04 request is answered 1.5 s late, after the client's 1 s timeout (the
    # readiness probe reads with FC03, so the count is the client's alone).
    client = client_case.client("delay=1500:fc=4:every=2", fresh=True)
    points = [p for p in client_case.profile.points if p.table is Table.INPUT_REGISTERS and p.type in ("uint16", "int16")]
    if len(points) < 2:
        not_applicable("the profile needs two 16-bit input register points with different values")
    first, second = points[0], points[1]
    client_case.attempt(f"read_input_registers({first.address}, 1)", client.read_input_registers, first.address, 1)
    _, error = client_case.attempt(f"read_input_registers({first.address}, 1), answered late",
                                   client.read_input_registers, first.address, 1)
    if error is None:
        fail("the late answer was delivered within the timeout", expected="a timeout (the answer comes 1.5 s late)",
             observed="data within 1 s")
    got, error = client_case.attempt(f"read_input_registers({second.address}, 1)", client.read_input_registers, second.address, 1)
    if error is None and got is not None and list(got) != [second.value & 0xFFFF]:
        fail("the late answer to the previous request was delivered as this one's",
             expected=f"[{second.value & 0xFFFF}] ({second.name})", observed=f"{list(got)}")


@rule("MBC-RECONNECT", "A dropped connection is reported, and the client connects again",
      requirements=["MBC-4.2-RECONNECT"], clause=f"{IG} §4.2.1, §4.2.2")
def test_reconnect(client_case):
    client = client_case.client("close-mid-reply")
    point = _point(client_case, Table.INPUT_REGISTERS)
    got, error = client_case.attempt("read while the server drops the connection mid-reply", client.read_input_registers, point.address, 1)
    if error is None:
        fail("a reply cut off by a closed connection was returned as data", expected="an error", observed=f"data {got!r}")
    again = client_case.client()
    got, error = client_case.attempt("read on a new connection to a working server", again.read_input_registers, point.address, 1)
    if error is not None:
        fail(f"the client could not be served after reconnecting: {error}", expected=f"[{point.value}]", observed=str(error))


def _broken_requests(client_case, requirement: str) -> list[str]:
    """The requests the relay saw the client send that break an observation rule (MBO-*)."""
    from conformance_suites.modbus_observe.rules import RULES

    broken = []
    for r in client_case.requests():
        if why := RULES[requirement](r, client_case.profile.modbus):
            broken.append(why if r.frame.summary in why else f"{r.frame.summary}: {why}")
    return broken


@rule("MBC-LIMITS", "Requests beyond the quantity limits are never sent",
      requirements=["MBC-AP-LIMITS"], clause=f"{AP} §4.1, §6.1, §6.3, §6.11, §6.12")
def test_quantity_limits(client_case):
    client = client_case.client()
    regs = client_case.profile.modbus.tables[Table.HOLDING_REGISTERS]
    coils = client_case.profile.modbus.tables[Table.COILS]
    writable_regs = client_case.profile.modbus.writable.get(Table.HOLDING_REGISTERS, regs)
    writable_coils = client_case.profile.modbus.writable.get(Table.COILS, coils)
    for what, fn, args in (
        ("read 126 registers", client.read_holding_registers, (regs.start, 126)),
        ("read 2001 coils", client.read_coils, (coils.start, 2001)),
        ("write 124 registers", client.write_registers, (writable_regs.start, [0] * 124)),
        ("write 1969 coils", client.write_coils, (writable_coils.start, [False] * 1969)),
    ):
        client_case.attempt(what, fn, *args)
    # Judged on the wire: an over-limit request either breaks its quantity rule or, past 253
    # PDU bytes, cannot even be framed (an MBAP length above 254).
    sent = _broken_requests(client_case, "MBO-AP-LIMITS") + _broken_requests(client_case, "MBO-3.1.3-FRAME")
    if sent:
        fail(f"{len(sent)} over-limit request(s) were sent", expected="each refused by the client before sending",
             observed="; ".join(sent))


@rule("MBC-REQUESTS", "Every request sent is a well-formed frame with a unique transaction id",
      requirements=["MBC-3.1.3-REQUEST-FRAME"], clause=f"{IG} §3.1.3, §4.4.1.2")
def test_requests_well_formed(client_case):
    """Each operation the stack offers, at the largest legal quantities, judged on the wire."""
    client = client_case.client()
    modbus = client_case.profile.modbus
    regs, coils = modbus.tables[Table.HOLDING_REGISTERS], modbus.tables[Table.COILS]
    w_regs, w_coils = modbus.writable.get(Table.HOLDING_REGISTERS, regs), modbus.writable.get(Table.COILS, coils)
    operations = [
        ("read 125 registers", "read_holding_registers", (regs.start, 125)),
        ("read 125 input registers", "read_input_registers", (modbus.tables[Table.INPUT_REGISTERS].start, 125)),
        ("read 2000 coils", "read_coils", (coils.start, 2000)),
        ("read 2000 discrete inputs", "read_discrete_inputs", (modbus.tables[Table.DISCRETE_INPUTS].start, 2000)),
        ("write 123 registers", "write_registers", (w_regs.start, list(range(123)))),
        ("write 1968 coils", "write_coils", (w_coils.start, [i % 3 == 0 for i in range(1968)])),
        ("write one register", "write_register", (w_regs.start, 0x1234)),
        ("write one coil", "write_coil", (w_coils.start, True)),
        ("mask write", "mask_write_register", (w_regs.start, 0xF2, 0x25)),
        ("read/write 121 registers", "read_write_registers", (regs.start, 125, w_regs.start, list(range(121)))),
    ]
    for what, name, args in operations:
        fn = getattr(client, name, None)
        if fn is not None:
            client_case.attempt(what, fn, *args)
    requests = client_case.requests()
    if not requests:
        fail("the client sent no request at all", expected="one request per operation", observed="nothing on the wire")
    broken = _broken_requests(client_case, "MBO-3.1.3-FRAME") + _broken_requests(client_case, "MBO-4.4.1.2-TID")
    if broken:
        fail(f"{len(broken)} of {len(requests)} request(s) are malformed or reuse an outstanding transaction id",
             expected="well-formed requests (TCP guide §3.1.3, the PDU layouts of AP §6)", observed="; ".join(broken))
