"""Generated input: malformed frames and boundary values, while the device is watched.

Each case draws up to `fuzz_examples` inputs from a Hypothesis strategy (harness.strategies),
sends each on a connection of its own and checks that the device still answers reads of its
known points. The first input after which it does not (or, for boundary values, that gets no
answer at all) is shrunk to the simplest input that still does it; that input, its seed and the
exchange are the evidence, and `harness replay RUN CASE` sends it again.
"""

from __future__ import annotations


from harness.attacks import Outcome, modbus_tcp_reply_length, send_each
from harness.codec.modbus.describe import describe_tcp
from harness.conformance import case, fail
from harness.fuzz import FuzzResult
from harness.liveness_modbus import checks_to_block
from harness.strategies.modbus import boundary_adus, malformed_adus

from ..robustness import fuzz, record_exchange, replay_block, which_input
from .support import AP, IEC, IG

REPLY_TIMEOUT_S = 0.5
# A frame the spec lets the device discard (broken framing, a non-zero protocol id) gets only a
# glance for an answer: what counts is whether the device still serves the monitor afterwards.
DISCARDED_REPLY_TIMEOUT_S = 0.02
BOUNDARY_FUNCTION_CODES = {1, 2, 3, 4, 5, 6, 15, 16, 22, 23}  # the codes harness.strategies builds boundary requests for


def _send(dut):
    def send(frame) -> Outcome:
        wait = REPLY_TIMEOUT_S if frame.expect_reply else DISCARDED_REPLY_TIMEOUT_S
        return send_each(dut.target.host, dut.target.port, [frame.data], reply_length=modbus_tcp_reply_length,
                         reply_timeout_s=wait)[0]
    return send


def _silence(frame, outcome: Outcome) -> str:
    """Boundary values must be answered: normally, or with an exception response (AP §7)."""
    if frame.expect_reply and outcome.reply is None:
        return "no answer" + (" (the device closed the connection)" if outcome.closed else f" within {REPLY_TIMEOUT_S:g} s")
    return ""


def _tables(dut) -> dict[str, tuple[int, int]]:
    return {table.value: (extent.start, extent.count) for table, extent in dut.mb.tables.items()}


def _record(dut, evidence, result: FuzzResult, rob, known_points) -> None:
    """The input that broke the device, its answer, and the replay block."""
    sent = [(result.broke.data, f"{result.broke.kind}: {describe_tcp(result.broke.data, is_response=False)}")]
    record_exchange(evidence, f"->{dut.target.host}:{dut.target.port}", sent, [result.reply],
                    lambda reply: describe_tcp(reply, is_response=True))
    evidence.replay = replay_block(result, rob, "modbus", [result.broke.data], [[f.data] for f in result.preceding],
                                   REPLY_TIMEOUT_S, unit=dut.unit, checks=checks_to_block(known_points))


def _fuzz(dut, evidence, rob, known_points, liveness, restarter, harness_seed, strategy, case_id, judge=None) -> FuzzResult:
    return fuzz(strategy, _send(dut), liveness, rob, harness_seed, evidence, case_id, restarter=restarter, judge=judge,
                record=lambda result: _record(dut, evidence, result, rob, known_points))


@case("ROB-MB-MALFORMED", "Malformed frames neither stop the device nor change its data",
      requirements=["ROB-62443-CR3.5-INPUT", "ROB-MBTCP-4.4.2-DISCARD"], level="MUST",
      clause=f"{IEC} §CR 3.5; {IG} §4.4.2.2")
def test_malformed_frames(dut, evidence, rob, known_points, liveness, restarter, harness_seed):
    result = _fuzz(dut, evidence, rob, known_points, liveness, restarter, harness_seed, malformed_adus(dut.unit),
                   "ROB-MB-MALFORMED")
    if result.broke is not None:
        fail(f"{result.problem} after {result.broke.kind} ({len(result.broke.data)} bytes, {which_input(result)}; "
             "replay: harness replay RUN ROB-MB-MALFORMED)",
             expected="the frame discarded or answered, and the device still serving",
             observed=f"{result.broke.describe()}: {result.problem}")


@case("ROB-MB-BOUNDARY", "Requests at and beyond the limits are answered and leave the device serving",
      requirements=["ROB-MBAP-7-BOUNDARY", "ROB-62443-CR3.5-INPUT"], level="MUST", clause=f"{AP} §7; {IEC} §CR 3.5")
def test_boundary_values(dut, evidence, rob, known_points, liveness, restarter, harness_seed):
    claimed = sorted(fc for fc in dut.mb.function_codes if fc in BOUNDARY_FUNCTION_CODES)
    strategy = boundary_adus(dut.unit, tables=_tables(dut), function_codes=claimed or None)
    result = _fuzz(dut, evidence, rob, known_points, liveness, restarter, harness_seed, strategy, "ROB-MB-BOUNDARY",
                   judge=_silence)
    if result.broke is not None:
        fail(f"{result.problem} for {result.broke.kind} ({which_input(result)}; replay: harness replay RUN ROB-MB-BOUNDARY)",
             expected="a normal answer or an exception response, and the device still serving",
             observed=f"{result.broke.describe()}: {result.problem}")
