"""Normal operation of each claimed function code, with values checked against the profile.

Application Protocol V1.1b3 §6.1-§6.6, §6.11, §6.12, §6.16, §6.17; the device's point values
come from its profile (PICS-VALUES).  Writes touch only the profile's writable test addresses
and put the old values back.
"""

from __future__ import annotations

import time

import pytest

from harness.codec.modbus import pdu as P
from harness.codec.modbus.constants import COIL_OFF, COIL_ON, FunctionCode, Table
from harness.conformance import case, fail, not_applicable, param
from harness.profile import decode_point, same_point_value
from harness.transport.modbus_tcp import NoResponse

from .support import AP, READ_FC, past_end

FC = FunctionCode


@pytest.mark.parametrize(
    "table",
    [
        param(Table.COILS, id="MB-VALUES-COILS", title="Coil points hold the profile's values (FC01)",
              requirements=["PICS-VALUES", "MB-AP-6.1-RESPONSE", "MB-AP-4.4-ADDRESSING"], level="MUST", clause=f"{AP} §6.1"),
        param(Table.DISCRETE_INPUTS, id="MB-VALUES-DISCRETE-INPUTS", title="Discrete input points hold the profile's values (FC02)",
              requirements=["PICS-VALUES", "MB-AP-6.2-RESPONSE", "MB-AP-4.4-ADDRESSING"], level="MUST", clause=f"{AP} §6.2"),
        param(Table.HOLDING_REGISTERS, id="MB-VALUES-HOLDING-REGISTERS", title="Holding register points hold the profile's values (FC03)",
              requirements=["PICS-VALUES", "MB-AP-6.3-RESPONSE", "MB-AP-4.4-ADDRESSING"], level="MUST", clause=f"{AP} §6.3"),
        param(Table.INPUT_REGISTERS, id="MB-VALUES-INPUT-REGISTERS", title="Input register points hold the profile's values (FC04)",
              requirements=["PICS-VALUES", "MB-AP-6.4-RESPONSE", "MB-AP-4.4-ADDRESSING"], level="MUST", clause=f"{AP} §6.4"),
    ],
)
def test_point_values(dut, table):
    dut.require(READ_FC[table])
    points = [p for p in dut.profile.points_in(table) if p.value is not None]
    if not points:
        not_applicable(f"the profile states no values for {table.value} points")
    conn = dut.connect()
    wrong = []
    for point in points:
        if table.is_bit:
            observed = dut.read_bits(table, point.address, 1, conn)[0]
        else:
            observed = decode_point(point, dut.read_words(table, point.address, point.size, conn))
        if not same_point_value(point, point.value, observed):
            wrong.append(f"{point.name} @{point.address} ({point.type}, {point.word_order} word order): "
                         f"expected {point.value!r}, read {observed!r}")
    if wrong:
        fail(f"{len(wrong)} of {len(points)} points differ from the profile", expected="values as in the profile",
             observed="; ".join(wrong))


@case("MB-FC01-PACKING", "FC01 packs coils LSB-first and pads the last byte with zeros",
      requirements=["MB-AP-6.1-RESPONSE"], level="MUST", clause=f"{AP} §6.1")
def test_coil_bit_packing(dut):
    dut.require(FC.READ_COILS)
    extent = dut.table(Table.COILS)
    known = {p.address: p.value for p in dut.profile.points_in(Table.COILS) if p.value is not None}
    # A window of 19 coils (the spec's example size: three bytes, five padding bits) that
    # holds as many known coils as possible.
    def known_in_window(first: int) -> int:
        return sum(1 for a in known if first <= a < first + 19)

    start = max(known, key=known_in_window, default=extent.start)
    start = max(extent.start, min(start, extent.last - 18))  # keep the window inside the table
    qty = min(19, extent.count)
    answer = dut.expect_normal(dut.read(Table.COILS, start, qty), P.ReadCoilsResponse, "a valid read")
    if len(answer.data) != (qty + 7) // 8:
        fail(f"byte count {len(answer.data)} for {qty} coils", expected=f"{(qty + 7) // 8} bytes")
    padding = answer.data[-1] >> (qty % 8) if qty % 8 else 0
    if padding:
        fail("the unused high bits of the last byte are not zero", expected="zero padding",
             observed=f"last byte 0x{answer.data[-1]:02X}")
    bits = answer.bits(qty)
    for offset, bit in enumerate(bits):
        address = start + offset
        if address in known and bit != known[address]:
            fail(f"coil {address} reads {bit}, the profile says {known[address]} (is the packing MSB-first?)",
                 expected=f"coil {address} = {known[address]}", observed=f"data {answer.data.hex(' ')}")


@pytest.mark.writes
@case("MB-FC05-WRITE", "FC05 sets and clears a coil and echoes the request",
      requirements=["MB-AP-6.5-RESPONSE"], level="MUST", clause=f"{AP} §6.5")
def test_write_single_coil(dut):
    dut.require(FC.WRITE_SINGLE_COIL)
    address = dut.writable(Table.COILS).start + 1
    conn = dut.connect()
    for value, state in ((COIL_ON, True), (COIL_OFF, False)):
        request = P.WriteSingleCoilRequest(address, value)
        answer = dut.expect_normal(dut.transact(request, conn), P.WriteSingleCoilResponse, "a valid write")
        if (answer.address, answer.value) != (address, value):
            fail("the response is not an echo of the request", expected=f"address {address} value 0x{value:04X}",
                 observed=f"address {answer.address} value 0x{answer.value:04X}")
        if dut.mb.claims(FC.READ_COILS) and dut.read_bits(Table.COILS, address, 1, conn)[0] != state:
            fail(f"coil {address} does not read back {state} after FC05")


@case("MB-FC05-VALUE", "FC05 with value 0x1234 (neither 0xFF00 nor 0x0000) is refused with exception 03",
      requirements=["MB-AP-6.5-VALUE"], level="MUST", clause=f"{AP} §6.5")
def test_write_single_coil_bad_value(dut):
    dut.require(FC.WRITE_SINGLE_COIL)
    area = dut.writable(Table.COILS)
    dut.expect_exception(dut.transact(P.WriteSingleCoilRequest(area.start, 0x1234)), 0x03, "the value must be 0xFF00 or 0x0000")


@pytest.mark.parametrize(
    "fc",
    [
        param(FC.WRITE_SINGLE_COIL, id="MB-FC05-ADDR", title="FC05 to the coil past the table's end is refused with exception 02",
              requirements=["MB-AP-6.5-ADDR"], level="MUST", clause=f"{AP} §6.5"),
        param(FC.WRITE_SINGLE_REGISTER, id="MB-FC06-ADDR", title="FC06 to the register past the table's end is refused with exception 02",
              requirements=["MB-AP-6.6-ADDR"], level="MUST", clause=f"{AP} §6.6"),
        param(FC.MASK_WRITE_REGISTER, id="MB-FC22-ADDR", title="FC22 to the register past the table's end is refused with exception 02",
              requirements=["MB-AP-6.16-ADDR"], level="MUST", clause=f"{AP} §6.16"),
        param(FC.WRITE_MULTIPLE_COILS, id="MB-FC15-ADDR", title="FC15 crossing the table's end is refused with exception 02",
              requirements=["MB-AP-6.11-ADDR"], level="MUST", clause=f"{AP} §6.11"),
        param(FC.WRITE_MULTIPLE_REGISTERS, id="MB-FC16-ADDR", title="FC16 crossing the table's end is refused with exception 02",
              requirements=["MB-AP-6.12-ADDR"], level="MUST", clause=f"{AP} §6.12"),
        param(FC.READ_WRITE_MULTIPLE_REGISTERS, id="MB-FC23-ADDR", title="FC23 writing past the table's end is refused with exception 02",
              requirements=["MB-AP-6.17-ADDR"], level="MUST", clause=f"{AP} §6.17"),
    ],
)
def test_write_address_range(dut, fc):
    dut.require(fc)
    table = Table.COILS if fc in (FC.WRITE_SINGLE_COIL, FC.WRITE_MULTIPLE_COILS) else Table.HOLDING_REGISTERS
    extent = dut.table(table)
    end = past_end(extent)
    request = {
        FC.WRITE_SINGLE_COIL: lambda: P.WriteSingleCoilRequest(end, COIL_ON),
        FC.WRITE_SINGLE_REGISTER: lambda: P.WriteSingleRegisterRequest(end, 1),
        FC.MASK_WRITE_REGISTER: lambda: P.MaskWriteRegisterRequest(end, 0xFFFF, 0x0000),
        FC.WRITE_MULTIPLE_COILS: lambda: P.WriteMultipleCoilsRequest.of(extent.last, [True, False]),
        FC.WRITE_MULTIPLE_REGISTERS: lambda: P.WriteMultipleRegistersRequest.of(extent.last, [1, 2]),
        FC.READ_WRITE_MULTIPLE_REGISTERS: lambda: P.ReadWriteMultipleRegistersRequest.of(extent.start, 1, extent.last, [1, 2]),
    }[fc]()
    dut.expect_exception(dut.transact(request), 0x02, "the addresses do not all exist")


@pytest.mark.writes
@case("MB-FC06-WRITE", "FC06 writes a register, echoes the request, and the value reads back",
      requirements=["MB-AP-6.6-RESPONSE"], level="MUST", clause=f"{AP} §6.6")
def test_write_single_register(dut, case_random):
    dut.require(FC.WRITE_SINGLE_REGISTER)
    address = dut.writable(Table.HOLDING_REGISTERS).start + 1
    value = case_random.randrange(0x10000)
    conn = dut.connect()
    answer = dut.expect_normal(dut.transact(P.WriteSingleRegisterRequest(address, value), conn), P.WriteSingleRegisterResponse, "a valid write")
    if (answer.address, answer.value) != (address, value):
        fail("the response is not an echo of the request", expected=f"address {address} value 0x{value:04X}",
             observed=f"address {answer.address} value 0x{answer.value:04X}")
    if dut.mb.claims(FC.READ_HOLDING_REGISTERS) and dut.read_words(Table.HOLDING_REGISTERS, address, 1, conn) != [value]:
        fail(f"register {address} does not read back 0x{value:04X}")


@pytest.mark.writes
@case("MB-FC15-WRITE", "FC15 forces 10 coils in LSB-first order and answers address and quantity",
      requirements=["MB-AP-6.11-RESPONSE"], level="MUST", clause=f"{AP} §6.11")
def test_write_multiple_coils(dut):
    dut.require(FC.WRITE_MULTIPLE_COILS)
    address = dut.writable(Table.COILS, 16).start + 3
    # The spec's example pattern: CD 01 for coils 20..29 -> 1,0,1,1,0,0,1,1,1,0
    pattern = [True, False, True, True, False, False, True, True, True, False]
    conn = dut.connect()
    request = P.WriteMultipleCoilsRequest.of(address, pattern)
    answer = dut.expect_normal(dut.transact(request, conn), P.WriteMultipleCoilsResponse, "a valid write")
    if (answer.address, answer.quantity) != (address, len(pattern)):
        fail("the response does not echo address and quantity", expected=f"{address}/{len(pattern)}",
             observed=f"{answer.address}/{answer.quantity}")
    if dut.mb.claims(FC.READ_COILS):
        got = dut.read_bits(Table.COILS, address, len(pattern), conn)
        if got != pattern:
            fail("the coils do not read back as written", expected=str(pattern), observed=str(got))


@pytest.mark.writes
@case("MB-FC16-WRITE", "FC16 writes 3 registers, answers address and quantity, and they read back",
      requirements=["MB-AP-6.12-RESPONSE"], level="MUST", clause=f"{AP} §6.12")
def test_write_multiple_registers(dut, case_random):
    dut.require(FC.WRITE_MULTIPLE_REGISTERS)
    address = dut.writable(Table.HOLDING_REGISTERS, 16).start + 4
    values = [case_random.randrange(0x10000) for _ in range(3)]
    conn = dut.connect()
    answer = dut.expect_normal(dut.transact(P.WriteMultipleRegistersRequest.of(address, values), conn),
                               P.WriteMultipleRegistersResponse, "a valid write")
    if (answer.address, answer.quantity) != (address, 3):
        fail("the response does not echo address and quantity", expected=f"{address}/3",
             observed=f"{answer.address}/{answer.quantity}")
    if dut.mb.claims(FC.READ_HOLDING_REGISTERS):
        got = dut.read_words(Table.HOLDING_REGISTERS, address, 3, conn)
        if got != values:
            fail("the registers do not read back as written", expected=str(values), observed=str(got))


@pytest.mark.parametrize(
    "fc",
    [
        param(FC.WRITE_MULTIPLE_COILS, id="MB-FC15-BYTECOUNT", title="FC15 whose byte count does not match the quantity is refused with 03",
              requirements=["MB-AP-6.11-QTY"], level="MUST", clause=f"{AP} §6.11"),
        param(FC.WRITE_MULTIPLE_REGISTERS, id="MB-FC16-BYTECOUNT", title="FC16 whose byte count does not match the quantity is refused with 03",
              requirements=["MB-AP-6.12-QTY"], level="MUST", clause=f"{AP} §6.12"),
    ],
)
def test_write_multiple_byte_count_mismatch(dut, fc):
    dut.require(fc)
    if fc is FC.WRITE_MULTIPLE_COILS:
        area = dut.writable(Table.COILS, 10)
        request = P.WriteMultipleCoilsRequest(area.start, 10, 1, b"\xff")  # 10 coils need 2 bytes
    else:
        area = dut.writable(Table.HOLDING_REGISTERS, 2)
        request = P.WriteMultipleRegistersRequest(area.start, 2, 2, (0x1234,))  # 2 registers need 4 bytes
    dut.expect_exception(dut.transact(request), 0x03, "byte count must equal the quantity's size")


@pytest.mark.writes
@case("MB-FC22-FORMULA", "FC22 stores (current AND And_Mask) OR (Or_Mask AND NOT And_Mask): 0x12, F2, 25 -> 0x17",
      requirements=["MB-AP-6.16-FORMULA", "MB-AP-6.16-RESPONSE"], level="MUST", clause=f"{AP} §6.16")
def test_mask_write_formula(dut):
    dut.require(FC.MASK_WRITE_REGISTER, FC.READ_HOLDING_REGISTERS)
    address = dut.writable(Table.HOLDING_REGISTERS, 16).start + 8
    conn = dut.connect()
    if dut.mb.claims(FC.WRITE_SINGLE_REGISTER):
        dut.expect_normal(dut.transact(P.WriteSingleRegisterRequest(address, 0x0012), conn), P.WriteSingleRegisterResponse, "set up")
    else:
        dut.require(FC.WRITE_MULTIPLE_REGISTERS)
        dut.expect_normal(dut.transact(P.WriteMultipleRegistersRequest.of(address, [0x0012]), conn), P.WriteMultipleRegistersResponse, "set up")
    request = P.MaskWriteRegisterRequest(address, 0x00F2, 0x0025)  # the spec's example
    answer = dut.expect_normal(dut.transact(request, conn), P.MaskWriteRegisterResponse, "a valid mask write")
    if (answer.address, answer.and_mask, answer.or_mask) != (address, 0x00F2, 0x0025):
        fail("the response is not an echo of the request")
    got = dut.read_words(Table.HOLDING_REGISTERS, address, 1, conn)[0]
    if got != 0x0017:
        fail(f"the register holds 0x{got:04X} after the mask write", expected="0x0017", observed=f"0x{got:04X}")


@pytest.mark.writes
@case("MB-FC23-ORDER", "FC23 performs the write before the read: the read returns the values just written",
      requirements=["MB-AP-6.17-ORDER", "MB-AP-6.17-RESPONSE"], level="MUST", clause=f"{AP} §6.17")
def test_read_write_multiple_order(dut, case_random):
    dut.require(FC.READ_WRITE_MULTIPLE_REGISTERS)
    address = dut.writable(Table.HOLDING_REGISTERS, 16).start + 10
    values = [case_random.randrange(0x10000) for _ in range(4)]
    request = P.ReadWriteMultipleRegistersRequest.of(address, 4, address, values)
    answer = dut.expect_normal(dut.transact(request), P.ReadWriteMultipleRegistersResponse, "a valid read/write")
    if list(answer.values) != values:
        fail("the read did not see the write of the same request", expected=str(values), observed=str(list(answer.values)))


@case("PICS-RESPONSE-TIME", "Five reads are each answered within the profile's response timeout",
      requirements=["PICS-RESPONSE-TIME"], level="MUST", clause="Device profile (PICS) V1 §modbus.response_timeout_ms")
def test_response_time(dut):
    request = P.encode_pdu(dut.any_read())
    conn = dut.connect()
    limit_ms = dut.timeout * 1000
    for _ in range(5):
        tid = conn.send_pdu(request)
        start = time.monotonic()
        try:
            reply = conn.receive(dut.timeout * 3)
        except NoResponse:
            fail(f"no answer within {3 * limit_ms:.0f} ms", expected=f"an answer within {limit_ms:.0f} ms")
        took = (time.monotonic() - start) * 1000
        dut.check_answer(reply, tid, dut.unit, request[0])
        if took > limit_ms:
            fail(f"answered after {took:.0f} ms", expected=f"within {limit_ms:.0f} ms", observed=f"{took:.0f} ms")
