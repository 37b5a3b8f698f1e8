"""Turn a `results.json` dict into a plain view model that templates render without logic.

`build_view(results)` tolerates partial input: any of run/target/profile/dut/capture may be
missing or null (an interrupted run, a hand-written file), and a case dict may lack optional
fields.  The overall verdict and the counts are recomputed from the cases with
`harness.verdict`, so what the report shows always agrees with the rows it lists.

Cases are ordered for reading: failures first, then errors, inconclusive, passes and not
applicable; within a verdict MUST before SHOULD before MAY, then in run order.

No pytest import here, and nothing escapes HTML: the template does that (autoescape).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.model import CaseResult, Level, Verdict
from harness.requirements import CatalogueError, suite_catalogue
from harness.verdict import profile_verdicts, summarize

VERDICT_ORDER = [Verdict.FAIL, Verdict.ERROR, Verdict.INCONCLUSIVE, Verdict.PASS, Verdict.NOT_APPLICABLE]
LEVEL_ORDER = [Level.MUST, Level.SHOULD, Level.MAY]
VERDICT_LABELS = {
    "PASS": "Pass",
    "FAIL": "Fail",
    "ERROR": "Error",
    "INCONCLUSIVE": "Inconclusive",
    "NOT_APPLICABLE": "Not applicable",
}
OVERALL_LABELS = {
    "COMPLIANT": "Compliant",
    "CONDITIONALLY_COMPLIANT": "Conditionally compliant",
    "NOT_COMPLIANT": "Not compliant",
    "INCOMPLETE": "Incomplete",
}
OVERALL_EXPLANATIONS = {
    "COMPLIANT": "All MUST and SHOULD cases pass.",
    "CONDITIONALLY_COMPLIANT": "All MUST cases pass; some SHOULD cases fail.",
    "NOT_COMPLIANT": "At least one MUST case fails.",
    "INCOMPLETE": "A MUST case ended in ERROR or INCONCLUSIVE, or nothing was tested.",
}
# A flood or garbage test can record frames of many kilobytes; the pcap keeps them whole.
MAX_HEX_BYTES = 512

# Profile device fields and Modbus Device Identification object names that mean the same thing.
_IDENTITY_ALIASES = {"majorminorrevision": "revision"}
_IDENTITY_LABELS = {
    "vendorname": "Vendor name",
    "productcode": "Product code",
    "revision": "Revision",
    "vendorurl": "Vendor URL",
    "productname": "Product name",
    "modelname": "Model name",
    "userapplicationname": "User application name",
}
_PASSWORD_IN_URL = re.compile(r"(//[^/@:\s]*:)[^/@\s]*@")
_PASSWORD_PARAM = re.compile(r"(?i)([?&](?:password|passwd|pass|pwd|secret|token)=)[^&#\s]*")


@dataclass(frozen=True)
class CountCell:
    verdict: str
    label: str
    css: str
    count: int


@dataclass(frozen=True)
class LevelRow:
    level: str
    counts: list[CountCell]
    total: int


@dataclass(frozen=True)
class SuiteRow:
    name: str
    overall: str
    overall_label: str
    overall_css: str
    counts: list[CountCell]
    catalogued: int | None
    tested: int | None


@dataclass(frozen=True)
class ProfileRow:
    """The overall verdict for one claimed server profile (or a profile it includes)."""

    name: str
    title: str
    clause: str
    claimed: bool
    overall: str
    overall_label: str
    overall_css: str
    counts: list[CountCell]


@dataclass(frozen=True)
class MatrixCell:
    """One (client, server) pair: passed / total decided, linking to its first failing case."""

    text: str
    title: str
    css: str
    link: str


@dataclass(frozen=True)
class MatrixView:
    servers: list[str]
    rows: list[tuple[str, list[MatrixCell]]]  # (client, one cell per server)


@dataclass(frozen=True)
class IdentityRow:
    label: str
    declared: str
    read: str
    mismatch: bool


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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
    show_evidence: bool
    expected: str
    observed: str
    notes: list[str]
    frames: list[FrameRow]
    pcap_frames: str


@dataclass(frozen=True)
class ReportView:
    title: str
    device_name: str
    run_id: str
    status: str
    partial: bool
    start: str
    end: str
    elapsed: str
    command: str
    seed: str
    versions: list[KeyValue]
    target_url: str
    protocol: str
    profile_source: str
    dut_source: str
    identity: list[IdentityRow]
    claims: list[KeyValue]
    overall: str
    overall_label: str
    overall_css: str
    overall_explanation: str
    total: int
    counts: list[CountCell]
    by_level: list[LevelRow]
    suites: list[SuiteRow]
    profiles: list[ProfileRow]
    matrix: MatrixView | None
    cases: list[CaseRow]
    capture_file: str
    capture_note: str


def _matrix(raw_cases: list, rows: list[CaseRow]) -> MatrixView | None:
    """The interoperability grid, when the cases carry client and server tags."""
    anchors = {row.id: row.anchor for row in rows}
    cells: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for case in raw_cases:
        tags = _mapping(case.get("tags"))
        if "client" in tags and "server" in tags:
            cells.setdefault((str(tags["client"]), str(tags["server"])), []).append(case)
    if not cells:
        return None
    clients = sorted({c for c, _ in cells}, key=str.lower)
    servers = sorted({s for _, s in cells}, key=str.lower)
    grid = []
    for client in clients:
        line = []
        for server in servers:
            cases = cells.get((client, server), [])
            decided = [c for c in cases if c.get("verdict") != "NOT_APPLICABLE"]
            passed = sum(1 for c in decided if c.get("verdict") == "PASS")
            bad = [c for c in decided if c.get("verdict") != "PASS"]
            errors = any(c.get("verdict") == "ERROR" for c in bad)
            css = "v-na" if not decided else ("v-pass" if not bad else ("v-error" if errors and not passed else "v-fail"))
            names = ", ".join(str(c.get("id")) for c in bad[:6]) + (" ..." if len(bad) > 6 else "")
            title = f"{client} client, {server} server: {passed} of {len(decided)} scenarios pass" + (f"; not passing: {names}" if bad else "")
            link = f"#{anchors[bad[0]['id']]}" if bad and bad[0].get("id") in anchors else ""
            line.append(MatrixCell(f"{passed}/{len(decided)}" if decided else "n/a", title, css, link))
        grid.append((client, line))
    return MatrixView(servers, grid)


def _profile_rows(raw_cases: list, claims: Mapping[str, Any]) -> list[ProfileRow]:
    """Verdict per claimed profile, recomputed from the cases and the suite's catalogue."""
    rows: list[ProfileRow] = []
    for suite, suite_claims in claims.items():
        claimed = _mapping(suite_claims).get("profile")
        if not isinstance(claimed, str):
            continue
        try:
            catalogue = suite_catalogue(suite)
        except (OSError, CatalogueError):
            continue
        if claimed not in catalogue.profiles:
            continue
        cases = [_as_case_result(c) for c in raw_cases if c.get("suite") == suite]
        for name, p in profile_verdicts(cases, catalogue, claimed).items():
            rows.append(ProfileRow(name, p["title"], p["clause"], p["claimed"], p["overall"], OVERALL_LABELS[p["overall"]],
                                   overall_css(p["overall"]), _count_cells(p["counts"])))
    return rows


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def redact(text: str) -> str:
    """Remove passwords from URL-like text (DESIGN section 4: never in a report)."""
    return _PASSWORD_PARAM.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1***@", text))


def verdict_css(verdict: str) -> str:
    return {
        "PASS": "v-pass",
        "FAIL": "v-fail",
        "ERROR": "v-error",
        "INCONCLUSIVE": "v-inconclusive",
        "NOT_APPLICABLE": "v-na",
    }.get(verdict, "v-unknown")


def overall_css(overall: str) -> str:
    return {
        "COMPLIANT": "o-compliant",
        "CONDITIONALLY_COMPLIANT": "o-conditional",
        "NOT_COMPLIANT": "o-not-compliant",
        "INCOMPLETE": "o-incomplete",
    }.get(overall, "o-incomplete")


def _count_cells(counts: Mapping[str, int]) -> list[CountCell]:
    return [
        CountCell(v.value, VERDICT_LABELS[v.value], verdict_css(v.value), int(counts.get(v.value, 0)))
        for v in VERDICT_ORDER
    ]


def _as_case_result(data: Mapping[str, Any]) -> CaseResult:
    """A CaseResult for the roll-up; an unknown verdict counts as ERROR, an unknown level as MUST
    (both are harness bugs, and neither may make a run look better than it was)."""
    verdict = data.get("verdict")
    level = data.get("level")
    return CaseResult(
        id=_text(data.get("id")),
        title=_text(data.get("title")),
        suite=_text(data.get("suite")) or "(none)",
        requirements=[],
        level=Level(level) if level in {lv.value for lv in Level} else Level.MUST,
        clause="",
        verdict=Verdict(verdict) if verdict in {v.value for v in Verdict} else Verdict.ERROR,
    )


def format_hex(data_hex: str, limit: int = MAX_HEX_BYTES) -> tuple[str, int, int]:
    """("00 01 02 ...", bytes omitted, total bytes) for a hex string; odd or bad input is shown as is."""
    clean = "".join(_text(data_hex).split())
    if len(clean) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", clean):
        return clean[: limit * 2], max(0, (len(clean) - limit * 2) // 2), len(clean) // 2
    size = len(clean) // 2
    shown = min(size, limit)
    return " ".join(clean[i : i + 2] for i in range(0, shown * 2, 2)).lower(), size - shown, size


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _frames(frames: list[Any]) -> list[FrameRow]:
    frames = [f for f in frames if isinstance(f, Mapping)]
    times = [_number(f.get("t_mono")) for f in frames]
    if any(t is None for t in times):
        times = [_number(f.get("t_wall")) for f in frames]
    t0 = next((t for t in times if t is not None), None)
    rows = []
    for index, (frame, t) in enumerate(zip(frames, times), start=1):
        direction = _text(frame.get("direction"))
        arrow, label = {"tx": ("→", "harness → device"), "rx": ("←", "device → harness")}.get(
            direction, ("·", direction or "?")
        )
        hex_text, omitted, size = format_hex(frame.get("hex", ""))
        rows.append(
            FrameRow(
                index=index,
                direction=direction,
                arrow=arrow,
                label=label,
                t_ms=f"+{(t - t0) * 1000:.3f}" if t is not None and t0 is not None else "",
                size=size,
                hex=hex_text,
                hex_omitted=omitted,
                summary=_text(frame.get("summary")),
                conn=_text(frame.get("conn")),
            )
        )
    return rows


def format_duration(seconds: Any) -> str:
    s = _number(seconds)
    if s is None:
        return ""
    if s < 1:
        return f"{s * 1000:.1f} ms"
    if s < 120:
        return f"{s:.2f} s"
    return f"{int(s // 60)} min {s % 60:.0f} s"


def frame_ranges(numbers: Any) -> str:
    """[12, 13, 14, 18] -> "12-14, 18"; a string is passed through."""
    if isinstance(numbers, str):
        return numbers
    try:
        nums = sorted({int(n) for n in numbers or []})
    except (TypeError, ValueError):
        return ""
    parts, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ", ".join(parts)


def _anchor(case_id: str, index: int) -> str:
    return f"case-{index}-" + re.sub(r"[^A-Za-z0-9_-]+", "_", case_id)[:80]


def _case_row(index: int, data: Mapping[str, Any], pcap_frames: Mapping[str, Any]) -> CaseRow:
    verdict = _text(data.get("verdict")) or "ERROR"
    evidence = _mapping(data.get("evidence"))
    requirements = data.get("requirements") or []
    if isinstance(requirements, str):
        requirements = [requirements]
    notes = evidence.get("notes") or []
    if isinstance(notes, str):
        notes = [notes]
    case_id = _text(data.get("id"))
    frames = evidence.get("frames") if isinstance(evidence.get("frames"), list) else []
    return CaseRow(
        anchor=_anchor(case_id, index),
        id=case_id,
        title=_text(data.get("title")),
        suite=_text(data.get("suite")),
        requirements=[_text(r) for r in requirements],
        level=_text(data.get("level")),
        clause=_text(data.get("clause")),
        verdict=verdict,
        verdict_label=VERDICT_LABELS.get(verdict, verdict),
        verdict_css=verdict_css(verdict),
        message=_text(data.get("message")),
        duration=format_duration(data.get("duration_s")),
        nodeid=_text(data.get("nodeid")),
        # FAIL, ERROR, INCONCLUSIVE, and anything unknown: the reader needs to see why.
        show_evidence=verdict not in ("PASS", "NOT_APPLICABLE"),
        expected=_text(evidence.get("expected")),
        observed=_text(evidence.get("observed")),
        notes=[_text(n) for n in notes],
        frames=_frames(frames),
        pcap_frames=frame_ranges(pcap_frames.get(case_id)) if case_id in pcap_frames else "",
    )


def _sort_key(item: tuple[int, CaseRow]) -> tuple[int, int, int]:
    index, row = item
    verdicts = [v.value for v in VERDICT_ORDER]
    levels = [lv.value for lv in LEVEL_ORDER]
    v_rank = verdicts.index(row.verdict) if row.verdict in verdicts else 1  # unknown sits with ERROR
    l_rank = levels.index(row.level) if row.level in levels else 0
    return v_rank, l_rank, index


def _norm(key: str) -> str:
    k = re.sub(r"[^a-z0-9]", "", key.lower())
    return _IDENTITY_ALIASES.get(k, k)


def _identity(declared: Mapping[str, Any], read: Mapping[str, Any]) -> list[IdentityRow]:
    keys: dict[str, str] = {}
    for key in list(declared) + list(read):
        n = _norm(str(key))
        keys.setdefault(n, _IDENTITY_LABELS.get(n, str(key)))
    by_norm_declared = {_norm(str(k)): _text(v) for k, v in declared.items()}
    by_norm_read = {_norm(str(k)): _text(v) for k, v in read.items()}
    rows = []
    for n, label in keys.items():
        d, r = by_norm_declared.get(n, ""), by_norm_read.get(n, "")
        rows.append(IdentityRow(label, d, r, bool(d and r and d.strip() != r.strip())))
    return rows


def _elapsed(start: str, end: str) -> str:
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
        return format_duration((b - a).total_seconds())
    except (ValueError, TypeError, AttributeError):
        return ""


def build_view(results: Mapping[str, Any]) -> ReportView:
    """The view model of one run, from its results.json dict."""
    results = _mapping(results)
    run = _mapping(results.get("run"))
    target = _mapping(results.get("target"))
    profile = _mapping(results.get("profile"))
    dut = _mapping(results.get("dut"))
    capture = _mapping(results.get("capture"))
    summary_in = _mapping(results.get("summary"))
    raw_cases = [c for c in (results.get("cases") or []) if isinstance(c, Mapping)]

    # {case id: [pcap frame numbers]} as harness.transport.pcap.write_pcap returns it
    pcap_frames = _mapping(capture.get("frames")) or _mapping(capture.get("frames_by_case"))
    rows = [_case_row(i, c, pcap_frames) for i, c in enumerate(raw_cases)]
    rows = [row for _, row in sorted(enumerate(rows), key=_sort_key)]

    summary = summarize(_as_case_result(c) for c in raw_cases)
    coverage = _mapping(summary_in.get("coverage"))
    suites = []
    for name, s in summary["suites"].items():
        cov = _mapping(coverage.get(name))
        suites.append(
            SuiteRow(
                name=name,
                overall=s["overall"],
                overall_label=OVERALL_LABELS[s["overall"]],
                overall_css=overall_css(s["overall"]),
                counts=_count_cells(s["counts"]),
                catalogued=cov.get("catalogued") if isinstance(cov.get("catalogued"), int) else None,
                tested=cov.get("tested") if isinstance(cov.get("tested"), int) else None,
            )
        )
    by_level = [
        LevelRow(lv.value, _count_cells(summary["by_level"][lv.value]), sum(summary["by_level"][lv.value].values()))
        for lv in LEVEL_ORDER
    ]

    declared = _mapping(profile.get("device"))
    read = _mapping(dut.get("objects"))
    identity = _identity(declared, read)

    def ident(*names: str) -> str:
        for row in identity:
            if row.label in names:
                return row.read or row.declared
        return ""

    device_name = " ".join(x for x in (ident("Vendor name"), ident("Product name") or ident("Product code")) if x)
    status = _text(run.get("status")) or "unknown"
    start, end = _text(run.get("start")), _text(run.get("end"))
    overall = summary["overall"]
    return ReportView(
        title=f"Compatibility test report: {device_name}" if device_name else "Compatibility test report",
        device_name=device_name,
        run_id=_text(run.get("id")),
        status=status,
        partial=status != "finished",
        start=start,
        end=end,
        elapsed=_elapsed(start, end) if start and end else "",
        command=redact(_text(run.get("command"))),
        seed=_text(run.get("seed")),
        versions=[KeyValue(str(k), _text(v)) for k, v in _mapping(run.get("versions")).items()],
        target_url=redact(_text(target.get("url"))),
        protocol=_text(target.get("protocol")),
        profile_source=_text(profile.get("source")),
        dut_source=_text(dut.get("source")),
        identity=identity,
        claims=[KeyValue(str(k), _text(v)) for k, v in _mapping(profile.get("claims")).items()],
        overall=overall,
        overall_label=OVERALL_LABELS[overall],
        overall_css=overall_css(overall),
        overall_explanation=OVERALL_EXPLANATIONS[overall],
        total=len(raw_cases),
        counts=_count_cells(summary["counts"]),
        by_level=by_level,
        suites=suites,
        profiles=_profile_rows(raw_cases, _mapping(profile.get("claims"))),
        matrix=_matrix(raw_cases, rows),
        cases=rows,
        capture_file=_text(capture.get("file")),
        capture_note=_text(capture.get("note")),
    )
