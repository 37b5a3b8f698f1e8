"""The device under test as the Modbus suite sees it, and the checks every case shares.

`Dut` opens recorded connections to the target, knows the profile's claims (so a case can
declare itself NOT_APPLICABLE), and `transact` applies the MBAP rules of the TCP guide
(§3.1.3) to every answer, so no case accepts a frame that is not the answer to its request.
"""

from __future__ import annotations

import time

from harness.codec.modbus import pdu as P
from harness.codec.modbus.constants import (
    EXCEPTION_FLAG,
    MAX_TCP_ADU_SIZE,
    ExceptionCode,
    FunctionCode,
    Table,
)
from harness.codec.modbus.malformed import Malformed
from harness.conformance import fail, not_applicable
from harness.model import Evidence
from harness.profile import AddressRange, ModbusSection, Profile
from harness.target import Target
from harness.transport.modbus_tcp import ModbusTcpConnection

AP = "MODBUS Application Protocol V1.1b3"
IG = "MODBUS Messaging on TCP/IP Implementation Guide V1.0b"

READ_FC = {
    Table.COILS: FunctionCode.READ_COILS,
    Table.DISCRETE_INPUTS: FunctionCode.READ_DISCRETE_INPUTS,
    Table.HOLDING_REGISTERS: FunctionCode.READ_HOLDING_REGISTERS,
    Table.INPUT_REGISTERS: FunctionCode.READ_INPUT_REGISTERS,
}
READ_REQUEST = {
    FunctionCode.READ_COILS: P.ReadCoilsRequest,
    FunctionCode.READ_DISCRETE_INPUTS: P.ReadDiscreteInputsRequest,
    FunctionCode.READ_HOLDING_REGISTERS: P.ReadHoldingRegistersRequest,
    FunctionCode.READ_INPUT_REGISTERS: P.ReadInputRegistersRequest,
}

READ_RESPONSE = {
    FunctionCode.READ_COILS: P.ReadCoilsResponse,
    FunctionCode.READ_DISCRETE_INPUTS: P.ReadDiscreteInputsResponse,
    FunctionCode.READ_HOLDING_REGISTERS: P.ReadHoldingRegistersResponse,
    FunctionCode.READ_INPUT_REGISTERS: P.ReadInputRegistersResponse,
}


def exc_name(code: int) -> str:
    try:
        return f"{code:02X} {ExceptionCode(code).name}"
    except ValueError:
        return f"{code:02X} (not a defined exception code)"


def show(answer) -> str:
    if isinstance(answer, P.ExceptionResponse):
        return f"exception {exc_name(answer.exception_code)}"
    return repr(answer)


class Dut:
    """The Modbus/TCP device under test, seen through its profile."""

    def __init__(self, target: Target, profile: Profile, evidence: Evidence):
        if target.protocol != "modbus" or target.scheme != "modbus+tcp":
            not_applicable(f"the Modbus TCP suite needs a modbus+tcp:// target, not {target.scheme}")
        if profile.modbus is None:
            not_applicable("the profile has no modbus section")
        self.target, self.profile, self.evidence = target, profile, evidence
        self.mb: ModbusSection = profile.modbus
        self.unit = target.unit if target.unit is not None else self.mb.unit_id
        self.timeout = self.mb.response_timeout_s
        self._connections: list[ModbusTcpConnection] = []

    # ---------------------------------------------------------------- claims

    def require(self, *function_codes: int) -> None:
        for fc in function_codes:
            if not self.mb.claims(fc):
                not_applicable(f"the profile does not claim function code {int(fc)}")

    def table(self, table: Table) -> AddressRange:
        extent = self.mb.tables.get(table)
        if extent is None:
            not_applicable(f"the profile declares no {table.value} table")
        return extent

    def any_read(self):
        """A one-register (or one-bit) read the device claims, at the first address of its table."""
        for table, fc in READ_FC.items():
            if self.mb.claims(fc) and table in self.mb.tables:
                return READ_REQUEST[fc](self.mb.tables[table].start, 1)
        not_applicable("the profile claims no read function code on a declared table")

    def writable(self, table: Table, count: int = 1) -> AddressRange:
        area = self.mb.writable.get(table)
        if area is None or area.count < count:
            not_applicable(f"the profile gives no writable {table.value} range of {count} addresses for testing")
        return area

    # ---------------------------------------------------------------- I/O

    def connect(self) -> ModbusTcpConnection:
        conn = ModbusTcpConnection(
            self.target.host, self.target.port, unit=self.unit, timeout=self.timeout, recorder=self.evidence.frames.append
        )
        self._connections.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._connections:
            conn.close()

    def transact(self, request, conn: ModbusTcpConnection | None = None, **header):
        """Send `request` (a codec message or raw PDU bytes); return the decoded answer.

        Fails the case on anything that is not a well-formed answer to this request: a
        malformed frame, a foreign transaction or unit id, a non-zero protocol id, another
        function code, an ADU over 260 bytes.
        """
        conn = conn or self.connect()
        pdu = request if isinstance(request, bytes) else P.encode_pdu(request)
        unit = header.get("unit", self.unit)
        tid = conn.send_pdu(pdu, **header)
        reply = conn.receive()
        return self.check_answer(reply, tid, unit, pdu[0])

    def check_answer(self, reply, tid: int, unit: int, function_code: int):
        adu = reply.adu
        if isinstance(adu, Malformed):
            fail(f"malformed response frame: {adu}", expected="a well-formed MBAP frame", observed=str(adu))
        if len(reply.raw) > MAX_TCP_ADU_SIZE:
            fail(f"response ADU of {len(reply.raw)} bytes exceeds 260 (AP §4.1)")
        if adu.transaction_id != tid:
            fail(
                f"response transaction id 0x{adu.transaction_id:04X} is not the request's 0x{tid:04X} (TCP guide §3.1.3)",
                expected=f"transaction id 0x{tid:04X}",
                observed=f"transaction id 0x{adu.transaction_id:04X}",
            )
        if adu.protocol_id != 0:
            fail(f"response protocol id {adu.protocol_id} is not 0 (TCP guide §3.1.3)")
        if adu.unit_id != unit:
            fail(
                f"response unit id {adu.unit_id} is not the request's {unit} (TCP guide §3.1.3)",
                expected=f"unit id {unit}",
                observed=f"unit id {adu.unit_id}",
            )
        answer = P.decode_response(adu.pdu)
        if isinstance(answer, Malformed):
            fail(f"malformed response PDU: {answer}", expected="a well-formed response PDU", observed=str(answer))
        if adu.pdu[0] not in (function_code, function_code | EXCEPTION_FLAG):
            fail(
                f"response function code 0x{adu.pdu[0]:02X} answers neither 0x{function_code:02X} nor its exception",
            )
        return answer

    # ---------------------------------------------------------------- verdict helpers

    def expect_exception(self, answer, code: int, why: str) -> None:
        expected = f"exception {exc_name(code)} ({why})"
        if not isinstance(answer, P.ExceptionResponse):
            fail(f"expected exception {code:02X}, got a normal response", expected=expected, observed=show(answer))
        if answer.exception_code != code:
            fail(
                f"expected exception {code:02X}, got {answer.exception_code:02X}",
                expected=expected,
                observed=show(answer),
            )

    def expect_normal(self, answer, kind: type, why: str):
        if not isinstance(answer, kind):
            fail(
                f"expected a normal {kind.__name__}, got {show(answer)}",
                expected=f"{kind.__name__} ({why})",
                observed=show(answer),
            )
        return answer

    def read(self, table: Table, address: int, quantity: int, conn=None):
        fc = READ_FC[table]
        return self.transact(READ_REQUEST[fc](address, quantity), conn)

    def read_words(self, table: Table, address: int, quantity: int, conn=None) -> list[int]:
        self.require(READ_FC[table])
        answer = self.read(table, address, quantity, conn)
        return list(self.expect_normal(answer, READ_RESPONSE[READ_FC[table]], f"read back {quantity} registers at {address}").values)

    def read_bits(self, table: Table, address: int, quantity: int, conn=None) -> list[bool]:
        self.require(READ_FC[table])
        answer = self.read(table, address, quantity, conn)
        return list(self.expect_normal(answer, READ_RESPONSE[READ_FC[table]], f"read back {quantity} bits at {address}").bits(quantity))


def past_end(extent: AddressRange) -> int:
    """The first address after the table, or NOT_APPLICABLE when the table ends at 65535."""
    if extent.last >= 0xFFFF:
        not_applicable("the table reaches address 65535: there is no address past its end")
    return extent.last + 1


def elapsed_ms(start: float) -> float:
    return (time.monotonic() - start) * 1000
