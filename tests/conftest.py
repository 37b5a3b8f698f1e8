"""Shared fixtures of the project's own tests: the example profile and a running simulator."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from harness.profile import example_profile_path, load_profile

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def example_profile():
    return load_profile(example_profile_path())


@pytest.fixture
def simulator(example_profile):
    """The bundled Modbus simulator of the example device, on a free loopback port."""
    from simulators.modbus.server import start_in_thread

    with start_in_thread(example_profile) as sim:
        yield sim


# Runs the tests make (certify, demo, matrix) go to a throwaway archive, never the user's
# ~/.local/share one; subprocesses inherit it.
if "HARNESS_ARCHIVE" not in os.environ:
    os.environ["HARNESS_ARCHIVE"] = str(Path(tempfile.mkdtemp(prefix="harness-test-archive-")) / "runs.sqlite")


# The browser tests save screenshots of the reports for a person to look at; say where, also
# under xdist, whose controller loads only this conftest.
SCREENSHOTS = Path(__file__).resolve().parents[1] / "out" / "test-screenshots"
_SESSION_START = time.time()


def pytest_terminal_summary(terminalreporter) -> None:
    shots = sorted(p for p in SCREENSHOTS.glob("*.png") if p.stat().st_mtime >= _SESSION_START) if SCREENSHOTS.is_dir() else []
    if shots:
        terminalreporter.write_line(f"report screenshots for a person to look at ({SCREENSHOTS.relative_to(SCREENSHOTS.parents[1])}/): "
                                    + ", ".join(p.name for p in shots))
