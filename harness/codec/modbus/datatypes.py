"""Typed data points <-> 16-bit registers (standard library only).

Modbus registers are big-endian 16-bit words (Application Protocol V1.1b3 §4.2).  Values wider
than one register span several; the order of those words is not specified and varies between
devices, so every point names its `word_order`: "big" (most significant word first, the common
default) or "little".  Strings are packed two characters a register, first character in the
high byte, padded with NUL.
"""

from __future__ import annotations

import math
import struct

# type -> (struct format of the whole big-endian value, register count)
_NUMERIC = {
    "int16": (">h", 1),
    "uint16": (">H", 1),
    "int32": (">i", 2),
    "uint32": (">I", 2),
    "float32": (">f", 2),
    "float64": (">d", 4),
}
POINT_TYPES = ("bool", *_NUMERIC, "string")
WORD_ORDERS = ("big", "little")

_INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}


def register_count(point_type: str, length: int = 0) -> int:
    """How many registers a value of this type occupies (`length` in characters for strings)."""
    if point_type == "string":
        return (length + 1) // 2
    if point_type == "bool":
        return 1
    return _NUMERIC[point_type][1]


def check_value(point_type: str, value: object, length: int = 0) -> str | None:
    """None when `value` fits the type, else a sentence saying why not."""
    if point_type == "bool":
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if point_type == "string":
        if not isinstance(value, str):
            return f"expected a string, got {value!r}"
        if len(value.encode("utf-8")) > length:
            return f"{value!r} is longer than the point's length of {length} bytes"
        return None
    if point_type in _INT_RANGES:
        lo, hi = _INT_RANGES[point_type]
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {value!r}"
        if not lo <= value <= hi:
            return f"{value} is outside the {point_type} range {lo}..{hi}"
        return None
    if point_type in ("float32", "float64"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {value!r}"
        return None
    return f"unknown type {point_type!r}"


def encode(point_type: str, value, word_order: str = "big", length: int = 0) -> list[int]:
    """Value -> register words, most significant first within each word."""
    if point_type == "string":
        raw = value.encode("utf-8").ljust(2 * register_count("string", length), b"\0")
        words = list(struct.unpack(f">{len(raw) // 2}H", raw))
        return words  # strings keep character order whatever the word order
    if point_type == "bool":
        return [1 if value else 0]
    fmt, count = _NUMERIC[point_type]
    if point_type.startswith("int") or point_type.startswith("uint"):
        value = int(value)
    raw = struct.pack(fmt, value)
    words = list(struct.unpack(f">{count}H", raw))
    if word_order == "little":
        words.reverse()
    return words


def decode(point_type: str, words: list[int], word_order: str = "big"):
    """Register words -> value; the inverse of `encode`."""
    if point_type == "string":
        raw = struct.pack(f">{len(words)}H", *words)
        return raw.rstrip(b"\0").decode("utf-8", errors="replace")
    if point_type == "bool":
        return bool(words[0])
    fmt, count = _NUMERIC[point_type]
    words = list(words[:count])
    if word_order == "little":
        words.reverse()
    return struct.unpack(fmt, struct.pack(f">{count}H", *words))[0]


def same_value(point_type: str, expected, observed) -> bool:
    """Equality as the type defines it: float32 compares after rounding to float32."""
    if point_type == "float32":
        exp = struct.unpack(">f", struct.pack(">f", float(expected)))[0]
        return (math.isnan(exp) and math.isnan(observed)) or exp == observed
    if point_type == "float64":
        return (math.isnan(expected) and math.isnan(observed)) or float(expected) == observed
    return expected == observed
