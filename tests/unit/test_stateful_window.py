"""Which writable addresses the Modbus stateful cases exercise: both ends of a long range (a
device that keeps only the start of its range is seen), sixteen in a row of a short one."""

from conformance_suites.modbus_robustness.test_stateful import window_blocks


def test_a_long_range_is_exercised_at_both_ends():
    assert window_blocks(200, 200) == [(200, 8), (392, 8)]
    assert window_blocks(0, 32) == [(0, 8), (24, 8)]


def test_a_short_range_is_exercised_from_its_start():
    assert window_blocks(2000, 31) == [(2000, 16)]
