"""The recording relay (harness.transport.relay) between real sockets on loopback.

Servers: the bundled Modbus simulator in a thread, the device simulator's OPC UA face, and a
scripted server that sends exactly the bytes a test gives it, when the test says so.  Clients:
raw sockets and ModbusTcpConnection.  Every wait has a generous timeout so that nothing hangs;
nothing asserts on speed.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

from harness.model import Frame
from harness.profile import example_profile_path
from harness.transport.modbus_tcp import ModbusTcpConnection
from harness.transport.pcap import parse_conn, pcap_connections_from_cases, write_pcap
from harness.transport.relay import ModbusTcpCutter, RecordingRelay, UacpCutter, uacp_framing
from raw_client import RawClient
from raw_client import frame as mbap

TIMEOUT = 5.0
READ_2 = bytes([3, 0, 0, 0, 2])  # FC03 address 0, 2 registers


def recv_response(client: RawClient) -> bytes:
    head = client.recv_exact(6)
    return head + client.recv_exact(int.from_bytes(head[4:6], "big"))


def wait_for(condition, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def relay_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("recording-relay")]


@pytest.fixture(scope="module")
def simulator():
    from simulators.modbus.server import start_in_thread

    sim = start_in_thread(example_profile_path())
    yield sim
    sim.stop()


@pytest.fixture
def frames():
    return []


@pytest.fixture
def relay(simulator, frames):
    with RecordingRelay(simulator.host, simulator.port, frames.append) as r:
        yield r


class ScriptedServer:
    """Accepts one connection and plays `steps`: bytes are sent, an Event is waited for,
    "recv" reads one chunk, "close" closes the connection."""

    def __init__(self, steps):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(TIMEOUT)
        self.host, self.port = self.sock.getsockname()[:2]
        self.steps = steps
        self.received = b""
        self.thread = threading.Thread(target=self._play, daemon=True)
        self.thread.start()

    def _play(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(TIMEOUT)
            for step in self.steps:
                if isinstance(step, bytes):
                    conn.sendall(step)
                elif isinstance(step, threading.Event):
                    step.wait(TIMEOUT)
                elif step == "recv":
                    self.received += conn.recv(4096)
                elif step == "close":
                    break

    def close(self) -> None:
        self.sock.close()
        self.thread.join(TIMEOUT)


# ---------------------------------------------------------------------------- Modbus through the simulator


def test_a_request_and_its_response_are_recorded_both_ways(simulator, relay, frames):
    with ModbusTcpConnection(relay.host, relay.port) as conn:
        reply = conn.request(READ_2)
        client_address = conn._sock.getsockname()
    assert reply.adu.pdu[0] == 3
    tx, rx = frames
    assert (tx.direction, rx.direction) == ("tx", "rx")
    assert tx.data == mbap(READ_2) and rx.data == reply.raw  # byte for byte what passed
    assert tx.summary == "tid=0x0001 uid=1 FC03 Read Holding Registers addr=0 qty=2"
    assert rx.summary.startswith("tid=0x0001 uid=1 FC03 response 2 registers")
    # the client's address as the relay saw it, and the real server: as if there were no relay
    expected = f"{client_address[0]}:{client_address[1]}->{simulator.host}:{simulator.port}"
    assert tx.conn == rx.conn == expected
    assert parse_conn(tx.conn) == ((client_address[0], client_address[1]), (simulator.host, simulator.port))
    assert tx.t_mono <= rx.t_mono and tx.t_wall > 0


def test_a_request_sent_in_pieces_is_one_frame(relay, frames):
    request = mbap(READ_2, tid=7)
    with RawClient(relay.host, relay.port) as client:
        for piece in (request[:3], request[3:8], request[8:]):
            client.send(piece)
            time.sleep(0.05)  # separate segments (the test holds whatever the timing)
        response = recv_response(client)
    tx = [f for f in frames if f.direction == "tx"]
    assert [f.data for f in tx] == [request]
    assert response[:2] == b"\x00\x07" and [f.data for f in frames if f.direction == "rx"] == [response]


def test_two_requests_in_one_send_are_two_frames(relay, frames):
    with RawClient(relay.host, relay.port) as client:
        client.send(mbap(READ_2, tid=1) + mbap(bytes([4, 0, 0, 0, 1]), tid=2))
        first, second = recv_response(client), recv_response(client)
    tx = [f for f in frames if f.direction == "tx"]
    rx = [f for f in frames if f.direction == "rx"]
    assert [f.summary.split(" FC")[0] for f in tx] == ["tid=0x0001 uid=1", "tid=0x0002 uid=1"]
    assert "FC03" in tx[0].summary and "FC04" in tx[1].summary
    assert [f.data for f in rx] == [first, second]


def test_simultaneous_connections_keep_their_own_conn(simulator, relay, frames):
    with ModbusTcpConnection(relay.host, relay.port) as a, ModbusTcpConnection(relay.host, relay.port) as b:
        a.request(READ_2, tid=0x0A)
        b.request(READ_2, tid=0x0B)
        a.request(READ_2, tid=0x0C)
        ports = {a._sock.getsockname()[1]: (0x0A, 0x0C), b._sock.getsockname()[1]: (0x0B,)}
    conns = {f.conn for f in frames}
    assert len(conns) == 2
    for port, tids in ports.items():
        mine = [f for f in frames if f.conn == f"127.0.0.1:{port}->{simulator.host}:{simulator.port}"]
        assert sorted({int(f.hex[:4], 16) for f in mine}) == list(tids)
        assert [f.direction for f in mine] == ["tx", "rx"] * len(tids)


def test_garbage_from_the_client_is_recorded_and_the_relay_goes_on(relay, frames):
    garbage = mbap(b"\x03", length=0) + b"\xde\xad\xbe\xef"  # MBAP length 0: no framing possible
    with RawClient(relay.host, relay.port) as client:
        client.send(garbage)
        client.expect_closed()  # the simulator closes, the relay closes the client side
    assert [f.direction for f in frames] == ["tx"]
    assert frames[0].data == garbage and frames[0].summary.startswith("unframable: MBAP length 0")
    with ModbusTcpConnection(relay.host, relay.port) as conn:  # the relay still serves
        assert conn.request(READ_2).adu.pdu[0] == 3


def test_a_failing_recorder_does_not_stop_the_traffic(simulator):
    def recorder(frame):
        raise RuntimeError("the recorder broke")

    with RecordingRelay(simulator.host, simulator.port, recorder) as relay, ModbusTcpConnection(relay.host, relay.port) as conn:
        assert conn.request(READ_2).adu.pdu[0] == 3


# ---------------------------------------------------------------------------- partial and impossible frames


def test_bytes_are_passed_on_before_the_frame_is_whole_and_flush_records_them():
    response = mbap(bytes([3, 4, 0, 1, 0, 2]), tid=5)  # 13 bytes
    release = threading.Event()
    server = ScriptedServer(["recv", response[:9], release, response[9:], "close"])
    frames: list[Frame] = []
    try:
        with RecordingRelay(server.host, server.port, frames.append) as relay, \
                RawClient(relay.host, relay.port) as client:
            client.send(mbap(READ_2, tid=5))
            assert client.recv_exact(9) == response[:9]  # forwarded as it came, not held for the rest
            assert [f.direction for f in frames] == ["tx"]
            relay.flush()
            assert frames[-1].direction == "rx" and frames[-1].data == response[:9]
            assert frames[-1].summary == "incomplete: 9 bytes of a 13-byte frame (tid=0x0005 uid=1), so far"
            release.set()
            assert client.recv_exact(4) == response[9:]
            client.expect_closed()
            rest = frames[-1]
            assert rest.data == response[9:]  # every byte recorded once: the pcap stays a valid stream
            assert rest.summary.startswith("the last 4 of 13 bytes: tid=0x0005 uid=1 FC03 response 2 registers")
    finally:
        server.close()


def test_bytes_left_when_the_server_closes_are_recorded():
    server = ScriptedServer(["recv", mbap(bytes([3, 4, 0, 1, 0, 2]))[:9], "close"])
    frames: list[Frame] = []
    try:
        with RecordingRelay(server.host, server.port, frames.append) as relay, \
                RawClient(relay.host, relay.port) as client:
            client.send(mbap(READ_2))
            assert client.recv_exact(9)
            client.expect_closed()  # the server's FIN reached the client
            assert wait_for(lambda: len(frames) == 2)
        assert frames[1].summary == "incomplete: 9 bytes of a 13-byte frame (tid=0x0001 uid=1), then the connection closed"
    finally:
        server.close()


def test_uacp_framing_cuts_by_message_size_and_records_what_cannot_be_framed():
    ack = b"ACKF" + struct.pack("<I", 28) + struct.pack("<5I", 0, 65536, 65536, 0, 0)
    err = b"ERRF" + struct.pack("<I", 16) + struct.pack("<Ii", 0x80010000, -1)
    garbage = b"MSGF" + struct.pack("<I", 3) + b"xyz"  # a MessageSize smaller than its header
    server = ScriptedServer(["recv", ack[:5], ack[5:] + err + garbage, "close"])
    frames: list[Frame] = []
    try:
        with RecordingRelay(server.host, server.port, frames.append, framing=uacp_framing()) as relay, \
                RawClient(relay.host, relay.port) as client:
            hello = b"HELF" + struct.pack("<I", 32) + struct.pack("<5Ii", 0, 65536, 65536, 0, 0, -1)
            client.send(hello)
            assert client.recv_exact(len(ack + err + garbage)) == ack + err + garbage
            client.expect_closed()
            assert wait_for(lambda: len(frames) == 4)
        assert [(f.direction, f.data) for f in frames] == [("tx", hello), ("rx", ack), ("rx", err), ("rx", garbage)]
        assert frames[0].summary.startswith("HEL v0 rbuf=65536")
        assert frames[1].summary.startswith("ACK v0 rbuf=65536")
        assert frames[2].summary.startswith("ERR ")
        assert frames[3].summary.startswith("unframable: MessageSize 3")
    finally:
        server.close()


def test_cutters_record_every_byte_whatever_the_chunking():
    stream = mbap(READ_2, tid=1) + mbap(bytes([6, 0, 1, 0, 2]), tid=2) + mbap(b"\x03", length=300) + b"tail"
    for size in (1, 2, 5, 13, len(stream)):
        cutter = ModbusTcpCutter("tx")
        cuts = [cut for i in range(0, len(stream), size) for cut in cutter.feed(stream[i : i + size])]
        assert b"".join(data for data, _ in cuts) + cutter.pending() == stream
        assert [s.split(" FC")[0] for _, s in cuts[:2]] == ["tid=0x0001 uid=1", "tid=0x0002 uid=1"]
        assert cuts[2][1].startswith("unframable: MBAP length 300")
    cutter = UacpCutter("rx", summary=lambda data: 1 / 0)  # a summary that fails keeps its frame
    (data, summary), = cutter.feed(b"MSGF" + struct.pack("<I", 12) + b"\0\0\0\0")
    assert len(data) == 12 and "summary failed: ZeroDivisionError" in summary


# ---------------------------------------------------------------------------- upstream and lifetime


def test_an_unreachable_upstream_closes_the_client_connection():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    frames: list[Frame] = []
    with RecordingRelay("127.0.0.1", dead_port, frames.append) as relay, \
            RawClient(relay.host, relay.port) as client:
        client.send(mbap(READ_2))
        client.expect_closed()
    assert frames == []  # no bytes reached a server: nothing to record


def test_close_stops_the_thread_and_the_listener(simulator):
    before = set(relay_threads())
    relay = RecordingRelay(simulator.host, simulator.port, lambda frame: None)
    with RawClient(relay.host, relay.port) as client:
        assert client.request(READ_2)[0] == 3
        assert set(relay_threads()) - before
        relay.close()
        client.expect_closed()  # the open connection was closed too
    relay.close()  # idempotent
    assert set(relay_threads()) <= before
    with pytest.raises(OSError):
        socket.create_connection((relay.host, relay.port), timeout=TIMEOUT).close()
    relay.flush()  # after close: returns at once, does nothing


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_relay_frames_make_a_capture_tshark_decodes(relay, frames, tmp_path):
    with ModbusTcpConnection(relay.host, relay.port) as a, ModbusTcpConnection(relay.host, relay.port) as b:
        for tid in (1, 2):
            a.request(READ_2, tid=tid)
        b.request(bytes([4, 0, 0, 0, 1]), tid=9)
    path = tmp_path / "capture.pcap"
    write_pcap(path, pcap_connections_from_cases([{"id": "C", "evidence": {"frames": [f.__dict__ for f in frames]}}],
                                                 server_port_override=502))
    run = lambda *args: subprocess.run(["tshark", "-n", "-r", str(path), *args], capture_output=True, text=True,  # noqa: E731
                                       timeout=60, check=True).stdout
    rows = sorted(tuple(line.split("\t")) for line in run("-Y", "mbtcp", "-T", "fields", "-e", "tcp.stream",
                                                           "-e", "mbtcp.trans_id", "-e", "modbus.func_code").splitlines())
    assert rows == sorted([("0", "1", "3"), ("0", "1", "3"), ("0", "2", "3"), ("0", "2", "3"), ("1", "9", "4"), ("1", "9", "4")])
    assert run("-Y", "_ws.malformed or tcp.analysis.flags") == ""


# ---------------------------------------------------------------------------- OPC UA


def test_an_opcua_session_through_the_relay(tmp_path):
    from harness.adapters.asyncua_client import AsyncuaClient
    from simulators.device import start_device_in_thread

    frames: list[Frame] = []
    with start_device_in_thread(example_profile_path(), ["opcua"]) as device:
        url = device.urls["opcua"]
        host, _, rest = url.removeprefix("opc.tcp://").partition(":")
        port, _, path = rest.partition("/")
        with RecordingRelay(host, int(port), frames.append, framing=uacp_framing()) as relay:
            client = AsyncuaClient()
            try:
                client.connect(f"opc.tcp://{relay.host}:{relay.port}/{path}", timeout=TIMEOUT)
                assert client.read("i=2259").value == 0  # ServerStatus.State: Running
            finally:
                client.close()
            assert wait_for(lambda: any(f.data[:3] == b"CLO" for f in frames))
    kinds = [(f.direction, f.data[:3].decode()) for f in frames]
    assert kinds[:4] == [("tx", "HEL"), ("rx", "ACK"), ("tx", "OPN"), ("rx", "OPN")]
    assert ("tx", "MSG") in kinds and ("rx", "MSG") in kinds
    assert all(len(f.data) == int.from_bytes(f.data[4:8], "little") for f in frames)  # one message each
    assert not [f.summary for f in frames if f.summary.startswith(("incomplete", "unframable"))]
    assert frames[0].summary.startswith("HEL v0") and f"url=opc.tcp://{relay.host}:{relay.port}/" in frames[0].summary
    assert len({f.conn for f in frames}) == 1 and frames[0].conn.endswith(f"->{host}:{port}")
