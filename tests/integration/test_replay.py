"""harness.replay against the bundled simulator: the recorded input is sent as it was, the
inputs recorded before it go first when asked, and a replay that cannot start says why."""

from __future__ import annotations

import pytest

from harness.codec.modbus import pdu as P
from harness.codec.modbus.adu import encode_tcp
from harness.profile import example_profile_path, load_profile
from harness.replay import ReplayError, replay
from simulators.modbus.faults import parse_fault
from simulators.modbus.server import start_in_thread

PROFILE = load_profile(example_profile_path())
READ = encode_tcp(7, 1, P.encode_pdu(P.ReadHoldingRegistersRequest(0, 1)))
READ_COILS = encode_tcp(8, 1, P.encode_pdu(P.ReadCoilsRequest(0, 1)))
BAD_LENGTH = bytes.fromhex("00010000000001")  # MBAP length 0 (and the unit id): what hang-on-bad-length reacts to
CHECK = {"table": "holding_registers", "address": 0, "count": 1, "expected": None}


def _results(port: int, frames: list[bytes], preceding: list[list[bytes]]) -> dict:
    block = {"protocol": "modbus", "frames": [f.hex() for f in frames], "preceding": [[f.hex() for f in c] for c in preceding],
             "reply_timeout_s": 0.3, "recovery_s": 0.5, "answer_within_s": 0.5, "problem": "silent", "unit": 1,
             "checks": [CHECK]}
    return {"target": {"url": f"modbus+tcp://127.0.0.1:{port}"},
            "cases": [{"id": "ROB-MB-MALFORMED", "verdict": "FAIL", "evidence": {"replay": block}}]}


def test_the_preceding_inputs_go_first_each_on_its_own_connection_when_asked():
    with start_in_thread(PROFILE) as sim:
        results = _results(sim.port, [READ], [[READ], [READ]])
        alone = replay(results, "ROB-MB-MALFORMED")
        with_preceding = replay(results, "ROB-MB-MALFORMED", with_preceding=True)
    assert [s.preceding for s in alone.steps] == [False]
    assert [s.preceding for s in with_preceding.steps] == [True, True, False]
    assert all(s.reply for s in with_preceding.steps)  # each answered: a sound device
    assert not with_preceding.reproduced and with_preceding.alive_after is True


def test_an_input_that_silences_the_device_is_reproduced():
    with start_in_thread(PROFILE, [parse_fault("hang-on-bad-length=0")]) as sim:
        report = replay(_results(sim.port, [BAD_LENGTH], []), "ROB-MB-MALFORMED")
    assert report.reproduced


def test_asking_for_preceding_inputs_that_were_not_recorded_says_so():
    with start_in_thread(PROFILE) as sim, pytest.raises(ReplayError, match="without --with-preceding"):
        replay(_results(sim.port, [READ], []), "ROB-MB-MALFORMED", with_preceding=True)


def test_a_missing_answer_is_reproduced_when_the_answer_is_missing_again():
    # the liveness check reads holding registers (FC03), which this device answers
    with start_in_thread(PROFILE, [parse_fault("no-reply:fc=1")]) as silent:
        results = _results(silent.port, [READ_COILS], [])
        results["cases"][0]["evidence"]["replay"]["cause"] = "answer"
        report = replay(results, "ROB-MB-MALFORMED")
    assert report.alive_after is True and report.unanswered and report.reproduced
    with start_in_thread(PROFILE) as sound:
        report = replay(results, "ROB-MB-MALFORMED", target_url=f"modbus+tcp://127.0.0.1:{sound.port}")
    assert not report.unanswered and not report.reproduced
