"""The report reads like a conformance test report (ISO/IEC 9646-5 order): its sections, the lab
block, the roll-ups per requirement and conformance unit, the selection, the integrity hash."""

from __future__ import annotations

import re

import pytest

from harness.canonical import canonical_sha256
from harness.model import Level, Verdict
from reports.html import render_html
from reports.viewmodel import build_view

from test_html import case, failing_case, mixed, parse, results  # tests/reports is on sys.path (no package: `reports` is taken)

SECTIONS = ["first-screen", "identification", "dut", "claims", "environment", "selection", "summary", "requirements",
            "results", "observations", "conclusion", "signatures", "annex", "certificate"]
LAB = {
    "laboratory": {"name": "Lab <One>", "accreditation": "ISO/IEC 17025 no. 42"},
    "client": {"name": "ACME Corp"},
    "operator": "T. Ester",
    "signatories": [{"role": "Tested by", "name": "T. Ester"}, {"role": "Approved by", "name": "R. Eviewer"}],
    "observations": ["Firmware 1.2 as delivered."],
}


def section_ids(html: str) -> list[str]:
    return [a["id"] for t, a in parse(html).tags if t == "section" and "id" in a]


def test_sections_come_in_the_order_of_a_conformance_test_report():
    assert section_ids(render_html(results(mixed()))) == SECTIONS


def test_first_screen_names_device_verdict_claims_and_failures():
    html = render_html(results(mixed()))
    first = html[html.index('id="first-screen"'):html.index('<nav class="toc">')]
    text = parse(first).all_text()
    assert "ACME" in text and "PLC-1" in text
    assert "Not compliant" in text
    assert "function codes" in text and "3, 16" in text  # the claims
    for failing in ("MB-FC03-ADDR-0", "C-FAIL-SHOULD", "C-ERR", "C-INC"):
        assert failing in text
    assert "C-PASS-MUST" not in text


def test_lab_block_from_results_or_override():
    data = results([case("A", Verdict.PASS)], lab=LAB)
    text = parse(render_html(data)).all_text()
    for expected in ("Lab <One>", "ISO/IEC 17025 no. 42", "ACME Corp", "T. Ester", "Approved by", "R. Eviewer",
                     "Firmware 1.2 as delivered."):
        assert expected in text
    other = parse(render_html(data, lab={"laboratory": {"name": "Other Lab"}})).all_text()
    assert "Other Lab" in other and "Lab <One>" not in other


def test_without_lab_the_signature_block_still_has_lines_to_sign():
    view = build_view(results([case("A", Verdict.PASS)]))
    assert [s.role for s in view.lab.signatories] == ["Tested by", "Reviewed and approved by"]


def test_results_hash_is_the_canonical_sha256():
    data = results(mixed())
    html = render_html(data)
    shown = re.search(r'<code id="results-sha256">([0-9a-f]{64})</code>', html).group(1)
    assert shown == canonical_sha256(data)
    data["cases"][0]["message"] = "changed"
    assert canonical_sha256(data) != shown


def test_selection_lists_each_not_applicable_case_with_its_reason():
    html = render_html(results(mixed()))
    part = html[html.index('id="selection"'):html.index('id="summary"')]
    text = parse(part).all_text()
    assert "C-NA" in text and "FC 20 not claimed" in text
    assert "C-PASS-MUST" not in text


def test_requirement_rollup_takes_the_worst_verdict_and_lists_untested_requirements():
    cases = [
        case("A1", Verdict.PASS, requirements=["MB-AP-6.3-QTY"]),
        case("A2", Verdict.FAIL, requirements=["MB-AP-6.3-QTY"], message="bad"),
        case("B1", Verdict.PASS, requirements=["MB-AP-6.3-ADDR"]),
    ]
    view = build_view(results(cases))
    by_id = {r.id: r for r in view.requirements}
    assert by_id["MB-AP-6.3-QTY"].verdict == "FAIL"
    assert [c.id for c in by_id["MB-AP-6.3-QTY"].shown_cases] == ["A2", "A1"]
    assert by_id["MB-AP-6.3-ADDR"].verdict == "PASS"
    untested = [r for r in view.requirements if r.verdict == "NOT_TESTED"]
    assert untested and len(view.requirements) == len(untested) + 2  # the whole catalogue is listed
    assert view.requirements[0].id == "MB-AP-6.3-QTY"  # failures first
    assert view.tested == 2 and view.catalogued == len(view.requirements)


def test_conformance_units_are_rolled_up_for_suites_that_name_them():
    cases = [case("U1", Verdict.FAIL, suite="opcua", requirements=["UA-P6-7.1.2.3-HELLO-ACK"], message="bad ack")]
    view = build_view(results(cases))
    units = {u.name: u for u in view.units}
    assert units["Protocol UA TCP"].overall.value == "NOT_COMPLIANT"
    assert all(u.detail == "opcua" for u in view.units)


def test_claimed_profile_is_the_conclusion_and_only_for_the_run_s_suites():
    data = results([case("A", Verdict.PASS, suite="opcua", requirements=["UA-P6-7.1.2.3-HELLO-ACK"])])
    data["profile"]["claims"] = {"opcua": {"profile": "nano"}, "modbus": {"function_codes": [3]}}
    view = build_view(data)
    assert [(c.name, c.claimed) for c in view.conclusions] == [("Nano Embedded Device 2017 Server Profile", True)]
    modbus_only = results([case("B", Verdict.PASS)])
    modbus_only["profile"]["claims"] = {"opcua": {"profile": "nano"}, "modbus": {"function_codes": [3]}}
    view = build_view(modbus_only)
    assert [c.name for c in view.conclusions] == ["Suite modbus"]
    assert [kv.key for kv in view.claims] == ["function codes"]  # the Modbus run shows the Modbus claims


def test_identity_mismatch_is_a_visible_warning():
    data = results([case("A", Verdict.PASS)])
    data["dut"]["objects"]["MajorMinorRevision"] = "2.0"
    html = render_html(data)
    assert 'class="banner identity-warning"' in html
    assert "Revision / firmware" in parse(html).all_text()
    assert 'class="banner identity-warning"' not in render_html(results([case("A", Verdict.PASS)]))


def test_opcua_build_info_is_compared_with_the_profile():
    data = results([case("A", Verdict.PASS)], dut={"source": "OPC UA ServerStatus/BuildInfo", "objects": {
        "ManufacturerName": "ACME", "ProductName": "PLC-1", "SoftwareVersion": "1.3"}})
    view = build_view(data)
    rows = {r.key: r for r in view.identity}
    assert not rows["vendorname"].mismatch and rows["revision"].mismatch
    assert view.device_revision == "1.3"  # what the device says it runs


def test_charts_are_inline_svg_with_the_counts():
    html = render_html(results(mixed()))
    page = parse(html)
    svgs = {a.get("id") for t, a in page.tags if t == "svg"}
    assert {"chart-verdicts", "chart-latency"} <= svgs
    rects = [a for t, a in page.tags if t == "rect" and a.get("class", "").startswith("v-")]
    assert {r["class"] for r in rects} == {"v-fail", "v-error", "v-inconclusive", "v-pass", "v-na"}
    view = build_view(results(mixed()))
    assert view.latency is not None and view.latency.samples == 1  # one request/response pair (12.3 ms)
    assert view.latency.median_ms == "12.30"


def test_environment_names_suite_catalogue_hash_and_stacks():
    data = results([case("A", Verdict.PASS)])
    data["run"]["suites"] = {"modbus": {"version": "0.1.0", "catalogue_sha256": "ab" * 32, "requirements": 53,
                                        "documents": ["MODBUS Application Protocol V1.1b3"]}}
    data["run"]["stacks"] = {"asyncua": "2.1.0"}
    text = parse(render_html(data)).all_text()
    assert "ab" * 32 in text and "MODBUS Application Protocol V1.1b3" in text and "2.1.0" in text
    assert "changed since the run" in text  # the bundled catalogue's hash is not abab...


def test_large_runs_keep_failures_in_the_annex_and_cite_packets_for_passes(monkeypatch):
    from reports import view_cases

    monkeypatch.setattr(view_cases, "FULL_ANNEX_LIMIT", 3)
    data = results([case(f"P{i}", Verdict.PASS) for i in range(5)] + [failing_case()])
    data["capture"]["frames"] = {"P0": [1, 2, 3]}
    html = render_html(data)
    details = [a for t, a in parse(html).tags if t == "details"]
    assert len(details) == 1 and "open" in details[0]
    assert "pcap 1-3" in parse(html).all_text()


def test_certificate_states_device_profile_verdict_and_hash():
    data = results(mixed(), lab=LAB)
    html = render_html(data)
    cert = parse(html[html.index('id="certificate"'):]).all_text()
    for expected in ("ACME PLC-1", "Not compliant", "Lab <One>", "ACME Corp", "run-42", canonical_sha256(data), "R. Eviewer"):
        assert expected in cert


def test_robustness_cases_show_the_monitor_strip_the_attack_and_the_replay_input():
    data = results([case("ROB-MB-FLOOD", Verdict.FAIL, suite="modbus_robustness", requirements=["ROB-62443-CR7.1-FLOOD"],
                         message="stopped answering")])
    data["cases"][0]["evidence"].update({
        "attack": {"name": "flood", "sent": 1000, "replies": 400, "rate_per_s": 498.7, "duration_s": 2.0,
                   "notes": ["<b>peer</b> stopped reading"]},
        "monitor": {"ok": False, "interval_ms": 50, "attack_ms": [500, 2500], "recovery_limit_ms": 2000,
                    "counts": {"during": {"ok": 10, "wrong": 1, "missing": 29}, "after": {"ok": 5, "wrong": 0, "missing": 0}},
                    "recovered_after_ms": 350.0, "problems": ["stopped answering at +0.50 s for 1.45 s"],
                    "timeline": [[0, "o"], [50, "o"], [550, "m"], [2000, "w"], [2050, "o"]], "end_ms": 3000},
        "replay": {"protocol": "modbus", "frames": ["000000000000010100000001"], "kind": "malformed:mbap-length-zero",
                   "seed": 42},
    })
    html = render_html(data)
    page = parse(html)
    strip = [a for t, a in page.tags if t == "rect" and a.get("class", "").startswith("m-")]
    assert [a["class"] for a in strip] == ["m-ok", "m-missing", "m-wrong", "m-ok"]  # runs merged, in time order
    assert float(strip[1]["x"]) == pytest.approx(1000 * 550 / 3000, abs=0.01)
    text = page.all_text()
    for expected in ("499/s", "10 / 1 / 29", "350 ms (limit 2000 ms)", "stopped answering at +0.50 s for 1.45 s",
                     "000000000000010100000001", "malformed:mbap-length-zero", "harness replay RUN_DIRECTORY ROB-MB-FLOOD",
                     "<b>peer</b> stopped reading"):
        assert expected in text, expected
    assert "<b>peer</b>" not in html  # a note from the attack is data
