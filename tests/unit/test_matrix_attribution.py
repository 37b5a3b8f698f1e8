"""Which side of a failing matrix cell is named: client, server, or undetermined."""

from harness.matrix_attribution import attribute


def case(client, server, scenario, verdict):
    return {"id": f"IOP-{scenario}-{client}-{server}", "verdict": verdict,
            "tags": {"client": client, "server": server, "scenario": scenario}, "evidence": {"notes": []}}


def notes(c):
    return [n for n in c["evidence"]["notes"] if n.startswith("attribution:")]


def test_failing_against_the_reference_is_the_client():
    cases = [case("a", "simulator", "S", "FAIL"), case("a", "x", "S", "FAIL")]
    attribute(cases)
    assert all("client side: a" in notes(c)[0] for c in cases)


def test_passing_against_the_reference_but_failing_elsewhere_is_the_server():
    cases = [case("a", "simulator", "S", "PASS"), case("b", "simulator", "S", "PASS"),
             case("a", "x", "S", "FAIL"), case("b", "x", "S", "FAIL"), case("a", "y", "S", "PASS")]
    summary = attribute(cases)
    assert "server side: x" in notes(cases[2])[0] and "2 client(s)" in notes(cases[2])[0]
    assert summary[("S", "x")].startswith("server side, 2 client(s): a, b")
    assert notes(cases[0]) == [] and notes(cases[4]) == []  # passing cases get no attribution


def test_no_reference_result_is_undetermined():
    cases = [case("a", "x", "S", "FAIL")]
    attribute(cases)
    assert notes(cases[0])[0].startswith("attribution: undetermined")
