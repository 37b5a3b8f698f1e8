"""Loads the traffic `harness observe` recorded (`--observed FILE`) for the observation cases."""

from __future__ import annotations

import pytest

from .traffic import load_traffic, pair_requests


def pytest_addoption(parser):
    group = parser.getgroup("harness-observe", "observation of a client device")
    group.addoption("--observed", default=None,
                    help="traffic.json written by `harness observe` (the frames a client device exchanged with the simulator)")


@pytest.fixture(scope="session")
def traffic(request):
    path = request.config.getoption("--observed")
    if not path:
        raise pytest.UsageError("no traffic to judge: pass --observed TRAFFIC.json, which `harness observe TARGET --profile FILE` writes")
    try:
        return load_traffic(path)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def observed_requests(traffic):
    return pair_requests(traffic.frames)
