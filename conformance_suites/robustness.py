"""What the robustness suites of every protocol share: the profile's robustness parameters, the
device restarter, the liveness monitor's life cycle, judging an attack by the monitor's record,
and running the fuzzer with its evidence.

A protocol's suite brings only what is its own: the probe that reads its known points, the
`liveness` fixture (does the device answer, within a time?), how one input is sent and how the
input that broke the device is written down as frames and a replay block.  Its conftest imports
the fixtures from here:

    from ..robustness import device_serving_before_case, restarter, rob  # noqa: F401 - fixtures
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from harness.attacks import Outcome, ReplyLength, dribble
from harness.conformance import fail, inconclusive
from harness.fuzz import FuzzResult, Judge, Send, find_breaking_input
from harness.liveness import LivenessMonitor, Probe
from harness.model import Evidence, Frame
from harness.profile_robustness import RobustnessSection
from harness.restart import Restarter

Alive = Callable[[float], bool]  # alive(within_s): does the device answer reads of its known points within that time?

IEC = "IEC 62443-4-2 v1.0 (Edition 1.0, 2019)"
SETTLE_INTERVALS = 5  # after an attack, the monitor keeps watching this many intervals so that a relapse shows


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def rob(profile) -> RobustnessSection:
    """The profile's robustness parameters (harness.profile_robustness)."""
    return profile.robustness


@pytest.fixture(scope="session")
def restarter(profile, target) -> Iterator[Restarter | None]:
    """The profile's restart command for the target (harness.restart), or None without one."""
    section = profile.robustness
    if not section.restart_command:
        yield None
        return
    with Restarter(section.restart_command, target.host, target.port, timeout_s=section.restart_timeout_ms / 1000) as r:
        yield r


@pytest.fixture(autouse=True)
def device_serving_before_case(request, restarter, rob, evidence) -> None:
    """Before each case that watches the device, one that no longer answers (an earlier case
    left it down) is restarted when the profile says how, so that this case is not blamed for
    what an earlier one did; the restart is noted in this case's evidence."""
    if restarter is None or "known_points" not in request.fixturenames:
        return
    alive: Alive = request.getfixturevalue("liveness")
    if alive(rob.recovery_time_ms / 1000):
        return
    outcome = restarter.restart(alive)
    evidence.notes.append("the device did not answer before this case (an earlier case left it down); the profile's "
                          "restart command " + ("brought it back" if outcome.ok else f"did not bring it back: {outcome.problem}")
                          + f" in {outcome.took_s:.1f} s")


def watch(probe: Probe, rob: RobustnessSection) -> Iterator[LivenessMonitor]:
    """The body of a suite's `monitor` fixture: reads the known points with `probe` every
    `monitor_interval_ms` while the case runs."""
    monitor = LivenessMonitor(probe, interval_s=rob.monitor_interval_ms / 1000, timeout_s=rob.monitor_timeout_ms / 1000)
    monitor.start()
    try:
        yield monitor
    finally:
        monitor.stop()


def run_attacks_one_at_a_time(items, suite: str, group: str) -> None:
    """For a suite's `pytest_collection_modifyitems`: attacks load the device, and two at once
    would blame each on the other, so one xdist worker runs all of a suite's cases, in order
    (with --dist loadgroup).  `group` is the conformance suite's group of writing cases
    ("modbus-writes", "opcua-writes"): the stateful cases write the same points, so run with the
    conformance suite under -n, they must not interleave with its writes either."""
    for item in items:
        if suite in str(item.path):
            item.add_marker(pytest.mark.xdist_group(group))


# --------------------------------------------------------------------------- attacks


def judge_attack(monitor: LivenessMonitor, evidence: Evidence, rob: RobustnessSection, attack: tuple[float, float],
                 attack_record: dict) -> None:
    """Wait for recovery, then FAIL the case with the monitor's findings, if any; the attack and
    the monitor's timeline go into the evidence either way."""
    recovery_s = rob.recovery_time_ms / 1000
    monitor.wait_until_ok(recovery_s)
    time.sleep(SETTLE_INTERVALS * rob.monitor_interval_ms / 1000)
    report = monitor.report(attack=attack, recovery_limit_s=recovery_s, tolerate_during=rob.degraded_ok)
    evidence.attack = attack_record
    evidence.monitor = report.to_dict()
    if not report.ok:
        fail("; ".join(report.problems), expected="every monitor read answered correctly"
             + (" after the attack" if rob.degraded_ok else " during and after the attack"),
             observed=report.problems[0])


def dribbled(host: str, port: int, message: bytes, rob: RobustnessSection, monitor: LivenessMonitor, evidence: Evidence,
             reply_length: ReplyLength) -> Outcome:
    """Send `message` a byte every `slow_byte_interval_ms` while the monitor watches, and judge
    the monitor's record (`judge_attack`); the answer is the caller's to judge."""
    start = monitor.mark("dribble start")
    outcome = dribble(host, port, message, byte_interval_s=rob.slow_byte_interval_ms / 1000, reply_length=reply_length,
                      reply_timeout_s=rob.recovery_time_ms / 1000 + 1)
    end = monitor.mark("dribble end")
    record = {"name": "dribble", "bytes": len(message), "byte_interval_ms": rob.slow_byte_interval_ms,
              "answered": outcome.reply is not None, "closed": outcome.closed, "error": outcome.error,
              "elapsed_s": round(outcome.elapsed_s, 3)}
    judge_attack(monitor, evidence, rob, (start, end), record)
    return outcome


# --------------------------------------------------------------------------- fuzzing


def fuzz(strategy, send: Send, alive: Alive, rob: RobustnessSection, harness_seed: int, evidence: Evidence, case_id: str,
         *, restarter: Restarter | None, record: Callable[[FuzzResult], None], judge: Judge | None = None,
         device: str = "device") -> FuzzResult:
    """Run the fuzzer (harness.fuzz) against a device that answers before it starts, restarting
    it when the profile says how; the attack record and a summary go into the evidence, and
    `record(result)` writes the input that broke the device (its frames and replay block).

    A failure that did not come back when Hypothesis sent the simplest input once more, on a
    device that was still serving, is then INCONCLUSIVE (timing noise, or a state that earlier
    inputs left: their list is in the evidence); otherwise the result is the caller's to judge."""
    recovery_s = rob.recovery_time_ms / 1000
    if not alive(recovery_s):
        outcome = restarter.restart(alive) if restarter is not None else None
        if outcome is None or not outcome.ok:
            why = f"; the profile's restart command did not bring it back: {outcome.problem}" if outcome else ""
            fail(f"the {device} does not answer reads of its known points before any input was sent{why}",
                 expected="an answer to each monitor read", observed="none")
    restart = (lambda: restarter.restart(alive).ok) if restarter is not None else None
    result = find_breaking_input(strategy, send, alive, examples=rob.fuzz_examples, run_seed=harness_seed,
                                 answer_within_s=rob.monitor_timeout_ms / 1000, recovery_s=recovery_s, judge=judge,
                                 restart=restart, max_restarts=rob.restart_limit, shrink_budget_s=rob.shrink_time_ms / 1000)
    evidence.attack = {"name": case_id, **result.to_dict()}
    evidence.notes.append(f"{result.tried} inputs sent in {result.duration_s:.1f} s (seed {result.seed}); "
                          f"kinds: {', '.join(f'{k} x{n}' for k, n in sorted(result.kinds.items()))}")
    if result.restarts:
        evidence.notes.append(f"the {device} was restarted {result.restarts} time(s) by the profile's restart command"
                              + ("" if not result.device_dead_at_end else
                                 "; it was left " + ("serving" if result.restored else "DEAD") + " after the case"))
    if result.broke is not None:
        record(result)
    _inconclusive_unless_reproduced(result)
    return result


def _inconclusive_unless_reproduced(result: FuzzResult) -> None:
    """INCONCLUSIVE for a failure the simplest input did not show again on a serving device."""
    if result.broke is not None and not result.reproduced and not result.device_dead_at_end:
        preceding = (f"; the {len(result.preceding)} inputs sent before it are in the evidence, and harness replay "
                     "RUN CASE --with-preceding sends them first" if result.preceding else "")
        inconclusive(f"{result.problem} once, after {result.broke.describe()}, but not when it was sent again: "
                     f"timing noise, or a state of the device the input alone does not recreate{preceding}")


def which_input(result: FuzzResult, device: str = "device") -> str:
    """Which input the verdict names: the simplest, or (unshrunk) the first that broke it."""
    if result.minimised:
        restarted = f", restarted {result.restarts} time(s) to shrink it" if result.restarts else ""
        cut = " (shrinking stopped at robustness.shrink_time_ms)" if result.shrink_cut else ""
        return f"the simplest of {result.tried} inputs{restarted}{cut}"
    how = (f"a restart did not bring the {device} back" if result.restarts else
           "no time left to shrink it (robustness.shrink_time_ms)" if result.shrink_cut else
           f"the {device} did not come back within the recovery time; robustness.restart_command in the profile lets "
           "the harness restart it and shrink the input")
    return f"input {result.generated}; not minimised: {how}"


def record_exchange(evidence: Evidence, conn: str, sent: Sequence[tuple[bytes, str]],
                    outcomes: Sequence[Outcome | None], describe_reply: Callable[[bytes], str]) -> None:
    """The frames of the input that broke the device, each as (bytes, what it is), and the answer
    each got (`outcomes`, one per frame sent), as evidence frames on connection `conn`."""
    now_mono, now_wall = time.monotonic(), time.time()
    for n, (data, what) in enumerate(sent):
        evidence.frames.append(Frame("tx", now_mono, now_wall, data.hex(), what, conn))
        outcome = outcomes[n] if n < len(outcomes) else None
        if outcome is not None and outcome.reply:
            evidence.frames.append(Frame("rx", now_mono + outcome.elapsed_s, now_wall + outcome.elapsed_s, outcome.reply.hex(),
                                         describe_reply(outcome.reply), conn))


def replay_block(result: FuzzResult, rob: RobustnessSection, protocol: str, frames: list[bytes],
                 preceding: list[list[bytes]], reply_timeout_s: float, **protocol_fields) -> dict:
    """The evidence's `replay` block for `harness replay`: the input's bytes on one connection,
    the inputs sent before it, each as the bytes on its own connection (for failures that need
    them: `harness replay --with-preceding`), and how the device is judged."""
    return {
        "protocol": protocol,
        "frames": [data.hex() for data in frames],
        "kind": result.broke.kind if result.broke else "",
        "preceding": [[data.hex() for data in connection] for connection in preceding],
        "seed": result.seed,
        "reply_timeout_s": reply_timeout_s,
        "recovery_s": rob.recovery_time_ms / 1000,
        "answer_within_s": rob.monitor_timeout_ms / 1000,
        "problem": result.problem,
        # what the replay judges: "answer" (an answer the spec requires must come) or "liveness"
        "cause": result.cause,
        **protocol_fields,
    }
