"""The per-case part of a report's view: result rows, the annex entries and their frame traces.

Functions here take one case dict of results.json and tolerate anything missing or malformed
(an interrupted run, a hand-written file).  Nothing is escaped here; the template does that.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.model import CaseResult, Level, Verdict

from .i18n import N_

VERDICT_ORDER = [Verdict.FAIL, Verdict.ERROR, Verdict.INCONCLUSIVE, Verdict.PASS, Verdict.NOT_APPLICABLE]
LEVEL_ORDER = [Level.MUST, Level.SHOULD, Level.MAY]
VERDICT_LABELS = {
    "PASS": N_("Pass"),
    "FAIL": N_("Fail"),
    "ERROR": N_("Error"),
    "INCONCLUSIVE": N_("Inconclusive"),
    "NOT_APPLICABLE": N_("Not applicable"),
    "NOT_TESTED": N_("Not tested"),
}
VERDICT_CSS = {"PASS": "v-pass", "FAIL": "v-fail", "ERROR": "v-error", "INCONCLUSIVE": "v-inconclusive",
               "NOT_APPLICABLE": "v-na", "NOT_TESTED": "v-untested"}
# A flood or garbage test can record frames of many kilobytes; the pcap keeps them whole.
MAX_HEX_BYTES = 512
# Above this many cases, passing cases get no annex entry (their table row cites the pcap
# frames instead), which keeps a 10,000-case report under 5 MB; failures always get one.
FULL_ANNEX_LIMIT = 2000

Gettext = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class FrameRow:
    index: int
    direction: str  # "tx" or "rx" (or whatever the data said)
    arrow: str
    label: str
    t_ms: str
    size: int
    hex: str
    hex_omitted: int  # bytes not shown
    summary: str
    conn: str


@dataclass(frozen=True, slots=True)
class CaseRow:
    anchor: str
    id: str
    title: str
    suite: str
    requirements: list[str]
    level: str
    clause: str
    verdict: str
    verdict_label: str
    verdict_css: str
    message: str
    duration: str
    nodeid: str
    expected: str
    observed: str
    notes: list[str]
    frames: list[FrameRow]
    connections: list[str]  # the frames' connections, in order of first use
    pcap_frames: str  # "12-15, 18": the case's packets in capture.pcap
    pcap_filter: str  # a tshark display filter selecting them
    failed: bool  # FAIL, ERROR, INCONCLUSIVE or unknown: the reader needs to see why
    in_annex: bool
    robustness: Any = None  # view_robustness.RobustnessView for a robustness case


def text(value: Any) -> str:
    if type(value) is str:  # the common case, first: a large run calls this 200,000 times
        return value
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def verdict_css(verdict: str) -> str:
    return VERDICT_CSS.get(verdict, "v-unknown")


def as_case_result(data: Mapping[str, Any]) -> CaseResult:
    """A CaseResult for the roll-up; an unknown verdict counts as ERROR, an unknown level as MUST
    (both are harness bugs, and neither may make a run look better than it was)."""
    verdict = data.get("verdict")
    level = data.get("level")
    return CaseResult(
        id=text(data.get("id")),
        title=text(data.get("title")),
        suite=text(data.get("suite")) or "(none)",
        requirements=[text(r) for r in requirement_list(data)],
        level=Level(level) if level in _LEVELS else Level.MUST,
        clause="",
        verdict=Verdict(verdict) if verdict in _VERDICTS else Verdict.ERROR,
    )


_LEVELS = {lv.value for lv in Level}
_VERDICTS = {v.value for v in Verdict}


def requirement_list(data: Mapping[str, Any]) -> list:
    requirements = data.get("requirements") or []
    return [requirements] if isinstance(requirements, str) else list(requirements)


def format_hex(data_hex: str, limit: int = MAX_HEX_BYTES) -> tuple[str, int, int]:
    """("00 01 02 ...", bytes omitted, total bytes) for a hex string; odd or bad input is shown as is."""
    clean = "".join(text(data_hex).split())
    if len(clean) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", clean):
        return clean[: limit * 2], max(0, (len(clean) - limit * 2) // 2), len(clean) // 2
    size = len(clean) // 2
    shown = min(size, limit)
    return " ".join(clean[i : i + 2] for i in range(0, shown * 2, 2)).lower(), size - shown, size


def frame_rows(frames: list[Any], _: Gettext, *, with_hex: bool = True) -> list[FrameRow]:
    frames = [f for f in frames if isinstance(f, Mapping)]
    times = [number(f.get("t_mono")) for f in frames]
    if any(t is None for t in times):
        times = [number(f.get("t_wall")) for f in frames]
    t0 = next((t for t in times if t is not None), None)
    labels = {"tx": ("→", _("harness → device")), "rx": ("←", _("device → harness"))}
    rows = []
    for index, (frame, t) in enumerate(zip(frames, times), start=1):
        direction = text(frame.get("direction"))
        arrow, label = labels.get(direction, ("·", direction or "?"))
        hex_text, omitted, size = format_hex(frame.get("hex", "")) if with_hex else ("", 0, len(text(frame.get("hex"))) // 2)
        rows.append(FrameRow(
            index=index, direction=direction, arrow=arrow, label=label,
            t_ms=f"+{(t - t0) * 1000:.3f}" if t is not None and t0 is not None else "",
            size=size, hex=hex_text, hex_omitted=omitted, summary=text(frame.get("summary")), conn=text(frame.get("conn")),
        ))
    return rows


def format_duration(seconds: Any) -> str:
    s = number(seconds)
    if s is None:
        return ""
    if s < 1:
        return f"{s * 1000:.1f} ms"
    if s < 120:
        return f"{s:.2f} s"
    return f"{int(s // 60)} min {s % 60:.0f} s"


def frame_ranges(numbers: Any) -> tuple[str, str]:
    """[12, 13, 14, 18] -> ("12-14, 18", "frame.number in {12..14 18}"); a string is passed through."""
    if isinstance(numbers, str):
        return numbers, ""
    if type(numbers) is list and numbers and type(numbers[0]) is int \
            and all(type(b) is int and b - a == 1 for a, b in zip(numbers, numbers[1:])):
        first, last = numbers[0], numbers[-1]  # the usual shape: one run of packets
        return (str(first), f"frame.number == {first}") if first == last else \
            (f"{first}-{last}", f"frame.number in {{{first}..{last}}}")
    try:
        nums = sorted({int(n) for n in numbers or []})
    except (TypeError, ValueError):
        return "", ""
    spans, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        spans.append((nums[i], nums[j]))
        i = j + 1
    shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    members = " ".join(str(a) if a == b else f"{a}..{b}" for a, b in spans)
    return shown, (f"frame.number in {{{members}}}" if spans else "")


def anchor(index: int) -> str:
    """The id of a case's annex entry: short, because every link to the case repeats it."""
    return f"case-{index}"


def robustness_view(evidence, _):
    from .view_robustness import robustness_view as view  # imports charts, which imports this module

    return view(evidence, _)


def case_row(index: int, data: Mapping[str, Any], pcap_frames: Mapping[str, Any], _: Gettext, *, full_annex: bool,
             labels: Mapping[str, str] | None = None) -> CaseRow:
    labels = labels if labels is not None else {v: _(label) for v, label in VERDICT_LABELS.items()}
    verdict = text(data.get("verdict")) or "ERROR"
    evidence = mapping(data.get("evidence"))
    notes = evidence.get("notes") or []
    if isinstance(notes, str):
        notes = [notes]
    case_id = text(data.get("id"))
    failed = verdict not in ("PASS", "NOT_APPLICABLE")
    in_annex = failed or full_annex
    frames = evidence.get("frames") if isinstance(evidence.get("frames"), list) else []
    shown, tshark = frame_ranges(pcap_frames.get(case_id)) if case_id in pcap_frames else ("", "")
    trace = frame_rows(frames, _, with_hex=failed) if in_annex else []
    return CaseRow(
        anchor=anchor(index),
        id=case_id,
        title=text(data.get("title")),
        suite=text(data.get("suite")),
        requirements=[text(r) for r in requirement_list(data)],
        level=text(data.get("level")),
        clause=text(data.get("clause")),
        verdict=verdict,
        verdict_label=labels.get(verdict, verdict),
        verdict_css=verdict_css(verdict),
        message=text(data.get("message")),
        duration=format_duration(data.get("duration_s")),
        nodeid=text(data.get("nodeid")),
        expected=text(evidence.get("expected")),
        observed=text(evidence.get("observed")),
        notes=[text(n) for n in notes],
        # a passing case's trace is decoded text only; the bytes of a failure are evidence
        frames=trace,
        connections=list(dict.fromkeys(f.conn for f in trace if f.conn)),
        pcap_frames=shown,
        pcap_filter=tshark,
        failed=failed,
        in_annex=in_annex,
        robustness=robustness_view(evidence, _) if in_annex and (evidence.get("monitor") or evidence.get("attack")
                                                                  or evidence.get("replay")) else None,
    )


def sort_key(item: tuple[int, CaseRow]) -> tuple[int, int, int]:
    """Failures first, then errors, inconclusive, passes and not applicable; within a verdict
    MUST before SHOULD before MAY, then in run order."""
    index, row = item
    v_rank = _VERDICT_RANK.get(row.verdict, 1)  # unknown sits with ERROR
    l_rank = _LEVEL_RANK.get(row.level, 0)
    return v_rank, l_rank, index


_VERDICT_RANK = {v.value: i for i, v in enumerate(VERDICT_ORDER)}
_LEVEL_RANK = {lv.value: i for i, lv in enumerate(LEVEL_ORDER)}


def case_rows(raw_cases: list[Mapping[str, Any]], pcap_frames: Mapping[str, Any], _: Gettext) -> list[CaseRow]:
    full = len(raw_cases) <= FULL_ANNEX_LIMIT
    labels = {v: _(label) for v, label in VERDICT_LABELS.items()}
    rows = [case_row(i, c, pcap_frames, _, full_annex=full, labels=labels) for i, c in enumerate(raw_cases)]
    return [row for _i, row in sorted(enumerate(rows), key=sort_key)]
