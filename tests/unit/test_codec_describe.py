"""One-line frame summaries for evidence."""

from __future__ import annotations

from harness.codec.modbus import (
    ExceptionResponse,
    ReadHoldingRegistersResponse,
    describe_message,
    describe_pdu,
    describe_rtu,
    describe_tcp,
    encode_pdu,
    encode_rtu,
    encode_tcp,
)

H = bytes.fromhex


def test_request() -> None:
    assert describe_pdu(H("03 00 00 00 0A"), False) == "FC03 Read Holding Registers addr=0 qty=10"
    assert describe_pdu(H("05 00 AC FF 00"), False) == (
        "FC05 Write Single Coil addr=172 value=0xff00 (ON)"
    )
    assert describe_pdu(H("2B 0E 01 00"), False) == (
        "FC43/14 Read Device Identification code=1 object=0x00"
    )
    assert describe_pdu(H("41 01"), False) == "FC65 unknown function data=01"


def test_response_truncates_long_lists() -> None:
    pdu = encode_pdu(ReadHoldingRegistersResponse(tuple(range(0xE6, 0xE6 + 10))))
    assert describe_pdu(pdu, True) == (
        "FC03 response 10 registers [0x00e6, 0x00e7, 0x00e8, 0x00e9, 0x00ea, 0x00eb, 0x00ec,"
        " 0x00ed, ..., (+2 more)]"
    )
    short = describe_pdu(H("03 04 00 01 00 02"), True)
    assert short == "FC03 response 2 registers [0x0001, 0x0002]"


def test_exception() -> None:
    assert describe_pdu(H("83 02"), True) == "FC03 exception 02 ILLEGAL DATA ADDRESS"
    assert describe_pdu(H("90 0B"), True) == "FC16 exception 0B GATEWAY TARGET FAILED"
    assert describe_message(ExceptionResponse(3, 0x42)).startswith("FC03 exception 42 (not")


def test_malformed() -> None:
    assert describe_pdu(H("03 06 00 01 00 02"), True) == (
        "malformed: byte count says 6 but 4 data bytes follow (at byte 1)"
    )
    assert describe_pdu(b"", False) == (
        "malformed: the PDU is empty: there is no function code (at byte 0)"
    )


def test_tcp_and_rtu() -> None:
    frame = encode_tcp(1, 1, H("03 00 00 00 0A"))
    assert describe_tcp(frame, False) == (
        "tid=0x0001 uid=1 FC03 Read Holding Registers addr=0 qty=10"
    )
    odd = encode_tcp(0x1234, 255, H("83 02"), protocol_id=1)
    assert describe_tcp(odd, True) == (
        "tid=0x1234 pid=0x0001 (not Modbus) uid=255 FC03 exception 02 ILLEGAL DATA ADDRESS"
    )
    assert describe_tcp(H("00 01 00 00 00 00 01"), True).startswith(
        "malformed ADU: MBAP length field says 0"
    )
    assert describe_tcp(encode_tcp(1, 1, H("03 06 00 01")), True) == (
        "tid=0x0001 uid=1 malformed: byte count says 6 but 2 data bytes follow (at byte 1)"
    )
    assert describe_rtu(encode_rtu(17, H("03 00 6B 00 03")), False) == (
        "uid=17 FC03 Read Holding Registers addr=107 qty=3"
    )
    assert describe_rtu(H("01 03 00 00"), False).startswith("malformed ADU: the frame's CRC")


def test_never_raises_on_nonsense() -> None:
    assert describe_pdu(None, True).startswith("undescribable")  # type: ignore[arg-type]
    assert describe_tcp(None, True).startswith("undescribable")  # type: ignore[arg-type]
    assert describe_message(object()).startswith("undescribable")  # type: ignore[arg-type]
