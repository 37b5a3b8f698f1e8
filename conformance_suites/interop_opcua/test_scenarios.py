"""The OPC UA interoperability scenarios: what a client stack and a server stack must get right together.

Each runs once per (client stack, server stack) pair (see conftest).  Values come from the device
profile the servers are loaded with; writes put back what was there.
"""

from __future__ import annotations

import math
import struct

from harness.adapters.errors import StatusError
from harness.conformance import fail, not_applicable
from harness.profile import engineering_value
from harness.profile_opcua import point_ua_type

from ..interop_grid import scenario
from .support import P4


def _same(point, expected, observed) -> bool:
    if point_ua_type(point) == "Float":
        as32 = lambda v: struct.unpack("<f", struct.pack("<f", float(v)))[0]  # noqa: E731
        values = zip(expected, observed) if point.array else [(expected, observed)]
        return all(as32(e) == as32(o) for e, o in values)
    if isinstance(expected, float) or point.scale is not None:
        return math.isclose(float(expected), float(observed), rel_tol=1e-9, abs_tol=1e-9)
    return expected == observed


@scenario("BROWSE", "Browsing the device object lists every point and method",
          requirements=["IOP-UA-BROWSE"], clause=f"{P4} §5.8.2")
def test_browse(pair):
    client = pair.client()
    refs = pair.call("browse(device object)", client.browse, pair.node(client, pair.ua.object_node_id))
    names = {r.browse_name for r in refs}
    missing = [p.name for p in pair.profile.points if p.name not in names] + [m.name for m in pair.ua.methods if m.name not in names]
    if missing:
        fail(f"{len(missing)} point(s) or method(s) missing from the browse", expected="every point and method",
             observed=f"missing: {', '.join(missing)}")


@scenario("READ", "Every point reads with its engineering value and OPC UA type",
          requirements=["IOP-UA-READ"], clause=f"{P4} §5.10.2")
def test_read(pair):
    client = pair.client()
    wrong = []
    for point in pair.profile.points:
        if point.value is None or point.writable:
            continue  # writable points may have been changed by earlier cases
        got = pair.call(f"read({point.name})", client.read, pair.node(client, point.node_id))
        expected = engineering_value(point, point.value)
        if got.type_name != point_ua_type(point) or not _same(point, expected, got.value):
            wrong.append(f"{point.name}: expected {expected!r} ({point_ua_type(point)}), read {got.value!r} ({got.type_name})")
    if wrong:
        fail(f"{len(wrong)} point(s) read wrong", expected="the profile's values and types", observed="; ".join(wrong))


@scenario("WRITE", "A value written with the point's type reads back unchanged",
          requirements=["IOP-UA-WRITE"], clause=f"{P4} §5.10.4")
def test_write(pair):
    points = [p for p in pair.profile.points if p.writable and not p.array and p.type != "string"]
    if not points:
        not_applicable("the profile has no writable scalar point")
    client = pair.client(user=pair.ua.users[0].name if pair.ua.users else None)
    wrong = []
    for point in points:
        node = pair.node(client, point.node_id)
        type_name = point_ua_type(point)
        original = pair.call(f"read({point.name})", client.read, node).value
        new = (not original) if type_name == "Boolean" else (original + 1 if type_name not in ("Float", "Double") else original + 0.5)
        pair.call(f"write({point.name}, {new!r}, {type_name})", client.write, node, new, type_name)
        back = pair.call(f"read({point.name})", client.read, node).value
        if not _same(point, new, back):
            wrong.append(f"{point.name}: wrote {new!r}, read {back!r}")
        pair.call(f"write({point.name}, {original!r}) to restore", client.write, node, original, type_name)
    if wrong:
        fail(f"{len(wrong)} write(s) not read back", expected="every written value read back", observed="; ".join(wrong))


@scenario("CALL", "A method called with the profile's example returns the example outputs",
          requirements=["IOP-UA-CALL"], clause=f"{P4} §5.11.2")
def test_call(pair):
    methods = [m for m in pair.ua.methods if m.example_inputs]
    if not methods:
        not_applicable("the profile gives no method with an example call")
    client = pair.client(user=pair.ua.users[0].name if pair.ua.users else None)
    for method in methods:
        args = [(v, a.data_type) for v, a in zip(method.example_inputs, method.inputs)]
        out = pair.call(f"call({method.name}, {args})", client.call, pair.node(client, pair.ua.object_node_id),
                        pair.node(client, method.node_id), args)
        if [float(v) if isinstance(v, (int, float)) else v for v in out] != [float(v) if isinstance(v, (int, float)) else v for v in method.example_outputs]:
            fail(f"{method.name} returned {out!r}", expected=repr(list(method.example_outputs)), observed=repr(out))


@scenario("SUBSCRIPTION", "A data change of a monitored point reaches the client",
          requirements=["IOP-UA-SUBSCRIPTION"], clause=f"{P4} §5.12.1, §5.13.5")
def test_subscription(pair):
    point = next((p for p in pair.profile.points if p.writable and not p.array and point_ua_type(p) in ("UInt16", "Int16", "Int32", "UInt32")), None)
    if point is None:
        not_applicable("the profile has no writable integer point to change")
    client = pair.client(user=pair.ua.users[0].name if pair.ua.users else None)
    node = pair.node(client, point.node_id)
    handle = pair.call(f"subscribe({point.name}, 100 ms)", client.subscribe, node, 100)
    first = pair.call("next_change (the initial value)", client.next_change, handle, 5.0)
    new = first + 1 if first < 1000 else 1
    pair.call(f"write({point.name}, {new})", client.write, node, new, point_ua_type(point))
    seen = []
    for _ in range(5):
        value = pair.call("next_change", client.next_change, handle, 5.0)
        seen.append(value)
        if value == new:
            break
    pair.call(f"write({point.name}, {first}) to restore", client.write, node, first, point_ua_type(point))
    pair.call("unsubscribe", client.unsubscribe, handle)
    if new not in seen:
        fail("the written value was not reported", expected=f"a data change with {new}", observed=f"changes {seen}")


@scenario("SECURITY", "A session over every claimed secured policy and mode, as the profile's user, reads",
          requirements=["IOP-UA-SECURITY"], clause=f"{P4} §5.5.2, §5.6.3")
def test_security(pair):
    claims = pair.ua.secure_claims()
    if not claims or not pair.ua.users:
        not_applicable("the profile claims no secured endpoint, or no user to log in as")
    for policy, mode in claims:
        client = pair.client(policy, mode, user=pair.ua.users[0].name)
        pair.call(f"read(ServerStatus.State) over {policy} {mode}", client.read, "i=2259")


@scenario("STATUS", "A read of an unknown node surfaces as Bad_NodeIdUnknown",
          requirements=["IOP-UA-STATUS"], clause=f"{P4} §5.10.2.4")
def test_unknown_node_status(pair):
    client = pair.client()
    try:
        got = pair.call("read(unknown node)", client.read, pair.node(client, "s=harness.no-such-node"), status_expected=True)
    except StatusError as exc:
        if exc.status != "BadNodeIdUnknown":
            fail(f"{exc.status} instead of BadNodeIdUnknown", expected="BadNodeIdUnknown", observed=exc.status)
        return
    fail("a read of an unknown node returned a value", expected="BadNodeIdUnknown", observed=repr(got))
