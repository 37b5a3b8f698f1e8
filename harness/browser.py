"""The one place that finds and launches Chromium, through Playwright, for PDFs and browser tests.

The browser is Debian's `chromium` (never a browser build downloaded by `playwright install`):
Playwright only drives it.  It runs headless with the flags that keep it off the network
(no background fetches, no component updates, no sync), and every page is opened in an
*offline context* that refuses every request except the one file it was opened for and keeps
the list of what was refused, so a report that tries to load anything is caught, not served.

Playwright is imported lazily: `import harness.browser` costs nothing where no browser is used.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEBIAN_CHROMIUM = "/usr/bin/chromium"
# Headless Chromium as root, with nothing that phones home: without the background-networking
# flags Chromium tries to reach Google's update and variations servers at start-up.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserUnavailable(RuntimeError):
    """Chromium cannot be used (missing, misconfigured, or it does not start); the message says
    what to do."""


class ChromiumMissing(BrowserUnavailable):
    """No Chromium executable on this machine."""


def find_chromium() -> str:
    """The Chromium executable: $HARNESS_CHROMIUM, else Debian's /usr/bin/chromium, else
    `chromium` or `chromium-browser` on PATH."""
    override = os.environ.get("HARNESS_CHROMIUM")
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise BrowserUnavailable(f"HARNESS_CHROMIUM={override!r} is not an executable file: point it at a Chromium "
                                 f"executable, or unset it to use {DEBIAN_CHROMIUM}")
    if os.path.isfile(DEBIAN_CHROMIUM) and os.access(DEBIAN_CHROMIUM, os.X_OK):
        return DEBIAN_CHROMIUM
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise ChromiumMissing("Chromium was not found (looked at $HARNESS_CHROMIUM, /usr/bin/chromium and PATH): "
                             "install it with `apt-get install -y chromium` (scripts/install-system-packages.sh does), "
                             "or set HARNESS_CHROMIUM to a Chromium executable")


def _sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserUnavailable("the Python package playwright is missing: install the project with "
                                 "`pip install -c constraints.txt -e .` (make setup does); do not run "
                                 "`playwright install`, the harness uses Debian's chromium") from exc
    return sync_playwright


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class _Watchdog:
    """Stops the Chromium processes when a timer runs out.

    The process ids are Chromium's own answer to SystemInfo.getProcessInfo, taken when the timer
    is armed: only processes this launch started.  (Playwright objects cannot be used from the
    timer's thread, so the kill goes through the operating system.)"""

    def __init__(self, browser: Any, seconds: float) -> None:
        self.fired = False
        session = browser.new_browser_cdp_session()
        try:
            info = session.send("SystemInfo.getProcessInfo")["processInfo"]
        finally:
            session.detach()
        # the browser process first: its children exit when it does
        self._pids = [p["id"] for p in sorted(info, key=lambda p: p["type"] != "browser")]
        self._timer = threading.Timer(seconds, self._kill)
        self._timer.daemon = True
        self._timer.start()

    def _kill(self) -> None:
        self.fired = True
        # SIGTERM first: Chromium then stops and reaps its own children
        _signal(self._pids[:1], signal.SIGTERM)
        for _ in range(40):
            if not any(_running(pid) for pid in self._pids):
                return
            time.sleep(0.05)
        _signal([pid for pid in self._pids if _running(pid)], signal.SIGKILL)

    def cancel(self) -> None:
        self._timer.cancel()


@contextmanager
def deadline(browser: Any, seconds: float) -> Iterator[_Watchdog]:
    """Bounds a block of work with `browser`.  Playwright has no timeout on some calls
    (page.pdf, page.evaluate): past `seconds` Chromium is stopped, the call that was waiting
    raises, and the block raises TimeoutError.  The browser is unusable afterwards.
    Yields the watchdog: its `fired` says whether the deadline passed."""
    watchdog = _Watchdog(browser, seconds)
    try:
        yield watchdog
    except Exception as exc:
        if watchdog.fired:
            raise TimeoutError(f"the browser work took longer than {seconds:g} s and Chromium was stopped; "
                               "raise the timeout if the report is very large") from exc
        raise
    finally:
        watchdog.cancel()


@contextmanager
def launch_chromium(timeout_s: float = 30, *, deadline_s: float | None = None) -> Iterator[Any]:
    """A headless Chromium (a Playwright `Browser`), closed on exit.

    `timeout_s` bounds the launch.  `deadline_s`, if given, bounds the whole `with` block
    (see `deadline`)."""
    executable = find_chromium()
    sync_playwright = _sync_playwright()
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_FLAGS),
                                                 headless=True, timeout=timeout_s * 1000)
        except Exception as exc:
            raise BrowserUnavailable(f"Chromium ({executable}) did not start within {timeout_s:g} s: {exc}; "
                                     f"check that `{executable} --headless --no-sandbox --dump-dom about:blank` "
                                     "works on this machine") from exc
        try:
            if deadline_s is None:
                yield browser
            else:
                with deadline(browser, deadline_s):
                    yield browser
        finally:
            try:
                browser.close()
            except Exception:  # noqa: BLE001 - already gone (stopped by a deadline, or crashed)
                pass


@dataclass
class OfflinePage:
    """A page that may load only `allowed_url`; `refused` lists every other URL it asked for."""

    page: Any
    allowed_url: str
    refused: list[str] = field(default_factory=list)

    def goto(self) -> None:
        """Open the allowed file and wait until it and its (inline) resources are loaded."""
        self.page.goto(self.allowed_url, wait_until="load")


@contextmanager
def offline_page(browser: Any, path: str | Path, *, timeout_s: float = 15,
                 viewport: tuple[int, int] = (1280, 900)) -> Iterator[OfflinePage]:
    """A new page in its own context that may fetch only the file at `path` (a file:// URL):
    any other request, to the network or another file, is aborted and recorded in `refused`.
    Every Playwright wait on the page times out after `timeout_s`."""
    allowed_url = Path(path).resolve().as_uri()
    context = browser.new_context(service_workers="block", viewport={"width": viewport[0], "height": viewport[1]})
    context.set_default_timeout(timeout_s * 1000)
    context.set_default_navigation_timeout(timeout_s * 1000)
    page = context.new_page()
    offline = OfflinePage(page=page, allowed_url=allowed_url)

    def route(route: Any) -> None:
        # the fragment is never part of a request URL, so an exact match is the file itself
        if route.request.url == allowed_url:
            route.continue_()
        else:
            offline.refused.append(route.request.url)
            route.abort("blockedbyclient")

    context.route("**/*", route)
    try:
        yield offline
    finally:
        context.close()
