"""The robustness fault `ua-lose-writes[:every=N]`: a firmware that loses acknowledged writes.

A Write of a device point's Value that the point would accept is answered Good, as Part 4 v1.04
§5.10.4.1 says only a written value may be, but the value is not stored: a Read afterwards
still returns the old value, and the Modbus face and subscriptions see no change.  Every such
write is lost, or with `:every=N` every Nth one (the Nth, 2Nth, ...), counted over the whole
server, all sessions together.  A write the point refuses (wrong type, out of range) is still
refused with its Bad code.  The robustness suite's stateful case must find such a loss by
itself and shrink it to the shortest sequence of writes and reads that shows it
(ROB-UA-STATEFUL-WRITES).

Only a server started with the fault gets this model (`LosingWrites`, handed to the Write
service in place of the device model), so the fault-free path never checks for it.
"""

from __future__ import annotations

import logging
from typing import Any

from ..device_model import DeviceModel

log = logging.getLogger("simulators.opcua")


class LosingWrites:
    """The device model as the OPC UA Write service sees it with the fault: every `every`-th
    write that the point would accept is validated and then dropped; everything else (reads
    of the model, the other writes) goes to the real model."""

    def __init__(self, model: DeviceModel, every: int = 1):
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self._model = model
        self.every = every
        self.accepted = 0  # writes the points would accept, lost or not
        self.lost = 0

    def __getattr__(self, name: str) -> Any:  # value(), raw(), points, ...: the real model's
        return getattr(self._model, name)

    def write(self, name: str, value: Any, *, notify: bool = True) -> None:
        self._model.check(name, value)  # PointValueError as the real write: a refused write is refused
        self.accepted += 1
        if self.accepted % self.every:
            self._model.write(name, value, notify=notify)
            return
        self.lost += 1
        log.warning("fault ua-lose-writes: the write of %r to %s is answered Good and not stored", value, name)
