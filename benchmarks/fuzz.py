"""Fuzzing speed: Hypothesis-generated Modbus ADUs beside a plain loop sending the same frames.

    .venv/bin/python benchmarks/fuzz.py [--examples 1500] [--batch 1] [--repeat 3] [--seed 6]
                                        [--interval-ms 50] [--reply-ms 1000] [--silence-ms 10]

The bundled simulator runs in its own process, loaded with the example profile.  Each run:

- fuzzer: a Hypothesis `@given(modbus_adus(unit, tables=<the profile's tables>))` test of
  EXAMPLES examples (database=None, deadline=None, generate phase only, seeded with SEED+run),
  whose body sends the frame with `harness.attacks.send_each` on a connection of its own (each
  example stands alone, as shrinking needs) and records what came back.  With --batch N an
  example is a list of N frames, each still sent on its own connection;
- plain loop: the very frames that run generated, sent again the same way by a for loop.

Both wait for a reply the same way: up to --reply-ms for a frame a conforming server must
answer (`FuzzFrame.expect_reply`), and a --silence-ms window for one it may ignore (a foreign
protocol id, a length field promising bytes that never come).  Those windows are a floor on
both loops' time (their share is shown), so the ratio fuzzer / plain measures what Hypothesis adds.
Goal: fuzzer >= 0.5x the plain loop.

A `harness.liveness.LivenessMonitor` (probe: `harness.liveness_modbus.modbus_probe` reading the
profile's read-only points) samples the simulator every --interval-ms during each loop and
for one idle second first; its timing error (how late probes start against their fixed
schedule) is shown for each, since the fuzzer and the monitor share this interpreter.

The table shows medians over --repeat runs, without warm-up beyond one small untimed fuzz run.
Nothing is asserted: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness.attacks import modbus_tcp_reply_length, send_each  # noqa: E402
from harness.liveness import LivenessMonitor  # noqa: E402
from harness.liveness_modbus import checks_from_profile, modbus_probe  # noqa: E402
from harness.peers.base import PeerProcess, python_argv, python_peer_env  # noqa: E402
from harness.profile import example_profile_path, load_profile  # noqa: E402
from harness.strategies.modbus import modbus_adus  # noqa: E402


@dataclass
class Tally:
    """What one loop saw; `add` is called once per frame."""

    frames: int = 0
    replies: int = 0
    silent_frames: int = 0  # frames the server may ignore (waited a silence window)
    silent_s: float = 0.0  # time spent on those frames
    unanswered: int = 0  # frames a conforming server must answer that got no reply
    closed: int = 0
    other_errors: dict[str, int] = field(default_factory=dict)

    def add(self, expect_reply: bool, outcome) -> None:
        self.frames += 1
        self.replies += outcome.reply is not None
        if not expect_reply:
            self.silent_frames += 1
            self.silent_s += outcome.elapsed_s
        self.closed += outcome.closed
        if expect_reply and outcome.reply is None:
            self.unanswered += 1
        if outcome.error and not outcome.error.startswith("timeout") and "mid-reply" not in outcome.error:
            key = outcome.error[:80]
            self.other_errors[key] = self.other_errors.get(key, 0) + 1


@dataclass
class Loop:
    seconds: float
    tally: Tally
    timing_ms: tuple[float, float]  # monitor timing error mean, max
    monitor_counts: str

    @property
    def rate(self) -> float:
        return self.tally.frames / self.seconds if self.seconds > 0 else 0.0


class Sender:
    """One frame through `send_each`, the wait chosen by whether a reply is required."""

    def __init__(self, host: str, port: int, reply_s: float, silence_s: float):
        self.host, self.port, self.reply_s, self.silence_s = host, port, reply_s, silence_s

    def __call__(self, frame, tally: Tally) -> None:
        wait = self.reply_s if frame.expect_reply else self.silence_s
        (outcome,) = send_each(self.host, self.port, [frame.data], reply_length=modbus_tcp_reply_length,
                               reply_timeout_s=wait, connect_timeout_s=2.0)
        tally.add(frame.expect_reply, outcome)


def monitored(probe_factory, interval_s: float, body) -> tuple[float, tuple[float, float], str]:
    """Run `body()` under a fresh liveness monitor: (seconds body took, timing error ms, counts)."""
    monitor = LivenessMonitor(probe_factory(), interval_s=interval_s, timeout_s=0.5)
    monitor.start()
    try:
        started = time.perf_counter()
        body()
        seconds = time.perf_counter() - started
    finally:
        monitor.stop()
    error = monitor.timing_error()
    samples = monitor.samples
    counts = {status: sum(1 for s in samples if s.status == status) for status in ("ok", "wrong", "missing")}
    summary = f"{counts['ok']} ok / {counts['wrong']} wrong / {counts['missing']} missing, {monitor.lost_slots} lost slots"
    return seconds, (error.mean_s * 1000, error.max_s * 1000), summary


def fuzz_loop(strategy, examples: int, batch: int, run_seed: int, send: Sender, collected: list, tally: Tally):
    """The Hypothesis test: one call = one fuzz run of `examples` examples of `batch` frames."""
    drawn = strategy if batch == 1 else st.lists(strategy, min_size=batch, max_size=batch)

    @seed(run_seed)
    @settings(max_examples=examples, database=None, deadline=None, derandomize=False,
              phases=(Phase.generate,), suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(drawn)
    def fuzz(example) -> None:
        for frame in [example] if batch == 1 else example:
            collected.append(frame)
            send(frame, tally)

    return fuzz


def plain_loop(frames: list, send: Sender, tally: Tally):
    def run() -> None:
        for frame in frames:
            send(frame, tally)

    return run


def start_simulator(profile_path: Path, unit: int) -> PeerProcess:
    argv = python_argv("simulators.modbus", str(profile_path), "--port", "0")
    return PeerProcess("simulator", argv, version="bundled", unit=unit, env=python_peer_env(), cwd=ROOT).start()


def hardware_note() -> str:
    try:
        load = "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "load average unknown"
    return f"hardware: nproc={os.cpu_count()}, {platform.system()} {platform.release()}, Python {platform.python_version()}, {load}"


def render(fuzz_runs: list[Loop], plain_runs: list[Loop], idle: tuple[float, float], idle_counts: str, args) -> str:
    def med(values):
        return statistics.median(values) if values else 0.0

    lines = []
    header = f"{'':12} {'frames/s':>9} {'s/run':>7} {'frames':>7} {'replies':>8} {'no reply*':>10} {'monitor err mean/max ms':>24}"
    lines.append(header)
    for name, runs in (("fuzzer", fuzz_runs), ("plain loop", plain_runs)):
        t = runs[-1].tally
        lines.append(
            f"{name:12} {med([r.rate for r in runs]):9.0f} {med([r.seconds for r in runs]):7.2f} {t.frames:7d} "
            f"{t.replies:8d} {t.unanswered:10d} "
            f"{med([r.timing_ms[0] for r in runs]):13.2f} / {med([r.timing_ms[1] for r in runs]):7.2f}"
        )
    lines.append(f"{'idle':12} {'':9} {'':7} {'':7} {'':8} {'':10} {idle[0]:13.2f} / {idle[1]:7.2f}")
    ratio = med([f.rate / p.rate for f, p in zip(fuzz_runs, plain_runs) if p.rate > 0])
    verdict = "meets" if ratio >= 0.5 else "misses"
    lines.append("")
    lines.append(f"fuzzer / plain loop: {ratio:.2f}x (median of the per-run ratios; {verdict} the goal of >= 0.5x)")
    t = plain_runs[-1].tally
    lines.append(
        f"silence windows: {t.silent_frames} of {t.frames} frames may go unanswered and wait up to {args.silence_ms:g} ms "
        f"(less when the server closes); the last plain run spent {t.silent_s:.2f} of {plain_runs[-1].seconds:.2f} s on them"
    )
    lines.append(
        f"liveness monitor every {args.interval_ms:g} ms (last fuzz run: {fuzz_runs[-1].monitor_counts}; "
        f"idle second: {idle_counts})"
    )
    lines.append("* no reply to a frame a conforming server must answer (a finding, should be 0)")
    others = {}
    for run in fuzz_runs + plain_runs:
        for why, n in run.tally.other_errors.items():
            others[why] = others.get(why, 0) + n
    for why, n in sorted(others.items(), key=lambda item: -item[1])[:5]:
        lines.append(f"  other send_each errors: {n} x {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1500, help="Hypothesis examples per fuzz run (default 1500)")
    parser.add_argument("--repeat", type=int, default=3, help="fuzz + plain runs; medians shown (default 3)")
    parser.add_argument("--seed", type=int, default=6, help="Hypothesis seed of the first run; run i uses seed + i (default 6)")
    parser.add_argument("--batch", type=int, default=1,
                        help="frames per Hypothesis example (default 1; more spreads Hypothesis's per-example cost)")
    parser.add_argument("--interval-ms", type=float, default=50.0, help="liveness monitor interval (default 50)")
    parser.add_argument("--reply-ms", type=float, default=1000.0, help="wait for a required reply (default 1000)")
    parser.add_argument("--silence-ms", type=float, default=10.0, help="wait after a frame the server may ignore (default 10)")
    parser.add_argument("--profile", type=Path, default=example_profile_path(), help="device profile")
    args = parser.parse_args(argv)

    t_start = time.monotonic()
    profile = load_profile(args.profile)
    unit = profile.modbus.unit_id
    tables = {table.value: (span.start, span.count) for table, span in profile.modbus.tables.items()}
    strategy = modbus_adus(unit, tables=tables)
    checks = checks_from_profile(profile)
    interval_s = args.interval_ms / 1000

    per = f" of {args.batch} frames" if args.batch > 1 else ""
    print(f"Fuzzing speed: modbus_adus(unit={unit}, tables of {profile.name}), {args.examples} examples{per} per run, "
          f"seeds {args.seed}..{args.seed + args.repeat - 1}, median of {args.repeat} runs")
    print(hardware_note())
    print()
    with start_simulator(args.profile, unit) as peer:
        send = Sender(peer.host, peer.port, args.reply_ms / 1000, args.silence_ms / 1000)

        def probe_factory():
            return modbus_probe(peer.host, peer.port, unit, checks)

        fuzz_loop(strategy, 50, 1, args.seed - 1, send, [], Tally())()  # warm-up: imports, caches, the simulator
        _, idle, idle_counts = monitored(probe_factory, interval_s, lambda: time.sleep(1.0))
        fuzz_runs: list[Loop] = []
        plain_runs: list[Loop] = []
        for run in range(args.repeat):
            frames: list = []
            tally = Tally()
            seconds, timing, counts = monitored(probe_factory, interval_s,
                                                fuzz_loop(strategy, args.examples, args.batch, args.seed + run, send,
                                                          frames, tally))
            fuzz_runs.append(Loop(seconds, tally, timing, counts))
            tally = Tally()
            seconds, timing, counts = monitored(probe_factory, interval_s, plain_loop(frames, send, tally))
            plain_runs.append(Loop(seconds, tally, timing, counts))
        if not peer.running:
            print("the simulator exited during the benchmark: the numbers above are not comparable")
    print(render(fuzz_runs, plain_runs, idle, idle_counts, args))
    print(f"benchmark wall time: {time.monotonic() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
