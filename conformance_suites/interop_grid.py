"""The grid both interoperability suites share: scenario x client stack x server stack.

A scenario is a test function marked `@scenario(...)` that takes the `pair` fixture;
`generate_pairs` turns it into one case per (client, server) pair with the id
`IOP-<scenario>-<client>-<server>` and tags {client, server, scenario}, so results and the
report can be drawn as a matrix.  `--clients` / `--servers` (comma-separated) narrow the grid.

`GridPair` is what one cell of either grid does whatever the protocol: clients of one stack
connected through a `RecordingRelay` in front of the server (the frames go to the evidence),
each call noted with its outcome, and the outcome turned into a verdict.
"""

from __future__ import annotations

import pytest

from harness.adapters.errors import AdapterError, NotInstalled, Unsupported
from harness.conformance import HarnessError, fail, not_applicable, param
from harness.transport.relay import RecordingRelay

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


class GridPair:
    """One cell: a client stack against a server stack, with the frames between them.

    A protocol's cell says which adapter error is the server's refusal of a request (`refusal`,
    e.g. a Modbus exception) and how to put it in words (`_refused`); `call` then makes:
    - an operation the client stack has no API for (`Unsupported`): NOT_APPLICABLE;
    - the refusal of a legal request: FAIL, unless the scenario expects it (then it is raised);
    - any other adapter error: FAIL, with expected and observed.
    A client stack that is not installed is an ERROR with the reason.
    """

    refusal: type[AdapterError] = AdapterError

    def __init__(self, client_name: str, server, profile, evidence):
        self.client_name = client_name
        self.server = server
        self.profile = profile
        self.evidence = evidence
        self._clients: list = []
        self._relay: RecordingRelay | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for client in self._clients:
            try:
                client.close()
            except AdapterError:
                pass
        if self._relay is not None:
            self._relay.close()

    def _new_client(self):
        """An unconnected client of the stack, closed with the cell."""
        from harness.adapters.registry import make_client

        try:
            client = make_client(self.client_name)
        except NotInstalled as exc:
            raise HarnessError(f"the {self.client_name} client stack is not installed: {exc}") from None
        self._clients.append(client)
        return client

    def relay(self, **options) -> RecordingRelay:
        """The cell's recording relay in front of the server (one per case, made on first use)."""
        if self._relay is None:
            self._relay = RecordingRelay(self.server.host, self.server.port, self.evidence.frames.append, **options)
        return self._relay

    def note(self, text: str) -> None:
        self.evidence.notes.append(text)

    def _refused(self, exc) -> tuple[str, str, str]:
        """(short text for the notes, what a legal request gets instead, what came) for a refusal."""
        return str(exc), "a normal response", f"{exc} {exc.detail}".strip()

    def _call(self, what: str, fn, args, refusal_expected: bool):
        try:
            try:
                result = fn(*args)
            finally:
                if self._relay is not None:
                    self._relay.flush()  # a reply cut short is in the evidence before the verdict
        except Unsupported as exc:
            self.note(f"{what}: not supported by {self.client_name}: {exc}")
            not_applicable(f"the {self.client_name} client stack has no API for this: {exc}")
        except self.refusal as exc:
            short, expected, observed = self._refused(exc)
            self.note(f"{what} -> {short}")
            if refusal_expected:
                raise
            fail(f"{what}: {short} between {self.client_name} and {self.server.name}", expected=expected, observed=observed)
        except AdapterError as exc:
            self.note(f"{what} -> {type(exc).__name__}: {exc} {exc.detail}".strip())
            fail(f"{what} failed between {self.client_name} and {self.server.name}: {type(exc).__name__}: {exc}",
                 expected="a normal response", observed=f"{type(exc).__name__}: {exc} {exc.detail}".strip())
        text = repr(result)
        self.note(f"{what} -> {text if len(text) <= 160 else text[:157] + '...'}")
        return result
