"""Attribute service set: Read and Write of the device's point variables, with IndexRange.

OPC UA Part 4 v1.04 §5.10.2 (Read), §5.10.4 (Write), §7.22 (NumericRange), and the Variable
NodeClass of Part 3 v1.04 §5.6.2 (Table 13: which attributes a Variable has, which of them are
optional, and their data types).

Which points are used comes from the profile: every point for the attribute checks, the
read-only ones for the value checks (a writable one may have been changed by anybody), the
writable ones for the write cases.  Writing cases restore the value they found.  Writes go
through the profile's test user when the device claims user name tokens (a device may keep
anonymous sessions read-only), otherwise through an anonymous session.

Every Variant written names its VariantType: a Python int would otherwise go out as Int64.
"""

from __future__ import annotations

import dataclasses
import math
import struct

import pytest

from harness.conformance import case, fail, not_applicable
from harness.opcua import ua
from harness.profile import Point, engineering_value, same_point_value
from harness.profile_opcua import point_ua_type

from .support import P3, P4, describe, status_name

A = ua.AttributeIds
V = ua.VariantType
Code = ua.StatusCodes

# Part 3 v1.04 §5.6.2 Table 13 (with the base NodeClass attributes of §5.2): the attributes a
# Variable has, the built-in type of each, and whether it is optional ("O") or mandatory ("M").
# NodeClass is an enumeration, encoded as Int32 (Part 6 §5.2.4).
VARIABLE_ATTRIBUTES: tuple[tuple[A, V, bool], ...] = (
    (A.NodeId, V.NodeId, False),
    (A.NodeClass, V.Int32, False),
    (A.BrowseName, V.QualifiedName, False),
    (A.DisplayName, V.LocalizedText, False),
    (A.Description, V.LocalizedText, True),
    (A.WriteMask, V.UInt32, True),
    (A.UserWriteMask, V.UInt32, True),
    (A.Value, V.Null, False),  # the point's own type, checked apart
    (A.DataType, V.NodeId, False),
    (A.ValueRank, V.Int32, False),
    (A.ArrayDimensions, V.UInt32, True),
    (A.AccessLevel, V.Byte, False),
    (A.UserAccessLevel, V.Byte, False),
    (A.MinimumSamplingInterval, V.Double, True),
    (A.Historizing, V.Boolean, False),
)
NODE_CLASS_VARIABLE = 2
CURRENT_READ, CURRENT_WRITE = 0x01, 0x02
# Part 3 §5.6.2 ValueRank: -3 ScalarOrOneDimension, -2 Any, -1 Scalar, 0 OneOrMoreDimensions,
# n >= 1 exactly n dimensions.  The value ranks that admit the point's value:
SCALAR_RANKS = (-3, -2, -1)
ONE_DIMENSION_RANKS = (-3, -2, 0, 1)
RAW_INT_RANGES = {"int16": (-32768, 32767), "uint16": (0, 65535), "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1)}


# ---------------------------------------------------------------------------- helpers

def _variant_type(point: Point) -> V:
    return getattr(V, point_ua_type(point))


def _variant(point: Point, value) -> ua.Variant:
    """The engineering value of `point` as a Variant of the point's type, VariantType explicit."""
    return ua.Variant(list(value) if point.array else value, _variant_type(point), is_array=bool(point.array) or None)


def _same(point: Point, expected, observed) -> bool:
    """Engineering values equal as the point's type defines it (float32 after rounding; a
    scaled value to a relative 1e-9, since the device computes raw * scale itself)."""
    if point.array:
        if not isinstance(observed, list) or len(observed) != len(expected):
            return False
        return all(_same_one(point, e, o) for e, o in zip(expected, observed))
    return not isinstance(observed, list) and _same_one(point, expected, observed)


def _same_one(point: Point, expected, observed) -> bool:
    if observed is None:
        return False
    if point.scale is not None:
        return isinstance(observed, (int, float)) and math.isclose(expected, observed, rel_tol=1e-9, abs_tol=1e-12)
    if point.type == "bool":
        return isinstance(observed, bool) and observed == bool(expected)
    if point.type == "string":
        return isinstance(observed, str) and observed.rstrip("\x00") == str(expected).rstrip("\x00")
    return same_point_value(_scalar(point), expected, observed)


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _raw_of(point: Point, value):
    """The raw value behind an engineering value (undoes the scale)."""
    if point.scale is None:
        return value
    if point.type in RAW_INT_RANGES:
        return round(value / point.scale)
    return value / point.scale


def _changed_raw(point: Point, raw):
    """A raw value of the point's type that differs from `raw` and fits the type."""
    if point.type == "bool":
        return not raw
    if point.type in RAW_INT_RANGES:
        low, high = RAW_INT_RANGES[point.type]
        raw = int(raw)
        return raw + 1 if raw + 1 <= high else raw - 1
    if point.type in ("float32", "float64"):
        raw = float(raw)
        new = raw + 1.0 if math.isfinite(raw) and abs(raw) < 1e6 else 1.0
        if point.type == "float32":
            new = struct.unpack("<f", struct.pack("<f", new))[0]
        return new if new != raw else 2.0
    if point.type == "string":
        old = raw or ""
        size = max(len(old.rstrip("\x00")), 1)
        new = ("HARNESS-TEST-" * 8)[:size]
        return new if new != old.rstrip("\x00") else new.lower()
    raise ValueError(f"no test value for point type {point.type}")


def changed_value(point: Point, current):
    """An engineering value of `point` that differs from `current` in every element."""
    if point.array:
        return [engineering_value(_scalar(point), _changed_raw(point, _raw_of(point, v))) for v in current]
    return engineering_value(point, _changed_raw(point, _raw_of(point, current)))


def _scalar(point: Point) -> Point:
    return dataclasses.replace(point, array=0)


def wrong_variant(point: Point, value) -> ua.Variant:
    """`value` in a built-in type that is neither the point's DataType nor a subtype of it
    (Part 4 §5.10.4.2): Int64 for a number (what a careless client sends for a Python int),
    String for a Boolean, Boolean for a String."""
    ua_type = point_ua_type(point)
    values = value if point.array else [value]
    if ua_type == "Boolean":
        wrong, vtype = ["true" if v else "false" for v in values], V.String
    elif ua_type == "String":
        wrong, vtype = [True for _ in values], V.Boolean
    elif ua_type == "Int64":
        wrong, vtype = [float(v) for v in values], V.Double
    else:
        wrong, vtype = [int(round(v)) for v in values], V.Int64
    return ua.Variant(wrong if point.array else wrong[0], vtype, is_array=bool(point.array) or None)


def _writer(dut):
    """A session that may write: the profile's test user when user names are claimed."""
    if "username" in dut.ua.user_tokens and dut.ua.users:
        return dut.session(user=dut.ua.users[0].name)
    return dut.session()


async def _read_items(s, items: list[tuple[ua.NodeId, int, str | None]]):
    """One Read request with (node, attribute, index range) items; the reply as received."""
    req = ua.ReadRequest()
    req.Parameters.TimestampsToReturn = ua.TimestampsToReturn.Neither
    for node, attribute, index_range in items:
        item = ua.ReadValueId()
        item.NodeId, item.AttributeId = node, attribute
        if index_range is not None:
            item.IndexRange = index_range
        req.Parameters.NodesToRead.append(item)
    return await s.request(req)


def _results(reply, count: int, what: str) -> list:
    """The per-item results of a Read/Write reply: FAIL unless it is a good response with one
    result per item (§5.10.2.2, §5.10.4.2: operation errors are per item, not service faults)."""
    expected_type = ua.ReadResponse if what.startswith("Read") else ua.WriteResponse
    if not isinstance(reply, expected_type) or not reply.ResponseHeader.ServiceResult.is_good():
        fail(f"{what}: the service did not succeed", expected=f"a {expected_type.__name__} with ServiceResult Good "
             f"and a result per item", observed=describe(reply))
    if len(reply.Results) != count:
        fail(f"{what}: {len(reply.Results)} results for {count} items", expected=f"{count} results", observed=describe(reply))
    return list(reply.Results)


async def _point_node(dut, s, point: Point) -> ua.NodeId:
    return await dut.node(s, point.node_id)


async def _current(dut, s, point: Point, node: ua.NodeId, what: str):
    """The point's current value; FAIL when it cannot be read."""
    dv = _results(await s.read([node]), 1, f"Read of {point.name}")[0]
    if not dv.StatusCode.is_good() or dv.Value is None:
        fail(f"{what}: reading {point.name} gives {status_name(dv.StatusCode)}", expected="Good", observed=status_name(dv.StatusCode))
    return dv.Value.Value


async def _write_one(s, node: ua.NodeId, variant: ua.Variant, index_range: str | None = None) -> ua.StatusCode:
    return _results(await s.write([(node, variant)], index_range), 1, "Write")[0]


async def _restore(s, point: Point, node: ua.NodeId, original, problems: list[str]) -> None:
    code = await _write_one(s, node, _variant(point, original))
    if not code.is_good():
        problems.append(f"{point.name}: restoring the original value {_show(original)} failed with {status_name(code)}")


# ---------------------------------------------------------------------------- Read

def _check_attribute(point: Point, node: ua.NodeId, attribute: A, vtype: V, dv: ua.DataValue, expected_type: str) -> list[str]:
    """Problems with one attribute of one point variable (Part 3 §5.6.2, Part 4 §5.10.2)."""
    name = f"{point.name}.{attribute.name}"
    value = dv.Value.Value if dv.Value is not None else None
    got_type = dv.Value.VariantType if dv.Value is not None else V.Null
    if attribute == A.Value:
        if got_type != getattr(V, expected_type):
            return [f"{name} is a {got_type.name}, the DataType is {expected_type}"]
        if bool(point.array) != isinstance(value, list):
            return [f"{name} is {'a scalar' if point.array else 'an array'}, the point is {'an array' if point.array else 'a scalar'}"]
        return []
    if attribute == A.ArrayDimensions and value is None and got_type in (V.Null, V.UInt32):
        return []  # null: judged together with ValueRank
    if got_type != vtype or (value is None and vtype not in (V.LocalizedText,)):
        return [f"{name} is {got_type.name} {_show(value)}, Part 3 gives it the type {vtype.name}"]
    if attribute == A.NodeId and value != node:
        return [f"{name} is {value.to_string()}, the node read is {node.to_string()}"]
    if attribute == A.NodeClass and value != NODE_CLASS_VARIABLE:
        return [f"{name} is {value}, expected {NODE_CLASS_VARIABLE} (Variable)"]
    if attribute == A.BrowseName and not value.Name:
        return [f"{name} has an empty name"]
    if attribute == A.DataType and value != ua.NodeId(getattr(ua.ObjectIds, expected_type)):
        return [f"{name} is {value.to_string()}, expected i={getattr(ua.ObjectIds, expected_type)} ({expected_type})"]
    if attribute == A.ValueRank and value not in (ONE_DIMENSION_RANKS if point.array else SCALAR_RANKS):
        return [f"{name} is {value}, which does not admit {'a one-dimensional array' if point.array else 'a scalar'}"]
    if attribute == A.MinimumSamplingInterval and not (value >= 0 or value == -1):
        return [f"{name} is {value} (a duration >= 0, or -1 for indeterminate)"]
    return []


@case("UA-READ-ATTRIBUTES", "Every attribute of every point variable reads Good with the type and value Part 3 requires",
      requirements=["UA-P4-5.10.2-READ"], level="MUST", clause=f"{P4} §5.10.2; {P3} §5.6.2")
def test_read_all_attributes(dut):
    """Each Variable attribute of Part 3 Table 13 is read: mandatory ones must be Good,
    optional ones Good or Bad_AttributeIdInvalid.  NodeClass Variable, DataType the point's
    type, ValueRank and ArrayDimensions fitting scalar or array, AccessLevel with CurrentRead
    and with CurrentWrite exactly when the point is writable, UserAccessLevel no wider."""
    if not dut.profile.points:
        not_applicable("the profile has no points")

    async def check():
        problems: list[str] = []
        async with dut.session() as s:
            for point in dut.profile.points:
                node = await _point_node(dut, s, point)
                reply = await _read_items(s, [(node, a, None) for a, _, _ in VARIABLE_ATTRIBUTES])
                results = _results(reply, len(VARIABLE_ATTRIBUTES), f"Read of the attributes of {point.name}")
                expected_type = point_ua_type(point)
                got = {}
                for (attribute, vtype, optional), dv in zip(VARIABLE_ATTRIBUTES, results):
                    code = dv.StatusCode
                    if not code.is_good():
                        if optional and code.value == Code.BadAttributeIdInvalid:
                            continue
                        allowed = "Good or Bad_AttributeIdInvalid (optional)" if optional else "Good (mandatory)"
                        problems.append(f"{point.name}.{attribute.name}: {status_name(code)}, expected {allowed}")
                        continue
                    found = _check_attribute(point, node, attribute, vtype, dv, expected_type)
                    problems += found
                    if not found and dv.Value is not None:
                        got[attribute] = dv.Value.Value
                problems += _check_access(point, got)
                problems += _check_dimensions(point, got)
        if problems:
            fail(f"{len(problems)} attribute problem(s): {problems[0]}", expected="every attribute as Part 3 §5.6.2 defines it",
                 observed="; ".join(problems))

    dut.run(check())


def _check_access(point: Point, got: dict) -> list[str]:
    problems = []
    access, user_access = got.get(A.AccessLevel), got.get(A.UserAccessLevel)
    if access is not None:
        if not access & CURRENT_READ:
            problems.append(f"{point.name}.AccessLevel 0x{access:02X} lacks CurrentRead")
        if bool(access & CURRENT_WRITE) != point.writable:
            problems.append(f"{point.name}.AccessLevel 0x{access:02X} {'lacks' if point.writable else 'has'} CurrentWrite, "
                            f"the point is {'writable' if point.writable else 'read-only'}")
    if user_access is not None:
        if not user_access & CURRENT_READ:
            problems.append(f"{point.name}.UserAccessLevel 0x{user_access:02X} lacks CurrentRead, yet the session reads the value")
        if access is not None and user_access & ~access & (CURRENT_READ | CURRENT_WRITE):
            problems.append(f"{point.name}.UserAccessLevel 0x{user_access:02X} grants more than AccessLevel 0x{access:02X}")
    return problems


def _check_dimensions(point: Point, got: dict) -> list[str]:
    rank, dims = got.get(A.ValueRank), got.get(A.ArrayDimensions)
    if A.ArrayDimensions not in got or rank is None:
        return []
    if rank <= 0:
        # Part 3 §5.6.2: ArrayDimensions is null (or absent) when ValueRank <= 0.
        return [] if not dims else [f"{point.name}.ArrayDimensions is {dims} with ValueRank {rank} (must be null)"]
    if not dims:
        return []  # null: the maximum lengths are not given
    if len(dims) != rank:
        return [f"{point.name}.ArrayDimensions is {dims!r}, ValueRank {rank} needs {rank} entries"]
    if dims[0] != 0 and dims[0] < point.array:
        return [f"{point.name}.ArrayDimensions {dims} is below the array's {point.array} elements (0 = unknown)"]
    return []


@case("UA-READ-VALUES", "Every read-only point reads the profile's engineering value",
      requirements=["UA-P4-5.10.2-READ"], level="MUST", clause=f"{P4} §5.10.2")
def test_read_values(dut):
    points = [p for p in dut.profile.points if not p.writable and p.value is not None]
    if not points:
        not_applicable("the profile has no read-only point with a value")

    async def check():
        problems = []
        async with dut.session() as s:
            nodes = [await _point_node(dut, s, p) for p in points]
            limit = dut.ua.limits.get("max_nodes_per_read") or len(nodes)
            for start in range(0, len(nodes), limit):
                chunk = list(zip(points, nodes))[start:start + limit]
                results = _results(await s.read([n for _, n in chunk]), len(chunk), "Read of the point values")
                for (point, _), dv in zip(chunk, results):
                    expected = engineering_value(point, point.value)
                    if not dv.StatusCode.is_good():
                        problems.append(f"{point.name}: {status_name(dv.StatusCode)}")
                    elif not _same(point, expected, dv.Value.Value):
                        problems.append(f"{point.name} = {_show(dv.Value.Value)}, the profile says {_show(expected)}")
        if problems:
            fail(f"{len(problems)} point(s) do not read the profile's value: {problems[0]}",
                 expected="each read-only point's engineering value (raw value * scale)", observed="; ".join(problems))

    dut.run(check())


@case("UA-READ-UNKNOWN-NODE", "Reading nodes that do not exist gives Bad_NodeIdUnknown for those items only",
      requirements=["UA-P4-5.10.2-UNKNOWN-NODE"], level="MUST", clause=f"{P4} §5.10.2.4")
def test_read_unknown_node(dut):
    async def check():
        async with dut.session() as s:
            ns = await dut.ns(s)
            unknown = [
                ua.NodeId.from_string(f"ns={ns};s={dut.ua.object_name}.harness-no-such-node"),
                ua.NodeId(2147480001, 0),
            ]
            known = ua.NodeId(ua.ObjectIds.Server_ServerStatus_State)
            results = _results(await s.read([unknown[0], known, unknown[1]]), 3, "Read of two unknown nodes and a known one")
        for node, dv in ((unknown[0], results[0]), (unknown[1], results[2])):
            if dv.StatusCode.value != Code.BadNodeIdUnknown:
                fail(f"reading the unknown node {node.to_string()} gives {status_name(dv.StatusCode)}",
                     expected="Bad_NodeIdUnknown", observed=status_name(dv.StatusCode))
        if not results[1].StatusCode.is_good():
            fail("the known node read in the same request is not Good",
                 expected="Good for Server.ServerStatus.State", observed=status_name(results[1].StatusCode))

    dut.run(check())


@case("UA-READ-BAD-ATTRIBUTE", "An undefined attribute id, and attributes a Variable lacks, give Bad_AttributeIdInvalid",
      requirements=["UA-P4-5.10.2-BAD-ATTRIBUTE"], level="MUST", clause=f"{P4} §5.10.2.4")
def test_read_bad_attribute(dut):
    point = dut.point(lambda p: True, "point")
    # 99 and 0 are no attribute ids (Part 6 Annex A); EventNotifier (12), IsAbstract (8) and
    # Executable (21) belong to other NodeClasses than Variable (Part 3 §5).
    attributes = [(99, "attribute id 99"), (0, "attribute id 0"), (A.EventNotifier, "EventNotifier (12)"),
                  (A.IsAbstract, "IsAbstract (8)"), (A.Executable, "Executable (21)")]

    async def check():
        async with dut.session() as s:
            node = await _point_node(dut, s, point)
            results = _results(await _read_items(s, [(node, a, None) for a, _ in attributes]), len(attributes),
                               f"Read of invalid attributes of {point.name}")
        problems = [f"{label}: {status_name(dv.StatusCode)}" for (_, label), dv in zip(attributes, results)
                    if dv.StatusCode.value != Code.BadAttributeIdInvalid]
        if problems:
            fail(f"invalid attributes of the Variable {point.name} are not refused as such: {problems[0]}",
                 expected="Bad_AttributeIdInvalid for each", observed="; ".join(problems))

    dut.run(check())


@case("UA-READ-INDEX-RANGE", "IndexRange on a Read returns exactly the range; invalid ranges and ranges past the end are refused",
      requirements=["UA-P4-7.22-INDEX-RANGE-READ"], level="MUST", clause=f"{P4} §7.22, §5.10.2.2")
def test_read_index_range(dut):
    arrays = [p for p in dut.profile.points if p.array >= 2]
    if not arrays:
        not_applicable("the profile has no array point of at least 2 elements")
    # A read-only array cannot be changed by a writing case running at the same time.
    point = next((p for p in arrays if not p.writable), arrays[0])
    n = point.array
    low, high = (1, 2) if n >= 3 else (0, 1)
    items = [
        (None, "the whole array"),
        (f"{low}:{high}", "ok"),
        (f"{high}", "one"),
        (f"{n - 1}:{n + 3}", "partial"),   # §7.22: an upper bound past the end gives partial results
        ("5:3", Code.BadIndexRangeInvalid),  # §7.22: the first integer shall be lower than the second
        ("2:2", Code.BadIndexRangeInvalid),
        ("1-2", Code.BadIndexRangeInvalid),  # no other characters are permitted
        ("x", Code.BadIndexRangeInvalid),
        (f"{n}:{n + 2}", Code.BadIndexRangeNoData),  # §7.22: a lower bound out of range
        (f"{n + 5}", Code.BadIndexRangeNoData),
    ]

    async def check():
        async with dut.session() as s:
            node = await _point_node(dut, s, point)
            reply = await _read_items(s, [(node, A.Value, r) for r, _ in items])
            results = _results(reply, len(items), f"Read of {point.name} with index ranges")
        whole = results[0]
        if not whole.StatusCode.is_good() or not isinstance(whole.Value.Value, list) or len(whole.Value.Value) != n:
            fail(f"the array point {point.name} does not read as an array of {n}", expected=f"Good, {n} elements",
                 observed=f"{status_name(whole.StatusCode)} {_show(whole.Value.Value if whole.Value else None)}")
        full = whole.Value.Value
        wanted = {"ok": full[low:high + 1], "one": full[high:high + 1], "partial": full[n - 1:]}
        problems = []
        for (rng, expect), dv in zip(items[1:], results[1:]):
            got = dv.Value.Value if dv.Value is not None else None
            if isinstance(expect, str):
                if not dv.StatusCode.is_good():
                    problems.append(f"IndexRange {rng!r}: {status_name(dv.StatusCode)}, expected Good {wanted[expect]}")
                elif not isinstance(got, list) or got != wanted[expect]:
                    problems.append(f"IndexRange {rng!r} gives {_show(got)}, expected {wanted[expect]} (of {full})")
            elif dv.StatusCode.value != expect:
                problems.append(f"IndexRange {rng!r}: {status_name(dv.StatusCode)}, expected {status_name(expect)}")
        if problems:
            fail(f"IndexRange on {point.name} is not handled as §7.22 defines: {problems[0]}",
                 expected="exactly the elements of the range; Bad_IndexRangeInvalid for bad syntax; "
                          "Bad_IndexRangeNoData for a range starting past the end", observed="; ".join(problems))

    dut.run(check())


# ---------------------------------------------------------------------------- Write

def _writable(dut, why: str, predicate=lambda p: True) -> list[Point]:
    points = [p for p in dut.profile.points if p.writable and predicate(p)]
    if not points:
        not_applicable(f"the profile has no {why}")
    return points


@pytest.mark.writes
@case("UA-WRITE-READBACK", "A value written to each writable point reads back the same",
      requirements=["UA-P4-5.10.4-WRITE"], level="MUST", clause=f"{P4} §5.10.4")
def test_write_read_back(dut):
    points = _writable(dut, "writable point")

    async def check():
        problems: list[str] = []
        async with _writer(dut) as s:
            for point in points:
                node = await _point_node(dut, s, point)
                original = await _current(dut, s, point, node, "before writing")
                new = changed_value(point, original)
                code = await _write_one(s, node, _variant(point, new))
                if not code.is_good():
                    problems.append(f"{point.name}: writing {_show(new)} as {point_ua_type(point)} gives {status_name(code)}")
                    continue
                back = await _current(dut, s, point, node, "after writing")
                if not _same(point, new, back):
                    problems.append(f"{point.name}: wrote {_show(new)}, reads back {_show(back)}")
                await _restore(s, point, node, original, problems)
        if problems:
            fail(f"{len(problems)} writable point(s) do not keep a written value: {problems[0]}",
                 expected="Good, and the written value read back", observed="; ".join(problems))

    dut.run(check())


@pytest.mark.writes
@case("UA-WRITE-TYPE-MISMATCH", "A value of the wrong built-in type is refused with Bad_TypeMismatch and changes nothing",
      requirements=["UA-P4-5.10.4-TYPE-MISMATCH"], level="MUST", clause=f"{P4} §5.10.4.2")
def test_write_type_mismatch(dut):
    points = _writable(dut, "writable point")

    async def check():
        problems: list[str] = []
        async with _writer(dut) as s:
            for point in points:
                node = await _point_node(dut, s, point)
                original = await _current(dut, s, point, node, "before writing")
                wrong = wrong_variant(point, changed_value(point, original))
                code = await _write_one(s, node, wrong)
                if code.value != Code.BadTypeMismatch:
                    problems.append(f"{point.name} ({point_ua_type(point)}): writing {wrong.VariantType.name} "
                                    f"{_show(wrong.Value)} gives {status_name(code)}")
                after = await _current(dut, s, point, node, "after the refused write")
                if not _same(point, original, after):
                    problems.append(f"{point.name} changed from {_show(original)} to {_show(after)}")
                    await _restore(s, point, node, original, problems)
        if problems:
            fail(f"wrongly typed writes are not refused: {problems[0]}",
                 expected="Bad_TypeMismatch (the value is neither the DataType nor a subtype), value unchanged",
                 observed="; ".join(problems))

    dut.run(check())


@pytest.mark.writes
@case("UA-WRITE-NOT-WRITABLE", "A write to a read-only point is refused with Bad_NotWritable or Bad_UserAccessDenied",
      requirements=["UA-P4-5.10.4-NOT-WRITABLE"], level="MUST", clause=f"{P4} §5.10.4.2")
def test_write_read_only(dut):
    points = [p for p in dut.profile.points if not p.writable]
    if not points:
        not_applicable("the profile has no read-only point")
    users = [None]
    if "username" in dut.ua.user_tokens and dut.ua.users:
        users.append(dut.ua.users[0].name)

    async def check():
        problems: list[str] = []
        for user in users:
            who = f"as {user}" if user else "anonymously"
            async with dut.session(user=user) as s:
                for point in points:
                    node = await _point_node(dut, s, point)
                    original = await _current(dut, s, point, node, "before writing")
                    allowed = await _refusals(s, node)
                    code = await _write_one(s, node, _variant(point, changed_value(point, original)))
                    if code.value not in allowed:
                        problems.append(f"{point.name} {who}: {status_name(code)}, expected "
                                        f"{' or '.join(status_name(a) for a in allowed)}")
                    after = await _current(dut, s, point, node, "after the refused write")
                    if not _same(point, original, after):
                        problems.append(f"{point.name} {who} changed from {_show(original)} to {_show(after)}")
                        await _restore(s, point, node, original, [])
        if problems:
            fail(f"writes to read-only points are not refused as Part 4 requires: {problems[0]}",
                 expected="Bad_NotWritable where the AccessLevel lacks CurrentWrite (Bad_UserAccessDenied only where "
                          "the AccessLevel allows writing and the UserAccessLevel does not), value unchanged",
                 observed="; ".join(problems))

    dut.run(check())


async def _refusals(s, node: ua.NodeId) -> tuple[int, ...]:
    """The codes that fit a refused write, from the node's own access levels (Part 4 Table 178
    and Table 61): Bad_NotWritable when the AccessLevel does not allow writing; when it does
    but the UserAccessLevel does not, Bad_UserAccessDenied ("the current user does not have
    permission to write the attribute") fits as well."""
    results = _results(await _read_items(s, [(node, A.AccessLevel, None), (node, A.UserAccessLevel, None)]), 2,
                       "Read of the access levels")
    levels = [dv.Value.Value if dv.StatusCode.is_good() and dv.Value is not None and isinstance(dv.Value.Value, int) else None
              for dv in results]
    if levels[0] is not None and not levels[0] & CURRENT_WRITE:
        return (Code.BadNotWritable,)
    return (Code.BadNotWritable, Code.BadUserAccessDenied)


def _range_point(dut) -> Point:
    return _writable(dut, "writable array point of at least 2 elements", lambda p: p.array >= 2)[0]


@pytest.mark.writes
@case("UA-WRITE-INDEX-RANGE", "A Write with IndexRange changes exactly the elements of the range",
      requirements=["UA-P4-7.22-INDEX-RANGE-WRITE"], level="MUST", clause=f"{P4} §7.22, §5.10.4.2")
def test_write_index_range(dut):
    point = _range_point(dut)
    low, high = (1, 2) if point.array >= 3 else (0, 1)

    async def check():
        problems: list[str] = []
        async with _writer(dut) as s:
            node = await _point_node(dut, s, point)
            original = await _current(dut, s, point, node, "before writing")
            if not isinstance(original, list) or len(original) != point.array:
                fail(f"{point.name} does not read as an array of {point.array}", expected=f"{point.array} elements",
                     observed=_show(original))
            part = changed_value(point, original[low:high + 1])
            expected = original[:low] + part + original[high + 1:]
            try:
                # §5.10.4.2: with an indexRange the value is an array even for one element.
                code = await _write_one(s, node, _variant(point, part), f"{low}:{high}")
                if not code.is_good():
                    fail(f"writing {part} to {point.name}[{low}:{high}] gives {status_name(code)}",
                         expected="Good (the device claims Attribute Write Index)", observed=status_name(code))
                after = await _current(dut, s, point, node, "after the range write")
                if not _same(point, expected, after):
                    fail(f"writing {part} to {point.name}[{low}:{high}] does not change exactly those elements",
                         expected=f"{expected} (was {original})", observed=_show(after))
            finally:
                await _restore(s, point, node, original, problems)
        if problems:
            fail(problems[0], expected="the original value restored", observed="; ".join(problems))

    dut.run(check())


@pytest.mark.writes
@case("UA-WRITE-SCALAR-INTO-ARRAY", "A scalar written into an array variable without IndexRange is refused with Bad_TypeMismatch",
      requirements=["UA-P4-7.22-INDEX-RANGE-WRITE"], level="MUST", clause=f"{P4} §5.10.4.2")
def test_write_scalar_into_array(dut):
    point = _range_point(dut)

    async def check():
        problems: list[str] = []
        async with _writer(dut) as s:
            node = await _point_node(dut, s, point)
            original = await _current(dut, s, point, node, "before writing")
            scalar = changed_value(_scalar(point), original[0])
            code = await _write_one(s, node, ua.Variant(scalar, _variant_type(point)))
            after = await _current(dut, s, point, node, "after the refused write")
            unchanged = _same(point, original, after)
            if not unchanged:
                await _restore(s, point, node, original, problems)
        if code.value != Code.BadTypeMismatch or not unchanged:
            fail(f"a scalar {point_ua_type(point)} {_show(scalar)} written into the array {point.name} gives "
                 f"{status_name(code)}" + ("" if unchanged else f" and the value became {_show(after)}"),
                 expected=f"Bad_TypeMismatch, {original} unchanged",
                 observed=f"{status_name(code)}, value {_show(after)}" + (f"; {problems[0]}" if problems else ""))

    dut.run(check())
