"""Roll-ups of a run's cases for the report: per requirement, per conformance unit, per claimed
profile, and the test selection (which cases were not applicable, and why).

The verdicts are recomputed from the cases with `harness.verdict`, so every table agrees with
the rows the report lists; the requirement texts come from the suites' catalogues.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from harness.requirements import Catalogue, CatalogueError, suite_catalogue
from harness.verdict import profile_verdicts, summarize

from .i18n import N_
from .view_cases import (VERDICT_LABELS, VERDICT_ORDER, CaseRow, Gettext, as_case_result, mapping, text,
                         verdict_css)

OVERALL_LABELS = {
    "COMPLIANT": N_("Compliant"),
    "CONDITIONALLY_COMPLIANT": N_("Conditionally compliant"),
    "NOT_COMPLIANT": N_("Not compliant"),
    "INCOMPLETE": N_("Incomplete"),
}
OVERALL_EXPLANATIONS = {
    "COMPLIANT": N_("All MUST and SHOULD cases pass."),
    "CONDITIONALLY_COMPLIANT": N_("All MUST cases pass; some SHOULD cases fail."),
    "NOT_COMPLIANT": N_("At least one MUST case fails."),
    "INCOMPLETE": N_("A MUST case ended in ERROR or INCONCLUSIVE, or nothing was tested."),
}
OVERALL_CSS = {"COMPLIANT": "o-compliant", "CONDITIONALLY_COMPLIANT": "o-conditional",
               "NOT_COMPLIANT": "o-not-compliant", "INCOMPLETE": "o-incomplete"}
# the worst verdict of a requirement's cases is the requirement's verdict
_SEVERITY = {"FAIL": 0, "ERROR": 1, "INCONCLUSIVE": 2, "PASS": 3, "NOT_APPLICABLE": 4, "NOT_TESTED": 5}


@dataclass(frozen=True, slots=True)
class CountCell:
    verdict: str
    label: str
    css: str
    count: int


@dataclass(frozen=True, slots=True)
class Overall:
    """An overall verdict as the page shows it."""

    value: str
    label: str
    css: str
    explanation: str


@dataclass(frozen=True, slots=True)
class CaseLink:
    id: str
    anchor: str  # "" when the case has no annex entry to link to
    css: str


# A requirement lists every case up to this many; beyond, only the ones that did not pass
# (a 10,000-case run would otherwise repeat each case id once more).
LIST_ALL_CASES_UP_TO = 8


@dataclass(frozen=True, slots=True)
class RequirementRow:
    id: str
    suite: str
    level: str
    citation: str
    summary: str
    unit: str
    verdict: str
    verdict_label: str
    verdict_css: str
    shown_cases: list[CaseLink]
    more_cases: int  # passed or not applicable, not listed


@dataclass(frozen=True, slots=True)
class GroupRow:
    """A suite, a conformance unit or a claimed profile with its overall verdict and counts."""

    name: str
    detail: str
    claimed: bool
    overall: Overall
    counts: list[CountCell]
    tested: int | None
    catalogued: int | None


@dataclass(frozen=True, slots=True)
class LevelRow:
    level: str
    counts: list[CountCell]
    total: int


@dataclass(frozen=True, slots=True)
class ExcludedRow:
    id: str
    title: str
    suite: str
    reason: str


def overall(value: str, _: Gettext) -> Overall:
    value = value if value in OVERALL_LABELS else "INCOMPLETE"
    return Overall(value, _(OVERALL_LABELS[value]), OVERALL_CSS[value], _(OVERALL_EXPLANATIONS[value]))


def count_cells(counts: Mapping[str, int], _: Gettext) -> list[CountCell]:
    return [CountCell(v.value, _(VERDICT_LABELS[v.value]), verdict_css(v.value), int(counts.get(v.value, 0)))
            for v in VERDICT_ORDER]


@lru_cache(maxsize=32)
def catalogue(suite: str) -> Catalogue | None:
    try:
        return suite_catalogue(suite)
    except (OSError, CatalogueError):
        return None  # a suite of the user's own, without a bundled catalogue


def requirement_rows(rows: list[CaseRow], suites: list[str], _: Gettext) -> list[RequirementRow]:
    """Every catalogued requirement of the run's suites (untested ones too), then any requirement
    a case names that no catalogue has; failures first."""
    cases_of: dict[tuple[str, str], list[CaseRow]] = {}
    for row in rows:
        for rid in row.requirements:
            cases_of.setdefault((row.suite, rid), []).append(row)
    out = []
    seen = set()
    for suite in suites:
        cat = catalogue(suite)
        if cat is None:
            continue
        for rid, req in cat.requirements.items():
            seen.add((suite, rid))
            out.append(_requirement_row(rid, suite, req.level.value, req.citation, req.summary, req.conformance_unit,
                                        cases_of.get((suite, rid), []), _))
    for (suite, rid), cases in cases_of.items():
        if (suite, rid) not in seen:
            out.append(_requirement_row(rid, suite, cases[0].level, cases[0].clause, "", "", cases, _))
    return sorted(out, key=lambda r: (_SEVERITY.get(r.verdict, 1), r.suite, r.id))


def _requirement_row(rid, suite, level, citation, summary, unit, cases: list[CaseRow], _: Gettext) -> RequirementRow:
    verdict = min((c.verdict for c in cases), key=lambda v: _SEVERITY.get(v, 1), default="NOT_TESTED")
    label = _(VERDICT_LABELS[verdict]) if verdict in VERDICT_LABELS else verdict
    shown = cases if len(cases) <= LIST_ALL_CASES_UP_TO else [c for c in cases if c.failed]
    return RequirementRow(rid, suite, level, citation, summary, unit, verdict, label, verdict_css(verdict),
                          [CaseLink(c.id, c.anchor if c.in_annex else "", c.verdict_css) for c in shown],
                          len(cases) - len(shown))


def unit_rows(raw_cases: list[Mapping[str, Any]], suites: list[str], _: Gettext) -> list[GroupRow]:
    """Overall verdict per conformance unit (OPC UA Part 7), for suites whose catalogue names units."""
    out = []
    for suite in suites:
        cat = catalogue(suite)
        if cat is None:
            continue
        units: dict[str, set[str]] = {}
        for rid, req in cat.requirements.items():
            if req.conformance_unit:
                units.setdefault(req.conformance_unit, set()).add(rid)
        for unit, rids in sorted(units.items()):
            cases = [as_case_result(c) for c in raw_cases if text(c.get("suite")) == suite
                     and rids.intersection(text(r) for r in (c.get("requirements") or []))]
            s = summarize(cases)
            tested = {r for c in cases if c.verdict.value not in ("NOT_APPLICABLE", "ERROR") for r in c.requirements} & rids
            out.append(GroupRow(unit, suite, False, overall(s["overall"], _), count_cells(s["counts"], _), len(tested), len(rids)))
    return out


def profile_rows(raw_cases: list[Mapping[str, Any]], claims: Mapping[str, Any], suites: list[str], _: Gettext) -> list[GroupRow]:
    """Verdict per claimed profile (and each profile it includes) of the run's suites, from the
    cases and the catalogue."""
    rows: list[GroupRow] = []
    for suite, suite_claims in claims.items():
        if suite not in suites:
            continue
        claimed = mapping(suite_claims).get("profile")
        cat = catalogue(suite) if isinstance(claimed, str) else None
        if cat is None or claimed not in cat.profiles:
            continue
        cases = [as_case_result(c) for c in raw_cases if c.get("suite") == suite]
        for p in profile_verdicts(cases, cat, claimed).values():
            rows.append(GroupRow(p["title"], p["clause"], p["claimed"], overall(p["overall"], _),
                                 count_cells(p["counts"], _), None, None))
    return rows


def suite_rows(summary: Mapping[str, Any], coverage: Mapping[str, Any], _: Gettext) -> list[GroupRow]:
    rows = []
    for name, s in summary["suites"].items():
        cov = mapping(coverage.get(name))
        rows.append(GroupRow(name, "", False, overall(s["overall"], _), count_cells(s["counts"], _),
                             cov.get("tested") if isinstance(cov.get("tested"), int) else None,
                             cov.get("catalogued") if isinstance(cov.get("catalogued"), int) else None))
    return rows


def level_rows(summary: Mapping[str, Any], _: Gettext) -> list[LevelRow]:
    return [LevelRow(level, count_cells(counts, _), sum(counts.values())) for level, counts in summary["by_level"].items()]


def excluded_rows(rows: list[CaseRow], _: Gettext) -> list[ExcludedRow]:
    """The cases the claims excluded, each with the reason its test gave."""
    return [ExcludedRow(r.id, r.title, r.suite, r.message or _("(no reason recorded)"))
            for r in rows if r.verdict == "NOT_APPLICABLE"]
