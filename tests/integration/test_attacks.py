"""The socket-level attack drivers (harness.attacks) against the bundled Modbus simulator.

Real TCP on 127.0.0.1, port 0.  The simulator is the peer wherever it can play the part; the
few misbehaviours it cannot show (never reading, resetting every connection, dropping idle
connections) come from a bare listening socket, not from a protocol stand-in.  Timing checks
are generous sanity bounds, except the flood's achieved rate, which is the thing under test.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from harness.attacks import (
    AttackResult,
    Outcome,
    connection_storm,
    dribble,
    flood,
    idle_connections,
    modbus_tcp_reply_length,
    send_each,
    uacp_reply_length,
)
from harness.codec.modbus.adu import decode_tcp, encode_tcp
from harness.codec.modbus.constants import Table
from harness.codec.modbus.pdu import ReadHoldingRegistersResponse, decode_response, encode_pdu
from harness.codec.modbus.pdu_requests import ReadHoldingRegistersRequest
from harness.peers.base import free_port
from harness.profile import example_profile_path, load_profile
from simulators.modbus.faults import parse_fault
from simulators.modbus.server import start_in_thread

PROFILE = load_profile(example_profile_path())
UNIT = PROFILE.modbus.unit_ids[0]
READ_PDU = encode_pdu(ReadHoldingRegistersRequest(0, 2))
# A storm can overflow the simulator's listen backlog (asyncio's default, 100): the kernel drops
# the SYN and the client retries after 1 s, then 3 s.  Waits this long leave room for two retries.
STORM_CONNECT_S = 5.0


def read_frame(tid: int = 1, protocol_id: int = 0) -> bytes:
    return encode_tcp(tid, UNIT, READ_PDU, protocol_id)


def assert_read_reply(reply: bytes | None, tid: int, sim) -> None:
    assert reply is not None, "no reply"
    adu = decode_tcp(reply)
    assert adu.transaction_id == tid and adu.protocol_id == 0 and adu.unit_id == UNIT
    response = decode_response(adu.pdu)
    assert isinstance(response, ReadHoldingRegistersResponse), response
    assert list(response.values) == sim.store.read(Table.HOLDING_REGISTERS, 0, 2)


@pytest.fixture(scope="module")
def sim():
    with start_in_thread(PROFILE) as simulator:
        yield simulator


@pytest.fixture
def dead_port():
    """A loopback port nobody listens on (bound once, then released)."""
    return free_port()


class BarePeer:
    """A listening socket that accepts and then misbehaves at the TCP level:
    "hold" keeps connections and never reads, "reset" closes each with RST at once,
    "drop-later" closes each (FIN) after `after_s`."""

    def __init__(self, behaviour: str, after_s: float = 0.1):
        self.behaviour = behaviour
        self.after_s = after_s
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif self.behaviour == "drop-later":
                threading.Timer(self.after_s, conn.close).start()
            else:
                self.held.append(conn)

    def __enter__(self) -> BarePeer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(2)
        self.listener.close()
        for conn in self.held:
            conn.close()


# --- reply lengths ------------------------------------------------------------------------


def test_modbus_tcp_reply_length_reads_the_mbap_length_field():
    frame = read_frame()
    assert [modbus_tcp_reply_length(frame[:n]) for n in range(6)] == [None] * 6
    assert modbus_tcp_reply_length(frame[:6]) == len(frame)
    assert modbus_tcp_reply_length(frame + b"trailing") == len(frame)


def test_uacp_reply_length_reads_the_message_size_and_survives_garbage():
    hel = b"HELF" + (40).to_bytes(4, "little") + bytes(32)
    assert uacp_reply_length(hel[:7]) is None
    assert uacp_reply_length(hel) == 40
    assert uacp_reply_length(b"ERRF\x00\x00\x00\x00") == 8  # a size below the header: header alone


# --- send_each ----------------------------------------------------------------------------


def test_send_each_gets_one_reply_per_valid_frame_and_none_for_a_foreign_protocol_id(sim):
    # Implementation Guide V1.0b §4.4.2.2: protocol id != 0 is discarded, the connection stays
    frames = [read_frame(1), read_frame(2, protocol_id=1), read_frame(3)]
    outcomes = send_each(sim.host, sim.port, frames, reply_length=modbus_tcp_reply_length, reply_timeout_s=0.3)
    assert [o.index for o in outcomes] == [0, 1, 2]
    assert_read_reply(outcomes[0].reply, 1, sim)
    assert outcomes[1].reply is None and not outcomes[1].closed
    assert outcomes[1].error.startswith("timeout after 0.3 s")
    assert_read_reply(outcomes[2].reply, 3, sim)
    assert all(isinstance(o, Outcome) and o.elapsed_s >= 0 for o in outcomes)


def test_send_each_reconnects_after_the_peer_closes_on_a_bad_length(sim):
    bad_length = encode_tcp(9, UNIT, READ_PDU, length=0)  # outside 2..254: the simulator closes
    outcomes = send_each(sim.host, sim.port, [bad_length, read_frame(4)], reply_length=modbus_tcp_reply_length)
    assert outcomes[0].closed and outcomes[0].reply is None
    assert_read_reply(outcomes[1].reply, 4, sim)

    once = send_each(sim.host, sim.port, [bad_length, read_frame(5)], reply_length=modbus_tcp_reply_length, reconnect=False)
    assert once[0].closed
    assert once[1].reply is None and "reconnect=False" in once[1].error


def test_send_each_records_a_reply_cut_short_by_a_close():
    with start_in_thread(PROFILE, [parse_fault("close-mid-reply")]) as faulty:
        outcomes = send_each(faulty.host, faulty.port, [read_frame(1), read_frame(2)], reply_length=modbus_tcp_reply_length)
    assert all(o.closed and o.reply is None for o in outcomes)
    assert all("mid-reply" in o.error for o in outcomes)


def test_no_reply_fault_gives_quick_timeouts_and_nothing_hangs():
    with start_in_thread(PROFILE, [parse_fault("no-reply")]) as silent:
        started = time.perf_counter()
        outcomes = send_each(silent.host, silent.port, [read_frame(i) for i in range(3)],
                             reply_length=modbus_tcp_reply_length, reply_timeout_s=0.2)
        slow = dribble(silent.host, silent.port, read_frame(), byte_interval_s=0.001,
                       reply_length=modbus_tcp_reply_length, reply_timeout_s=0.2)
        flooded = flood(silent.host, silent.port, [read_frame()], rate_per_s=500, duration_s=0.2,
                        reply_length=modbus_tcp_reply_length)
        took = time.perf_counter() - started
    assert all(o.reply is None and "timeout" in o.error and o.elapsed_s < 1.0 for o in outcomes)
    assert slow.reply is None and "timeout" in slow.error
    assert flooded.sent > 0 and flooded.replies == 0
    assert took < 5.0


# --- flood --------------------------------------------------------------------------------


def test_flood_keeps_its_rate_and_counts_the_replies(sim):
    frames = [read_frame(tid) for tid in range(1, 11)]
    result = flood(sim.host, sim.port, frames, rate_per_s=2000, duration_s=0.5,
                   reply_length=modbus_tcp_reply_length)
    assert isinstance(result, AttackResult)
    assert 0.8 * 2000 <= result.rate_per_s <= 1.2 * 2000, result
    assert result.errors == 0, result
    assert result.replies >= 0.9 * result.sent > 0, result
    assert result.to_dict()["sent"] == result.sent


def test_flood_over_several_connections_as_fast_as_possible(sim):
    result = flood(sim.host, sim.port, [read_frame()], rate_per_s=0, duration_s=0.2, connections=3,
                   reply_length=modbus_tcp_reply_length)
    assert result.sent > 100 and result.replies > 100 and result.errors == 0, result


def test_flood_stops_sending_when_the_peer_stops_reading():
    big = bytes(65536)
    with BarePeer("hold") as peer:
        started = time.perf_counter()
        result = flood("127.0.0.1", peer.port, [big], rate_per_s=5000, duration_s=0.3, connections=2)
        took = time.perf_counter() - started
        huge, small = bytes(32 << 20), read_frame()  # more than loopback buffers take in
        stuck, after = send_each("127.0.0.1", peer.port, [huge, small], reply_length=modbus_tcp_reply_length,
                                 reply_timeout_s=0.2)
    assert "sending the frame (the peer is not reading)" in stuck.error and not stuck.closed
    assert after.error.startswith("timeout after 0.2 s waiting")  # on a fresh connection
    assert len(peer.held) == 4  # the flood's two, then one for each frame
    assert result.sent < 2000 and result.errors > 0, result  # 1500 due; the buffers hold far fewer
    assert any("peer stopped reading" in note for note in result.notes), result.notes
    assert took < 3.0


def test_a_peer_resetting_every_connection_raises_nothing():
    with BarePeer("reset") as peer:
        outcomes = send_each("127.0.0.1", peer.port, [read_frame(1), read_frame(2)],
                             reply_length=modbus_tcp_reply_length, reply_timeout_s=0.3)
        flooded = flood("127.0.0.1", peer.port, [read_frame()], rate_per_s=1000, duration_s=0.2, connections=2,
                        reply_length=modbus_tcp_reply_length)
        stormed = connection_storm("127.0.0.1", peer.port, count=20, payload=read_frame())
    # the RST can beat connect() back, then the connect itself fails with "reset"
    assert all(o.reply is None and (o.closed or "reset" in o.error) for o in outcomes), outcomes
    assert flooded.replies == 0
    assert any("server closed" in note or "not sent" in note or "failed" in note for note in flooded.notes), flooded
    assert stormed.sent + stormed.errors == 20


# --- storms, idle connections, dribbling -------------------------------------------------


def test_a_storm_of_200_connections_completes_and_the_simulator_still_answers(sim):
    plain = connection_storm(sim.host, sim.port, count=200, connect_timeout_s=STORM_CONNECT_S)
    with_reset = connection_storm(sim.host, sim.port, count=200, payload=read_frame(), linger_reset=True,
                                  connect_timeout_s=STORM_CONNECT_S)
    paced = connection_storm(sim.host, sim.port, count=20, rate_per_s=1000)
    for result in (plain, with_reset):
        assert result.sent == 200 and result.errors == 0, result
    assert paced.sent == 20 and paced.duration_s >= 0.015  # 20 opens scheduled 1 ms apart
    (after,) = send_each(sim.host, sim.port, [read_frame(7)], reply_length=modbus_tcp_reply_length)
    assert_read_reply(after.reply, 7, sim)


def test_fifty_idle_connections_are_held_while_the_simulator_answers(sim):
    with idle_connections(sim.host, sim.port, count=50, connect_timeout_s=STORM_CONNECT_S) as hold:
        assert hold.accepted == 50 and hold.refused == 0
        (meanwhile,) = send_each(sim.host, sim.port, [read_frame(8)], reply_length=modbus_tcp_reply_length)
        assert_read_reply(meanwhile.reply, 8, sim)
        assert hold.check() == 0
    result = hold.result()
    assert result.sent == 50 and result.errors == 0 and hold.closed_by_server == 0, result
    assert (hold.sent, hold.errors, hold.notes) == (result.sent, result.errors, result.notes)


def test_idle_connections_notice_a_server_that_drops_them():
    with BarePeer("drop-later", after_s=0.05) as peer:
        with idle_connections("127.0.0.1", peer.port, count=5) as hold:
            deadline = time.perf_counter() + 2.0
            while hold.check() < 5 and time.perf_counter() < deadline:
                time.sleep(0.02)
    assert hold.closed_by_server + hold.reset_by_server == 5
    assert any("server closed" in note for note in hold.result().notes)


def test_dribble_sends_a_byte_at_a_time_and_gets_the_right_reply(sim):
    frame = read_frame(11)
    outcome = dribble(sim.host, sim.port, frame, byte_interval_s=0.005, reply_length=modbus_tcp_reply_length)
    assert outcome.error == "" and not outcome.closed
    assert_read_reply(outcome.reply, 11, sim)
    assert outcome.elapsed_s >= (len(frame) - 1) * 0.005


def test_dribble_really_splits_the_frame():
    """A bare listener records how the bytes arrive: one byte per read, not one burst."""
    chunks: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(2.0)

    def receive() -> None:
        conn, _ = listener.accept()
        conn.settimeout(2.0)
        with conn:
            while chunk := conn.recv(100):
                chunks.append(chunk)
                if sum(map(len, chunks)) >= 12:
                    return

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    outcome = dribble("127.0.0.1", listener.getsockname()[1], read_frame(), byte_interval_s=0.01,
                      reply_length=modbus_tcp_reply_length, reply_timeout_s=0.2)
    reader.join(3)
    listener.close()
    assert b"".join(chunks) == read_frame()
    # One burst arrives as one read.  A loaded machine can stall the reader long enough to
    # merge many of the 12 reads (6 were merged under 3 workers on 2 cores), never all but two.
    assert len(chunks) >= 3, chunks
    assert outcome.reply is None and (outcome.closed or "timeout" in outcome.error)


# --- nobody listening ---------------------------------------------------------------------


def test_everything_reports_connection_refused_without_raising(dead_port):
    host = "127.0.0.1"
    outcomes = send_each(host, dead_port, [read_frame(1), read_frame(2)], reply_length=modbus_tcp_reply_length)
    assert all(o.reply is None and "connection refused" in o.error for o in outcomes)
    assert "connection refused" in dribble(host, dead_port, read_frame(), byte_interval_s=0.001,
                                           reply_length=modbus_tcp_reply_length).error
    flooded = flood(host, dead_port, [read_frame()], rate_per_s=100, duration_s=0.1, connections=3)
    stormed = connection_storm(host, dead_port, count=5)
    with idle_connections(host, dead_port, count=4) as hold:
        pass
    held = hold.result()
    assert (flooded.sent, flooded.errors) == (0, 3)
    assert (stormed.sent, stormed.errors) == (0, 5)
    assert (held.sent, held.errors, hold.refused) == (0, 4, 4)
    for result in (flooded, stormed, held):
        assert any("connection refused" in note for note in result.notes), result.notes
