"""Liveness monitor: while an attack runs, read known points at a fixed interval and judge.

Protocol-agnostic; standard library only.  A *probe* is a function `probe(timeout_s) ->
(status, detail)` that asks the device once (e.g. `harness.liveness_modbus.modbus_probe`) and
says whether the answer came and came right: `OK`, `WRONG` (an answer, but not the right one)
or `MISSING` (no answer in time).  A probe must never raise and never take much longer than
`timeout_s`.

The schedule is fixed: sample k is due at `start + k * interval_s`, so the samples do not
drift however long the probes take.  The monitor thread sleeps until a sample is due, runs the
probe and records when it actually started; `timing_error()` is how late the probes started
against their due times (the benchmark's "monitor timing error").

Slots that pass while no probe could start are of two kinds:

- *overrun*: the previous probe was still running when the slot came due.  When that probe got
  no answer (it timed out, the connection failed), the device did not answer in time, and each
  such slot is recorded as a MISSING sample at its due time.  When it did get an answer within
  `timeout_s`, the device was slow but answered: the slots are counted in `slow_slots`, not
  recorded, because `timeout_s` is what defines "in time" (the profile's
  `robustness.monitor_timeout_ms`), and on a loaded test machine a probe answered in 60 ms at a
  50 ms interval is common without any fault of the device.  `strict_interval=True` records
  those slots as MISSING too (the device must answer within one interval).
- *lost*: the monitor itself woke up late (the machine or the interpreter was busy) and the
  slot had passed before any probe was running.  That is not the device's fault: the slot is
  not recorded as a sample, only counted in `lost_slots` (a report with many lost slots is
  timing noise: INCONCLUSIVE, not FAIL).

Every slot is accounted for exactly once: len(samples) + slow_slots + lost_slots is the number
of slots the monitor got through.

`report(attack=(start, end), recovery_limit_s=...)` splits the samples into before / during /
after the attack (by the sample's start time, seconds since the monitor started, the same
clock as `mark()`), and lists the problems in sentences; `LivenessReport.to_dict()` is the
evidence a robustness case stores in results.json.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

OK, WRONG, MISSING = "ok", "wrong", "missing"
STATUSES = (OK, WRONG, MISSING)

Probe = Callable[[float], tuple[str, str]]
T = TypeVar("T")
_NONE = object()  # a queue that ran out, in take_in_turn

TIMELINE_CAP = 2000  # entries in a report's timeline strip
_DETAIL_CAP = 200  # characters of a device-derived detail kept in the evidence
_CODE = {OK: "o", WRONG: "w", MISSING: "m"}
_SEVERITY = {"o": 0, "m": 1, "w": 2}  # which status a merged timeline bucket shows


@dataclass(frozen=True)
class Sample:
    """One probe (or one overrun slot).

    `t` is seconds since the monitor started (monotonic): when the probe started, or the due
    time of an overrun slot.  `latency_s` is how long the answer took (None when none came).
    `detail` says what was wrong or missing; it may contain data the device sent.
    """

    t: float
    status: str
    latency_s: float | None
    detail: str = ""


@dataclass(frozen=True)
class TimingError:
    """How late the probes started against their schedule, in seconds."""

    mean_s: float
    max_s: float
    count: int  # probes measured


@dataclass(frozen=True)
class Counts:
    ok: int = 0
    wrong: int = 0
    missing: int = 0

    @property
    def total(self) -> int:
        return self.ok + self.wrong + self.missing

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> Counts:
        statuses = [s.status for s in samples]
        return cls(statuses.count(OK), statuses.count(WRONG), statuses.count(MISSING))

    def to_dict(self) -> dict:
        return {"ok": self.ok, "wrong": self.wrong, "missing": self.missing}


@dataclass(frozen=True)
class LivenessReport:
    """What the monitor saw around one attack, and the problems it found (none when fine).

    `recovered_after_s`: seconds from the attack end to the start of the first probe at or
    after the attack end that was answered correctly; None when there was none.  A device that
    never faltered scores less than one interval (the wait for the next slot), so the
    recovery limit must be longer than the interval.

    `timeline`: (ms since monitor start, "o" | "w" | "m"), each entry holding until the next.
    One entry per sample while there are at most TIMELINE_CAP samples; beyond that, runs of
    the same status are merged, and if that is still too long the time is cut into equal
    buckets each showing its worst status (w > m > o).
    """

    interval_s: float
    attack_s: tuple[float, float]
    recovery_limit_s: float
    tolerate_during: bool
    before: Counts
    during: Counts
    after: Counts
    recovered_after_s: float | None
    problems: list[str]
    timeline: list[tuple[int, str]]
    marks: list[tuple[int, str]]
    timing_error_ms: tuple[float, float]  # mean, max
    lost_slots: int = 0  # slots the monitor itself missed (timing noise, not the device)
    slow_slots: int = 0  # slots passed while a probe waited for an answer that then came
    end_ms: int = 0  # where the last timeline entry stops

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        """JSON-ready and compact: the case's evidence["monitor"] in results.json."""
        return {
            "ok": self.ok,
            "interval_ms": _ms_float(self.interval_s),
            "attack_ms": [_ms(self.attack_s[0]), _ms(self.attack_s[1])],
            "recovery_limit_ms": _ms_float(self.recovery_limit_s),
            "tolerate_during": self.tolerate_during,
            "counts": {"before": self.before.to_dict(), "during": self.during.to_dict(), "after": self.after.to_dict()},
            "recovered_after_ms": None if self.recovered_after_s is None else _ms_float(self.recovered_after_s),
            "problems": list(self.problems),
            "timeline": [[t, code] for t, code in self.timeline],
            "end_ms": self.end_ms,
            "marks": [[t, label] for t, label in self.marks],
            "timing_error_ms": {"mean": self.timing_error_ms[0], "max": self.timing_error_ms[1]},
            "lost_slots": self.lost_slots,
            "slow_slots": self.slow_slots,
        }


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _ms_float(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _clip(text: str) -> str:
    text = str(text)
    return text if len(text) <= _DETAIL_CAP else text[: _DETAIL_CAP - 1] + "…"


def answers_within(probe: Probe, within_s: float, answer_s: float, pause_s: float = 0.02) -> bool:
    """Ask `probe` again and again until it answers OK or `within_s` has passed; each ask may
    take `answer_s` at most (less near the end).  For one-off checks: the fuzzer's "is the
    device still there?" and `harness replay`."""
    deadline = time.monotonic() + within_s
    while True:
        status, _detail = probe(min(answer_s, max(0.05, deadline - time.monotonic())))
        if status == OK:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause_s)


def take_in_turn(queues: Sequence[Sequence[T]], limit: int) -> list[T]:
    """Up to `limit` items, one from each queue in turn (the first of each, then the second...):
    how the probes pick known points so that every table (or node group) gets read."""
    picked: list[T] = []
    for row in itertools.zip_longest(*queues, fillvalue=_NONE):
        for item in row:
            if item is not _NONE and len(picked) < limit:
                picked.append(item)
    return picked


class LivenessMonitor:
    """Runs `probe` on a fixed schedule in a daemon thread; see the module docstring.

        with LivenessMonitor(probe, interval_s=0.05, timeout_s=0.5) as monitor:
            time.sleep(1)                      # baseline
            start = monitor.mark("attack start")
            attack()
            end = monitor.mark("attack end")
            monitor.wait_until_ok(within_s=recovery_s)
            time.sleep(recovery_s)             # watch that it stays up
        report = monitor.report(attack=(start, end), recovery_limit_s=recovery_s)

    `timeout_s` is passed to each probe call: an answer later than that is MISSING.
    `strict_interval=True` also counts every slot that passes while a probe waits as MISSING,
    even when the answer then comes (see the module docstring).  The monitor owns the probe:
    `stop()` calls the probe's `close()` when it has one.
    """

    def __init__(self, probe: Probe, *, interval_s: float = 0.1, timeout_s: float = 1.0, strict_interval: bool = False):
        if not callable(probe):
            raise TypeError(f"probe must be a function probe(timeout_s) -> (status, detail), got {probe!r}")
        if not (isinstance(interval_s, (int, float)) and math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be a positive number of seconds, e.g. 0.1; got {interval_s!r}")
        if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, e.g. 1.0; got {timeout_s!r}")
        self.probe = probe
        self.interval_s = float(interval_s)
        self.timeout_s = float(timeout_s)
        self.strict_interval = strict_interval
        self._cond = threading.Condition()  # guards everything below; notified on each sample
        self._samples: list[Sample] = []
        self._marks: list[tuple[float, str]] = []
        self._lateness: list[float] = []  # actual probe start - due time, per probe
        self._lost_slots = 0
        self._slow_slots = 0
        self._t0: float | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this monitor was already started; make a new LivenessMonitor for another run")
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="liveness-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread (at most one probe timeout and a bit)."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(self.timeout_s + 1.0)
        close = getattr(self.probe, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # closing a socket that is already gone; nothing to record
                pass

    def __enter__(self) -> LivenessMonitor:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()

    # ------------------------------------------------------------------ the clock and marks

    def now(self) -> float:
        """Seconds since the monitor started (the clock of samples and marks)."""
        if self._t0 is None:
            raise RuntimeError("the monitor has not started: call start() (or use it in a with block) first")
        return time.monotonic() - self._t0

    def mark(self, label: str) -> float:
        """Record that `label` happened now (e.g. "attack start"); returns the time."""
        t = self.now()
        with self._cond:
            self._marks.append((t, str(label)))
        return t

    @property
    def samples(self) -> list[Sample]:
        with self._cond:
            return list(self._samples)

    @property
    def marks(self) -> list[tuple[float, str]]:
        with self._cond:
            return list(self._marks)

    @property
    def lost_slots(self) -> int:
        with self._cond:
            return self._lost_slots

    @property
    def slow_slots(self) -> int:
        with self._cond:
            return self._slow_slots

    def wait_until_ok(self, within_s: float) -> float | None:
        """Block until a correctly answered sample arrives after this call.

        Returns the seconds waited, or None when none arrived within `within_s` (or the
        monitor is not running).
        """
        begin = time.monotonic()
        deadline = begin + within_s
        with self._cond:
            seen = len(self._samples)
            while True:
                if any(s.status == OK for s in self._samples[seen:]):
                    return time.monotonic() - begin
                seen = len(self._samples)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.running:
                    return None
                self._cond.wait(min(remaining, self.interval_s + self.timeout_s))

    # ------------------------------------------------------------------ sampling

    def _run(self) -> None:
        t0 = self._t0
        assert t0 is not None
        interval = self.interval_s
        k = 0
        while not self._stopping.is_set():
            due = t0 + k * interval
            now = time.monotonic()
            # Event.wait can return a little early; loop until the due time has come.
            while now < due:
                if self._stopping.wait(due - now):
                    return
                now = time.monotonic()
            started = time.monotonic()
            status, detail = self._probe_once()
            ended = time.monotonic()
            latency = ended - started if status != MISSING else None
            next_k, overrun, lost = plan_next_slot(k, interval, started - t0, ended - t0)
            slow = 0
            if overrun and status != MISSING and not self.strict_interval:
                slow, overrun = len(overrun), []
            elif overrun:
                took = "got no answer" if latency is None else f"took {latency * 1000:.0f} ms"
                why = f"no answer within the {interval * 1000:g} ms interval (the probe before {took})"
                overrun = [Sample(t, MISSING, None, why) for t in overrun]
            with self._cond:
                self._samples.append(Sample(started - t0, status, latency, detail))
                self._samples.extend(overrun)
                self._lateness.append(started - due)
                self._lost_slots += lost
                self._slow_slots += slow
                self._cond.notify_all()
            k = next_k

    def _probe_once(self) -> tuple[str, str]:
        """Run the probe; a probe that breaks its contract is recorded, never propagated."""
        try:
            result = self.probe(self.timeout_s)
            status, detail = result
        except Exception as exc:  # a harness bug in the probe, not the device's doing
            return MISSING, _clip(f"the probe failed: {type(exc).__name__}: {exc}")
        if status not in STATUSES:
            return MISSING, _clip(f"the probe returned an unknown status {status!r}")
        return status, _clip(detail)

    # ------------------------------------------------------------------ judgement

    def timing_error(self) -> TimingError:
        with self._cond:
            lateness = [abs(x) for x in self._lateness]
        if not lateness:
            return TimingError(0.0, 0.0, 0)
        return TimingError(sum(lateness) / len(lateness), max(lateness), len(lateness))

    def report(self, *, attack: tuple[float, float], recovery_limit_s: float, tolerate_during: bool = False) -> LivenessReport:
        """Judge the samples around `attack` = (start, end) in monitor seconds (from `mark()`).

        Problems (any makes `ok` False):
        - any WRONG answer, before, during or after the attack (the data is wrong);
        - MISSING before the attack (the baseline was not sound); a probe that started before
          the attack but was still waiting for its answer when the attack began is judged with
          the attack's samples, since the silence may be the attack's doing;
        - the device stopped answering during the attack, or after it before its first
          correct answer (IEC 62443-4-2 CR 7.1: keep the essential function while under
          attack), unless `tolerate_during` and that first correct answer came within
          `recovery_limit_s` of the attack end;
        - the device stopped answering again after it had recovered (always);
        - no correct answer within `recovery_limit_s` after the attack end.

        An outage is a run of MISSING samples; it lasts until the next answered sample.
        Sentences give times as offsets from the attack start ("+1.20 s").
        """
        return judge(
            self.samples,
            interval_s=self.interval_s,
            attack=attack,
            recovery_limit_s=recovery_limit_s,
            tolerate_during=tolerate_during,
            marks=self.marks,
            probe_timeout_s=self.timeout_s,
            timing=self.timing_error(),
            lost_slots=self.lost_slots,
            slow_slots=self.slow_slots,
        )


def plan_next_slot(k: int, interval_s: float, started: float, ended: float) -> tuple[int, list[float], int]:
    """After the probe of slot k ran from `started` to `ended` (seconds since the monitor
    started): the next slot to sample, the due times of the overrun slots, the number of lost
    slots.

    The next slot is the first one due after the probe ended.  Slots due while the probe ran
    are overruns; slots due before it started were lost by the monitor's own late wake-up.
    Pure: the monitor's schedule rule, testable without a clock.
    """
    next_k = max(k + 1, math.floor(ended / interval_s) + 1)
    overrun: list[float] = []
    lost = 0
    for j in range(k + 1, next_k):
        slot = j * interval_s
        if slot < started:
            lost += 1
        else:
            overrun.append(slot)
    return next_k, overrun, lost


def judge(
    samples: Sequence[Sample],
    *,
    interval_s: float,
    attack: tuple[float, float],
    recovery_limit_s: float,
    tolerate_during: bool = False,
    marks: Sequence[tuple[float, str]] = (),
    probe_timeout_s: float = 0.0,
    timing: TimingError = TimingError(0.0, 0.0, 0),
    lost_slots: int = 0,
    slow_slots: int = 0,
) -> LivenessReport:
    """The report on `samples` around `attack`; see `LivenessMonitor.report` (pure)."""
    start, end = attack
    if end < start:
        raise ValueError(f"attack end {end:.3f} s is before its start {start:.3f} s: pass attack=(start, end)")
    if recovery_limit_s < 0:
        raise ValueError(f"recovery_limit_s must be 0 or more seconds, got {recovery_limit_s!r}")
    samples = sorted(samples, key=lambda s: s.t)
    before = [s for s in samples if s.t < start and not _waited_into(s, start, probe_timeout_s)]
    during = [s for s in samples if start <= s.t < end or _waited_into(s, start, probe_timeout_s)]
    after = [s for s in samples if s.t >= end]
    first_ok = next((s for s in after if s.status == OK), None)
    recovered = None if first_ok is None else first_ok.t - end

    problems: list[str] = []
    for name, window in (("before the attack", before), ("during the attack", during), ("after the attack", after)):
        wrong = [s for s in window if s.status == WRONG]
        if wrong:
            first = wrong[0]
            plural = "answer" if len(wrong) == 1 else "answers"
            problems.append(f"{len(wrong)} wrong {plural} {name} (first at {_at(first.t, start)}: {first.detail})")
    missing_before = [s for s in before if s.status == MISSING]
    if missing_before:
        plural = "probe" if len(missing_before) == 1 else "probes"
        problems.append(
            f"{len(missing_before)} unanswered {plural} before the attack (first at {_at(missing_before[0].t, start)}: "
            f"{missing_before[0].detail}); the baseline is not sound"
        )
    recovered_in_time = recovered is not None and recovered <= recovery_limit_s
    last_t = samples[-1].t + interval_s if samples else end
    for first, until in _outages(samples, start, last_t, probe_timeout_s):
        length = until - first.t
        still = " (still not answering when the monitor stopped)" if until >= last_t else ""
        when = f"at {_at(first.t, start)}" + ("" if first.t < end else f" ({first.t - end:.2f} s after the attack end)")
        if first_ok is not None and first.t > first_ok.t:
            problems.append(f"stopped answering again {when}, after it had recovered, for {length:.2f} s{still}: {first.detail}")
        elif tolerate_during and recovered_in_time:
            continue  # a loss of service the policy allows: it came back in time
        elif first.t >= end and not recovered_in_time:
            continue  # the recovery sentence below says it
        else:
            window = "during" if first.t < end else "after"
            problems.append(f"stopped answering {when} for {length:.2f} s {window} the attack{still}: {first.detail}")
    if not after:
        problems.append("no sample after the attack: keep the monitor running for the recovery time after the attack ends")
    elif not recovered_in_time:
        limit = f"did not recover within {recovery_limit_s:g} s after the attack"
        if recovered is not None:
            problems.append(f"{limit} (first correct answer after {recovered:.2f} s)")
        else:
            watched = after[-1].t - end
            last = after[-1]
            problems.append(f"{limit} (no correct answer in the {watched:.2f} s watched after it; last: {last.status}, {last.detail})")

    end_ms = _ms(last_t) if samples else 0
    return LivenessReport(
        interval_s=interval_s,
        attack_s=(start, end),
        recovery_limit_s=recovery_limit_s,
        tolerate_during=tolerate_during,
        before=Counts.of(before),
        during=Counts.of(during),
        after=Counts.of(after),
        recovered_after_s=recovered,
        problems=problems,
        timeline=compact_timeline([(_ms(s.t), _CODE[s.status]) for s in samples], end_ms),
        marks=[(_ms(t), label) for t, label in marks],
        timing_error_ms=(_ms_float(timing.mean_s), _ms_float(timing.max_s)),
        lost_slots=lost_slots,
        slow_slots=slow_slots,
        end_ms=end_ms,
    )


def _at(t: float, attack_start: float) -> str:
    """A time as an offset from the attack start: "+1.20 s" or "-0.30 s"."""
    return f"{t - attack_start:+.2f} s"


def _waited_into(s: Sample, attack_start: float, probe_timeout_s: float) -> bool:
    """A probe that started before the attack and was still waiting for its answer when the
    attack began: a silence the attack may have caused."""
    return s.status == MISSING and s.t < attack_start < s.t + probe_timeout_s


def _outages(samples: Sequence[Sample], attack_start: float, last_t: float,
             probe_timeout_s: float = 0.0) -> list[tuple[Sample, float]]:
    """Runs of MISSING samples at or after the attack start (or started before it and still
    waiting when it began): (first sample, time answering resumed).

    A run ends at the next sample that got any answer (right or wrong); a run still going at
    the end lasts until one interval after the last sample (`last_t`).
    """
    runs: list[tuple[Sample, float]] = []
    first: Sample | None = None
    for s in samples:
        if s.t < attack_start and not _waited_into(s, attack_start, probe_timeout_s):
            continue
        if s.status == MISSING:
            if first is None:
                first = s
        elif first is not None:
            runs.append((first, s.t))
            first = None
    if first is not None:
        runs.append((first, last_t))
    return runs


def compact_timeline(entries: list[tuple[int, str]], end_ms: int, cap: int = TIMELINE_CAP) -> list[tuple[int, str]]:
    """At most `cap` (ms, code) entries, each holding until the next (see LivenessReport)."""
    if len(entries) <= cap:
        return list(entries)
    runs = _merge_runs(entries)
    if len(runs) <= cap:
        return runs
    first_ms = entries[0][0]
    span = max(end_ms - first_ms, 1)
    buckets: dict[int, str] = {}
    # each entry covers [its t, next t); give every bucket the worst code that touches it
    bounds = [t for t, _ in entries[1:]] + [max(end_ms, entries[-1][0] + 1)]
    for (t, code), until in zip(entries, bounds):
        lo = (t - first_ms) * cap // span
        hi = max(lo, (until - 1 - first_ms) * cap // span)
        for b in range(max(lo, 0), min(hi, cap - 1) + 1):
            if b not in buckets or _SEVERITY[code] > _SEVERITY[buckets[b]]:
                buckets[b] = code
    bucketed = [(first_ms + b * span // cap, buckets[b]) for b in sorted(buckets)]
    return _merge_runs(bucketed)


def _merge_runs(entries: list[tuple[int, str]]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for t, code in entries:
        if not out or out[-1][1] != code:
            out.append((t, code))
    return out


__all__ = [
    "MISSING",
    "OK",
    "WRONG",
    "Counts",
    "LivenessMonitor",
    "LivenessReport",
    "Probe",
    "Sample",
    "TimingError",
    "compact_timeline",
    "judge",
    "plan_next_slot",
    "take_in_turn",
]
