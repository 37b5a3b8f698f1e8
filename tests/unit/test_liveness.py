"""The liveness monitor: its fixed schedule, overrun slots, and the judgement of an attack.

The probes here are plain functions standing in for "some device answered or not"; the
Modbus probe against the real simulator is tested in tests/integration/test_liveness_modbus.py.
Timing assertions are generous sanity bounds only.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from harness.liveness import (
    MISSING,
    OK,
    WRONG,
    Counts,
    LivenessMonitor,
    Sample,
    TimingError,
    compact_timeline,
    judge,
    plan_next_slot,
)

STEP = 0.25  # a binary-exact interval, so synthetic sample times compare exactly


def samples_of(codes: str, interval: float = STEP) -> list[Sample]:
    """"ooomm w" -> one sample per character at k * interval (o ok, w wrong, m missing)."""
    status = {"o": OK, "w": WRONG, "m": MISSING}
    out = []
    for k, code in enumerate(codes):
        detail = {"o": "", "w": "got [1], expected [2]", "m": "no answer within 1 s"}[code]
        out.append(Sample(k * interval, status[code], None if code == "m" else 0.001, detail))
    return out


def judged(codes: str, attack: tuple[float, float], limit: float = 1.0, tolerate: bool = False):
    return judge(samples_of(codes), interval_s=STEP, attack=attack, recovery_limit_s=limit, tolerate_during=tolerate)


# --- the schedule rule (pure) ----------------------------------------------------------------


def test_a_probe_within_the_interval_takes_the_next_slot():
    assert plan_next_slot(3, 0.1, 0.3001, 0.302) == (4, [], 0)


def test_slots_due_while_the_probe_ran_are_overruns_at_their_due_times():
    assert plan_next_slot(0, 0.1, 0.001, 0.35) == (4, [0.1, 0.2, 0.30000000000000004], 0)


def test_slots_passed_before_a_late_wake_up_are_lost():
    assert plan_next_slot(0, 0.1, 0.25, 0.26) == (3, [], 2)
    next_k, overrun, lost = plan_next_slot(0, 0.1, 0.15, 0.35)
    assert (next_k, [round(t, 9) for t in overrun], lost) == (4, [0.2, 0.3], 1)


# --- the running monitor ---------------------------------------------------------------------


def test_the_schedule_does_not_drift_when_probes_take_time():
    interval = 0.02

    def slow_probe(timeout_s):  # a probe taking 30 % of the interval
        time.sleep(0.006)
        return OK, ""

    with LivenessMonitor(slow_probe, interval_s=interval, timeout_s=0.5) as monitor:
        time.sleep(0.6)
    samples = monitor.samples
    last = max((s for s in samples if s.latency_s is not None), key=lambda s: s.t)
    # Every slot up to the end of the last probe is accounted for, once: a sample, a slow
    # slot or a lost one.  A scheduler sleeping `interval` after each probe would have about
    # one sample per 26 ms and nothing to account for the slots it drifted past.
    slots_passed = int((last.t + last.latency_s) / interval) + 1
    accounted = len(samples) + monitor.slow_slots + monitor.lost_slots
    assert abs(accounted - slots_passed) <= 1, (len(samples), monitor.slow_slots, monitor.lost_slots, slots_passed)
    assert len(samples) >= 3


def test_slots_overrun_by_an_unanswered_probe_are_missing():
    calls = []

    def probe(timeout_s):
        calls.append(timeout_s)
        if len(calls) == 3:
            time.sleep(0.26)  # what a silent device costs: the whole timeout
            return MISSING, "no answer within 0.26 s"
        return OK, ""

    with LivenessMonitor(probe, interval_s=0.05, timeout_s=0.26) as monitor:
        time.sleep(0.6)
    samples = monitor.samples
    silent = next(s for s in samples if s.detail == "no answer within 0.26 s")
    overrun = [s for s in samples if s.status == MISSING and s is not silent]
    # a probe of at least 0.26 s has at least five 50 ms slots come due while it runs
    assert len(overrun) >= 5, samples
    assert all(s.detail == "no answer within the 50 ms interval (the probe before got no answer)" for s in overrun)
    for s in overrun:  # recorded at their due times, right after the silent probe
        assert abs(s.t / 0.05 - round(s.t / 0.05)) < 1e-6 and s.t > silent.t
    assert monitor.slow_slots == 0
    assert all(t == 0.26 for t in calls)


@pytest.mark.parametrize("strict", [False, True])
def test_slots_overrun_by_a_slow_answer_are_slow_unless_strict(strict):
    calls = []

    def probe(timeout_s):
        calls.append(timeout_s)
        if len(calls) == 3:
            time.sleep(0.26)  # answers, but five intervals late (and within the timeout)
        return OK, ""

    with LivenessMonitor(probe, interval_s=0.05, timeout_s=1.0, strict_interval=strict) as monitor:
        time.sleep(0.6)
    missing = [s for s in monitor.samples if s.status == MISSING]
    if strict:
        assert len(missing) >= 5 and monitor.slow_slots == 0
        assert all("the probe before took" in s.detail for s in missing)
    else:
        assert missing == [] and monitor.slow_slots >= 5


def test_a_device_going_silent_and_coming_back():
    down = threading.Event()

    def probe(timeout_s):
        if down.is_set():
            time.sleep(timeout_s)  # what a silent device costs: the whole timeout
            return MISSING, f"no answer within {timeout_s:g} s"
        return OK, ""

    with LivenessMonitor(probe, interval_s=0.02, timeout_s=0.1) as monitor:
        assert monitor.wait_until_ok(2.0) is not None
        time.sleep(0.1)
        start = monitor.mark("attack start")
        down.set()
        time.sleep(0.3)
        down.clear()
        end = monitor.mark("attack end")
        assert monitor.wait_until_ok(2.0) is not None
        time.sleep(0.1)

    strict = monitor.report(attack=(start, end), recovery_limit_s=1.0)
    assert not strict.ok
    assert any(p.startswith("stopped answering at +") and "during the attack" in p for p in strict.problems), strict.problems
    assert strict.during.missing >= 3 and strict.before.missing == 0 and strict.after.ok >= 1
    assert strict.recovered_after_s is not None and strict.recovered_after_s <= 1.0

    tolerant = monitor.report(attack=(start, end), recovery_limit_s=1.0, tolerate_during=True)
    assert tolerant.ok, tolerant.problems
    assert [label for _, label in tolerant.marks] == ["attack start", "attack end"]


def test_wait_until_ok_gives_up_after_its_time():
    with LivenessMonitor(lambda timeout_s: (MISSING, "silent"), interval_s=0.01, timeout_s=0.1) as monitor:
        begin = time.monotonic()
        assert monitor.wait_until_ok(0.2) is None
        assert time.monotonic() - begin < 5.0
    assert monitor.wait_until_ok(0.2) is None  # stopped: returns at once


def test_a_probe_that_raises_is_recorded_and_the_monitor_goes_on():
    calls = []

    def broken(timeout_s):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("bug in the probe")
        if len(calls) == 3:
            return "maybe", ""
        return OK, ""

    with LivenessMonitor(broken, interval_s=0.01, timeout_s=0.1) as monitor:
        time.sleep(0.15)
    details = [s.detail for s in monitor.samples if s.status == MISSING]
    assert "the probe failed: RuntimeError: bug in the probe" in details
    assert "the probe returned an unknown status 'maybe'" in details
    assert len(calls) > 4


def test_timing_error_is_small_on_an_idle_machine():
    with LivenessMonitor(lambda timeout_s: (OK, ""), interval_s=0.01, timeout_s=0.1) as monitor:
        time.sleep(0.5)
    error = monitor.timing_error()
    assert isinstance(error, TimingError) and error.count >= 3
    assert 0 <= error.mean_s <= error.max_s
    assert error.mean_s < 0.1, error  # about 0.2-0.5 ms on an idle machine; generous for a busy one


def test_stop_closes_the_probe_and_usage_errors_say_the_fix():
    class Probe:
        closed = False

        def __call__(self, timeout_s):
            return OK, ""

        def close(self):
            self.closed = True

    probe = Probe()
    monitor = LivenessMonitor(probe, interval_s=0.01)
    with pytest.raises(RuntimeError, match="call start"):
        monitor.mark("too early")
    with monitor:
        pass
    assert probe.closed
    with pytest.raises(RuntimeError, match="new LivenessMonitor"):
        monitor.start()
    with pytest.raises(ValueError, match="interval_s must be a positive"):
        LivenessMonitor(probe, interval_s=0)
    with pytest.raises(ValueError, match="timeout_s must be a positive"):
        LivenessMonitor(probe, timeout_s=-1)


# --- the judgement (pure) --------------------------------------------------------------------


def test_a_device_that_never_falters_is_fine():
    report = judged("o" * 20, attack=(1.0, 3.0))
    assert report.ok and report.problems == []
    assert (report.before, report.during, report.after) == (Counts(4, 0, 0), Counts(8, 0, 0), Counts(8, 0, 0))
    assert report.recovered_after_s == 0.0


def test_an_outage_during_the_attack_fails_unless_tolerated_and_recovered():
    #            before  during    after
    codes = "oooo" + "oommmoo" + "o" + "oooo"  # attack 1.0 .. 3.0 (samples 4..11)
    strict = judged(codes, attack=(1.0, 3.0))
    assert strict.problems == ["stopped answering at +0.50 s for 0.75 s during the attack: no answer within 1 s"]
    assert strict.during == Counts(5, 0, 3)
    assert judged(codes, attack=(1.0, 3.0), tolerate=True).ok


def test_an_outage_lasting_past_the_recovery_limit():
    codes = "oooo" + "mmmmmmmm" + "mmmmmm" + "oooo"  # attack 1.0 .. 3.0, back at 4.5 s
    report = judged(codes, attack=(1.0, 3.0), limit=1.0, tolerate=True)
    assert report.recovered_after_s == 1.5
    assert report.problems == [
        "stopped answering at +0.00 s for 3.50 s during the attack: no answer within 1 s",
        "did not recover within 1 s after the attack (first correct answer after 1.50 s)",
    ]
    assert judged(codes, attack=(1.0, 3.0), limit=2.0, tolerate=True).ok


def test_a_device_that_never_comes_back():
    report = judged("oooo" + "oomm" + "mmmm", attack=(1.0, 2.0))
    assert report.recovered_after_s is None
    assert report.problems[0].startswith("stopped answering at +0.50 s for 1.50 s during the attack (still not answering")
    assert report.problems[1].startswith("did not recover within 1 s after the attack (no correct answer in the 0.75 s watched")


def test_wrong_answers_are_always_a_problem():
    report = judged("oooo" + "owoo" + "oooo", attack=(1.0, 2.0), tolerate=True)
    assert report.problems == ["1 wrong answer during the attack (first at +0.25 s: got [1], expected [2])"]
    report = judged("oooo" + "oooo" + "owwo", attack=(1.0, 2.0))
    assert report.problems == ["2 wrong answers after the attack (first at +1.25 s: got [1], expected [2])"]


def test_outages_after_the_attack():
    again = judged("oooo" + "oooo" + "oommoo", attack=(1.0, 2.0), tolerate=True)
    assert again.problems == [
        "stopped answering again at +1.50 s (0.50 s after the attack end), after it had recovered, for 0.50 s: no answer within 1 s"
    ]
    late = judged("oooo" + "oooo" + "mmoooo", attack=(1.0, 2.0))  # falls over just after the attack
    assert late.problems == ["stopped answering at +1.00 s (0.00 s after the attack end) for 0.50 s after the attack: no answer within 1 s"]
    assert late.recovered_after_s == 0.5
    assert judged("oooo" + "oooo" + "mmoooo", attack=(1.0, 2.0), tolerate=True).ok


def test_an_unsound_baseline_and_a_too_short_watch_are_reported():
    report = judged("omoo" + "oooo", attack=(1.0, 2.0))
    assert report.problems == [
        "1 unanswered probe before the attack (first at -0.75 s: no answer within 1 s); the baseline is not sound",
        "no sample after the attack: keep the monitor running for the recovery time after the attack ends",
    ]
    with pytest.raises(ValueError, match=r"attack=\(start, end\)"):
        judged("oooo", attack=(2.0, 1.0))


def test_the_timeline_is_one_entry_per_sample_up_to_the_cap():
    report = judged("oomwo", attack=(0.25, 0.5))
    assert report.timeline == [(0, "o"), (250, "o"), (500, "m"), (750, "w"), (1000, "o")]
    assert report.end_ms == 1250


def test_a_long_timeline_merges_runs_and_then_buckets():
    runs = [(k * 10, "o" if (k // 10) % 2 == 0 else "m") for k in range(5000)]
    merged = compact_timeline(runs, 50_000)
    assert len(merged) == 500 and merged[:2] == [(0, "o"), (100, "m")]

    flapping = [(k * 10, "om"[k % 2]) for k in range(5000)]
    flapping[3001] = (30010, "w")
    bucketed = compact_timeline(flapping, 50_000)
    assert len(bucketed) <= 2000
    assert bucketed[0][0] == 0 and [t for t, _ in bucketed] == sorted(t for t, _ in bucketed)
    assert any(code == "w" for _, code in bucketed), "the worst status survives bucketing"
    assert any(code == "m" for _, code in bucketed)


def test_to_dict_is_json_ready_and_compact():
    samples = samples_of("oooo" + "ommo" + "oooo")
    report = judge(
        samples, interval_s=STEP, attack=(1.0, 2.0), recovery_limit_s=1.0,
        marks=[(1.0, "attack start"), (2.0, "attack end")], timing=TimingError(0.0004, 0.0021, 12), lost_slots=1, slow_slots=2,
    )
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["problems"] == report.problems
    assert data["interval_ms"] == 250.0 and data["attack_ms"] == [1000, 2000] and data["recovery_limit_ms"] == 1000.0
    assert data["counts"]["during"] == {"ok": 2, "wrong": 0, "missing": 2}
    assert data["recovered_after_ms"] == 0.0
    assert data["timeline"][:2] == [[0, "o"], [250, "o"]] and data["end_ms"] == 3000
    assert data["marks"] == [[1000, "attack start"], [2000, "attack end"]]
    assert data["timing_error_ms"] == {"mean": 0.4, "max": 2.1}
    assert data["lost_slots"] == 1 and data["slow_slots"] == 2


def test_a_probe_still_waiting_when_the_attack_began_is_judged_with_the_attack():
    """A silence that began just before the attack and ran into it may be the attack's doing:
    it is an outage during the attack, not an unsound baseline; a probe whose wait ended before
    the attack still is one."""
    samples = samples_of("oooo" + "mooo" + "oooo")  # the probe at +0.00 s (the attack start) gets no answer
    straddling = [Sample(0.95, MISSING, None, "no answer within 0.5 s")] + [s for s in samples if s.t != 1.0]
    report = judge(straddling, interval_s=STEP, attack=(1.0, 2.0), recovery_limit_s=1.0, probe_timeout_s=0.5)
    assert report.problems == ["stopped answering at -0.05 s for 0.30 s during the attack: no answer within 0.5 s"]
    early = judge(straddling, interval_s=STEP, attack=(1.0, 2.0), recovery_limit_s=1.0, probe_timeout_s=0.01)
    assert early.problems[0].startswith("1 unanswered probe before the attack (first at -0.05 s")
