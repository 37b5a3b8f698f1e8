"""One simulated device's data points, shared by all its protocol faces.

The Modbus tables (`simulators.modbus.datastore.DataStore`) are the device's memory: a point
with a Modbus place lives in its registers or bits, so a Modbus write *is* a change of the
point.  Points the profile gives no Modbus place are held here.  Other faces (OPC UA) see a
point as its engineering value, the raw value times the profile's `scale`, and are told of
every change, whichever face made it:

    model = DeviceModel(profile, store)
    model.subscribe(lambda name, value: ...)   # called after a Modbus or OPC UA write
    model.write("setpoint", 2.5)               # validates, stores, tells the subscribers

All calls happen on the simulator's event loop; nothing here blocks or locks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.codec.modbus import datatypes
from harness.codec.modbus.constants import Table
from harness.profile import Point, Profile, engineering_value

from .modbus.datastore import DataStore

Listener = Callable[[str, Any], None]


class PointValueError(ValueError):
    """A value the point cannot hold; `kind` is "type" or "range" (the faces map it to a status)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class DeviceModel:
    def __init__(self, profile: Profile, store: DataStore):
        self.profile = profile
        self.store = store
        self.points: dict[str, Point] = {p.name: p for p in profile.points}
        self._held: dict[str, Any] = {p.name: p.value for p in profile.points if p.table is None}
        self._at: dict[tuple[Table, int], str] = {}
        for p in profile.points:
            if p.table is not None:
                for address in range(p.address, p.address + p.size):
                    self._at[(p.table, address)] = p.name
        self._listeners: list[Listener] = []
        self._hooked = False

    # ------------------------------------------------------------------ reading

    def raw(self, name: str) -> Any:
        """The value as the device stores it (Modbus encoding; a list for an array point)."""
        point = self.points[name]
        if point.table is None:
            return self._held[name]
        return self.store.get_point(name)

    def value(self, name: str) -> Any:
        """The engineering value: raw * scale for a scaled point, else the raw value."""
        return engineering_value(self.points[name], self.raw(name))

    # ------------------------------------------------------------------ writing

    def write(self, name: str, value: Any, *, notify: bool = True) -> None:
        """Store an engineering value; PointValueError if the point cannot hold it."""
        point = self.points[name]
        raw = self._to_raw(point, value)
        if point.table is None:
            self._held[name] = raw
        else:
            self.store.set_point(name, raw)
        if notify:
            self._notify(name)

    def check(self, name: str, value: Any) -> None:
        """PointValueError if the point cannot hold the engineering value (what `write` would
        refuse); nothing is stored."""
        self._to_raw(self.points[name], value)

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(point name, engineering value)` after every change of a point."""
        self._listeners.append(listener)
        if not self._hooked:
            for table in Table:
                self.store.block(table).listeners.append(self._on_modbus_write)
            self._hooked = True

    # ------------------------------------------------------------------ internals

    def _on_modbus_write(self, table: Table, address: int, quantity: int) -> None:
        changed: list[str] = []
        at = self._at
        for a in range(address, address + quantity):
            name = at.get((table, a))
            if name is not None and name not in changed:
                changed.append(name)
        for name in changed:
            self._notify(name)

    def _notify(self, name: str) -> None:
        value = self.value(name)
        for listener in self._listeners:
            listener(name, value)

    @staticmethod
    def _to_raw(point: Point, value: Any) -> Any:
        if point.array:
            if not isinstance(value, (list, tuple)) or len(value) != point.array:
                raise PointValueError("type", f"point {point.name} holds {point.array} values, got {value!r}")
            return [DeviceModel._element_to_raw(point, v) for v in value]
        return DeviceModel._element_to_raw(point, value)

    @staticmethod
    def _element_to_raw(point: Point, value: Any) -> Any:
        if point.scale is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PointValueError("type", f"point {point.name} takes a number, got {value!r}")
            value = value / point.scale
            if point.type not in ("float32", "float64"):
                value = round(value)
        if point.type in ("float32", "float64") and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        problem = datatypes.check_value(point.type, value, point.length)
        if problem:
            kind = "range" if "outside" in problem or "longer" in problem else "type"
            raise PointValueError(kind, f"point {point.name}: {problem}")
        return value
