"""request_rule_violation: the quantity / value / byte-count checks that call for exception 03.

Rule violations are not Malformed: they decode to the dataclass, so a server can answer 03 and
a test can send them (Application Protocol V1.1b3 §6.x state diagrams).
"""

from __future__ import annotations

import pytest

from harness.codec.modbus import (
    DiagnosticsRequest,
    ExceptionCode,
    FileRecord,
    FileSubRequest,
    MaskWriteRegisterRequest,
    ReadCoilsRequest,
    ReadDeviceIdRequest,
    ReadDiscreteInputsRequest,
    ReadFifoQueueRequest,
    ReadFileRecordRequest,
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
    ReadWriteMultipleRegistersRequest,
    UnknownRequest,
    WriteFileRecordRequest,
    WriteMultipleCoilsRequest,
    WriteMultipleRegistersRequest,
    WriteSingleCoilRequest,
    WriteSingleRegisterRequest,
    decode_request,
    request_rule_violation,
)

H = bytes.fromhex
BAD = ExceptionCode.ILLEGAL_DATA_VALUE
RW = ReadWriteMultipleRegistersRequest

CASES = [
    # §6.1 / §6.2: 1..2000 bits
    (ReadCoilsRequest(0, 1), None),
    (ReadCoilsRequest(0, 2000), None),
    (ReadCoilsRequest(0, 0), BAD),
    (ReadCoilsRequest(0, 2001), BAD),
    (ReadDiscreteInputsRequest(0, 2000), None),
    (ReadDiscreteInputsRequest(0, 2001), BAD),
    # §6.3 / §6.4: 1..125 registers; a bad quantity is 03 even when the address is bad too
    (ReadHoldingRegistersRequest(0, 125), None),
    (ReadHoldingRegistersRequest(0, 126), BAD),
    (ReadHoldingRegistersRequest(0xFFFF, 0), BAD),
    (ReadInputRegistersRequest(0, 0), BAD),
    (ReadInputRegistersRequest(0, 125), None),
    # §6.5: only 0x0000 and 0xFF00
    (WriteSingleCoilRequest(0, 0xFF00), None),
    (WriteSingleCoilRequest(0, 0x0000), None),
    (WriteSingleCoilRequest(0, 0x1234), BAD),
    (WriteSingleCoilRequest(0, 0x00FF), BAD),
    (WriteSingleRegisterRequest(0, 0xFFFF), None),
    # §6.11: 1..1968 coils, byte count = ceil(quantity / 8)
    (WriteMultipleCoilsRequest.of(0, [True] * 1968), None),
    (WriteMultipleCoilsRequest.of(0, [True] * 1969), BAD),
    (WriteMultipleCoilsRequest(0, 0, 0, b""), BAD),
    (WriteMultipleCoilsRequest(0, 10, 1, b"\xff"), BAD),
    (WriteMultipleCoilsRequest(0, 8, 1, b"\xff"), None),
    # §6.12: 1..123 registers, byte count = 2 x quantity
    (WriteMultipleRegistersRequest.of(0, [0] * 123), None),
    (WriteMultipleRegistersRequest.of(0, [0] * 124), BAD),
    (WriteMultipleRegistersRequest(0, 2, 2, (1,)), BAD),
    (WriteMultipleRegistersRequest(0, 0, 0, ()), BAD),
    # §6.17: read 1..125, write 1..121, byte count = 2 x write quantity
    (RW.of(0, 125, 0, [0] * 121), None),
    (RW.of(0, 126, 0, [0]), BAD),
    (RW.of(0, 0, 0, [0]), BAD),
    (RW.of(0, 1, 0, [0] * 122), BAD),
    (RW.of(0, 1, 0, []), BAD),
    (RW(0, 1, 0, 2, 2, (0,)), BAD),
    # §6.14 / §6.15 byte-count ranges
    (ReadFileRecordRequest((FileSubRequest(6, 1, 0, 1),)), None),
    (ReadFileRecordRequest(()), BAD),
    (WriteFileRecordRequest((FileRecord(6, 1, 0, (5,)),)), None),
    (WriteFileRecordRequest(()), BAD),
    # §6.21: Read Device ID code 01..04
    (ReadDeviceIdRequest(1, 0), None),
    (ReadDeviceIdRequest(4, 0x80), None),
    (ReadDeviceIdRequest(0, 0), BAD),
    (ReadDeviceIdRequest(5, 0), BAD),
    # nothing device-independent to check
    (MaskWriteRegisterRequest(0, 0, 0), None),
    (ReadFifoQueueRequest(0), None),
    (DiagnosticsRequest(0x7777, b""), None),
    (UnknownRequest(0x41, b""), None),
]


@pytest.mark.parametrize(("request_", "expected"), CASES, ids=[repr(c[0])[:60] for c in CASES])
def test_rule_violation(request_: object, expected: ExceptionCode | None) -> None:
    assert request_rule_violation(request_) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("03 00 00 00 00", ReadHoldingRegistersRequest(0, 0)),  # quantity 0
        ("01 00 00 07 D1", ReadCoilsRequest(0, 2001)),  # quantity over the limit
        ("05 00 00 12 34", WriteSingleCoilRequest(0, 0x1234)),  # not ON/OFF
        # byte count consistent with the data but not with the quantity
        ("0F 00 13 00 0A 01 CD", WriteMultipleCoilsRequest(19, 10, 1, H("CD"))),
        ("10 00 01 00 03 04 00 0A 01 02", WriteMultipleRegistersRequest(1, 3, 4, (10, 0x102))),
        ("14 00", ReadFileRecordRequest(())),
    ],
)
def test_rule_violations_decode_as_values(wire: str, expected: object) -> None:
    decoded = decode_request(H(wire))
    assert decoded == expected
    assert request_rule_violation(decoded) == BAD  # type: ignore[arg-type]
