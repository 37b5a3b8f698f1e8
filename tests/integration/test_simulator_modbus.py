"""The reference Modbus simulator over real TCP on loopback: function codes, check order, FC43/14.

Every expectation cites the MODBUS Application Protocol Specification V1.1b3.  The client is a
plain socket with a timeout that encodes frames with struct, so these tests do not depend on
any codec or third-party stack.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest

from harness.profile import DeviceIdClaim, example_profile_path, load_profile, parse_profile
from raw_client import TIMEOUT, RawClient, frame
from simulators.modbus import start_in_thread
from simulators.modbus.datastore import pack_bits, unpack_bits


PROFILE_YAML = """
profile: harness.profile/1
device:
  vendor_name: Test Vendor
  product_code: TV-1
  revision: "2.0"
  product_name: Test Device
  model_name: TD-1
modbus:
  function_codes: [1, 2, 3, 4, 5, 6, 15, 16, 22, 23, 43]
  unit_ids: [1, 7]
  device_identification: {level: regular, individual_access: true}
  tables:
    coils:             {start: 0, count: 2000}
    discrete_inputs:   {start: 0, count: 2000}
    holding_registers: {start: 0, count: 200}
    input_registers:   {start: 100, count: 50}
points:
  - {name: setpoint, table: holding_registers, address: 0, type: uint16, value: 0x1234, writable: true}
  - {name: level,    table: input_registers,   address: 100, type: int16, value: -2}
  - {name: alarm,    table: discrete_inputs,   address: 0, type: bool, value: true}
"""


def exception(fc: int, code: int) -> bytes:
    return bytes((fc | 0x80, code))


@pytest.fixture(scope="module")
def profile():
    return parse_profile(PROFILE_YAML, "test-device.yaml")


@pytest.fixture
def sim(profile):
    with start_in_thread(profile) as running:
        yield running


@pytest.fixture
def client(sim):
    with RawClient(sim.host, sim.port) as c:
        yield c


# --------------------------------------------------------------------------- bit packing


def test_pack_bits_is_lsb_first_and_zero_padded():
    assert pack_bits(bytes([1, 0, 1, 1, 0, 0, 1, 1, 1])) == bytes([0xCD, 0x01])
    assert unpack_bits(bytes([0xCD, 0xFF]), 9) == bytes([1, 0, 1, 1, 0, 0, 1, 1, 1])
    assert pack_bits(b"") == b""


# --------------------------------------------------------------------------- reads


def test_fc01_golden_vector_from_the_spec(sim, client):
    # §6.1 example: outputs 20-38 read as CD 6B 05 (the last byte zero padded).
    bits = unpack_bits(bytes([0xCD, 0x6B, 0x05]), 19)
    sim.store.write("coils", 19, list(bits))
    assert client.request("0100130013") == bytes.fromhex("0103CD6B05")


def test_fc03_golden_vector_from_the_spec(sim, client):
    # §6.3 example: registers 108-110 hold 0x022B, 0x0000, 0x0064.
    sim.store.write("holding_registers", 107, [0x022B, 0x0000, 0x0064])
    assert client.request("03006B0003") == bytes.fromhex("0306022B00000064")


def test_point_values_come_from_the_profile(client):
    assert client.request("0300000001") == bytes.fromhex("03021234")
    assert client.request("0400640001") == bytes.fromhex("0402FFFE")
    assert client.request("0200000003") == bytes.fromhex("020101")


@pytest.mark.parametrize(
    "pdu, answer",
    [
        ("010000" "07D0", None),  # 2000 coils: the maximum (§6.1)
        ("010000" "07D1", exception(1, 3)),
        ("010000" "0000", exception(1, 3)),
        ("0107CF" "0001", None),  # the last coil
        ("0107D0" "0001", exception(1, 2)),  # one past the table
        ("0107C0" "0011", exception(1, 2)),  # start exists, start+quantity does not
        ("01FFFF" "07D1", exception(1, 3)),  # wrong quantity AND address: quantity is checked first
        ("020000" "07D0", None),
        ("020000" "07D1", exception(2, 3)),
        ("0207D0" "0001", exception(2, 2)),
        ("030000" "007D", None),  # 125 registers (§6.3)
        ("030000" "007E", exception(3, 3)),
        ("030000" "0000", exception(3, 3)),
        ("0300C7" "0001", None),
        ("0300C8" "0001", exception(3, 2)),
        ("0300C0" "0009", exception(3, 2)),
        ("03FFFF" "007E", exception(3, 3)),
        ("040064" "0032", None),  # input registers exist at 100..149 only
        ("040063" "0001", exception(4, 2)),
        ("040095" "0001", None),  # the last input register
        ("040096" "0001", exception(4, 2)),
        ("040000" "007E", exception(4, 3)),
    ],
)
def test_read_quantity_and_address_checks(client, pdu, answer):
    response = client.request(pdu)
    if answer is None:
        fc, quantity = int(pdu[:2], 16), int(pdu[6:], 16)
        size = 2 * quantity if fc in (3, 4) else (quantity + 7) // 8
        assert response[:2] == bytes((fc, size)) and len(response) == 2 + size
    else:
        assert response == answer


def test_fc01_pads_the_last_byte_with_zeros(sim, client):
    sim.store.write("coils", 0, [1] * 12)
    assert client.request("0100000009") == bytes.fromhex("0102FF01")


# --------------------------------------------------------------------------- single writes


def test_fc05_writes_and_echoes(sim, client):
    assert client.request("05000AFF00") == bytes.fromhex("05000AFF00")
    assert sim.store.read("coils", 10) == [1]
    assert client.request("05000A0000") == bytes.fromhex("05000A0000")
    assert sim.store.read("coils", 10) == [0]


@pytest.mark.parametrize("pdu, code", [("05000A1234", 3), ("05000A00FF", 3), ("0507D0FF00", 2), ("05FFFF1234", 3)])
def test_fc05_checks_the_value_before_the_address(client, pdu, code):
    assert client.request(pdu) == exception(5, code)


def test_fc06_writes_and_echoes(sim, client):
    assert client.request("060005ABCD") == bytes.fromhex("060005ABCD")
    assert sim.store.read("holding_registers", 5) == [0xABCD]
    assert client.request("0600C80001") == exception(6, 2)


# --------------------------------------------------------------------------- multiple writes


def test_fc15_writes_lsb_first(sim, client):
    # §6.11 example: 10 coils from 20 (address 19) with CD 01.
    assert client.request("0F0013000A02CD01") == bytes.fromhex("0F0013000A")
    assert sim.store.read("coils", 19, 10) == [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]


@pytest.mark.parametrize(
    "quantity, byte_count, data_len, address, code",
    [
        (1968, 246, 246, 0, None),  # the maximum (§6.11)
        (1969, 247, 247, 0, 3),
        (0, 0, 0, 0, 3),
        (10, 1, 1, 0, 3),  # byte count must be ceil(10/8) = 2
        (10, 2, 1, 0, 3),  # fewer data bytes than the byte count says
        (10, 2, 3, 0, 3),  # more data bytes than the byte count says
        (10, 2, 2, 1995, 2),
        (1969, 247, 247, 0xFFFF, 3),  # quantity wrong and address wrong: 03
    ],
)
def test_fc15_checks(client, quantity, byte_count, data_len, address, code):
    pdu = struct.pack(">BHHB", 15, address, quantity, byte_count) + b"\xff" * data_len
    response = client.request(pdu)
    if code is None:
        assert response == pdu[:5]
    else:
        assert response == exception(15, code)


def test_fc16_writes_and_answers_address_and_quantity(sim, client):
    assert client.request("1000010002040001000A") == bytes.fromhex("1000010002")
    assert sim.store.read("holding_registers", 1, 2) == [1, 10]


@pytest.mark.parametrize(
    "quantity, byte_count, data_len, address, code",
    [
        (123, 246, 246, 0, None),  # the maximum (§6.12)
        (124, 248, 0, 0, 3),  # (248 data bytes would not fit a 253-byte PDU)
        (0, 0, 0, 0, 3),
        (2, 3, 3, 0, 3),  # byte count must be 2 x quantity
        (2, 4, 3, 0, 3),  # truncated data
        (2, 4, 4, 199, 2),
        (124, 248, 0, 0xFFF0, 3),
    ],
)
def test_fc16_checks(client, quantity, byte_count, data_len, address, code):
    pdu = struct.pack(">BHHB", 16, address, quantity, byte_count & 0xFF) + b"\x00" * data_len
    response = client.request(pdu)
    assert response == (pdu[:5] if code is None else exception(16, code))


def test_fc22_mask_write_example_from_the_spec(sim, client):
    # §6.16: current 0x12, AND 0xF2, OR 0x25 -> 0x17; the response echoes the request.
    sim.store.write("holding_registers", 4, [0x12])
    assert client.request("16000400F20025") == bytes.fromhex("16000400F20025")
    assert sim.store.read("holding_registers", 4) == [0x17]
    assert client.request("1600C800F20025") == exception(22, 2)


def test_fc23_writes_before_it_reads(sim, client):
    sim.store.write("holding_registers", 10, [1, 2, 3])
    # read 10..12, write 11..12 := 0xAAAA 0xBBBB; the read sees the new values (§6.17).
    response = client.request("17000A0003000B000204AAAABBBB")
    assert response == bytes.fromhex("1706" "0001AAAABBBB")


@pytest.mark.parametrize(
    "read_address, read_quantity, write_address, write_quantity, byte_count, data_len, code",
    [
        (0, 125, 0, 121, 242, 242, None),  # both maxima (§6.17)
        (0, 126, 0, 1, 2, 2, 3),
        (0, 0, 0, 1, 2, 2, 3),
        (0, 1, 0, 122, 244, 0, 3),
        (0, 1, 0, 1, 4, 4, 3),  # byte count must be 2 x write quantity
        (0, 1, 0, 1, 2, 1, 3),  # truncated
        (199, 2, 0, 1, 2, 2, 2),  # the read range does not exist
        (0, 1, 199, 2, 4, 4, 2),  # the write range does not exist
        (0xFFFF, 126, 0, 1, 2, 2, 3),  # wrong in quantity and address: 03
    ],
)
def test_fc23_checks(client, read_address, read_quantity, write_address, write_quantity, byte_count, data_len, code):
    pdu = struct.pack(">BHHHHB", 23, read_address, read_quantity, write_address, write_quantity, byte_count & 0xFF)
    response = client.request(pdu + b"\x00" * data_len)
    if code is None:
        assert response[:2] == bytes((23, 2 * read_quantity & 0xFF)) and len(response) == 2 + 2 * read_quantity
    else:
        assert response == exception(23, code)


# --------------------------------------------------------------------------- malformed and unsupported


@pytest.mark.parametrize(
    "pdu, answer",
    [
        ("030000", exception(3, 3)),  # FC3 with 2 data bytes: the implied length is wrong (§7, 03)
        ("03000000010A", exception(3, 3)),  # one byte too many
        ("03", exception(3, 3)),
        ("0500", exception(5, 3)),
        ("10000000", exception(16, 3)),
        ("2B", exception(43, 3)),
        ("2B0E01", exception(43, 3)),
    ],
)
def test_truncated_or_overlong_pdus_answer_03(client, pdu, answer):
    assert client.request(pdu) == answer


@pytest.mark.parametrize("fc", [0x00, 0x07, 0x08, 0x0B, 0x11, 0x14, 0x18, 0x41, 0x7F, 0x83])
def test_function_codes_not_claimed_answer_01(client, fc):
    assert client.request(bytes((fc, 0, 0, 0, 1))) == bytes(((fc | 0x80) & 0xFF, 1))


def test_only_claimed_function_codes_are_served():
    text = PROFILE_YAML.replace("function_codes: [1, 2, 3, 4, 5, 6, 15, 16, 22, 23, 43]", "function_codes: [3]")
    with start_in_thread(parse_profile(text)) as sim, RawClient(sim.host, sim.port) as client:
        assert client.request("0300000001") == bytes.fromhex("03021234")
        assert client.request("0100000001") == exception(1, 1)
        assert client.request("0600000001") == exception(6, 1)
        assert client.request("2B0E0100") == exception(43, 1)
        # unclaimed beats malformed: the function code is checked first
        assert client.request("01") == exception(1, 1)


# --------------------------------------------------------------------------- FC43 / 14


def parse_device_id(pdu: bytes) -> tuple[int, int, int, int, dict[int, bytes]]:
    """(read code, conformity, more follows, next object id, objects) of a 2B/0E response."""
    assert pdu[:2] == b"\x2b\x0e", pdu.hex(" ")
    read_code, conformity, more, next_id, count = pdu[2:7]
    objects, at = {}, 7
    for _ in range(count):
        oid, size = pdu[at], pdu[at + 1]
        objects[oid] = pdu[at + 2 : at + 2 + size]
        at += 2 + size
    assert at == len(pdu)
    return read_code, conformity, more, next_id, objects


def test_fc43_basic_stream(client):
    code, conformity, more, next_id, objects = parse_device_id(client.request("2B0E0100"))
    assert (code, conformity, more, next_id) == (1, 0x82, 0, 0)
    assert objects == {0: b"Test Vendor", 1: b"TV-1", 2: b"2.0"}


def test_fc43_regular_stream_includes_the_basic_objects(client):
    code, _conformity, more, _next, objects = parse_device_id(client.request("2B0E0200"))
    assert (code, more) == (2, 0)
    assert objects == {0: b"Test Vendor", 1: b"TV-1", 2: b"2.0", 4: b"Test Device", 5: b"TD-1"}


def test_fc43_stream_from_a_known_object(client):
    _code, _conf, _more, _next, objects = parse_device_id(client.request("2B0E0204"))
    assert list(objects) == [4, 5]


@pytest.mark.parametrize("object_id", [0x03, 0x50, 0x80, 0xFF])
def test_fc43_stream_from_an_unknown_object_restarts_at_object_0(client, object_id):
    # §6.21: "the server responds as if object 0 were pointed out (restart at the beginning)".
    _code, _conf, _more, _next, objects = parse_device_id(client.request(bytes((0x2B, 0x0E, 0x02, object_id))))
    assert list(objects) == [0, 1, 2, 4, 5]


def test_fc43_basic_stream_does_not_know_regular_objects(client):
    _code, _conf, _more, _next, objects = parse_device_id(client.request("2B0E0104"))
    assert list(objects) == [0, 1, 2]


def test_fc43_level_above_the_claim_answers_at_the_actual_level(client):
    # §6.21: asked for a level higher than its conformity level, the device "must respond in
    # accordance with its actual conformity level" (regular here).
    code, conformity, _more, _next, objects = parse_device_id(client.request("2B0E0300"))
    assert (code, conformity) == (2, 0x82)
    assert list(objects) == [0, 1, 2, 4, 5]


def test_fc43_individual_access(client):
    code, _conf, more, next_id, objects = parse_device_id(client.request("2B0E0405"))
    assert (code, more, next_id, objects) == (4, 0, 0, {5: b"TD-1"})
    assert client.request("2B0E0403") == exception(43, 2)  # an object the device does not hold
    assert client.request("2B0E0480") == exception(43, 2)


@pytest.mark.parametrize("read_code", [0x00, 0x05, 0xFF])
def test_fc43_invalid_read_code_answers_03(client, read_code):
    assert client.request(bytes((0x2B, 0x0E, read_code, 0))) == exception(43, 3)


@pytest.mark.parametrize("mei", [0x0D, 0x00, 0xFF])
def test_fc43_other_mei_types_answer_01(client, mei):
    assert client.request(bytes((0x2B, mei, 1, 0))) == exception(43, 1)


def test_fc43_splits_objects_over_several_responses(profile):
    # Built in code: harness.profile reads YAML mapping keys of device_identification.objects
    # as strings, so extended objects cannot be written in a profile file yet.
    extras = {0x80 + i: f"{'x' * 60}-{i}" for i in range(8)}
    claim = DeviceIdClaim("extended", individual_access=False, extra_objects=extras)
    extended = dataclasses.replace(profile, modbus=dataclasses.replace(profile.modbus, device_identification=claim))
    with start_in_thread(extended) as sim, RawClient(sim.host, sim.port) as client:
        seen: dict[int, bytes] = {}
        object_id, rounds = 0, 0
        while True:
            pdu = client.request(bytes((0x2B, 0x0E, 0x03, object_id)))
            assert len(pdu) <= 253
            code, conformity, more, next_id, objects = parse_device_id(pdu)
            assert (code, conformity) == (3, 0x03)
            assert objects and not set(objects) & set(seen)
            seen.update(objects)
            rounds += 1
            if more == 0x00:
                assert next_id == 0
                break
            assert more == 0xFF and next_id > max(objects)
            object_id = next_id
        assert rounds >= 2
        assert list(seen) == [0, 1, 2, 4, 5, *range(0x80, 0x88)]
        assert seen[0x83] == b"x" * 60 + b"-3"
        # a stream-only device (conformity without 0x80) has no individual access
        assert client.request("2B0E0400") == exception(43, 3)


def test_fc43_basic_level_device():
    text = PROFILE_YAML.replace("{level: regular, individual_access: true}", "{level: basic, individual_access: true}")
    with start_in_thread(parse_profile(text)) as sim, RawClient(sim.host, sim.port) as client:
        code, conformity, _more, _next, objects = parse_device_id(client.request("2B0E0200"))
        assert (code, conformity, list(objects)) == (1, 0x81, [0, 1, 2])
        assert client.request("2B0E0404") == exception(43, 2)


# --------------------------------------------------------------------------- the bundled example


def test_the_example_profile_serves_its_points():
    profile = load_profile(example_profile_path())
    with start_in_thread(profile) as sim, RawClient(sim.host, sim.port) as client:
        response = client.request("0400000002")  # voltage_l1, float32 230.5
        assert struct.unpack(">f", response[2:])[0] == 230.5
        assert sim.store.get_point("voltage_l1") == 230.5
        sim.store.set_point("ct_ratio", 250)
        assert client.request("0300000001") == bytes.fromhex("030200FA")
