"""Result model: verdicts, levels, evidence frames and case results (standard library only).

Everything a run produces is expressed in these types, and `results.json` is their JSON
form (`to_dict` / `from_dict`).  Reports, the run archive and the CLI read the JSON, never
pytest objects, so this module is the one place the result format is defined.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

RESULTS_SCHEMA = "harness.results/1"


class Verdict(str, enum.Enum):
    """ISO/IEC 9646 style verdict of one test case."""

    PASS = "PASS"
    FAIL = "FAIL"  # the device broke a rule
    INCONCLUSIVE = "INCONCLUSIVE"  # could not decide (e.g. timing noise)
    NOT_APPLICABLE = "NOT_APPLICABLE"  # the profile's claims exclude the case
    ERROR = "ERROR"  # the harness or the environment failed, not the device


class Level(str, enum.Enum):
    """Requirement level, as the specifications word it (RFC 2119 style)."""

    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"


class Overall(str, enum.Enum):
    """Roll-up of a suite or a claimed profile (DESIGN section 3)."""

    COMPLIANT = "COMPLIANT"
    CONDITIONALLY_COMPLIANT = "CONDITIONALLY_COMPLIANT"
    NOT_COMPLIANT = "NOT_COMPLIANT"
    INCOMPLETE = "INCOMPLETE"


@dataclass
class Frame:
    """One message on the wire, as the harness sent or received it.

    `direction` is "tx" (harness -> device) or "rx" (device -> harness).  `t_mono` is
    time.monotonic() for ordering and latency; `t_wall` is time.time() for the pcap.
    `conn` names the TCP connection (client ip:port -> server ip:port) the frame travelled on.
    """

    direction: str
    t_mono: float
    t_wall: float
    hex: str
    summary: str
    conn: str = ""

    @property
    def data(self) -> bytes:
        return bytes.fromhex(self.hex)


@dataclass
class Evidence:
    """What a case observed: the frames, and expected versus observed in words.

    Robustness cases add three blocks of plain data: `attack` (what was sent, at what rate),
    `monitor` (the liveness monitor's timeline and what it found, harness.liveness) and
    `replay` (the minimised input that broke the device, with its seed, for `harness replay`).
    """

    frames: list[Frame] = field(default_factory=list)
    expected: str = ""
    observed: str = ""
    notes: list[str] = field(default_factory=list)
    attack: dict[str, Any] | None = None
    monitor: dict[str, Any] | None = None
    replay: dict[str, Any] | None = None


_OPTIONAL_EVIDENCE = ("attack", "monitor", "replay")


@dataclass
class CaseResult:
    """The outcome of one test case, tied to its requirements."""

    id: str
    title: str
    suite: str
    requirements: list[str]
    level: Level
    clause: str
    verdict: Verdict
    message: str = ""
    duration_s: float = 0.0
    nodeid: str = ""
    evidence: Evidence = field(default_factory=Evidence)
    # what the case ran against, for cases that are one cell of a grid, e.g. the
    # interoperability matrix: {"client": "pymodbus", "server": "libmodbus", "scenario": "RT-FLOAT32"}
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["level"] = self.level.value
        data["verdict"] = self.verdict.value
        for block in _OPTIONAL_EVIDENCE:  # only robustness cases have them: keep the others' results as they were
            if data["evidence"][block] is None:
                del data["evidence"][block]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CaseResult":
        ev = data.get("evidence") or {}
        evidence = Evidence(
            frames=[Frame(**f) for f in ev.get("frames", [])],
            expected=ev.get("expected", ""),
            observed=ev.get("observed", ""),
            notes=list(ev.get("notes", [])),
            **{block: ev.get(block) for block in _OPTIONAL_EVIDENCE},
        )
        return cls(
            id=data["id"],
            title=data["title"],
            suite=data["suite"],
            requirements=list(data["requirements"]),
            level=Level(data["level"]),
            clause=data["clause"],
            verdict=Verdict(data["verdict"]),
            message=data.get("message", ""),
            duration_s=float(data.get("duration_s", 0.0)),
            nodeid=data.get("nodeid", ""),
            evidence=evidence,
            tags={str(k): str(v) for k, v in (data.get("tags") or {}).items()},
        )
