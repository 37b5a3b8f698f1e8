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
      shrink_time_ms: 120000      # at most this long shrinking one failure; the simplest input
                                  # found by then is the evidence
      degraded_ok: false          # true: the device may miss monitor reads DURING an attack,
                                  # as long as it recovers in time (the essential function
                                  # may pause); false: it must keep answering throughout
      restart_command: [./power-cycle.sh, "{host}"]   # optional: how to bring a dead device
                                  # back (argv, run without a shell; {host} and {port} are the
                                  # target's), so an input that kills it can still be shrunk
      restart_timeout_ms: 30000   # after the command, the device answers again within this
      restart_limit: 50           # restarts per case at most (shrinking restarts after each kill)

Errors name the file, the line and the field, like the rest of the profile.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, fields

from .profile_doc import ProfileDoc, read_int, read_list, read_mapping

RESTART_PLACEHOLDERS = ("host", "port")  # what a restart command's arguments may name in braces


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
    shrink_time_ms: int = 120000
    degraded_ok: bool = False
    restart_command: tuple[str, ...] = ()  # empty: the harness cannot restart the device
    restart_timeout_ms: int = 30000
    restart_limit: int = 50


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
    "shrink_time_ms": (0, 3_600_000),
    "restart_timeout_ms": (100, 3_600_000),
    "restart_limit": (0, 100_000),
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
    if "restart_command" in raw:
        values["restart_command"] = _read_restart_command(doc, raw["restart_command"])
    return RobustnessSection(**values)


def _read_restart_command(doc: ProfileDoc, value) -> tuple[str, ...]:
    path = "robustness.restart_command"
    argv = read_list(doc, value, path, '[systemctl, restart, my-plc] or [./restart.sh, "{host}", "{port}"]')
    for n, arg in enumerate(argv):
        if isinstance(arg, bool):
            raise doc.error(path, f"argument {n + 1}: YAML read it as {arg!r}; quote it (\"true\") or give the full path")
        if not isinstance(arg, (str, int)):
            raise doc.error(path, f"argument {n + 1}: expected text, got {arg!r}")
        try:
            named = [name for _text, name, _spec, _conv in string.Formatter().parse(str(arg)) if name is not None]
        except ValueError as exc:
            raise doc.error(path, f"argument {n + 1} {str(arg)!r}: {exc} (write a literal brace as {{{{ or }}}})") from None
        unknown = [name for name in named if name not in RESTART_PLACEHOLDERS]
        if unknown:
            raise doc.error(path, f"argument {n + 1} {str(arg)!r} names {{{unknown[0]}}}; the placeholders are "
                            + ", ".join(f"{{{p}}}" for p in RESTART_PLACEHOLDERS))
    return tuple(str(arg) for arg in argv)


def robustness_summary(section: RobustnessSection) -> dict:
    """The section as results.json's profile parameters show it."""
    summary = {f.name: getattr(section, f.name) for f in fields(RobustnessSection)}
    summary["restart_command"] = list(section.restart_command)
    return summary
