import pytest

from harness.codec.modbus.constants import Table
from harness.profile import ProfileError, parse_profile, profile_summary

BASE = """\
profile: harness.profile/1
device: {vendor_name: V, product_code: P, revision: "1"}
modbus:
  function_codes: [3, 16]
  tables:
    holding_registers: {start: 0, count: 10}
  writable:
    holding_registers: {start: 5, count: 5}
points:
  - {name: a, table: holding_registers, address: 0, type: float32, value: 1.5}
"""


def test_example_profile_loads(example_profile):
    assert example_profile.modbus.claims(3)
    assert example_profile.modbus.tables[Table.HOLDING_REGISTERS].count > 0
    assert example_profile.device_id_objects()[0] == "Example Automation"
    assert profile_summary(example_profile)["claims"]["modbus"]["function_codes"][0] == 1


def test_minimal_profile():
    p = parse_profile(BASE, "dev.yaml")
    assert p.points[0].words() == [0x3FC0, 0x0000]


@pytest.mark.parametrize(
    "replace, line, field, words",
    [
        (("count: 10}", "count: many}"), 6, "modbus.tables.holding_registers.count", "whole number"),
        (("type: float32", "type: float128"), 10, "points[0].type", "expected one of"),
        (("address: 0,", "address: 9,"), 10, "points[0].address", "outside modbus.tables.holding_registers"),
        (("{start: 5, count: 5}", "{start: 8, count: 5}"), 8, "modbus.writable.holding_registers", "not inside"),
        (("[3, 16]", "[3, 99]"), 4, "modbus.function_codes[1]", "not one the harness knows"),
        (("value: 1.5", "value: abc"), 10, "points[0].value", "expected a number"),
        (("vendor_name: V", "vendor: V"), 2, "device.vendor", "unknown field"),
    ],
)
def test_errors_name_file_line_and_field(replace, line, field, words):
    text = BASE.replace(*replace)
    with pytest.raises(ProfileError) as info:
        parse_profile(text, "dev.yaml")
    err = info.value
    assert (err.source, err.line, err.path) == ("dev.yaml", line, field), str(err)
    assert words in str(err)
    assert str(err).startswith(f"dev.yaml:{line}: {field}: ")


def test_bool_in_register_table_is_refused():
    text = BASE.replace("type: float32, value: 1.5", "type: bool, value: true")
    with pytest.raises(ProfileError, match="does not fit table holding_registers"):
        parse_profile(text, "dev.yaml")


def test_overlapping_points_are_refused():
    text = BASE + "  - {name: b, table: holding_registers, address: 1, type: uint16}\n"
    with pytest.raises(ProfileError, match="overlaps point 'a'"):
        parse_profile(text, "dev.yaml")


def test_not_yaml_and_empty():
    with pytest.raises(ProfileError, match="not valid YAML"):
        parse_profile("a: [1, 2", "x.yaml")
    with pytest.raises(ProfileError, match="empty"):
        parse_profile("", "x.yaml")
    with pytest.raises(ProfileError, match="profile: harness.profile/1"):
        parse_profile("device: {}", "x.yaml")


def test_extended_identification_objects():
    text = BASE.replace("function_codes: [3, 16]", "function_codes: [3, 16, 43]").replace(
        "points:", "  device_identification: {level: extended, objects: {0x80: serial 17, 129: site B}}\npoints:")
    p = parse_profile(text, "dev.yaml")
    assert p.device_id_objects()[0x80] == "serial 17" and p.device_id_objects()[0x81] == "site B"
    with pytest.raises(ProfileError, match="from 128 to 255"):
        parse_profile(text.replace("0x80", "0x10"), "dev.yaml")
