"""Hypothesis strategies for Modbus TCP request ADUs: valid, boundary and malformed frames.

References: MODBUS Application Protocol Specification V1.1b3 (AP) and MODBUS Messaging on
TCP/IP Implementation Guide V1.0b (TCP guide).

- `valid_adus`: well-formed requests for FC 1, 2, 3, 4, 5, 6, 15, 16, 22, 23: protocol id 0,
  a correct length field, quantities inside AP §6 limits and addresses inside the device's
  tables when they are given.  The request classes of `harness.codec.modbus` write the bytes,
  so they are right by construction.
- `boundary_adus`: one value at its limit: quantity 0, 1, max and max + 1, address 0, 0xFFFF,
  the last address of a table and one past it, address + quantity past 0xFFFF, FC05 values
  other than 0x0000/0xFF00.  A server must answer every one (normally or with an exception).
- `malformed_adus`: broken framing, wrong protocol id, undefined function codes, byte counts
  that disagree with the data or the quantity, trailing garbage, oversized ADUs, random bytes.

`expect_reply` follows the specs.  A well-framed ADU (protocol id 0, a length field that
matches the bytes) must be answered even when its PDU is wrong: exception 01 for a function
code the server does not implement (AP §7, TCP guide §4.4.2.2), exception 03 when the implied
length or a byte count is wrong (AP §7 and the §6.11/§6.12/§6.17 state diagrams).  A frame
with a protocol id other than 0 is discarded (TCP guide §4.4.2.2), and framing errors (a
length field that lies, a truncated or oversized ADU) leave the server waiting or closing: no
reply is required for those.

Every strategy puts its most ordinary variant first, so failures shrink to small frames.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from harness.codec.modbus import (
    MaskWriteRegisterRequest,
    ReadCoilsRequest,
    ReadDiscreteInputsRequest,
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
    ReadWriteMultipleRegistersRequest,
    WriteMultipleCoilsRequest,
    WriteMultipleRegistersRequest,
    WriteSingleCoilRequest,
    WriteSingleRegisterRequest,
    encode_tcp,
)
from harness.codec.modbus.constants import (
    COIL_OFF,
    COIL_ON,
    FUNCTION_TABLE,
    MAX_PDU_SIZE,
    MBAP_HEADER_SIZE,
    MBAP_MAX_LENGTH,
    QUANTITY_LIMITS,
    FunctionCode,
    Table,
)

from . import FuzzFrame

# The function codes these strategies build requests for (data access, AP §6.1-§6.17).
DATA_FUNCTION_CODES = (1, 2, 3, 4, 5, 6, 15, 16, 22, 23)
ADDRESS_SPACE = 0x10000
# Function codes AP V1.1b3 defines (public, §5.1) and the user-defined ranges 65-72 and
# 100-110 (a device may implement those).  Every other code below 0x80 is undefined, and
# 0x80-0xFF are exception codes, never requests.
_DEFINED = frozenset(int(fc) for fc in FunctionCode)
_USER_DEFINED = frozenset(range(65, 73)) | frozenset(range(100, 111))
UNDEFINED_FUNCTION_CODES = tuple(
    fc for fc in range(0x80) if fc not in _DEFINED and fc not in _USER_DEFINED
) + tuple(range(0x80, 0x100))

_READS = {
    1: ReadCoilsRequest,
    2: ReadDiscreteInputsRequest,
    3: ReadHoldingRegistersRequest,
    4: ReadInputRegistersRequest,
}
_QUANTITY_FCS = (1, 2, 3, 4, 15, 16)  # FC23 has two quantities, handled on its own
_SINGLE_FCS = (5, 6, 22)  # one address, no quantity
# The most register values a write request can carry in a 253-byte PDU.
_FC16_FIT = (MAX_PDU_SIZE - 6) // 2  # 123: FC16 has 6 bytes before the values
_FC23_FIT = (MAX_PDU_SIZE - 10) // 2  # 121: FC23 has 10 bytes before the values

_U16 = st.integers(0, 0xFFFF)
_TIDS = _U16
_COIL_VALUES = st.sampled_from([COIL_OFF, COIL_ON])
# FC05 values a server must refuse with exception 03 (AP §6.5): a few readable ones first.
_BAD_COIL_VALUES = st.one_of(
    st.sampled_from([0x0001, 0xFFFF, 0x00FF, 0xFF01]),
    st.integers(0x0001, 0xFFFF).filter(lambda v: v != COIL_ON),
)

# {"coils": (start, count), ...}; `Table` keys and AddressRange-like spans (.start, .count)
# are accepted too, so a profile's `modbus.tables` can be passed as it is.
Tables = Mapping[str, tuple[int, int]]


def _limit(fc: int, field: str = "quantity") -> int:
    return QUANTITY_LIMITS[(FunctionCode(fc), field)].high


# ---------------------------------------------------------------------------- arguments


def _resolve_tables(tables: Tables | None) -> dict[str, tuple[int, int]]:
    """Every table as (start, count); None means the whole address space exists.

    Keys may be `Table` members and spans objects with `start`/`count` (a profile's
    `modbus.tables` works as it is).
    """
    names = [t.value for t in Table]
    if tables is None:
        return {name: (0, ADDRESS_SPACE) for name in names}
    resolved = {}
    for key, span in tables.items():
        name = key.value if isinstance(key, Table) else key
        if name not in names:
            raise ValueError(f"unknown table {key!r}: use one of {', '.join(names)}")
        start, count = (span.start, span.count) if hasattr(span, "count") and hasattr(span, "start") else span
        if not (0 <= start < ADDRESS_SPACE and 0 <= count and start + count <= ADDRESS_SPACE):
            raise ValueError(
                f"table {name!r} = ({start}, {count}) does not fit the address space: give "
                f"(start, count) with 0 <= start <= 0xFFFF and start + count <= 0x10000"
            )
        resolved[name] = (start, count)
    return resolved


def _table_of(fc: int, tables: dict[str, tuple[int, int]]) -> tuple[int, int] | None:
    span = tables.get(FUNCTION_TABLE[FunctionCode(fc)].value)
    return span if span and span[1] > 0 else None


def _function_codes(function_codes: Sequence[int] | None) -> tuple[int, ...]:
    if function_codes is None:
        return DATA_FUNCTION_CODES
    wanted = tuple(dict.fromkeys(function_codes))
    unsupported = [fc for fc in wanted if fc not in DATA_FUNCTION_CODES]
    if unsupported or not wanted:
        raise ValueError(
            f"function_codes {list(function_codes)} must be a non-empty selection of "
            f"{list(DATA_FUNCTION_CODES)} (undefined codes come from malformed_adus)"
        )
    return wanted


def _check_unit(unit: int) -> None:
    if not 0 <= unit <= 0xFF:
        raise ValueError(f"unit {unit} is not a unit id: give 0..255")


# ---------------------------------------------------------------------------- PDUs


def _coil_data(draw: st.DrawFn, quantity: int) -> bytes:
    """ceil(quantity / 8) bytes of coil states, the unused high bits of the last byte zero."""
    n = min((quantity + 7) // 8, MAX_PDU_SIZE - 6)
    data = bytearray(draw(st.binary(min_size=n, max_size=n)))
    if data and quantity % 8 and n == (quantity + 7) // 8:
        data[-1] &= (1 << quantity % 8) - 1
    return bytes(data)


def _register_values(draw: st.DrawFn, count: int) -> tuple[int, ...]:
    raw = draw(st.binary(min_size=2 * count, max_size=2 * count))
    return struct.unpack(f">{count}H", raw)


AddressFor = Callable[[int], SearchStrategy[int]]


@st.composite
def _request_pdu(
    draw: st.DrawFn,
    fc: int,
    quantities: SearchStrategy[int],
    address_for: AddressFor,
    coil_values: SearchStrategy[int] = _COIL_VALUES,
) -> bytes:
    """One request PDU of FC 1-6, 15, 16 or 22; quantities beyond what fits carry less data.

    The quantity field always says what `quantities` drew; a write whose data cannot fit
    the 253-byte PDU (FC16 quantity 124) carries as many values as fit, with a byte count
    that matches them, so the frame stays well-formed and only the quantity is wrong.
    """
    quantity = draw(quantities)
    address = draw(address_for(quantity))
    if fc in _READS:
        return _READS[fc](address, quantity).encode()
    if fc == 5:
        return WriteSingleCoilRequest(address, draw(coil_values)).encode()
    if fc == 6:
        return WriteSingleRegisterRequest(address, draw(_U16)).encode()
    if fc == 15:
        data = _coil_data(draw, quantity)
        return WriteMultipleCoilsRequest(address, quantity, len(data), data).encode()
    if fc == 16:
        values = _register_values(draw, min(quantity, _FC16_FIT))
        return WriteMultipleRegistersRequest(address, quantity, 2 * len(values), values).encode()
    if fc == 22:
        return MaskWriteRegisterRequest(address, draw(_U16), draw(_U16)).encode()
    raise ValueError(f"no PDU builder for FC{fc:02d}")


@st.composite
def _read_write_pdu(
    draw: st.DrawFn,
    read_quantities: SearchStrategy[int],
    read_address_for: AddressFor,
    write_quantities: SearchStrategy[int],
    write_address_for: AddressFor,
) -> bytes:
    """FC23 Read/Write Multiple Registers; write data capped at what fits, as above."""
    read_quantity = draw(read_quantities)
    read_address = draw(read_address_for(read_quantity))
    write_quantity = draw(write_quantities)
    write_address = draw(write_address_for(write_quantity))
    values = _register_values(draw, min(write_quantity, _FC23_FIT))
    return ReadWriteMultipleRegistersRequest(
        read_address, read_quantity, write_address, write_quantity, 2 * len(values), values
    ).encode()


def _inside(span: tuple[int, int]) -> AddressFor:
    start, count = span
    return lambda quantity: st.integers(start, start + count - quantity)


def _at(address: int) -> AddressFor:
    return lambda _quantity: st.just(address)


def _wrapping(quantity: int) -> SearchStrategy[int]:
    """Addresses where address + quantity goes past 0xFFFF (needs quantity >= 2)."""
    return st.integers(ADDRESS_SPACE - quantity + 1, 0xFFFF)


def _valid_pdu(fc: int, span: tuple[int, int]) -> SearchStrategy[bytes]:
    """Well-formed requests inside `span` (which must hold at least one address)."""
    count = span[1]
    if fc == 23:
        reads = st.integers(1, min(_limit(23, "read_quantity"), count))
        writes = st.integers(1, min(_limit(23, "write_quantity"), count))
        return _read_write_pdu(reads, _inside(span), writes, _inside(span))
    quantities = st.just(1) if fc in _SINGLE_FCS else st.integers(1, min(_limit(fc), count))
    return _request_pdu(fc, quantities, _inside(span))


@st.composite
def _frame(
    draw: st.DrawFn,
    kind: str,
    pdus: SearchStrategy[bytes],
    unit: int,
) -> FuzzFrame:
    """A well-framed request: valid and boundary frames must all be answered."""
    tid = draw(_TIDS)
    return FuzzFrame(kind, encode_tcp(tid, unit, draw(pdus)), True)


# ---------------------------------------------------------------------------- valid


def valid_adus(
    unit: int = 1,
    *,
    tables: Tables | None = None,
    function_codes: Sequence[int] | None = None,
) -> SearchStrategy[FuzzFrame]:
    """Well-formed requests (kind "valid:FCnn") a server with these tables answers normally.

    `tables` maps "coils", "discrete_inputs", "holding_registers", "input_registers" to
    (start, count); a function code whose table is missing or empty is left out, since no
    valid request exists for it.  Without `tables` the whole address space is used.
    """
    _check_unit(unit)
    spans = _resolve_tables(tables)
    branches = []
    for fc in _function_codes(function_codes):
        span = _table_of(fc, spans)
        if span is not None:
            branches.append(_frame(f"valid:FC{fc:02d}", _valid_pdu(fc, span), unit))
    if not branches:
        raise ValueError(
            "no valid request exists: none of the function codes has a non-empty table; "
            "add the table(s) they use to `tables` or widen `function_codes`"
        )
    return st.one_of(branches)


# ---------------------------------------------------------------------------- boundary


def _boundary_cases(fc: int, span: tuple[int, int], tables_given: bool) -> list[tuple[str, SearchStrategy[bytes]]]:
    """(what, PDUs) for one function code, most ordinary first."""
    start, count = span
    last, past = start + count - 1, start + count
    cases: list[tuple[str, SearchStrategy[bytes]]] = []
    single = st.just(1)

    if fc == 23:
        read_max, write_max = _limit(23, "read_quantity"), _limit(23, "write_quantity")
        for q in (1, read_max, 0, read_max + 1):
            cases.append((f"read-qty-{q}", _read_write_pdu(st.just(q), _at(start), single, _at(start))))
        for q in (1, write_max, 0, write_max + 1):
            cases.append((f"write-qty-{q}", _read_write_pdu(single, _at(start), st.just(q), _at(start))))
        addresses = [("addr-0", 0), ("addr-65535", 0xFFFF)]
        if tables_given:
            addresses.append(("table-last", last))
            if past < ADDRESS_SPACE:
                addresses.append(("table-past-end", past))
        for what, address in addresses:
            cases.append((what, _read_write_pdu(single, _at(address), single, _at(address))))
        wraps = st.integers(2, read_max)
        cases.append(("addr-wrap", _read_write_pdu(wraps, _wrapping, single, _at(start))))
        return cases

    if fc in _QUANTITY_FCS:
        high = _limit(fc)
        for q in (1, high, 0, high + 1):
            cases.append((f"qty-{q}", _request_pdu(fc, st.just(q), _at(start))))
    if fc == 5:
        cases.append(("value-other", _request_pdu(fc, single, _at(start), _BAD_COIL_VALUES)))
    addresses = [("addr-0", 0), ("addr-65535", 0xFFFF)]
    if tables_given:
        addresses.append(("table-last", last))
        if past < ADDRESS_SPACE:
            addresses.append(("table-past-end", past))
    for what, address in addresses:
        cases.append((what, _request_pdu(fc, single, _at(address))))
    if fc in _QUANTITY_FCS:
        cases.append(("addr-wrap", _request_pdu(fc, st.integers(2, _limit(fc)), _wrapping)))
    return cases


def boundary_adus(
    unit: int = 1,
    *,
    tables: Tables | None = None,
    function_codes: Sequence[int] | None = None,
) -> SearchStrategy[FuzzFrame]:
    """Well-framed requests with one field at a limit (kind "boundary:FCnn-<what>").

    Quantities 0, 1, max and max + 1 (AP §6.1-§6.4, §6.11, §6.12, §6.17), addresses 0 and
    0xFFFF, the last address of a table and one past it (with `tables`), address + quantity
    past 0xFFFF, FC05 values other than 0x0000/0xFF00.  A server must answer each: normally,
    or with exception 02/03.  Without `tables` the whole address space is the table.
    """
    _check_unit(unit)
    spans = _resolve_tables(tables)
    branches = []
    for fc in _function_codes(function_codes):
        span = _table_of(fc, spans)
        table_known = tables is not None and span is not None
        for what, pdus in _boundary_cases(fc, span or (0, ADDRESS_SPACE), table_known):
            branches.append(_frame(f"boundary:FC{fc:02d}-{what}", pdus, unit))
    return st.one_of(branches)


# ---------------------------------------------------------------------------- malformed

# kind -> whether a conforming server must answer it (see the module docstring).
MALFORMED_EXPECT_REPLY: dict[str, bool] = {
    "malformed:protocol-id": False,  # TCP guide §4.4.2.2: discarded
    "malformed:unknown-function": True,  # exception 01
    "malformed:trailing-garbage": True,  # exception 03: the implied length is wrong
    "malformed:byte-count-data": True,  # exception 03
    "malformed:byte-count-quantity": True,  # exception 03 (AP §6.11/§6.12/§6.17 diagrams)
    "malformed:odd-register-bytes": True,  # exception 03
    "malformed:mbap-length-short": False,  # out of step from here on (answering the cut PDU is allowed)
    "malformed:mbap-length-long": False,  # the server waits for the rest
    "malformed:mbap-length-zero": False,  # length outside 2..254: cannot resynchronise
    "malformed:mbap-length-one": False,
    "malformed:truncated-header": False,  # the server waits for the rest
    "malformed:header-only": False,
    "malformed:truncated-pdu": False,
    "malformed:oversized": False,  # length field above 254 (AP §4.1: PDU <= 253 bytes)
    "malformed:random-bytes": False,  # anything; only liveness can be judged
}


def _bad(kind: str, data: bytes) -> FuzzFrame:
    return FuzzFrame(kind, data, MALFORMED_EXPECT_REPLY[kind])


_FULL_SPAN = (0, ADDRESS_SPACE)
# Any valid request PDU, FC01 first: the raw material the malformations start from.  The
# longest is 252 bytes (FC15/16/23 at their maximum quantity), so one more byte always fits.
_ANY_VALID_PDU = st.one_of([_valid_pdu(fc, _FULL_SPAN) for fc in DATA_FUNCTION_CODES])


# Every malformation draws the transaction id first, then (where it has one) the valid PDU it
# starts from, then its own values: the same order everywhere lets the shrinker move a failing
# frame to a simpler kind and keep the choices it already made.


@st.composite
def _protocol_id(draw: st.DrawFn, unit: int) -> FuzzFrame:
    tid, pdu = draw(_TIDS), draw(_ANY_VALID_PDU)
    pid = draw(st.integers(1, 0xFFFF))
    return _bad("malformed:protocol-id", encode_tcp(tid, unit, pdu, protocol_id=pid))


@st.composite
def _unknown_function(draw: st.DrawFn, unit: int) -> FuzzFrame:
    tid = draw(_TIDS)
    fc = draw(st.sampled_from(UNDEFINED_FUNCTION_CODES))
    pdu = bytes((fc,)) + draw(st.binary(max_size=8))
    return _bad("malformed:unknown-function", encode_tcp(tid, unit, pdu))


@st.composite
def _truncated(draw: st.DrawFn, unit: int, kind: str) -> FuzzFrame:
    """A valid ADU cut short: inside the header, after the header, or inside the PDU."""
    adu = encode_tcp(draw(_TIDS), unit, draw(_ANY_VALID_PDU))
    if kind == "malformed:truncated-header":
        cut = draw(st.integers(1, MBAP_HEADER_SIZE - 1))
    elif kind == "malformed:header-only":
        cut = MBAP_HEADER_SIZE
    else:
        cut = draw(st.integers(MBAP_HEADER_SIZE + 1, len(adu) - 1))
    return _bad(kind, adu[:cut])


@st.composite
def _length_short(draw: st.DrawFn, unit: int) -> FuzzFrame:
    """The length field covers the unit id and only part of the PDU that follows."""
    tid, pdu = draw(_TIDS), draw(_ANY_VALID_PDU)
    length = draw(st.integers(2, len(pdu)))
    return _bad("malformed:mbap-length-short", encode_tcp(tid, unit, pdu, length=length))


@st.composite
def _length_long(draw: st.DrawFn, unit: int) -> FuzzFrame:
    """The length field promises more bytes than are sent: the server waits for them."""
    tid, pdu = draw(_TIDS), draw(_ANY_VALID_PDU)
    length = draw(st.integers(len(pdu) + 2, MBAP_MAX_LENGTH))
    return _bad("malformed:mbap-length-long", encode_tcp(tid, unit, pdu, length=length))


@st.composite
def _length_fixed(draw: st.DrawFn, unit: int, length: int, kind: str) -> FuzzFrame:
    """A length field of 0 or 1 (no room for a function code), the PDU bytes after it."""
    tid, pdu = draw(_TIDS), draw(_ANY_VALID_PDU)
    return _bad(kind, encode_tcp(tid, unit, pdu, length=length))


@st.composite
def _trailing_garbage(draw: st.DrawFn, unit: int) -> FuzzFrame:
    """A valid request with extra bytes inside the length field: exception 03 (AP §7)."""
    tid, pdu = draw(_TIDS), draw(_ANY_VALID_PDU)
    garbage = draw(st.binary(min_size=1, max_size=min(16, MAX_PDU_SIZE - len(pdu))))
    return _bad("malformed:trailing-garbage", encode_tcp(tid, unit, pdu + garbage))


_COUNTED_FCS = st.sampled_from([16, 15, 23])  # the requests with a byte count field


@st.composite
def _byte_count_vs_quantity(draw: st.DrawFn, unit: int) -> FuzzFrame:
    """FC15/16/23 whose byte count matches its data but not its quantity (AP §6.11 etc.)."""
    tid, fc = draw(_TIDS), draw(_COUNTED_FCS)
    address, quantity = draw(_U16), draw(st.integers(1, 8))
    if fc == 15:
        n = draw(st.integers(0, 8).filter(lambda n: n != (quantity + 7) // 8))
        data = draw(st.binary(min_size=n, max_size=n))
        pdu = WriteMultipleCoilsRequest(address, quantity, n, data).encode()
    else:
        registers = draw(st.integers(0, 8).filter(lambda n: n != quantity))
        values = _register_values(draw, registers)
        if fc == 16:
            pdu = WriteMultipleRegistersRequest(address, quantity, 2 * registers, values).encode()
        else:
            pdu = ReadWriteMultipleRegistersRequest(address, 1, address, quantity, 2 * registers, values).encode()
    return _bad("malformed:byte-count-quantity", encode_tcp(tid, unit, pdu))


@st.composite
def _odd_register_bytes(draw: st.DrawFn, unit: int) -> FuzzFrame:
    """FC16/23 with an odd byte count (and that many bytes): not whole registers."""
    tid, fc = draw(_TIDS), draw(st.sampled_from([16, 23]))
    address, count = draw(_U16), 2 * draw(st.integers(0, 8)) + 1
    data = draw(st.binary(min_size=count, max_size=count))
    if fc == 16:
        head = struct.pack(">BHHB", 16, address, (count + 1) // 2, count)
    else:
        head = struct.pack(">BHHHHB", 23, address, 1, address, (count + 1) // 2, count)
    return _bad("malformed:odd-register-bytes", encode_tcp(tid, unit, head + data))


@st.composite
def _byte_count_vs_data(draw: st.DrawFn, unit: int) -> FuzzFrame:
    """FC15/16/23 whose byte count field disagrees with the bytes that follow it."""
    tid, fc = draw(_TIDS), draw(_COUNTED_FCS)
    address, quantity = draw(_U16), draw(st.integers(1, 8))
    if fc == 15:
        data = _coil_data(draw, quantity)
    else:
        data = struct.pack(f">{quantity}H", *_register_values(draw, quantity))
    count = draw(st.integers(0, 0xFF).filter(lambda c: c != len(data)))
    if fc == 23:
        head = struct.pack(">BHHHHB", 23, address, 1, address, quantity, count)
    else:
        head = struct.pack(">BHHB", fc, address, quantity, count)
    return _bad("malformed:byte-count-data", encode_tcp(tid, unit, head + data))


@st.composite
def _oversized(draw: st.DrawFn, unit: int) -> FuzzFrame:
    """A valid request padded past 253 PDU bytes (AP §4.1), with an honest length field:
    the ADU is beyond 260 bytes and the length field beyond 254."""
    tid, pdu = draw(_TIDS), draw(_ANY_VALID_PDU)
    least = MAX_PDU_SIZE + 1 - len(pdu)
    padding = draw(st.binary(min_size=least, max_size=least + 40))
    return _bad("malformed:oversized", encode_tcp(tid, unit, pdu + padding))


@st.composite
def _random_bytes(draw: st.DrawFn) -> FuzzFrame:
    return _bad("malformed:random-bytes", draw(st.binary(min_size=1, max_size=300)))


def malformed_adus(unit: int = 1) -> SearchStrategy[FuzzFrame]:
    """Bad input, one kind per malformation (`MALFORMED_EXPECT_REPLY`), most ordinary first.

    Answer required (expect_reply True): unknown-function (exception 01), trailing-garbage,
    byte-count-data, byte-count-quantity and odd-register-bytes (exception 03).  No answer
    required: protocol-id (discarded), the mbap-length-*, truncated-*, header-only and
    oversized framing errors, random-bytes.
    """
    _check_unit(unit)
    # Ordered so that shrinking, which tries lower branches first, meets small frames early:
    # the kinds whose smallest frame is 1-12 bytes, then 13-15 bytes, then the 261-byte
    # oversized ADU, and the unstructured random bytes last.
    return st.one_of(
        _protocol_id(unit),
        _unknown_function(unit),
        _truncated(unit, "malformed:truncated-header"),
        _truncated(unit, "malformed:header-only"),
        _truncated(unit, "malformed:truncated-pdu"),
        _length_short(unit),
        _length_long(unit),
        _length_fixed(unit, 0, "malformed:mbap-length-zero"),
        _length_fixed(unit, 1, "malformed:mbap-length-one"),
        _trailing_garbage(unit),
        _byte_count_vs_quantity(unit),
        _odd_register_bytes(unit),
        _byte_count_vs_data(unit),
        _oversized(unit),
        _random_bytes(),
    )


@st.composite
def _weighted(draw: st.DrawFn, choices: Sequence[SearchStrategy[FuzzFrame]]) -> FuzzFrame:
    """A frame from one of `choices`, picked uniformly: list a strategy twice to double its
    share.  (st.one_of would flatten the branches of every choice into one list, so a
    category's share would follow how many kinds it has, and drop duplicates.)"""
    return draw(draw(st.sampled_from(choices)))


def modbus_adus(
    unit: int = 1,
    *,
    tables: Tables | None = None,
    function_codes: Sequence[int] | None = None,
) -> SearchStrategy[FuzzFrame]:
    """Valid, boundary and malformed ADUs; the malformed strategy is picked for half the draws."""
    valid = valid_adus(unit, tables=tables, function_codes=function_codes)
    boundary = boundary_adus(unit, tables=tables, function_codes=function_codes)
    malformed = malformed_adus(unit)
    return _weighted((valid, boundary, malformed, malformed))


# ---------------------------------------------------------------------------- kinds

MALFORMED_KINDS = frozenset(MALFORMED_EXPECT_REPLY)


def _all_boundary_kinds() -> frozenset[str]:
    kinds = set()
    for fc in DATA_FUNCTION_CODES:
        for what, _ in _boundary_cases(fc, (0, 1), tables_given=True):
            kinds.add(f"boundary:FC{fc:02d}-{what}")
    return frozenset(kinds)


VALID_KINDS = frozenset(f"valid:FC{fc:02d}" for fc in DATA_FUNCTION_CODES)
BOUNDARY_KINDS = _all_boundary_kinds()
# Every kind these strategies produce: "valid:FC03", "boundary:FC03-qty-126", ...
MODBUS_KINDS = VALID_KINDS | BOUNDARY_KINDS | MALFORMED_KINDS
