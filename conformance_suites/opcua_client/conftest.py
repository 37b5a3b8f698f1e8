"""Client-side OPC UA cases run once per client stack (`--clients`, default all) against faulty simulators.

A case takes `client_case`, a `ClientCase` for one stack.  The simulators the selected cases
need (`harness simulate --protocol opcua --fault ...`, subprocesses) are started together when
the first case asks for one, and shared between the stacks.  Each case's level is the
strongest level of its requirements in this suite's catalogue.  With -n and --dist loadgroup
all the cases run on one worker, so the simulators and the client processes are started once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.adapters.registry import OPCUA_CLIENTS
from harness.conformance import param
from harness.requirements import load_catalogue

from ..interop_grid import _chosen as chosen
from .support import RULE, ClientCase, FaultySimulators, StackClients

CATALOGUE = load_catalogue(Path(__file__).with_name("requirements.toml"), "opcua_client")
_STRENGTH = {"MUST": 0, "SHOULD": 1, "MAY": 2}


def pytest_addoption(parser):
    group = parser.getgroup("harness-client", "client-side conformance")
    try:
        group.addoption("--clients", default="", help="client stacks, comma-separated (default: all)")
    except ValueError:
        pass  # the interoperability suites (or the Modbus client-side suite) register the same option


def pytest_configure(config):
    config.addinivalue_line("markers", f"{RULE}(id, title, requirements, clause, faults): an OPC UA client-side case, run per client stack")


def _level(requirements: list[str]) -> str:
    levels = [CATALOGUE[r].level.value for r in requirements]  # KeyError: a requirement missing from the catalogue
    return min(levels, key=_STRENGTH.__getitem__)


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker(RULE)
    if marker is None or "client_case" not in metafunc.fixturenames:
        return
    names = chosen(metafunc.config, "--clients", OPCUA_CLIENTS)  # UsageError for an unknown name
    meta = marker.kwargs
    level = _level(meta["requirements"])
    params = [param(name, id=f"{meta['id']}-{name}", title=f"{meta['title']} ({name})", requirements=meta["requirements"],
                    level=level, clause=meta["clause"], tags={"client": name, "scenario": meta["id"]})
              for name in names]
    metafunc.parametrize("client_case", params, indirect=True)


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker(RULE) is not None:
            item.add_marker(pytest.mark.xdist_group("opcua-client"))


@pytest.fixture(scope="session")
def opcua_simulators(request, profile):
    pool = FaultySimulators(profile.source)
    # every fault set the selected cases use, started side by side
    pool.prestart(dict.fromkeys(item.get_closest_marker(RULE).kwargs.get("faults", ()) for item in request.session.items
                                if item.get_closest_marker(RULE) is not None))
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def opcua_clients():
    clients = StackClients()
    yield clients
    clients.close()


@pytest.fixture
def client_case(request, opcua_simulators, opcua_clients, profile, evidence):
    with ClientCase(request.param, opcua_simulators, opcua_clients, profile, evidence) as case:
        yield case
