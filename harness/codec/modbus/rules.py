"""Which exception a well-formed request calls for before the server looks at its tables.

The per-function state diagrams of the MODBUS Application Protocol Specification V1.1b3
(§6.x) check, in order: function code supported (01), quantity / value / byte count (03),
address range (02), execution (04).  `request_rule_violation` applies the device-independent
step, the 03 checks, from the tables in `constants`.  The 01 check (which function codes the
device implements) and the 02 check (which addresses exist) need the device's profile, so they
belong to the server; run them around this one in the order above.  Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable

from .constants import COIL_OFF, COIL_ON, QUANTITY_LIMITS, ExceptionCode, FunctionCode
from .pdu import (
    ReadCoilsRequest,
    ReadDeviceIdRequest,
    ReadDiscreteInputsRequest,
    ReadFileRecordRequest,
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
    ReadWriteMultipleRegistersRequest,
    Request,
    WriteFileRecordRequest,
    WriteMultipleCoilsRequest,
    WriteMultipleRegistersRequest,
    WriteSingleCoilRequest,
)

ILLEGAL_DATA_VALUE = ExceptionCode.ILLEGAL_DATA_VALUE


def _in_limit(function: FunctionCode, field: str, value: int) -> bool:
    limit = QUANTITY_LIMITS[(function, field)]
    return limit.low <= value <= limit.high


_ReadRequest = (
    ReadCoilsRequest
    | ReadDiscreteInputsRequest
    | ReadHoldingRegistersRequest
    | ReadInputRegistersRequest
)


def _read_quantity(req: _ReadRequest) -> bool:
    # §6.1-6.4 diagrams: 0x0001 <= quantity <= 0x07D0 (bits) or 0x007D (registers).
    return _in_limit(FunctionCode(req.function_code), "quantity", req.quantity)


def _coil_value(req: WriteSingleCoilRequest) -> bool:
    # §6.5: only 0x0000 (OFF) and 0xFF00 (ON) are legal output values; anything else is 03.
    return req.value in (COIL_OFF, COIL_ON)


def _write_coils(req: WriteMultipleCoilsRequest) -> bool:
    # §6.11 diagram: 0x0001 <= quantity <= 0x07B0 AND byte count = N, N = ceil(quantity / 8).
    return (
        _in_limit(FunctionCode.WRITE_MULTIPLE_COILS, "quantity", req.quantity)
        and req.byte_count == (req.quantity + 7) // 8
        and len(req.data) == req.byte_count
    )


def _write_registers(req: WriteMultipleRegistersRequest) -> bool:
    # §6.12 diagram: 0x0001 <= quantity <= 0x007B AND byte count = 2 x quantity.
    return (
        _in_limit(FunctionCode.WRITE_MULTIPLE_REGISTERS, "quantity", req.quantity)
        and req.byte_count == 2 * req.quantity
        and len(req.values) == req.quantity
    )


def _read_write_registers(req: ReadWriteMultipleRegistersRequest) -> bool:
    # §6.17 diagram: read 1..0x7D, write 1..0x79, byte count = 2 x write quantity.
    fc = FunctionCode.READ_WRITE_MULTIPLE_REGISTERS
    return (
        _in_limit(fc, "read_quantity", req.read_quantity)
        and _in_limit(fc, "write_quantity", req.write_quantity)
        and req.write_byte_count == 2 * req.write_quantity
        and len(req.write_values) == req.write_quantity
    )


def _read_file_record(req: ReadFileRecordRequest) -> bool:
    # §6.14 diagram: 0x07 <= byte count <= 0xF5 (one to 35 sub-requests of 7 bytes).
    return 0x07 <= 7 * len(req.sub_requests) <= 0xF5


def _write_file_record(req: WriteFileRecordRequest) -> bool:
    # §6.15 diagram: 0x09 <= request data length <= 0xFB.
    size = sum(7 + 2 * len(r.values) for r in req.records)
    return 0x09 <= size <= 0xFB


def _device_id(req: ReadDeviceIdRequest) -> bool:
    # §6.21: an illegal Read Device ID code (not 01..04) is answered with 03.
    return 1 <= req.read_code <= 4


# request type -> predicate that is True when the 03 checks pass.
_CHECKS: dict[type, Callable[..., bool]] = {
    ReadCoilsRequest: _read_quantity,
    ReadDiscreteInputsRequest: _read_quantity,
    ReadHoldingRegistersRequest: _read_quantity,
    ReadInputRegistersRequest: _read_quantity,
    WriteSingleCoilRequest: _coil_value,
    WriteMultipleCoilsRequest: _write_coils,
    WriteMultipleRegistersRequest: _write_registers,
    ReadWriteMultipleRegistersRequest: _read_write_registers,
    ReadFileRecordRequest: _read_file_record,
    WriteFileRecordRequest: _write_file_record,
    ReadDeviceIdRequest: _device_id,
}


def request_rule_violation(req: Request) -> ExceptionCode | None:
    """ILLEGAL_DATA_VALUE when a quantity, value or byte count breaks its rule, else None.

    None also for requests with nothing to check here (FC06, FC22, FC24, unknown codes...):
    the FIFO count limit of FC24 depends on the queue's contents, and a server answers an
    `UnknownRequest` with ILLEGAL_FUNCTION in its own function-code check.
    """
    check = _CHECKS.get(type(req))
    if check is None or check(req):
        return None
    return ILLEGAL_DATA_VALUE
