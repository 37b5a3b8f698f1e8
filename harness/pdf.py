"""`harness report --pdf`: print an HTML report to an A4 PDF with headless Chromium, offline.

The PDF is what Chromium's own "Print to PDF" makes of the report with the print stylesheet,
backgrounds included, so the HTML report stays the one source of the layout.  The page may
load nothing but the report file itself (harness.browser.offline_page), and the whole job,
from starting Chromium to the last byte written, is bounded by `timeout_s`.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.browser import launch_chromium, offline_page

A4_MARGINS = {"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"}


def write_pdf(html_path: str | Path, pdf_path: str | Path, *, timeout_s: float = 60) -> Path:
    """Render the HTML file `html_path` to the A4 PDF `pdf_path` and return `pdf_path`.

    Raises harness.browser.BrowserUnavailable when Chromium or Playwright is missing (the message
    says how to install it) and TimeoutError when the job takes longer than `timeout_s`."""
    html_path, pdf_path = Path(html_path), Path(pdf_path)
    if not html_path.is_file():
        raise FileNotFoundError(f"no HTML report at {html_path}: write it first (harness report RESULTS --out FILE)")
    if not _event_loop_running():
        return _print(html_path, pdf_path, timeout_s)
    # Playwright's sync API cannot start inside a running event loop (an async caller, or a
    # thread already driving a browser with it): print from a thread of its own.
    with ThreadPoolExecutor(1, thread_name_prefix="write-pdf") as pool:
        return pool.submit(_print, html_path, pdf_path, timeout_s).result(timeout=timeout_s + 30)


def _event_loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _print(html_path: Path, pdf_path: Path, timeout_s: float) -> Path:
    tmp = pdf_path.with_name(pdf_path.name + ".tmp")
    with launch_chromium(timeout_s=timeout_s, deadline_s=timeout_s) as browser:
        with offline_page(browser, html_path, timeout_s=timeout_s) as offline:
            offline.goto()
            page = offline.page
            page.evaluate("document.fonts.ready.then(() => true)")
            # what a person's Print does first: the report may open its evidence for paper
            page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
            page.pdf(path=str(tmp), format="A4", print_background=True, prefer_css_page_size=False, margin=A4_MARGINS)
    tmp.replace(pdf_path)
    return pdf_path
