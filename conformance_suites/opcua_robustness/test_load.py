"""Load attacks while the liveness monitor reads the device's known nodes over its own session:
a Read flood at the profile's rate, a storm of connections opened and reset, idle connections
held open without a Hello, and a Hello dribbled a byte at a time.  Each case FAILs when the
monitor saw the server stop answering or answer wrongly (during the attack, unless the profile
allows degraded operation), or when it did not recover within the profile's recovery time.

Why the flood is of Read requests on an activated session, not of Hellos: a Hello is allowed
once per connection (Part 6 §7.1.3; a second one is an error and a close), so a Hello flood is a
connection storm, which ROB-UA-STORM covers.  Reads on a session reach everything a working
client loads: chunk decoding, the secure channel, the session lookup, the service and the
device's data, at the rate the profile says the device must bear.
"""

from __future__ import annotations

import time

from harness.attacks import connection_storm, idle_connections, uacp_reply_length
from harness.codec.opcua import uacp
from harness.conformance import case, fail

from ..robustness import dribbled
from .support import IEC, P6, hello, judge_attack, read_flood


@case("ROB-UA-FLOOD", "Under a Read flood on one session the server keeps answering its other sessions",
      requirements=["ROB-62443-CR7.1-FLOOD"], level="MUST", clause=f"{IEC} §CR 7.1")
def test_read_flood(dut, monitor, evidence, rob, known_points):
    start = monitor.mark("flood start")
    result = read_flood(dut, known_points, rate_per_s=rob.flood_rate, duration_s=rob.attack_duration_ms / 1000,
                        reply_timeout_s=rob.recovery_time_ms / 1000)
    end = monitor.mark("flood end")
    judge_attack(monitor, evidence, rob, (start, end), result.to_dict())
    evidence.notes.append(f"flood: {result.sent} Reads at {result.rate_per_s:.0f}/s "
                          f"(asked {rob.flood_rate}/s), {result.replies} answered Good")


@case("ROB-UA-STORM", "A storm of connections opened, sent a Hello and reset does not exhaust the server",
      requirements=["ROB-62443-CR7.2-CONNECTIONS"], level="MUST", clause=f"{IEC} §CR 7.2")
def test_connection_storm(dut, monitor, evidence, rob):
    # Each connection carries a Hello, so the server sets up its per-connection state (and
    # writes an Acknowledge into a connection that is already gone), then gets an RST.
    start = monitor.mark("storm start")
    result = connection_storm(dut.host, dut.port, count=rob.storm_connections, payload=hello(dut),
                              rate_per_s=rob.storm_connections / (rob.attack_duration_ms / 1000), linger_reset=True,
                              deadline_s=2 * rob.attack_duration_ms / 1000)
    end = monitor.mark("storm end")
    judge_attack(monitor, evidence, rob, (start, end), result.to_dict())


@case("ROB-UA-IDLE", "Connections held open without a Hello do not stop the server serving",
      requirements=["ROB-62443-CR7.2-CONNECTIONS", "ROB-UA-P6-7.1.3-NO-HELLO"], level="MUST",
      clause=f"{IEC} §CR 7.2; {P6} §7.1.3")
def test_idle_connections(dut, monitor, evidence, rob):
    # Part 6 §7.1.3 lets the server close these after a configurable time (two minutes at most
    # by default): a close is recorded, not judged; the monitor is.
    start = monitor.mark("idle connections opened")
    with idle_connections(dut.host, dut.port, count=rob.idle_connections,
                          deadline_s=rob.attack_duration_ms / 1000) as held:
        time.sleep(rob.attack_duration_ms / 1000)
    end = monitor.mark("idle connections closed")
    judge_attack(monitor, evidence, rob, (start, end), held.to_dict())
    closed = held.closed_by_server + held.reset_by_server
    evidence.notes.append(f"{held.accepted} connections held {held.held_s:.1f} s without a Hello; the server closed "
                          f"{closed} of them meanwhile (allowed, Part 6 §7.1.3)")


@case("ROB-UA-SLOW", "A Hello dribbled a byte at a time is acknowledged, and others are served meanwhile",
      requirements=["ROB-UA-P6-7.1.3-SLOW-HELLO"], level="MUST", clause=f"{P6} §7.1.2.2, §7.1.3")
def test_slow_hello(dut, monitor, evidence, rob):
    message = hello(dut)
    outcome = dribbled(dut.host, dut.port, message, rob, monitor, evidence, uacp_reply_length)
    if outcome.reply is None:
        fail(f"the dribbled Hello got no answer ({outcome.error or 'connection closed'})",
             expected="an Acknowledge to the reassembled Hello", observed=outcome.error or "closed")
    answer = uacp.decode(outcome.reply)
    if not isinstance(answer, uacp.Acknowledge):
        fail(f"the dribbled Hello was answered with {uacp.describe(outcome.reply)}",
             expected="an Acknowledge (Part 6 §7.1.3)", observed=outcome.reply[:64].hex())
