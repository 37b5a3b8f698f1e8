"""Drafting a profile from an OPC UA server (`harness.probe_opcua`): from the bundled simulator's
OPC UA face, and from servers that are not there or answer garbage."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from harness import probe_opcua as P
from harness.opcua import ua
from harness.profile import engineering_value, example_profile_path, load_profile
from harness.target import parse_target

from .helpers import certify

# The example points that the simulator scales show their engineering value as a Double.
SCALED_TYPE = "float64"


@pytest.fixture(scope="module")
def opcua_device(tmp_path_factory):
    from simulators.device import start_device_in_thread

    with start_device_in_thread(example_profile_path(), protocols=("opcua",), cert_dir=tmp_path_factory.mktemp("pki")) as device:
        yield device


@pytest.fixture(scope="module")
def drafted(opcua_device, tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "drafted.yaml"
    messages: list[str] = []
    summary = P.probe_opcua_to_file(parse_target(opcua_device.urls["opcua"]), path, progress=messages.append)
    return path, summary, messages


def test_draft_of_the_simulated_device_loads_and_matches_the_example(drafted, example_profile):
    path, summary, messages = drafted
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Drafted by `harness probe opc.tcp://127.0.0.1:") and "DRAFT" in text
    draft = load_profile(path)  # the draft is a valid profile
    want, got = example_profile.opcua, draft.opcua
    assert got.security == want.security
    assert got.namespace == want.namespace
    assert (got.object_name, got.object_node_id) == (want.object_name, want.object_node_id)
    assert (got.application_uri, got.product_uri, got.build_number, got.build_date, got.endpoint_path) == (
        want.application_uri, want.product_uri, want.build_number, want.build_date, want.endpoint_path)
    for key in ("max_nodes_per_read", "max_nodes_per_write", "max_nodes_per_browse", "max_nodes_per_method_call"):
        assert got.limits[key] == want.limits[key], key
    assert got.server_profile == "nano" and "set the one the vendor claims" in text
    # username is offered, but no test user is known: left out, with the reason
    assert got.user_tokens == ("anonymous",) and got.users == ()
    assert "offers username tokens" in text
    # methods cannot be drafted honestly (their action is unknowable): a comment only
    assert got.methods == ()
    assert "#   - name: Add" in text and "inputs: [{name: a, type: Double}, {name: b, type: Double}]" in text
    for key in ("vendor_name", "product_name", "revision"):
        assert draft.device[key] == example_profile.device[key], key
    assert draft.device["product_code"] == example_profile.device["product_name"]

    assert draft.modbus is None and all(p.table is None for p in draft.points)
    assert [p.name for p in draft.points] == [p.name for p in example_profile.points]
    for want_point in example_profile.points:
        point = draft.point(want_point.name)
        assert point.node_id == want_point.node_id
        assert point.type == (SCALED_TYPE if want_point.scale is not None else want_point.type), point.name
        assert point.scale is None
        assert point.value == pytest.approx(engineering_value(want_point, want_point.value)), point.name
        assert point.array == want_point.array
        assert point.writable == want_point.writable, point.name
        assert point.unit == want_point.unit, point.name
    assert draft.point("serial").length >= len("SN-000417")
    assert "21 points" in summary and "PowerMeter" in summary
    assert any("device object PowerMeter" in m for m in messages)


def test_certify_runs_with_the_drafted_profile(opcua_device, drafted, tmp_path):
    path, _, _ = drafted
    code, data, output = certify(opcua_device.urls["opcua"], tmp_path / "out", profile=path)
    assert code in (0, 1), output
    assert data is not None and data["cases"], output


def test_a_server_without_security_none_or_anonymous_is_probed_with_the_target_user(tmp_path, monkeypatch):
    """No None endpoint: browse over a secure channel with the harness client certificate (which
    the simulator trusts); no anonymous login: the target's user with HARNESS_PASSWORD, who then
    becomes the draft's test user (by environment variable, never the password itself)."""
    from simulators.device import start_device_in_thread

    text = example_profile_path().read_text(encoding="utf-8")
    text = text.replace("    - {policy: None, modes: [None]}\n", "").replace("user_tokens: [anonymous, username]", "user_tokens: [username]")
    variant = tmp_path / "secure-only.yaml"
    variant.write_text(text, encoding="utf-8")
    with start_device_in_thread(variant, protocols=("opcua",), cert_dir=tmp_path / "pki") as device:
        url = device.urls["opcua"]
        monkeypatch.delenv(P.PASSWORD_ENV, raising=False)
        with pytest.raises(P.OpcuaProbeError, match="no anonymous login.*user=NAME"):
            P.probe_opcua_to_file(parse_target(url), tmp_path / "none.yaml")
        monkeypatch.setenv(P.PASSWORD_ENV, "op-secret-1")
        P.probe_opcua_to_file(parse_target(url + "?user=operator"), tmp_path / "d.yaml")
    draft = load_profile(tmp_path / "d.yaml")
    assert draft.opcua.security == load_profile(variant).opcua.security
    assert draft.opcua.user_tokens == ("username",)
    assert [(u.name, u.password) for u in draft.opcua.users] == [("operator", "op-secret-1")]
    assert "op-secret-1" not in (tmp_path / "d.yaml").read_text(encoding="utf-8")
    assert len(draft.points) == 21


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_nothing_listening_fails_fast_with_a_clear_error(tmp_path):
    port = _free_port()
    started = time.monotonic()
    with pytest.raises(P.OpcuaProbeError, match=rf"opc.tcp://127.0.0.1:{port}.*(refused|connect)"):
        P.probe_opcua_to_file(parse_target(f"opc.tcp://127.0.0.1:{port}"), tmp_path / "d.yaml")
    assert time.monotonic() - started < P.CALL_TIMEOUT_S + 5
    assert not (tmp_path / "d.yaml").exists()


class _GarbageServer:
    """Answers every connection and every byte with b"garbage", on its own loop and thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        class Garbage(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                self.transport.write(b"garbage")

        self.server = self.loop.run_until_complete(self.loop.create_server(Garbage, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        self.server.close()
        self.loop.run_until_complete(self.server.wait_closed())
        self.loop.close()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_a_server_answering_garbage_gives_an_error_not_a_hang(tmp_path):
    outcome: list[BaseException | str] = []

    def probe():
        try:
            outcome.append(P.probe_opcua_to_file(parse_target(f"opc.tcp://127.0.0.1:{server.port}/x"), tmp_path / "d.yaml"))
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    with _GarbageServer() as server:
        worker = threading.Thread(target=probe, daemon=True)
        worker.start()
        worker.join(P.PROBE_BUDGET_S + 15)
        assert not worker.is_alive(), "the probe hung on a server answering garbage"
    assert len(outcome) == 1 and isinstance(outcome[0], P.OpcuaProbeError), outcome
    assert f"127.0.0.1:{server.port}" in str(outcome[0])
    assert not (tmp_path / "d.yaml").exists()


# --------------------------------------------------------------------------- Browse paging


class _PagingChannel:
    """A stand-in channel: Browse gives one reference and a continuation point; `pages`
    BrowseNext rounds give one more each, or, with `forever`, the same point and nothing."""

    def __init__(self, pages: int = 3, forever: bool = False):
        self.pages, self.forever = pages, forever
        self.requests: list = []

    @staticmethod
    def _ref(n: int):
        ref = ua.ReferenceDescription()
        ref.NodeId = ua.NodeId(n, 2)
        ref.BrowseName = ua.QualifiedName(f"v{n}", 2)
        ref.NodeClass = ua.NodeClass.Variable
        return ref

    async def request(self, request, timeout=None):
        self.requests.append(request)
        if isinstance(request, ua.BrowseRequest):
            result = ua.BrowseResult(References=[self._ref(0)], ContinuationPoint=b"cp0")
            return ua.BrowseResponse(Results=[result])
        if request.Parameters.ReleaseContinuationPoints:
            return _next([ua.BrowseResult() for _ in request.Parameters.ContinuationPoints])
        (point,) = request.Parameters.ContinuationPoints
        if self.forever:
            return _next([ua.BrowseResult(ContinuationPoint=point)])
        page = int(point[2:]) + 1
        more = b"cp%d" % page if page < self.pages else None
        return _next([ua.BrowseResult(References=[self._ref(page)], ContinuationPoint=more)])


def _next(results):
    return ua.BrowseNextResponse(Parameters=ua.BrowseNextResult(Results=results))


def _browse(channel):
    session = P._Session(channel, 1.0, P.Draft(url="opc.tcp://test"))
    (refs,) = asyncio.run(session.browse([P._description(ua.NodeId("Dev", 2), P.HAS_COMPONENT, P.NC_VARIABLE)]))
    return refs, session.draft


def test_continuation_points_are_followed_with_browse_next():
    channel = _PagingChannel(pages=3)
    refs, draft = _browse(channel)
    assert [r.NodeId.Identifier for r in refs] == [0, 1, 2, 3]
    assert sum(isinstance(r, ua.BrowseNextRequest) for r in channel.requests) == 3
    assert not draft.notes


def test_a_continuation_point_that_leads_nowhere_is_dropped():
    channel = _PagingChannel(forever=True)
    refs, _ = _browse(channel)
    assert [r.NodeId.Identifier for r in refs] == [0]
    assert len(channel.requests) <= 3


def test_browse_next_rounds_are_bounded():
    channel = _PagingChannel(pages=10 * P.MAX_BROWSE_NEXT)
    refs, draft = _browse(channel)
    assert len(refs) == P.MAX_BROWSE_NEXT + 1
    assert "may be incomplete" in " ".join(draft.notes["points"])
    last = channel.requests[-1]
    assert isinstance(last, ua.BrowseNextRequest) and last.Parameters.ReleaseContinuationPoints
