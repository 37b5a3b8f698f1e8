"""The OPC UA client adapters (asyncua in-process; node-opcua through its node bridge) against
the bundled device simulator's OPC UA face on loopback.

Every test runs once per stack, made through `harness.adapters.registry.make_client` as the
interoperability matrix makes them: browse lists the device's points, reads give the profile's
values with their built-in types, writes read back, the server's bad statuses arrive as
`StatusError` with the exact status name, the method Add computes, a subscription reports the
initial value and then a written one, the secured endpoint (Basic256Sha256 SignAndEncrypt with
the harness's client certificate, which the simulator trusts) takes the operator's user name
and password and refuses a wrong one or an untrusted certificate, a closed port or a silent
server is `ConnectFailed` within the timeout, a server going away is `ConnectionLost`, and no
node process outlives `close()`.  Where a stack does something the test says it should not,
the test stays as it should be and is marked `xfail(strict=True, reason="finding: ...")`.
"""

from __future__ import annotations

import math
import os
import socket
import time

import pytest

from harness.adapters.errors import AdapterError, ConnectFailed, ConnectionLost, StatusError
from harness.adapters.opcua import Reference, Value
from harness.adapters.registry import OPCUA_CLIENTS, make_client
from harness.certs import ensure_certificate, harness_client_certificate
from harness.profile import example_profile_path, load_profile
from simulators.device import start_device_in_thread

PROFILE = load_profile(example_profile_path())
NAMESPACE = "urn:example-automation:pm100:data"
STACKS = list(OPCUA_CLIENTS)  # asyncua, node-opcua
USER, PASSWORD = "operator", "op-secret-1"
TIMEOUT = 5.0  # generous: a loaded machine must not flake
SHORT_TIMEOUT = 2.0


def _make(stack: str):
    try:
        return make_client(stack)
    except AdapterError as exc:  # NotInstalled: say how to install, do not fail the suite
        pytest.skip(f"{stack}: {exc}")


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """One device simulator (OPC UA face only) for the module; its certificate in a temp dir."""
    with start_device_in_thread(example_profile_path(), ("opcua",), cert_dir=tmp_path_factory.mktemp("opcua-certs")) as dev:
        yield dev


@pytest.fixture(scope="module")
def url(device) -> str:
    return device.urls["opcua"]


@pytest.fixture(scope="module")
def cert():
    return harness_client_certificate()


@pytest.fixture(scope="module", params=STACKS)
def stack(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def client(stack, url, cert):
    """One anonymous, unsecured client per stack for the module (node-opcua: one node process).
    The certificate is given anyway: node-opcua would otherwise make one of its own (~0.7 s)."""
    c = _make(stack)
    c.connect(url, certificate=cert.cert_path, private_key=cert.key_path, timeout=TIMEOUT)
    yield c
    c.close()


@pytest.fixture(scope="module")
def ns(client) -> int:
    return client.namespace_index(NAMESPACE)


def nid(ns: int, name: str) -> str:
    return f"ns={ns};s=PowerMeter.{name}"


def _finding(stack: str, reason: str):
    """The stack's parameter, marked as a known wrong behaviour of that stack."""
    return pytest.param(stack, marks=pytest.mark.xfail(strict=True, reason=f"finding: {reason}"))


def closed_port() -> int:
    """A loopback port nobody listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# --------------------------------------------------------------------------- identity, browse, read


def test_name_and_version(stack):
    c = _make(stack)
    assert c.name == stack
    assert c.version == {"asyncua": "2.1.0", "node-opcua": "2.182.2"}[stack]


def test_namespace_index(client, ns):
    assert ns == 2  # 0 is OPC UA's, 1 the server's application URI, 2 the device's data
    with pytest.raises(AdapterError):
        client.namespace_index("urn:nobody:here")


def test_browse_object_lists_the_points(client, ns):
    refs = client.browse(f"ns={ns};s=PowerMeter")
    assert all(isinstance(r, Reference) for r in refs)
    variables = {r.browse_name: r for r in refs if r.node_class == "Variable"}
    assert set(variables) == {p.name for p in PROFILE.points}
    assert variables["voltage_l1"].node_id == nid(ns, "voltage_l1")
    methods = [r for r in refs if r.node_class == "Method"]
    assert [(m.browse_name, m.node_id) for m in methods] == [("Add", nid(ns, "Add"))]


def test_browse_objects_folder_normalises_node_ids(client):
    refs = {r.browse_name: r for r in client.browse("i=85")}
    assert refs["Server"] == Reference("Server", "i=2253", "Object")  # no "ns=0;" from either stack
    assert refs["PowerMeter"].node_class == "Object"


@pytest.mark.parametrize(
    "point, expected",
    [
        ("voltage_l1", Value(230.5, "Float")),
        ("frequency", Value(50.0, "Double")),
        ("demand_limit", Value(-40000, "Int32")),
        ("serial", Value("SN-000417", "String")),
        ("relay_1", Value(True, "Boolean")),
        ("samples", Value([1, 2, 3, 4], "UInt16")),
    ],
)
def test_read_gives_profile_value_and_type(client, ns, point, expected):
    value = client.read(nid(ns, point))
    assert value == expected
    assert type(value.value) is type(expected.value)  # 50.0 stays a float through JSON too


def test_read_namespace_array_is_a_string_list(client):
    value = client.read("i=2255")
    assert value.type_name == "String"
    assert value.value[0] == "http://opcfoundation.org/UA/" and NAMESPACE in value.value


# --------------------------------------------------------------------------- write, errors


def test_write_setpoint_reads_back(client, ns, stack):
    target = {"asyncua": 2.5, "node-opcua": 3.75}[stack]  # exact in float32
    client.write(nid(ns, "setpoint"), target, "Float")
    assert client.read(nid(ns, "setpoint")) == Value(target, "Float")


@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf, -0.0])
def test_float_special_values_round_trip(client, ns, special):
    """What JSON cannot carry (the node bridge tags it) arrives as it was written."""
    try:
        client.write(nid(ns, "setpoint"), special, "Float")
        value = client.read(nid(ns, "setpoint")).value
        if math.isnan(special):
            assert math.isnan(value)
        else:
            assert value == special and math.copysign(1.0, value) == math.copysign(1.0, special)
    finally:
        client.write(nid(ns, "setpoint"), 1.5, "Float")


def test_write_wrong_type_is_bad_type_mismatch(client, ns):
    with pytest.raises(StatusError) as info:
        client.write(nid(ns, "setpoint"), 3.5, "Double")  # the variable is a Float
    assert info.value.status == "BadTypeMismatch"
    assert info.value.code == 0x80740000


def test_write_read_only_is_bad_not_writable(client, ns):
    with pytest.raises(StatusError) as info:
        client.write(nid(ns, "voltage_l1"), 1.0, "Float")
    assert info.value.status == "BadNotWritable"


@pytest.mark.parametrize("operation", ["read", "write", "browse"])
def test_unknown_node_is_bad_node_id_unknown(client, ns, operation):
    node = nid(ns, "no_such_point")
    with pytest.raises(StatusError) as info:
        if operation == "read":
            client.read(node)
        elif operation == "write":
            client.write(node, 1, "Int32")
        else:
            client.browse(node)
    assert info.value.status == "BadNodeIdUnknown"
    assert info.value.code == 0x80340000


@pytest.mark.parametrize("value, type_name", [("abc", "Float"), (70000, "UInt16"), (1.5, "Int32"), (1, "Boolean"), (1, "Nope")])
def test_value_that_does_not_fit_is_refused_before_sending(client, ns, value, type_name):
    with pytest.raises(ValueError):
        client.write(nid(ns, "setpoint"), value, type_name)
    assert client.read(nid(ns, "voltage_l1")).value == 230.5  # the session is unharmed


def test_malformed_node_id_is_value_error(client):
    with pytest.raises(ValueError):
        client.read("this is not a node id;;")


# --------------------------------------------------------------------------- call, subscribe


def test_call_add(client, ns):
    assert client.call(f"ns={ns};s=PowerMeter", nid(ns, "Add"), [(1.5, "Double"), (2.25, "Double")]) == [3.75]


def test_call_with_missing_argument_is_status_error(client, ns):
    with pytest.raises(StatusError) as info:
        client.call(f"ns={ns};s=PowerMeter", nid(ns, "Add"), [(1.5, "Double")])
    assert info.value.status == "BadArgumentsMissing"


def test_subscription_reports_initial_then_written_value(client, ns, stack):
    node = nid(ns, "ct_ratio")
    initial = client.read(node).value
    handle = client.subscribe(node, 50)
    try:
        assert client.next_change(handle, TIMEOUT) == initial
        written = {"asyncua": 150, "node-opcua": 160}[stack]
        client.write(node, written, "UInt16")
        assert client.next_change(handle, TIMEOUT) == written
    finally:
        client.unsubscribe(handle)
    with pytest.raises(KeyError):
        client.next_change(handle, 0.1)


def test_subscription_on_unknown_node_is_status_error(client, ns):
    with pytest.raises(StatusError) as info:
        client.subscribe(nid(ns, "no_such_point"), 100)
    assert info.value.status == "BadNodeIdUnknown"


# --------------------------------------------------------------------------- security, connection


def test_secure_connect_with_user(stack, url, cert, ns):
    c = _make(stack)
    try:
        c.connect(url, policy="Basic256Sha256", mode="SignAndEncrypt", user=USER, password=PASSWORD,
                  certificate=cert.cert_path, private_key=cert.key_path, timeout=TIMEOUT)
        assert c.read(nid(ns, "frequency")) == Value(50.0, "Double")
    finally:
        c.close()


def test_wrong_password_is_status_error(stack, url, cert):
    c = _make(stack)
    try:
        with pytest.raises(StatusError) as info:
            c.connect(url, policy="Basic256Sha256", mode="SignAndEncrypt", user=USER, password="wrong",
                      certificate=cert.cert_path, private_key=cert.key_path, timeout=TIMEOUT)
        assert info.value.status in ("BadUserAccessDenied", "BadIdentityTokenRejected")
        with pytest.raises(ConnectionLost):  # nothing half-open is left to use
            c.read("i=2255")
    finally:
        c.close()


@pytest.mark.parametrize(
    "stack_name",
    [
        "asyncua",
        _finding(
            "node-opcua",
            "the simulator refuses OpenSecureChannel with a UACP ERR (BadSecurityChecksFailed, 'certificate not "
            "trusted'); node-opcua logs the reason to stderr but drops the status (an ERR has no request id): connect "
            "fails with 'socket has been disconnected by third party' (ConnectFailed)",
        ),
    ],
)
def test_untrusted_certificate_is_bad_security_checks_failed(stack_name, url, tmp_path):
    stranger = ensure_certificate(tmp_path, "stranger", "urn:protocol-harness:stranger")
    c = _make(stack_name)
    try:
        with pytest.raises(StatusError) as info:
            c.connect(url, policy="Basic256Sha256", mode="SignAndEncrypt", user=USER, password=PASSWORD,
                      certificate=stranger.cert_path, private_key=stranger.key_path, timeout=TIMEOUT)
        assert info.value.status == "BadSecurityChecksFailed"
    finally:
        c.close()


def test_secure_policy_needs_a_certificate(stack, url):
    c = _make(stack)
    with pytest.raises(ValueError):
        c.connect(url, policy="Basic256Sha256", mode="SignAndEncrypt", timeout=TIMEOUT)
    c.close()


def test_connect_to_closed_port_fails_within_timeout(stack):
    c = _make(stack)
    try:
        # the first attempt also starts node-opcua's process (about a second): not what is timed
        with pytest.raises(ConnectFailed):
            c.connect(f"opc.tcp://127.0.0.1:{closed_port()}/x", timeout=SHORT_TIMEOUT)
        t0 = time.monotonic()
        with pytest.raises(ConnectFailed):
            c.connect(f"opc.tcp://127.0.0.1:{closed_port()}/x", timeout=SHORT_TIMEOUT)
        assert time.monotonic() - t0 < SHORT_TIMEOUT
    finally:
        c.close()


def test_connect_to_silent_server_fails_within_timeout(stack):
    with socket.socket() as silent:  # the kernel accepts the connection; nobody answers the Hello
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        c = _make(stack)
        try:
            with pytest.raises(ConnectFailed):  # warm: node-opcua's process starts here
                c.connect(f"opc.tcp://127.0.0.1:{closed_port()}/x", timeout=SHORT_TIMEOUT)
            t0 = time.monotonic()
            with pytest.raises(ConnectFailed):
                c.connect(f"opc.tcp://127.0.0.1:{port}/x", timeout=1.0)
            assert time.monotonic() - t0 < 1.0 + 1.5
        finally:
            c.close()


def test_server_going_away_is_connection_lost(stack, cert, tmp_path):
    with start_device_in_thread(example_profile_path(), ("opcua",), cert_dir=tmp_path) as dev:
        c = _make(stack)
        c.connect(dev.urls["opcua"], certificate=cert.cert_path, private_key=cert.key_path, timeout=TIMEOUT)
        try:
            handle = c.subscribe("ns=2;s=PowerMeter.ct_ratio", 100)
            assert c.next_change(handle, TIMEOUT) == 100
            dev.stop()
            deadline = time.monotonic() + TIMEOUT
            with pytest.raises(ConnectionLost):  # told at once, not after the subscription's timeout
                c.next_change(handle, TIMEOUT)
            assert time.monotonic() < deadline
            with pytest.raises(ConnectionLost):
                c.read("ns=2;s=PowerMeter.frequency")
        finally:
            c.close()


def test_operation_before_connect_is_connection_lost(stack):
    c = _make(stack)
    with pytest.raises(ConnectionLost):
        c.read("i=2255")
    c.close()


def test_close_leaves_no_node_process(url, cert):
    c = _make("node-opcua")
    c.connect(url, certificate=cert.cert_path, private_key=cert.key_path, timeout=TIMEOUT)
    pid = c.pid
    assert pid is not None and not group_gone(pid)
    assert c.read("i=2255").type_name == "String"
    c.close()
    assert group_gone(pid)
    assert c.pid is None
    c.close()  # twice is harmless
