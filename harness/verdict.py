"""Pure roll-up of case verdicts into an overall verdict (DESIGN section 3).

COMPLIANT                all MUST and SHOULD cases pass
CONDITIONALLY_COMPLIANT  all MUST pass, some SHOULD fail
NOT_COMPLIANT            a MUST case fails
INCOMPLETE               ERROR or INCONCLUSIVE on a MUST case (and no MUST fails),
                         or nothing was tested at all

The wording follows the Modbus Serial Line guide V1.02 section 1.4 ("unconditionally" and
"conditionally compliant").  Standard library only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .model import CaseResult, Level, Overall, Verdict


def overall(cases: Iterable[CaseResult]) -> Overall:
    cases = list(cases)
    must = [c for c in cases if c.level is Level.MUST]
    if any(c.verdict is Verdict.FAIL for c in must):
        return Overall.NOT_COMPLIANT
    if any(c.verdict in (Verdict.ERROR, Verdict.INCONCLUSIVE) for c in must):
        return Overall.INCOMPLETE
    if not any(c.verdict is Verdict.PASS for c in cases):
        return Overall.INCOMPLETE
    if any(c.verdict is Verdict.FAIL for c in cases if c.level is Level.SHOULD):
        return Overall.CONDITIONALLY_COMPLIANT
    return Overall.COMPLIANT


def counts(cases: Iterable[CaseResult]) -> dict[str, int]:
    """Number of cases per verdict, every verdict present (zero where none)."""
    tally = Counter(c.verdict for c in cases)
    return {v.value: tally.get(v, 0) for v in Verdict}


def counts_by_level(cases: Iterable[CaseResult]) -> dict[str, dict[str, int]]:
    """{"MUST": {"PASS": n, ...}, "SHOULD": {...}, "MAY": {...}}"""
    cases = list(cases)
    return {lvl.value: counts(c for c in cases if c.level is lvl) for lvl in Level}


def summarize(cases: Iterable[CaseResult]) -> dict:
    """The `summary` block of results.json: overall per suite and for the whole run."""
    cases = list(cases)
    suites = sorted({c.suite for c in cases})
    return {
        "overall": overall(cases).value,
        "counts": counts(cases),
        "by_level": counts_by_level(cases),
        "suites": {
            s: {
                "overall": overall(c for c in cases if c.suite == s).value,
                "counts": counts(c for c in cases if c.suite == s),
            }
            for s in suites
        },
    }


def profile_verdicts(cases: Iterable[CaseResult], catalogue, claimed: str) -> dict:
    """{profile: {title, clause, claimed, overall, counts}} for the claimed profile and every
    profile it includes; a profile's cases are those whose requirements belong to one of its
    conformance units (`catalogue` is a harness.requirements.Catalogue, duck-typed here)."""
    cases = list(cases)
    mine = catalogue.profiles[claimed].units
    out = {}
    for name, prof in catalogue.profiles.items():
        if not prof.units <= mine:
            continue  # a profile above the claimed one
        selected = [c for c in cases
                    if any(r in catalogue.requirements and catalogue.requirements[r].conformance_unit in prof.units for r in c.requirements)]
        out[name] = {"title": prof.title, "clause": prof.clause, "claimed": name == claimed,
                     "overall": overall(selected).value, "counts": counts(selected)}
    return out


EXIT_CODES = {
    Overall.COMPLIANT: 0,
    Overall.CONDITIONALLY_COMPLIANT: 1,
    Overall.NOT_COMPLIANT: 1,
    Overall.INCOMPLETE: 2,
}
