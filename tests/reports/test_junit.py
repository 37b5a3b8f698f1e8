"""JUnit XML: one testsuite per suite, verdict mapping, properties, always-valid XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.model import CaseResult, Evidence, Frame, Level, Verdict
from reports.junit import write_junit, xml_safe


def case(cid: str, verdict: Verdict, suite: str = "modbus", level: Level = Level.MUST, **kw) -> CaseResult:
    return CaseResult(
        id=cid,
        title=kw.pop("title", f"title {cid}"),
        suite=suite,
        requirements=kw.pop("requirements", ["REQ-A", "REQ-B"]),
        level=level,
        clause="MODBUS Messaging on TCP/IP Implementation Guide V1.0b §3.1.3",
        verdict=verdict,
        **kw,
    )


def results(cases: list[CaseResult]) -> dict:
    return {
        "schema": "harness.results/1",
        "run": {"id": "run-7", "start": "2024-05-01T10:00:00+00:00", "status": "finished"},
        "target": {"url": "modbus+tcp://127.0.0.1:5020?unit=1", "protocol": "modbus"},
        "cases": [c.to_dict() for c in cases],
    }


def cases_mixed() -> list[CaseResult]:
    ev = Evidence(
        frames=[
            Frame("tx", 1.0, 1e9, "000100000006010300000001", "Read HR", "127.0.0.1:1->127.0.0.1:2"),
            Frame("rx", 1.004, 1e9, "000200000003018302", "wrong transaction id"),
        ],
        expected="transaction id 1 echoed",
        observed="transaction id 2",
        notes=["MBAP header only"],
    )
    return [
        case("MB-TID-ECHO", Verdict.FAIL, message="wrong transaction id", evidence=ev, duration_s=0.25),
        case("MB-PASS", Verdict.PASS, duration_s=0.5),
        case("MB-ERR", Verdict.ERROR, message="connection refused"),
        case("MB-NA", Verdict.NOT_APPLICABLE, level=Level.MAY, message="FC 20 not claimed"),
        case("MB-INC", Verdict.INCONCLUSIVE, level=Level.SHOULD, message="latency varied"),
        case("UA-PASS", Verdict.PASS, suite="opcua"),
        case("UA-FAIL", Verdict.FAIL, suite="opcua"),
    ]


def load(tmp_path, data) -> ET.Element:
    path = tmp_path / "junit.xml"
    write_junit(data, path)
    return ET.parse(path).getroot()


def cases_by_id(root: ET.Element) -> dict[str, ET.Element]:
    return {tc.get("name").split(":")[0]: tc for tc in root.iter("testcase")}


def test_one_testsuite_per_suite_with_counts(tmp_path):
    root = load(tmp_path, results(cases_mixed()))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"modbus", "opcua"}
    m = suites["modbus"]
    assert (m.get("tests"), m.get("failures"), m.get("errors"), m.get("skipped")) == ("5", "1", "1", "2")
    assert float(m.get("time")) == 0.75
    o = suites["opcua"]
    assert (o.get("tests"), o.get("failures"), o.get("errors"), o.get("skipped")) == ("2", "1", "0", "0")
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("7", "2", "1", "2")
    # the counts agree with the children
    for s in suites.values():
        tcs = s.findall("testcase")
        assert len(tcs) == int(s.get("tests"))
        assert sum(1 for t in tcs if t.find("failure") is not None) == int(s.get("failures"))
        assert sum(1 for t in tcs if t.find("error") is not None) == int(s.get("errors"))
        assert sum(1 for t in tcs if t.find("skipped") is not None) == int(s.get("skipped"))


def test_testcase_names_and_properties(tmp_path):
    tcs = cases_by_id(load(tmp_path, results(cases_mixed())))
    tc = tcs["MB-TID-ECHO"]
    assert tc.get("classname") == "modbus"
    assert tc.get("name") == "MB-TID-ECHO: title MB-TID-ECHO"
    assert float(tc.get("time")) == 0.25
    props = {p.get("name"): p.get("value") for p in tc.find("properties")}
    assert props == {
        "requirements": "REQ-A, REQ-B",
        "level": "MUST",
        "clause": "MODBUS Messaging on TCP/IP Implementation Guide V1.0b §3.1.3",
        "verdict": "FAIL",
    }
    assert tcs["UA-PASS"].get("classname") == "opcua"


def test_verdict_mapping(tmp_path):
    tcs = cases_by_id(load(tmp_path, results(cases_mixed())))
    failure = tcs["MB-TID-ECHO"].find("failure")
    assert failure.get("message") == "wrong transaction id"
    assert "Expected: transaction id 1 echoed" in failure.text
    assert "Observed: transaction id 2" in failure.text
    assert "MBAP header only" in failure.text
    trace = tcs["MB-TID-ECHO"].find("system-out").text
    assert "-> " in trace and "<- " in trace and "+4.000 ms" in trace and "000200000003018302" in trace
    assert tcs["MB-ERR"].find("error").get("message") == "connection refused"
    assert tcs["MB-NA"].find("skipped").get("message") == "not applicable: FC 20 not claimed"
    assert tcs["MB-INC"].find("skipped").get("message") == "inconclusive: latency varied"
    passed = tcs["MB-PASS"]
    assert [child.tag for child in passed] == ["properties"]


def test_control_characters_in_device_strings_still_give_valid_xml(tmp_path):
    nasty = "ACME\x00\x01\x1b[31m\x7f\ud800\ufffe <&>\"' end"
    ev = Evidence(frames=[Frame("rx", 0.0, 0.0, "00", nasty)], expected=nasty, observed=nasty, notes=[nasty])
    data = results([case("X-1", Verdict.FAIL, title=nasty, message=nasty, evidence=ev), case("X-2", Verdict.NOT_APPLICABLE, message=nasty)])
    data["target"]["url"] = nasty
    root = load(tmp_path, data)  # expat refuses any character XML 1.0 forbids
    tc = cases_by_id(root)["X-1"]
    msg = tc.find("failure").get("message")
    assert msg == "ACME\\x00\\x01\\x1b[31m\x7f\\ud800\\ufffe <&>\"' end"
    assert "<&>" in tc.get("name")


def test_xml_safe_keeps_allowed_whitespace_and_text():
    assert xml_safe("a\tb\nc\rd") == "a\tb\nc\rd"
    assert xml_safe("\x0b\x0c") == "\\x0b\\x0c"
    assert xml_safe(None) == ""
    assert xml_safe(12) == "12"
    assert xml_safe("\U0001f600 ok") == "\U0001f600 ok"


def test_empty_or_partial_results(tmp_path):
    root = load(tmp_path, {})
    assert root.get("tests") == "0" and root.findall("testsuite") == []
    root = load(tmp_path, {"run": None, "cases": [{"id": "A", "verdict": "PASS"}, {"id": "B", "verdict": "??"}]})
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "harness"
    assert suite.get("errors") == "1"  # an unknown verdict is never reported as a pass
