"""harness.fuzz against the bundled simulator with planted framing bugs: the search finds the
input kind that silences the device without being told it, shrinks it when the device comes
back, and says so when it cannot."""

from __future__ import annotations

from harness.attacks import modbus_tcp_reply_length, send_each
from harness.fuzz import find_breaking_input
from harness.liveness import answers_within
from harness.liveness_modbus import checks_from_profile, modbus_probe
from harness.profile import example_profile_path, load_profile
from harness.strategies.modbus import malformed_adus
from simulators.modbus.faults import parse_fault, stream_has_bad_length
from simulators.modbus.server import start_in_thread


def _alive(port: int):
    """alive(within_s): does the device on `port` answer a read of its known points in time?"""
    probe = modbus_probe("127.0.0.1", port, 1, checks_from_profile(load_profile(example_profile_path())))

    def alive(within_s: float) -> bool:
        try:
            return answers_within(probe, within_s, 0.3)
        finally:
            probe.close()

    return alive


def _send(port: int):
    def send(frame):
        return send_each("127.0.0.1", port, [frame.data], reply_length=modbus_tcp_reply_length, reply_timeout_s=0.02)[0]

    return send


def _fuzz(port: int, examples: int, seed: int = 7):
    return find_breaking_input(malformed_adus(1), _send(port), _alive(port), examples=examples, run_seed=seed,
                               answer_within_s=0.3, recovery_s=1.0)


def test_a_sound_device_survives_the_malformed_frames():
    with start_in_thread(load_profile(example_profile_path())) as sim:
        result = _fuzz(sim.port, examples=60)
    assert result.broke is None
    assert result.tried == 60 and len(result.kinds) > 5  # many kinds of malformation were sent


def test_the_input_that_silences_a_device_is_found_and_shrunk():
    with start_in_thread(load_profile(example_profile_path()), [parse_fault("hang-on-bad-length=400")]) as sim:
        result = _fuzz(sim.port, examples=200)
    assert result.broke is not None, "the planted framing bug was not found"
    assert stream_has_bad_length(result.broke.data), result.broke
    assert result.minimised
    if result.broke.kind != "malformed:oversized":
        assert len(result.broke.data) <= 13  # a bare MBAP header and a byte or two
    assert "stopped answering" in result.problem
    assert result.to_dict()["seed"] == 7


def test_the_same_seed_finds_the_same_input():
    found = []
    for _ in range(2):
        with start_in_thread(load_profile(example_profile_path()), [parse_fault("hang-on-bad-length=400")]) as sim:
            found.append(_fuzz(sim.port, examples=200, seed=11).broke)
    assert found[0] == found[1]


def test_a_device_that_never_comes_back_gives_the_first_input_unshrunk():
    with start_in_thread(load_profile(example_profile_path()), [parse_fault("hang-on-bad-length=0")]) as sim:
        result = _fuzz(sim.port, examples=100)
    assert result.broke is not None and stream_has_bad_length(result.broke.data), result.broke
    assert not result.minimised and result.device_dead_at_end


def test_a_device_that_never_comes_back_is_restarted_to_shrink_the_input():
    """With a way to restart the device (the profile's restart command in a suite; here a fresh
    simulator on the same port), an input that silences it for good is shrunk like any other,
    and the device is left serving for what comes next."""
    profile = load_profile(example_profile_path())
    fault = [parse_fault("hang-on-bad-length=0")]
    sims = [start_in_thread(profile, fault)]
    port = sims[0].port

    def restart() -> bool:
        sims[-1].stop()
        sims.append(start_in_thread(profile, fault, port=port))
        return True

    try:
        alive = _alive(port)
        result = find_breaking_input(malformed_adus(1), _send(port), alive, examples=200, run_seed=7, answer_within_s=0.3,
                                     recovery_s=0.3, restart=restart, max_restarts=40)
        assert result.broke is not None and stream_has_bad_length(result.broke.data), result.broke
        assert result.minimised and result.reproduced, result.to_dict()
        if result.broke.kind != "malformed:oversized":
            assert len(result.broke.data) <= 13
        assert 1 < result.restarts <= 41 and result.restored
        assert alive(1.0), "the device was left dead"
        assert len(result.preceding) == min(5, result.generated - 1)
        assert result.to_dict()["preceding"][0]["hex"]
    finally:
        sims[-1].stop()


def test_shrinking_stops_at_its_time_budget_and_the_input_is_still_replayed():
    with start_in_thread(load_profile(example_profile_path()), [parse_fault("hang-on-bad-length=400")]) as sim:
        result = find_breaking_input(malformed_adus(1), _send(sim.port), _alive(sim.port), examples=200, run_seed=7, answer_within_s=0.3,
                                     recovery_s=1.0, shrink_budget_s=0.0)
    assert result.broke is not None and result.shrink_cut
    assert not result.minimised and result.reproduced  # the first input, sent once more by Hypothesis
    # nothing simpler was sent: only the failing input again (Hypothesis confirms it before
    # shrinking and replays it at the end)
    assert result.tried - result.generated <= 2
