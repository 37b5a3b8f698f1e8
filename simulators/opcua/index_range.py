"""NumericRange / IndexRange (OPC UA Part 4 v1.04 §7.22) for one-dimensional arrays, as values.

"2" is one element, "1:3" elements 1 to 3 inclusive; the lower bound must be below the upper
("3:3" and "4:2" are invalid), and several dimensions are separated by commas.  Reading a
range that starts past the end gives Bad_IndexRangeNoData; one that runs past the end gives
the elements that exist.  Writing needs the whole range to exist and a value of exactly its
length (Part 4 §5.10.4.2).
"""

from __future__ import annotations

import re

from asyncua import ua

_BOUND = re.compile(r"^(\d+)(?::(\d+))?$")


class IndexRangeError(ValueError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_index_range(text: str) -> list[tuple[int, int]]:
    """'1:3' -> [(1, 3)]; every malformed range raises IndexRangeError(Bad_IndexRangeInvalid)."""
    dims = []
    for part in text.split(","):
        m = _BOUND.match(part.strip()) if part == part.strip() else None
        if m is None:
            raise IndexRangeError(ua.StatusCodes.BadIndexRangeInvalid, f"not a numeric range: {text!r}")
        low = int(m.group(1))
        high = int(m.group(2)) if m.group(2) is not None else low
        if m.group(2) is not None and low >= high:
            raise IndexRangeError(ua.StatusCodes.BadIndexRangeInvalid, f"lower bound not below upper: {text!r}")
        dims.append((low, high))
    return dims


def apply_read_range(value, dims: list[tuple[int, int]]):
    if not isinstance(value, list) or len(dims) != 1:
        raise IndexRangeError(ua.StatusCodes.BadIndexRangeNoData, "the value is not a one-dimensional array")
    low, high = dims[0]
    if low >= len(value):
        raise IndexRangeError(ua.StatusCodes.BadIndexRangeNoData, f"range starts at {low}, the array has {len(value)} elements")
    return value[low : high + 1]


def apply_write_range(current: list, dims: list[tuple[int, int]], new) -> list:
    """The whole array after writing `new` into the range."""
    if len(dims) != 1:
        raise IndexRangeError(ua.StatusCodes.BadIndexRangeNoData, "the array has one dimension")
    low, high = dims[0]
    if high >= len(current):
        raise IndexRangeError(ua.StatusCodes.BadIndexRangeNoData, f"range ends at {high}, the array has {len(current)} elements")
    if not isinstance(new, list) or len(new) != high - low + 1:
        raise IndexRangeError(ua.StatusCodes.BadIndexRangeInvalid, f"range {low}:{high} needs {high - low + 1} values")
    return current[:low] + list(new) + current[high + 1 :]
