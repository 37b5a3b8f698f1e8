"""Malformed input as a value: what is wrong, and at which byte.

Every decoder in this package returns a `Malformed` instead of raising when the bytes do not
form a valid message, so a server can answer (or drop) and a test can report *where* a device
went wrong.  `CODES` is the complete table of machine codes the codec produces; the helpers
below build the common ones with a sentence a person understands.  Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from .constants import MAX_PDU_SIZE

# code -> what it means.  Tests check that every code here is produced somewhere.
CODES: dict[str, str] = {
    "empty-pdu": "the PDU has no function code byte",
    "pdu-too-long": "the PDU is longer than 253 bytes (Application Protocol §4.1)",
    "short-frame": "fewer bytes than the message layout needs",
    "trailing-bytes": "bytes left over after a complete message",
    "byte-count-mismatch": "a byte-count field disagrees with the number of bytes that follow",
    "odd-register-bytes": "register data of an odd number of bytes",
    "count-mismatch": "an item count (FIFO count, number of objects) disagrees with the items",
    "bad-sub-record": "a file-record sub-request/response or a device-id object does not fit",
    "bad-length-field": "the MBAP length field is outside 2..254",
    "bad-protocol-id": "the MBAP protocol identifier is not 0 (only from check_protocol_id)",
    "bad-crc": "the RTU CRC does not match the frame",
    "frame-too-long": "an RTU frame longer than 256 bytes",
}


@dataclass(frozen=True, slots=True)
class Malformed:
    """Bytes that are not a valid message.

    `offset` is the index, within `data` (the bytes passed to the decoder), of the byte where
    the problem is: the byte-count byte for a count that disagrees, the first missing byte for
    a short frame, the first extra byte for trailing bytes.
    """

    code: str
    reason: str
    offset: int
    data: bytes

    def __str__(self) -> str:
        return f"{self.reason} (at byte {self.offset})"


def short_frame(data: bytes, need: int, what: str, at_least: bool = True) -> Malformed:
    """`what` needs (at least) `need` bytes but `data` has fewer; points at the first missing."""
    qualifier = "at least " if at_least else ""
    reason = f"{what} needs {qualifier}{need} bytes but the frame has {len(data)}"
    return Malformed("short-frame", reason, len(data), data)


def trailing_bytes(data: bytes, end: int, what: str) -> Malformed:
    """`what` ends at `end` but `data` goes on; points at the first extra byte."""
    extra = len(data) - end
    plural = "byte" if extra == 1 else "bytes"
    return Malformed(
        "trailing-bytes", f"{extra} {plural} left over after the {what} ({end} bytes)", end, data
    )


def wrong_length(data: bytes, size: int, what: str) -> Malformed:
    """`what` is exactly `size` bytes but `data` is not: short-frame or trailing-bytes."""
    if len(data) < size:
        return short_frame(data, size, what, at_least=False)
    return trailing_bytes(data, size, what)


def exact_length(data: bytes, size: int, what: str) -> Malformed | None:
    """None when `data` is exactly `size` bytes, else short-frame or trailing-bytes."""
    return None if len(data) == size else wrong_length(data, size, what)


def byte_count_mismatch(data: bytes, at: int, declared: int, present: int) -> Malformed:
    """The byte count at offset `at` says `declared` but `present` data bytes follow."""
    return Malformed(
        "byte-count-mismatch",
        f"byte count says {declared} but {present} data bytes follow",
        at,
        data,
    )


def odd_register_bytes(data: bytes, at: int, count: int) -> Malformed:
    """A register field of `count` bytes (count stated at offset `at`) is not whole registers."""
    return Malformed(
        "odd-register-bytes",
        f"{count} bytes of register data is not a whole number of 16-bit registers",
        at,
        data,
    )


def bad_pdu_size(pdu: bytes) -> Malformed:
    """For a PDU that is empty or longer than 253 bytes (§4.1): say which."""
    if not pdu:
        return Malformed("empty-pdu", "the PDU is empty: there is no function code", 0, pdu)
    return Malformed(
        "pdu-too-long",
        f"the PDU is {len(pdu)} bytes, more than the {MAX_PDU_SIZE} allowed",
        MAX_PDU_SIZE,
        pdu,
    )
