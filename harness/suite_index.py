"""Lists a suite's cases (id, title, requirements, level, clause) by collecting it with pytest.

Collection needs neither a target nor a profile, so `harness suites` works offline.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from .conformance import MARKER


class _Collector:
    def __init__(self):
        self.cases: list[dict] = []

    def pytest_collection_finish(self, session):
        for item in session.items:
            marker = item.get_closest_marker(MARKER)
            if marker is not None:
                self.cases.append(dict(marker.kwargs, nodeid=item.nodeid))


def collect_cases(suite_dir: Path) -> list[dict]:
    import pytest

    collector = _Collector()
    with contextlib.redirect_stdout(io.StringIO()):
        pytest.main([str(suite_dir), "--collect-only", "-q", "-p", "no:cacheprovider", "-o", "addopts="], plugins=[collector])
    return collector.cases
