"""The HTML report in a real browser (headless Debian Chromium): quiet, offline, interactive,
safe with hostile device strings, legible in Chinese, printable to PDF.

The reports are real certify runs of the bundled Modbus simulator, clean (a passing device) and
with a planted fault (a failing device), in English and Chinese; see conftest.py.  A full-page
screenshot of each report is written to out/test-screenshots/ for a person to look at.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

import pytest

from harness.browser import BrowserUnavailable, ChromiumMissing, deadline, find_chromium, launch_chromium, offline_page
from harness.canonical import canonical_sha256
from harness.pdf import write_pdf

from .conftest import IMG, SCREENSHOTS, SCRIPT, ReportPage, full_page_png, settle

CJK = re.compile(r"[\u4e00-\u9fff]")
VERDICTS = {"PASS", "FAIL", "INCONCLUSIVE", "NOT_APPLICABLE", "ERROR"}
PAGE_BREAKS = {"page", "always", "left", "right", "recto", "verso"}


def failing_ids(results: dict) -> list[str]:
    return [c["id"] for c in results["cases"] if c["verdict"] == "FAIL"]


def assert_quiet(report: ReportPage) -> None:
    assert report.refused == [], f"the report asked for {report.refused}: a report must load nothing"
    assert report.page_errors == [], f"uncaught script errors: {report.page_errors}"
    assert report.console_errors == [], f"console errors: {report.console_errors}"
    assert report.dialogs == [], f"dialogs opened: {report.dialogs}"


@pytest.mark.parametrize("name", ["en-pass", "en-fail", "zh-CN-pass", "zh-CN-fail", "xss"])
def test_report_opens_quietly_offline_and_is_screenshotted(open_report, reports, name):
    report = open_report(reports.html[name])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = full_page_png(report.page, SCREENSHOTS / f"report-{name}.png")
    print(f"screenshot: {shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_quiet(report)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, tuple[str, dict]] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if attributes.get("id"):
            self.by_id.setdefault(attributes["id"], (tag, attributes))


def test_filters_are_hidden_without_script_and_shown_with_it(open_report, reports):
    tags = _Tags()
    tags.feed(reports.html["en-fail"].read_text(encoding="utf-8"))
    assert "filters" in tags.by_id, "no #filters in the report"
    assert "hidden" in tags.by_id["filters"][1], "#filters must be hidden in the HTML (it only works with the script)"
    report = open_report(reports.html["en-fail"])
    assert report.page.is_visible("#filters")
    assert report.page.get_attribute("input#case-search", "type") == "search"


def test_rows_carry_case_and_verdict(open_report, reports):
    results = reports.results_of("en-fail")
    report = open_report(reports.html["en-fail"])
    rows = report.page.eval_on_selector_all(
        "table#cases tbody tr[data-case]",
        "rows => rows.map(r => [r.dataset.case, r.dataset.verdict, !!r.querySelector('a.case-link[href^=\"#case-\"]')])")
    assert sorted((cid, verdict) for cid, verdict, _ in rows) == sorted((c["id"], c["verdict"]) for c in results["cases"])
    assert all(has_link for _, _, has_link in rows), "every row links to its case in the annex"


def test_search_hides_other_rows_and_clearing_shows_them(open_report, reports):
    results = reports.results_of("en-fail")
    wanted = failing_ids(results)[0]
    report = open_report(reports.html["en-fail"])
    everything = report.visible_case_ids()
    assert len(everything) == len(results["cases"])
    report.page.fill("input#case-search", wanted)
    shown = report.visible_case_ids()
    assert wanted in shown
    assert len(shown) < len(everything), f"typing {wanted} hid no row"
    row_texts = report.page.eval_on_selector_all(
        "table#cases tbody tr[data-case]", "rows => rows.filter(r => !r.hidden).map(r => r.textContent.toLowerCase())")
    assert all(wanted.lower() in text for text in row_texts), "a row that does not mention the search stayed visible"
    hidden = report.page.eval_on_selector_all("table#cases tbody tr[data-case]", "rows => rows.filter(r => r.hidden).length")
    assert hidden == len(everything) - len(shown), "filtered-out rows get the hidden attribute"
    report.page.fill("input#case-search", "")
    assert report.visible_case_ids() == everything
    assert_quiet(report)


def test_verdict_filter_shows_only_that_verdict(open_report, reports):
    results = reports.results_of("en-fail")
    report = open_report(reports.html["en-fail"])
    values = report.page.eval_on_selector_all("select#verdict-filter option", "options => options.map(o => o.value)")
    assert "" in values and "FAIL" in values and "PASS" in values, values
    assert set(values) <= VERDICTS | {""}, values
    everything = report.visible_case_ids()
    report.page.select_option("select#verdict-filter", "FAIL")
    assert sorted(report.visible_case_ids()) == sorted(failing_ids(results))
    report.page.select_option("select#verdict-filter", "")
    assert report.visible_case_ids() == everything
    assert_quiet(report)


def test_first_screen_lists_the_failures_and_each_opens_its_evidence(open_report, reports):
    results = reports.results_of("en-fail")
    report = open_report(reports.html["en-fail"])
    page = report.page
    first_screen = page.locator("section#first-screen")
    assert first_screen.bounding_box()["y"] < 900, "the first screen is not on the first screen"
    assert results["profile"]["device"]["vendor_name"] in first_screen.inner_text()
    failures = page.locator("#first-screen .failures li")
    assert failures.count() == len(failing_ids(results))
    link = failures.nth(0).locator('a[href^="#case-"]')
    target = link.get_attribute("href")[1:]
    link.click()
    detail = page.locator(f'details.case-detail[id="{target}"]')
    assert detail.evaluate("d => d.open"), "the failure's link did not open its evidence"
    assert page.evaluate("location.hash") == f"#{target}"
    frames = detail.locator(".evidence table.frames")
    assert frames.is_visible(), "the failing case's frames are not shown"
    assert frames.locator("tr").count() >= 2
    assert detail.locator(".expected").is_visible() and detail.locator(".observed").is_visible()
    assert_quiet(report)


def test_case_link_and_summary_open_their_details(open_report, reports):
    results = reports.results_of("en-pass")
    report = open_report(reports.html["en-pass"])
    page = report.page
    assert page.locator("#first-screen .failures li").count() == 0
    assert page.locator("details.case-detail").count() == len(results["cases"])
    link = page.locator("table#cases tbody tr[data-case] a.case-link").nth(3)
    target = link.get_attribute("href")[1:]
    assert not page.locator(f'details.case-detail[id="{target}"]').evaluate("d => d.open")
    link.click()
    assert page.locator(f'details.case-detail[id="{target}"]').evaluate("d => d.open")
    other_id = page.locator("details.case-detail:not([open])").first.get_attribute("id")
    other = page.locator(f'details.case-detail[id="{other_id}"]')
    other.locator("summary").click()
    assert other.evaluate("d => d.open")
    assert_quiet(report)


def test_results_hash_charts_and_certificate(open_report, reports):
    results = reports.results_of("en-pass")
    report = open_report(reports.html["en-pass"])
    page = report.page
    shown = page.locator("code#results-sha256").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", shown), shown
    assert shown == canonical_sha256(results)
    for chart in ("svg#chart-verdicts", "svg#chart-latency"):
        box = page.locator(chart).bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, f"{chart} is not drawn"
        assert page.locator(chart).locator("rect, path, circle, line, polyline, polygon").count() > 0, f"{chart} is empty"
    page.emulate_media(media="print")
    breaks = page.locator("section#certificate").evaluate(
        """s => { const css = getComputedStyle(s);
                  const after = [];
                  for (let e = s.nextElementSibling; e; e = e.nextElementSibling)
                      if (getComputedStyle(e).display !== 'none' && e.tagName !== 'SCRIPT') after.push(e.tagName);
                  return [css.breakBefore, css.breakAfter, after]; }""")
    before, after, followers = breaks
    assert before in PAGE_BREAKS, f"the certificate does not start a printed page (break-before: {before})"
    assert after in PAGE_BREAKS or not followers, f"content follows the certificate on its page: {followers}"


def test_identity_warning_only_when_the_device_says_otherwise(open_report, reports):
    assert open_report(reports.html["en-pass"]).page.locator(".identity-warning").count() == 0
    report = open_report(reports.html["identity-mismatch"])
    assert report.page.locator(".identity-warning").first.is_visible()
    assert_quiet(report)


def test_hostile_device_strings_are_text_and_run_nothing(open_report, reports):
    report = open_report(reports.html["xss"])
    page = report.page
    # show every case's evidence: the failing case's message, observed value and frame carry the strings too
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    settle(page)
    assert report.dialogs == [], f"device strings ran script: {report.dialogs}"
    assert page.locator('img[src="x"]').count() == 0
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    assert page.evaluate("[...document.scripts].filter(s => s.textContent.includes('alert(1)')).length") == 0
    text = page.locator("body").inner_text()
    assert SCRIPT in text and IMG in text, "the hostile strings must show as text"
    assert_quiet(report)


# Whether Chinese renders with a real font, not tofu: draw a one-stroke character and a
# dense one in the report's own font stack on a canvas and count the inked pixels.  With a CJK
# font 鬱 has many times the ink of 一; without one both are the same .notdef box (or two
# look-alike code-point boxes), so their ink is about equal.  document.fonts.check() cannot tell:
# it answers true whenever no web font is pending, whatever the system fonts lack.
INK = """family => {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 96;
    const ctx = canvas.getContext('2d', {willReadFrequently: true});
    const ink = ch => {
        ctx.clearRect(0, 0, 96, 96);
        ctx.font = '64px ' + family;
        ctx.textBaseline = 'top';
        ctx.fillStyle = '#000';
        ctx.fillText(ch, 8, 8);
        const data = ctx.getImageData(0, 0, 96, 96).data;
        let n = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 127) n++;
        return n;
    };
    return [ink('一'), ink('鬱')];
}"""


def test_chinese_report_renders_its_characters(open_report, reports):
    assert open_report(reports.html["en-fail"]).page.evaluate("document.documentElement.lang") == "en"
    report = open_report(reports.html["zh-CN-fail"])
    page = report.page
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    text = page.locator("body").inner_text()
    assert len(CJK.findall(text)) >= 20, "the Chinese report shows (almost) no Chinese text"
    family = page.evaluate("getComputedStyle(document.body).fontFamily")
    one, dense = page.evaluate(INK, family)
    assert one > 0 and dense > 3 * one, (
        f"Chinese renders as tofu in {family!r} (ink of 一 {one}, of 鬱 {dense}): "
        "install a CJK font, `apt-get install -y fonts-noto-cjk` (scripts/install-system-packages.sh does)")
    assert_quiet(report)


def test_pdf_is_written(reports, tmp_path, chromium):
    # `chromium` only for the skip/fail decision: write_pdf launches its own browser, as the CLI does
    pdf = write_pdf(reports.html["en-fail"], tmp_path / "report.pdf", timeout_s=60)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert len(data) > 10_000
    boxes = {tuple(round(float(x)) for x in m.split()) for m in re.findall(rb"/MediaBox\s*\[([^\]]*)\]", data)}
    assert boxes == {(0, 0, 596, 843)}, f"not A4 portrait: {boxes}"
    assert len(re.findall(rb"/Type\s*/Page\b", data)) >= 2


def test_offline_page_refuses_and_records_every_other_request(chromium, tmp_path):
    page_file = tmp_path / "greedy.html"
    page_file.write_text(
        '<!DOCTYPE html><title>t</title><script>window.failed = 0; const fail = () => { window.failed++; };</script>'
        '<img src="x" onerror="fail()"><link rel="stylesheet" href="https://cdn.invalid/s.css" onerror="fail()">'
        '<script>fetch("http://192.0.2.1/beacon").catch(fail)</script>', encoding="utf-8")
    with offline_page(chromium, page_file, timeout_s=10) as offline:
        offline.goto()
        offline.page.wait_for_function("window.failed === 3")
    assert sorted(offline.refused) == sorted([(tmp_path / "x").as_uri(), "https://cdn.invalid/s.css", "http://192.0.2.1/beacon"])


def test_find_chromium_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(BrowserUnavailable, match="HARNESS_CHROMIUM"):
        find_chromium()
    monkeypatch.delenv("HARNESS_CHROMIUM")
    monkeypatch.setattr("harness.browser.DEBIAN_CHROMIUM", str(tmp_path / "absent"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ChromiumMissing, match="apt-get install -y chromium"):
        find_chromium()


def test_deadline_stops_a_hung_page(chromium, tmp_path):
    # `chromium` only for the skip/fail decision; the hung browser must not be the session's,
    # and Playwright's sync API runs one browser driver per thread
    hung = tmp_path / "hung.html"
    hung.write_text("<!DOCTYPE html><title>t</title><script>setTimeout(() => { for (;;) {} }, 10)</script>", encoding="utf-8")

    def hang() -> None:
        with launch_chromium(timeout_s=30) as browser, offline_page(browser, hung, timeout_s=10) as offline:
            offline.goto()
            with deadline(browser, 2):
                offline.page.evaluate("new Promise(resolve => setTimeout(resolve, 60_000))")

    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(TimeoutError, match="took longer than 2 s"):
            pool.submit(hang).result(timeout=60)
