from harness.model import CaseResult, Level, Overall, Verdict
from harness.verdict import counts, overall


def c(level, verdict):
    return CaseResult("X", "t", "s", ["R"], Level(level), "Spec V1 §1", Verdict(verdict))


def test_rollup_table():
    P, F, E, I, N = "PASS", "FAIL", "ERROR", "INCONCLUSIVE", "NOT_APPLICABLE"
    assert overall([c("MUST", P), c("SHOULD", P), c("MAY", F)]) is Overall.COMPLIANT
    assert overall([c("MUST", P), c("SHOULD", F)]) is Overall.CONDITIONALLY_COMPLIANT
    assert overall([c("MUST", F), c("SHOULD", F)]) is Overall.NOT_COMPLIANT
    assert overall([c("MUST", F), c("MUST", E)]) is Overall.NOT_COMPLIANT
    assert overall([c("MUST", P), c("MUST", E)]) is Overall.INCOMPLETE
    assert overall([c("MUST", P), c("MUST", I)]) is Overall.INCOMPLETE
    assert overall([c("MUST", N)]) is Overall.INCOMPLETE
    assert overall([c("MUST", P), c("MUST", N)]) is Overall.COMPLIANT


def test_counts_have_every_verdict():
    assert counts([c("MUST", "PASS")]) == {"PASS": 1, "FAIL": 0, "INCONCLUSIVE": 0, "NOT_APPLICABLE": 0, "ERROR": 0}


def test_case_result_round_trips_through_json_dict():
    case = c("SHOULD", "FAIL")
    assert CaseResult.from_dict(case.to_dict()) == case
