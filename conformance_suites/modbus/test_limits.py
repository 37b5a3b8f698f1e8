"""Quantity limits, address ranges and the check order of the per-function state diagrams.

Application Protocol V1.1b3 §6.1-§6.17: a server checks the quantity (exception 03) before
the address range (exception 02).  Quantities are tried at 0, 1, max and max+1.
"""

from __future__ import annotations

import pytest

from harness.codec.modbus import pdu as P
from harness.codec.modbus.constants import QUANTITY_LIMITS, FunctionCode, Table
from harness.conformance import fail, not_applicable, param

from .support import AP, READ_FC, READ_REQUEST, READ_RESPONSE, past_end

FC = FunctionCode
SECTION = {FC.READ_COILS: "6.1", FC.READ_DISCRETE_INPUTS: "6.2", FC.READ_HOLDING_REGISTERS: "6.3",
           FC.READ_INPUT_REGISTERS: "6.4", FC.WRITE_MULTIPLE_COILS: "6.11", FC.WRITE_MULTIPLE_REGISTERS: "6.12",
           FC.READ_WRITE_MULTIPLE_REGISTERS: "6.17"}
TABLE_OF = {fc: t for t, fc in READ_FC.items()}


def _quantity_params():
    params = []
    for fc in (FC.READ_COILS, FC.READ_DISCRETE_INPUTS, FC.READ_HOLDING_REGISTERS, FC.READ_INPUT_REGISTERS,
               FC.WRITE_MULTIPLE_COILS, FC.WRITE_MULTIPLE_REGISTERS):
        limit = QUANTITY_LIMITS[(fc, "quantity")]
        sec = SECTION[fc]
        for qty in (0, 1, limit.high, limit.high + 1):
            ok = limit.low <= qty <= limit.high
            title = (f"FC{fc:02d} quantity {qty} is {'served' if ok else 'refused with exception 03'}"
                     f" (valid 1..{limit.high})")
            reqs = [f"MB-AP-{sec}-QTY"] + ([f"MB-AP-{sec}-RESPONSE"] if ok else ["MB-AP-4.5-EXCEPTION-FORMAT"])
            if ok and qty == 125:
                reqs.append("MB-AP-4.1-PDU-SIZE")  # 125 registers: the largest read response, 252 bytes of PDU
            params.append(param(fc, qty, ok, id=f"MB-FC{fc:02d}-QTY-{qty}", title=title, requirements=reqs,
                                level="MUST", clause=f"{AP} §{sec}"))
    return params


def _write_request(fc, address, qty):
    if fc is FC.WRITE_MULTIPLE_REGISTERS and qty > 123:
        # 124 registers would make a 254-byte PDU, which no frame may carry (§4.1): the
        # quantity field says 124 and one register follows; 03 is due either way.
        return P.WriteMultipleRegistersRequest(address, qty, 2, (0x1000,))
    if fc is FC.WRITE_MULTIPLE_COILS:
        return P.WriteMultipleCoilsRequest.of(address, [i % 3 == 0 for i in range(qty)]) if qty else \
            P.WriteMultipleCoilsRequest(address, 0, 0, b"")
    return P.WriteMultipleRegistersRequest.of(address, [(0x1000 + i) & 0xFFFF for i in range(qty)]) if qty else \
        P.WriteMultipleRegistersRequest(address, 0, 0, ())


@pytest.mark.writes
@pytest.mark.parametrize("fc, qty, valid", _quantity_params())
def test_quantity_limits(dut, fc, qty, valid):
    dut.require(fc)
    if fc in TABLE_OF:
        extent = dut.table(TABLE_OF[fc])
        start = extent.start
        request = READ_REQUEST[fc](start, qty)
        fits = extent.contains(start, max(qty, 1))
    else:
        table = Table.COILS if fc is FC.WRITE_MULTIPLE_COILS else Table.HOLDING_REGISTERS
        extent, area = dut.table(table), dut.writable(table)
        start = area.start
        fits = extent.contains(start, max(qty, 1))
        if valid and fits and not area.contains(start, qty):
            not_applicable(f"the writable {table.value} range ({area.count}) is smaller than {qty}: "
                           "a write of that size would touch addresses the profile does not allow")
        request = _write_request(fc, start, qty)
    answer = dut.transact(request)
    if not valid:
        dut.expect_exception(answer, 0x03, f"quantity {qty} is outside 1..{QUANTITY_LIMITS[(fc, 'quantity')].high}")
    elif not fits:
        dut.expect_exception(answer, 0x02, f"quantity {qty} is valid but {start}+{qty} runs past the table's end")
    elif fc in READ_RESPONSE:
        got = dut.expect_normal(answer, READ_RESPONSE[fc], f"quantity {qty} is valid")
        expected_bytes = (qty + 7) // 8 if fc in (FC.READ_COILS, FC.READ_DISCRETE_INPUTS) else 2 * qty
        actual_bytes = len(got.data) if TABLE_OF[fc].is_bit else 2 * len(got.values)
        if actual_bytes != expected_bytes:
            fail(f"byte count {actual_bytes} for quantity {qty}", expected=f"byte count {expected_bytes}",
                 observed=f"byte count {actual_bytes}")
    else:
        kind = P.WriteMultipleCoilsResponse if fc is FC.WRITE_MULTIPLE_COILS else P.WriteMultipleRegistersResponse
        got = dut.expect_normal(answer, kind, f"quantity {qty} is valid")
        if (got.address, got.quantity) != (start, qty):
            fail("the response does not echo start address and quantity", expected=f"address {start} quantity {qty}",
                 observed=f"address {got.address} quantity {got.quantity}")


def _fc23_params():
    params = []
    for field, high in (("read", 125), ("write", 121)):
        for qty in (0, 1, high, high + 1):
            ok = 1 <= qty <= high
            params.append(param(field, qty, ok, id=f"MB-FC23-{field.upper()}-QTY-{qty}",
                                title=f"FC23 {field} quantity {qty} is {'served' if ok else 'refused with exception 03'}",
                                requirements=["MB-AP-6.17-QTY"] + (["MB-AP-6.17-RESPONSE"] if ok else []),
                                level="MUST", clause=f"{AP} §6.17"))
    return params


@pytest.mark.writes
@pytest.mark.parametrize("field, qty, valid", _fc23_params())
def test_fc23_quantity_limits(dut, field, qty, valid):
    dut.require(FC.READ_WRITE_MULTIPLE_REGISTERS)
    area = dut.writable(Table.HOLDING_REGISTERS, 1)
    extent = dut.table(Table.HOLDING_REGISTERS)
    read_qty, write_qty = (qty, 1) if field == "read" else (1, qty)
    if valid and not area.contains(area.start, write_qty):
        not_applicable(f"the writable holding register range ({area.count}) is smaller than {write_qty}")
    write_values = [(0x2000 + i) & 0xFFFF for i in range(write_qty)]
    if write_qty > 121:
        # 122 registers would not fit a 253-byte PDU (§4.1): one register follows; 03 is due either way.
        request = P.ReadWriteMultipleRegistersRequest(area.start, read_qty, area.start, write_qty, 2, (0x2000,))
    elif write_qty:
        request = P.ReadWriteMultipleRegistersRequest.of(area.start, read_qty, area.start, write_values)
    else:
        request = P.ReadWriteMultipleRegistersRequest(area.start, read_qty, area.start, 0, 0, ())
    answer = dut.transact(request)
    if not valid:
        dut.expect_exception(answer, 0x03, f"{field} quantity {qty} is out of range")
    elif not extent.contains(area.start, read_qty):
        dut.expect_exception(answer, 0x02, f"reading {read_qty} from {area.start} runs past the table")
    else:
        got = dut.expect_normal(answer, P.ReadWriteMultipleRegistersResponse, "valid quantities")
        if len(got.values) != read_qty:
            fail(f"{len(got.values)} registers returned", expected=f"{read_qty} registers",
                 observed=f"{len(got.values)} registers")


def _address_params():
    params = []
    for table, fc in READ_FC.items():
        sec = SECTION[fc]
        for where in ("first", "last", "past-end", "crossing-end"):
            ok = where in ("first", "last")
            titles = {"first": "the first address of the table is served",
                      "last": "the last address of the table is served",
                      "past-end": "the address one past the table's end is refused with exception 02",
                      "crossing-end": "a read from the last address with quantity 2 is refused with exception 02"}
            params.append(param(table, where, id=f"MB-FC{fc:02d}-ADDR-{where.upper()}", title=f"FC{fc:02d}: {titles[where]}",
                                requirements=[f"MB-AP-{sec}-{'RESPONSE' if ok else 'ADDR'}", "MB-AP-4.4-ADDRESSING"],
                                level="MUST", clause=f"{AP} §{sec}"))
    return params


@pytest.mark.parametrize("table, where", _address_params())
def test_read_address_range(dut, table, where):
    fc = READ_FC[table]
    dut.require(fc)
    extent = dut.table(table)
    address, qty = {"first": (extent.start, 1), "last": (extent.last, 1), "crossing-end": (extent.last, 2),
                    "past-end": (None, 1)}[where]
    if where == "past-end":
        address = past_end(extent)
    if where == "crossing-end" and extent.last == 0xFFFF:
        not_applicable("the table ends at 65535")
    answer = dut.read(table, address, qty)
    if where in ("first", "last"):
        dut.expect_normal(answer, READ_RESPONSE[fc], f"address {address} exists")
    else:
        dut.expect_exception(answer, 0x02, f"addresses {address}..{address + qty - 1} are not all in {extent.start}..{extent.last}")


@pytest.mark.parametrize(
    "fc, qty",
    [
        param(FC.READ_COILS, 2001, id="MB-ORDER-FC01", title="FC01 with bad quantity and bad address answers 03, not 02",
              requirements=["MB-AP-4.5-CHECK-ORDER", "MB-AP-6.1-QTY"], level="MUST", clause=f"{AP} §6.1"),
        param(FC.READ_HOLDING_REGISTERS, 126, id="MB-ORDER-FC03", title="FC03 with bad quantity and bad address answers 03, not 02",
              requirements=["MB-AP-4.5-CHECK-ORDER", "MB-AP-6.3-QTY"], level="MUST", clause=f"{AP} §6.3"),
        param(FC.READ_INPUT_REGISTERS, 0, id="MB-ORDER-FC04", title="FC04 with quantity 0 and bad address answers 03, not 02",
              requirements=["MB-AP-4.5-CHECK-ORDER", "MB-AP-6.4-QTY"], level="MUST", clause=f"{AP} §6.4"),
        param(FC.WRITE_MULTIPLE_REGISTERS, 124, id="MB-ORDER-FC16", title="FC16 with bad quantity and bad address answers 03, not 02",
              requirements=["MB-AP-4.5-CHECK-ORDER", "MB-AP-6.12-QTY"], level="MUST", clause=f"{AP} §6.12"),
    ],
)
def test_exception_check_order(dut, fc, qty):
    dut.require(fc)
    table = TABLE_OF.get(fc, Table.HOLDING_REGISTERS)
    address = past_end(dut.table(table))
    request = READ_REQUEST[fc](address, qty) if fc in READ_REQUEST else _write_request(fc, address, qty)
    dut.expect_exception(dut.transact(request), 0x03, "the quantity is checked before the address (state diagram)")
