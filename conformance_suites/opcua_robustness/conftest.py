"""Fixtures of the OPC UA robustness suite: the server, its robustness parameters and a liveness
monitor that reads the device's known nodes over a session of its own while a case attacks it."""

from __future__ import annotations

import pytest

from harness.conformance import not_applicable
from harness.liveness import LivenessMonitor
from harness.liveness_opcua import checks_from_profile, opcua_probe

from ..opcua.support import UaDut
from .support import probe_security


@pytest.fixture
def dut(target, profile, evidence):
    return UaDut(target, profile, evidence, [])


@pytest.fixture
def rob(profile):
    """The profile's robustness parameters (harness.profile_robustness)."""
    return profile.robustness


@pytest.fixture
def known_points(profile):
    checks = checks_from_profile(profile)
    if not checks:
        not_applicable("the profile declares no read-only point with a known value (and an OPC UA node) for the "
                       "liveness monitor to read")
    return checks


@pytest.fixture
def monitor(dut, rob, known_points):
    """Reads the known nodes every `monitor_interval_ms` over a session of its own."""
    probe = opcua_probe(dut.url, known_points, security=probe_security(dut))
    watch = LivenessMonitor(probe, interval_s=rob.monitor_interval_ms / 1000, timeout_s=rob.monitor_timeout_ms / 1000)
    watch.start()
    yield watch
    watch.stop()


def pytest_collection_modifyitems(items):
    # Attacks load the server: two at once would blame each on the other. One xdist worker
    # runs them all, in order (with --dist loadgroup).
    for item in items:
        if "opcua_robustness" in str(item.path):
            item.add_marker(pytest.mark.xdist_group("opcua-robustness"))
