"""Fixtures of the browser tests: one headless Chromium per test module, the reports under test
(made once per test run, also under xdist) and pages opened offline with their console watched.

Chromium is Debian's, found by harness.browser.  Without it the tests skip on a developer's
machine and fail under CI (CI=true), where a missing browser must not pass unnoticed; a Chromium
that is there but does not start is an error everywhere.
"""

from __future__ import annotations

import base64
import copy
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from e2e.helpers import certify
from harness.browser import ChromiumMissing, deadline, find_chromium, launch_chromium, offline_page
from harness.profile import example_profile_path, load_profile
from reports.html import write_html

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "out" / "test-screenshots"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
# the planted fault of the failing device: the unit id of every FC 3 answer is off by one
FAULT = "wrong-unit:fc=3"
# a third of the suite (34 cases), the failing ones among them, so that pages and screenshots are quick
SELECTION = "MB-FC03 or MB-MBAP or PICS or MB-FC43 or MB-VALUES or MB-ORDER or MB-FC06"
# name of the report file -> (which run, language); see `reports`
REPORTS = {
    "en-pass": ("pass", "en"),
    "en-fail": ("fail", "en"),
    "zh-CN-pass": ("pass", "zh-CN"),
    "zh-CN-fail": ("fail", "zh-CN"),
    "xss": ("xss", "en"),
    "identity-mismatch": ("identity-mismatch", "en"),
}
PER_TEST_DEADLINE_S = 60


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """The module's headless Chromium (a Playwright Browser).  Module-scoped, not session: while
    Playwright's sync API is up, its event loop is the thread's running loop, and every test of
    another module that calls asyncio.run() on the same worker would fail."""
    try:
        find_chromium()
    except ChromiumMissing as exc:
        if _in_ci():
            pytest.fail(f"CI=true and the browser tests cannot run: {exc}")
        pytest.skip(f"browser tests skipped here (under CI=true they fail instead): {exc}")
    with launch_chromium(timeout_s=30) as browser:
        yield browser


@pytest.fixture(autouse=True)
def _bounded(request) -> Iterator[None]:
    """No browser test can hang the run: past the deadline Chromium is stopped and the test fails."""
    if "chromium" not in request.fixturenames:
        yield
        return
    with deadline(request.getfixturevalue("chromium"), PER_TEST_DEADLINE_S) as watchdog:
        yield
    if watchdog.fired:
        pytest.fail(f"the test ran longer than {PER_TEST_DEADLINE_S} s, so Chromium was stopped; "
                    "the browser tests after it fail too")


@dataclass
class Reports:
    """The reports under test: `html[name]` is the file, `results[run]` the dict it was made from."""

    directory: Path
    results: dict[str, dict]
    html: dict[str, Path]

    def results_of(self, name: str) -> dict:
        return self.results[REPORTS[name][0]]


def _certify_runs(directory: Path) -> dict[str, dict]:
    """Real certify runs of the bundled Modbus simulator, clean and with the planted fault
    (the two in parallel: each is a subprocess)."""
    from simulators.modbus.faults import parse_fault
    from simulators.modbus.server import start_in_thread

    profile = load_profile(example_profile_path())

    def run(name: str, faults: list) -> dict:
        with start_in_thread(profile, faults) as sim:
            code, data, output = certify(f"modbus+tcp://{sim.host}:{sim.port}", directory / name, "-k", SELECTION)
        assert data is not None, output
        assert code == (1 if faults else 0), output
        return data

    with ThreadPoolExecutor(2) as pool:
        clean = pool.submit(run, "pass", [])
        faulty = pool.submit(run, "fail", [parse_fault(FAULT)])
        return {"pass": clean.result(timeout=300), "fail": faulty.result(timeout=300)}


def hostile(results: dict) -> dict:
    """`results` with device-supplied strings that try to run script, in the places a device fills."""
    doc = copy.deepcopy(results)
    doc["profile"]["device"].update(vendor_name=SCRIPT, product_name=IMG)
    doc["dut"]["objects"].update(VendorName=SCRIPT, ProductName=IMG)
    failed = next(c for c in doc["cases"] if c["verdict"] == "FAIL")
    failed["message"] = f"device said {SCRIPT} and {IMG}"
    failed["evidence"]["observed"] = IMG
    failed["evidence"]["frames"][-1]["summary"] = SCRIPT
    return doc


def identity_mismatch(results: dict) -> dict:
    """`results` of a device that answers with another vendor than its profile declares."""
    doc = copy.deepcopy(results)
    doc["dut"]["objects"]["VendorName"] = "Some Other Vendor Ltd"
    return doc


def _build(directory: Path) -> None:
    runs = _certify_runs(directory)
    runs["xss"] = hostile(runs["fail"])
    runs["identity-mismatch"] = identity_mismatch(runs["pass"])
    (directory / "results.json").write_text(json.dumps(runs), encoding="utf-8")


@pytest.fixture(scope="session")
def reports(tmp_path_factory) -> Reports:
    """The certify runs are made once per test run: under xdist the first worker makes them and
    the others wait on a lock and reuse them.  Each worker renders the HTML itself."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    directory = shared / "browser-reports"
    directory.mkdir(exist_ok=True)
    with open(shared / "browser-reports.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (directory / "results.json").exists():
            _build(directory)
    runs = json.loads((directory / "results.json").read_text(encoding="utf-8"))
    rendered = tmp_path_factory.mktemp("rendered")
    html = {name: write_html(runs[run], rendered / f"report-{name}.html", lang=lang)
            for name, (run, lang) in REPORTS.items()}
    return Reports(directory, runs, html)


def settle(page: Any) -> None:
    """Wait until the fonts are loaded and two frames have been painted."""
    page.evaluate("document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))))")


def full_page_png(page: Any, path: Path) -> Path:
    """A PNG of the whole page.  Chromium's own capture beyond the viewport with fast PNG
    encoding: two to three times quicker than page.screenshot(full_page=True) on a long report."""
    session = page.context.new_cdp_session(page)
    try:
        size = session.send("Page.getLayoutMetrics")["cssContentSize"]
        shot = session.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True, "optimizeForSpeed": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    finally:
        session.detach()
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


@dataclass
class ReportPage:
    """A report open in Chromium, offline, with everything it tried that it should not have."""

    page: Any
    refused: list[str]
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def visible_case_ids(self) -> list[str]:
        return self.page.eval_on_selector_all(
            "table#cases tbody tr[data-case]", "rows => rows.filter(r => !r.hidden && r.offsetParent !== null).map(r => r.dataset.case)")


@pytest.fixture
def open_report(chromium) -> Iterator[Callable[..., ReportPage]]:
    """`open_report(path)` opens a report file in a fresh offline context; closed after the test."""
    with ExitStack() as stack:
        def open_(path: Path, *, width: int = 1280, height: int = 900) -> ReportPage:
            offline = stack.enter_context(offline_page(chromium, path, timeout_s=10, viewport=(width, height)))
            report = ReportPage(offline.page, offline.refused)
            offline.page.on("console", lambda m: report.console_errors.append(m.text) if m.type == "error" else None)
            offline.page.on("pageerror", lambda e: report.page_errors.append(str(e)))

            def on_dialog(dialog: Any) -> None:
                report.dialogs.append(f"{dialog.type}: {dialog.message}")
                dialog.dismiss()

            offline.page.on("dialog", on_dialog)
            offline.goto()
            settle(offline.page)
            return report

        yield open_
