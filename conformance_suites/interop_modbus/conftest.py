"""The interoperability grid: every scenario for every (client stack, server stack) pair.

A scenario is a test function marked `@scenario(id, title, requirements=..., clause=...)` that
takes the `pair` fixture.  `pytest_generate_tests` turns it into one case per pair, with the
case id `IOP-<scenario>-<client>-<server>` and tags {client, server, scenario}, so the results
and the report can be drawn as a matrix.  `--clients` and `--servers` (comma-separated) narrow
the grid; by default it is every registered stack.

Servers start once per worker and are stopped at the end.  A server or client stack that cannot
start is an ERROR cell with the reason, never a gap.
"""

from __future__ import annotations

import pytest

from harness.adapters.registry import MODBUS_CLIENTS
from harness.conformance import param
from harness.peers.registry import MODBUS_SERVERS

from .support import Pair, ServerPool

SCENARIO = "iop_scenario"


def pytest_addoption(parser):
    group = parser.getgroup("harness-matrix", "interoperability matrix")
    group.addoption("--clients", default="", help="client stacks, comma-separated (default: all)")
    group.addoption("--servers", default="", help="server stacks, comma-separated (default: all)")


def pytest_configure(config):
    config.addinivalue_line("markers", f"{SCENARIO}(id, title, requirements, clause): an interoperability scenario")


def _chosen(config, option: str, known: dict) -> list[str]:
    text = config.getoption(option) or ""
    names = [n.strip() for n in text.split(",") if n.strip()] or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise pytest.UsageError(f"--{option.lstrip('-')}: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker(SCENARIO)
    if marker is None or "pair" not in metafunc.fixturenames:
        return
    meta = marker.kwargs
    clients = _chosen(metafunc.config, "--clients", MODBUS_CLIENTS)
    servers = _chosen(metafunc.config, "--servers", MODBUS_SERVERS)
    params = []
    for server in servers:
        for client in clients:
            params.append(param(
                (client, server),
                id=f"IOP-{meta['id']}-{client}-{server}",
                title=f"{meta['title']} ({client} client, {server} server)",
                requirements=meta["requirements"],
                level="MUST",
                clause=meta["clause"],
                tags={"client": client, "server": server, "scenario": meta["id"]},
            ))
    metafunc.parametrize("pair", params, indirect=True)


def pytest_collection_modifyitems(items):
    # With -n and --dist loadgroup, all the cases of one server run on one worker, so each
    # server is started once, not once per worker.
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "pair" in callspec.params:
            item.add_marker(pytest.mark.xdist_group(f"server-{callspec.params['pair'][1]}"))


@pytest.fixture(scope="session")
def server_pool(profile):
    pool = ServerPool(profile.source)
    yield pool
    pool.close()


@pytest.fixture
def pair(request, server_pool, profile, evidence):
    client_name, server_name = request.param
    with Pair(client_name, server_pool.get(server_name), profile, evidence) as p:
        yield p
