"""Coil and discrete-input bit packing (Application Protocol V1.1b3 §6.1, §6.11).

The first bit is the least significant bit of the first byte; the last byte is padded with
zeros.  Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence


def pack_bits(bits: Sequence[bool]) -> bytes:
    """Bits -> bytes, LSB of the first byte first, zero-padded."""
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def unpack_bits(data: bytes, quantity: int | None = None) -> tuple[bool, ...]:
    """Bytes -> the first `quantity` bits (all 8 * len(data) when None).

    Raises ValueError when `data` holds fewer than `quantity` bits: the caller asked for more
    than the message carries.
    """
    available = 8 * len(data)
    if quantity is None:
        quantity = available
    elif not 0 <= quantity <= available:
        raise ValueError(f"asked for {quantity} bits but {len(data)} bytes hold {available}")
    return tuple(bool(data[i >> 3] & (1 << (i & 7))) for i in range(quantity))
