"""Load attacks while the liveness monitor reads the device's known points: a request flood at
the profile's rate, a storm of connections opened and dropped, idle connections held open, and
a request dribbled a byte at a time. Each case FAILs when the monitor saw the device stop
answering or answer wrongly (during the attack, unless the profile allows degraded operation),
or when it did not recover within the profile's recovery time."""

from __future__ import annotations

import time

from harness.attacks import connection_storm, flood, idle_connections, modbus_tcp_reply_length
from harness.codec.modbus import pdu as P
from harness.codec.modbus.adu import decode_tcp, encode_tcp
from harness.conformance import case, fail, inconclusive
from harness.transport.modbus_tcp import TransportError

from ..robustness import dribbled
from .support import IEC, IG, judge_attack


def _read_frames(dut, count: int = 16) -> list[bytes]:
    pdu = P.encode_pdu(dut.any_read())
    return [encode_tcp(tid, dut.unit, pdu) for tid in range(1, count + 1)]


@case("ROB-MB-FLOOD", "Under a request flood the device keeps answering reads of its data",
      requirements=["ROB-62443-CR7.1-FLOOD"], level="MUST", clause=f"{IEC} §CR 7.1")
def test_request_flood(dut, monitor, evidence, rob):
    start = monitor.mark("flood start")
    result = flood(dut.target.host, dut.target.port, _read_frames(dut), rate_per_s=rob.flood_rate,
                   duration_s=rob.attack_duration_ms / 1000, reply_length=modbus_tcp_reply_length)
    end = monitor.mark("flood end")
    judge_attack(monitor, evidence, rob, (start, end), result.to_dict())
    evidence.notes.append(f"flood: {result.sent} requests at {result.rate_per_s:.0f}/s "
                          f"(asked {rob.flood_rate}/s), {result.replies} answers")
    if result.sent and not result.replies:
        inconclusive("the device answered the monitor but none of the flood's requests: it may serve one connection "
                     "at a time (the monitor's), so the flood never reached it")


@case("ROB-MB-STORM", "A storm of connections opened and reset does not exhaust the device",
      requirements=["ROB-62443-CR7.2-CONNECTIONS"], level="MUST", clause=f"{IEC} §CR 7.2")
def test_connection_storm(dut, monitor, evidence, rob):
    start = monitor.mark("storm start")
    result = connection_storm(dut.target.host, dut.target.port, count=rob.storm_connections,
                              rate_per_s=rob.storm_connections / (rob.attack_duration_ms / 1000), linger_reset=True,
                              deadline_s=2 * rob.attack_duration_ms / 1000)
    end = monitor.mark("storm end")
    judge_attack(monitor, evidence, rob, (start, end), result.to_dict())


@case("ROB-MB-IDLE", "Idle connections held open do not stop the device serving",
      requirements=["ROB-62443-CR7.2-CONNECTIONS"], level="MUST", clause=f"{IEC} §CR 7.2")
def test_idle_connections(dut, monitor, evidence, rob):
    start = monitor.mark("idle connections opened")
    with idle_connections(dut.target.host, dut.target.port, count=rob.idle_connections,
                          deadline_s=rob.attack_duration_ms / 1000) as held:
        time.sleep(rob.attack_duration_ms / 1000)
    end = monitor.mark("idle connections closed")
    judge_attack(monitor, evidence, rob, (start, end), held.to_dict())


@case("ROB-MB-IDLE-NEW-CLIENT", "With idle connections held open, a new client is still served",
      requirements=["ROB-MBTCP-4.2.1.1-CONNECTIONS"], level="SHOULD", clause=f"{IG} §4.2.1.1")
def test_new_client_while_idle_connections_are_held(dut, evidence, rob):
    with idle_connections(dut.target.host, dut.target.port, count=rob.idle_connections,
                          deadline_s=rob.attack_duration_ms / 1000) as held:
        try:
            dut.transact(dut.any_read())  # on a new connection
        except (TransportError, OSError) as exc:  # refused, reset or never answered
            problem = str(exc)
        else:
            problem = ""
    evidence.attack = held.to_dict()
    if problem:
        fail(f"with {rob.idle_connections} idle connections open, a new client was not served: {problem}",
             expected="the oldest unused connection closed and the new client served (TCP guide §4.2.1.1)",
             observed=problem)


@case("ROB-MB-SLOW", "A request dribbled a byte at a time is answered, and others are served meanwhile",
      requirements=["ROB-MBTCP-3.1.2-SEGMENTS"], level="MUST", clause=f"{IG} §3.1.2, §4.3.2")
def test_slow_partial_frame(dut, monitor, evidence, rob):
    frame = _read_frames(dut, 1)[0]
    outcome = dribbled(dut.target.host, dut.target.port, frame, rob, monitor, evidence, modbus_tcp_reply_length)
    if outcome.reply is None:
        fail(f"the dribbled request got no answer ({outcome.error or 'connection closed'})",
             expected="the answer to the reassembled request", observed=outcome.error or "closed")
    answer = decode_tcp(outcome.reply)
    if getattr(answer, "transaction_id", None) != 1:
        fail("the answer to the dribbled request does not echo its transaction id",
             expected="tid 0x0001", observed=outcome.reply.hex())

