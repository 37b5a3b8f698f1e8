"""Client-side cases run once per client stack (`--clients`, default all) against faulty simulators.

A case takes `client_case`, a `ClientCase` for one stack; simulators with a given set of faults
are started on demand (`harness simulate --fault ...`, a subprocess) and shared between stacks
unless a case asks for a fresh one (faults that count requests).
"""

from __future__ import annotations

import pytest

from harness.adapters.registry import MODBUS_CLIENTS
from harness.conformance import MARKER

from .support import RULE, ClientCase, FaultySimulators


def pytest_addoption(parser):
    group = parser.getgroup("harness-client", "client-side conformance")
    try:
        group.addoption("--clients", default="", help="client stacks, comma-separated (default: all)")
    except ValueError:
        pass  # the interoperability suite registers the same option


def pytest_configure(config):
    config.addinivalue_line("markers", f"{RULE}(id, title, requirements, clause): a client-side case, run per client stack")


def pytest_generate_tests(metafunc):
    if "client_case" not in metafunc.fixturenames:
        return
    text = metafunc.config.getoption("--clients") or ""
    names = [n.strip() for n in text.split(",") if n.strip()] or list(MODBUS_CLIENTS)
    unknown = [n for n in names if n not in MODBUS_CLIENTS]
    if unknown:
        raise pytest.UsageError(f"--clients: unknown {', '.join(unknown)}; known: {', '.join(MODBUS_CLIENTS)}")
    meta = metafunc.definition.get_closest_marker(RULE).kwargs
    params = [pytest.param(name, id=f"{meta['id']}-{name}", marks=getattr(pytest.mark, MARKER)(
        id=f"{meta['id']}-{name}", title=f"{meta['title']} ({name})", requirements=meta["requirements"], level="MUST",
        clause=meta["clause"], tags={"client": name, "scenario": meta["id"]})) for name in names]
    metafunc.parametrize("client_case", params, indirect=True)


@pytest.fixture(scope="session")
def simulators(profile):
    pool = FaultySimulators(profile.source)
    yield pool
    pool.close()


@pytest.fixture
def client_case(request, simulators, profile, evidence):
    with ClientCase(request.param, simulators, profile, evidence) as case:
        yield case
