"""Device profile: load and validate the YAML file that describes one device (DESIGN §5).

A profile holds the device's identity, its claims (PICS: supported function codes, device
identification level, outstanding transactions; the OPC UA server profile, security policies
and user tokens), the test parameters (PIXIT: unit ids, table extents, writable test
addresses, response timeout; the OPC UA endpoint path, namespace and test users) and its typed
data points with their mapping onto each protocol (Modbus table and address, OPC UA node id,
engineering unit and scale).  The same profile drives the simulator and selects the
conformance cases that apply to a real device.  The OPC UA section is parsed by
`profile_opcua`; this module owns the file format, the Modbus section and the points.

Every error names the file, the line and the field, and says how to fix it:

    example.yaml:31: modbus.tables.coils.count: expected a whole number from 1 to 65536, got 'many'
"""

from __future__ import annotations

from dataclasses import dataclass, field
import dataclasses
import re
from pathlib import Path
from typing import Any

from .codec.modbus import datatypes
from .codec.modbus.constants import FunctionCode, Table
from .profile_opcua import default_node_id, opcua_summary, parse_opcua_section
from .profile_robustness import RobustnessSection, parse_robustness_section, robustness_summary
from .profile_doc import ProfileError, ProfileDoc, read_int, read_mapping

__all__ = ["ProfileError", "Profile", "Point", "load_profile", "parse_profile"]

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
_NODE_ID_FORM = re.compile(r"^(i=\d+|s=.+|g=[0-9a-fA-F-]{36}|b=[A-Za-z0-9+/=]+)$")


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
    """One data point of the device, with its place in each protocol.

    `value` is the raw value as the Modbus registers hold it (a list of `array` values for an
    array point).  The engineering value other protocols show is `value * scale`; `table` is
    None for a point the device offers only through OPC UA.
    """

    name: str
    table: Table | None
    address: int
    type: str
    value: Any = None
    word_order: str = "big"
    length: int = 0  # characters, strings only
    writable: bool = False
    array: int = 0  # element count of an array point; 0 for a scalar
    scale: float | None = None  # engineering value = raw value * scale
    unit: str = ""  # engineering unit, e.g. "V"
    node_id: str = ""  # OPC UA node id in the device namespace, without "ns=" ("s=Meter.V1")

    @property
    def element_size(self) -> int:
        """Bits or registers one element occupies."""
        if self.table is not None and self.table.is_bit:
            return 1
        return datatypes.register_count(self.type, self.length)

    @property
    def size(self) -> int:
        """Number of bits or registers the point occupies."""
        return self.element_size * (self.array or 1)

    def words(self) -> list[int]:
        """The raw value as register words (or 0/1 bits), every element in turn."""
        return encode_point(self, self.value)


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


def encode_point(point: Point, value) -> list[int]:
    """A raw value of `point` -> register words or 0/1 bits, element after element."""
    values = value if point.array else [value]
    words: list[int] = []
    for v in values:
        if point.type == "bool":
            words.append(1 if v else 0)
        else:
            words += datatypes.encode(point.type, v, point.word_order, point.length)
    return words


def decode_point(point: Point, words: list[int]):
    """Register words or 0/1 bits -> the raw value of `point` (a list for an array point)."""
    step = point.element_size
    values = [datatypes.decode(point.type, words[i : i + step], point.word_order) for i in range(0, step * (point.array or 1), step)]
    return values if point.array else values[0]


def engineering_value(point: Point, raw):
    """raw * scale for a scaled point (to 12 significant digits: -12 * 0.1 is -1.2, not
    -1.2000000000000002), the raw value itself otherwise; element-wise for arrays."""
    if point.scale is None or raw is None:
        return raw

    def one(v):
        return float(f"{v * point.scale:.12g}")

    return [one(v) for v in raw] if point.array else one(raw)


def same_point_value(point: Point, expected, observed) -> bool:
    """Equality as the point's type defines it, element by element for an array point."""
    if point.array:
        return len(expected) == len(observed) and all(datatypes.same_value(point.type, e, o) for e, o in zip(expected, observed))
    return datatypes.same_value(point.type, expected, observed)


@dataclass(frozen=True)
class Profile:
    source: str
    device: dict[str, str]
    modbus: ModbusSection | None
    points: tuple[Point, ...]
    opcua: Any = None  # profile_opcua.OpcuaSection when the device has an OPC UA face
    robustness: RobustnessSection = RobustnessSection()  # test parameters of the robustness suites

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

    def point(self, name: str) -> Point:
        for p in self.points:
            if p.name == name:
                return p
        raise KeyError(f"no point named {name!r} in {self.source}")


def _range(doc: ProfileDoc, value, path: str) -> AddressRange:
    m = read_mapping(doc, value, path, ("start", "count"))
    if "start" not in m or "count" not in m:
        raise doc.error(path, "needs both start and count, e.g. {start: 0, count: 100}")
    start = read_int(doc, m["start"], f"{path}.start", 0, 65535)
    count = read_int(doc, m["count"], f"{path}.count", 1, 65536)
    if start + count > 65536:
        raise doc.error(path, f"start {start} + count {count} runs past address 65535")
    return AddressRange(start, count)


def _modbus(doc: ProfileDoc, value) -> ModbusSection:
    path = "modbus"
    m = read_mapping(
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
        read_int(doc, fc, f"{path}.function_codes[{i}]", 1, 127)
        if fc not in known:
            raise doc.error(f"{path}.function_codes[{i}]", f"function code {fc} is not one the harness knows: {sorted(known)}")
    unit_ids = m.get("unit_ids", [1])
    if not isinstance(unit_ids, list) or not unit_ids:
        raise doc.error(f"{path}.unit_ids", "expected a list of unit ids, e.g. [1]")
    for i, u in enumerate(unit_ids):
        read_int(doc, u, f"{path}.unit_ids[{i}]", 0, 255)
    timeout_ms = m.get("response_timeout_ms", 1000)
    read_int(doc, timeout_ms, f"{path}.response_timeout_ms", 1, 600_000)
    max_out = read_int(doc, m.get("max_outstanding", 1), f"{path}.max_outstanding", 1, 65535)

    tables: dict[Table, AddressRange] = {}
    raw_tables = read_mapping(doc, m.get("tables", {}), f"{path}.tables", tuple(t.value for t in Table))
    for name, rng in raw_tables.items():
        tables[Table(name)] = _range(doc, rng, f"{path}.tables.{name}")
    writable: dict[Table, AddressRange] = {}
    raw_writable = read_mapping(doc, m.get("writable", {}), f"{path}.writable", ("coils", "holding_registers"))
    for name, rng in raw_writable.items():
        table = Table(name)
        r = _range(doc, rng, f"{path}.writable.{name}")
        if table not in tables or not tables[table].contains(r.start, r.count):
            raise doc.error(f"{path}.writable.{name}", f"range {r.start}..{r.last} is not inside modbus.tables.{name}")
        writable[table] = r

    device_id = None
    if "device_identification" in m:
        d = read_mapping(doc, m["device_identification"], f"{path}.device_identification", ("level", "individual_access", "objects"))
        level = d.get("level", "basic")
        if level not in ID_LEVELS:
            raise doc.error(f"{path}.device_identification.level", f"expected one of {', '.join(ID_LEVELS)}, got {level!r}")
        extra: dict[int, str] = {}
        for key, val in (d.get("objects") or {}).items():
            read_int(doc, key, f"{path}.device_identification.objects.{key}", 0x80, 0xFF)
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


POINT_FIELDS = ("name", "table", "address", "type", "value", "word_order", "length", "writable", "array", "scale", "unit", "node_id")


def _point_value(doc: ProfileDoc, p: dict, path: str, ptype: str, length: int, array: int) -> Any:
    value = p.get("value")
    if value is None:
        return None
    if array:
        if not isinstance(value, list) or len(value) != array:
            raise doc.error(f"{path}.value", f"an array point of {array} elements needs a list of {array} values")
        for i, v in enumerate(value):
            problem = datatypes.check_value(ptype, v, length)
            if problem:
                raise doc.error(f"{path}.value[{i}]", problem)
        return list(value)
    problem = datatypes.check_value(ptype, value, length)
    if problem:
        raise doc.error(f"{path}.value", problem)
    return value


def _points(doc: ProfileDoc, value, modbus: ModbusSection | None) -> tuple[Point, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise doc.error("points", "expected a list of points")
    points: list[Point] = []
    names: set[str] = set()
    occupied: dict[tuple[Table, int], str] = {}
    for i, raw in enumerate(value):
        path = f"points[{i}]"
        p = read_mapping(doc, raw, path, POINT_FIELDS)
        for required in ("name", "type"):
            if required not in p:
                raise doc.error(path, f"missing field {required!r}")
        if ("table" in p) != ("address" in p):
            raise doc.error(path, "a Modbus point needs both table and address; an OPC UA-only point has neither")
        if "table" not in p and "node_id" not in p:
            raise doc.error(path, "give the point a Modbus place (table, address) or an OPC UA node_id, or both")
        name = str(p["name"])
        if name in names:
            raise doc.error(f"{path}.name", f"point name {name!r} is used twice")
        names.add(name)
        table = None
        if "table" in p:
            if p["table"] not in [t.value for t in Table]:
                raise doc.error(f"{path}.table", f"expected one of {', '.join(t.value for t in Table)}, got {p['table']!r}")
            table = Table(p["table"])
        ptype = p["type"]
        if ptype not in datatypes.POINT_TYPES:
            raise doc.error(f"{path}.type", f"expected one of {', '.join(datatypes.POINT_TYPES)}, got {ptype!r}")
        if table is not None and table.is_bit != (ptype == "bool"):
            hint = "bit tables (coils, discrete_inputs) hold bool points" if table.is_bit else "register tables hold numeric or string points"
            raise doc.error(f"{path}.type", f"type {ptype} does not fit table {table.value}: {hint}")
        word_order = p.get("word_order", "big")
        if word_order not in datatypes.WORD_ORDERS:
            raise doc.error(f"{path}.word_order", f"expected big or little, got {word_order!r}")
        length = 0
        if ptype == "string":
            if "length" not in p:
                raise doc.error(path, "a string point needs length (bytes), e.g. length: 16")
            length = read_int(doc, p["length"], f"{path}.length", 1, 250)
        array = read_int(doc, p["array"], f"{path}.array", 1, 1000) if "array" in p else 0
        if array and ptype == "string":
            raise doc.error(f"{path}.array", "string points cannot be arrays")
        scale = None
        if "scale" in p:
            scale = p["scale"]
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale == 0:
                raise doc.error(f"{path}.scale", f"expected a non-zero number (engineering value = raw * scale), got {scale!r}")
            if ptype in ("bool", "string"):
                raise doc.error(f"{path}.scale", f"a {ptype} point cannot be scaled")
        node_id = str(p.get("node_id", ""))
        if node_id and not _NODE_ID_FORM.match(node_id):
            raise doc.error(f"{path}.node_id", f"expected an identifier without namespace, like 's=Meter.V1' or 'i=1001', got {node_id!r}")
        address = read_int(doc, p["address"], f"{path}.address", 0, 65535) if table is not None else 0
        point = Point(
            name, table, address, ptype, _point_value(doc, p, path, ptype, length, array), word_order, length,
            bool(p.get("writable", False)), array, float(scale) if scale is not None else None, str(p.get("unit", "") or ""), node_id,
        )
        if table is not None:
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
    doc = ProfileDoc(source, text)
    top = read_mapping(doc, doc.data, "", ("profile", "device", "modbus", "points", "opcua", "mqtt", "robustness"))
    if top.get("profile") != SCHEMA:
        raise doc.error("profile", f"expected 'profile: {SCHEMA}' at the top, got {top.get('profile')!r}")
    device = read_mapping(doc, top.get("device", {}), "device", DEVICE_FIELDS)
    device = {k: str(v) for k, v in device.items() if v is not None}
    modbus = _modbus(doc, top["modbus"]) if "modbus" in top else None
    points = _points(doc, top.get("points"), modbus)
    opcua = None
    if "opcua" in top:
        opcua = parse_opcua_section(doc, top["opcua"], device)
        points = _with_node_ids(doc, points, opcua.object_name)
    elif any(p.table is None for p in points):
        bad = next(i for i, p in enumerate(points) if p.table is None)
        raise doc.error(f"points[{bad}]", "a point without table and address needs the device to have an opcua section")
    robustness = parse_robustness_section(doc, top.get("robustness"))
    return Profile(source=source, device=device, modbus=modbus, points=points, opcua=opcua, robustness=robustness)


def _with_node_ids(doc: ProfileDoc, points: tuple[Point, ...], object_name: str) -> tuple[Point, ...]:
    """Every point gets an OPC UA node id (default `s=<object>.<point>`), each used once."""
    out = []
    seen: dict[str, str] = {}
    for i, point in enumerate(points):
        if not point.node_id:
            point = dataclasses.replace(point, node_id=default_node_id(object_name, point.name))
        if point.node_id in seen:
            raise doc.error(f"points[{i}].node_id", f"node id {point.node_id!r} is also point {seen[point.node_id]!r}'s")
        seen[point.node_id] = point.name
        out.append(point)
    return tuple(out)


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
    if profile.opcua is not None:
        claims, parameters = opcua_summary(profile.opcua)
        block.setdefault("claims", {})["opcua"] = claims
        block.setdefault("parameters", {})["opcua"] = parameters
    block.setdefault("parameters", {})["robustness"] = robustness_summary(profile.robustness)
    block["points"] = len(profile.points)
    return block
