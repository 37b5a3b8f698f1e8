"""The robustness section of a device profile: the test parameters (PIXIT) of the robustness
suites, each optional with a default a small field device should meet.

    robustness:
      recovery_time_ms: 2000      # after an attack ends, the device answers again within this
      attack_duration_ms: 2000    # how long each flood, storm and idle hold lasts
      flood_rate: 500             # requests per second of the request flood
      storm_connections: 200      # connections opened and dropped by the connection storm
      idle_connections: 20        # connections held open, idle, while the monitor reads
      slow_byte_interval_ms: 20   # pause between the bytes of a dribbled frame
      monitor_interval_ms: 50     # how often the liveness monitor reads the known points
      monitor_timeout_ms: 1000    # a monitor read with no answer within this is "missing"
      fuzz_examples: 300          # generated inputs per fuzzing case (before shrinking)
      degraded_ok: false          # true: the device may miss monitor reads DURING an attack,
                                  # as long as it recovers in time (the essential function
                                  # may pause); false: it must keep answering throughout

Errors name the file, the line and the field, like the rest of the profile.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .profile_doc import ProfileDoc, read_int, read_mapping


@dataclass(frozen=True)
class RobustnessSection:
    recovery_time_ms: int = 2000
    attack_duration_ms: int = 2000
    flood_rate: int = 500
    storm_connections: int = 200
    idle_connections: int = 20
    slow_byte_interval_ms: int = 20
    monitor_interval_ms: int = 50
    monitor_timeout_ms: int = 1000
    fuzz_examples: int = 300
    degraded_ok: bool = False


# field -> (lowest, highest) accepted
_LIMITS = {
    "recovery_time_ms": (0, 600_000),
    "attack_duration_ms": (100, 600_000),
    "flood_rate": (1, 1_000_000),
    "storm_connections": (1, 100_000),
    "idle_connections": (1, 10_000),
    "slow_byte_interval_ms": (0, 10_000),
    "monitor_interval_ms": (5, 60_000),
    "monitor_timeout_ms": (10, 60_000),
    "fuzz_examples": (1, 1_000_000),
}


def parse_robustness_section(doc: ProfileDoc, value) -> RobustnessSection:
    names = tuple(f.name for f in fields(RobustnessSection))
    raw = read_mapping(doc, value or {}, "robustness", names)
    values: dict = {}
    for name, (lo, hi) in _LIMITS.items():
        if name in raw:
            values[name] = read_int(doc, raw[name], f"robustness.{name}", lo, hi)
    if "degraded_ok" in raw:
        if not isinstance(raw["degraded_ok"], bool):
            raise doc.error("robustness.degraded_ok", f"expected true or false, got {raw['degraded_ok']!r}")
        values["degraded_ok"] = raw["degraded_ok"]
    return RobustnessSection(**values)


def robustness_summary(section: RobustnessSection) -> dict:
    """The section as results.json's profile parameters show it."""
    return {f.name: getattr(section, f.name) for f in fields(RobustnessSection)}
