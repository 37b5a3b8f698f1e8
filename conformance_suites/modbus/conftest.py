"""Fixtures of the Modbus TCP suite: the device under test, opened per case."""

from __future__ import annotations

import pytest

from .support import Dut


@pytest.fixture
def dut(target, profile, evidence):
    device = Dut(target, profile, evidence)
    yield device
    device.close()


def pytest_collection_modifyitems(items):
    # Cases that write to the device's test addresses run on one xdist worker
    # (with --dist loadgroup), so parallel runs cannot interleave their writes.
    for item in items:
        if item.get_closest_marker("writes"):
            item.add_marker(pytest.mark.xdist_group("modbus-writes"))


def pytest_configure(config):
    config.addinivalue_line("markers", "writes: the case writes to the device's writable test addresses")
