"""The OPC UA probe of the liveness monitor: read known nodes over a session, judge the answers.

`opcua_probe(url, checks)` returns a `harness.liveness.Probe`: each call reads the Value of
every `NodeCheck` in one Read request over one persistent session (the judge's client,
`harness.opcua`) and says

    (OK, "")                                             every value came and was right
    (WRONG, "nsu=...;s=Meter.V: got 231.0, expected 230.5")  an answer, but not the right one:
            a bad status code, a ServiceFault, an Error message (ERR) to the Hello or on the
            channel, a refused session, an undecodable reply, another value than expected
    (MISSING, "no answer within 1 s (Read)")             no answer: timeout, connection refused,
            connection closed or reset

The whole call (reconnecting included: TCP, Hello, OpenSecureChannel, CreateSession,
ActivateSession, and the NamespaceArray read that turns namespace URIs into indexes) is
bounded by the `timeout_s` the monitor passes.  The session is dropped after a timeout, a
close, an Error message or a reply that leaves it in doubt (a late answer never passes for a
later one), and opened again on the next call; after a wrong value or a bad status of one
node it is kept.  A session left idle for half its timeout is replaced before it could expire
on the server.  Never raises.

The client is asyncio; the probe runs it on an event loop in a daemon thread of its own, so
it can be called from any thread (the monitor's, a test's), also one with a running loop.
`close()` ends the session politely and stops the thread.

Node ids are written in OPC UA's string form: `ns=2;s=Meter.V`, `i=2258`, or with the
namespace URI, `nsu=urn:example:data;s=Meter.V` (resolved through the server's NamespaceArray
on every new session, so a server that numbers its namespaces differently still matches).

`checks_from_profile(profile)` picks read-only points of the profile with a known value, as
their OPC UA face shows it (raw value x scale); `replay_alive(...)` is the liveness check of
`harness replay` for an OPC UA replay block.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .liveness import MISSING, OK, WRONG, Probe, answers_within, take_in_turn
from .liveness_modbus import READ_ONLY_TABLES  # points Modbus cannot write either
from .opcua import (
    BadReply,
    ChannelClosed,
    ChannelRefused,
    NoResponse,
    UaChannel,
    UaTransportError,
    Unreachable,
    close_session,
    summarize,
    ua,
)
from .opcua.login import SessionRefused, SessionSecurity, open_session
from .opcua.summary import status_text
from .profile import engineering_value

SESSION_TIMEOUT_MS = 30_000  # asked for; a session idle for half of what the server grants is replaced
CLOSE_TIMEOUT_S = 0.5  # CloseSession + CloseSecureChannel on close(), at most
_GRACE_S = 0.25  # the calling thread waits this much longer than the probe's own deadline
_SHOWN = 60  # characters of a device-sent value quoted in a WRONG detail


@dataclass(frozen=True)
class NodeCheck:
    """Read the Value of `node_id`; when `expected` is given it must equal it (numbers to a
    relative 1e-6, so a Float shows a float32 value; lists element by element)."""

    node_id: str
    expected: Any | None = None

    def __post_init__(self) -> None:
        text = str(self.node_id)
        _, rest = _split_namespace_uri(text)
        try:
            ua.NodeId.from_string(rest)
        except Exception:  # noqa: BLE001 - asyncua raises several types for a bad string
            raise ValueError(f"NodeCheck node_id {self.node_id!r} is not a node id; write it like 'ns=2;s=Meter.V', "
                             f"'i=2258' or 'nsu=urn:example:data;s=Meter.V'") from None
        object.__setattr__(self, "node_id", text)


def _split_namespace_uri(text: str) -> tuple[str | None, str]:
    """("urn:x", "s=A") for "nsu=urn:x;s=A"; (None, text) for any other form."""
    if text.startswith("nsu="):
        uri, sep, rest = text[4:].partition(";")
        if sep and uri:
            return uri, rest
    return None, text


def same_value(expected: Any, observed: Any) -> bool:
    """Does `observed` (what the server read) equal `expected` (pure)?"""
    if isinstance(expected, (list, tuple)):
        return (isinstance(observed, (list, tuple)) and len(observed) == len(expected)
                and all(same_value(e, o) for e, o in zip(expected, observed)))
    if isinstance(expected, bool) or isinstance(observed, bool):
        return isinstance(expected, bool) and isinstance(observed, bool) and expected == observed
    if isinstance(expected, (int, float)):
        if not isinstance(observed, (int, float)):
            return False
        if isinstance(expected, int) and isinstance(observed, int):
            return expected == observed
        return math.isclose(expected, observed, rel_tol=1e-6, abs_tol=1e-9)
    return expected == observed


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def judge_read(checks: Sequence[NodeCheck], reply: Any) -> tuple[str | None, bool]:
    """(what is wrong with `reply` to a Read of `checks`, or None; whether the session is in
    doubt afterwards).  Pure."""
    if not isinstance(reply, ua.ReadResponse):
        return f"Read answered with {summarize(reply)}", True
    service = reply.ResponseHeader.ServiceResult
    if not service.is_good():
        return f"Read answered with ServiceResult {status_text(service)}", True
    results = list(reply.Results or [])
    if len(results) != len(checks):
        return f"Read of {len(checks)} nodes answered with {len(results)} results", True
    for check, result in zip(checks, results):
        code = result.StatusCode
        if code is not None and not code.is_good():
            return f"{check.node_id}: {status_text(code)}", False
        if check.expected is None:
            continue
        observed = result.Value.Value if result.Value is not None else None
        if not same_value(check.expected, observed):
            return f"{check.node_id}: got {_shown(observed)}, expected {_shown(check.expected)}", False
    return None, False


class OpcuaProbe:
    """A `Probe` over one persistent OPC UA session; see the module docstring."""

    def __init__(self, url: str, checks: Sequence[NodeCheck], *, security: SessionSecurity | None = None,
                 session_timeout_ms: int = SESSION_TIMEOUT_MS):
        if not checks:
            raise ValueError("opcua_probe needs at least one NodeCheck to read")
        parts = urlsplit(url)
        if parts.scheme != "opc.tcp" or not parts.hostname:
            raise ValueError(f"opcua_probe needs an opc.tcp://HOST:PORT[/PATH] URL, got {url!r}")
        self.url = f"opc.tcp://{parts.netloc}{parts.path}"  # the query (?policy=...) is the target's, not the endpoint's
        self.host = parts.hostname
        self.port = parts.port or 4840
        self.checks = tuple(checks)
        self.security = security or SessionSecurity()
        if self.security.policy != "None" and (self.security.certificate is None or self.security.private_key is None):
            raise ValueError(f"SecurityPolicy {self.security.policy} needs a client certificate and private key "
                             "(SessionSecurity certificate=..., private_key=...)")
        self.session_timeout_ms = session_timeout_ms
        self._lock = threading.Lock()  # one call at a time, whichever thread makes it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        # owned by the loop thread:
        self._channel: UaChannel | None = None
        self._node_ids: list[Any] = []
        self._idle_limit_s = session_timeout_ms / 2000
        self._last_used = 0.0  # loop time of the last reply on the session
        self._stage = "connect"
        self._background: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ the Probe call

    def __call__(self, timeout_s: float) -> tuple[str, str]:
        with self._lock:
            if self._closed:
                return MISSING, "the probe was closed"
            future = None
            try:
                future = asyncio.run_coroutine_threadsafe(self._probe(timeout_s), self._running_loop())
                return future.result(timeout_s + _GRACE_S)
            except concurrent.futures.TimeoutError:
                # the loop thread did not even get to end the call in time (a busy machine)
                future.cancel()
                self._submit(self._drop_async())
                return MISSING, f"no answer within {timeout_s:g} s ({self._stage})"
            except Exception as exc:  # our own bug; record it rather than kill the monitor
                if future is not None:
                    future.cancel()
                self._submit(self._drop_async())
                return MISSING, f"the probe failed: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        """End the session (CloseSession, CloseSecureChannel; bounded) and stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
            if loop is None:
                return
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(2 * CLOSE_TIMEOUT_S + _GRACE_S)
            except Exception:  # noqa: BLE001 - closing is best effort; the thread is a daemon
                pass
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:  # closed meanwhile
                pass
            if thread is not None:
                thread.join(2 * CLOSE_TIMEOUT_S)

    # ------------------------------------------------------------------ the loop thread

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            started = threading.Event()

            def main() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(started.set)
                try:
                    loop.run_forever()
                finally:
                    for task in asyncio.all_tasks(loop):
                        task.cancel()
                    loop.close()

            self._thread = threading.Thread(target=main, name="liveness-opcua", daemon=True)
            self._thread.start()
            started.wait(5.0)
            self._loop = loop
        return self._loop

    def _submit(self, coro) -> None:
        """Run `coro` on the loop without waiting for it (cleanup after a failed call)."""
        if self._loop is None or self._loop.is_closed():
            coro.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:
            coro.close()

    # ------------------------------------------------------------------ on the loop

    async def _probe(self, timeout_s: float) -> tuple[str, str]:
        try:
            async with asyncio.timeout(timeout_s):
                return await self._read(timeout_s)
        except TimeoutError:
            self._drop()
            return MISSING, f"no answer within {timeout_s:g} s ({self._stage})"
        except SessionRefused as exc:
            self._drop()
            return WRONG, str(exc)
        except ChannelRefused as exc:
            self._drop()
            return WRONG, f"{self._stage}: {exc}"
        except ChannelClosed as exc:
            self._drop()
            if exc.error is not None:
                return WRONG, f"{self._stage}: the server sent Error {exc.error.name} {exc.error.reason!r} and closed"
            return MISSING, f"connection closed by the server ({self._stage}): {exc}"
        except BadReply as exc:
            self._drop()
            return WRONG, f"{self._stage}: undecodable reply: {exc}"
        except (Unreachable, NoResponse, UaTransportError, OSError) as exc:
            self._drop()
            return MISSING, f"{exc} ({self._stage})"
        except Exception as exc:  # noqa: BLE001 - our own bug: recorded, never raised into the monitor
            self._drop()
            return MISSING, f"the probe failed ({self._stage}): {type(exc).__name__}: {exc}"

    async def _read(self, timeout_s: float) -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        channel = self._channel
        if channel is not None and (not channel.is_open or channel.closed_by_peer):
            self._drop()
        elif channel is not None and loop.time() - self._last_used > self._idle_limit_s:
            self._retire(channel)  # idle: it may have expired on the server meanwhile
        if self._channel is None:
            await self._connect(timeout_s)
        self._stage = "Read"
        request = ua.ReadRequest()
        request.Parameters.TimestampsToReturn = ua.TimestampsToReturn.Neither
        for node in self._node_ids:
            item = ua.ReadValueId()
            item.NodeId = node
            item.AttributeId = ua.AttributeIds.Value
            request.Parameters.NodesToRead.append(item)
        channel = self._channel
        reply = await channel.request(request, timeout=timeout_s)
        channel.frames.clear()  # the probe keeps no evidence: a long watch must not grow
        self._last_used = loop.time()
        problem, in_doubt = judge_read(self.checks, reply)
        if problem is None:
            return OK, ""
        if in_doubt:
            self._drop()
        return WRONG, problem

    async def _connect(self, timeout_s: float) -> None:
        def stage(name: str) -> None:
            self._stage = name

        opened = await open_session(self.host, self.port, self.url, self.security, timeout_s,
                                    session_name="harness-liveness", session_timeout_ms=self.session_timeout_ms,
                                    on_stage=stage, on_channel=self._adopt)
        channel = opened.channel
        revised_ms = opened.revised_timeout_ms or self.session_timeout_ms
        self._idle_limit_s = max(0.5, min(revised_ms, self.session_timeout_ms) / 2000)
        self._stage = "Read NamespaceArray"
        self._node_ids = await resolve_node_ids(channel, [c.node_id for c in self.checks], timeout_s)
        channel.frames.clear()
        self._last_used = asyncio.get_running_loop().time()

    def _adopt(self, channel: UaChannel) -> None:
        """The channel is open: from now on a failure must cut it (_drop)."""
        self._channel = channel

    def _drop(self) -> None:
        """Forget the session and cut its connection (no CloseSession: the stream is in doubt)."""
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.abort()

    async def _drop_async(self) -> None:
        self._drop()

    def _retire(self, channel: UaChannel) -> None:
        """Replace an idle session: close it in the background, open a new one now."""
        self._channel = None
        task = asyncio.get_running_loop().create_task(self._close_politely(channel))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _close_politely(self, channel: UaChannel) -> None:
        try:
            await asyncio.wait_for(close_session(channel, timeout=CLOSE_TIMEOUT_S), CLOSE_TIMEOUT_S)
        except (UaTransportError, asyncio.TimeoutError, OSError):
            pass
        except Exception:  # noqa: BLE001 - best effort
            pass
        await channel.close(CLOSE_TIMEOUT_S)

    async def _shutdown(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and channel.is_open:
            await self._close_politely(channel)
        for task in list(self._background):
            task.cancel()


def _good(reply: Any, cls: type) -> bool:
    return isinstance(reply, cls) and reply.ResponseHeader.ServiceResult.is_good()


# --------------------------------------------------------------------------- node ids


async def resolve_node_ids(channel: UaChannel, node_ids: Sequence[str], timeout_s: float) -> list[Any]:
    """`node_ids` (strings, see NodeCheck) as ua.NodeIds of this server: namespace URIs turned
    into its indexes through its NamespaceArray (read only when a URI is used)."""
    split = [_split_namespace_uri(text) for text in node_ids]
    indexes: dict[str, int] = {}
    if any(uri for uri, _ in split):
        request = ua.ReadRequest()
        item = ua.ReadValueId()
        item.NodeId = ua.NodeId(ua.ObjectIds.Server_NamespaceArray)
        item.AttributeId = ua.AttributeIds.Value
        request.Parameters.NodesToRead.append(item)
        reply = await channel.request(request, timeout=timeout_s)
        if (not _good(reply, ua.ReadResponse) or not reply.Results or not reply.Results[0].StatusCode.is_good()
                or not isinstance(reply.Results[0].Value.Value, list)):
            raise SessionRefused("Read NamespaceArray", "a ReadResponse with the NamespaceArray", reply,
                                 headline="reading the NamespaceArray did not succeed")
        indexes = {uri: i for i, uri in enumerate(reply.Results[0].Value.Value)}
    nodes = []
    for uri, rest in split:
        if uri is None:
            nodes.append(ua.NodeId.from_string(rest))
            continue
        if uri not in indexes:
            raise SessionRefused("Read NamespaceArray", f"namespace {uri} in the NamespaceArray", reply,
                                 observed=f"namespace {uri} is not in the server's NamespaceArray")
        nodes.append(ua.NodeId.from_string(f"ns={indexes[uri]};{rest}"))
    return nodes


def opcua_probe(url: str, checks: Sequence[NodeCheck], *, security: SessionSecurity | None = None) -> Probe:
    """A liveness probe reading `checks` from the OPC UA server at `url` (opc.tcp://HOST:PORT/PATH)."""
    return OpcuaProbe(url, checks, security=security)


def checks_from_profile(profile, limit: int = 3, *, with_values: bool = True) -> list[NodeCheck]:
    """Up to `limit` read-only points with known values, as NodeChecks in the device namespace.

    Points that are not writable and whose value the profile gives: in turn from the input
    registers and the discrete inputs (data Modbus cannot write either), so that numbers and
    booleans are both watched, then any other read-only point.  String points are left out
    (how a stack pads a fixed-length string is not the device's health).  The expected value
    is what the OPC UA face shows: raw x scale.  `with_values=False` checks only that the reads succeed: for a
    real device whose measurements move.
    """
    section = getattr(profile, "opcua", None)
    if section is None or not section.namespace:
        return []
    groups: dict[str, list[NodeCheck]] = {}
    for point in profile.points:
        if point.writable or point.value is None or point.type == "string" or not point.node_id:
            continue
        table = getattr(point.table, "value", point.table) or "opcua"
        group = table if table in READ_ONLY_TABLES else "other"
        expected = _engineering(point) if with_values else None
        groups.setdefault(group, []).append(NodeCheck(f"nsu={section.namespace};{point.node_id}", expected))
    picked = take_in_turn([groups.get(g, []) for g in READ_ONLY_TABLES], limit)
    picked += groups.get("other", [])[: limit - len(picked)]
    return picked


def _engineering(point) -> Any:
    """The value the OPC UA face shows: raw x scale (12 significant digits, as the profile does)."""
    value = engineering_value(point, point.value)
    if point.type == "bool":
        return [bool(v) for v in value] if point.array else bool(value)
    return value


# --------------------------------------------------------------------------- harness replay


def checks_to_block(checks: Sequence[NodeCheck]) -> list[dict]:
    """The checks as a replay block stores them (JSON)."""
    return [{"node_id": c.node_id, "expected": c.expected} for c in checks]


def replay_alive(url: str, block: dict, timeout_s: float, within_s: float) -> bool | None:
    """Does the server at `url` answer the replay block's checks within `within_s` (each Read
    bounded by `timeout_s` too)?  None when the block has no checks.  For `harness replay`
    (protocol "opcua"); it connects over SecurityPolicy None, anonymously."""
    checks = [NodeCheck(c["node_id"], c.get("expected")) for c in block.get("checks") or []]
    if not checks:
        return None
    probe = OpcuaProbe(url, checks)
    answer_s = min(timeout_s, within_s) if within_s > 0 else timeout_s  # an answer later than within_s is too late
    try:
        return answers_within(probe, max(within_s, answer_s), answer_s, pause_s=0.05)
    finally:
        probe.close()


__all__ = [
    "NodeCheck",
    "OpcuaProbe",
    "checks_from_profile",
    "checks_to_block",
    "judge_read",
    "opcua_probe",
    "replay_alive",
    "resolve_node_ids",
    "same_value",
]
