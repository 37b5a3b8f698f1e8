"""Fixtures of the Modbus TCP robustness suite: the device, its robustness parameters and a
liveness monitor that reads the device's known points while a case attacks it."""

from __future__ import annotations

import pytest

from harness.conformance import not_applicable
from harness.liveness import LivenessMonitor
from harness.liveness_modbus import checks_from_profile, modbus_probe

from ..modbus.support import Dut


@pytest.fixture
def dut(target, profile, evidence):
    device = Dut(target, profile, evidence)
    yield device
    device.close()


@pytest.fixture
def rob(profile):
    """The profile's robustness parameters (harness.profile_robustness)."""
    return profile.robustness


@pytest.fixture
def known_points(profile):
    checks = checks_from_profile(profile)
    if not checks:
        not_applicable("the profile declares no read-only point with a known value for the liveness monitor to read")
    return checks


@pytest.fixture
def monitor(dut, rob, known_points):
    """Reads the known points every `monitor_interval_ms` on a connection of its own."""
    probe = modbus_probe(dut.target.host, dut.target.port, dut.unit, known_points)
    watch = LivenessMonitor(probe, interval_s=rob.monitor_interval_ms / 1000, timeout_s=rob.monitor_timeout_ms / 1000)
    watch.start()
    yield watch
    watch.stop()


def pytest_collection_modifyitems(items):
    # Attacks load the device: two at once would blame each on the other. One xdist worker
    # runs them all, in order (with --dist loadgroup).
    for item in items:
        if "modbus_robustness" in str(item.path):
            item.add_marker(pytest.mark.xdist_group("modbus-robustness"))
