"""What changed between two runs of a device: per case id, verdict changes (regressions first),
cases only one run has, and message-only changes.

    diff_runs(archive.results("latest~1"), archive.results("latest")).regressions

A pure function of two results documents (`harness runs diff`, and its HTML form in
reports/diff.py).  Standard library only, plus the result model and the device identity the
archive uses to group runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from .model import Level, Verdict
from .store import suites_of, device_identity

# How bad a verdict is for the device: a change to a higher rank is a regression.
# NOT_APPLICABLE ranks with PASS: the claims changed, the device did not get worse.
VERDICT_SEVERITY = {
    Verdict.PASS.value: 0,
    Verdict.NOT_APPLICABLE.value: 0,
    Verdict.INCONCLUSIVE.value: 1,
    Verdict.ERROR.value: 2,
    Verdict.FAIL.value: 3,
}
LEVEL_RANK = {Level.MUST.value: 0, Level.SHOULD.value: 1, Level.MAY.value: 2}


@dataclass(frozen=True)
class CaseChange:
    """A case in both runs whose verdict (or, in `message_changed`, only message) differs."""

    case_id: str
    title: str
    suite: str
    level: str
    before: str
    after: str
    message_before: str
    message_after: str

    @property
    def kind(self) -> str:
        """"regression" (worse for the device), "improvement", or "changed" (e.g. PASS <-> NOT_APPLICABLE)."""
        step = VERDICT_SEVERITY.get(self.after, 2) - VERDICT_SEVERITY.get(self.before, 2)
        return "regression" if step > 0 else "improvement" if step < 0 else "changed"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind}


@dataclass(frozen=True)
class CaseEntry:
    """A case present in only one of the two runs."""

    case_id: str
    title: str
    suite: str
    level: str
    verdict: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunHeader:
    """What a diff shows about each of its two runs."""

    id: str
    start: str
    device_label: str
    device_key: str
    firmware: str
    overall: str
    target_url: str
    counts: dict[str, int]

    @classmethod
    def of(cls, results: Mapping[str, Any]) -> "RunHeader":
        run = results.get("run") or {}
        summary = results.get("summary") or {}
        identity = device_identity(results)
        return cls(str(run.get("id") or ""), str(run.get("start") or ""), identity.label, identity.key,
                   identity.firmware, str(summary.get("overall") or ""), str((results.get("target") or {}).get("url") or ""),
                   {str(k): int(v) for k, v in (summary.get("counts") or {}).items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunDiff:
    """Per case id, what changed from run `a` to run `b`."""

    a: RunHeader
    b: RunHeader
    verdict_changed: list[CaseChange]  # regressions first (worst first), then other changes, then improvements
    only_in_a: list[CaseEntry]
    only_in_b: list[CaseEntry]
    message_changed: list[CaseChange]  # same verdict, different message
    unchanged_count: int
    warnings: list[str]

    @property
    def regressions(self) -> list[CaseChange]:
        return [c for c in self.verdict_changed if c.kind == "regression"]

    @property
    def improvements(self) -> list[CaseChange]:
        return [c for c in self.verdict_changed if c.kind == "improvement"]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready), e.g. for `reports.diff.render_diff_html`."""
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "verdict_changed": [c.to_dict() for c in self.verdict_changed],
            "only_in_a": [c.to_dict() for c in self.only_in_a],
            "only_in_b": [c.to_dict() for c in self.only_in_b],
            "message_changed": [c.to_dict() for c in self.message_changed],
            "unchanged_count": self.unchanged_count,
            "regression_count": len(self.regressions),
            "improvement_count": len(self.improvements),
            "warnings": list(self.warnings),
        }


def _cases_by_id(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("id", "")): c for c in results.get("cases") or ()}


def _change_order(change: CaseChange) -> tuple:
    kind_rank = {"regression": 0, "changed": 1, "improvement": 2}[change.kind]
    after, before = VERDICT_SEVERITY.get(change.after, 2), VERDICT_SEVERITY.get(change.before, 2)
    if change.kind == "improvement":  # the biggest fix first: from FAIL before from INCONCLUSIVE
        return (kind_rank, -before, after, LEVEL_RANK.get(change.level, 3), change.case_id)
    return (kind_rank, -after, before, LEVEL_RANK.get(change.level, 3), change.case_id)


def diff_runs(a: Mapping[str, Any], b: Mapping[str, Any]) -> RunDiff:
    """What changed per case id from results document `a` to results document `b`."""
    cases_a, cases_b = _cases_by_id(a), _cases_by_id(b)
    changed, message_only, unchanged = [], [], 0
    for case_id, before in cases_a.items():
        after = cases_b.get(case_id)
        if after is None:
            continue
        change = CaseChange(case_id, str(after.get("title") or before.get("title") or ""),
                            str(after.get("suite") or before.get("suite") or ""),
                            str(after.get("level") or before.get("level") or ""),
                            str(before.get("verdict", "")), str(after.get("verdict", "")),
                            str(before.get("message") or ""), str(after.get("message") or ""))
        if change.before != change.after:
            changed.append(change)
        elif change.message_before != change.message_after:
            message_only.append(change)
        else:
            unchanged += 1
    only_a = [_entry(c) for cid, c in cases_a.items() if cid not in cases_b]
    only_b = [_entry(c) for cid, c in cases_b.items() if cid not in cases_a]
    header_a, header_b = RunHeader.of(a), RunHeader.of(b)
    return RunDiff(header_a, header_b, sorted(changed, key=_change_order), only_a, only_b,
                   sorted(message_only, key=lambda c: c.case_id), unchanged, _warnings(a, b, header_a, header_b))


def _entry(case: Mapping[str, Any]) -> CaseEntry:
    return CaseEntry(str(case.get("id", "")), str(case.get("title") or ""), str(case.get("suite") or ""),
                     str(case.get("level") or ""), str(case.get("verdict") or ""), str(case.get("message") or ""))


def _warnings(a: Mapping[str, Any], b: Mapping[str, Any], header_a: RunHeader, header_b: RunHeader) -> list[str]:
    warnings = []
    if header_a.device_key != header_b.device_key:
        warnings.append(f"the runs tested different devices: A is {header_a.device_label or '(unknown device)'}, "
                        f"B is {header_b.device_label or '(unknown device)'}")
    suites_a, suites_b = set(suites_of(a)), set(suites_of(b))
    if suites_a and suites_b and not suites_a & suites_b:
        warnings.append(f"the runs share no suite (A: {', '.join(sorted(suites_a))}; B: {', '.join(sorted(suites_b))}), "
                        "so every case is only in one of them")
    return warnings
