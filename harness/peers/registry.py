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
OPCUA_SERVERS: dict[str, str] = {
    "simulator": "harness.peers.registry:_opcua_simulator",
    "asyncua": "harness.peers.registry:_opcua_asyncua",
    "node-opcua": "harness.peers.registry:_opcua_node",
}
SERVERS = {"modbus": MODBUS_SERVERS, "opcua": OPCUA_SERVERS}


def _image(profile_path):
    from ..profile import load_profile
    from .opcua_image import image_from_profile

    return image_from_profile(load_profile(profile_path))


def _opcua_simulator(profile_path):
    from .simulator_peer import start_simulator_server

    return start_simulator_server(profile_path, protocol="opcua")


def _opcua_asyncua(profile_path):
    from .asyncua_server import start_asyncua_server

    return start_asyncua_server(_image(profile_path))


def _opcua_node(profile_path):
    """node-opcua trusting the harness's client certificate, as the simulator does by default."""
    import shutil
    import tempfile
    from pathlib import Path

    from ..certs import harness_client_certificate
    from .node_opcua_server import start_node_opcua_server

    trust = Path(tempfile.mkdtemp(prefix="node-opcua-trust-"))
    shutil.copy(harness_client_certificate().cert_path, trust / "harness-client.der")
    peer = start_node_opcua_server(_image(profile_path), trust_dir=trust)
    peer._on_stop.append(lambda: shutil.rmtree(trust, ignore_errors=True))
    return peer


def start_server(protocol: str, name: str, profile_path):
    """Start the named server of `protocol` loaded with the profile; PeerError if it cannot start."""
    servers = SERVERS[protocol]
    if name not in servers:
        raise KeyError(f"no {protocol} server named {name!r}; known: {', '.join(servers)}")
    module_name, _, function = servers[name].partition(":")
    return getattr(importlib.import_module(module_name), function)(profile_path)
