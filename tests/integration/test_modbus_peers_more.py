"""More third-party Modbus TCP peers: modbus-tk, uModbus, pyModbusTCP, modbus-serial, jsmodbus.

Each peer is started as a subprocess on a loopback port, read with raw MBAP frames
(`raw_client.RawClient`, every socket call has a timeout) and compared against the profile's
values as `harness.profile.encode_point` produces them; a write is read back; stop() must leave
neither the process nor its process group behind.  A missing stack (Python package, node, or
node package) must give a `PeerError` that names the fix.  The module runs in well under 40 s.
"""

from __future__ import annotations

import os
import socket
import struct
import sys

import pytest
import peer_checks
from peer_checks import process_gone, read_table

from harness.codec.modbus.constants import Table
from harness.peers.base import PeerError, PeerProcess, modbus_probe, python_argv, python_peer_env
from harness.peers.modbus_tk_server import start_modbus_tk_server
from harness.peers.node_modbus_servers import start_jsmodbus_server, start_modbus_serial_server
from harness.peers.pymodbustcp_server import start_pymodbustcp_server
from harness.peers.umodbus_server import start_umodbus_server
from harness.profile import encode_point, example_profile_path, load_profile

PROFILE = load_profile(example_profile_path())
UNIT = PROFILE.modbus.unit_id
STARTERS = {
    "modbus-tk": start_modbus_tk_server,
    "umodbus": start_umodbus_server,
    "pymodbustcp": start_pymodbustcp_server,
    "modbus-serial": start_modbus_serial_server,
    "jsmodbus": start_jsmodbus_server,
}
# (python module that must be importable, runner module) of the Python peers
PYTHON_STACKS = {
    "modbus-tk": ("modbus_tk", "harness.peers.run_modbus_tk_server"),
    "umodbus": ("umodbus", "harness.peers.run_umodbus_server"),
    "pymodbustcp": ("pyModbusTCP", "harness.peers.run_pymodbustcp_server"),
}


def transact(peer, pdu: bytes) -> bytes:
    return peer_checks.transact(peer.host, peer.port, pdu, unit=UNIT)


def read(peer, table: Table, address: int, count: int) -> list[int]:
    return read_table(peer.host, peer.port, table, address, count, unit=UNIT)


@pytest.fixture(scope="module", params=list(STARTERS))
def peer(request):
    with STARTERS[request.param]() as p:
        yield p


def test_peer_announces_itself(peer):
    assert peer.host == "127.0.0.1"
    assert 0 < peer.port < 65536
    assert peer.url == f"modbus+tcp://127.0.0.1:{peer.port}"
    assert peer.name in STARTERS
    assert peer.version and peer.version[0].isdigit()
    assert peer.running
    # stdout carries only the version line and the announcement
    assert peer.stdout_lines() == [f"version: {peer.version}", f"listening on modbus+tcp://127.0.0.1:{peer.port}"]


@pytest.mark.parametrize("point", PROFILE.points, ids=lambda p: p.name)
def test_peer_serves_profile_point(peer, point):
    assert read(peer, point.table, point.address, point.size) == encode_point(point, point.value)


def test_write_single_and_multiple_registers_read_back(peer):
    # addresses inside the profile's writable range and outside every point
    assert transact(peer, struct.pack(">BHH", 6, 200, 0x1234)) == struct.pack(">BHH", 6, 200, 0x1234)
    assert transact(peer, struct.pack(">BHHB2H", 16, 201, 2, 4, 0xBEEF, 7)) == struct.pack(">BHH", 16, 201, 2)
    assert read(peer, Table.HOLDING_REGISTERS, 200, 3) == [0x1234, 0xBEEF, 7]


def test_write_coils_read_back(peer):
    assert transact(peer, struct.pack(">BHH", 5, 2000, 0xFF00)) == struct.pack(">BHH", 5, 2000, 0xFF00)
    assert transact(peer, struct.pack(">BHHBB", 15, 2001, 3, 1, 0b101)) == struct.pack(">BHH", 15, 2001, 3)
    assert read(peer, Table.COILS, 2000, 4) == [1, 1, 0, 1]


@pytest.mark.parametrize("name", list(STARTERS))
def test_stop_leaves_no_process_behind(name):
    p = STARTERS[name]()
    pid = p.pid
    assert modbus_probe(p.host, p.port, UNIT, timeout=2.0)
    p.close()
    assert not p.running
    assert process_gone(pid), f"{name} peer pid {pid} (or its process group) survived stop()"
    with pytest.raises(OSError):
        socket.create_connection((p.host, p.port), timeout=1.0).close()


# ---------------------------------------------------------------------- missing stacks


@pytest.mark.parametrize("name", list(PYTHON_STACKS))
def test_missing_python_stack_says_how_to_install(name, monkeypatch):
    module, _runner = PYTHON_STACKS[name]
    monkeypatch.setitem(sys.modules, module, None)  # find_spec() now reports it missing
    with pytest.raises(PeerError, match=r"not installed.*pip install 'protocol-harness\[peers\]'"):
        STARTERS[name]()


@pytest.mark.parametrize("name", list(PYTHON_STACKS))
def test_runner_without_its_stack_fails_with_the_fix(name, tmp_path):
    # The runner itself (a peer started by hand or from another interpreter) says the same:
    # a package of the stack's name that cannot be imported shadows the real one.
    module, runner = PYTHON_STACKS[name]
    (tmp_path / module).mkdir()
    (tmp_path / module / "__init__.py").write_text("raise ImportError('simulated: not installed')\n")
    env = python_peer_env()
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env["PYTHONPATH"]
    peer = PeerProcess(name, python_argv(runner, str(example_profile_path())), env=env, startup_timeout=10)
    with pytest.raises(PeerError) as info:
        peer.start()
    message = str(info.value)
    assert name in message and "exited with code 1" in message
    assert "pip install 'protocol-harness[peers]'" in message
    assert process_gone(peer.pid)


@pytest.mark.parametrize("start", [start_modbus_serial_server, start_jsmodbus_server], ids=["modbus-serial", "jsmodbus"])
def test_missing_node_says_how_to_install(start, monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_NODE", str(tmp_path / "no-such-node"))
    with pytest.raises(PeerError, match=r"Node.js is not installed.*scripts/install-node-packages.sh"):
        start()


@pytest.mark.parametrize("start, package", [(start_modbus_serial_server, "modbus-serial"), (start_jsmodbus_server, "jsmodbus")],
                         ids=["modbus-serial", "jsmodbus"])
def test_missing_node_package_says_how_to_install(start, package, monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_NODE_MODULES", str(tmp_path))  # an empty node_modules
    with pytest.raises(PeerError, match=rf"{package} is not installed in .*scripts/install-node-packages.sh"):
        start()
