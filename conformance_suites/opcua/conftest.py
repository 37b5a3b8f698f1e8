"""Fixtures of the OPC UA server suite: the server under test, opened per case."""

from __future__ import annotations

import pytest

from harness.conformance import MARKER

from .support import UaDut


@pytest.fixture
def dut(request, target, profile, evidence):
    marker = request.node.get_closest_marker(MARKER)
    requirements = marker.kwargs["requirements"] if marker is not None else []
    return UaDut(target, profile, evidence, requirements)


def pytest_collection_modifyitems(items):
    # Cases that write to the device's points, or change what the server holds for everyone
    # (sessions at the limit), run on one xdist worker (with --dist loadgroup).
    for item in items:
        if item.get_closest_marker("writes"):
            item.add_marker(pytest.mark.xdist_group("opcua-writes"))


def pytest_configure(config):
    config.addinivalue_line("markers", "writes: the case writes to the device's points")
