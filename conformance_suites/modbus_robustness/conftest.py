"""Fixtures of the Modbus TCP robustness suite: the device, its known points, a liveness check
for the fuzzer and a liveness monitor that reads the known points while a case attacks it.
The protocol-free ones (the robustness parameters, the restarter) come from ..robustness."""

from __future__ import annotations

import pytest

from harness.conformance import not_applicable
from harness.liveness_modbus import checks_from_profile, modbus_probe

from ..modbus.support import Dut
from ..robustness import device_serving_before_case, restarter, rob, run_attacks_one_at_a_time, watch  # noqa: F401 - fixtures
from .support import Liveness


@pytest.fixture
def dut(target, profile, evidence):
    device = Dut(target, profile, evidence)
    yield device
    device.close()


@pytest.fixture
def known_points(profile):
    checks = checks_from_profile(profile)
    if not checks:
        not_applicable("the profile declares no read-only point with a known value for the liveness monitor to read")
    return checks


@pytest.fixture
def liveness(dut, known_points, rob):
    """alive(within_s): does the device answer a read of its known points within that time?"""
    return Liveness(dut, known_points, rob.monitor_timeout_ms / 1000)


@pytest.fixture
def monitor(dut, rob, known_points):
    """Reads the known points every `monitor_interval_ms` on a connection of its own."""
    yield from watch(modbus_probe(dut.target.host, dut.target.port, dut.unit, known_points), rob)


def pytest_collection_modifyitems(items):
    run_attacks_one_at_a_time(items, "modbus_robustness", "modbus-writes")
