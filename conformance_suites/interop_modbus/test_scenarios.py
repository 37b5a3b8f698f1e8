"""The Modbus interoperability scenarios: what a client and a server must get right together.

Each runs once per (client stack, server stack) pair (see conftest).  Values come from the
device profile the servers are loaded with; writes use the profile's writable test ranges and
put back what was there.
"""

from __future__ import annotations

from harness.adapters.errors import AdapterError, ModbusException, Unsupported
from harness.codec.modbus import datatypes
from harness.codec.modbus.constants import Table
from harness.conformance import fail, not_applicable
from harness.profile import decode_point, same_point_value

from ..interop_grid import scenario
from .support import AP, IG

READ = {
    Table.COILS: "read_coils",
    Table.DISCRETE_INPUTS: "read_discrete_inputs",
    Table.HOLDING_REGISTERS: "read_holding_registers",
    Table.INPUT_REGISTERS: "read_input_registers",
}
def _samples(nonce: int) -> list[tuple[str, object, str]]:
    """One value of each register type (both word orders), made from the case's nonce."""
    return [
        ("uint16", nonce, "big"), ("int16", nonce - 0x8000, "big"), ("uint32", nonce << 16 | 0xBEEF, "big"),
        ("int32", -(nonce << 8) - 1, "little"), ("float32", nonce / 4, "big"), ("float32", -nonce / 8, "little"),
        ("float64", nonce * 1.5 + 0.25, "big"), ("string", f"H{nonce:05d}", "big"),
    ]


def _writable(pair, table: Table):
    area = pair.profile.modbus.writable.get(table) if pair.profile.modbus else None
    if area is None:
        not_applicable(f"the profile has no writable {table.value} range")
    return area


@scenario("READ-VALUES", "Every profile point reads back its value",
          requirements=["IOP-MB-READ-VALUES"], clause=f"{AP} §6.1-§6.4")
def test_read_values(pair):
    client = pair.client()
    wrong = []
    for point in pair.profile.points:
        if point.table is None or point.value is None:
            continue
        raw = pair.call(f"{READ[point.table]}({point.address}, {point.size}) for {point.name}",
                        getattr(client, READ[point.table]), point.address, point.size)
        words = [1 if v else 0 for v in raw] if point.table.is_bit else list(raw)
        observed = decode_point(point, words)
        if not same_point_value(point, point.value, observed):
            wrong.append(f"{point.name}: expected {point.value!r}, read {observed!r}")
    if wrong:
        fail(f"{len(wrong)} point(s) read wrong", expected="the profile's values", observed="; ".join(wrong))


@scenario("WRITE-READBACK", "Registers and coils written are read back unchanged",
          requirements=["IOP-MB-WRITE-READBACK"], clause=f"{AP} §6.5, §6.6, §6.11, §6.12")
def test_write_readback(pair):
    regs, coils = _writable(pair, Table.HOLDING_REGISTERS), _writable(pair, Table.COILS)
    client = pair.client()
    wrong = []
    address = regs.start
    for ptype, value, order in _samples(pair.nonce):
        words = datatypes.encode(ptype, value, order, 8)
        pair.call(f"write_registers({address}, {words})", client.write_registers, address, words)
        back = pair.call(f"read_holding_registers({address}, {len(words)})", client.read_holding_registers, address, len(words))
        if list(back) != words:
            wrong.append(f"{ptype} {value!r} ({order} word order) at {address}: wrote {words}, read {list(back)}")
        address += len(words)
    single = pair.nonce ^ 0x55AA
    pair.call(f"write_register({address}, {single:#06x})", client.write_register, address, single)
    back = pair.call(f"read_holding_registers({address}, 1)", client.read_holding_registers, address, 1)
    if list(back) != [single]:
        wrong.append(f"FC06 {single:#06x} at {address}: read {list(back)}")
    bits = [bool(pair.nonce >> i & 1) for i in range(9)]
    pair.call(f"write_coils({coils.start}, {bits})", client.write_coils, coils.start, bits)
    back = pair.call(f"read_coils({coils.start}, {len(bits)})", client.read_coils, coils.start, len(bits))
    if [bool(b) for b in back] != bits:
        wrong.append(f"coils at {coils.start}: wrote {bits}, read {list(back)}")
    pair.call(f"write_coil({coils.start}, {not bits[0]})", client.write_coil, coils.start, not bits[0])
    back = pair.call(f"read_coils({coils.start}, 1)", client.read_coils, coils.start, 1)
    if [bool(b) for b in back] != [not bits[0]]:
        wrong.append(f"FC05 {'ON' if not bits[0] else 'OFF'} at {coils.start}: read {list(back)}")
    if wrong:
        fail(f"{len(wrong)} write(s) not read back", expected="every written value read back", observed="; ".join(wrong))


@scenario("MAX-QUANTITY", "The largest quantities the spec allows go through",
          requirements=["IOP-MB-MAX-QUANTITY"], clause=f"{AP} §6.1, §6.3, §6.11, §6.12")
def test_max_quantities(pair):
    regs, coils = _writable(pair, Table.HOLDING_REGISTERS), _writable(pair, Table.COILS)
    if regs.count < 125 or coils.count < 2000:
        not_applicable("the writable ranges are smaller than the maximum quantities (125 registers, 2000 coils)")
    client = pair.client()
    values = [(pair.nonce + i * 257) & 0xFFFF for i in range(123)]
    pair.call(f"write_registers({regs.start}, 123 values)", client.write_registers, regs.start, values)
    back = pair.call(f"read_holding_registers({regs.start}, 125)", client.read_holding_registers, regs.start, 125)
    bits = [(i + pair.nonce) % 3 == 0 for i in range(1968)]
    pair.call(f"write_coils({coils.start}, 1968 values)", client.write_coils, coils.start, bits)
    back_bits = pair.call(f"read_coils({coils.start}, 2000)", client.read_coils, coils.start, 2000)
    problems = []
    if len(back) != 125 or list(back[:123]) != values:
        problems.append(f"125 registers: got {len(back)}, the first 123 {'match' if list(back[:123]) == values else 'differ'}")
    if len(back_bits) != 2000 or [bool(b) for b in back_bits[:1968]] != bits:
        problems.append(f"2000 coils: got {len(back_bits)}")
    if problems:
        fail("maximum quantities did not go through intact", expected="125/2000 read, 123/1968 written", observed="; ".join(problems))


@scenario("EXCEPTION-02", "A read past the last address surfaces as exception 02",
          requirements=["IOP-MB-EXCEPTION-02"], clause=f"{AP} §7")
def test_illegal_address(pair):
    extent = pair.profile.modbus.tables.get(Table.HOLDING_REGISTERS)
    if extent is None or extent.last >= 65535:
        not_applicable("the holding register table reaches the end of the address space")
    client = pair.client()
    try:
        got = pair.call(f"read_holding_registers({extent.last + 1}, 1)", client.read_holding_registers, extent.last + 1, 1,
                        exception_expected=True)
    except ModbusException as exc:
        if exc.code != 2:
            fail(f"exception {exc.code:02X} instead of 02", expected="ModbusException 02", observed=f"ModbusException {exc.code:02X}")
        return
    fail("a read past the end returned data", expected="ModbusException 02", observed=f"data {got!r}")


@scenario("QUANTITY-LIMIT", "A read of 126 registers is refused by the client or answered with exception 03",
          requirements=["IOP-MB-QUANTITY-LIMIT"], clause=f"{AP} §6.3, §7")
def test_quantity_limit(pair):
    client = pair.client()
    start = pair.profile.modbus.tables[Table.HOLDING_REGISTERS].start
    try:
        got = client.read_holding_registers(start, 126)
    except ModbusException as exc:
        pair.note(f"read_holding_registers({start}, 126) -> exception {exc.code:02X}")
        if exc.code != 3:
            fail(f"exception {exc.code:02X} instead of 03", expected="ModbusException 03 (or a refusal by the client)",
                 observed=f"ModbusException {exc.code:02X}")
        return
    except (Unsupported, AdapterError) as exc:
        pair.note(f"read_holding_registers({start}, 126) refused by the client: {type(exc).__name__}: {exc}")
        if type(exc).__name__ in ("Timeout", "ConnectionLost", "BadResponse", "ConnectFailed"):
            fail(f"the request went out and the exchange failed: {type(exc).__name__}: {exc}",
                 expected="exception 03, or a refusal by the client before sending", observed=f"{type(exc).__name__}: {exc}")
        return
    fail("126 registers were returned", expected="exception 03, or a refusal by the client before sending",
         observed=f"{len(got)} values")


@scenario("MASK-WRITE", "FC22 applies the spec's formula (example: 0x12, AND 0xF2, OR 0x25 gives 0x17)",
          requirements=["IOP-MB-MASK-WRITE"], clause=f"{AP} §6.16")
def test_mask_write(pair):
    address = _writable(pair, Table.HOLDING_REGISTERS).start
    client = pair.client()
    pair.call(f"write_register({address}, 0x12)", client.write_register, address, 0x12)
    pair.call(f"mask_write_register({address}, 0xF2, 0x25)", client.mask_write_register, address, 0xF2, 0x25)
    back = pair.call(f"read_holding_registers({address}, 1)", client.read_holding_registers, address, 1)
    if list(back) != [0x17]:
        fail("FC22 result differs from the spec's formula", expected="0x0017", observed=f"{list(back)}")


@scenario("READ-WRITE", "FC23 writes first, then reads",
          requirements=["IOP-MB-READ-WRITE"], clause=f"{AP} §6.17")
def test_read_write(pair):
    address = _writable(pair, Table.HOLDING_REGISTERS).start
    client = pair.client()
    # Other values first, so a server that reads before it writes is seen whatever ran before.
    pair.call(f"write_registers({address}, [0, 0])", client.write_registers, address, [0, 0])
    got = pair.call(f"read_write_registers({address}, 2, {address}, [0x1111, 0x2222])", client.read_write_registers,
                    address, 2, address, [0x1111, 0x2222])
    if list(got) != [0x1111, 0x2222]:
        fail("FC23 did not return the registers as written first", expected="[4369, 8738]", observed=f"{list(got)}")


@scenario("DEVICE-ID", "FC43/14 basic objects equal the declared identity",
          requirements=["IOP-MB-DEVICE-ID"], clause=f"{AP} §6.21")
def test_device_identification(pair):
    if not pair.profile.modbus or 43 not in pair.profile.modbus.function_codes:
        not_applicable("the profile does not claim FC43")
    client = pair.client()
    objects = pair.call("read_device_identification(1, 0)", client.read_device_identification, 1, 0)
    expected = {i: pair.profile.device.get(f, "") for i, f in enumerate(("vendor_name", "product_code", "revision"))}
    observed = {i: (objects.get(i) or b"").decode("utf-8", "replace") for i in expected}
    if observed != expected:
        fail("the basic identification objects differ", expected=repr(expected), observed=repr(observed))


@scenario("CONCURRENT", "Two clients at once each get the answers to their own requests",
          requirements=["IOP-MB-CONCURRENT"], clause=f"{IG} §4.2.1.1")
def test_concurrent_clients(pair):
    area = _writable(pair, Table.HOLDING_REGISTERS)
    first, second = pair.client(), pair.client()
    wrong = []
    for i in range(10):
        a, b = ((pair.nonce + i) & 0xFFFF, (pair.nonce * 7 + i) & 0xFFFF)
        pair.call(f"client 1 write_register({area.start}, {a})", first.write_register, area.start, a)
        pair.call(f"client 2 write_register({area.start + 1}, {b})", second.write_register, area.start + 1, b)
        got_b = pair.call("client 1 reads client 2's register", first.read_holding_registers, area.start + 1, 1)
        got_a = pair.call("client 2 reads client 1's register", second.read_holding_registers, area.start, 1)
        if list(got_a) != [a] or list(got_b) != [b]:
            wrong.append(f"round {i}: read {list(got_a)} and {list(got_b)}, expected [{a}] and [{b}]")
    if wrong:
        fail("the two clients' exchanges got mixed up", expected="each read sees the other client's last write", observed="; ".join(wrong))
