"""Sans-io Modbus server engine: request PDU in, response PDU out, exactly as the spec says.

MODBUS Application Protocol Specification V1.1b3 is the reference for every answer:

- the checks run in the order of the per-function state diagrams (§6.x, and Figure 9 of §4.5):
  function code supported (else exception 01) -> quantity, value and byte count (else 03) ->
  start address and start+quantity inside the existing range (else 02) -> execute (04 on
  failure).  A request wrong in both quantity and address therefore answers 03;
- a function code the profile does not claim answers 01, whatever it is;
- the PDU's length must be exactly what the function defines.  A truncated or over-long PDU
  answers 03: §7 defines ILLEGAL DATA VALUE as "a fault in the structure of the remainder of a
  complex request, such as that the implied length is incorrect".

Hot path: `ModbusEngine.respond_into(out, buf, start, end)` appends the response to a
caller-owned bytearray and reads the request in place (`struct.unpack_from`), so a read costs
no intermediate objects beyond the slice of register bytes.  `handle_pdu(pdu)` is the plain
bytes-in/bytes-out form of the same thing for tests and other transports.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

from harness.codec.modbus.constants import (
    COIL_OFF,
    COIL_ON,
    MAX_PDU_SIZE,
    MEI_READ_DEVICE_ID,
    QUANTITY_LIMITS,
    ExceptionCode,
    FunctionCode,
    ReadDeviceIdCode,
)
from harness.profile import ID_LEVELS, Profile

from .datastore import BitBlock, DataStore, RegisterBlock, pack_bits, unpack_bits

log = logging.getLogger("simulators.modbus")

# handler(out, buf, start, end): buf[start:end] is the request PDU (buf[start] its function
# code); the handler appends the response PDU to `out`.
Handler = Callable[[bytearray, bytes, int, int], None]

_ADDRESS_QUANTITY = struct.Struct(">HH")
_MASK_WRITE = struct.Struct(">HHH")
_READ_WRITE = struct.Struct(">HHHHB")
_UINT16 = struct.Struct(">H")

ILLEGAL_FUNCTION = ExceptionCode.ILLEGAL_FUNCTION.value
ILLEGAL_DATA_ADDRESS = ExceptionCode.ILLEGAL_DATA_ADDRESS.value
ILLEGAL_DATA_VALUE = ExceptionCode.ILLEGAL_DATA_VALUE.value
SERVER_DEVICE_FAILURE = ExceptionCode.SERVER_DEVICE_FAILURE.value


def exception_pdu(function_code: int, code: int) -> bytes:
    """Exception response PDU: function code with the high bit set, then the code (§7)."""
    return bytes(((function_code | 0x80) & 0xFF, code & 0xFF))


def _limits(fc: FunctionCode, field: str = "quantity") -> tuple[int, int]:
    limit = QUANTITY_LIMITS[(fc, field)]
    return limit.low, limit.high


# --------------------------------------------------------------------------- handlers


def _illegal_function(out: bytearray, buf: bytes, start: int, end: int) -> None:
    out.append((buf[start] | 0x80) & 0xFF)
    out.append(ILLEGAL_FUNCTION)


def _read_bits(fc: int, block: BitBlock) -> Handler:
    """FC01 Read Coils (§6.1), FC02 Read Discrete Inputs (§6.2)."""
    low, high = _limits(FunctionCode(fc))
    bits, first, count = block.bits, block.start, block.count
    unpack = _ADDRESS_QUANTITY.unpack_from

    def handle(out: bytearray, buf: bytes, start: int, end: int) -> None:
        if end - start != 5:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        address, quantity = unpack(buf, start + 1)
        if not low <= quantity <= high:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        offset = address - first
        if offset < 0 or offset + quantity > count:
            out += exception_pdu(fc, ILLEGAL_DATA_ADDRESS)
            return
        out.append(fc)
        out.append((quantity + 7) >> 3)
        out += pack_bits(bits[offset : offset + quantity])

    return handle


def _read_registers(fc: int, block: RegisterBlock) -> Handler:
    """FC03 Read Holding Registers (§6.3), FC04 Read Input Registers (§6.4)."""
    low, high = _limits(FunctionCode(fc))
    view, first, count = memoryview(block.words), block.start, block.count
    heads = [bytes((fc, (2 * q) & 0xFF)) for q in range(high + 1)]
    unpack = _ADDRESS_QUANTITY.unpack_from

    def handle(out: bytearray, buf: bytes, start: int, end: int) -> None:
        if end - start != 5:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        address, quantity = unpack(buf, start + 1)
        if not low <= quantity <= high:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        offset = address - first
        if offset < 0 or offset + quantity > count:
            out += exception_pdu(fc, ILLEGAL_DATA_ADDRESS)
            return
        out += heads[quantity]
        out += view[2 * offset : 2 * (offset + quantity)]

    return handle


def _write_single_coil(fc: int, block: BitBlock) -> Handler:
    """FC05 (§6.5): value 0x0000 or 0xFF00 (else 03), then address (else 02); echo."""
    bits, first, count, changed = block.bits, block.start, block.count, block.changed
    unpack = _ADDRESS_QUANTITY.unpack_from

    def handle(out: bytearray, buf: bytes, start: int, end: int) -> None:
        if end - start != 5:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        address, value = unpack(buf, start + 1)
        if value != COIL_ON and value != COIL_OFF:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        offset = address - first
        if offset < 0 or offset >= count:
            out += exception_pdu(fc, ILLEGAL_DATA_ADDRESS)
            return
        bits[offset] = 1 if value else 0
        changed(address, 1)
        out += buf[start:end]

    return handle


def _write_single_register(fc: int, block: RegisterBlock) -> Handler:
    """FC06 (§6.6): any 16-bit value is legal; address (else 02); echo."""
    words, first, count, changed = block.words, block.start, block.count, block.changed

    def handle(out: bytearray, buf: bytes, start: int, end: int) -> None:
        if end - start != 5:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        offset = (buf[start + 1] << 8 | buf[start + 2]) - first
        if offset < 0 or offset >= count:
            out += exception_pdu(fc, ILLEGAL_DATA_ADDRESS)
            return
        words[2 * offset : 2 * offset + 2] = buf[start + 3 : end]
        changed(offset + first, 1)
        out += buf[start:end]

    return handle


def _write_multiple_coils(fc: int, block: BitBlock) -> Handler:
    """FC15 (§6.11): 1..1968 and byte count N = ceil(qty/8) (else 03), then address (else 02)."""
    low, high = _limits(FunctionCode(fc))
    bits, first, count, changed = block.bits, block.start, block.count, block.changed
    unpack = _ADDRESS_QUANTITY.unpack_from

    def handle(out: bytearray, buf: bytes, start: int, end: int) -> None:
        if end - start < 6:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        address, quantity = unpack(buf, start + 1)
        byte_count = buf[start + 5]
        if not low <= quantity <= high or byte_count != (quantity + 7) >> 3 or end - start != 6 + byte_count:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        offset = address - first
        if offset < 0 or offset + quantity > count:
            out += exception_pdu(fc, ILLEGAL_DATA_ADDRESS)
            return
        bits[offset : offset + quantity] = unpack_bits(buf[start + 6 : end], quantity)
        changed(address, quantity)
        out += buf[start : start + 5]

    return handle


def _write_multiple_registers(fc: int, block: RegisterBlock) -> Handler:
    """FC16 (§6.12): 1..123 and byte count = 2*qty (else 03), then address (else 02)."""
    low, high = _limits(FunctionCode(fc))
    words, first, count, changed = block.words, block.start, block.count, block.changed
    unpack = _ADDRESS_QUANTITY.unpack_from

    def handle(out: bytearray, buf: bytes, start: int, end: int) -> None:
        if end - start < 6:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        address, quantity = unpack(buf, start + 1)
        byte_count = buf[start + 5]
        if not low <= quantity <= high or byte_count != 2 * quantity or end - start != 6 + byte_count:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        offset = address - first
        if offset < 0 or offset + quantity > count:
            out += exception_pdu(fc, ILLEGAL_DATA_ADDRESS)
            return
        words[2 * offset : 2 * (offset + quantity)] = buf[start + 6 : end]
        changed(address, quantity)
        out += buf[start : start + 5]

    return handle


def _mask_write_register(fc: int, block: RegisterBlock) -> Handler:
    """FC22 (§6.16): result = (current AND and_mask) OR (or_mask AND NOT and_mask); echo."""
    words, first, count, changed = block.words, block.start, block.count, block.changed
    unpack = _MASK_WRITE.unpack_from
    pack_into = _UINT16.pack_into

    def handle(out: bytearray, buf: bytes, start: int, end: int) -> None:
        if end - start != 7:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        address, and_mask, or_mask = unpack(buf, start + 1)
        offset = address - first
        if offset < 0 or offset >= count:
            out += exception_pdu(fc, ILLEGAL_DATA_ADDRESS)
            return
        current = words[2 * offset] << 8 | words[2 * offset + 1]
        pack_into(words, 2 * offset, (current & and_mask) | (or_mask & ~and_mask & 0xFFFF))
        changed(address, 1)
        out += buf[start:end]

    return handle


def _read_write_multiple(fc: int, block: RegisterBlock) -> Handler:
    """FC23 (§6.17): quantities and byte count (03), both ranges (02); the write goes first."""
    read_low, read_high = _limits(FunctionCode(fc), "read_quantity")
    write_low, write_high = _limits(FunctionCode(fc), "write_quantity")
    words, first, count, changed = block.words, block.start, block.count, block.changed
    unpack = _READ_WRITE.unpack_from

    def handle(out: bytearray, buf: bytes, start: int, end: int) -> None:
        if end - start < 10:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        read_address, read_quantity, write_address, write_quantity, byte_count = unpack(buf, start + 1)
        if (
            not read_low <= read_quantity <= read_high
            or not write_low <= write_quantity <= write_high
            or byte_count != 2 * write_quantity
            or end - start != 10 + byte_count
        ):
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        read_offset = read_address - first
        write_offset = write_address - first
        if (
            read_offset < 0
            or read_offset + read_quantity > count
            or write_offset < 0
            or write_offset + write_quantity > count
        ):
            out += exception_pdu(fc, ILLEGAL_DATA_ADDRESS)
            return
        # §6.17: "The write operation is performed before the read."
        words[2 * write_offset : 2 * (write_offset + write_quantity)] = buf[start + 10 : end]
        changed(write_address, write_quantity)
        out.append(fc)
        out.append(2 * read_quantity)
        out += words[2 * read_offset : 2 * (read_offset + read_quantity)]

    return handle


def _read_fifo_queue(fc: int, block: RegisterBlock) -> Handler:
    """FC24 (§6.18): the register at the pointer holds the FIFO count, the queue follows it.

    State diagram order: pointer address (02) -> FIFO count <= 31 (03) -> execute.  The queued
    registers must exist too (02).
    """
    _low, high = _limits(FunctionCode(fc), "fifo_count")
    words, first, count = block.words, block.start, block.count

    def handle(out: bytearray, buf: bytes, start: int, end: int) -> None:
        if end - start != 3:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        offset = (buf[start + 1] << 8 | buf[start + 2]) - first
        if offset < 0 or offset >= count:
            out += exception_pdu(fc, ILLEGAL_DATA_ADDRESS)
            return
        fifo_count = words[2 * offset] << 8 | words[2 * offset + 1]
        if fifo_count > high:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        if offset + 1 + fifo_count > count:
            out += exception_pdu(fc, ILLEGAL_DATA_ADDRESS)
            return
        out.append(fc)
        out += struct.pack(">HH", 2 + 2 * fifo_count, fifo_count)
        out += words[2 * (offset + 1) : 2 * (offset + 1 + fifo_count)]

    return handle


# --------------------------------------------------------------------------- FC43 / MEI 14

# Highest object id of each stream category (§6.21 object table: basic 0x00-0x02, regular
# 0x03-0x7F, extended 0x80-0xFF).
_CATEGORY_LAST = {ReadDeviceIdCode.BASIC: 0x02, ReadDeviceIdCode.REGULAR: 0x7F, ReadDeviceIdCode.EXTENDED: 0xFF}
# Response header: function code, MEI type, read device id code, conformity level, more
# follows, next object id, number of objects.
_DEVICE_ID_HEADER = 7
# A single object must fit one PDU with that header plus its id and length bytes.
_MAX_OBJECT_VALUE = MAX_PDU_SIZE - _DEVICE_ID_HEADER - 2


class DeviceIdentification:
    """FC43 / MEI type 0x0E, Read Device Identification (§6.21).

    Stream access (read codes 01, 02, 03) returns the objects of the requested category and of
    the categories below it, in id order: §6.21 defines regular identification as "in addition
    to Basic data objects" and extended as "in addition to regular data objects", and says the
    client sets the object id to 0 in the first transaction "to obtain the beginning of the
    device identification data".  Objects that do not fit one 253-byte PDU follow in further
    transactions (more follows = 0xFF, next object id).  Choices, with the clauses:

    - an object id that matches no object of the stream restarts at object 0: "the server
      responds as if object 0 were pointed out (restart at the beginning)";
    - a stream read code above the claimed level: "it must respond in accordance with its
      actual conformity level", so the device answers as to a request at its own level, and
      the read device id code of the response says which level that is;
    - read code 04 for an object the device does not hold: exception 02, as §6.21 says;
    - read code 04 on a device without individual access (conformity level without 0x80), and
      any read code outside 01..04: exception 03 (not an allowable value for this server, §7);
    - a MEI type other than 0x0E: exception 01 (the encapsulated interface is not supported).
    """

    def __init__(self, profile: Profile):
        claim = profile.modbus.device_identification if profile.modbus else None
        level = ID_LEVELS.index(claim.level) + 1 if claim else ReadDeviceIdCode.BASIC
        self.level_code = int(level)
        self.conformity_level = claim.conformity_level if claim else 0x01
        self.individual_access = bool(claim.individual_access) if claim else False
        objects = {i: "" for i in (0x00, 0x01, 0x02)}  # the mandatory basic objects always exist
        objects.update(profile.device_id_objects())
        last = _CATEGORY_LAST[ReadDeviceIdCode(self.level_code)]
        self.objects: dict[int, bytes] = {
            oid: value.encode("utf-8")[:_MAX_OBJECT_VALUE] for oid, value in sorted(objects.items()) if oid <= last
        }

    def handle(self, out: bytearray, buf: bytes, start: int, end: int) -> None:
        fc = buf[start]
        if end - start < 2:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        if buf[start + 1] != MEI_READ_DEVICE_ID:
            out += exception_pdu(fc, ILLEGAL_FUNCTION)
            return
        if end - start != 4:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        read_code, object_id = buf[start + 2], buf[start + 3]
        if read_code == ReadDeviceIdCode.SPECIFIC:
            if not self.individual_access:
                out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
                return
            value = self.objects.get(object_id)
            if value is None:
                out += exception_pdu(fc, ILLEGAL_DATA_ADDRESS)
                return
            out += bytes((fc, MEI_READ_DEVICE_ID, read_code, self.conformity_level, 0x00, 0x00, 1))
            out += bytes((object_id, len(value)))
            out += value
            return
        if read_code not in _CATEGORY_LAST:
            out += exception_pdu(fc, ILLEGAL_DATA_VALUE)
            return
        read_code = min(read_code, self.level_code)
        last = _CATEGORY_LAST[ReadDeviceIdCode(read_code)]
        stream = [oid for oid in self.objects if oid <= last]
        first = stream.index(object_id) if object_id in stream else 0
        body = bytearray()
        more_follows, next_object, number = 0x00, 0x00, 0
        room = MAX_PDU_SIZE - _DEVICE_ID_HEADER
        for oid in stream[first:]:
            value = self.objects[oid]
            if len(body) + 2 + len(value) > room:
                more_follows, next_object = 0xFF, oid
                break
            body += bytes((oid, len(value)))
            body += value
            number += 1
        out += bytes((fc, MEI_READ_DEVICE_ID, read_code, self.conformity_level, more_follows, next_object, number))
        out += body


# --------------------------------------------------------------------------- engine

_BUILDERS: dict[int, Callable[[int, DataStore], Handler]] = {
    FunctionCode.READ_COILS: lambda fc, s: _read_bits(fc, s.coils),
    FunctionCode.READ_DISCRETE_INPUTS: lambda fc, s: _read_bits(fc, s.discrete_inputs),
    FunctionCode.READ_HOLDING_REGISTERS: lambda fc, s: _read_registers(fc, s.holding_registers),
    FunctionCode.READ_INPUT_REGISTERS: lambda fc, s: _read_registers(fc, s.input_registers),
    FunctionCode.WRITE_SINGLE_COIL: lambda fc, s: _write_single_coil(fc, s.coils),
    FunctionCode.WRITE_SINGLE_REGISTER: lambda fc, s: _write_single_register(fc, s.holding_registers),
    FunctionCode.WRITE_MULTIPLE_COILS: lambda fc, s: _write_multiple_coils(fc, s.coils),
    FunctionCode.WRITE_MULTIPLE_REGISTERS: lambda fc, s: _write_multiple_registers(fc, s.holding_registers),
    FunctionCode.MASK_WRITE_REGISTER: lambda fc, s: _mask_write_register(fc, s.holding_registers),
    FunctionCode.READ_WRITE_MULTIPLE_REGISTERS: lambda fc, s: _read_write_multiple(fc, s.holding_registers),
    FunctionCode.READ_FIFO_QUEUE: lambda fc, s: _read_fifo_queue(fc, s.holding_registers),
}
IMPLEMENTED_FUNCTION_CODES = frozenset(_BUILDERS) | {FunctionCode.ENCAPSULATED_INTERFACE}


class ModbusEngine:
    """The behaviour of the device a profile describes, over its `DataStore`."""

    def __init__(self, profile: Profile, store: DataStore | None = None):
        if profile.modbus is None:
            raise ValueError(f"{profile.source}: the profile has no modbus section to simulate")
        self.profile = profile
        self.store = store if store is not None else DataStore.from_profile(profile)
        # One entry per function code byte: a request's first byte indexes straight into it.
        self.handlers: list[Handler] = [_illegal_function] * 256
        for fc in sorted(profile.modbus.function_codes):
            if fc in _BUILDERS:
                self.handlers[fc] = _BUILDERS[fc](fc, self.store)
            elif fc == FunctionCode.ENCAPSULATED_INTERFACE:
                self.device_identification = DeviceIdentification(profile)
                self.handlers[fc] = self.device_identification.handle
            else:
                log.warning(
                    "%s claims function code %d, which the simulator does not implement (serial line "
                    "only or file records); it answers exception 01",
                    profile.source,
                    fc,
                )

    def respond_into(self, out: bytearray, buf: bytes, start: int, end: int) -> None:
        """Append the response to the request PDU buf[start:end] (non-empty) to `out`."""
        mark = len(out)
        try:
            self.handlers[buf[start]](out, buf, start, end)
        except Exception:  # a bug must cost one answer (04, §7), never the connection
            log.exception("request %s failed", bytes(buf[start:end]).hex(" "))
            del out[mark:]
            out += exception_pdu(buf[start], SERVER_DEVICE_FAILURE)

    def handle_pdu(self, pdu: bytes) -> bytes | None:
        """Response PDU for one request PDU, or None when no answer is due (an empty PDU)."""
        if not pdu:
            return None
        out = bytearray()
        self.respond_into(out, pdu, 0, len(pdu))
        return bytes(out)
