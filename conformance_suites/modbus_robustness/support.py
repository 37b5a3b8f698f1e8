"""What the robustness cases share: judging an attack by the liveness monitor's record, and
the device's liveness as a yes/no for the fuzzer."""

from __future__ import annotations

import time

from harness.conformance import fail
from harness.liveness import LivenessMonitor, answers_within
from harness.liveness_modbus import modbus_probe
from harness.model import Evidence

IG = "MODBUS Messaging on TCP/IP Implementation Guide V1.0b"
AP = "MODBUS Application Protocol V1.1b3"
IEC = "IEC 62443-4-2 v1.0 (Edition 1.0, 2019)"
# after an attack, the monitor keeps watching this many intervals so that a relapse shows
SETTLE_INTERVALS = 5


def judge_attack(monitor: LivenessMonitor, evidence: Evidence, rob, attack: tuple[float, float], attack_record: dict) -> None:
    """Wait for recovery, then FAIL the case with the monitor's findings, if any; the attack and
    the monitor's timeline go into the evidence either way."""
    recovery_s = rob.recovery_time_ms / 1000
    monitor.wait_until_ok(recovery_s)
    time.sleep(SETTLE_INTERVALS * rob.monitor_interval_ms / 1000)
    report = monitor.report(attack=attack, recovery_limit_s=recovery_s, tolerate_during=rob.degraded_ok)
    evidence.attack = attack_record
    evidence.monitor = report.to_dict()
    if not report.ok:
        fail("; ".join(report.problems), expected="every monitor read answered correctly"
             + (" after the attack" if rob.degraded_ok else " during and after the attack"),
             observed=report.problems[0])


class Liveness:
    """Does the device answer a read of its known points, within a time? (for the fuzzer)"""

    def __init__(self, dut, checks, timeout_s: float):
        self._probe = modbus_probe(dut.target.host, dut.target.port, dut.unit, checks)
        self._timeout_s = timeout_s

    def __call__(self, within_s: float) -> bool:
        try:
            return answers_within(self._probe, within_s, self._timeout_s)
        finally:
            # A fresh connection for each check: a device that serves one connection at a time
            # would otherwise serve only this one and never see the fuzzer's input.
            self._probe.close()
