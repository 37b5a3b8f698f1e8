"""The server stacks the harness can start as peers, by protocol and name, each imported lazily.

    start_server("modbus", "libmodbus", profile_path)  ->  a ready PeerProcess
"""

from __future__ import annotations

import importlib

MODBUS_SERVERS: dict[str, str] = {
    "simulator": "harness.peers.simulator_peer:start_simulator_server",
    "pymodbus": "harness.peers.pymodbus_server:start_pymodbus_server",
    "libmodbus": "harness.peers.libmodbus_server:start_libmodbus_server",
    "modbus-tk": "harness.peers.modbus_tk_server:start_modbus_tk_server",
    "umodbus": "harness.peers.umodbus_server:start_umodbus_server",
    "pyModbusTCP": "harness.peers.pymodbustcp_server:start_pymodbustcp_server",
    "modbus-serial": "harness.peers.node_modbus_servers:start_modbus_serial_server",
    "jsmodbus": "harness.peers.node_modbus_servers:start_jsmodbus_server",
}
SERVERS = {"modbus": MODBUS_SERVERS}


def start_server(protocol: str, name: str, profile_path):
    """Start the named server of `protocol` loaded with the profile; PeerError if it cannot start."""
    servers = SERVERS[protocol]
    if name not in servers:
        raise KeyError(f"no {protocol} server named {name!r}; known: {', '.join(servers)}")
    module_name, _, function = servers[name].partition(":")
    return getattr(importlib.import_module(module_name), function)(profile_path)
