"""The HTML report: structure, ordering, graceful partial input, escaping, self-containment."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import jinja2
import pytest

from harness.model import CaseResult, Evidence, Frame, Level, Verdict
from reports.html import render_html, write_html
from reports.i18n import environment
from reports.viewmodel import build_view

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
CONN = "127.0.0.1:40001->127.0.0.1:5020"


def frame(direction: str, t: float, hexstr: str, summary: str) -> Frame:
    return Frame(direction, 100.0 + t, 1_700_000_000.0 + t, hexstr, summary, CONN)


def case(cid: str, verdict: Verdict, level: Level = Level.MUST, **kw) -> CaseResult:
    return CaseResult(
        id=cid,
        title=kw.pop("title", f"title of {cid}"),
        suite=kw.pop("suite", "modbus"),
        requirements=kw.pop("requirements", [f"REQ-{cid}"]),
        level=level,
        clause=kw.pop("clause", "Modbus Application Protocol V1.1b3 §6.3"),
        verdict=verdict,
        **kw,
    )


def results(cases: list[CaseResult], **blocks) -> dict:
    data = {
        "schema": "harness.results/1",
        "run": {
            "id": "run-42",
            "start": "2024-05-01T10:00:00+00:00",
            "end": "2024-05-01T10:00:07+00:00",
            "status": "finished",
            "versions": {"harness": "0.1.0", "python": "3.11.7"},
            "command": "harness certify modbus+tcp://127.0.0.1:5020",
            "seed": 1234,
        },
        "target": {"url": "modbus+tcp://127.0.0.1:5020?unit=1", "protocol": "modbus"},
        "profile": {
            "source": "device.yaml",
            "device": {"vendor_name": "ACME", "product_code": "PLC-1", "revision": "1.2"},
            "claims": {"function_codes": [3, 16]},
        },
        "dut": {
            "source": "Modbus FC43/14",
            "objects": {"VendorName": "ACME", "ProductCode": "PLC-1", "MajorMinorRevision": "1.2"},
        },
        "summary": {"coverage": {"modbus": {"catalogued": 40, "tested": 5}}},
        "capture": {"file": "capture.pcap", "note": "server port rewritten to 502"},
        "cases": [c.to_dict() for c in cases],
    }
    data.update(blocks)
    return data


def failing_case(**kw) -> CaseResult:
    ev = Evidence(
        frames=[
            frame("tx", 0.0, "000100000006010300000001", "Read Holding Registers addr=0 qty=1"),
            frame("rx", 0.0123, "000100000003018302", kw.pop("rx_summary", "Exception 02 ILLEGAL DATA ADDRESS")),
        ],
        expected="registers 0..0 returned",
        observed="exception 0x02",
        notes=["address 0 is declared in the profile"],
    )
    return case("MB-FC03-ADDR-0", Verdict.FAIL, evidence=ev, message="device refused a valid address", duration_s=0.015, **kw)


def mixed() -> list[CaseResult]:
    return [
        case("C-PASS-MUST", Verdict.PASS),
        case("C-NA", Verdict.NOT_APPLICABLE, Level.MAY, message="FC 20 not claimed"),
        case("C-INC", Verdict.INCONCLUSIVE, Level.SHOULD, message="timing noise"),
        case("C-FAIL-SHOULD", Verdict.FAIL, Level.SHOULD, message="slow"),
        case("C-ERR", Verdict.ERROR, message="socket closed by harness"),
        failing_case(),
        case("C-PASS-MAY", Verdict.PASS, Level.MAY),
    ]


class Page(HTMLParser):
    """Collects tags, attributes and text of a rendered page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def tag_names(self) -> set[str]:
        return {t for t, _ in self.tags}

    def all_text(self) -> str:
        return "".join(self.text)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_environment_autoescapes_and_is_strict(lang):
    env = environment(lang)
    assert env.autoescape is True
    assert env.undefined is jinja2.StrictUndefined


def test_header_shows_identity_target_run_and_overall():
    page = parse(render_html(results(mixed())))
    text = page.all_text()
    assert "Not compliant" in text  # a MUST case fails
    assert "run-42" in text
    assert "modbus+tcp://127.0.0.1:5020?unit=1" in text
    assert "ACME" in text and "PLC-1" in text
    assert "Modbus FC43/14" in text
    assert "2024-05-01T10:00:00+00:00" in text and "7.00 s" in text
    assert "5 / 40" in text  # requirements tested / catalogued
    overall = [a for t, a in page.tags if "big" in (a.get("class") or "").split()]
    assert overall and "o-not-compliant" in overall[0]["class"]


def test_counts_per_verdict_and_level():
    view = build_view(results(mixed()))
    assert {c.verdict: c.count for c in view.counts} == {
        "FAIL": 2,
        "ERROR": 1,
        "INCONCLUSIVE": 1,
        "PASS": 2,
        "NOT_APPLICABLE": 1,
    }
    levels = {row.level: {c.verdict: c.count for c in row.counts} for row in view.by_level}
    assert levels["MUST"]["FAIL"] == 1 and levels["MUST"]["ERROR"] == 1 and levels["MUST"]["PASS"] == 1
    assert levels["SHOULD"]["FAIL"] == 1 and levels["SHOULD"]["INCONCLUSIVE"] == 1
    assert levels["MAY"]["PASS"] == 1 and levels["MAY"]["NOT_APPLICABLE"] == 1
    assert view.total == 7


def test_cases_ordered_failures_first_then_errors_inconclusive_pass_na():
    html = render_html(results(mixed()))
    order = [a["data-case"] for t, a in parse(html).tags if t == "tr" and "data-case" in a]
    # within a verdict MUST comes before SHOULD before MAY
    assert order == ["MB-FC03-ADDR-0", "C-FAIL-SHOULD", "C-ERR", "C-INC", "C-PASS-MUST", "C-PASS-MAY", "C-NA"]


def test_row_has_all_columns():
    html = render_html(results([failing_case()]))
    text = parse(html).all_text()
    for expected in (
        "MB-FC03-ADDR-0",
        "title of MB-FC03-ADDR-0",
        "REQ-MB-FC03-ADDR-0",
        "MUST",
        "Modbus Application Protocol V1.1b3 §6.3",
        "device refused a valid address",
        "15.0 ms",
    ):
        assert expected in text


def test_annex_opens_the_evidence_of_fail_error_inconclusive():
    html = render_html(results(mixed()))
    page = parse(html)
    details = [a for t, a in page.tags if t == "details"]
    assert len(details) == 7  # one annex entry per case
    assert sum(1 for a in details if "open" in a) == 4  # 2 FAIL, 1 ERROR, 1 INCONCLUSIVE: open
    text = page.all_text()
    assert "registers 0..0 returned" in text and "exception 0x02" in text
    assert "address 0 is declared in the profile" in text
    assert "00 01 00 00 00 06 01 03 00 00 00 01" in text
    assert "Exception 02 ILLEGAL DATA ADDRESS" in text
    assert "+0.000" in text and "+12.300" in text  # ms relative to the case's first frame
    assert "→" in text and "←" in text


def test_pcap_frames_are_cited_when_known():
    data = results([failing_case()])
    data["capture"]["frames"] = {"MB-FC03-ADDR-0": [12, 13, 14, 15, 20]}
    text = parse(render_html(data)).all_text()
    assert "packets 12-15, 20" in text
    assert 'frame.number in {12..15 20}' in text  # a tshark filter for them


@pytest.mark.parametrize("payload", [SCRIPT, IMG])
def test_device_strings_are_escaped(payload):
    data = results(
        [failing_case(rx_summary=payload, title=payload)],
        dut={"source": payload, "objects": {"VendorName": payload, "ProductCode": payload}},
    )
    data["profile"]["device"]["vendor_name"] = payload
    data["cases"][0]["message"] = payload
    data["cases"][0]["evidence"]["observed"] = payload
    data["cases"][0]["evidence"]["notes"] = [payload]
    html = render_html(data)
    page = parse(html)
    assert [t for t, _ in page.tags].count("script") == 1  # the report's own, and only that one
    assert "img" not in page.tag_names()
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    assert payload not in html  # never raw in the markup...
    assert page.all_text().count(payload) >= 6  # ...but shown as text wherever it was data


def test_self_contained_no_external_requests_or_scripts():
    data_url = "http://vendor.example/product?id=1"
    data = results(mixed())
    data["profile"]["device"]["vendor_url"] = data_url
    html = render_html(data)
    page = parse(html)
    scripts = [attrs for t, attrs in page.tags if t == "script"]
    assert scripts == [{}]  # one inline script, nothing loaded
    assert "link" not in page.tag_names()
    assert not any("src" in attrs for _, attrs in page.tags)
    assert all(attrs["href"].startswith("#") for _, attrs in page.tags if "href" in attrs)  # links within the page
    assert not re.search(r"@import|url\(", html)
    for url in re.findall(r"https?://[^\s\"'<>]*", html):
        assert data_url.startswith(url), f"URL not from data: {url}"
    assert data_url in page.all_text()


def test_password_in_target_url_is_redacted():
    data = results([], target={"url": "opc.tcp://admin:s3cret@10.0.0.5:4840", "protocol": "opcua"})
    data["run"]["command"] = "harness certify opc.tcp://admin:s3cret@10.0.0.5:4840"
    html = render_html(data)
    assert "s3cret" not in html
    assert "opc.tcp://admin:***@10.0.0.5:4840" in parse(html).all_text()


@pytest.mark.parametrize(
    "blocks",
    [
        {},
        {"run": None, "target": None, "profile": None, "dut": None, "capture": None, "summary": None},
        {"run": {"status": "interrupted"}, "target": {}, "profile": {"device": None}, "dut": {"objects": None}},
    ],
)
def test_missing_blocks_render_gracefully(blocks):
    data = {"schema": "harness.results/1", "cases": [failing_case().to_dict()], **blocks}
    html = render_html(data)
    assert "MB-FC03-ADDR-0" in html
    assert "Not compliant" in html


def test_empty_and_running_runs_are_marked_partial():
    text = parse(render_html({})).all_text()
    assert "Incomplete" in text and "No test cases were recorded." in text
    running = results([case("A", Verdict.PASS)])
    running["run"]["status"] = "running"
    running["run"]["end"] = None
    text = parse(render_html(running)).all_text()
    assert "still running" in text and "provisional" in text


def test_sparse_case_dicts_and_unknown_verdicts_do_not_crash():
    data = {
        "cases": [
            {"id": "X-1", "verdict": "WEIRD", "level": "MUST"},
            {"id": "X-2", "title": "t", "suite": "s", "requirements": "R", "level": "??", "verdict": "PASS",
             "evidence": {"frames": [{"direction": "tx", "hex": "zz"}], "notes": "one note"}},
        ]
    }
    view = build_view(data)
    assert view.overall.value == "INCOMPLETE"  # an unknown verdict counts as ERROR on a MUST
    assert [c.id for c in view.cases] == ["X-1", "X-2"]
    assert "X-1" in render_html(data)


def test_identity_mismatch_is_flagged():
    data = results([case("A", Verdict.PASS)])
    data["dut"]["objects"]["VendorName"] = "Other Corp"
    view = build_view(data)
    vendor = next(r for r in view.identity if r.label == "Vendor name")
    assert vendor.declared == "ACME" and vendor.read == "Other Corp" and vendor.mismatch
    revision = next(r for r in view.identity if r.label == "Revision / firmware")
    assert revision.declared == revision.read == "1.2" and not revision.mismatch


def test_long_frames_are_truncated_in_the_page():
    ev = Evidence(frames=[frame("tx", 0.0, "ab" * 5000, "garbage flood")])
    html = render_html(results([case("FLOOD", Verdict.ERROR, evidence=ev)]))
    text = parse(html).all_text()
    assert "4488 more bytes" in text
    assert "ab " * 513 not in html and "ab" * 1000 not in html


def test_write_html(tmp_path):
    path = write_html(results(mixed()), tmp_path / "report.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not list(tmp_path.glob("*.tmp"))
