"""The simulated device's memory: the four Modbus tables, built from a device profile.

Only the addresses a profile lists under `modbus.tables` exist; every other address is
"illegal" (exception 02).  The layout is chosen for the engine's hot path:

- a register table is one `bytearray` of big-endian 16-bit words covering exactly the table's
  extent, so a read of N registers at address A is the slice `words[2*(A-start):2*(A-start+N)]`
  and the bytes go to the wire as they are (Application Protocol V1.1b3 §4.2: big-endian);
- a bit table is one `bytearray` holding 0 or 1 per address, packed LSB-first only when read.

All access happens on the simulator's event loop, so no lock is needed for the server itself;
the helpers below (`read`, `write`, `get_point`, `set_point`) are each a single slice
operation, which is safe enough for a test poking values from another thread.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence

from harness.codec.modbus import datatypes
from harness.codec.modbus.constants import Table
from harness.profile import Point, Profile, decode_point, encode_point

# 0/1 per byte <-> ASCII '0'/'1', for packing bit tables through int() (fast, C level).
_BITS_TO_ASCII = bytes.maketrans(b"\x00\x01", b"01")
_ASCII_TO_BITS = bytes.maketrans(b"01", b"\x00\x01")


def pack_bits(bits: bytes | bytearray | memoryview) -> bytes:
    """0/1 bytes -> Modbus bit field: first bit in the LSB of the first byte, zero padded (§6.1)."""
    count = len(bits)
    if not count:
        return b""
    # Reversed, the first bit becomes the least significant digit of a binary number, and
    # little-endian bytes of that number put it in the LSB of the first byte.
    value = int(bytes(bits[::-1]).translate(_BITS_TO_ASCII), 2)
    return value.to_bytes((count + 7) // 8, "little")


def unpack_bits(field: bytes | bytearray | memoryview, count: int) -> bytes:
    """Modbus bit field -> `count` bytes of 0/1 (the inverse of `pack_bits`; padding ignored)."""
    if not count:
        return b""
    value = int.from_bytes(field, "little")
    digits = format(value, f"0{8 * len(field)}b")[::-1][:count]
    return digits.encode("ascii").translate(_ASCII_TO_BITS)


class _Block:
    """Extent shared by both kinds of table: addresses start..start+count-1 exist.

    `listeners` are told of every write a Modbus request makes (table, address, quantity);
    the device model uses them to show a Modbus write on the device's other protocol faces.
    """

    __slots__ = ("table", "start", "count", "listeners")

    def __init__(self, table: Table, start: int, count: int):
        self.table = table
        self.start = start
        self.count = count
        self.listeners: list[Callable[[Table, int, int], None]] = []

    def changed(self, address: int, quantity: int) -> None:
        for listener in self.listeners:
            listener(self.table, address, quantity)

    def contains(self, address: int, quantity: int = 1) -> bool:
        return self.start <= address and address + quantity <= self.start + self.count

    def _check(self, address: int, quantity: int) -> None:
        if quantity < 1 or not self.contains(address, quantity):
            raise IndexError(f"{self.table.value} {address}..{address + quantity - 1} is outside {self._extent()}")

    def _extent(self) -> str:
        if not self.count:
            return f"the profile's tables (no {self.table.value} exist)"
        return f"the existing range {self.start}..{self.start + self.count - 1}"


class RegisterBlock(_Block):
    """One register table: `words` holds `count` big-endian words, one per address."""

    __slots__ = ("words",)

    def __init__(self, table: Table, start: int = 0, count: int = 0):
        super().__init__(table, start, count)
        self.words = bytearray(2 * count)

    def read(self, address: int, quantity: int = 1) -> list[int]:
        self._check(address, quantity)
        offset = 2 * (address - self.start)
        return list(struct.unpack(f">{quantity}H", self.words[offset : offset + 2 * quantity]))

    def write(self, address: int, values: Sequence[int]) -> None:
        self._check(address, len(values))
        offset = 2 * (address - self.start)
        self.words[offset : offset + 2 * len(values)] = struct.pack(f">{len(values)}H", *values)


class BitBlock(_Block):
    """One bit table: `bits` holds 0 or 1 for each address."""

    __slots__ = ("bits",)

    def __init__(self, table: Table, start: int = 0, count: int = 0):
        super().__init__(table, start, count)
        self.bits = bytearray(count)

    def read(self, address: int, quantity: int = 1) -> list[int]:
        self._check(address, quantity)
        offset = address - self.start
        return list(self.bits[offset : offset + quantity])

    def write(self, address: int, values: Sequence[int]) -> None:
        self._check(address, len(values))
        offset = address - self.start
        self.bits[offset : offset + len(values)] = bytes(1 if v else 0 for v in values)


Block = RegisterBlock | BitBlock


class DataStore:
    """The four tables of one simulated device (Application Protocol V1.1b3 §4.3)."""

    def __init__(self, blocks: Iterable[Block], points: Iterable[Point] = ()):
        by_table = {b.table: b for b in blocks}
        for table in Table:
            if table not in by_table:
                by_table[table] = BitBlock(table) if table.is_bit else RegisterBlock(table)
        self.coils: BitBlock = by_table[Table.COILS]  # type: ignore[assignment]
        self.discrete_inputs: BitBlock = by_table[Table.DISCRETE_INPUTS]  # type: ignore[assignment]
        self.holding_registers: RegisterBlock = by_table[Table.HOLDING_REGISTERS]  # type: ignore[assignment]
        self.input_registers: RegisterBlock = by_table[Table.INPUT_REGISTERS]  # type: ignore[assignment]
        self.points: dict[str, Point] = {p.name: p for p in points}

    @classmethod
    def from_profile(cls, profile: Profile) -> DataStore:
        """Tables sized as the profile's `modbus.tables`, holding the points' initial values."""
        blocks: list[Block] = []
        tables = profile.modbus.tables if profile.modbus else {}
        for table, extent in tables.items():
            kind = BitBlock if table.is_bit else RegisterBlock
            blocks.append(kind(table, extent.start, extent.count))
        store = cls(blocks, [p for p in profile.points if p.table is not None])
        for point in store.points.values():
            if point.value is not None:
                store.block(point.table).write(point.address, point.words())
        return store

    def block(self, table: Table | str) -> Block:
        return {
            Table.COILS: self.coils,
            Table.DISCRETE_INPUTS: self.discrete_inputs,
            Table.HOLDING_REGISTERS: self.holding_registers,
            Table.INPUT_REGISTERS: self.input_registers,
        }[Table(table)]

    def read(self, table: Table | str, address: int, quantity: int = 1) -> list[int]:
        """Register words or 0/1 bits; IndexError outside the existing range."""
        return self.block(table).read(address, quantity)

    def write(self, table: Table | str, address: int, values: Sequence[int]) -> None:
        self.block(table).write(address, values)

    def get_point(self, name: str):
        """The raw typed value of a profile point as the device holds it now (a list for arrays)."""
        point = self.points[name]
        return decode_point(point, self.read(point.table, point.address, point.size))

    def set_point(self, name: str, value) -> None:
        """Store a raw value; no listener is told (the caller is the one changing it)."""
        point = self.points[name]
        for v in value if point.array else [value]:
            problem = datatypes.check_value(point.type, v, point.length)
            if problem:
                raise ValueError(f"point {name}: {problem}")
        self.write(point.table, point.address, encode_point(point, value))
