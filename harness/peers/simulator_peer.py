"""The bundled simulator as one more server peer: `harness simulate` in a subprocess.

In the interoperability matrix the simulator is a server like any other stack's, started the
same way (subprocess, loopback port chosen by the OS, readiness probe, hard stop).
"""

from __future__ import annotations

import socket
from pathlib import Path

from .base import PeerProcess, python_argv, python_peer_env


def _tcp_probe(host: str, port: int, timeout: float) -> None:
    socket.create_connection((host, port), timeout=timeout).close()


def simulator_version() -> str:
    from importlib.metadata import version

    return version("protocol-harness")


def start_simulator_server(profile_path: str | Path | None = None, *, protocol: str = "modbus", host: str = "127.0.0.1",
                           faults: tuple[str, ...] = (), startup_timeout: float = 30.0) -> PeerProcess:
    """`harness simulate PROFILE --protocol PROTOCOL [--fault F]...` serving one face, ready."""
    from ..profile import example_profile_path

    path = Path(profile_path) if profile_path else example_profile_path()
    argv = python_argv("harness.cli", "simulate", str(path.resolve()), "--protocol", protocol, "--host", host)
    for fault in faults:
        argv += ["--fault", fault]
    scheme = "opc.tcp" if protocol == "opcua" else "modbus+tcp"
    # A faulty simulator may not answer the protocol probe properly (that is the point of the
    # fault): a TCP connection is proof enough that it is up.
    probe = _tcp_probe if faults else None
    peer = PeerProcess("simulator", argv, version=simulator_version(), host=host, scheme=scheme,
                       startup_timeout=startup_timeout, env=python_peer_env(), probe=probe)
    return peer.start()
