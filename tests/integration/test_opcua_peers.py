"""Third-party OPC UA peers (node-opcua, plain asyncua): start, serve the device image, stop without a trace.

Each peer is started once per module with the sample image below and read with asyncua's
client (every connection has a 5 s timeout): the image's namespace is registered, the
variables read back their values with the right VariantType, the writable one takes a write,
the method adds, the user logs in, BuildInfo names the product.  node-opcua is started with
a trust directory holding the test client's certificate: that certificate opens a
Basic256Sha256 SignAndEncrypt channel, an unknown one is refused.  Stopping a peer must leave
neither its process nor its process group; a missing node_modules must name the fix.
The module runs in about 15-20 s (two starts of each peer, ~2-4 s each).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import textwrap

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from harness.peers.asyncua_server import start_asyncua_server
from harness.peers.base import PeerError, PeerProcess, opcua_hello, opcua_probe
from harness.peers.node_opcua_server import start_node_opcua_server
from harness.peers.run_asyncua_server import make_self_signed_certificate

IMAGE = {
    "endpoint_path": "/pm100",
    "namespace_uri": "urn:example:pm100:data",
    "application_uri": "urn:example:pm100",
    "product_uri": "https://example.invalid/pm100",
    "build_info": {"manufacturer_name": "Example Automation", "product_name": "Power Meter 100",
                   "software_version": "1.2", "build_number": "417", "build_date": "2026-10-01T00:00:00Z"},
    "object": {"browse_name": "PowerMeter", "node_id": "s=PowerMeter"},
    "variables": [
        {"browse_name": "voltage_l1", "node_id": "s=PowerMeter.voltage_l1", "data_type": "Float", "value": 230.5,
         "array_length": None, "writable": False, "unit": "V"},
        {"browse_name": "setpoint", "node_id": "s=PowerMeter.setpoint", "data_type": "Double", "value": 1.5,
         "array_length": None, "writable": True, "unit": None},
        {"browse_name": "samples", "node_id": "s=PowerMeter.samples", "data_type": "UInt16", "value": [1, 2, 3, 4],
         "array_length": 4, "writable": True, "unit": None},
        {"browse_name": "serial", "node_id": "s=PowerMeter.serial", "data_type": "String", "value": "SN-000417",
         "array_length": None, "writable": False, "unit": None},
    ],
    "methods": [
        {"browse_name": "Add", "node_id": "s=PowerMeter.Add",
         "inputs": [{"name": "a", "data_type": "Double"}, {"name": "b", "data_type": "Double"}],
         "outputs": [{"name": "sum", "data_type": "Double"}], "action": "sum"},
    ],
    "users": [{"name": "operator", "password": "op-secret-1"}],
    "security": [{"policy": "None", "modes": ["None"]}, {"policy": "Basic256Sha256", "modes": ["Sign", "SignAndEncrypt"]}],
}
CLIENT_URI = "urn:harness:test-client"
TIMEOUT = 5


def process_gone(pid: int) -> bool:
    for probe in (os.kill, os.killpg):
        try:
            probe(pid, 0)
            return False
        except ProcessLookupError:
            continue
        except PermissionError:
            return False
    return True


@pytest.fixture(scope="module")
def client_certs(tmp_path_factory):
    """(trust dir holding the client's DER certificate, cert path, key path, untrusted cert, its key)."""
    base = tmp_path_factory.mktemp("opcua-client")
    trust = base / "trust"
    trust.mkdir()
    make_self_signed_certificate(CLIENT_URI, trust / "client.der", base / "client-key.pem", common_name="harness test client")
    make_self_signed_certificate(CLIENT_URI, base / "stranger.der", base / "stranger-key.pem", common_name="stranger")
    return trust, trust / "client.der", base / "client-key.pem", base / "stranger.der", base / "stranger-key.pem"


def _start(name: str, trust_dir=None) -> PeerProcess:
    if name == "node-opcua":
        return start_node_opcua_server(IMAGE, trust_dir=trust_dir)
    return start_asyncua_server(IMAGE)


@pytest.fixture(scope="module", params=["node-opcua", "asyncua"])
def peer(request, client_certs):
    with _start(request.param, trust_dir=client_certs[0]) as p:
        yield p


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


async def _namespace_index(client: Client) -> int:
    return (await client.get_namespace_array()).index(IMAGE["namespace_uri"])


def _node(client: Client, idx: int, node_id: str):
    return client.get_node(ua.NodeId.from_string(f"ns={idx};{node_id}"))


# ---------------------------------------------------------------------- serving the image


def test_peer_announces_an_opcua_url(peer):
    assert peer.url == f"opc.tcp://127.0.0.1:{peer.port}/pm100"
    assert peer.version and peer.version[0].isdigit()
    assert opcua_probe(peer.host, peer.port, 2.0, endpoint_url=peer.url)[:3] == b"ACK"


def test_namespace_variables_write_method_buildinfo(peer):
    async def check():
        async with Client(peer.url, timeout=TIMEOUT) as client:
            namespaces = await client.get_namespace_array()
            assert IMAGE["namespace_uri"] in namespaces
            idx = namespaces.index(IMAGE["namespace_uri"])
            expected = {"voltage_l1": (230.5, ua.VariantType.Float), "setpoint": (1.5, ua.VariantType.Double),
                        "samples": ([1, 2, 3, 4], ua.VariantType.UInt16), "serial": ("SN-000417", ua.VariantType.String)}
            for var in IMAGE["variables"]:
                value = (await _node(client, idx, var["node_id"]).read_data_value()).Value
                assert (value.Value, value.VariantType) == expected[var["browse_name"]], var["browse_name"]
                access = await _node(client, idx, var["node_id"]).read_attribute(ua.AttributeIds.AccessLevel)
                writable = bool(access.Value.Value & ua.AccessLevel.CurrentWrite.mask)
                assert writable == var["writable"], var["browse_name"]

            setpoint = _node(client, idx, "s=PowerMeter.setpoint")
            await setpoint.write_value(ua.Variant(2.5, ua.VariantType.Double))
            assert await setpoint.read_value() == 2.5

            obj = _node(client, idx, "s=PowerMeter")
            method = ua.NodeId.from_string(f"ns={idx};s=PowerMeter.Add")
            total = await obj.call_method(method, ua.Variant(1.25, ua.VariantType.Double), ua.Variant(2.0, ua.VariantType.Double))
            assert total == 3.25

            units = await _node(client, idx, "s=PowerMeter.voltage_l1").get_child(["0:EngineeringUnits"])
            assert (await units.read_value()).DisplayName.Text == "V"

            build = await client.get_node(ua.ObjectIds.Server_ServerStatus_BuildInfo).read_value()
            assert build.ProductName == "Power Meter 100"
            assert build.ManufacturerName == "Example Automation"

    run(check())


def test_read_only_variable_refuses_a_write(peer):
    async def check():
        async with Client(peer.url, timeout=TIMEOUT) as client:
            idx = await _namespace_index(client)
            with pytest.raises(ua.UaStatusCodeError):
                await _node(client, idx, "s=PowerMeter.serial").write_value(ua.Variant("X", ua.VariantType.String))

    run(check())


def test_username_login(peer):
    async def login(password: str):
        client = Client(peer.url, timeout=TIMEOUT)
        client.set_user("operator")
        client.set_password(password)
        async with client:
            return await client.get_node(ua.ObjectIds.Server_ServerStatus_BuildInfo_ProductName).read_value()

    assert run(login("op-secret-1")) == "Power Meter 100"
    with pytest.raises(ua.UaStatusCodeError):
        run(login("wrong"))


def test_secure_channel_with_the_trusted_client_certificate(peer, client_certs):
    _, cert, key, stranger, stranger_key = client_certs

    async def connect(cert_path, key_path):
        client = Client(peer.url, timeout=TIMEOUT)
        client.application_uri = CLIENT_URI
        await client.set_security(SecurityPolicyBasic256Sha256, str(cert_path), str(key_path),
                                  mode=ua.MessageSecurityMode.SignAndEncrypt)
        async with client:
            return await client.get_node(ua.ObjectIds.Server_ServerStatus_BuildInfo_ProductName).read_value()

    assert run(connect(cert, key)) == "Power Meter 100"
    if peer.name == "node-opcua":
        # auto-accept is off: a certificate that is not in the trust dir is refused
        # (node-opcua answers BadSecurityChecksFailed; asyncua 2.1's client fails to decode the reply)
        with pytest.raises(Exception):  # noqa: B017 - any failure to connect is the right outcome
            run(connect(stranger, stranger_key))


# ---------------------------------------------------------------------- stop / install errors


@pytest.mark.parametrize("name", ["node-opcua", "asyncua"])
def test_stop_leaves_no_process_behind(name):
    p = _start(name)
    pid = p.pid
    assert p.running
    p.close()
    assert not p.running
    assert process_gone(pid), f"{name} peer pid {pid} (or its process group) survived stop()"
    with pytest.raises(OSError):
        socket.create_connection((p.host, p.port), timeout=1.0).close()


def test_missing_node_modules_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_NODE_MODULES", str(tmp_path))
    with pytest.raises(PeerError, match=r"install-node-packages\.sh") as info:
        start_node_opcua_server(IMAGE)
    assert "make setup" in str(info.value)
    with pytest.raises(PeerError, match=r"install-node-packages\.sh"):
        start_node_opcua_server(IMAGE, node_modules=tmp_path / "absent")


def test_missing_node_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_NODE", str(tmp_path / "no-such-node"))
    with pytest.raises(PeerError, match=r"install-node-packages\.sh"):
        start_node_opcua_server(IMAGE)


# ---------------------------------------------------------------------- the OPC UA readiness probe


def test_hello_layout():
    hello = opcua_hello("opc.tcp://h:1/p")
    assert hello[:4] == b"HELF"
    assert int.from_bytes(hello[4:8], "little") == len(hello) == 8 + 20 + 4 + len("opc.tcp://h:1/p")
    assert hello[8:28] == bytes.fromhex("00000000" "00000100" "00000100" "00000000" "00000000")
    assert hello[28:32] == len("opc.tcp://h:1/p").to_bytes(4, "little") and hello.endswith(b"opc.tcp://h:1/p")


def _script(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_opcua_peer_that_does_not_acknowledge_fails_the_probe():
    # Reads the Hello and answers with an OPC UA ERR message: up, but not ready.
    peer = PeerProcess("err-peer", _script("""
        import socket, struct, time
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
        print(f"listening on opc.tcp://127.0.0.1:{s.getsockname()[1]}/x", flush=True)
        while True:
            c, _ = s.accept()
            c.recv(4096)
            reason = b"not yet"
            c.sendall(b"ERRF" + struct.pack("<II", 16 + len(reason), 0x80AE0000) + struct.pack("<i", len(reason)) + reason)
            c.close()
    """), startup_timeout=1.5)  # the scheme comes from the announcement
    with pytest.raises(PeerError, match=r"err-peer.*did not acknowledge an OPC UA Hello.*0x80AE0000"):
        peer.start()
    assert peer.url.endswith("/x")
    assert process_gone(peer.pid)
