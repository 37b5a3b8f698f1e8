"""Every Malformed code the codec produces, with the byte offset it points at."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.codec.modbus import (
    MALFORMED_CODES,
    Malformed,
    TcpAdu,
    check_protocol_id,
    decode_request,
    decode_response,
    decode_rtu,
    decode_tcp,
    encode_rtu,
)

H = bytes.fromhex
REQ, RESP = decode_request, decode_response

# (decoder, input, code, offset, words the reason must contain)
CASES: list[tuple[str, Callable[[bytes], object], bytes, str, int, str]] = [
    ("empty request", REQ, b"", "empty-pdu", 0, "empty"),
    ("empty response", RESP, b"", "empty-pdu", 0, "empty"),
    ("254-byte PDU", REQ, b"\x03" + bytes(253), "pdu-too-long", 253, "254 bytes"),
    ("254-byte response", RESP, b"\x03" + bytes(253), "pdu-too-long", 253, "253 allowed"),
    # fixed layouts: short and long
    ("FC03 request short", REQ, H("03 00 6B 00"), "short-frame", 4, "needs 5 bytes"),
    ("FC03 request long", REQ, H("03 00 6B 00 03 FF"), "trailing-bytes", 5, "1 byte left"),
    ("FC07 request long", REQ, H("07 00 00"), "trailing-bytes", 1, "2 bytes left"),
    ("FC22 request short", REQ, H("16 00 04 00 F2 00"), "short-frame", 6, "needs 7"),
    ("FC05 response short", RESP, H("05 00 AC FF"), "short-frame", 4, "needs 5"),
    ("exception long", RESP, H("81 02 00"), "trailing-bytes", 2, "exception response"),
    ("exception short", RESP, H("83"), "short-frame", 1, "needs 2"),
    ("FC43/14 request long", REQ, H("2B 0E 01 00 00"), "trailing-bytes", 4, "FC43/14"),
    ("FC43 request no MEI", REQ, H("2B"), "short-frame", 1, "at least 2"),
    ("FC08 request short", REQ, H("08 00"), "short-frame", 2, "at least 3"),
    ("FC15 request short", REQ, H("0F 00 13 00 0A"), "short-frame", 5, "at least 6"),
    ("FC23 request short", REQ, H("17 00 03 00 06 00 0E 00 03"), "short-frame", 9, "at least 10"),
    ("FC01 response short", RESP, H("01"), "short-frame", 1, "at least 2"),
    ("FC12 response short", RESP, H("0C 04 00 00 01 08"), "short-frame", 6, "at least 8"),
    ("FC24 response short", RESP, H("18 00"), "short-frame", 2, "at least 3"),
    ("FC24 response no count", RESP, H("18 00 01 00"), "short-frame", 4, "at least 5"),
    ("FC43/14 response short", RESP, H("2B 0E 01 01 00 00"), "short-frame", 6, "at least 7"),
    # byte counts that disagree with the data: the offset is the byte-count byte
    ("FC01 response", RESP, H("01 06 CD 6B 05 00"), "byte-count-mismatch", 1, "says 6 but 4"),
    ("FC03 response", RESP, H("03 06 02 2B 00 00"), "byte-count-mismatch", 1, "says 6 but 4"),
    ("FC17 response", RESP, H("11 05 01 FF"), "byte-count-mismatch", 1, "says 5 but 2"),
    ("FC12 response", RESP, H("0C 08 00 00 01 08"), "byte-count-mismatch", 1, "says 8 but 4"),
    ("FC15 request", REQ, H("0F 00 13 00 0A 02 CD"), "byte-count-mismatch", 5, "says 2 but 1"),
    ("FC16 request", REQ, H("10 00 01 00 02 04 00 0A 01"), "byte-count-mismatch", 5, "says 4"),
    ("FC20 request", REQ, H("14 0E 06 00 04 00 01 00 02"), "byte-count-mismatch", 1, "says 14"),
    ("FC21 response", RESP, H("15 0E 06 00 04 00 07 00 01 06 AF"), "byte-count-mismatch", 1, ""),
    (
        "FC23 request",
        REQ,
        H("17 00 03 00 06 00 0E 00 03 06 00 FF 00 FF"),
        "byte-count-mismatch",
        9,
        "says 6 but 4",
    ),
    ("FC24 response", RESP, H("18 00 08 00 02 01 B8 12 84"), "byte-count-mismatch", 1, "says 8"),
    # register data of an odd length
    ("FC03 response odd", RESP, H("03 03 00 01 02"), "odd-register-bytes", 1, "3 bytes"),
    ("FC16 request odd", REQ, H("10 00 00 00 01 03 00 01 02"), "odd-register-bytes", 5, "3 bytes"),
    (
        "FC23 request odd",
        REQ,
        H("17 00 03 00 06 00 0E 00 01 01 FF"),
        "odd-register-bytes",
        9,
        "1 bytes",
    ),
    ("FC24 response odd", RESP, H("18 00 03 00 00 FF"), "odd-register-bytes", 1, "3 bytes"),
    ("FC20 response odd", RESP, H("14 03 02 06 0D"), "odd-register-bytes", 2, "1 bytes"),
    # item counts
    ("FIFO count", RESP, H("18 00 06 00 03 01 B8 12 84"), "count-mismatch", 3, "says 3 but 2"),
    (
        "device id objects",
        RESP,
        H("2B 0E 01 01 00 00 03 00 01 41 01 01 42"),
        "count-mismatch",
        6,
        "says 3 but 2",
    ),
    # sub-records
    (
        "FC20 partial sub-request",
        REQ,
        H("14 08 06 00 04 00 01 00 02 06"),
        "bad-sub-record",
        9,
        "7-byte sub-requests",
    ),
    (
        "FC21 record data overrun",
        REQ,
        H("15 0B 06 00 04 00 07 00 03 06 AF 04 BE"),
        "bad-sub-record",
        7,
        "record length 3 (6 bytes) but 4 bytes follow",
    ),
    (
        "FC21 partial header",
        REQ,
        H("15 0C 06 00 04 00 07 00 01 06 AF 06 00 04"),
        "bad-sub-record",
        11,
        "sub-request 2 has 3 bytes",
    ),
    ("FC20 response overrun", RESP, H("14 04 05 06 0D FE"), "bad-sub-record", 2, "5 bytes but 3"),
    ("FC20 response zero", RESP, H("14 01 00"), "bad-sub-record", 2, "length 0"),
    (
        "device id object overrun",
        RESP,
        H("2B 0E 01 01 00 00 01 00 05 41 42"),
        "bad-sub-record",
        8,
        "says 5 bytes but 2",
    ),
    (
        "device id object header",
        RESP,
        H("2B 0E 01 01 00 00 02 00 01 41 01"),
        "bad-sub-record",
        10,
        "header needs 2",
    ),
    (
        "device id trailing",
        RESP,
        H("2B 0E 01 01 00 00 01 00 01 41 FF"),
        "trailing-bytes",
        10,
        "1 objects",
    ),
    # ADUs
    ("TCP short", decode_tcp, H("00 01 00 00 00"), "short-frame", 5, "at least 8"),
    ("TCP missing PDU", decode_tcp, H("00 01 00 00 00 06 01 03"), "short-frame", 8, "needs 12"),
    ("TCP trailing", decode_tcp, H("00 01 00 00 00 02 01 07 07"), "trailing-bytes", 8, "1 byte"),
    ("TCP length 0", decode_tcp, H("00 01 00 00 00 00 01"), "bad-length-field", 4, "says 0"),
    ("TCP length 1", decode_tcp, H("00 01 00 00 00 01 01"), "bad-length-field", 4, "says 1"),
    ("TCP length 255", decode_tcp, H("00 01 00 00 00 FF 01"), "bad-length-field", 4, "2..254"),
    ("RTU short", decode_rtu, H("01 03 C5"), "short-frame", 3, "at least 4"),
    ("RTU bad CRC", decode_rtu, H("01 03 00 00 00 0A C5 CE"), "bad-crc", 6, "0xCEC5"),
    ("RTU too long", decode_rtu, encode_rtu(1, bytes(256)), "frame-too-long", 256, "259 bytes"),
]


@pytest.mark.parametrize(
    ("decoder", "data", "code", "offset", "words"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_malformed(
    decoder: Callable[[bytes], object], data: bytes, code: str, offset: int, words: str
) -> None:
    result = decoder(data)
    assert isinstance(result, Malformed), result
    assert (result.code, result.offset) == (code, offset), str(result)
    assert words in result.reason
    assert result.data == data
    assert str(result) == f"{result.reason} (at byte {offset})"
    assert code in MALFORMED_CODES


def test_bad_protocol_id_is_a_field_and_checked_on_request() -> None:
    adu = decode_tcp(H("00 01 00 07 00 02 01 07"))
    assert adu == TcpAdu(1, 1, b"\x07", protocol_id=7)
    assert isinstance(adu, TcpAdu) and not adu.is_modbus
    problem = check_protocol_id(adu)
    assert problem is not None
    assert (problem.code, problem.offset) == ("bad-protocol-id", 2)
    assert problem.data == H("00 01 00 07 00 02 01 07")
    assert check_protocol_id(TcpAdu(1, 1, b"\x07")) is None


def test_every_code_is_exercised() -> None:
    used = {c[3] for c in CASES} | {"bad-protocol-id"}
    assert used == set(MALFORMED_CODES)


def test_byte_count_example_from_the_brief() -> None:
    result = decode_response(H("03 06 00 01 00 02"))
    assert str(result) == "byte count says 6 but 4 data bytes follow (at byte 1)"


def test_decoders_accept_bytearray_and_memoryview() -> None:
    wire = H("03 00 6B 00 03")
    expected = decode_request(wire)
    assert decode_request(bytearray(wire)) == decode_request(memoryview(wire)) == expected
    bad = decode_request(bytearray(b""))
    assert isinstance(bad, Malformed) and type(bad.data) is bytes
