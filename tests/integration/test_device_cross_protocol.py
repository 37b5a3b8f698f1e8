"""One device, two faces: a value written through one protocol is read through the other.

The example device served with both faces (`simulators.device`); Modbus spoken with the raw test
client, OPC UA with asyncua's client as a real peer.  Scaled points show raw * scale on OPC UA;
a subscription reports a Modbus write.
"""

from __future__ import annotations

import asyncio
import struct
from urllib.parse import urlparse

import pytest
from asyncua import Client, ua
from raw_client import RawClient

from simulators.device import start_device_in_thread


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    from harness.profile import example_profile_path

    with start_device_in_thread(example_profile_path(), cert_dir=tmp_path_factory.mktemp("pki")) as dev:
        yield dev


def modbus(device) -> RawClient:
    url = urlparse(device.urls["modbus"])
    return RawClient(url.hostname, url.port)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def opcua_session(device, work):
    async with Client(device.urls["opcua"], timeout=5) as client:
        ns = await client.get_namespace_index("urn:example-automation:pm100:data")
        return await work(client, lambda name: client.get_node(f"ns={ns};s=PowerMeter.{name}"))


def test_modbus_write_is_read_through_opcua_with_types_and_scale(device):
    with modbus(device) as mb:
        mb.request(struct.pack(">BHHB", 16, 3, 2, 4) + struct.pack(">f", 7.25))  # setpoint float32
        mb.request(struct.pack(">BHH", 6, 5, 123))  # power_limit int16, scale 0.1
        mb.request(struct.pack(">BHH", 5, 1, 0xFF00))  # relay_2 coil on
        mb.request(struct.pack(">BHHB", 16, 6, 4, 8) + struct.pack(">4H", 9, 8, 7, 6))  # samples[4]

    async def read(client, node):
        return [await node(n).read_data_value() for n in ("setpoint", "power_limit", "relay_2", "samples")]

    setpoint, power_limit, relay, samples = run(opcua_session(device, read))
    assert (setpoint.Value.Value, setpoint.Value.VariantType) == (7.25, ua.VariantType.Float)
    assert power_limit.Value.VariantType == ua.VariantType.Double
    assert power_limit.Value.Value == pytest.approx(12.3)
    assert relay.Value.Value is True
    assert samples.Value.Value == [9, 8, 7, 6]


def test_opcua_write_is_read_through_modbus(device):
    async def write(client, node):
        results = []
        for name, variant in (("ct_ratio", ua.Variant(250, ua.VariantType.UInt16)),
                              ("power_limit", ua.Variant(-4.5, ua.VariantType.Double)),
                              ("relay_3", ua.Variant(False, ua.VariantType.Boolean))):
            await node(name).write_value(ua.DataValue(variant))
            results.append(name)
        return results

    run(opcua_session(device, write))
    with modbus(device) as mb:
        assert mb.request(struct.pack(">BHH", 3, 0, 1)) == bytes([3, 2]) + struct.pack(">H", 250)
        assert mb.request(struct.pack(">BHH", 3, 5, 1)) == bytes([3, 2]) + struct.pack(">h", -45)
        assert mb.request(struct.pack(">BHH", 1, 2, 1)) == bytes([1, 1, 0])


def test_out_of_range_opcua_write_is_refused_and_changes_nothing(device):
    async def write(client, node):
        before = await node("power_limit").read_value()
        result = await client.uaclient.write(_write_request(node("power_limit").nodeid, ua.Variant(5000.0, ua.VariantType.Double)))
        return before, result, await node("power_limit").read_value()

    before, result, after = run(opcua_session(device, write))
    assert result[0].value == ua.StatusCodes.BadOutOfRange  # 50000 raw does not fit int16
    assert after == before


def test_subscription_reports_a_modbus_write(device):
    async def watch(client, node):
        changes: asyncio.Queue = asyncio.Queue()

        class Handler:
            def datachange_notification(self, node, value, data):
                changes.put_nowait(value)

        sub = await client.create_subscription(50, Handler())
        await sub.subscribe_data_change(node("ct_ratio"))
        first = await asyncio.wait_for(changes.get(), 5)  # the initial value
        with modbus(device) as mb:
            mb.request(struct.pack(">BHH", 6, 0, first + 1 if first < 65535 else 1))
        second = await asyncio.wait_for(changes.get(), 5)
        await sub.delete()
        return first, second

    first, second = run(opcua_session(device, watch))
    assert second == (first + 1 if first < 65535 else 1)


def _write_request(node_id, variant) -> ua.WriteParameters:
    params = ua.WriteParameters()
    item = ua.WriteValue()
    item.NodeId = node_id
    item.AttributeId = ua.AttributeIds.Value
    item.Value = ua.DataValue(variant)
    params.NodesToWrite = [item]
    return params
