"""Which side of a failing matrix cell is named: from each side's verdicts, else by the reference."""

from harness.matrix_attribution import SideVerdicts, attribute

EXERCISES = {"IOP-S": (("SRV-1", "C-SRV-2"), ("CLI-1",))}


def case(client, server, scenario, verdict):
    return {"id": f"IOP-{scenario}-{client}-{server}", "verdict": verdict, "requirements": [f"IOP-{scenario}"],
            "tags": {"client": client, "server": server, "scenario": scenario}, "evidence": {"notes": []}}


def client_case(client, requirement, verdict):
    return {"id": f"CASE-{requirement}-{client}", "verdict": verdict, "requirements": [requirement],
            "tags": {"client": client, "scenario": requirement}, "evidence": {"notes": []}}


def server_run(**verdicts):
    return SideVerdicts.from_cases("run.json", [{"id": f"C-{rid.replace('_', '-')}", "verdict": v, "requirements": [rid.replace("_", "-")]}
                                                for rid, v in verdicts.items()])


def notes(c):
    return [n for n in c["evidence"]["notes"] if n.startswith("attribution:")]


def test_a_server_that_fails_a_case_of_the_scenario_in_its_own_run_is_named():
    cell = case("a", "x", "S", "FAIL")
    summary = attribute([cell], EXERCISES, {"x": server_run(SRV_1="PASS", SRV_2="FAIL")})
    assert notes(cell) == ["attribution: server side: x fails C-SRV-2 in its own conformance run (run.json)"]
    assert summary == {("S", "x"): "server side: C-SRV-2"}


def test_a_check_may_name_a_requirement_and_the_failing_cases_are_listed():
    cell = case("a", "x", "S", "FAIL")
    attribute([cell], EXERCISES, {"x": server_run(SRV_1="FAIL")})
    assert notes(cell) == ["attribution: server side: x fails SRV-1 (C-SRV-1) in its own conformance run (run.json)"]


def test_a_client_that_fails_a_client_side_requirement_is_named_and_both_sides_can_be():
    cell = case("a", "x", "S", "FAIL")
    cases = [cell, client_case("a", "CLI-1", "FAIL"), client_case("b", "CLI-1", "PASS")]
    attribute(cases, EXERCISES, {"x": server_run(SRV_1="FAIL")})
    got = notes(cell)
    assert len(got) == 2 and got[0].startswith("attribution: server side: x fails SRV-1")
    assert got[1] == "attribution: client side: a fails CLI-1 (CASE-CLI-1-a) in client-side conformance"


def test_without_a_covering_verdict_the_reference_simulator_decides_and_says_so():
    cases = [case("a", "simulator", "S", "PASS"), case("b", "simulator", "S", "PASS"),
             case("a", "x", "S", "FAIL"), case("b", "x", "S", "FAIL"), case("a", "y", "S", "PASS")]
    summary = attribute(cases, EXERCISES, {"x": server_run(SRV_1="PASS")})
    text = notes(cases[2])[0]
    assert "server side, by the reference simulator" in text and "no verdict of either side" in text
    assert "2 client(s)" in text
    assert summary[("S", "x")].startswith("server side (by the reference simulator), 2 client(s): a, b")
    assert notes(cases[0]) == [] and notes(cases[4]) == []  # passing cases get no attribution


def test_failing_against_the_reference_too_is_the_client_by_the_reference():
    cases = [case("a", "simulator", "S", "FAIL"), case("a", "x", "S", "FAIL")]
    attribute(cases, EXERCISES, {})
    assert all("client side, by the reference simulator" in notes(c)[0] for c in cases)
    assert "x has no stored conformance run" in notes(cases[1])[0]


def test_no_reference_result_is_undetermined():
    cases = [case("a", "x", "S", "FAIL")]
    attribute(cases, EXERCISES, {})
    assert notes(cases[0])[0].startswith("attribution: undetermined")
