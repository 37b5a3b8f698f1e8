"""Third-party peers (harness.peers): start on a free port, serve the profile, stop without a trace.

Each peer (pymodbus, libmodbus) is started as a subprocess, read over a real socket with raw MBAP
frames built with struct (every socket call has a timeout), compared against the profile's values
as `harness.profile.encode_point` produces them, and stopped; afterwards neither the process nor its process
group may exist.  Peers that fail to start must raise `PeerError` naming the peer and quoting its
stderr.  The whole module runs in a few seconds (the libmodbus server is compiled once into the
cache directory on first use).
"""

from __future__ import annotations

import socket
import struct
import sys
import textwrap
import time

import pytest
import peer_checks
from peer_checks import process_gone, read_table


from harness.codec.modbus.constants import Table
from harness.peers.base import PeerError, PeerProcess, modbus_probe, python_argv, python_peer_env
from harness.peers.libmodbus_server import start_libmodbus_server
from harness.peers.pymodbus_server import RUNNER, start_pymodbus_server
from harness.profile import decode_point, encode_point, example_profile_path, load_profile, same_point_value

PROFILE = load_profile(example_profile_path())
UNIT = PROFILE.modbus.unit_id
STARTERS = {"pymodbus": start_pymodbus_server, "libmodbus": start_libmodbus_server}


def transact(host: str, port: int, pdu: bytes) -> bytes:
    return peer_checks.transact(host, port, pdu, unit=UNIT)


def read_words(host: str, port: int, point) -> list[int]:
    return read_table(host, port, point.table, point.address, point.size, unit=UNIT)


@pytest.fixture(scope="module", params=sorted(STARTERS))
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


@pytest.mark.parametrize("point", PROFILE.points, ids=lambda p: p.name)
def test_peer_serves_profile_point(peer, point):
    assert read_words(peer.host, peer.port, point) == encode_point(point, point.value)


def test_fc3_read_of_holding_points_decodes_to_profile_values(peer):
    for point in PROFILE.points_in(Table.HOLDING_REGISTERS):
        reply = transact(peer.host, peer.port, struct.pack(">BHH", 3, point.address, point.size))
        words = list(struct.unpack(f">{reply[1] // 2}H", reply[2:]))
        assert same_point_value(point, point.value, decode_point(point, words))


@pytest.mark.parametrize("name", sorted(STARTERS))
def test_stop_leaves_no_process_behind(name):
    p = STARTERS[name]()
    pid = p.pid
    assert modbus_probe(p.host, p.port, UNIT, timeout=2.0)
    p.close()
    assert not p.running
    assert process_gone(pid), f"{name} peer pid {pid} (or its process group) survived stop()"
    with pytest.raises(OSError):
        socket.create_connection((p.host, p.port), timeout=1.0).close()


# ---------------------------------------------------------------------- start-up failures


def _script(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_peer_that_exits_gives_clear_error():
    peer = PeerProcess("broken-peer", _script("""
        import sys
        sys.stderr.write("fatal: cannot open /dev/nonexistent\\n")
        sys.exit(3)
    """), startup_timeout=5)
    with pytest.raises(PeerError) as info:
        peer.start()
    message = str(info.value)
    assert "broken-peer" in message
    assert "exited with code 3" in message
    assert "cannot open /dev/nonexistent" in message
    assert not peer.running


def test_peer_that_never_announces_times_out():
    peer = PeerProcess("silent-peer", _script("import time; time.sleep(60)"), startup_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(PeerError, match=r"silent-peer.*did not print 'listening on"):
        peer.start()
    assert time.monotonic() - t0 < 6
    assert process_gone(peer.pid)


def test_peer_that_announces_but_never_answers_fails_the_probe():
    # Listens (so connect() succeeds) but never reads: the FC3 probe gets no reply.
    peer = PeerProcess("mute-peer", _script("""
        import socket, time
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
        print(f"listening on modbus+tcp://127.0.0.1:{s.getsockname()[1]}", flush=True)
        time.sleep(60)
    """), startup_timeout=1.5)
    with pytest.raises(PeerError, match=r"mute-peer.*did not answer a Modbus FC3 read"):
        peer.start()
    assert process_gone(peer.pid)


def test_stop_kills_the_whole_process_group():
    # The peer starts a grandchild that ignores SIGTERM; stop() must not leave it behind.
    peer = PeerProcess("forking-peer", _script("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        print(f"child {child.pid}", flush=True)
        print("listening on modbus+tcp://127.0.0.1:9", flush=True)
        time.sleep(60)
    """), probe=lambda host, port, timeout: None, startup_timeout=5)
    with peer:
        child = int(next(line.split()[1] for line in peer.stdout_lines() if line.startswith("child ")))
        leader = peer.pid
    assert process_gone(leader)
    deadline = time.monotonic() + 2
    while not process_gone(child) and time.monotonic() < deadline:
        time.sleep(0.02)  # the grandchild is reaped by init after SIGKILL
    assert process_gone(child), "grandchild survived stop()"


def test_pymodbus_runner_reports_a_bad_profile():
    peer = PeerProcess("pymodbus", python_argv(RUNNER, "/nonexistent/profile.yaml"), env=python_peer_env(), startup_timeout=10)
    with pytest.raises(PeerError) as info:
        peer.start()
    assert "pymodbus" in str(info.value)
    assert "cannot read the profile" in str(info.value)


def test_missing_libmodbus_dev_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PKG_CONFIG_LIBDIR", str(tmp_path))  # pkg-config now finds nothing
    monkeypatch.setenv("PKG_CONFIG_PATH", str(tmp_path))
    with pytest.raises(PeerError, match=r"apt-get install -y libmodbus-dev"):
        start_libmodbus_server()
