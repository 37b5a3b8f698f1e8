"""The device's own nodes: one object under Objects, a variable per point, the methods.

Built from the profile into a running `asyncua.Server`:

- the object `opcua.object` in the namespace `opcua.namespace`, organised by the Objects folder;
- a variable per point (HasComponent from the object), of the point's OPC UA type (Double
  when scaled), an array with ValueRank 1 and ArrayDimensions for array points, AccessLevel
  CurrentRead, plus CurrentWrite when the point is writable, and an EngineeringUnits property
  (EUInformation, Part 8 §5.6.3) when the point has a unit;
- a method per `opcua.methods` entry with InputArguments/OutputArguments properties.

`DeviceNodes` maps node ids back to points and methods, for the service layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asyncua import Server, ua

from harness.profile import Point, Profile
from harness.profile_opcua import MethodDef, point_ua_type

UNECE_CODES = {"V": 5655621, "A": 4279632, "kWh": 4937544, "Hz": 4872570, "°C": 4408652, "kW": 4937557}


def variant_type(name: str) -> ua.VariantType:
    return getattr(ua.VariantType, name)


def node_id(namespace_index: int, identifier: str) -> ua.NodeId:
    return ua.NodeId.from_string(f"ns={namespace_index};{identifier}")


@dataclass
class DeviceNodes:
    namespace_index: int
    object_id: ua.NodeId
    points: dict[ua.NodeId, Point] = field(default_factory=dict)
    point_ids: dict[str, ua.NodeId] = field(default_factory=dict)
    methods: dict[ua.NodeId, MethodDef] = field(default_factory=dict)


def engineering_units(unit: str) -> ua.EUInformation:
    eu = ua.EUInformation()
    eu.NamespaceUri = "http://www.opcfoundation.org/UA/units/un/cefact"
    eu.UnitId = UNECE_CODES.get(unit, -1)
    eu.DisplayName = ua.LocalizedText(unit)
    eu.Description = ua.LocalizedText(unit)
    return eu


def ua_value(point: Point, value):
    """An engineering value as the Variant the variable holds."""
    vtype = variant_type(point_ua_type(point))
    return ua.Variant(list(value) if point.array else value, vtype, is_array=bool(point.array) or None)


async def build_device_nodes(server: Server, profile: Profile, values: dict[str, object]) -> DeviceNodes:
    section = profile.opcua
    idx = await server.register_namespace(section.namespace)
    objects = server.nodes.objects
    obj = await objects.add_object(node_id(idx, section.object_node_id), ua.QualifiedName(section.object_name, idx))
    nodes = DeviceNodes(idx, obj.nodeid)
    for point in profile.points:
        nid = node_id(idx, point.node_id)
        var = await obj.add_variable(nid, ua.QualifiedName(point.name, idx), ua_value(point, values[point.name]),
                                     datatype=ua.NodeId(getattr(ua.ObjectIds, point_ua_type(point))))
        if point.array:
            await var.write_value_rank(1)
            await var.write_array_dimensions([point.array])
        if point.writable:
            await var.set_writable(True)
        if point.unit:
            await var.add_property(node_id(idx, f"{point.node_id}.EngineeringUnits"), ua.QualifiedName("EngineeringUnits", 0),
                                   engineering_units(point.unit))
        nodes.points[nid] = point
        nodes.point_ids[point.name] = nid
    for method in section.methods:
        mid = node_id(idx, method.node_id)
        await obj.add_method(mid, ua.QualifiedName(method.name, idx), _not_bound,
                             [_argument(a.name, a.data_type) for a in method.inputs],
                             [_argument(a.name, a.data_type) for a in method.outputs])
        nodes.methods[mid] = method
    return nodes


def _argument(name: str, data_type: str) -> ua.Argument:
    arg = ua.Argument()
    arg.Name = name
    arg.DataType = ua.NodeId(getattr(ua.ObjectIds, data_type))
    arg.ValueRank = -1
    arg.ArrayDimensions = []
    arg.Description = ua.LocalizedText(name)
    return arg


def _not_bound(parent, *args):  # replaced by the service layer's checked call
    raise RuntimeError("method called without the conformance layer")
