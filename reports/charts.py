"""Geometry of the report's inline SVG charts: verdicts per suite, and the device's latency.

The charts are computed here as plain numbers and drawn by the template, so every label goes
through autoescaping like any other text; there is no SVG built as a string.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .view_cases import VERDICT_ORDER, Gettext, VERDICT_LABELS, mapping, number, verdict_css

BAR_WIDTH = 1000  # viewBox units of a verdict bar
# Latency bin edges in milliseconds (a 1-2-5 series): device answers range from tens of
# microseconds (a simulator on loopback) to seconds (a slow gateway).
LATENCY_EDGES_MS = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
HIST_HEIGHT = 120


@dataclass(frozen=True, slots=True)
class Segment:
    x: float
    width: float
    css: str
    count: int
    label: str


@dataclass(frozen=True, slots=True)
class SuiteBar:
    suite: str
    total: int
    segments: list[Segment]


@dataclass(frozen=True, slots=True)
class HistogramBin:
    x: int
    height: float
    count: int
    label: str  # "0.1-0.2 ms"


@dataclass(frozen=True, slots=True)
class LatencyChart:
    bins: list[HistogramBin]
    samples: int
    median_ms: str
    p95_ms: str
    max_ms: str


def verdict_bars(counts_by_suite: Mapping[str, Mapping[str, int]], _: Gettext) -> list[SuiteBar]:
    bars = []
    for suite, counts in counts_by_suite.items():
        total = sum(int(counts.get(v.value, 0)) for v in VERDICT_ORDER)
        x, segments = 0.0, []
        for v in VERDICT_ORDER:
            count = int(counts.get(v.value, 0))
            if not count:
                continue
            width = BAR_WIDTH * count / total
            segments.append(Segment(round(x, 2), round(width, 2), verdict_css(v.value), count, _(VERDICT_LABELS[v.value])))
            x += width
        bars.append(SuiteBar(suite, total, segments))
    return bars


def response_latencies_ms(raw_cases: list[Mapping[str, Any]]) -> list[float]:
    """Device response times: each received frame against the oldest unanswered frame sent on
    the same connection (requests and responses pair in order, pipelined or not)."""
    latencies = []
    for case in raw_cases:
        frames = mapping(case.get("evidence")).get("frames")
        if not isinstance(frames, list):
            continue
        pending: dict[str, list[float]] = {}
        for frame in frames:
            if not isinstance(frame, Mapping):
                continue
            t = number(frame.get("t_mono"))
            if t is None:
                continue
            conn = str(frame.get("conn", ""))
            if frame.get("direction") == "tx":
                pending.setdefault(conn, []).append(t)
            elif frame.get("direction") == "rx" and pending.get(conn):
                sent = pending[conn].pop(0)
                if t >= sent:
                    latencies.append((t - sent) * 1000.0)
    return latencies


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 1 else (f"{value:.2f}" if value < 100 else f"{value:.0f}")


def latency_chart(raw_cases: list[Mapping[str, Any]], _: Gettext) -> LatencyChart | None:
    latencies = sorted(response_latencies_ms(raw_cases))
    if not latencies:
        return None
    counts = [0] * (len(LATENCY_EDGES_MS) + 1)
    for value in latencies:
        counts[bisect.bisect_left(LATENCY_EDGES_MS, value)] += 1
    # drop empty bins at both ends, keep the ones between
    first = next(i for i, c in enumerate(counts) if c)
    last = max(i for i, c in enumerate(counts) if c)
    peak = max(counts)
    bins = []
    for slot, i in enumerate(range(first, last + 1)):
        low = LATENCY_EDGES_MS[i - 1] if i > 0 else 0
        label = f"≥ {low:g} ms" if i == len(LATENCY_EDGES_MS) else f"{low:g}–{LATENCY_EDGES_MS[i]:g} ms"
        bins.append(HistogramBin(slot, round(HIST_HEIGHT * counts[i] / peak, 2), counts[i], label))
    n = len(latencies)
    return LatencyChart(bins, n, _ms(latencies[n // 2]), _ms(latencies[min(n - 1, int(n * 0.95))]), _ms(latencies[-1]))


STRIP_WIDTH = 1000  # viewBox units of a monitor strip
_STRIP_CSS = {"o": "m-ok", "w": "m-wrong", "m": "m-missing"}


@dataclass(frozen=True, slots=True)
class StripSegment:
    x: float
    width: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class MonitorStrip:
    """The liveness monitor's timeline of one attack: answered / wrong / missing over time."""

    segments: list[StripSegment]
    attack_x: float
    attack_width: float
    span_ms: int


def monitor_strip(monitor: Mapping[str, Any], labels: Mapping[str, str]) -> MonitorStrip | None:
    """Geometry of the strip from a case's evidence["monitor"] (harness.liveness.LivenessReport.to_dict);
    consecutive entries of one status are drawn as one segment."""
    timeline = [entry for entry in monitor.get("timeline") or [] if isinstance(entry, (list, tuple)) and len(entry) == 2]
    if not timeline:
        return None
    start = number(timeline[0][0]) or 0.0
    end = max(number(monitor.get("end_ms")) or 0.0, (number(timeline[-1][0]) or 0.0) + 1)
    span = max(end - start, 1.0)
    runs: list[list] = []
    for t, code in timeline:
        t = number(t)
        if t is None:
            continue
        if runs and runs[-1][1] == code:
            continue
        runs.append([t, code])
    segments = []
    for i, (t, code) in enumerate(runs):
        until = runs[i + 1][0] if i + 1 < len(runs) else end
        x = STRIP_WIDTH * (t - start) / span
        width = max(STRIP_WIDTH * (until - t) / span, 0.5)
        title = f"{labels.get(code, code)}: {t - start:.0f}–{until - start:.0f} ms"
        segments.append(StripSegment(round(x, 2), round(width, 2), _STRIP_CSS.get(code, "m-missing"), title))
    attack = monitor.get("attack_ms") or [start, start]
    a0, a1 = (number(attack[0]) or start), (number(attack[1]) or start)
    return MonitorStrip(segments, round(STRIP_WIDTH * (a0 - start) / span, 2),
                        round(max(STRIP_WIDTH * (a1 - a0) / span, 1), 2), int(span))
