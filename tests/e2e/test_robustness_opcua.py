"""The OPC UA robustness suite end to end: the bundled simulator passes every case and stays
within bounded memory; a planted weakness (a framing bug that silences the whole server after a
message whose MessageSize disagrees with its bytes) FAILs ROB-UA-MALFORMED with a minimised
input, and that input, sent again as recorded, silences a fresh faulty server and not a sound one;
another (Writes answered Good and not stored) FAILs ROB-UA-STATEFUL-WRITES with the shortest
sequence of writes and reads that shows it."""

from __future__ import annotations

import subprocess

from harness.attacks import send_each, uacp_reply_length
from harness.codec.opcua import uacp
from harness.liveness_opcua import replay_alive
from harness.profile import example_profile_path
from harness.target import parse_target

from .helpers import HARNESS, certify, certify_all_pass_within_memory, simulator_process, verdicts

ROBUSTNESS = ["--suite", "opcua_robustness", "--no-archive"]
LOAD_CASES = ("ROB-UA-FLOOD", "ROB-UA-STORM", "ROB-UA-IDLE", "ROB-UA-SLOW")
STATEFUL = "ROB-UA-STATEFUL-WRITES"
# the generated kinds whose MessageSize can disagree with their bytes the way the planted bug
# reacts to (harness.strategies.uacp; simulators/opcua/hang_fault.py)
SIZE_DISAGREES = {"uacp:hello-size-short", "uacp:hello-trailing", "uacp:hello-url-length-beyond", "uacp:opn-size-short",
                  "uacp:opn-body-truncated"}


def _simulator(*faults: str):
    return simulator_process("opcua", *faults)


def _silenced_by(url: str, replay: dict) -> bool:
    """Send the recorded frames as `harness replay` does; does the server then stop answering
    the recorded checks for longer than the case allowed?"""
    assert replay_alive(url, replay, 1.0, replay["recovery_s"]), "the server does not answer before the input"
    target = parse_target(url)
    send_each(target.host, target.port, [bytes.fromhex(h) for h in replay["frames"]], reply_length=uacp_reply_length,
              reply_timeout_s=replay["reply_timeout_s"])
    return replay_alive(url, replay, replay["answer_within_s"], replay["answer_within_s"]) is False


def test_simulator_passes_every_robustness_case_within_bounded_memory(tmp_path):
    data = certify_all_pass_within_memory("opcua", tmp_path, "opcua_robustness", growth_limit_kib=16 * 1024)
    assert len(data["cases"]) == 7
    for case in data["cases"]:
        if case["id"] in LOAD_CASES:
            monitor = case["evidence"]["monitor"]
            assert monitor["ok"] and monitor["counts"]["during"]["ok"] > 0, case["id"]
        elif case["id"] == STATEFUL:
            assert "answered Good was held" in case["evidence"]["notes"][0], case["evidence"]["notes"]
            assert not case["evidence"].get("replay")
        else:
            assert case["evidence"]["attack"]["tried"] == 300 and case["evidence"]["attack"]["broke"] is None
    flood = next(c for c in data["cases"] if c["id"] == "ROB-UA-FLOOD")["evidence"]["attack"]
    assert flood["sent"] > 0 and flood["replies"] == flood["sent"], flood


def test_a_framing_bug_that_silences_the_server_fails_with_a_minimised_input(tmp_path):
    with _simulator("ua-hang-on-bad-size=1500") as sim:
        code, data, output = certify(sim.url, tmp_path / "run", *ROBUSTNESS, "-k", "malformed and not answered")
    assert data is not None and code == 1, output
    assert verdicts(data) == {"ROB-UA-MALFORMED": "FAIL"}, output
    case = data["cases"][0]
    evidence, replay = case["evidence"], case["evidence"]["replay"]
    # found without being told: a message whose MessageSize disagrees with its bytes, shrunk
    assert evidence["attack"]["minimised"] is True, evidence["attack"]
    assert replay["protocol"] == "opcua" and replay["seed"] == data["run"]["seed"]
    assert "stopped answering" in case["message"] and replay["kind"] in case["message"]
    frames = [bytes.fromhex(h) for h in replay["frames"]]
    if replay["kind"].startswith(("uacp:opn", "uacp:msg", "uacp:clo")):
        assert len(frames) == 2 and uacp.decode(frames[0]).__class__ is uacp.Hello, "the Hello it followed is recorded"
    else:
        assert len(frames) == 1
    assert replay["kind"] in SIZE_DISAGREES, replay
    assert [f["direction"] for f in evidence["frames"]][0] == "tx" and replay["checks"]

    with _simulator("ua-hang-on-bad-size=0") as fresh:
        assert _silenced_by(fresh.url, replay), "the recorded input did not silence a fresh faulty server"
    with _simulator() as sound:
        assert not _silenced_by(sound.url, replay), "the recorded input silenced a sound server"


def test_writes_answered_good_and_not_stored_fail_with_the_shortest_sequence(tmp_path):
    with _simulator("ua-lose-writes") as sim:
        code, data, output = certify(sim.url, tmp_path, *ROBUSTNESS, "-k", STATEFUL)
    assert data is not None and code == 1, output
    assert verdicts(data) == {STATEFUL: "FAIL"}, output
    case = data["cases"][0]
    evidence = case["evidence"]
    assert "do not hold what was written and answered Good" in case["message"], case["message"]
    assert case["requirements"] == ["ROB-UA-P4-5.10.4-WRITES-HELD"] and "Part 4 v1.04 §5.10.4" in case["clause"]
    # found without being told and shrunk: the starting values, a write step (one value, several in
    # one request, or requests in flight at once) answered Good, and the read that shows it was
    # not stored, numbered in the notes
    notes = evidence["notes"]
    assert any(n.startswith("the shortest sequence that shows it, after shrinking") for n in notes), notes
    steps = [n for n in notes if n[:1].isdigit()]
    assert len(steps) == 3, notes
    assert steps[0].startswith("1. Read the ") and steps[1].startswith("2. ") and " -> " in steps[1], steps
    answered = steps[1].rsplit(" -> ", 1)[1]
    assert "Write" in steps[1] and "Good" in answered and "Bad" not in answered, steps
    assert steps[2].startswith("3. Read back") and " holds " in steps[2], steps
    # its frames, both ways: the WriteResponse said Good, the ReadResponse after it shows the old value
    summaries = [(f["direction"], f["summary"]) for f in evidence["frames"]]
    assert any(d == "tx" and s.startswith("WriteRequest") for d, s in summaries), summaries
    assert any(d == "rx" and s.startswith("WriteResponse Good [Good") for d, s in summaries), summaries
    assert summaries[-1][0] == "rx" and summaries[-1][1].startswith("ReadResponse Good"), summaries
    # a sequence over a session of its own cannot be sent again as recorded bytes: no replay block
    assert not evidence.get("replay") and any(n.startswith("no replay block") for n in notes), notes


def test_asyncua_leaves_a_malformed_message_unanswered_and_the_replay_shows_it_again(tmp_path):
    """asyncua 2.1.0 leaves messages that Part 6 §7.1.5 says must get an Error unanswered (or
    closes without it).  The fuzzer finds one without being told which, shrinks it, and `harness
    replay` against a fresh asyncua server gets no answer again."""
    from harness.peers.registry import start_server

    with start_server("opcua", "asyncua", example_profile_path()) as peer:
        code, data, output = certify(peer.url, tmp_path / "run", *ROBUSTNESS, "-k", "MALFORMED and ANSWER", "--seed", "7")
    assert data is not None and code == 1, output
    case = data["cases"][0]
    assert case["id"] == "ROB-UA-MALFORMED-ANSWER" and case["verdict"] == "FAIL", output
    replay = case["evidence"]["replay"]
    assert replay["cause"] == "answer" and replay["frames"] and case["evidence"]["attack"]["minimised"], replay
    with start_server("opcua", "asyncua", example_profile_path()) as fresh:
        shown = subprocess.run([*HARNESS, "replay", str(tmp_path / "run"), "ROB-UA-MALFORMED-ANSWER", "--target", fresh.url],
                               capture_output=True, text=True, timeout=120)
    assert shown.returncode == 1 and "REPRODUCED: the input got no answer" in shown.stdout, shown.stdout + shown.stderr
