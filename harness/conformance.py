"""What a conformance test uses to declare itself and to give a verdict.

    @case("MB-FC03-QTY-0", "FC03 quantity 0 is refused with exception 03",
          requirements=["MB-AP-6.3-QTY"], level="MUST",
          clause="MODBUS Application Protocol V1.1b3 §6.3")
    def test_fc03_quantity_zero(dut, evidence): ...

A test ends in one of the verdicts of DESIGN section 3:
- returns normally                         -> PASS
- `fail(...)` or a failed `assert`         -> FAIL (the device broke the rule)
- `not_applicable(reason)`                 -> NOT_APPLICABLE (the claims exclude it)
- `inconclusive(reason)`                   -> INCONCLUSIVE (could not decide)
- any other exception (`HarnessError`...)  -> ERROR (the harness or environment failed)
These are never pytest skips: the plugin records them explicitly.
"""

from __future__ import annotations

import pytest

from .model import Level

MARKER = "harness_case"


class NotApplicable(Exception):
    """The device's claims exclude this case."""


class Inconclusive(Exception):
    """The case could not decide (e.g. timing noise)."""


class HarnessError(Exception):
    """The harness or its environment failed; not the device's fault."""


class DeviceFailure(AssertionError):
    """The device broke the rule the case checks."""

    def __init__(self, message: str, expected: str = "", observed: str = ""):
        super().__init__(message)
        self.expected, self.observed = expected, observed


def case(id: str, title: str, *, requirements: list[str], level: str, clause: str, tags: dict[str, str] | None = None):
    """Mark a test (or a `pytest.param`) as a conformance case; `tags` place it in a grid (the matrix)."""
    if not requirements:
        raise ValueError(f"case {id}: name at least one requirement id")
    Level(level)  # raises on anything but MUST / SHOULD / MAY
    if "§" not in clause or (" V" not in clause and " v" not in clause):
        raise ValueError(f"case {id}: clause {clause!r} must carry the spec version and section, e.g. 'MODBUS Application Protocol V1.1b3 §6.3'")
    return getattr(pytest.mark, MARKER)(id=id, title=title, requirements=list(requirements), level=level, clause=clause,
                                        tags=dict(tags or {}))


def param(*values, id: str, title: str, requirements: list[str], level: str, clause: str, tags: dict[str, str] | None = None):
    """A parametrized variant of a case: `pytest.param` carrying its own case marker."""
    return pytest.param(*values, id=id, marks=case(id, title, requirements=requirements, level=level, clause=clause, tags=tags))


def fail(message: str, *, expected: str = "", observed: str = "") -> None:
    """FAIL the case; the plugin files `expected` and `observed` in the case's evidence."""
    raise DeviceFailure(message, expected, observed)


def not_applicable(reason: str) -> None:
    raise NotApplicable(reason)


def inconclusive(reason: str) -> None:
    raise Inconclusive(reason)
