"""Modbus ADUs: the MBAP header of Modbus TCP, the RTU frame with its CRC, a streaming framer.

- TCP (Messaging on TCP/IP Implementation Guide V1.0b §3.1.3): transaction id, protocol id
  (0 for Modbus), length (unit id + PDU bytes), unit id, then the PDU; big-endian.
- RTU (Serial Line Spec & Implementation Guide V1.02 §2.5.1, §6.2.2): address, PDU, CRC-16
  (polynomial 0xA001 reflected, initial 0xFFFF), CRC low byte first.

Decoders return a `Malformed` instead of raising.  They check framing only; the PDU inside is
left as bytes for `decode_request` / `decode_response`.  Standard library only, no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from .constants import (
    MAX_RTU_ADU_SIZE,
    MBAP_HEADER_SIZE,
    MBAP_MAX_LENGTH,
    MBAP_MIN_LENGTH,
)
from .malformed import Malformed, short_frame, trailing_bytes

_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id

# --- Modbus TCP --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TcpAdu:
    """One Modbus TCP frame: MBAP header fields and the PDU.

    `protocol_id` is whatever the frame carried.  The Implementation Guide (§4.4.2.2) has a
    server discard a frame whose protocol id is not 0: test `is_modbus(adu)` (or
    `adu.is_modbus`) before answering, or `check_protocol_id(adu)` for a `Malformed` to report.
    """

    transaction_id: int
    unit_id: int
    pdu: bytes
    protocol_id: int = 0

    @property
    def is_modbus(self) -> bool:
        """True when the protocol id is 0, the value that means Modbus."""
        return self.protocol_id == 0

    def encode(self) -> bytes:
        return encode_tcp(self.transaction_id, self.unit_id, self.pdu, self.protocol_id)


MBAP = TcpAdu  # the name the Implementation Guide uses for the header


def is_modbus(adu: TcpAdu) -> bool:
    """True when the frame's protocol id is 0 (Modbus); a server discards any other."""
    return adu.protocol_id == 0


def check_protocol_id(adu: TcpAdu) -> Malformed | None:
    """None for protocol id 0, else a "bad-protocol-id" Malformed pointing at bytes 2-3."""
    if adu.protocol_id == 0:
        return None
    reason = f"protocol id is 0x{adu.protocol_id:04X}, not 0 (Modbus)"
    return Malformed("bad-protocol-id", reason, 2, adu.encode())


def encode_tcp(
    transaction_id: int,
    unit_id: int,
    pdu: bytes,
    protocol_id: int = 0,
    length: int | None = None,
) -> bytes:
    """MBAP header + PDU.  `length=None` writes the correct len(pdu) + 1; pass one to lie."""
    if length is None:
        length = len(pdu) + 1
    try:
        return _MBAP.pack(transaction_id, protocol_id, length, unit_id) + pdu
    except struct.error as exc:
        raise ValueError(f"cannot encode MBAP header: {exc}") from None


def _bad_length(frame: bytes, length: int) -> Malformed:
    reason = (
        f"MBAP length field says {length}; it must be {MBAP_MIN_LENGTH}..{MBAP_MAX_LENGTH}"
        " (unit id plus a PDU of 1..253 bytes)"
    )
    return Malformed("bad-length-field", reason, 4, frame)


def decode_tcp(frame: bytes) -> TcpAdu | Malformed:
    """Read one complete Modbus TCP frame; never raises.

    Checks: at least 8 bytes, a length field of 2..254, and exactly that many bytes after the
    length field.  A non-zero protocol id is returned in the field, not rejected.
    """
    if type(frame) is not bytes:
        frame = bytes(frame)
    n = len(frame)
    if n < 6:
        return short_frame(frame, MBAP_HEADER_SIZE + 1, "an MBAP ADU")
    length = frame[4] << 8 | frame[5]
    if not MBAP_MIN_LENGTH <= length <= MBAP_MAX_LENGTH:
        return _bad_length(frame, length)
    end = 6 + length
    if n < end:
        return short_frame(frame, end, f"an MBAP ADU with length field {length}", at_least=False)
    if n > end:
        return trailing_bytes(frame, end, f"MBAP ADU of length field {length}")
    tid, pid, _, uid = _MBAP.unpack_from(frame)
    return TcpAdu(tid, uid, frame[MBAP_HEADER_SIZE:], pid)


class TcpFramer:
    """Splits a TCP byte stream into Modbus TCP frames, sans-io.

    `feed()` the bytes as they arrive, then call `next_frame()` until it returns None (more
    data needed).  A length field outside 2..254 makes the stream impossible to resynchronise:
    `next_frame()` returns a "bad-length-field" Malformed (data = the six header bytes up to
    and including the length field, offset 4), the framer sets `broken`, drops its buffer,
    ignores further input and returns None from then on; the caller should close the
    connection.  `pending()` gives the bytes of a frame begun but not complete.

    The buffer is consumed through an offset and compacted only once the consumed part is
    large, so a burst of many frames costs linear time.
    """

    _COMPACT_AT = 4096

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.broken = False

    def pending(self) -> bytes:
        """The bytes of a frame begun but not complete (evidence when a device stops mid-frame)."""
        return bytes(self._buf[self._pos :])

    def feed(self, data: bytes) -> None:
        if not self.broken:
            self._buf += data

    def next_frame(self) -> TcpAdu | Malformed | None:
        if self.broken:
            return None
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 6:
            return None
        length = buf[pos + 4] << 8 | buf[pos + 5]
        if not MBAP_MIN_LENGTH <= length <= MBAP_MAX_LENGTH:
            header = bytes(buf[pos : pos + 6])  # up to the length field, whatever the chunking
            self.broken = True
            self._buf = bytearray()
            self._pos = 0
            return _bad_length(header, length)
        end = pos + 6 + length
        if len(buf) < end:
            return None
        tid, pid, _, uid = _MBAP.unpack_from(buf, pos)
        adu = TcpAdu(tid, uid, bytes(buf[pos + MBAP_HEADER_SIZE : end]), pid)
        if end == len(buf):
            buf.clear()
            self._pos = 0
        elif end >= self._COMPACT_AT and 2 * end >= len(buf):
            del buf[:end]
            self._pos = 0
        else:
            self._pos = end
        return adu

    def frames(self) -> Iterator[TcpAdu | Malformed]:
        """Every complete frame buffered now (stops at the first Malformed)."""
        while (frame := self.next_frame()) is not None:
            yield frame


# --- Modbus RTU --------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """Modbus CRC-16 of `data` (poly 0xA001 reflected, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


@dataclass(frozen=True, slots=True)
class RtuAdu:
    """One Modbus RTU frame: the server address (0 = broadcast) and the PDU."""

    unit_id: int
    pdu: bytes

    def encode(self) -> bytes:
        return encode_rtu(self.unit_id, self.pdu)


def encode_rtu(unit_id: int, pdu: bytes, crc: int | None = None) -> bytes:
    """Address + PDU + CRC (low byte first).  `crc=None` computes it; pass one to send a bad one."""
    body = bytes((unit_id,)) + pdu
    if crc is None:
        crc = crc16(body)
    return body + bytes((crc & 0xFF, (crc >> 8) & 0xFF))


def decode_rtu(frame: bytes) -> RtuAdu | Malformed:
    """Read one complete RTU frame (as delimited by the 3.5-character silence); never raises."""
    if type(frame) is not bytes:
        frame = bytes(frame)
    n = len(frame)
    if n < 4:
        return short_frame(frame, 4, "an RTU ADU (address, function code, CRC)")
    if n > MAX_RTU_ADU_SIZE:
        reason = f"the RTU frame is {n} bytes, more than the {MAX_RTU_ADU_SIZE} allowed"
        return Malformed("frame-too-long", reason, MAX_RTU_ADU_SIZE, frame)
    expected = crc16(frame[:-2])
    sent = frame[-2] | frame[-1] << 8
    if sent != expected:
        reason = f"the frame's CRC is 0x{sent:04X} but its bytes give 0x{expected:04X}"
        return Malformed("bad-crc", reason, n - 2, frame)
    return RtuAdu(frame[0], frame[1:-2])
