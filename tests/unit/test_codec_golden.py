"""Golden vectors: the byte examples of the Modbus specifications, decoded and re-encoded.

PDU vectors are the request/response examples printed in MODBUS Application Protocol
Specification V1.1b3 section 6 (and §7 for the exception example); the section is cited per
vector.  RTU CRC vectors come from the Serial Line guide V1.02 and common practice.
"""

from __future__ import annotations

import pytest

from harness.codec.modbus import (
    DiagnosticsRequest,
    DiagnosticsResponse,
    ExceptionResponse,
    FileRecord,
    FileSubRequest,
    GetCommEventCounterRequest,
    GetCommEventCounterResponse,
    GetCommEventLogRequest,
    GetCommEventLogResponse,
    MaskWriteRegisterRequest,
    MaskWriteRegisterResponse,
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDeviceIdRequest,
    ReadDeviceIdResponse,
    ReadDiscreteInputsRequest,
    ReadDiscreteInputsResponse,
    ReadExceptionStatusRequest,
    ReadExceptionStatusResponse,
    ReadFifoQueueRequest,
    ReadFifoQueueResponse,
    ReadFileRecordRequest,
    ReadFileRecordResponse,
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
    ReadWriteMultipleRegistersRequest,
    ReadWriteMultipleRegistersResponse,
    RtuAdu,
    TcpAdu,
    WriteFileRecordRequest,
    WriteFileRecordResponse,
    WriteMultipleCoilsRequest,
    WriteMultipleCoilsResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleCoilRequest,
    WriteSingleCoilResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
    crc16,
    decode_request,
    decode_response,
    decode_rtu,
    decode_tcp,
    encode_pdu,
    encode_rtu,
    encode_tcp,
    pack_bits,
)

H = bytes.fromhex

_DEVICE_ID_RESPONSE = (
    H("2B 0E 01 01 00 00 03")
    + H("00 16")
    + b"Company identification"
    + H("01 0F")
    + b"Product code XX"
    + H("02 05")
    + b"V2.11"
)

# (clause, request bytes, request object)
REQUESTS = [
    # §6.1 Read Coils: coils 20-38
    ("6.1", "01 00 13 00 13", ReadCoilsRequest(19, 19)),
    # §6.2 Read Discrete Inputs: inputs 197-218
    ("6.2", "02 00 C4 00 16", ReadDiscreteInputsRequest(196, 22)),
    # §6.3 Read Holding Registers: registers 108-110
    ("6.3", "03 00 6B 00 03", ReadHoldingRegistersRequest(107, 3)),
    # §6.4 Read Input Register: register 9
    ("6.4", "04 00 08 00 01", ReadInputRegistersRequest(8, 1)),
    # §6.5 Write Single Coil: coil 173 ON
    ("6.5", "05 00 AC FF 00", WriteSingleCoilRequest(172, 0xFF00)),
    # §6.6 Write Single Register: register 2 = 0x0003
    ("6.6", "06 00 01 00 03", WriteSingleRegisterRequest(1, 3)),
    # §6.7 Read Exception Status
    ("6.7", "07", ReadExceptionStatusRequest()),
    # §6.8 Diagnostics, sub-function 0x0000 Return Query Data
    ("6.8", "08 00 00 A5 37", DiagnosticsRequest(0, H("A5 37"))),
    # §6.9 Get Comm Event Counter
    ("6.9", "0B", GetCommEventCounterRequest()),
    # §6.10 Get Comm Event Log
    ("6.10", "0C", GetCommEventLogRequest()),
    # §6.11 Write Multiple Coils: 10 coils from coil 20
    (
        "6.11",
        "0F 00 13 00 0A 02 CD 01",
        WriteMultipleCoilsRequest(19, 10, 2, H("CD 01")),
    ),
    # §6.12 Write Multiple Registers: registers 2-3 = 0x000A, 0x0102
    (
        "6.12",
        "10 00 01 00 02 04 00 0A 01 02",
        WriteMultipleRegistersRequest(1, 2, 4, (0x000A, 0x0102)),
    ),
    # §6.14 Read File Record: two groups from files 4 and 3
    (
        "6.14",
        "14 0E 06 00 04 00 01 00 02 06 00 03 00 09 00 02",
        ReadFileRecordRequest((FileSubRequest(6, 4, 1, 2), FileSubRequest(6, 3, 9, 2))),
    ),
    # §6.15 Write File Record: file 4, record 7, three registers
    (
        "6.15",
        "15 0D 06 00 04 00 07 00 03 06 AF 04 BE 10 0D",
        WriteFileRecordRequest((FileRecord(6, 4, 7, (0x06AF, 0x04BE, 0x100D)),)),
    ),
    # §6.16 Mask Write Register: register 5, AND 0x00F2, OR 0x0025
    ("6.16", "16 00 04 00 F2 00 25", MaskWriteRegisterRequest(4, 0x00F2, 0x0025)),
    # §6.17 Read/Write Multiple registers: read 6 from 4, write 3 from 15
    (
        "6.17",
        "17 00 03 00 06 00 0E 00 03 06 00 FF 00 FF 00 FF",
        ReadWriteMultipleRegistersRequest(3, 6, 14, 3, 6, (0xFF, 0xFF, 0xFF)),
    ),
    # §6.18 Read FIFO Queue: FIFO pointer address 1246
    ("6.18", "18 04 DE", ReadFifoQueueRequest(0x04DE)),
    # §6.21 Read Device Identification: basic, from object 0
    ("6.21", "2B 0E 01 00", ReadDeviceIdRequest(1, 0)),
    # §7 exception example: Read Coils of a non-existent output address
    ("7", "01 04 A1 00 01", ReadCoilsRequest(0x04A1, 1)),
]

# (clause, response bytes, response object)
RESPONSES = [
    ("6.1", "01 03 CD 6B 05", ReadCoilsResponse(H("CD 6B 05"))),
    ("6.2", "02 03 AC DB 35", ReadDiscreteInputsResponse(H("AC DB 35"))),
    ("6.3", "03 06 02 2B 00 00 00 64", ReadHoldingRegistersResponse((0x022B, 0, 0x64))),
    ("6.4", "04 02 00 0A", ReadInputRegistersResponse((0x000A,))),
    ("6.5", "05 00 AC FF 00", WriteSingleCoilResponse(172, 0xFF00)),
    ("6.6", "06 00 01 00 03", WriteSingleRegisterResponse(1, 3)),
    ("6.7", "07 6D", ReadExceptionStatusResponse(0x6D)),
    ("6.8", "08 00 00 A5 37", DiagnosticsResponse(0, H("A5 37"))),
    ("6.9", "0B FF FF 01 08", GetCommEventCounterResponse(0xFFFF, 0x0108)),
    (
        "6.10",
        "0C 08 00 00 01 08 01 21 20 00",
        GetCommEventLogResponse(0x0000, 0x0108, 0x0121, H("20 00")),
    ),
    ("6.11", "0F 00 13 00 0A", WriteMultipleCoilsResponse(19, 10)),
    ("6.12", "10 00 01 00 02", WriteMultipleRegistersResponse(1, 2)),
    (
        "6.14",
        "14 0C 05 06 0D FE 00 20 05 06 33 CD 00 40",
        ReadFileRecordResponse(((6, (0x0DFE, 0x0020)), (6, (0x33CD, 0x0040)))),
    ),
    (
        "6.15",
        "15 0D 06 00 04 00 07 00 03 06 AF 04 BE 10 0D",
        WriteFileRecordResponse((FileRecord(6, 4, 7, (0x06AF, 0x04BE, 0x100D)),)),
    ),
    ("6.16", "16 00 04 00 F2 00 25", MaskWriteRegisterResponse(4, 0x00F2, 0x0025)),
    (
        "6.17",
        "17 0C 00 FE 0A CD 00 01 00 03 00 0D 00 FF",
        ReadWriteMultipleRegistersResponse((0x00FE, 0x0ACD, 0x0001, 0x0003, 0x000D, 0x00FF)),
    ),
    ("6.18", "18 00 06 00 02 01 B8 12 84", ReadFifoQueueResponse((0x01B8, 0x1284))),
    # §6.21: the spec prints object 1's length as 0x0D although "Product code XX" has 15
    # characters; this vector uses the self-consistent 0x0F.
    (
        "6.21",
        _DEVICE_ID_RESPONSE.hex(),
        ReadDeviceIdResponse(
            1,
            0x01,
            0x00,
            0x00,
            ((0, b"Company identification"), (1, b"Product code XX"), (2, b"V2.11")),
        ),
    ),
    # §7: exception 02 (ILLEGAL DATA ADDRESS) to Read Coils
    ("7", "81 02", ExceptionResponse(0x01, 0x02)),
]


@pytest.mark.parametrize(("clause", "wire", "message"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_spec_request_vector(clause: str, wire: str, message: object) -> None:
    assert decode_request(H(wire)) == message
    assert encode_pdu(message) == H(wire)  # type: ignore[arg-type]


@pytest.mark.parametrize(("clause", "wire", "message"), RESPONSES, ids=[r[0] for r in RESPONSES])
def test_spec_response_vector(clause: str, wire: str, message: object) -> None:
    assert decode_response(H(wire)) == message
    assert encode_pdu(message) == H(wire)  # type: ignore[arg-type]


def test_read_coils_bits_follow_the_spec_example() -> None:
    # §6.1: coils 27..20 are CD = 1100 1101 (coil 20 is the LSB); coils 38..36 are 101,
    # and the five high bits of the last byte are padding.
    response = ReadCoilsResponse(H("CD 6B 05"))
    bits = response.bits(19)
    assert bits[:8] == (True, False, True, True, False, False, True, True)
    assert bits[16:] == (True, False, True)
    assert response.bits()[19:] == (False,) * 5
    assert pack_bits(bits) == H("CD 6B 05")
    with pytest.raises(ValueError):
        response.bits(25)


def test_read_discrete_inputs_padding() -> None:
    # §6.2: 22 inputs, the two high bits of the third byte (35) are zero-filled.
    bits = ReadDiscreteInputsResponse(H("AC DB 35")).bits(22)
    assert bits[16:] == (True, False, True, False, True, True)


def test_write_multiple_coils_of_packs_like_the_spec() -> None:
    # §6.11: coils 27..20 = CD, coils 29..28 = 01
    bits = [True, False, True, True, False, False, True, True, True, False]
    expected = WriteMultipleCoilsRequest(19, 10, 2, H("CD 01"))
    assert WriteMultipleCoilsRequest.of(19, bits) == expected


def test_of_constructors_compute_counts() -> None:
    assert WriteMultipleRegistersRequest.of(1, [0x000A, 0x0102]) == WriteMultipleRegistersRequest(
        1, 2, 4, (0x000A, 0x0102)
    )
    assert ReadWriteMultipleRegistersRequest.of(3, 6, 14, [0xFF] * 3) == (
        ReadWriteMultipleRegistersRequest(3, 6, 14, 3, 6, (0xFF, 0xFF, 0xFF))
    )
    assert ReadCoilsResponse.of([True, False, True]) == ReadCoilsResponse(b"\x05")


def test_lists_are_stored_as_tuples() -> None:
    assert ReadHoldingRegistersResponse([1, 2]) == ReadHoldingRegistersResponse((1, 2))
    assert hash(ReadHoldingRegistersResponse([1, 2])) == hash(ReadHoldingRegistersResponse((1, 2)))


# --- ADUs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "crc", "wire_crc"),
    [
        # Serial Line guide V1.02 §6.2.2 / appendix: frame "02 07", CRC 0x1241 sent as 41 12
        ("02 07", 0x1241, "41 12"),
        # the common example "read 10 holding registers from 0 of unit 1"
        ("01 03 00 00 00 0A", 0xCDC5, "C5 CD"),
        # read 1 holding register from 0 of unit 1
        ("01 03 00 00 00 01", 0x0A84, "84 0A"),
    ],
)
def test_rtu_crc_vectors(body: str, crc: int, wire_crc: str) -> None:
    assert crc16(H(body)) == crc
    frame = encode_rtu(H(body)[0], H(body)[1:])
    assert frame == H(body) + H(wire_crc)
    assert decode_rtu(frame) == RtuAdu(H(body)[0], H(body)[1:])
    assert crc16(frame) == 0  # a frame with its CRC appended checks to zero


def test_tcp_vector() -> None:
    # Implementation Guide V1.0b §3.1.3: tid, pid 0, length = unit id + PDU, unit id, PDU.
    wire = H("00 01 00 00 00 06 11 03 00 6B 00 03")
    adu = TcpAdu(transaction_id=1, unit_id=0x11, pdu=H("03 00 6B 00 03"))
    assert decode_tcp(wire) == adu
    assert encode_tcp(1, 0x11, H("03 00 6B 00 03")) == wire
    assert adu.encode() == wire
    assert decode_request(adu.pdu) == ReadHoldingRegistersRequest(107, 3)
