"""node-opcua's OPC UA client (npm ``node-opcua``), driven through a long-lived node bridge.

`NodeOpcuaClient` implements `harness.adapters.opcua.OpcuaClient` as a thin wrapper over one
`NodeBridge` (harness/adapters/node_bridge.py) running harness/adapters/node_opcua_bridge.js:
one node process per client instance, started by the first `connect()` and ended by `close()`;
every operation is one JSON round trip to it (the script documents the protocol, the options
given to `OPCUAClient` and how values travel).  Loading node-opcua takes about a second, so
the process is kept across a failed `connect()`, and a later `connect()` reuses it.

The bridge's error kinds become the harness errors:

    status -> StatusError(name, code)     timeout -> Timeout (ConnectFailed during connect)
    connect -> ConnectFailed               closed -> ConnectionLost
    bad_request -> ValueError              unsupported -> Unsupported      other -> AdapterError

and a bridge that hangs or dies -> Timeout / ConnectionLost (it is killed).

node-opcua's certificate store is a temporary directory made here and removed by `close()`
(pki_dir of the connect request), so nothing is written to ~/.config and nothing is shared
between instances.

What node-opcua 2.182.2 (Node 20) does, as seen against the bundled simulator:

* Loading node-opcua-client takes about a second; on Node 20 node-opcua-secure-channel also
  starts, at load, a background 4096-bit RSA key generation (its CVE-2023-46809 PKCS#1 v1.5
  self-test, warning NODE-OPCUA-W27 on stderr): about a second of CPU per process.
* Without a certificate, OPCUAClient makes a self-signed one in its store ("Creating default
  certificate ... please wait"); by default that store is ~/.config/node-opcua-default-nodejs.
* A Variant takes any value: {dataType: Float, value: "abc"} is encoded as NaN
  (``0a 0000c07f``) and the server answers Good.  The adapter refuses such values first.
* read() asks for TimestampsToReturn Both (asyncua: Source); DateTime values are JS Dates
  (millisecond precision, picoseconds aside), ExtensionObjects come back as node-opcua's
  toJSON() dict (asyncua: its dataclass).
* Read, Write, Call and Browse results carry their bad status without throwing (the bridge
  checks it); a ServiceFault throws ``Error(" serviceResult = BadXxx (0x...)")`` with the fault
  on err.response (wrong password: BadUserAccessDenied to ActivateSession, as asyncua).
* A UACP ERR answering OpenSecureChannel (the simulator's BadSecurityChecksFailed for an
  untrusted certificate) is logged to stderr but its status is dropped (an ERR has no request
  id): connect fails with "socket has been disconnected by third party" -> ConnectFailed.
* On a lost connection it emits connection_lost and holds new requests for a reconnection;
  the bridge fails them at once (ConnectionLost) instead.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import shutil
import tempfile
import uuid
from pathlib import Path

from .errors import AdapterError, ConnectFailed, ConnectionLost, StatusError, Timeout, Unsupported
from .node_bridge import BridgeReplyError, NodeBridge, node_binary, package_version
from .opcua import NAMESPACE_ARRAY, Reference, Value, check_security, check_value, nonfinite_tag, normalize_node_id

SCRIPT = Path(__file__).with_name("node_opcua_bridge.js")
MARGIN_S = 2.0  # the library's own timeout and the bridge's watchdog answer first; this is the backstop
START_TIMEOUT_S = 30.0  # node-opcua loads in ~1 s, more on a busy machine
PREPARE_PKI_TIMEOUT_S = 120.0 + MARGIN_S  # the bridge's own watchdog (RSA key generation) answers first
_KINDS: dict[str, type[AdapterError]] = {
    "timeout": Timeout,
    "connect": ConnectFailed,
    "closed": ConnectionLost,
    "unsupported": Unsupported,
}


def _to_wire(value, type_name: str):
    """A Python value as the bridge's JSON (node_opcua_bridge.js documents the tags)."""
    if isinstance(value, list | tuple):
        return [_to_wire(v, type_name) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and type_name in ("Int64", "UInt64"):
        return {"$int": str(value)}
    if isinstance(value, float):
        tag = nonfinite_tag(value)
        return {"$float": tag} if tag else value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return {"$date": value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _from_wire(value):
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    if isinstance(value, dict) and len(value) == 1:
        (tag, inner), = value.items()
        if tag == "$int":
            return int(inner)
        if tag == "$float":
            return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "-0": -0.0}[inner]
        if tag == "$b64":
            return base64.b64decode(inner)
        if tag == "$date":
            return dt.datetime.fromisoformat(str(inner).replace("Z", "+00:00"))
        if tag == "$json":
            return inner
    return value


def _value(obj) -> Value:
    """A {value, type_name} of the bridge as a Value (a Float or Double comes back a float:
    JSON writes 50.0 as 50; a Guid a uuid.UUID, as asyncua gives it)."""
    type_name = str(obj.get("type_name", "Null"))
    value = _from_wire(obj.get("value"))
    if type_name == "Guid":
        value = [uuid.UUID(v) for v in value] if isinstance(value, list) else (uuid.UUID(value) if value else value)
    elif type_name in ("Float", "Double"):
        if isinstance(value, list):
            value = [float(v) if isinstance(v, int) else v for v in value]
        elif isinstance(value, int):
            value = float(value)
    return Value(value, type_name)


_SERVICES = {
    "browse": "Browse", "read": "Read", "write": "Write", "call": "Call", "subscribe": "CreateSubscription",
    "unsubscribe": "DeleteSubscriptions", "connect": "connect", "next_change": "next_change",
}


class NodeOpcuaClient:
    """node-opcua's OPCUAClient and ClientSession, in a node process of its own."""

    name = "node-opcua"

    def __init__(self) -> None:
        node_binary()  # NotInstalled now rather than at connect()
        self.version = package_version("node-opcua")
        self._bridge: NodeBridge | None = None
        self._pki: Path | None = None
        self._timeout = 5.0
        self._connected = False
        self._pki_ready = False  # the store holds node-opcua's own certificate (prepare_pki)

    # ------------------------------------------------------------------ plumbing
    def _call(self, op: str, args: dict, wait: float | None = None, connecting: bool = False):
        bridge = self._bridge
        if bridge is None or (not self._connected and not connecting):
            raise ConnectionLost(f"{self.name}: not connected (call connect() first), {op} not sent")
        try:
            return bridge.call(op, args, wait if wait is not None else self._timeout + MARGIN_S)
        except BridgeReplyError as exc:
            if exc.kind == "status" and isinstance(exc.code, int):
                # node-opcua names a code with info bits "BadXxx#Overflow": the status is the name part
                status = str(exc.error.get("status") or f"Bad_0x{exc.code:08X}").split("#")[0]
                raise StatusError(status, exc.code, _SERVICES.get(op, op), exc.message) from None
            if exc.kind == "bad_request":
                raise ValueError(f"{self.name}: {exc.message}") from None
            if connecting and exc.kind in ("timeout", "closed", "other"):
                raise ConnectFailed(f"{self.name}: {exc.message}", exc.message) from None
            if exc.kind == "closed":
                self._connected = False
            raise _KINDS.get(exc.kind, AdapterError)(f"{self.name}: {exc.message}", exc.message) from None
        except (Timeout, ConnectionLost) as exc:
            self._bridge = None  # the bridge killed itself: the next connect() starts a new one
            self._connected = False
            if connecting:
                raise ConnectFailed(f"{self.name}: {exc}", exc.detail) from None
            raise

    @property
    def pid(self) -> int | None:
        """The node process's pid (None when no bridge is running)."""
        return self._bridge.pid if self._bridge else None

    # ------------------------------------------------------------------ connection
    def connect(self, url: str, *, policy: str = "None", mode: str = "None", user: str | None = None,
                password: str | None = None, certificate=None, private_key=None, timeout: float = 5.0) -> None:
        policy, mode = check_security(policy, mode, certificate, private_key)
        self._timeout = float(timeout)
        if self._connected:
            self._disconnect()
        if self._bridge is None or not self._bridge.running:
            if self._bridge is not None:
                self._bridge.close()
            self._bridge = NodeBridge(self.name, start_timeout=START_TIMEOUT_S, script=SCRIPT).start()
            self.version = str(self._bridge.hello.get("version", self.version))
        if self._pki is None:
            self._pki = Path(tempfile.mkdtemp(prefix="harness-node-opcua-pki-"))
            self._pki_ready = False
        if certificate is None and not self._pki_ready:
            # node-opcua would make its own certificate inside the first connect, seconds of key
            # generation that the connect's timeout is not about: made first, bounded on its own
            self._call("prepare_pki", {"pki_dir": str(self._pki)}, PREPARE_PKI_TIMEOUT_S, connecting=True)
            self._pki_ready = True
        args = {
            "url": url,
            "policy": policy,
            "mode": mode,
            "user": user,
            "password": password,
            "certificate": str(Path(certificate).resolve()) if certificate else None,
            "private_key": str(Path(private_key).resolve()) if private_key else None,
            "pki_dir": str(self._pki),
            "timeout_ms": max(int(round(self._timeout * 1000)), 1),
        }
        # the bridge bounds connect at 3 x timeout (+1 s): channel, session, activation
        self._call("connect", args, 3 * self._timeout + 1.0 + MARGIN_S, connecting=True)
        self._connected = True

    def disconnect(self) -> None:
        """End the session and the channel; the node process stays for the next `connect()`."""
        self._disconnect()

    def _disconnect(self) -> None:
        self._connected = False
        bridge = self._bridge
        if bridge is not None and bridge.running:
            try:
                bridge.call("close", {}, 6.0 + MARGIN_S)
            except (AdapterError, BridgeReplyError):
                pass

    def close(self) -> None:
        """Close the session and the channel, end the node process, remove the certificate store."""
        bridge, self._bridge = self._bridge, None
        self._connected = False
        try:
            if bridge is not None:
                try:
                    if bridge.running:
                        bridge.call("close", {}, 6.0 + MARGIN_S)
                except (AdapterError, BridgeReplyError):
                    pass
                finally:
                    bridge.close()
        finally:
            pki, self._pki = self._pki, None
            if pki is not None:
                shutil.rmtree(pki, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ services
    def browse(self, node_id: str) -> list[Reference]:
        rows = self._call("browse", {"node_id": node_id}, 4 * self._timeout + MARGIN_S) or []
        return [Reference(r["browse_name"], normalize_node_id(r["node_id"]), r["node_class"]) for r in rows]

    def read(self, node_id: str) -> Value:
        return _value(self._call("read", {"node_id": node_id}))

    def write(self, node_id: str, value, type_name: str) -> None:
        check_value(value, type_name)
        self._call("write", {"node_id": node_id, "value": _to_wire(value, type_name), "type_name": type_name})

    def call(self, object_id: str, method_id: str, args: list[tuple[object, str]]) -> list:
        for v, t in args:
            check_value(v, t)
        wire = [[_to_wire(v, t), t] for v, t in args]
        result = self._call("call", {"object_id": object_id, "method_id": method_id, "args": wire})
        return [_value(v).value for v in result or []]

    def subscribe(self, node_id: str, interval_ms: float) -> int:
        return int(self._call("subscribe", {"node_id": node_id, "interval_ms": float(interval_ms)}, 2 * self._timeout + MARGIN_S))

    def next_change(self, handle: int, timeout: float) -> object:
        timeout = max(float(timeout), 0.0)
        try:
            value = self._call("next_change", {"handle": handle, "timeout_ms": int(round(timeout * 1000))}, timeout + MARGIN_S)
        except ValueError as exc:
            raise KeyError(f"{self.name}: no subscription with handle {handle}") from exc
        return _value(value).value

    def unsubscribe(self, handle: int) -> None:
        try:
            self._call("unsubscribe", {"handle": handle})
        except ValueError as exc:
            raise KeyError(f"{self.name}: no subscription with handle {handle}") from exc

    def namespace_index(self, uri: str) -> int:
        namespaces = self.read(NAMESPACE_ARRAY).value or []
        try:
            return list(namespaces).index(uri)
        except ValueError:
            raise AdapterError(f"the server's NamespaceArray has no {uri!r}", repr(namespaces)) from None

    # ------------------------------------------------------------------ measurement
    def time_direct(self, op: str, args: dict, n: int) -> dict:
        """Run `op` n times inside node (no bridge round trip): {n, elapsed_ms, per_call_us}."""
        return self._call("time", {"op": op, "args": args, "n": int(n)}, n * (self._timeout + 0.1) + MARGIN_S)
