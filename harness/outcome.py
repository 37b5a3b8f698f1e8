"""How a test's ending becomes a verdict (DESIGN section 3).

Kept apart from the plugin so the mapping is one readable table, tested on its own.
"""

from __future__ import annotations

from .conformance import DeviceFailure, HarnessError, Inconclusive, NotApplicable
from .model import Verdict
from .transport.modbus_tcp import TransportError


def classify(excinfo) -> tuple[Verdict, str]:
    """(verdict, message) for a test that ended with `excinfo` (None when it returned)."""
    if excinfo is None:
        return Verdict.PASS, ""
    exc = excinfo.value
    if isinstance(exc, NotApplicable):
        return Verdict.NOT_APPLICABLE, str(exc)
    if isinstance(exc, Inconclusive):
        return Verdict.INCONCLUSIVE, str(exc)
    if isinstance(exc, DeviceFailure):
        return Verdict.FAIL, str(exc)
    if isinstance(exc, AssertionError):
        text = str(exc).split("\nassert ")[0].strip() or "assertion failed"
        return Verdict.FAIL, text
    if isinstance(exc, TransportError):
        # The device did not answer, or closed the connection, where the rule says it answers.
        return Verdict.FAIL, f"{type(exc).__name__}: {exc}"
    if excinfo.typename == "Skipped":
        return Verdict.NOT_APPLICABLE, str(getattr(exc, "msg", exc))
    if isinstance(exc, HarnessError):
        return Verdict.ERROR, str(exc)
    return Verdict.ERROR, f"harness error: {type(exc).__name__}: {exc}"
