"""The uModbus TCP server as a third-party peer, loaded with a device profile's data.

`start_umodbus_server(profile)` runs ``python -m harness.peers.run_umodbus_server PROFILE`` in
its own process group and returns the ready `PeerProcess`.  `build_app(profile, host, port)` is
the part that turns a profile into a uModbus server; it runs inside the peer process.

How the profile maps onto uModbus 1.0.4 (checked against the installed sources):

* Server: ``get_server(socketserver.TCPServer, (host, port), umodbus.server.tcp.RequestHandler)``
  as in uModbus's own example.  socketserver binds in the constructor, so port 0 works and the
  port is read back from ``server.server_address``.  `TCPServer` is single-threaded and
  uModbus's handler loops over one connection until the client closes it, with no receive
  timeout: while one client is connected, every other client waits (its connect succeeds, its
  requests are answered only after the first client has gone), and a client that connects and
  stays silent blocks the server.  That is uModbus used as documented; a deployment could pass
  ThreadingTCPServer instead, this peer does not.
* Data: uModbus has no data store, only routes ``@app.route(slave_ids, function_codes,
  addresses)`` to callbacks.  The peer keeps one list per (unit id, table), filled from
  `table_images`, and registers per unit id and declared table a read route (FC1 coils, FC2
  discrete inputs, FC3 holding registers, FC4 input registers) and, for coils and holding
  registers, a write route (FC5 + FC15, FC6 + FC16), each over exactly the profile's extent.
  An address without a route gets exception 02 (for a multi-address request: if any address of
  it has none).  Writes of several values are applied address by address, so a FC15/FC16 that
  runs past the extent has already written the addresses before the first missing one when
  uModbus answers exception 02: that is uModbus's behaviour.
* Unit ids: the routes carry the profile's unit ids; a request for another unit id finds no
  route and gets exception 02 (uModbus does not tell an unknown unit from an unknown address).
* Function codes: uModbus implements 1, 2, 3, 4, 5, 6, 15, 16 only; any other function code
  gets exception 01.  No device identification (FC43): the profile's identity cannot be served.
* Register values are unsigned 16-bit (uModbus's default Config; UMODBUS_SIGNED_VALUES unset).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..installed import installed_version
from .base import DEFAULT_STARTUP_TIMEOUT_S, PeerError, PeerProcess, python_argv, python_peer_env, table_images

RUNNER = "harness.peers.run_umodbus_server"
INSTALL_HINT = "pip install 'protocol-harness[peers]' (or `pip install umodbus`)"

READ_FC = {"coils": 1, "discrete_inputs": 2, "holding_registers": 3, "input_registers": 4}
WRITE_FCS = {"coils": (5, 15), "holding_registers": (6, 16)}


def umodbus_version() -> str:
    """The installed umodbus version, or "unknown" when it is not installed (the starter says so)."""
    return installed_version("umodbus")


def build_app(profile, host: str = "127.0.0.1", port: int = 0):
    """Profile -> (bound uModbus TCPServer with its routes, {(unit, table name): values list})."""
    from socketserver import TCPServer

    from umodbus.server.tcp import RequestHandler, get_server

    app = get_server(TCPServer, (host, port), RequestHandler)
    images = table_images(profile)
    unit_ids = list(profile.modbus.unit_ids) if profile.modbus else [1]
    store: dict[tuple[int, str], list[int]] = {}
    for unit in unit_ids:
        for table, (start, values) in images.items():
            name = table.value
            data = store[(unit, name)] = list(values)
            addresses = range(start, start + len(values))  # `in` is O(1) on a range
            _add_routes(app, unit, name, start, addresses, data)
    return app, store


def _add_routes(app, unit: int, table: str, start: int, addresses: range, data: list[int]) -> None:
    # A function per route, closing over its own list: uModbus calls it once per address.
    def read(slave_id, function_code, address):
        return data[address - start]

    app.route(slave_ids=[unit], function_codes=[READ_FC[table]], addresses=addresses)(read)
    if table in WRITE_FCS:

        def write(slave_id, function_code, address, value):
            data[address - start] = value

        app.route(slave_ids=[unit], function_codes=list(WRITE_FCS[table]), addresses=addresses)(write)


def start_umodbus_server(
    profile_path: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> PeerProcess:
    """Start the uModbus TCP server for `profile_path` (default: the example profile), ready.

    Raises PeerError when uModbus is not installed (the message says how to install it), when
    the profile has no modbus section, or when the server does not come up.
    """
    from ..profile import example_profile_path, load_profile

    if importlib.util.find_spec("umodbus") is None:
        raise PeerError(f"peer 'umodbus': uModbus is not installed; {INSTALL_HINT}")
    profile_path = Path(profile_path) if profile_path else example_profile_path()
    profile = load_profile(profile_path)  # fail here, in the caller, on a bad profile
    if profile.modbus is None:
        raise PeerError(f"peer 'umodbus': {profile.source} has no modbus section")
    peer = PeerProcess(
        "umodbus",
        python_argv(RUNNER, str(profile_path.resolve()), "--host", host, "--port", "0"),
        version=umodbus_version(),
        host=host,
        unit=profile.modbus.unit_id,
        startup_timeout=startup_timeout,
        env=python_peer_env(),
    )
    return peer.start()
