"""Modbus response PDUs: one frozen dataclass per function code, encode and structural decode.

Layouts follow the MODBUS Application Protocol Specification V1.1b3 section 6; exception
responses (function code + 0x80, one exception code byte) follow §7.  A response is read
without the request that caused it, so `ReadCoilsResponse.bits` asks for the quantity.

`decode_response` returns a `Malformed` when the bytes cannot be read as the layout of their
function code: a byte count that disagrees with the data that follow, register data of an odd
length, bytes left over, a short frame.  Whether the response *answers* the request (right
count, echoed fields) is the caller's judgement.  Standard library only.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .bits import pack_bits, unpack_bits
from .constants import EXCEPTION_FLAG, MAX_PDU_SIZE, MEI_READ_DEVICE_ID
from .malformed import (
    Malformed,
    bad_pdu_size,
    byte_count_mismatch,
    odd_register_bytes,
    short_frame,
    trailing_bytes,
    wrong_length,
)
from .pdu_requests import FileRecord, decode_file_records, encode_file_records, store_tuple

_BB = struct.Struct(">BB")
_BH = struct.Struct(">BH")
_BHH = struct.Struct(">BHH")
_BHHH = struct.Struct(">BHHH")
_BBHHH = struct.Struct(">BBHHH")
_BHH_FIFO = struct.Struct(">BHH")  # function code, byte count, FIFO count


# --- bits and registers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _BitsResponse:
    data: bytes
    function_code: ClassVar[int]

    def bits(self, quantity: int | None = None) -> tuple[bool, ...]:
        """The first `quantity` bits (LSB of the first byte first); ValueError if too few."""
        return unpack_bits(self.data, quantity)

    def encode(self) -> bytes:
        return _BB.pack(self.function_code, len(self.data)) + self.data


@dataclass(frozen=True, slots=True)
class ReadCoilsResponse(_BitsResponse):
    """FC01 response (§6.1): byte count then the coil bits, zero-padded."""

    function_code: ClassVar[int] = 0x01

    @classmethod
    def of(cls, bits: Sequence[bool]) -> ReadCoilsResponse:
        return cls(pack_bits(bits))


@dataclass(frozen=True, slots=True)
class ReadDiscreteInputsResponse(_BitsResponse):
    """FC02 response (§6.2): byte count then the input bits, zero-padded."""

    function_code: ClassVar[int] = 0x02

    @classmethod
    def of(cls, bits: Sequence[bool]) -> ReadDiscreteInputsResponse:
        return cls(pack_bits(bits))


@dataclass(frozen=True, slots=True)
class _RegistersResponse:
    values: tuple[int, ...]
    function_code: ClassVar[int]

    def __post_init__(self) -> None:
        store_tuple(self, "values", self.values)

    def encode(self) -> bytes:
        n = len(self.values)
        return struct.pack(f">BB{n}H", self.function_code, 2 * n, *self.values)


@dataclass(frozen=True, slots=True)
class ReadHoldingRegistersResponse(_RegistersResponse):
    """FC03 response (§6.3): byte count (2 x N) then N registers."""

    function_code: ClassVar[int] = 0x03


@dataclass(frozen=True, slots=True)
class ReadInputRegistersResponse(_RegistersResponse):
    """FC04 response (§6.4): byte count (2 x N) then N registers."""

    function_code: ClassVar[int] = 0x04


@dataclass(frozen=True, slots=True)
class ReadWriteMultipleRegistersResponse(_RegistersResponse):
    """FC23 response (§6.17): byte count (2 x N) then the N registers read."""

    function_code: ClassVar[int] = 0x17


@dataclass(frozen=True, slots=True)
class ReadFifoQueueResponse:
    """FC24 response (§6.18): 2-byte byte count, 2-byte FIFO count, then the registers."""

    values: tuple[int, ...]
    function_code: ClassVar[int] = 0x18

    def __post_init__(self) -> None:
        store_tuple(self, "values", self.values)

    def encode(self) -> bytes:
        n = len(self.values)
        return struct.pack(f">BHH{n}H", self.function_code, 2 + 2 * n, n, *self.values)


# --- fixed layouts: function code then the fields, in the order of `layout` ---------------


@dataclass(frozen=True, slots=True)
class _AddressValue:
    address: int
    value: int
    function_code: ClassVar[int]
    layout: ClassVar[struct.Struct] = _BHH

    def encode(self) -> bytes:
        return _BHH.pack(self.function_code, self.address, self.value)


@dataclass(frozen=True, slots=True)
class WriteSingleCoilResponse(_AddressValue):
    """FC05 response (§6.5): an echo of the request."""

    function_code: ClassVar[int] = 0x05


@dataclass(frozen=True, slots=True)
class WriteSingleRegisterResponse(_AddressValue):
    """FC06 response (§6.6): an echo of the request."""

    function_code: ClassVar[int] = 0x06


@dataclass(frozen=True, slots=True)
class _AddressQuantity:
    address: int
    quantity: int
    function_code: ClassVar[int]
    layout: ClassVar[struct.Struct] = _BHH

    def encode(self) -> bytes:
        return _BHH.pack(self.function_code, self.address, self.quantity)


@dataclass(frozen=True, slots=True)
class WriteMultipleCoilsResponse(_AddressQuantity):
    """FC15 response (§6.11): starting address and quantity of coils written."""

    function_code: ClassVar[int] = 0x0F


@dataclass(frozen=True, slots=True)
class WriteMultipleRegistersResponse(_AddressQuantity):
    """FC16 response (§6.12): starting address and quantity of registers written."""

    function_code: ClassVar[int] = 0x10


@dataclass(frozen=True, slots=True)
class MaskWriteRegisterResponse:
    """FC22 response (§6.16): an echo of the request."""

    address: int
    and_mask: int
    or_mask: int
    function_code: ClassVar[int] = 0x16
    layout: ClassVar[struct.Struct] = _BHHH

    def encode(self) -> bytes:
        return _BHHH.pack(self.function_code, self.address, self.and_mask, self.or_mask)


@dataclass(frozen=True, slots=True)
class ReadExceptionStatusResponse:
    """FC07 response (§6.7): one byte of eight exception status outputs."""

    status: int
    function_code: ClassVar[int] = 0x07
    layout: ClassVar[struct.Struct] = _BB

    def encode(self) -> bytes:
        return _BB.pack(self.function_code, self.status)


@dataclass(frozen=True, slots=True)
class GetCommEventCounterResponse:
    """FC11 response (§6.9): status word (0xFFFF busy) and event count."""

    status: int
    event_count: int
    function_code: ClassVar[int] = 0x0B
    layout: ClassVar[struct.Struct] = _BHH

    def encode(self) -> bytes:
        return _BHH.pack(self.function_code, self.status, self.event_count)


# --- other variable layouts --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiagnosticsResponse:
    """FC08 response (§6.8): sub-function and data (an echo for sub-function 0x0000)."""

    sub_function: int
    data: bytes = b""
    function_code: ClassVar[int] = 0x08

    def encode(self) -> bytes:
        return _BH.pack(self.function_code, self.sub_function) + self.data


@dataclass(frozen=True, slots=True)
class GetCommEventLogResponse:
    """FC12 response (§6.10): byte count, status, event count, message count, events."""

    status: int
    event_count: int
    message_count: int
    events: bytes = b""
    function_code: ClassVar[int] = 0x0C

    def encode(self) -> bytes:
        head = _BBHHH.pack(
            self.function_code,
            6 + len(self.events),
            self.status,
            self.event_count,
            self.message_count,
        )
        return head + self.events


@dataclass(frozen=True, slots=True)
class ReportServerIdResponse:
    """FC17 response (§6.13): byte count then device-specific data (server id, run status...)."""

    data: bytes
    function_code: ClassVar[int] = 0x11

    def encode(self) -> bytes:
        return _BB.pack(self.function_code, len(self.data)) + self.data


@dataclass(frozen=True, slots=True)
class ReadFileRecordResponse:
    """FC20 response (§6.14): per sub-request, (reference type, register values)."""

    records: tuple[tuple[int, tuple[int, ...]], ...]
    function_code: ClassVar[int] = 0x14

    def __post_init__(self) -> None:
        if type(self.records) is not tuple or any(type(r[1]) is not tuple for r in self.records):
            records = tuple((ref, tuple(values)) for ref, values in self.records)
            object.__setattr__(self, "records", records)

    def encode(self) -> bytes:
        parts = []
        for ref, values in self.records:
            n = len(values)
            parts.append(struct.pack(f">BB{n}H", 1 + 2 * n, ref, *values))
        body = b"".join(parts)
        return _BB.pack(self.function_code, len(body)) + body


@dataclass(frozen=True, slots=True)
class WriteFileRecordResponse:
    """FC21 response (§6.15): an echo of the request."""

    records: tuple[FileRecord, ...]
    function_code: ClassVar[int] = 0x15

    def __post_init__(self) -> None:
        store_tuple(self, "records", self.records)

    def encode(self) -> bytes:
        return encode_file_records(self.function_code, self.records)


@dataclass(frozen=True, slots=True)
class ReadDeviceIdResponse:
    """FC43 / MEI 0x0E Read Device Identification response (§6.21).

    `more_follows` is 0x00 or 0xFF; `objects` are (object id, value bytes) in wire order.
    """

    read_code: int
    conformity_level: int
    more_follows: int
    next_object_id: int
    objects: tuple[tuple[int, bytes], ...]
    function_code: ClassVar[int] = 0x2B
    mei_type: ClassVar[int] = MEI_READ_DEVICE_ID

    def __post_init__(self) -> None:
        if type(self.objects) is not tuple:
            object.__setattr__(self, "objects", tuple((i, bytes(v)) for i, v in self.objects))

    def encode(self) -> bytes:
        out = bytearray(
            (
                self.function_code,
                self.mei_type,
                self.read_code,
                self.conformity_level,
                self.more_follows,
                self.next_object_id,
                len(self.objects),
            )
        )
        for object_id, value in self.objects:
            out += bytes((object_id, len(value)))
            out += value
        return bytes(out)


@dataclass(frozen=True, slots=True)
class MeiResponse:
    """FC43 response with any MEI type other than 0x0E: raw data."""

    mei_type: int
    data: bytes = b""
    function_code: ClassVar[int] = 0x2B

    def encode(self) -> bytes:
        return bytes((self.function_code, self.mei_type)) + self.data


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """§7: `function_code` is the request's code (without 0x80); wire byte is code | 0x80."""

    function_code: int
    exception_code: int

    def encode(self) -> bytes:
        return _BB.pack(self.function_code | EXCEPTION_FLAG, self.exception_code)


@dataclass(frozen=True, slots=True)
class UnknownResponse:
    """A response with a function code this codec does not define (below 0x80)."""

    function_code: int
    data: bytes = b""

    def encode(self) -> bytes:
        return bytes((self.function_code,)) + self.data


Response = (
    ReadCoilsResponse
    | ReadDiscreteInputsResponse
    | ReadHoldingRegistersResponse
    | ReadInputRegistersResponse
    | WriteSingleCoilResponse
    | WriteSingleRegisterResponse
    | ReadExceptionStatusResponse
    | DiagnosticsResponse
    | GetCommEventCounterResponse
    | GetCommEventLogResponse
    | WriteMultipleCoilsResponse
    | WriteMultipleRegistersResponse
    | ReportServerIdResponse
    | ReadFileRecordResponse
    | WriteFileRecordResponse
    | MaskWriteRegisterResponse
    | ReadWriteMultipleRegistersResponse
    | ReadFifoQueueResponse
    | ReadDeviceIdResponse
    | MeiResponse
    | UnknownResponse
)


# --- decoding ----------------------------------------------------------------------------

_FIXED: dict[int, Any] = {
    cls.function_code: cls
    for cls in (
        WriteSingleCoilResponse,
        WriteSingleRegisterResponse,
        ReadExceptionStatusResponse,
        GetCommEventCounterResponse,
        WriteMultipleCoilsResponse,
        WriteMultipleRegistersResponse,
        MaskWriteRegisterResponse,
    )
}


def _counted(pdu: bytes, what: str) -> Malformed | None:
    """Check `fc, byte count, data`: the byte count must equal the bytes that follow."""
    if len(pdu) < 2:
        return short_frame(pdu, 2, what)
    if pdu[1] != len(pdu) - 2:
        return byte_count_mismatch(pdu, 1, pdu[1], len(pdu) - 2)
    return None


def _bits_decoder(cls: Any) -> Callable[[bytes], Response | Malformed]:
    what = f"FC{cls.function_code:02d} response"

    def decode(pdu: bytes) -> Response | Malformed:
        return _counted(pdu, what) or cls(pdu[2:])

    return decode


def _registers_decoder(cls: Any) -> Callable[[bytes], Response | Malformed]:
    what = f"FC{cls.function_code:02d} response"

    def decode(pdu: bytes) -> Response | Malformed:
        problem = _counted(pdu, what)
        if problem is not None:
            return problem
        count = pdu[1]
        if count & 1:
            return odd_register_bytes(pdu, 1, count)
        return cls(struct.unpack_from(f">{count // 2}H", pdu, 2))

    return decode


def _decode_diagnostics(pdu: bytes) -> Response | Malformed:
    if len(pdu) < 3:
        return short_frame(pdu, 3, "FC08 response")
    return DiagnosticsResponse(_BH.unpack_from(pdu)[1], pdu[3:])


def _decode_comm_event_log(pdu: bytes) -> Response | Malformed:
    problem = _counted(pdu, "FC12 response")
    if problem is not None:
        return problem
    if len(pdu) < _BBHHH.size:
        return short_frame(pdu, _BBHHH.size, "FC12 response")
    _, _, status, events, messages = _BBHHH.unpack_from(pdu)
    return GetCommEventLogResponse(status, events, messages, pdu[_BBHHH.size :])


def _decode_report_server_id(pdu: bytes) -> Response | Malformed:
    return _counted(pdu, "FC17 response") or ReportServerIdResponse(pdu[2:])


def _decode_read_file_record(pdu: bytes) -> Response | Malformed:
    problem = _counted(pdu, "FC20 response")
    if problem is not None:
        return problem
    records = []
    pos, end = 2, len(pdu)
    while pos < end:
        length = pdu[pos]  # reference type + register bytes
        n = len(records) + 1
        if length == 0 or pos + 1 + length > end:
            reason = (
                f"sub-response {n} says {length} bytes but {end - pos - 1} follow"
                if length
                else f"sub-response {n} has length 0: no reference type"
            )
            return Malformed("bad-sub-record", reason, pos, pdu)
        if not length & 1:
            return odd_register_bytes(pdu, pos, length - 1)
        values = struct.unpack_from(f">{(length - 1) // 2}H", pdu, pos + 2)
        records.append((pdu[pos + 1], values))
        pos += 1 + length
    return ReadFileRecordResponse(tuple(records))


def _decode_write_file_record(pdu: bytes) -> Response | Malformed:
    records = decode_file_records(pdu, "FC21 response")
    if isinstance(records, Malformed):
        return records
    return WriteFileRecordResponse(records)


def _decode_fifo(pdu: bytes) -> Response | Malformed:
    if len(pdu) < 3:
        return short_frame(pdu, 3, "FC24 response")
    count = _BH.unpack_from(pdu)[1]
    if count != len(pdu) - 3:
        return byte_count_mismatch(pdu, 1, count, len(pdu) - 3)
    if len(pdu) < _BHH_FIFO.size:
        return short_frame(pdu, _BHH_FIFO.size, "FC24 response")
    if count & 1:
        return odd_register_bytes(pdu, 1, count)
    fifo_count = _BHH_FIFO.unpack_from(pdu)[2]
    present = (count - 2) // 2
    if fifo_count != present:
        reason = f"FIFO count says {fifo_count} but {present} registers follow"
        return Malformed("count-mismatch", reason, 3, pdu)
    return ReadFifoQueueResponse(struct.unpack_from(f">{present}H", pdu, 5))


def _decode_device_id(pdu: bytes) -> Response | Malformed:
    if len(pdu) < 7:
        return short_frame(pdu, 7, "FC43/14 response")
    read_code, conformity, more, next_id, count = pdu[2:7]
    objects = []
    pos, end = 7, len(pdu)
    for i in range(count):
        if pos >= end:
            reason = f"number of objects says {count} but {i} objects follow"
            return Malformed("count-mismatch", reason, 6, pdu)
        if pos + 2 > end:
            reason = f"object {i + 1} has 1 byte but its header needs 2"
            return Malformed("bad-sub-record", reason, pos, pdu)
        object_id, length = pdu[pos], pdu[pos + 1]
        if pos + 2 + length > end:
            reason = f"object 0x{object_id:02X} says {length} bytes but {end - pos - 2} follow"
            return Malformed("bad-sub-record", reason, pos + 1, pdu)
        objects.append((object_id, pdu[pos + 2 : pos + 2 + length]))
        pos += 2 + length
    if pos != end:
        return trailing_bytes(pdu, pos, f"{count} objects of the FC43/14 response")
    return ReadDeviceIdResponse(read_code, conformity, more, next_id, tuple(objects))


def _decode_mei(pdu: bytes) -> Response | Malformed:
    if len(pdu) < 2:
        return short_frame(pdu, 2, "FC43 response")
    if pdu[1] == MEI_READ_DEVICE_ID:
        return _decode_device_id(pdu)
    return MeiResponse(pdu[1], pdu[2:])


_VARIABLE: dict[int, Callable[[bytes], Response | Malformed]] = {
    0x01: _bits_decoder(ReadCoilsResponse),
    0x02: _bits_decoder(ReadDiscreteInputsResponse),
    0x03: _registers_decoder(ReadHoldingRegistersResponse),
    0x04: _registers_decoder(ReadInputRegistersResponse),
    0x08: _decode_diagnostics,
    0x0C: _decode_comm_event_log,
    0x11: _decode_report_server_id,
    0x14: _decode_read_file_record,
    0x15: _decode_write_file_record,
    0x17: _registers_decoder(ReadWriteMultipleRegistersResponse),
    0x18: _decode_fifo,
    0x2B: _decode_mei,
}


def decode_response(pdu: bytes) -> Response | ExceptionResponse | Malformed:
    """Read one response PDU (function code + data); never raises."""
    if type(pdu) is not bytes:
        pdu = bytes(pdu)
    if not 0 < len(pdu) <= MAX_PDU_SIZE:
        return bad_pdu_size(pdu)
    fc = pdu[0]
    if fc & EXCEPTION_FLAG:
        if len(pdu) != 2:
            return wrong_length(pdu, 2, "exception response")
        return ExceptionResponse(fc & 0x7F, pdu[1])
    decoder = _VARIABLE.get(fc)
    if decoder is not None:
        return decoder(pdu)
    cls = _FIXED.get(fc)
    if cls is not None:
        layout: struct.Struct = cls.layout
        if len(pdu) != layout.size:
            return wrong_length(pdu, layout.size, f"FC{fc:02d} response")
        return cls(*layout.unpack(pdu)[1:])
    return UnknownResponse(fc, pdu[1:])
