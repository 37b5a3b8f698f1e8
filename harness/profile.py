"""Device profile: load and validate the YAML file that describes one device (DESIGN §5).

A profile holds the device's identity, its claims (PICS: supported function codes, device
identification level, outstanding transactions), the test parameters (PIXIT: unit ids, table
extents, writable test addresses, response timeout) and its typed data points.  The same
profile drives the simulator and selects the conformance cases that apply to a real device.

Every error names the file, the line and the field, and says how to fix it:

    example.yaml:31: modbus.tables.coils.count: expected a whole number from 1 to 65536, got 'many'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .codec.modbus import datatypes
from .codec.modbus.constants import FunctionCode, Table

SCHEMA = "harness.profile/1"
DEVICE_FIELDS = (
    "vendor_name",
    "product_code",
    "revision",
    "vendor_url",
    "product_name",
    "model_name",
    "user_application_name",
)
ID_LEVELS = ("basic", "regular", "extended")


class ProfileError(ValueError):
    """A profile that cannot be used; the message names file, line and field."""

    def __init__(self, source: str, line: int | None, path: str, message: str):
        self.source, self.line, self.path, self.problem = source, line, path, message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}")


@dataclass(frozen=True)
class AddressRange:
    start: int
    count: int

    @property
    def last(self) -> int:
        return self.start + self.count - 1

    def contains(self, address: int, quantity: int = 1) -> bool:
        return self.start <= address and address + quantity - 1 <= self.last


@dataclass(frozen=True)
class Point:
    name: str
    table: Table
    address: int
    type: str
    value: Any = None
    word_order: str = "big"
    length: int = 0  # characters, strings only
    writable: bool = False

    @property
    def size(self) -> int:
        """Number of bits or registers the point occupies."""
        return 1 if self.table.is_bit else datatypes.register_count(self.type, self.length)

    def words(self) -> list[int]:
        return datatypes.encode(self.type, self.value, self.word_order, self.length)


@dataclass(frozen=True)
class DeviceIdClaim:
    level: str = "basic"
    individual_access: bool = True
    extra_objects: dict[int, str] = field(default_factory=dict)  # 0x80..0xFF

    @property
    def conformity_level(self) -> int:
        code = ID_LEVELS.index(self.level) + 1
        return code | (0x80 if self.individual_access else 0)


@dataclass(frozen=True)
class ModbusSection:
    function_codes: frozenset[int]
    unit_ids: tuple[int, ...]
    response_timeout_s: float
    max_outstanding: int
    tables: dict[Table, AddressRange]
    writable: dict[Table, AddressRange]
    device_identification: DeviceIdClaim | None

    def claims(self, function_code: int) -> bool:
        return int(function_code) in self.function_codes

    @property
    def unit_id(self) -> int:
        return self.unit_ids[0]


@dataclass(frozen=True)
class Profile:
    source: str
    device: dict[str, str]
    modbus: ModbusSection | None
    points: tuple[Point, ...]

    @property
    def name(self) -> str:
        return f"{self.device.get('vendor_name', '?')} {self.device.get('product_code', '?')}"

    def device_id_objects(self) -> dict[int, str]:
        """Read Device Identification objects the device holds, by object id."""
        objects = {i: self.device[f] for i, f in enumerate(DEVICE_FIELDS) if self.device.get(f)}
        if self.modbus and self.modbus.device_identification:
            objects.update(self.modbus.device_identification.extra_objects)
        return objects

    def points_in(self, table: Table) -> list[Point]:
        return [p for p in self.points if p.table is table]


# --------------------------------------------------------------------------- loading


class _Doc:
    """Plain YAML values plus the line of every field, for error messages."""

    def __init__(self, source: str, text: str):
        self.source = source
        self.lines: dict[str, int] = {}
        try:
            node = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else None
            raise ProfileError(source, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
        if node is None:
            raise ProfileError(source, 1, "", "the file is empty; start from simulators/profiles/example-device.yaml")
        self.data = self._convert(node, "")

    def _convert(self, node, path: str):
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out = {}
            for key_node, value_node in node.value:
                key = key_node.value
                if key_node.tag == "tag:yaml.org,2002:int":
                    key = int(key, 0)  # e.g. extended device identification object ids
                child = f"{path}.{key}" if path else str(key)
                if key in out:
                    raise ProfileError(self.source, key_node.start_mark.line + 1, child, "appears twice")
                out[key] = self._convert(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(v, f"{path}[{i}]") for i, v in enumerate(node.value)]
        return yaml.safe_load(yaml.serialize(node))

    def error(self, path: str, message: str) -> ProfileError:
        line = self.lines.get(path)
        probe = path
        while line is None and probe:
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
            line = self.lines.get(probe)
        return ProfileError(self.source, line, path, message)


def _mapping(doc: _Doc, value, path: str, allowed: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise doc.error(path, f"expected a mapping of fields, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise doc.error(f"{path}.{key}" if path else key, f"unknown field; allowed here: {', '.join(allowed)}")
    return value


def _int(doc: _Doc, value, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise doc.error(path, f"expected a whole number from {lo} to {hi}, got {value!r}")
    return value


def _range(doc: _Doc, value, path: str) -> AddressRange:
    m = _mapping(doc, value, path, ("start", "count"))
    if "start" not in m or "count" not in m:
        raise doc.error(path, "needs both start and count, e.g. {start: 0, count: 100}")
    start = _int(doc, m["start"], f"{path}.start", 0, 65535)
    count = _int(doc, m["count"], f"{path}.count", 1, 65536)
    if start + count > 65536:
        raise doc.error(path, f"start {start} + count {count} runs past address 65535")
    return AddressRange(start, count)


def _modbus(doc: _Doc, value) -> ModbusSection:
    path = "modbus"
    m = _mapping(
        doc,
        value,
        path,
        ("function_codes", "unit_ids", "response_timeout_ms", "max_outstanding", "tables", "writable", "device_identification"),
    )
    fcs = m.get("function_codes")
    if not isinstance(fcs, list) or not fcs:
        raise doc.error(f"{path}.function_codes", "list the function codes the device supports, e.g. [1, 2, 3, 4, 5, 6, 15, 16]")
    known = {int(f) for f in FunctionCode}
    for i, fc in enumerate(fcs):
        _int(doc, fc, f"{path}.function_codes[{i}]", 1, 127)
        if fc not in known:
            raise doc.error(f"{path}.function_codes[{i}]", f"function code {fc} is not one the harness knows: {sorted(known)}")
    unit_ids = m.get("unit_ids", [1])
    if not isinstance(unit_ids, list) or not unit_ids:
        raise doc.error(f"{path}.unit_ids", "expected a list of unit ids, e.g. [1]")
    for i, u in enumerate(unit_ids):
        _int(doc, u, f"{path}.unit_ids[{i}]", 0, 255)
    timeout_ms = m.get("response_timeout_ms", 1000)
    _int(doc, timeout_ms, f"{path}.response_timeout_ms", 1, 600_000)
    max_out = _int(doc, m.get("max_outstanding", 1), f"{path}.max_outstanding", 1, 65535)

    tables: dict[Table, AddressRange] = {}
    raw_tables = _mapping(doc, m.get("tables", {}), f"{path}.tables", tuple(t.value for t in Table))
    for name, rng in raw_tables.items():
        tables[Table(name)] = _range(doc, rng, f"{path}.tables.{name}")
    writable: dict[Table, AddressRange] = {}
    raw_writable = _mapping(doc, m.get("writable", {}), f"{path}.writable", ("coils", "holding_registers"))
    for name, rng in raw_writable.items():
        table = Table(name)
        r = _range(doc, rng, f"{path}.writable.{name}")
        if table not in tables or not tables[table].contains(r.start, r.count):
            raise doc.error(f"{path}.writable.{name}", f"range {r.start}..{r.last} is not inside modbus.tables.{name}")
        writable[table] = r

    device_id = None
    if "device_identification" in m:
        d = _mapping(doc, m["device_identification"], f"{path}.device_identification", ("level", "individual_access", "objects"))
        level = d.get("level", "basic")
        if level not in ID_LEVELS:
            raise doc.error(f"{path}.device_identification.level", f"expected one of {', '.join(ID_LEVELS)}, got {level!r}")
        extra: dict[int, str] = {}
        for key, val in (d.get("objects") or {}).items():
            _int(doc, key, f"{path}.device_identification.objects.{key}", 0x80, 0xFF)
            extra[key] = str(val)
        device_id = DeviceIdClaim(level, bool(d.get("individual_access", True)), extra)
    if 43 in fcs and device_id is None:
        device_id = DeviceIdClaim()

    return ModbusSection(
        function_codes=frozenset(fcs),
        unit_ids=tuple(unit_ids),
        response_timeout_s=timeout_ms / 1000.0,
        max_outstanding=max_out,
        tables=tables,
        writable=writable,
        device_identification=device_id,
    )


def _points(doc: _Doc, value, modbus: ModbusSection | None) -> tuple[Point, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise doc.error("points", "expected a list of points")
    points: list[Point] = []
    names: set[str] = set()
    occupied: dict[tuple[Table, int], str] = {}
    for i, raw in enumerate(value):
        path = f"points[{i}]"
        p = _mapping(doc, raw, path, ("name", "table", "address", "type", "value", "word_order", "length", "writable"))
        for required in ("name", "table", "address", "type"):
            if required not in p:
                raise doc.error(path, f"missing field {required!r}")
        name = str(p["name"])
        if name in names:
            raise doc.error(f"{path}.name", f"point name {name!r} is used twice")
        names.add(name)
        if p["table"] not in [t.value for t in Table]:
            raise doc.error(f"{path}.table", f"expected one of {', '.join(t.value for t in Table)}, got {p['table']!r}")
        table = Table(p["table"])
        ptype = p["type"]
        if ptype not in datatypes.POINT_TYPES:
            raise doc.error(f"{path}.type", f"expected one of {', '.join(datatypes.POINT_TYPES)}, got {ptype!r}")
        if table.is_bit != (ptype == "bool"):
            hint = "bit tables (coils, discrete_inputs) hold bool points" if table.is_bit else "register tables hold numeric or string points"
            raise doc.error(f"{path}.type", f"type {ptype} does not fit table {table.value}: {hint}")
        word_order = p.get("word_order", "big")
        if word_order not in datatypes.WORD_ORDERS:
            raise doc.error(f"{path}.word_order", f"expected big or little, got {word_order!r}")
        length = 0
        if ptype == "string":
            if "length" not in p:
                raise doc.error(path, "a string point needs length (bytes), e.g. length: 16")
            length = _int(doc, p["length"], f"{path}.length", 1, 250)
        address = _int(doc, p["address"], f"{path}.address", 0, 65535)
        point = Point(name, table, address, ptype, p.get("value"), word_order, length, bool(p.get("writable", False)))
        if point.value is not None:
            problem = datatypes.check_value(ptype, point.value, length)
            if problem:
                raise doc.error(f"{path}.value", problem)
        if point.writable and table not in (Table.COILS, Table.HOLDING_REGISTERS):
            raise doc.error(f"{path}.writable", f"{table.value} are read-only in Modbus")
        if modbus is not None:
            extent = modbus.tables.get(table)
            if extent is None or not extent.contains(address, point.size):
                raise doc.error(f"{path}.address", f"{address}..{address + point.size - 1} is outside modbus.tables.{table.value}")
        for a in range(address, address + point.size):
            if (table, a) in occupied:
                raise doc.error(f"{path}.address", f"overlaps point {occupied[(table, a)]!r} at address {a}")
            occupied[(table, a)] = name
        points.append(point)
    return tuple(points)


def load_profile(path: str | Path) -> Profile:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(str(path), None, "", f"cannot read the profile: {exc.strerror}") from None
    return parse_profile(text, str(path))


def parse_profile(text: str, source: str = "<profile>") -> Profile:
    doc = _Doc(source, text)
    top = _mapping(doc, doc.data, "", ("profile", "device", "modbus", "points", "opcua", "mqtt"))
    if top.get("profile") != SCHEMA:
        raise doc.error("profile", f"expected 'profile: {SCHEMA}' at the top, got {top.get('profile')!r}")
    device = _mapping(doc, top.get("device", {}), "device", DEVICE_FIELDS)
    device = {k: str(v) for k, v in device.items() if v is not None}
    modbus = _modbus(doc, top["modbus"]) if "modbus" in top else None
    points = _points(doc, top.get("points"), modbus)
    return Profile(source=source, device=device, modbus=modbus, points=points)


def example_profile_path() -> Path:
    return Path(__file__).resolve().parent.parent / "simulators" / "profiles" / "example-device.yaml"


def profile_summary(profile: Profile) -> dict:
    """The `profile` block of results.json: identity, claims (PICS) and parameters (PIXIT)."""
    block: dict = {"source": profile.source, "device": dict(profile.device)}
    mb = profile.modbus
    if mb is not None:
        block["claims"] = {
            "modbus": {
                "function_codes": sorted(mb.function_codes),
                "max_outstanding": mb.max_outstanding,
                "device_identification": (
                    {"level": mb.device_identification.level, "individual_access": mb.device_identification.individual_access}
                    if mb.device_identification
                    else None
                ),
            }
        }
        block["parameters"] = {
            "modbus": {
                "unit_ids": list(mb.unit_ids),
                "response_timeout_ms": round(mb.response_timeout_s * 1000),
                "tables": {t.value: {"start": r.start, "count": r.count} for t, r in mb.tables.items()},
                "writable": {t.value: {"start": r.start, "count": r.count} for t, r in mb.writable.items()},
            }
        }
    block["points"] = len(profile.points)
    return block
