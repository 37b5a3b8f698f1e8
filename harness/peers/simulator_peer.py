"""The bundled simulator as one more server peer: `harness simulate` in a subprocess.

In the interoperability matrix the simulator is a server like any other stack's, started the
same way (subprocess, loopback port chosen by the OS, readiness probe, hard stop).
"""

from __future__ import annotations

from pathlib import Path

from .base import PeerProcess, python_argv, python_peer_env


def simulator_version() -> str:
    from importlib.metadata import version

    return version("protocol-harness")


def start_simulator_server(profile_path: str | Path | None = None, *, protocol: str = "modbus", host: str = "127.0.0.1",
                           startup_timeout: float = 30.0) -> PeerProcess:
    """`harness simulate PROFILE --protocol PROTOCOL` serving one face, ready."""
    from ..profile import example_profile_path

    path = Path(profile_path) if profile_path else example_profile_path()
    argv = python_argv("harness.cli", "simulate", str(path.resolve()), "--protocol", protocol, "--host", host)
    scheme = "opc.tcp" if protocol == "opcua" else "modbus+tcp"
    peer = PeerProcess("simulator", argv, version=simulator_version(), host=host, scheme=scheme,
                       startup_timeout=startup_timeout, env=python_peer_env())
    return peer.start()
