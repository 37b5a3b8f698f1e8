"""The OPC UA simulator's robustness fault `ua-lose-writes[:every=N]` on the wire: a Write the
point would accept is answered Good and not stored (every one, or every Nth over the whole
server), a Write the point refuses is still refused, and without the fault the Write service
works on the device model itself (the fault-free path is unchanged).  The suite's case that
must catch it is ROB-UA-STATEFUL-WRITES (tests/e2e/test_robustness_opcua.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from harness.opcua import UaChannel, activate_session, create_session, ua
from harness.profile import example_profile_path
from simulators.device import start_device_in_thread
from simulators.opcua.faults import ROBUSTNESS_FAULTS, OpcuaFaultError, lose_writes_every, parse_opcua_faults
from simulators.opcua.lose_writes_fault import LosingWrites

CT_RATIO = ua.NodeId.from_string("ns=2;s=PowerMeter.ct_ratio")  # writable UInt16, 100 in the example profile
POWER_LIMIT = ua.NodeId.from_string("ns=2;s=PowerMeter.power_limit")  # writable int16 * 0.1, a Double


def run(coro, limit: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, limit))


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pki")


@pytest.fixture
def device(cert_dir):
    started = []

    def start(*faults: str):
        dev = start_device_in_thread(example_profile_path(), ("modbus", "opcua"), faults=list(faults), cert_dir=cert_dir)
        started.append(dev)
        return dev

    yield start
    stopping = [threading.Thread(target=dev.stop, name="stop-simulator", daemon=True) for dev in started]
    for thread in stopping:
        thread.start()
    for thread in stopping:
        thread.join(15)


async def session(dev) -> UaChannel:
    channel = UaChannel("127.0.0.1", dev.device.opcua.port, dev.urls["opcua"])
    await channel.open()
    created = await create_session(channel)
    assert isinstance(await activate_session(channel, created), ua.ActivateSessionResponse)
    return channel


async def write(channel: UaChannel, node: ua.NodeId, variant: ua.Variant) -> int:
    value = ua.WriteValue(NodeId=node, AttributeId=ua.AttributeIds.Value, Value=ua.DataValue(variant))
    reply = await channel.request(ua.WriteRequest(Parameters=ua.WriteParameters(NodesToWrite=[value])))
    assert isinstance(reply, ua.WriteResponse) and len(reply.Results) == 1, reply
    return reply.Results[0].value


async def read(channel: UaChannel, node: ua.NodeId):
    item = ua.ReadValueId(NodeId=node, AttributeId=ua.AttributeIds.Value)
    reply = await channel.request(ua.ReadRequest(Parameters=ua.ReadParameters(NodesToRead=[item])))
    assert isinstance(reply, ua.ReadResponse) and reply.Results[0].StatusCode.is_good(), reply
    return reply.Results[0].Value.Value


def uint16(value: int) -> ua.Variant:
    return ua.Variant(value, ua.VariantType.UInt16)


def test_the_fault_text_is_validated():
    assert parse_opcua_faults(["ua-lose-writes"]) == {"ua-lose-writes"}
    assert parse_opcua_faults(["ua-lose-writes:every=3"]) == {"ua-lose-writes:every=3"}
    assert lose_writes_every(parse_opcua_faults(["ua-lose-writes"])) == 1
    assert lose_writes_every(parse_opcua_faults(["ua-lose-writes:every=07", "ua-ack-swapped"])) == 7
    assert lose_writes_every(parse_opcua_faults(["ua-hang-on-bad-size=10"])) is None
    for bad in ("ua-lose-writes=1", "ua-lose-writes:every=0", "ua-lose-writes:every=x", "ua-lose-writes:every=",
                "ua-lose-writes:fc=6", "ua-hang-on-bad-size:every=2"):
        with pytest.raises(OpcuaFaultError):
            parse_opcua_faults([bad])
    assert ROBUSTNESS_FAULTS["ua-lose-writes"][1] == "ROB-UA-STATEFUL-WRITES"


def test_without_the_fault_the_write_service_uses_the_device_model_itself(device):
    dev = device("ua-ack-swapped")
    assert dev.device.opcua.server.processor_class.device.model is dev.device.model


def test_acknowledged_writes_are_lost_and_refused_ones_still_refused(device):
    dev = device("ua-lose-writes")
    model = dev.device.model
    assert isinstance(dev.device.opcua.server.processor_class.device.model, LosingWrites)

    async def go():
        channel = await session(dev)
        code = await write(channel, CT_RATIO, uint16(101))
        held = await read(channel, CT_RATIO)
        wrong_type = await write(channel, CT_RATIO, ua.Variant(101, ua.VariantType.Int64))
        out_of_range = await write(channel, POWER_LIMIT, ua.Variant(5000.0, ua.VariantType.Double))  # raw 50000 > int16
        await channel.close()
        return code, held, wrong_type, out_of_range

    code, held, wrong_type, out_of_range = run(go())
    assert code == ua.StatusCodes.Good and held == 100  # answered Good, not stored
    assert model.value("ct_ratio") == 100  # the Modbus face sees no change either
    assert wrong_type == ua.StatusCodes.BadTypeMismatch and out_of_range == ua.StatusCodes.BadOutOfRange
    assert dev.device.opcua.server.processor_class.device.model.lost == 1


def test_every_nth_write_is_lost_counted_over_the_whole_server(device):
    dev = device("ua-lose-writes:every=3")

    async def go():
        first, second = await session(dev), await session(dev)
        seen = []
        for n in range(1, 7):  # the 3rd and the 6th writes are lost, whichever session sends them
            channel = first if n % 2 else second
            assert await write(channel, CT_RATIO, uint16(200 + n)) == ua.StatusCodes.Good
            seen.append(await read(second if n % 2 else first, CT_RATIO))
        await first.close()
        await second.close()
        return seen

    assert run(go()) == [201, 202, 202, 204, 205, 205]
    assert dev.device.model.value("ct_ratio") == 205
