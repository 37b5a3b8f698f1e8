"""The Modbus interoperability grid: every scenario for every (client stack, server stack) pair.

See `conformance_suites/interop_grid.py` for how scenarios become one case per pair.  Servers
start once per worker and are stopped at the end; a server or client stack that cannot start is
an ERROR cell with the reason, never a gap.
"""

from __future__ import annotations

import pytest

from harness.adapters.registry import MODBUS_CLIENTS
from harness.peers.registry import MODBUS_SERVERS

from ..interop_grid import ServerPool, add_options, configure, generate_pairs, group_by_server
from .support import Pair


def pytest_addoption(parser):
    add_options(parser)


def pytest_configure(config):
    configure(config)


def pytest_generate_tests(metafunc):
    generate_pairs(metafunc, MODBUS_CLIENTS, MODBUS_SERVERS)


def pytest_collection_modifyitems(items):
    group_by_server(items)


@pytest.fixture(scope="session")
def server_pool(profile):
    pool = ServerPool("modbus", profile.source)
    yield pool
    pool.close()


@pytest.fixture
def pair(request, server_pool, profile, evidence, case_random):
    client_name, server_name = request.param
    with Pair(client_name, server_pool.get(server_name), profile, evidence, case_random) as p:
        yield p
