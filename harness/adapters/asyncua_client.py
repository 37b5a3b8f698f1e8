"""The asyncua OPC UA client stack (FreeOpcUa opcua-asyncio), as a synchronous `OpcuaClient`.

`AsyncuaClient` implements `harness.adapters.opcua.OpcuaClient`.  Each instance runs its own
asyncio event loop in a daemon thread (started by `connect()`, ended by `close()`); every
operation is one coroutine submitted to it and waited for with a deadline: the library's own
request timeout (`asyncua.Client(timeout=...)`) answers first, `asyncio.wait_for` a little later,
the waiting thread last, so nothing can hang.  asyncua's `sync` wrapper is not used because its
calls wait without a timeout.

Mapping of what asyncua raises:

    UaStatusCodeError (one class per status, e.g. BadNodeIdUnknown)  -> StatusError(name, code)
    TimeoutError (a request unanswered within the timeout)            -> Timeout
    ConnectionError / OSError (the peer closed, reset, refused)       -> ConnectionLost
    anything while connecting (refused, unreachable, no answer)       -> ConnectFailed
    other UaError (a reply asyncua could not take)                    -> BadResponse

What the adapter does on purpose, and why:

* Values are always sent as ``ua.Variant(value, VariantType[type_name])``: asyncua guesses the
  type of a bare Python value and would send an int as Int64, a float as Double.
* Read, Write and Call check the status of the single result (asyncua's Node methods do the
  same); Browse does too, which asyncua's `Node.get_references` does NOT: it returns an empty
  list for a node that does not exist (BrowseResult BadNodeIdUnknown is dropped).  The adapter
  browses through `uaclient.browse`/`browse_next` to see that status.
* For a secured channel the client's applicationUri is taken from the certificate's
  subjectAltName URI (asyncua's default, urn:example.org:FreeOpcUa:opcua-asyncio, would not
  match it; Part 4 v1.04 §5.6.2 lets a server refuse the session then).  `set_security` first
  asks the server for its endpoints over an unsecured channel, to learn its certificate.
* The session timeout asked for is 60 s (asyncua's default is one hour).
* asyncua 2.x keeps a supervisor task that reads the server's ServerStatus/State every
  `watchdog_intervall` (default 1 s) while connected, so the wire shows reads the harness did
  not ask for, and declares the connection lost when one is not answered within
  min(session timeout / 2, watchdog_intervall): by default a server slower than 1 s is dropped
  even though the request timeout is longer.  The adapter sets watchdog_intervall to its timeout.
* An ERR message answering OpenSecureChannel keeps its status (an untrusted certificate is
  StatusError BadSecurityChecksFailed); node-opcua drops it.
* Read asks for TimestampsToReturn Source (asyncua's ReadParameters default): the DataValue
  has no ServerTimestamp.  DateTime values have microsecond precision.

Each subscription is one asyncua `Subscription` (publishing interval = `interval_ms`) with one
monitored item on the Value (sampling interval `interval_ms`, queue size 10); the data changes
are queued in a thread-safe queue that `next_change` reads; when asyncua's supervisor reports
the connection lost (`connection_lost_callback`), `next_change` raises `ConnectionLost` once
the changes received before are taken.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import threading
import time
import uuid

from .errors import AdapterError, BadResponse, ConnectFailed, ConnectionLost, NotInstalled, StatusError, Timeout
from .opcua import NAMESPACE_ARRAY, Reference, Value, check_security, check_type_name, check_value, normalize_node_id

MARGIN_S = 0.5  # asyncio.wait_for after the library's own timeout; the waiting thread after both
CLOSE_TIMEOUT_S = 2.0
SESSION_TIMEOUT_MS = 60_000
MONITORED_QUEUE_SIZE = 10
HIERARCHICAL_REFERENCES = 33  # ReferenceTypeId of HierarchicalReferences (Part 5 v1.04 §11.2)
_POLICY_CLASSES = {
    "Basic128Rsa15": "SecurityPolicyBasic128Rsa15",
    "Basic256": "SecurityPolicyBasic256",
    "Basic256Sha256": "SecurityPolicyBasic256Sha256",
    "Aes128_Sha256_RsaOaep": "SecurityPolicyAes128Sha256RsaOaep",
    "Aes256_Sha256_RsaPss": "SecurityPolicyAes256Sha256RsaPss",
}
_SAN_OID = "2.5.29.17"


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="asyncua-client-loop", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self.loop.run_until_complete(asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S))
        finally:
            self.loop.close()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:  # closed meanwhile
            pass
        self.thread.join(CLOSE_TIMEOUT_S * 2)


_LOST = object()  # queued behind the last data change when the connection is lost


class _Changes:
    """The asyncua subscription handler of one subscription: every data change into a queue."""

    def __init__(self, plain) -> None:
        self.queue: queue.Queue = queue.Queue()
        self._plain = plain

    def datachange_notification(self, node, val, data) -> None:
        self.queue.put(self._plain(val))

    def status_change_notification(self, status) -> None:
        pass

    def event_notification(self, event) -> None:
        pass


class AsyncuaClient:
    """asyncua's `Client`, driven from a loop thread of its own."""

    name = "asyncua"

    def __init__(self) -> None:
        try:
            import asyncua
            from asyncua import ua
        except ImportError as exc:
            raise NotInstalled(f"asyncua is not installed ({exc}); pip install asyncua (pinned in constraints.txt)") from None
        self._asyncua = asyncua
        self._ua = ua
        try:
            from importlib.metadata import version

            self.version = version("asyncua")
        except Exception:  # noqa: BLE001 - a source checkout without metadata
            self.version = getattr(asyncua, "__version__", "unknown")
        self._lt: _LoopThread | None = None
        self._client = None
        self._timeout = 5.0
        self._url = ""
        self._subs: dict[int, tuple[object, _Changes]] = {}
        self._next_handle = 0
        self._lost = ""  # why the connection was lost (asyncua's connection_lost_callback)

    # ------------------------------------------------------------------ plumbing
    def _submit(self, coro, op: str, timeout: float, connecting: bool = False):
        lt = self._lt
        if lt is None or (self._client is None and not connecting):
            coro.close()
            raise ConnectionLost(f"asyncua: not connected (call connect() first), {op} not sent")
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout + MARGIN_S), lt.loop)
        try:
            return future.result(timeout + 2 * MARGIN_S)
        except BaseException as exc:  # noqa: BLE001 - mapped, nothing escapes unmapped
            future.cancel()
            raise self._map(exc, op, timeout, connecting) from None

    def _run(self, op: str, coro):
        return self._submit(coro, op, self._timeout)

    def _map(self, exc: BaseException, op: str, timeout: float, connecting: bool) -> BaseException:
        ua = self._ua
        detail = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, AdapterError | ValueError | KeyboardInterrupt):
            return exc
        if isinstance(exc, ua.UaStatusCodeErrors):
            codes = [c for c in exc.codes if c & 0x80000000] or list(exc.codes) or [0x80010000]
            return self._status(codes[0], op, detail)
        if isinstance(exc, ua.UaStatusCodeError):
            return self._status(exc.code, op, detail)
        where = f" to {self._url}" if connecting else ""
        if isinstance(exc, TimeoutError | asyncio.CancelledError):
            if connecting:
                return ConnectFailed(f"asyncua: no connection{where} within {timeout:g} s", detail)
            return Timeout(f"asyncua: no answer to {op} within {timeout:g} s", detail)
        if isinstance(exc, ConnectionError | OSError | EOFError | asyncio.IncompleteReadError):
            if connecting:
                return ConnectFailed(f"asyncua could not connect{where}: {exc}", detail)
            return ConnectionLost(f"asyncua: the connection was lost during {op}: {exc}", detail)
        if isinstance(exc, ua.UaStringParsingError):
            return ValueError(f"asyncua cannot parse that node id: {exc}")
        if connecting:
            return ConnectFailed(f"asyncua could not connect{where}: {detail}", detail)
        if isinstance(exc, ua.UaError):
            return BadResponse(f"asyncua: {op} failed: {exc}", detail)
        return AdapterError(f"asyncua: {op} failed: {detail}", detail)

    def _status(self, code: int, op: str, detail: str = "") -> StatusError:
        name = self._ua.StatusCode(code & 0xFFFF0000).name
        if name in ("Bad", "Uncertain", "Good"):  # not in asyncua's table
            name = f"{name}_0x{code:08X}"
        return StatusError(name, code, op, detail)

    def _check(self, status, op: str) -> None:
        if status is not None and status.is_bad():
            raise self._status(status.value, op, f"{op}: {status}")

    def _node_id(self, text: str):
        try:
            return self._ua.NodeId.from_string(text)
        except Exception as exc:  # noqa: BLE001 - UaStringParsingError, ValueError, ...
            raise ValueError(f"not an OPC UA node id: {text!r} ({exc})") from None

    def _plain(self, value):
        """asyncua's value objects as the plain values of harness.adapters.opcua."""
        ua = self._ua
        if isinstance(value, list):
            return [self._plain(v) for v in value]
        if isinstance(value, ua.LocalizedText):
            return value.Text
        if isinstance(value, ua.QualifiedName):
            return f"{value.NamespaceIndex}:{value.Name}" if value.NamespaceIndex else value.Name
        if isinstance(value, ua.NodeId):  # ExpandedNodeId too
            return normalize_node_id(value.to_string())
        if isinstance(value, ua.StatusCode):
            return value.name
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value

    def _variant(self, value, type_name: str):
        ua = self._ua
        check_type_name(type_name)
        vtype = ua.VariantType[type_name]

        def one(v):
            if type_name == "NodeId" and isinstance(v, str):
                return self._node_id(v)
            if type_name == "LocalizedText" and isinstance(v, str):
                return ua.LocalizedText(v)
            if type_name == "QualifiedName" and isinstance(v, str):
                ns, sep, name = v.partition(":")
                return ua.QualifiedName(name, int(ns)) if sep and ns.isdigit() else ua.QualifiedName(v, 0)
            if type_name == "StatusCode" and isinstance(v, str):
                return ua.StatusCode(getattr(ua.StatusCodes, v))
            if type_name == "Guid" and isinstance(v, str):
                return uuid.UUID(v)
            if type_name == "DateTime" and isinstance(v, dt.datetime) and v.tzinfo is not None:
                return v.astimezone(dt.timezone.utc).replace(tzinfo=None)
            return v

        if isinstance(value, list | tuple):
            return ua.Variant([one(v) for v in value], vtype, is_array=True)
        return ua.Variant(one(value), vtype)

    def _application_uri(self, certificate) -> str | None:
        """The first URI of the certificate's subjectAltName (the OPC UA applicationUri)."""
        for ext in certificate.extensions:
            if ext.oid.dotted_string == _SAN_OID:
                for general_name in ext.value:
                    if type(general_name).__name__ == "UniformResourceIdentifier":
                        return general_name.value
        return None

    @property
    def raw(self):
        """The underlying `asyncua.Client` (None when not connected), for evidence and benchmarks."""
        return self._client

    # ------------------------------------------------------------------ connection
    def connect(self, url: str, *, policy: str = "None", mode: str = "None", user: str | None = None,
                password: str | None = None, certificate=None, private_key=None, timeout: float = 5.0) -> None:
        policy, mode = check_security(policy, mode, certificate, private_key)
        self.close()
        self._timeout = float(timeout)
        self._url = url
        self._lt = _LoopThread()
        try:
            self._submit(self._connect(url, policy, mode, user, password, certificate, private_key, self._timeout),
                         "connect", self._timeout, connecting=True)
        except BaseException:
            self.close()
            raise

    async def _connect(self, url, policy, mode, user, password, certificate, private_key, timeout) -> None:
        ua = self._ua
        from asyncua import Client
        from asyncua.crypto import security_policies, uacrypto

        client = Client(url, timeout=timeout, watchdog_intervall=max(1.0, timeout))
        client.session_timeout = SESSION_TIMEOUT_MS
        client.connection_lost_callback = self._connection_lost
        self._lost = ""
        if user is not None:
            client.set_user(user)
            client.set_password(password or "")
        try:
            if policy != "None":
                cert = await uacrypto.load_certificate(str(certificate))
                uri = self._application_uri(cert)
                if uri:
                    client.application_uri = uri
                await client.set_security(getattr(security_policies, _POLICY_CLASSES[policy]), str(certificate),
                                          str(private_key), mode=getattr(ua.MessageSecurityMode, mode))
            await client.connect()
        except BaseException:
            client.disconnect_socket()
            raise
        self._client = client

    async def _connection_lost(self, exc: Exception) -> None:
        """asyncua's supervisor saw the connection go: waiting next_change calls learn it at once."""
        self._lost = f"{type(exc).__name__}: {exc}"
        for _, handler in self._subs.values():
            handler.queue.put(_LOST)

    def close(self) -> None:
        """Close the session and the channel (bounded), then end the loop thread."""
        client, self._client = self._client, None
        lt, self._lt = self._lt, None
        self._subs.clear()
        if lt is None:
            return
        if client is not None:
            future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(client.disconnect(), CLOSE_TIMEOUT_S), lt.loop)
            try:
                future.result(CLOSE_TIMEOUT_S + MARGIN_S)
            except BaseException:  # noqa: BLE001 - the peer may be gone; the socket is dropped below
                future.cancel()
                try:
                    lt.loop.call_soon_threadsafe(client.disconnect_socket)
                except RuntimeError:
                    pass
        lt.stop()

    def disconnect(self) -> None:
        """End the session and the channel; the loop thread goes too (a new one costs nothing)."""
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        lt = getattr(self, "_lt", None)
        if lt is not None:
            try:
                lt.loop.call_soon_threadsafe(lt.loop.stop)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    # ------------------------------------------------------------------ services (coroutines)
    async def _browse(self, node_id: str) -> list[Reference]:
        ua = self._ua
        desc = ua.BrowseDescription()
        desc.NodeId = self._node_id(node_id)
        desc.BrowseDirection = ua.BrowseDirection.Forward
        desc.ReferenceTypeId = ua.NodeId(HIERARCHICAL_REFERENCES)
        desc.IncludeSubtypes = True
        desc.NodeClassMask = 0
        desc.ResultMask = ua.BrowseResultMask.All
        params = ua.BrowseParameters()
        params.NodesToBrowse = [desc]
        params.RequestedMaxReferencesPerNode = 0
        session = self._client.uaclient
        result = (await session.browse(params))[0]
        self._check(result.StatusCode, "Browse")
        refs = list(result.References or [])
        rounds = 0
        while result.ContinuationPoint and rounds < 1000:
            rounds += 1
            nxt = ua.BrowseNextParameters()
            nxt.ContinuationPoints = [result.ContinuationPoint]
            nxt.ReleaseContinuationPoints = False
            result = (await session.browse_next(nxt))[0]
            self._check(result.StatusCode, "BrowseNext")
            refs.extend(result.References or [])
        return [Reference(r.BrowseName.Name, normalize_node_id(r.NodeId.to_string()), r.NodeClass.name) for r in refs]

    async def _read(self, node_id: str) -> Value:
        node = self._client.get_node(self._node_id(node_id))
        dv = await node.read_data_value(raise_on_bad_status=False)
        self._check(dv.StatusCode, "Read")
        variant = dv.Value
        if variant is None:
            return Value(None, "Null")
        return Value(self._plain(variant.Value), variant.VariantType.name)

    async def _write(self, node_id: str, value, type_name: str) -> None:
        node = self._client.get_node(self._node_id(node_id))
        await node.write_attribute(self._ua.AttributeIds.Value, self._ua.DataValue(self._variant(value, type_name)))

    async def _call(self, object_id: str, method_id: str, args) -> list:
        from asyncua.common.methods import call_method_full

        variants = [self._variant(v, t) for v, t in args]
        obj = self._client.get_node(self._node_id(object_id))
        result = await call_method_full(obj, self._node_id(method_id), *variants)
        return [self._plain(v) for v in result.OutputArguments]

    async def _subscribe(self, node_id: str, interval_ms: float) -> int:
        handler = _Changes(self._plain)
        sub = await self._client.create_subscription(float(interval_ms), handler)
        try:
            await sub.subscribe_data_change(self._client.get_node(self._node_id(node_id)), queuesize=MONITORED_QUEUE_SIZE,
                                            sampling_interval=float(interval_ms))
        except BaseException:
            try:
                await sub.delete()
            except Exception:  # noqa: BLE001 - the creation error is the one to report
                pass
            raise
        self._next_handle += 1
        self._subs[self._next_handle] = (sub, handler)
        return self._next_handle

    # ------------------------------------------------------------------ services (synchronous API)
    def browse(self, node_id: str) -> list[Reference]:
        return self._run("Browse", self._browse(node_id))

    def read(self, node_id: str) -> Value:
        return self._run("Read", self._read(node_id))

    def write(self, node_id: str, value, type_name: str) -> None:
        check_value(value, type_name)  # ValueError before anything is sent
        self._run("Write", self._write(node_id, value, type_name))

    def call(self, object_id: str, method_id: str, args: list[tuple[object, str]]) -> list:
        for v, t in args:
            check_value(v, t)
        return self._run("Call", self._call(object_id, method_id, list(args)))

    def subscribe(self, node_id: str, interval_ms: float) -> int:
        self._node_id(node_id)
        return self._run("CreateSubscription", self._subscribe(node_id, interval_ms))

    def next_change(self, handle: int, timeout: float) -> object:
        try:
            _, handler = self._subs[handle]
        except KeyError:
            raise KeyError(f"asyncua: no subscription with handle {handle}") from None
        try:
            value = handler.queue.get(timeout=max(float(timeout), 0.0))
        except queue.Empty:
            raise Timeout(f"asyncua: no data change on subscription {handle} within {timeout:g} s") from None
        if value is _LOST:
            handler.queue.put(_LOST)  # every later call says so too
            raise ConnectionLost(f"asyncua: the connection was lost ({self._lost})", self._lost)
        return value

    def unsubscribe(self, handle: int) -> None:
        entry = self._subs.pop(handle, None)
        if entry is None:
            raise KeyError(f"asyncua: no subscription with handle {handle}")
        self._run("DeleteSubscriptions", entry[0].delete())

    def namespace_index(self, uri: str) -> int:
        namespaces = self.read(NAMESPACE_ARRAY).value or []
        try:
            return list(namespaces).index(uri)
        except ValueError:
            raise AdapterError(f"the server's NamespaceArray has no {uri!r}", repr(namespaces)) from None

    # ------------------------------------------------------------------ measurement
    def time_direct(self, op: str, args: dict, n: int) -> dict:
        """Run an operation n times inside the loop (no thread hand-over per call): {n, elapsed_ms, per_call_us}."""
        factory = {"read": self._read, "browse": self._browse, "write": self._write}[op]

        async def loop():
            start = time.perf_counter()
            for _ in range(n):
                await factory(**args)
            return time.perf_counter() - start

        elapsed = self._submit(loop(), f"time {op}", n * (self._timeout + 0.1))
        return {"n": n, "elapsed_ms": elapsed * 1e3, "per_call_us": elapsed * 1e6 / n}
