"""What the Modbus robustness cases share: the specifications they cite and the device's
liveness as a yes/no for the fuzzer."""

from __future__ import annotations

from harness.liveness import answers_within
from harness.liveness_modbus import modbus_probe

from ..robustness import IEC, judge_attack

IG = "MODBUS Messaging on TCP/IP Implementation Guide V1.0b"
AP = "MODBUS Application Protocol V1.1b3"

__all__ = ["AP", "IEC", "IG", "Liveness", "judge_attack"]


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
