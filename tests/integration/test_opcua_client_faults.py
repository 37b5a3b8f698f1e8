"""The OPC UA simulator's client-test faults on the wire, seen by the harness's own judge client.

Each fault of `simulators.opcua.faults.CLIENT_FAULTS` must really do what it says (a fault that
silently did nothing would let every client stack pass its rule): the simulator runs in this
process (`start_device_in_thread`), and `harness.opcua`'s `UaChannel` / `RawUacpConnection`,
which record every message and match replies by RequestId, observe it.  Without client faults
the simulator must use its plain classes (the no-fault path is unchanged).
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time

import pytest
from asyncua.common.utils import Buffer

from harness.codec.opcua import uacp
from harness.opcua import (
    BadReply,
    ChannelClosed,
    NoResponse,
    RawUacpConnection,
    UaChannel,
    activate_session,
    create_session,
    ua,
)
from harness.opcua.protocol import decode_service
from harness.profile import example_profile_path
from simulators.device import start_device_in_thread
from simulators.opcua.client_faults import WRONG_REQUEST_ID_OFFSET, ClientFaults
from simulators.opcua.faults import CLIENT_FAULTS, OPCUA_FAULTS, OpcuaFaultError, parse_opcua_faults

POINT = ua.NodeId.from_string("ns=2;s=PowerMeter.voltage_l1")  # a device point: read faults hit it
OTHER_POINT = ua.NodeId.from_string("ns=2;s=PowerMeter.current_l1")
STATE = ua.NodeId(ua.ObjectIds.Server_ServerStatus_State)  # not a device point: never hit
UNKNOWN = ua.NodeId.from_string("ns=2;s=harness.no-such-node")
BIG = ua.NodeId(7617)  # the Opc.Ua binary type dictionary, a ByteString of about 210 kB


def run(coro, limit: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, limit))


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def stopping():
    """Simulators stop in the background (asyncua's stop takes about a second); all are joined here."""
    threads: list[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join(15)


@pytest.fixture
def device(cert_dir, stopping):
    started = []

    def start(*faults: str):
        dev = start_device_in_thread(example_profile_path(), ("opcua",), faults=list(faults), cert_dir=cert_dir)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        thread = threading.Thread(target=dev.stop, name="stop-simulator", daemon=True)
        thread.start()
        stopping.append(thread)


def _port(dev) -> int:
    return dev.device.opcua.port


def read_request(*nodes: ua.NodeId) -> ua.ReadRequest:
    return ua.ReadRequest(Parameters=ua.ReadParameters(NodesToRead=[ua.ReadValueId(NodeId=n, AttributeId=ua.AttributeIds.Value)
                                                                    for n in nodes]))


def write_request(node: ua.NodeId, text: str) -> ua.WriteRequest:
    value = ua.WriteValue(NodeId=node, AttributeId=ua.AttributeIds.Value, Value=ua.DataValue(ua.Variant(text, ua.VariantType.String)))
    return ua.WriteRequest(Parameters=ua.WriteParameters(NodesToWrite=[value]))


async def session(dev, **options) -> UaChannel:
    channel = UaChannel("127.0.0.1", _port(dev), dev.urls["opcua"], **options)
    await channel.open()
    created = await create_session(channel)
    assert isinstance(await activate_session(channel, created), ua.ActivateSessionResponse)
    return channel


def _value_with(chunk: bytes, tail: bytes):
    """The value of a ReadResponse in a MSG chunk (SecurityPolicy None) once `tail` is appended;
    without it the body must not decode."""
    body = chunk[24:]  # header and SecureChannelId (12), TokenId (4), SequenceNumber and RequestId (8)
    with pytest.raises(Exception):
        decode_service(Buffer(body))
    return decode_service(Buffer(body + tail)).Results[0].Value.Value


def events(out: str) -> list[str]:
    return [json.loads(line.split(" ", 1)[1])["event"] for line in out.splitlines() if line.startswith("uac-event ")]


# ---------------------------------------------------------------------------- parsing


def test_fault_texts_are_validated_and_get_their_defaults():
    assert parse_opcua_faults(["ua-late-read", "ua-hello-error", "ua-wrong-request-id"]) == {
        "ua-late-read=2400", "ua-hello-error=BadTcpServerTooBusy", "ua-wrong-request-id"}
    assert parse_opcua_faults(["ua-service-fault=Bad_ServerTooBusy", "ua-receive-buffer=9000"]) == {
        "ua-service-fault=Bad_ServerTooBusy", "ua-receive-buffer=9000"}
    faults = ClientFaults.of(parse_opcua_faults(["ua-service-fault=Bad_ServerTooBusy", "ua-token-lifetime=1500"]))
    assert faults.service_fault == ua.StatusCodes.BadServerTooBusy and faults.token_lifetime_ms == 1500 and faults.on_read
    assert ClientFaults.of(parse_opcua_faults(["ua-ack-swapped"])) is None  # server defects only: plain classes
    for bad in ("ua-late-read=soon", "ua-late-read=0", "ua-receive-buffer=512", "ua-service-fault=Good",
                "ua-service-fault=BadNoSuchStatus", "ua-service-fault=0x00000000", "ua-wrong-request-id=1",
                "ua-ack-swapped=1", "ua-nothing"):
        with pytest.raises(OpcuaFaultError):
            parse_opcua_faults([bad])
    assert not set(CLIENT_FAULTS) & set(OPCUA_FAULTS) and all(name.startswith("ua-") for name in CLIENT_FAULTS)


def test_without_client_faults_the_plain_classes_serve(device):
    dev = device("ua-ack-swapped")
    server = dev.device.opcua.server
    assert dev.device.opcua.client_faults is None
    assert server.processor_class.__name__ == "DeviceProcessor" and server.protocol_class.__name__ == "GuardedProtocol"


# ---------------------------------------------------------------------------- read faults


def test_wrong_request_id_answers_under_another_id(device, capsys):
    dev = device("ua-wrong-request-id")

    async def go():
        channel = await session(dev)
        with pytest.raises(NoResponse):  # the judge matches by RequestId: nobody waits for that one
            await channel.request(read_request(POINT), timeout=0.5)
        sent = channel._protocol._request_id
        state = await channel.request(read_request(STATE))  # other reads are answered normally
        await channel.close()
        return sent, state, channel.unsolicited

    sent, state, unsolicited = run(go())
    assert state.Results[0].StatusCode.is_good()
    assert [rid for rid, reply in unsolicited if isinstance(reply, ua.ReadResponse)] == [sent + WRONG_REQUEST_ID_OFFSET]
    assert any("answered with RequestId" in e for e in events(capsys.readouterr().out))


def test_late_read_answers_first_late_then_half_as_late(device):
    dev = device("ua-late-read=1000")

    async def go():
        channel = await session(dev)
        t0 = time.monotonic()
        with pytest.raises(NoResponse):
            await channel.request(read_request(POINT), timeout=0.6)
        first_id = channel._protocol._request_id
        t1 = time.monotonic()
        second = await channel.request(read_request(OTHER_POINT), timeout=2.0)
        t2 = time.monotonic()
        await asyncio.sleep(0.1)
        await channel.close()
        return t1 - t0, t2 - t1, second, first_id, channel.unsolicited

    _, second_s, second, first_id, unsolicited = run(go())
    assert 0.4 <= second_s < 0.9  # the 2nd read: 500 ms late
    assert second.Results[0].Value.Value == pytest.approx(12.25)
    late = [(rid, reply) for rid, reply in unsolicited if rid == first_id]
    assert late and late[0][1].Results[0].Value.Value == pytest.approx(230.5)  # the 1st, 1000 ms late


def test_service_fault_carries_the_chosen_status(device):
    dev = device("ua-service-fault=BadServerTooBusy")

    async def go():
        channel = await session(dev)
        reply = await channel.request(read_request(POINT))
        other = await channel.request(read_request(STATE))
        await channel.close()
        return reply, other

    reply, other = run(go())
    assert isinstance(reply, ua.ServiceFault) and reply.ResponseHeader.ServiceResult.value == ua.StatusCodes.BadServerTooBusy
    assert isinstance(other, ua.ReadResponse)


def test_truncated_response_lacks_its_last_four_bytes(device):
    dev = device("ua-truncated-response")

    async def go():
        channel = await session(dev)
        with pytest.raises(BadReply):
            await channel.request(read_request(POINT))
        return [bytes.fromhex(f.hex) for f in channel.frames if f.direction == "rx"]

    last = run(go())[-1]
    assert last[:4] == b"MSGF" and struct.unpack("<I", last[4:8])[0] == len(last)  # framed consistently...
    assert _value_with(last, b"\x00\x00\x00\x00") == pytest.approx(230.5)  # ...but its last field is missing


def test_size_mismatch_sends_every_byte_under_a_short_message_size(device):
    dev = device("ua-size-mismatch")

    async def go():
        channel = await session(dev)
        with pytest.raises((BadReply, ChannelClosed)):
            await channel.request(read_request(POINT))
        await asyncio.sleep(0.1)
        channel.abort()  # the judge records what it holds unframed once the connection is gone
        await asyncio.wait_for(channel._protocol.closed.wait(), 1.0)
        return [bytes.fromhex(f.hex) for f in channel.frames if f.direction == "rx"]

    received = run(go())
    framed = [f for f in received if f[:4] == b"MSGF"][-1]
    assert struct.unpack("<I", framed[4:8])[0] == len(framed)
    # the 4 bytes MessageSize left out arrive after the chunk: the (empty) DiagnosticInfos array's length
    rest = b"".join(received[received.index(framed) + 1:])
    assert rest == b"\x00\x00\x00\x00" and _value_with(framed, rest) == pytest.approx(230.5)


def test_drop_on_read_closes_without_an_answer(device):
    dev = device("ua-drop-on-read")

    async def go():
        channel = await session(dev)
        with pytest.raises(ChannelClosed):
            await channel.request(read_request(POINT))
        return channel.closed_by_peer, channel.error

    closed_by_peer, error = run(go())
    assert closed_by_peer and error is None  # a plain close: no Error message


# ---------------------------------------------------------------------------- UACP and secure channel faults


def test_hello_error_answers_with_the_status_and_closes(device):
    dev = device("ua-hello-error=BadTcpServerTooBusy")

    async def go():
        conn = await RawUacpConnection.open("127.0.0.1", _port(dev))
        reply = await conn.hello(dev.urls["opcua"])
        closed = await conn.wait_closed(1.0)
        conn.close()
        return reply, closed

    reply, closed = run(go())
    assert isinstance(reply, uacp.ErrorMessage) and reply.error == ua.StatusCodes.BadTcpServerTooBusy and closed


def test_record_hello_prints_each_hello(device, capsys):
    dev = device("ua-record-hello")

    async def go():
        conn = await RawUacpConnection.open("127.0.0.1", _port(dev))
        ack = await conn.hello("opc.tcp://somewhere:4840/x", receive_buffer=9000, send_buffer=10000, max_message=123456,
                               max_chunks=7)
        conn.close()
        return ack

    assert isinstance(run(go()), uacp.Acknowledge)
    lines = [json.loads(line.split(" ", 1)[1]) for line in capsys.readouterr().out.splitlines() if line.startswith("hello-received ")]
    assert len(lines) == 1
    assert {k: lines[0][k] for k in ("protocol_version", "receive_buffer_size", "send_buffer_size", "max_message_size",
                                     "max_chunk_count", "endpoint_url", "endpoint_url_bytes")} == {
        "protocol_version": 0, "receive_buffer_size": 9000, "send_buffer_size": 10000, "max_message_size": 123456,
        "max_chunk_count": 7, "endpoint_url": "opc.tcp://somewhere:4840/x", "endpoint_url_bytes": 26}


def test_token_lifetime_is_revised_and_an_expired_token_refused(device):
    dev = device("ua-token-lifetime=800")

    async def go():
        stale = await session(dev, lifetime_ms=60_000)
        revised = stale.open_response.Parameters.SecurityToken.RevisedLifetime
        renewing = await session(dev, lifetime_ms=60_000)
        assert (await stale.request(read_request(STATE))).Results[0].StatusCode.is_good()
        await asyncio.sleep(0.6)  # 75 % of 800 ms
        renewed = await renewing.renew()
        await asyncio.sleep(0.5)  # the first tokens have expired now
        served = await renewing.request(read_request(STATE))
        with pytest.raises(ChannelClosed):
            await stale.request(read_request(STATE))
        await renewing.close()
        return revised, renewed, served, stale.error

    revised, renewed, served, error = run(go())
    assert revised == 800 and renewed.Parameters.SecurityToken.RevisedLifetime == 800
    assert isinstance(served, ua.ReadResponse)  # the renewed token is taken
    assert error is not None and error.error == ua.StatusCodes.BadTcpSecureChannelUnknown


def test_receive_buffer_is_acknowledged_and_enforced(device):
    dev = device("ua-receive-buffer=8192")

    async def go():
        channel = await session(dev)
        ack = channel.acknowledge
        chunked = await channel.request(write_request(UNKNOWN, "x" * 20_000))  # the judge splits at 8192
        channel._protocol._connection._limits.max_send_buffer = 65536  # now: one 20 kB chunk
        with pytest.raises(ChannelClosed):
            await channel.request(write_request(UNKNOWN, "x" * 20_000))
        return ack, chunked, channel.error

    ack, chunked, error = run(go())
    assert ack.receive_buffer_size == 8192 and ack.send_buffer_size > 8192
    assert chunked.Results[0].value == ua.StatusCodes.BadNodeIdUnknown
    assert error.error == ua.StatusCodes.BadTcpMessageTooLarge


def test_small_chunks_keep_the_server_chunks_below_what_it_offers(device):
    dev = device("ua-small-chunks=8192")

    async def go():
        channel = await session(dev)
        reply = await channel.request(read_request(BIG))
        await channel.close()
        return channel.acknowledge, reply, [f for f in channel.frames if f.direction == "rx"]

    ack, reply, received = run(go())
    assert ack.send_buffer_size > 8192
    assert len(reply.Results[0].Value.Value) > 100_000
    assert max(len(f.hex) // 2 for f in received) <= 8192 and len(received) > 20


def test_max_message_size_is_acknowledged_and_enforced(device):
    dev = device("ua-max-message-size=16384")

    async def go():
        channel = await session(dev)
        big = await channel.request(read_request(BIG))  # responses are not limited
        with pytest.raises(ChannelClosed):
            await channel.request(write_request(UNKNOWN, "x" * 20_000))
        return channel.acknowledge, big, channel.error

    ack, big, error = run(go())
    assert ack.max_message_size == 16384
    assert len(big.Results[0].Value.Value) > 100_000
    assert error.error == ua.StatusCodes.BadRequestTooLarge


# ---------------------------------------------------------------------------- the adapters' timeouts


@pytest.mark.parametrize("stack", ["asyncua", "node-opcua"])
def test_adapter_keeps_an_idle_connection_and_times_a_late_answer_out_at_its_timeout(device, stack):
    """What the late-response rule relies on: the adapter's timeout is the stack's request timeout
    (node-opcua floors it at 5 s unless told otherwise), and a connection idle for longer stays
    (node-opcua's transportTimeout is also a socket idle timeout)."""
    from harness.adapters.errors import NotInstalled, Timeout
    from harness.adapters.registry import make_client

    dev = device("ua-late-read=3000")
    try:
        client = make_client(stack)
    except NotInstalled as exc:
        pytest.skip(str(exc))
    try:
        client.connect(dev.urls["opcua"], timeout=1.0)
        time.sleep(1.3)
        assert client.read("i=2259").value == 0  # ServerStatus/State Running, after a pause longer than the timeout
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            client.read("ns=2;s=PowerMeter.voltage_l1")  # answered 3 s late
        assert 0.9 <= time.monotonic() - t0 < 1.9
    finally:
        client.close()
