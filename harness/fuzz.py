"""Find the smallest input that breaks a device: Hypothesis generates, we send, we watch.

`find_breaking_input(strategy, send, alive, ...)` draws inputs (FuzzFrame, harness.strategies)
from `strategy`, sends each with `send` and asks `alive` whether the device still answers. The
first input after which it does not is a failure, and Hypothesis shrinks it: it replays simpler
inputs and keeps the simplest one that still breaks the device.

Shrinking needs a device that is alive before each try. So before every input the device must
answer within the recovery time; if it does not (it died for good, or is still recovering), it
is restarted when the caller gave a way to (`restart`, the profile's restart command:
harness.restart), and otherwise the try is marked invalid (`assume(False)`) rather than blamed
on the input at hand: the verdict then rests on the simplest input seen to break a device that
was alive when it was sent.  A device left dead at the end is restarted too, for the next case.
Shrinking stops after `shrink_budget_s`: a device that stalls for seconds on each try would
otherwise keep a case busy for Hypothesis's own limit (500 shrinks, five minutes).

The few inputs sent just before the one that broke the device are kept (`preceding`): when the
failure does not come back from that input alone, they are the evidence of a state that earlier
inputs left behind.

The run is repeatable: the seed fixes the inputs, and the result records it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, assume, given, seed, settings
from hypothesis import strategies as st

from .strategies import FuzzFrame

Send = Callable[[FuzzFrame], Any]  # sends one input; returns what came back (for the record)
Alive = Callable[[float], bool]  # alive(within_s): does the device answer within that time?
Judge = Callable[[FuzzFrame, Any], str]  # what is wrong with this answer to this input ("" when nothing)
Restart = Callable[[], bool]  # brings the device back; True when it answers again


DEAD_AFTER = 3  # consecutive waits (or restarts) in vain before the device is taken for dead
PRECEDING = 5  # inputs kept from before the first one that broke the device


class _DeviceBroke(Exception):
    """Raised inside the Hypothesis test: the device stopped answering after this input."""


@dataclass
class FuzzResult:
    seed: int
    tried: int = 0  # inputs sent, shrinking included
    generated: int = 0  # inputs drawn before the first failure (or all of them)
    duration_s: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)  # inputs sent per kind
    broke: FuzzFrame | None = None  # the simplest input that broke the device
    reply: Any = None  # what `send` returned for it
    problem: str = ""  # what was wrong: the device stopped answering, or the judge's finding
    device_dead_at_end: bool = False
    # Shrinking needs the device back after a failure; one that never came back leaves the
    # first input that broke it, not the simplest.
    minimised: bool = False
    reproduced: bool = False  # the simplest input broke the device again when sent once more
    preceding: list[FuzzFrame] = field(default_factory=list)  # sent just before the first input that broke it, oldest first
    restarts: int = 0  # times the device was restarted (to shrink, or after the run to leave it serving)
    restored: bool = False  # dead at the end, and a restart brought it back
    shrink_cut: bool = False  # shrinking stopped at its time budget: simpler inputs may still break the device
    cause: str = ""  # what broke: "answer" (the judge found the answer wrong) or "liveness" (the device stopped answering)

    @property
    def rate_per_s(self) -> float:
        return self.tried / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {"seed": self.seed, "tried": self.tried, "generated": self.generated, "duration_s": round(self.duration_s, 3),
                "rate_per_s": round(self.rate_per_s, 1), "kinds": dict(sorted(self.kinds.items())),
                "broke": self.broke.describe() if self.broke else None, "problem": self.problem,
                "minimised": self.minimised, "reproduced": self.reproduced,
                "preceding": [{"kind": f.kind, "hex": f.data.hex()} for f in self.preceding],
                "restarts": self.restarts, "restored": self.restored, "shrink_cut": self.shrink_cut, "cause": self.cause}


def find_breaking_input(strategy: st.SearchStrategy[FuzzFrame], send: Send, alive: Alive, *, examples: int,
                        run_seed: int, answer_within_s: float, recovery_s: float, judge: Judge | None = None,
                        shrink: bool = True, restart: Restart | None = None, max_restarts: int = 0,
                        shrink_budget_s: float | None = None) -> FuzzResult:
    """Send up to `examples` inputs; return what was tried and, if the device broke, the simplest
    input that broke it (see the module docstring).

    After each input the device must answer within `answer_within_s` (the monitor's timeout: a
    device that stalls for seconds after one frame is broken by it, even if it comes back).
    Before each input while shrinking, it may take `recovery_s` to come back.  With `judge`, an
    input whose answer the judge finds wrong (e.g. silence where the spec requires an answer)
    counts as breaking too.  With `restart`, a device that is down when it is needed is
    restarted, at most `max_restarts` times."""
    result = FuzzResult(seed=run_seed)
    recent: deque[FuzzFrame] = deque(maxlen=PRECEDING + 1)
    known_down = [False]  # the last input left the device down beyond the recovery time
    # Hypothesis only tries an input while shrinking when it is simpler than the best failure so
    # far, so the last input that broke the device is the simplest one.
    last_break: list[tuple[FuzzFrame, Any, str, str]] = []
    dead_streak = [0]
    start = time.monotonic()
    first_break_at = [0.0]

    def restarted() -> bool:
        if restart is None or result.restarts >= max_restarts:
            return False
        result.restarts += 1
        return restart()

    def device_back() -> bool:
        # After a few waits in vain the device is taken for dead and not asked again, so that
        # Hypothesis's shrinking against a dead device ends at once, not in minutes.
        if dead_streak[0] >= DEAD_AFTER:
            return False
        # A device the last input left down gets no second wait when it can be restarted.
        if not (known_down[0] and restart is not None) and alive(recovery_s):
            return True
        known_down[0] = False
        return restarted()

    @settings(max_examples=examples, database=None, deadline=None, derandomize=False, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), phases=(Phase.generate, Phase.shrink) if shrink else (Phase.generate,),
              print_blob=False)
    @seed(run_seed)
    @given(strategy)
    def attempt(frame: FuzzFrame) -> None:
        failing_seen = bool(last_break)
        if failing_seen:
            if shrink_budget_s is not None and time.monotonic() - first_break_at[0] > shrink_budget_s \
                    and frame != last_break[-1][0]:
                # Out of time: only the simplest input so far is sent again (Hypothesis's final
                # replay of it); every simpler candidate is skipped unsent.
                result.shrink_cut = True
                assume(False)
            if not device_back():
                dead_streak[0] += 1
                assume(False)  # the device is down before this input: it cannot be blamed on it
            dead_streak[0] = 0
            if frame != last_break[-1][0]:  # not Hypothesis's final replay of the best so far
                result.minimised = True
        result.tried += 1
        if not failing_seen:
            result.generated += 1
            recent.append(frame)
        result.kinds[frame.kind] = result.kinds.get(frame.kind, 0) + 1
        reply = send(frame)
        problem = judge(frame, reply) if judge else ""
        cause = "answer" if problem else ""
        if not alive(answer_within_s):
            known_down[0] = not alive(recovery_s)
            back = "and did not come back" if known_down[0] else f"for more than {answer_within_s:g} s"
            problem, cause = f"the device stopped answering reads of its known points {back}", "liveness"
        if problem:
            if not failing_seen:
                result.preceding = list(recent)[:-1]
                first_break_at[0] = time.monotonic()
            last_break.append((frame, reply, problem, cause))
            raise _DeviceBroke(f"{frame.describe()}: {problem}")

    try:
        attempt()
    except _DeviceBroke:
        result.reproduced = True  # Hypothesis's final replay of the simplest input broke the device again
    except Exception:
        # Hypothesis's complaint that its final replay did not fail again: the device stayed down
        # (the replay was invalid), or the failure did not come back (timing, or a state that the
        # input alone does not recreate)
        if not last_break:
            raise
    if last_break:
        result.broke, result.reply, result.problem, result.cause = last_break[-1]
        result.device_dead_at_end = dead_streak[0] >= DEAD_AFTER or not alive(recovery_s)
        if result.device_dead_at_end and restart is not None:
            result.restarts += 1  # beyond max_restarts: the next case needs the device
            result.restored = restart()
    result.duration_s = time.monotonic() - start
    return result
