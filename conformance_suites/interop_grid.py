"""The grid both interoperability suites share: scenario x client stack x server stack.

A scenario is a test function marked `@scenario(...)` that takes the `pair` fixture;
`generate_pairs` turns it into one case per (client, server) pair with the id
`IOP-<scenario>-<client>-<server>` and tags {client, server, scenario}, so results and the
report can be drawn as a matrix.  `--clients` / `--servers` (comma-separated) narrow the grid.
"""

from __future__ import annotations

import pytest

from harness.conformance import param

SCENARIO = "iop_scenario"


def scenario(id: str, title: str, *, requirements: list[str], clause: str):
    """Mark a test function as an interoperability scenario (one case per client x server pair)."""
    return getattr(pytest.mark, SCENARIO)(id=id, title=title, requirements=list(requirements), clause=clause)


def add_options(parser) -> None:
    group = parser.getgroup("harness-matrix", "interoperability matrix")
    group.addoption("--clients", default="", help="client stacks, comma-separated (default: all)")
    group.addoption("--servers", default="", help="server stacks, comma-separated (default: all)")


def configure(config) -> None:
    config.addinivalue_line("markers", f"{SCENARIO}(id, title, requirements, clause): an interoperability scenario")


def _chosen(config, option: str, known) -> list[str]:
    text = config.getoption(option) or ""
    names = [n.strip() for n in text.split(",") if n.strip()] or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise pytest.UsageError(f"--{option.lstrip('-')}: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def generate_pairs(metafunc, clients_known, servers_known) -> None:
    marker = metafunc.definition.get_closest_marker(SCENARIO)
    if marker is None or "pair" not in metafunc.fixturenames:
        return
    meta = marker.kwargs
    params = []
    for server in _chosen(metafunc.config, "--servers", servers_known):
        for client in _chosen(metafunc.config, "--clients", clients_known):
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


def group_by_server(items) -> None:
    """With -n and --dist loadgroup, all the cases of one server run on one worker."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "pair" in callspec.params:
            item.add_marker(pytest.mark.xdist_group(f"server-{callspec.params['pair'][1]}"))


class ServerPool:
    """Servers started on first use and kept for the session; a failed start is remembered."""

    def __init__(self, protocol: str, profile_path: str):
        self.protocol = protocol
        self.profile_path = profile_path
        self._servers: dict[str, object] = {}

    def get(self, name: str):
        from harness.conformance import HarnessError
        from harness.peers.base import PeerError
        from harness.peers.registry import start_server

        if name not in self._servers:
            try:
                self._servers[name] = start_server(self.protocol, name, self.profile_path)
            except (PeerError, OSError) as exc:
                self._servers[name] = exc
        server = self._servers[name]
        if isinstance(server, Exception):
            raise HarnessError(f"the {name} server could not be started: {str(server).splitlines()[0]}")
        if not server.running:
            raise HarnessError(f"the {name} server is no longer running (exit code {server.proc.returncode})")
        return server

    def close(self) -> None:
        for server in self._servers.values():
            if not isinstance(server, Exception):
                server.close()
        self._servers.clear()
