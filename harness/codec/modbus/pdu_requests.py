"""Modbus request PDUs: one frozen dataclass per function code, encode and structural decode.

Layouts follow the MODBUS Application Protocol Specification V1.1b3 section 6 (the section is
named in each class docstring).  Addresses are the 0-based PDU addresses of §4.4.

Decoding is *structural*: `decode_request` returns a `Malformed` only when the bytes cannot be
read as the function's layout (a byte count that disagrees with the data, bytes left over, a
short frame).  Values the spec tells a server to refuse with an exception (a quantity of 0, a
coil value other than 0x0000/0xFF00, a byte count that does not match the quantity) decode
normally, so a server can answer them and a test can send them; `rules.request_rule_violation`
says which exception they call for.  A server normally answers a `Malformed` request for a
function it supports with exception 03 (§7: "the implied length is incorrect").

`encode()` writes what the fields say, consistent or not, so tests can build bad requests; use
the `of(...)` constructors for consistent ones.  Standard library only.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .bits import pack_bits
from .constants import MAX_PDU_SIZE, MEI_READ_DEVICE_ID
from .malformed import (
    Malformed,
    bad_pdu_size,
    byte_count_mismatch,
    exact_length,
    odd_register_bytes,
    short_frame,
    wrong_length,
)

_B = struct.Struct(">B")
_BH = struct.Struct(">BH")
_BHH = struct.Struct(">BHH")
_BHHH = struct.Struct(">BHHH")
_BHHB = struct.Struct(">BHHB")
_BHHHHB = struct.Struct(">BHHHHB")
_SUB = struct.Struct(">BHHH")  # file record sub-request: reference type, file, record, length


def store_tuple(obj: object, name: str, value: Iterable[Any]) -> None:
    """Store `value` as a tuple on a frozen dataclass (callers may pass lists)."""
    if type(value) is not tuple:
        object.__setattr__(obj, name, tuple(value))


def _registers(values: Sequence[int]) -> bytes:
    return struct.pack(f">{len(values)}H", *values)


# --- fixed layouts: function code then the fields, in the order of `layout` -----------------


@dataclass(frozen=True, slots=True)
class _AddressQuantity:
    address: int
    quantity: int
    function_code: ClassVar[int]
    layout: ClassVar[struct.Struct] = _BHH

    def encode(self) -> bytes:
        return _BHH.pack(self.function_code, self.address, self.quantity)


@dataclass(frozen=True, slots=True)
class ReadCoilsRequest(_AddressQuantity):
    """FC01 Read Coils (§6.1): `quantity` coils (1..2000) from `address`."""

    function_code: ClassVar[int] = 0x01


@dataclass(frozen=True, slots=True)
class ReadDiscreteInputsRequest(_AddressQuantity):
    """FC02 Read Discrete Inputs (§6.2): `quantity` inputs (1..2000) from `address`."""

    function_code: ClassVar[int] = 0x02


@dataclass(frozen=True, slots=True)
class ReadHoldingRegistersRequest(_AddressQuantity):
    """FC03 Read Holding Registers (§6.3): `quantity` registers (1..125) from `address`."""

    function_code: ClassVar[int] = 0x03


@dataclass(frozen=True, slots=True)
class ReadInputRegistersRequest(_AddressQuantity):
    """FC04 Read Input Registers (§6.4): `quantity` registers (1..125) from `address`."""

    function_code: ClassVar[int] = 0x04


@dataclass(frozen=True, slots=True)
class WriteSingleCoilRequest:
    """FC05 Write Single Coil (§6.5): `value` is the raw u16, 0xFF00 = ON, 0x0000 = OFF."""

    address: int
    value: int
    function_code: ClassVar[int] = 0x05
    layout: ClassVar[struct.Struct] = _BHH

    def encode(self) -> bytes:
        return _BHH.pack(self.function_code, self.address, self.value)


@dataclass(frozen=True, slots=True)
class WriteSingleRegisterRequest:
    """FC06 Write Single Register (§6.6)."""

    address: int
    value: int
    function_code: ClassVar[int] = 0x06
    layout: ClassVar[struct.Struct] = _BHH

    def encode(self) -> bytes:
        return _BHH.pack(self.function_code, self.address, self.value)


@dataclass(frozen=True, slots=True)
class _NoFields:
    function_code: ClassVar[int]
    layout: ClassVar[struct.Struct] = _B

    def encode(self) -> bytes:
        return _B.pack(self.function_code)


@dataclass(frozen=True, slots=True)
class ReadExceptionStatusRequest(_NoFields):
    """FC07 Read Exception Status (§6.7, serial line only)."""

    function_code: ClassVar[int] = 0x07


@dataclass(frozen=True, slots=True)
class GetCommEventCounterRequest(_NoFields):
    """FC11 Get Comm Event Counter (§6.9, serial line only)."""

    function_code: ClassVar[int] = 0x0B


@dataclass(frozen=True, slots=True)
class GetCommEventLogRequest(_NoFields):
    """FC12 Get Comm Event Log (§6.10, serial line only)."""

    function_code: ClassVar[int] = 0x0C


@dataclass(frozen=True, slots=True)
class ReportServerIdRequest(_NoFields):
    """FC17 Report Server ID (§6.13, serial line only)."""

    function_code: ClassVar[int] = 0x11


@dataclass(frozen=True, slots=True)
class MaskWriteRegisterRequest:
    """FC22 Mask Write Register (§6.16): (current AND and_mask) OR (or_mask AND NOT and_mask)."""

    address: int
    and_mask: int
    or_mask: int
    function_code: ClassVar[int] = 0x16
    layout: ClassVar[struct.Struct] = _BHHH

    def encode(self) -> bytes:
        return _BHHH.pack(self.function_code, self.address, self.and_mask, self.or_mask)


@dataclass(frozen=True, slots=True)
class ReadFifoQueueRequest:
    """FC24 Read FIFO Queue (§6.18): `address` is the FIFO pointer address."""

    address: int
    function_code: ClassVar[int] = 0x18
    layout: ClassVar[struct.Struct] = _BH

    def encode(self) -> bytes:
        return _BH.pack(self.function_code, self.address)


# --- variable layouts --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiagnosticsRequest:
    """FC08 Diagnostics (§6.8, serial line only): sub-function code and its data."""

    sub_function: int
    data: bytes = b""
    function_code: ClassVar[int] = 0x08

    def encode(self) -> bytes:
        return _BH.pack(self.function_code, self.sub_function) + self.data


@dataclass(frozen=True, slots=True)
class WriteMultipleCoilsRequest:
    """FC15 Write Multiple Coils (§6.11): `byte_count` should be ceil(quantity / 8)."""

    address: int
    quantity: int
    byte_count: int
    data: bytes
    function_code: ClassVar[int] = 0x0F

    @classmethod
    def of(cls, address: int, bits: Sequence[bool]) -> WriteMultipleCoilsRequest:
        data = pack_bits(bits)
        return cls(address, len(bits), len(data), data)

    def encode(self) -> bytes:
        head = _BHHB.pack(self.function_code, self.address, self.quantity, self.byte_count)
        return head + self.data


@dataclass(frozen=True, slots=True)
class WriteMultipleRegistersRequest:
    """FC16 Write Multiple Registers (§6.12): `byte_count` should be 2 * quantity."""

    address: int
    quantity: int
    byte_count: int
    values: tuple[int, ...]
    function_code: ClassVar[int] = 0x10

    def __post_init__(self) -> None:
        store_tuple(self, "values", self.values)

    @classmethod
    def of(cls, address: int, values: Sequence[int]) -> WriteMultipleRegistersRequest:
        return cls(address, len(values), 2 * len(values), tuple(values))

    def encode(self) -> bytes:
        head = _BHHB.pack(self.function_code, self.address, self.quantity, self.byte_count)
        return head + _registers(self.values)


@dataclass(frozen=True, slots=True)
class FileSubRequest:
    """One sub-request of FC20: read `record_length` registers from a record of a file."""

    reference_type: int
    file_number: int
    record_number: int
    record_length: int


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One sub-request of FC21 (and its echo): write `values` at a record of a file."""

    reference_type: int
    file_number: int
    record_number: int
    values: tuple[int, ...]

    def __post_init__(self) -> None:
        store_tuple(self, "values", self.values)


@dataclass(frozen=True, slots=True)
class ReadFileRecordRequest:
    """FC20 Read File Record (§6.14): sub-requests of 7 bytes each; reference type is 6."""

    sub_requests: tuple[FileSubRequest, ...]
    function_code: ClassVar[int] = 0x14

    def __post_init__(self) -> None:
        store_tuple(self, "sub_requests", self.sub_requests)

    def encode(self) -> bytes:
        body = b"".join(
            _SUB.pack(s.reference_type, s.file_number, s.record_number, s.record_length)
            for s in self.sub_requests
        )
        return bytes((self.function_code, len(body))) + body


def encode_file_records(function_code: int, records: Sequence[FileRecord]) -> bytes:
    """FC21 request and response body: byte count then each record with its data."""
    body = b"".join(
        _SUB.pack(r.reference_type, r.file_number, r.record_number, len(r.values))
        + _registers(r.values)
        for r in records
    )
    return bytes((function_code, len(body))) + body


@dataclass(frozen=True, slots=True)
class WriteFileRecordRequest:
    """FC21 Write File Record (§6.15); the record length of each record is len(values)."""

    records: tuple[FileRecord, ...]
    function_code: ClassVar[int] = 0x15

    def __post_init__(self) -> None:
        store_tuple(self, "records", self.records)

    def encode(self) -> bytes:
        return encode_file_records(self.function_code, self.records)


@dataclass(frozen=True, slots=True)
class ReadWriteMultipleRegistersRequest:
    """FC23 Read/Write Multiple Registers (§6.17): the write is performed before the read."""

    read_address: int
    read_quantity: int
    write_address: int
    write_quantity: int
    write_byte_count: int
    write_values: tuple[int, ...]
    function_code: ClassVar[int] = 0x17

    def __post_init__(self) -> None:
        store_tuple(self, "write_values", self.write_values)

    @classmethod
    def of(
        cls, read_address: int, read_quantity: int, write_address: int, write_values: Sequence[int]
    ) -> ReadWriteMultipleRegistersRequest:
        n = len(write_values)
        return cls(read_address, read_quantity, write_address, n, 2 * n, tuple(write_values))

    def encode(self) -> bytes:
        head = _BHHHHB.pack(
            self.function_code,
            self.read_address,
            self.read_quantity,
            self.write_address,
            self.write_quantity,
            self.write_byte_count,
        )
        return head + _registers(self.write_values)


@dataclass(frozen=True, slots=True)
class ReadDeviceIdRequest:
    """FC43 / MEI 0x0E Read Device Identification (§6.21).

    `read_code` 1 basic, 2 regular, 3 extended (stream access), 4 one specific object.
    """

    read_code: int = 1
    object_id: int = 0
    function_code: ClassVar[int] = 0x2B
    mei_type: ClassVar[int] = MEI_READ_DEVICE_ID

    def encode(self) -> bytes:
        return bytes((self.function_code, self.mei_type, self.read_code, self.object_id))


@dataclass(frozen=True, slots=True)
class MeiRequest:
    """FC43 with any MEI type other than 0x0E (e.g. 0x0D CANopen, §6.20): raw data."""

    mei_type: int
    data: bytes = b""
    function_code: ClassVar[int] = 0x2B

    def encode(self) -> bytes:
        return bytes((self.function_code, self.mei_type)) + self.data


@dataclass(frozen=True, slots=True)
class UnknownRequest:
    """Any function code this codec does not define; a server answers exception 01."""

    function_code: int
    data: bytes = b""

    def encode(self) -> bytes:
        return bytes((self.function_code,)) + self.data


Request = (
    ReadCoilsRequest
    | ReadDiscreteInputsRequest
    | ReadHoldingRegistersRequest
    | ReadInputRegistersRequest
    | WriteSingleCoilRequest
    | WriteSingleRegisterRequest
    | ReadExceptionStatusRequest
    | DiagnosticsRequest
    | GetCommEventCounterRequest
    | GetCommEventLogRequest
    | WriteMultipleCoilsRequest
    | WriteMultipleRegistersRequest
    | ReportServerIdRequest
    | ReadFileRecordRequest
    | WriteFileRecordRequest
    | MaskWriteRegisterRequest
    | ReadWriteMultipleRegistersRequest
    | ReadFifoQueueRequest
    | ReadDeviceIdRequest
    | MeiRequest
    | UnknownRequest
)


# --- decoding ----------------------------------------------------------------------------

# Requests whose whole layout is one struct: function code, then the dataclass fields in order.
_FIXED: dict[int, Any] = {
    cls.function_code: cls
    for cls in (
        ReadCoilsRequest,
        ReadDiscreteInputsRequest,
        ReadHoldingRegistersRequest,
        ReadInputRegistersRequest,
        WriteSingleCoilRequest,
        WriteSingleRegisterRequest,
        ReadExceptionStatusRequest,
        GetCommEventCounterRequest,
        GetCommEventLogRequest,
        ReportServerIdRequest,
        MaskWriteRegisterRequest,
        ReadFifoQueueRequest,
    )
}


def _decode_diagnostics(pdu: bytes) -> Request | Malformed:
    if len(pdu) < 3:
        return short_frame(pdu, 3, "FC08 request")
    return DiagnosticsRequest(_BH.unpack_from(pdu)[1], pdu[3:])


def _decode_write_multiple_coils(pdu: bytes) -> Request | Malformed:
    if len(pdu) < 6:
        return short_frame(pdu, 6, "FC15 request")
    _, address, quantity, count = _BHHB.unpack_from(pdu)
    if count != len(pdu) - 6:
        return byte_count_mismatch(pdu, 5, count, len(pdu) - 6)
    return WriteMultipleCoilsRequest(address, quantity, count, pdu[6:])


def _decode_write_multiple_registers(pdu: bytes) -> Request | Malformed:
    if len(pdu) < 6:
        return short_frame(pdu, 6, "FC16 request")
    _, address, quantity, count = _BHHB.unpack_from(pdu)
    if count != len(pdu) - 6:
        return byte_count_mismatch(pdu, 5, count, len(pdu) - 6)
    if count & 1:
        return odd_register_bytes(pdu, 5, count)
    values = struct.unpack_from(f">{count // 2}H", pdu, 6)
    return WriteMultipleRegistersRequest(address, quantity, count, values)


def _decode_read_file_record(pdu: bytes) -> Request | Malformed:
    if len(pdu) < 2:
        return short_frame(pdu, 2, "FC20 request")
    count = pdu[1]
    if count != len(pdu) - 2:
        return byte_count_mismatch(pdu, 1, count, len(pdu) - 2)
    if count % _SUB.size:
        whole = count - count % _SUB.size
        reason = f"{count} bytes is not a whole number of 7-byte sub-requests"
        return Malformed("bad-sub-record", reason, 2 + whole, pdu)
    subs = tuple(FileSubRequest(*_SUB.unpack_from(pdu, i)) for i in range(2, len(pdu), _SUB.size))
    return ReadFileRecordRequest(subs)


def decode_file_records(pdu: bytes, what: str) -> tuple[FileRecord, ...] | Malformed:
    """The byte count and records of an FC21 request or response."""
    if len(pdu) < 2:
        return short_frame(pdu, 2, what)
    count = pdu[1]
    end = len(pdu)
    if count != end - 2:
        return byte_count_mismatch(pdu, 1, count, end - 2)
    records = []
    pos = 2
    while pos < end:
        n = len(records) + 1
        if end - pos < _SUB.size:
            reason = f"sub-request {n} has {end - pos} bytes but its header needs 7"
            return Malformed("bad-sub-record", reason, pos, pdu)
        ref, file_number, record_number, length = _SUB.unpack_from(pdu, pos)
        start = pos + _SUB.size
        if start + 2 * length > end:
            reason = (
                f"sub-request {n} says record length {length} ({2 * length} bytes)"
                f" but {end - start} bytes follow"
            )
            return Malformed("bad-sub-record", reason, pos + 5, pdu)
        values = struct.unpack_from(f">{length}H", pdu, start)
        records.append(FileRecord(ref, file_number, record_number, values))
        pos = start + 2 * length
    return tuple(records)


def _decode_write_file_record(pdu: bytes) -> Request | Malformed:
    records = decode_file_records(pdu, "FC21 request")
    if isinstance(records, Malformed):
        return records
    return WriteFileRecordRequest(records)


def _decode_read_write_multiple(pdu: bytes) -> Request | Malformed:
    size = _BHHHHB.size
    if len(pdu) < size:
        return short_frame(pdu, size, "FC23 request")
    _, r_addr, r_qty, w_addr, w_qty, count = _BHHHHB.unpack_from(pdu)
    if count != len(pdu) - size:
        return byte_count_mismatch(pdu, size - 1, count, len(pdu) - size)
    if count & 1:
        return odd_register_bytes(pdu, size - 1, count)
    values = struct.unpack_from(f">{count // 2}H", pdu, size)
    return ReadWriteMultipleRegistersRequest(r_addr, r_qty, w_addr, w_qty, count, values)


def _decode_mei(pdu: bytes) -> Request | Malformed:
    if len(pdu) < 2:
        return short_frame(pdu, 2, "FC43 request")
    if pdu[1] == MEI_READ_DEVICE_ID:
        problem = exact_length(pdu, 4, "FC43/14 request")
        return problem or ReadDeviceIdRequest(pdu[2], pdu[3])
    return MeiRequest(pdu[1], pdu[2:])


_VARIABLE: dict[int, Callable[[bytes], Request | Malformed]] = {
    0x08: _decode_diagnostics,
    0x0F: _decode_write_multiple_coils,
    0x10: _decode_write_multiple_registers,
    0x14: _decode_read_file_record,
    0x15: _decode_write_file_record,
    0x17: _decode_read_write_multiple,
    0x2B: _decode_mei,
}


def decode_request(pdu: bytes) -> Request | Malformed:
    """Read one request PDU (function code + data); never raises."""
    if type(pdu) is not bytes:
        pdu = bytes(pdu)
    if not 0 < len(pdu) <= MAX_PDU_SIZE:
        return bad_pdu_size(pdu)
    fc = pdu[0]
    cls = _FIXED.get(fc)
    if cls is not None:
        layout: struct.Struct = cls.layout
        if len(pdu) != layout.size:
            return wrong_length(pdu, layout.size, f"FC{fc:02d} request")
        return cls(*layout.unpack(pdu)[1:])
    decoder = _VARIABLE.get(fc)
    if decoder is None:
        return UnknownRequest(fc, pdu[1:])
    return decoder(pdu)
