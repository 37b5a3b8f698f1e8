"""The OPC UA "device image" a server peer loads: the profile's OPC UA face as plain JSON data.

Third-party OPC UA servers (node-opcua, a plain asyncua server) are filled with the same device
the bundled simulator serves: the namespace, the device object, one variable per point with the
point's engineering value (raw * scale) and OPC UA type, the methods, the test users and the
claimed security policies.  The format is documented in `node_opcua_server.js`.
"""

from __future__ import annotations

from harness.profile import Profile, engineering_value
from harness.profile_opcua import point_ua_type


def image_from_profile(profile: Profile) -> dict:
    section = profile.opcua
    if section is None:
        raise ValueError(f"{profile.source}: the profile has no opcua section")
    device = profile.device
    return {
        "endpoint_path": section.endpoint_path,
        "namespace_uri": section.namespace,
        "application_uri": section.application_uri,
        "product_uri": section.product_uri,
        "build_info": {
            "manufacturer_name": device.get("vendor_name", ""),
            "product_name": device.get("product_name", ""),
            "software_version": device.get("revision", ""),
            "build_number": section.build_number,
            "build_date": f"{section.build_date}T00:00:00Z" if "T" not in section.build_date else section.build_date,
        },
        "object": {"browse_name": section.object_name, "node_id": section.object_node_id},
        "variables": [
            {
                "browse_name": p.name,
                "node_id": p.node_id,
                "data_type": point_ua_type(p),
                "value": engineering_value(p, p.value),
                "array_length": p.array or None,
                "writable": p.writable,
                "unit": p.unit or None,
            }
            for p in profile.points
        ],
        "methods": [
            {
                "browse_name": m.name,
                "node_id": m.node_id,
                "inputs": [{"name": a.name, "data_type": a.data_type} for a in m.inputs],
                "outputs": [{"name": a.name, "data_type": a.data_type} for a in m.outputs],
                "action": m.action,
            }
            for m in section.methods
        ],
        "users": [{"name": u.name, "password": u.password} for u in section.users],
        "security": [{"policy": c.policy, "modes": list(c.modes)} for c in section.security],
        # the OperationLimits the device claims, advertised (and, where the stack can, honoured)
        "limits": {name: section.limits[name] for name in LIMIT_NODE_NAMES},
    }


# profile limit -> name of the OperationLimits variable (Part 5 v1.04 §6.3.11)
LIMIT_NODE_NAMES = {
    "max_nodes_per_read": "MaxNodesPerRead",
    "max_nodes_per_write": "MaxNodesPerWrite",
    "max_nodes_per_browse": "MaxNodesPerBrowse",
    "max_nodes_per_method_call": "MaxNodesPerMethodCall",
    "max_nodes_per_register_nodes": "MaxNodesPerRegisterNodes",
    "max_nodes_per_translate": "MaxNodesPerTranslateBrowsePathsToNodeIds",
    "max_monitored_items_per_call": "MaxMonitoredItemsPerCall",
}
