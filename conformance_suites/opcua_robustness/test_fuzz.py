"""Generated input: malformed UA Connection Protocol messages, while the server is watched.

Each case draws up to `fuzz_examples` messages from `harness.strategies.uacp_messages` and sends
each on a connection of its own: a Hello-kind message (a valid Hello, or one that is wrong in
its size, type, buffers or EndpointUrl) as the first bytes of the connection; an OPN, MSG or
CLO chunk after a valid Hello was sent on that connection (those chunks are meant for a
connection whose Hello was acknowledged).  After each, the server must still answer a Read of
the device's known nodes on the monitor's session within the monitor timeout.

- ROB-UA-MALFORMED judges only that: the server keeps serving (CR 3.5, Part 6 §7.1.5).
- ROB-UA-MALFORMED-ANSWER also judges the answer: a message the spec says must be answered (an
  Acknowledge, an OpenSecureChannel response, or the Error message §7.1.5 requires before a
  close, which includes a chunk for a SecureChannelId the server never issued, §6.7.2.2) gets
  one within the profile's OPC UA response time (`opcua.response_timeout_ms`); silence, or a
  close without the Error, FAILs.

The first input that breaks the rule is shrunk to the simplest one that still does; its exact
bytes on that connection (the leading Hello included), the seed and the exchange are the
evidence, and `harness replay RUN CASE` sends them again.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.attacks import Outcome, send_each, uacp_reply_length
from harness.codec.opcua import uacp
from harness.conformance import case, fail
from harness.fuzz import FuzzResult
from harness.liveness_opcua import checks_to_block
from harness.strategies import FuzzFrame, uacp_messages

from ..robustness import fuzz, record_exchange, replay_block, which_input
from .support import IEC, P6, hello

# How long an answer is awaited when only liveness is judged: long enough for the server to
# have read the message before the monitor asks (the answer itself is only recorded).
GLANCE_S = 0.1
# A message the spec lets the server leave unanswered (it waits for the rest of a message, or
# drops an aborted one) gets only a short glance for an answer.
DISCARDED_REPLY_TIMEOUT_S = 0.02
# Kinds that are chunks of UA Secure Conversation: they go after a valid Hello.
AFTER_HELLO = ("uacp:opn", "uacp:msg", "uacp:clo")


@dataclass(frozen=True)
class Exchange:
    """What one input was on the wire: the frames sent on its connection, one outcome each."""

    frames: list[bytes]
    outcomes: list[Outcome]

    @property
    def answer(self) -> Outcome | None:
        """The outcome of the generated message (the last frame)."""
        return self.outcomes[-1] if len(self.outcomes) == len(self.frames) else None


def wire_frames(frame: FuzzFrame, hello_message: bytes) -> list[bytes]:
    """The bytes to send on a fresh connection for `frame`: after a Hello for a secure chunk."""
    return [hello_message, frame.data] if frame.kind.startswith(AFTER_HELLO) else [frame.data]


def _send(dut, answer_window_s: float):
    hello_message = hello(dut)

    def send(frame: FuzzFrame) -> Exchange:
        frames = wire_frames(frame, hello_message)
        wait = answer_window_s if frame.expect_reply else DISCARDED_REPLY_TIMEOUT_S
        outcomes = send_each(dut.host, dut.port, frames, reply_length=uacp_reply_length, reply_timeout_s=wait,
                             reconnect=False)  # never a secure chunk on a connection without the Hello
        return Exchange(frames, outcomes)

    return send


def _describe_reply(reply: bytes | None) -> str:
    return uacp.describe(reply) if reply else "nothing"


def _unanswered_within(window_s: float):
    def judge(frame: FuzzFrame, exchange: Exchange) -> str:
        """Silence where the spec requires an answer (Part 6 §7.1.5, §6.7.2.2), or ""."""
        if not frame.expect_reply:
            return ""
        if len(exchange.frames) == 2:
            first = exchange.outcomes[0]
            if first.reply is None or first.reply[:3] != b"ACK":
                return (f"the valid Hello sent before the chunk was not acknowledged: {_describe_reply(first.reply)}"
                        + (f" ({first.error})" if first.error else ""))
        answer = exchange.answer
        if answer is None or answer.reply is not None:
            return ""
        if answer.closed:
            return "the server closed the connection without the Error message Part 6 §7.1.5 requires"
        return f"no answer within {window_s:g} s (the profile's opcua.response_timeout_ms)"

    return judge


def _record(dut, evidence, result: FuzzResult, rob, known_points, answer_window_s: float) -> None:
    """The input that broke the server (with the Hello before it), its answers, and the replay block."""
    hello_message = hello(dut)
    exchange: Exchange | None = result.reply
    frames = exchange.frames if exchange is not None else wire_frames(result.broke, hello_message)
    labels = ["the valid Hello first"] * (len(frames) - 1) + [result.broke.kind]
    record_exchange(evidence, f"->{dut.host}:{dut.port}", [(data, f"{label}: {uacp.describe(data)}")
                                                             for data, label in zip(frames, labels)],
                    exchange.outcomes if exchange is not None else [], _describe_reply)
    preceding = [wire_frames(frame, hello_message) for frame in result.preceding]
    # reply_timeout_s as in the run, so that a replay is timed the same
    evidence.replay = replay_block(result, rob, "opcua", frames, preceding, answer_window_s, endpoint_url=dut.url,
                                   checks=checks_to_block(known_points))


def _fuzz(dut, evidence, rob, known_points, liveness, restarter, harness_seed, case_id: str, answer_window_s: float,
          judge=None) -> FuzzResult:
    return fuzz(uacp_messages(dut.url), _send(dut, answer_window_s), liveness, rob, harness_seed, evidence, case_id,
                restarter=restarter, judge=judge, device="server",
                record=lambda result: _record(dut, evidence, result, rob, known_points, answer_window_s))


def _size(result: FuzzResult) -> str:
    exchange: Exchange | None = result.reply
    if exchange is not None and len(exchange.frames) == 2:
        return f"{len(result.broke.data)} bytes after a valid Hello"
    return f"{len(result.broke.data)} bytes"


@case("ROB-UA-MALFORMED", "Malformed UACP messages do not stop the server serving its sessions",
      requirements=["ROB-62443-CR3.5-INPUT", "ROB-UA-P6-7.1.5-KEEPS-SERVING"], level="MUST",
      clause=f"{IEC} §CR 3.5; {P6} §7.1.5")
def test_malformed_messages(dut, evidence, rob, known_points, liveness, restarter, harness_seed):
    result = _fuzz(dut, evidence, rob, known_points, liveness, restarter, harness_seed, "ROB-UA-MALFORMED", GLANCE_S)
    if result.broke is not None:
        fail(f"{result.problem} after {result.broke.kind} ({_size(result)}, {which_input(result, 'server')}; "
             "replay: harness replay RUN ROB-UA-MALFORMED)",
             expected="the message answered or discarded, and the server still serving its sessions",
             observed=f"{result.broke.describe()}: {result.problem}")


@case("ROB-UA-MALFORMED-ANSWER", "Malformed UACP messages that need an answer get one: an Error message before the close",
      requirements=["ROB-UA-P6-7.1.5-ERROR", "ROB-UA-P6-6.7.2.2-UNKNOWN-CHANNEL"], level="MUST",
      clause=f"{P6} §7.1.5, §6.7.2.2, §6.7.6")
def test_malformed_messages_are_answered(dut, evidence, rob, known_points, liveness, restarter, harness_seed):
    result = _fuzz(dut, evidence, rob, known_points, liveness, restarter, harness_seed, "ROB-UA-MALFORMED-ANSWER",
                   dut.timeout, judge=_unanswered_within(dut.timeout))
    if result.broke is not None:
        fail(f"{result.problem} for {result.broke.kind} ({_size(result)}, {which_input(result, 'server')}; "
             "replay: harness replay RUN ROB-UA-MALFORMED-ANSWER)",
             expected="an answer (Acknowledge, OpenSecureChannel response, or an Error message before the close), "
                      "and the server still serving",
             observed=f"{result.broke.describe()}: {result.problem}")
