"""Fixtures of the OPC UA robustness suite: the server, its known nodes, a liveness check for the
fuzzer and a liveness monitor that reads the known nodes over a session of its own while a case
attacks it.  The protocol-free ones (the robustness parameters, the restarter) come from
..robustness."""

from __future__ import annotations

import pytest

from harness.conformance import not_applicable
from harness.liveness_opcua import checks_from_profile, opcua_probe

from ..opcua.support import UaDut
from ..robustness import device_serving_before_case, restarter, rob, run_attacks_one_at_a_time, watch  # noqa: F401 - fixtures
from .support import Liveness


@pytest.fixture
def dut(target, profile, evidence):
    return UaDut(target, profile, evidence, [])


@pytest.fixture
def known_points(profile):
    checks = checks_from_profile(profile)
    if not checks:
        not_applicable("the profile declares no read-only point with a known value (and an OPC UA node) for the "
                       "liveness monitor to read")
    return checks


@pytest.fixture
def liveness(dut, known_points, rob):
    """alive(within_s): does the server answer a Read of the known nodes within that time?"""
    alive = Liveness(dut, known_points, rob.monitor_timeout_ms / 1000)
    yield alive
    alive.close()


@pytest.fixture
def monitor(dut, rob, known_points):
    """Reads the known nodes every `monitor_interval_ms` over a session of its own."""
    yield from watch(opcua_probe(dut.url, known_points, security=dut.login_security()), rob)


def pytest_collection_modifyitems(items):
    run_attacks_one_at_a_time(items, "opcua_robustness", "opcua-writes")
