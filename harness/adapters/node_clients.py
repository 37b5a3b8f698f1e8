"""The JavaScript Modbus TCP client stacks modbus-serial and jsmodbus, driven through a node bridge.

`ModbusSerialClient` and `JsmodbusClient` implement `harness.adapters.modbus.ModbusClient` as
thin wrappers over one `NodeBridge` (harness/adapters/node_bridge.py + node_bridge.js) each:
one node process per client instance, started by `connect()` and ended by `close()`; every
operation is one JSON round trip to it.  The bridge's error kinds become the harness errors:

    modbus -> ModbusException(code, function_code)     timeout -> Timeout
    connect -> ConnectFailed                            closed -> ConnectionLost
    bad_response -> BadResponse                         unsupported -> Unsupported
    other -> AdapterError (e.g. the library refused an argument before sending anything)

and a bridge that hangs or dies -> Timeout / ConnectionLost (it is killed).

What the stacks are (details and the code reading behind them in node_bridge.js):

* modbus-serial 8.0.25 (npm ``modbus-serial``): every function of the interface, FC43 included
  (it follows "more follows" itself).  Quirks: a response with an unknown transaction id is
  dropped, so a wrong transaction id ends in a timeout; the peer closing the connection does
  not fail the pending request, which runs into its timeout (then later requests fail at once
  with PortNotOpenError); FC43 object values pass through Buffer "ascii" decoding, which clears
  the high bit of every byte, so non-ASCII identification strings come back altered; the
  transaction id counts 1..255, 0 (mod 256); when a follow-up request of an FC43 stream
  ("more follows") fails, the library throws a TypeError asynchronously (the adapter raises
  AdapterError "uncaught exception inside modbus-serial" instead of the real error) and, for
  an exception answer, the connection is wedged: every later answer throws again.
* jsmodbus 5.0.0 (npm ``jsmodbus``): FC1-6, 15, 16 and 43 (one response per call: the bridge
  follows "more follows"); no Mask Write Register (FC22) or Read/Write Multiple Registers
  (FC23): `Unsupported`.  A wrong transaction id is "OutOfSync" (BadResponse); a closed
  connection fails the request at once ("Offline").  Answers from another unit id are ignored.

Missing node, node_modules or the package: `NotInstalled` naming scripts/install-node-packages.sh.
"""

from __future__ import annotations

from .errors import AdapterError, BadResponse, ConnectFailed, ConnectionLost, ModbusException, Timeout, Unsupported
from .node_bridge import BridgeReplyError, NodeBridge, node_binary, package_version

MARGIN_S = 2.0  # the library's own timeout answers first; the bridge's deadline is the backstop
FC43_ROUNDS = 8  # as FC43_MAX_REQUESTS in node_bridge.js

_KINDS: dict[str, type[AdapterError]] = {
    "timeout": Timeout,
    "connect": ConnectFailed,
    "closed": ConnectionLost,
    "bad_response": BadResponse,
    "unsupported": Unsupported,
}
_FC = {
    "read_coils": 1,
    "read_discrete_inputs": 2,
    "read_holding_registers": 3,
    "read_input_registers": 4,
    "write_coil": 5,
    "write_register": 6,
    "write_coils": 15,
    "write_registers": 16,
    "mask_write_register": 22,
    "read_write_registers": 23,
    "read_device_identification": 43,
}


class _NodeClient:
    """A `ModbusClient` whose stack runs in a node process (one per instance)."""

    name = ""  # the npm package, also the bridge's STACK argument

    def __init__(self) -> None:
        node_binary()  # NotInstalled now rather than at connect()
        self.version = package_version(self.name)
        self._bridge: NodeBridge | None = None
        self._timeout = 2.0

    # ------------------------------------------------------------------ plumbing
    def _call(self, op: str, args: dict, wait: float | None = None):
        bridge = self._bridge
        if bridge is None:
            raise ConnectionLost(f"{self.name}: not connected (call connect() first)")
        try:
            return bridge.call(op, args, wait if wait is not None else self._timeout + MARGIN_S)
        except BridgeReplyError as exc:
            if exc.kind == "modbus" and isinstance(exc.code, int):
                raise ModbusException(exc.code, _FC.get(op), exc.message) from None
            cls = _KINDS.get(exc.kind, AdapterError)
            raise cls(f"{self.name}: {exc.message}", exc.message) from None
        except (Timeout, ConnectionLost):
            self._bridge = None  # the bridge killed itself: the next connect() starts a new one
            raise

    @property
    def pid(self) -> int | None:
        """The node process's pid (None when no bridge is running)."""
        return self._bridge.pid if self._bridge else None

    # ------------------------------------------------------------------ connection
    def connect(self, host: str, port: int, unit: int = 1, timeout: float = 2.0) -> None:
        self._timeout = timeout
        if self._bridge is None or not self._bridge.running:
            if self._bridge is not None:
                self._bridge.close()
            self._bridge = NodeBridge(self.name).start()
            self.version = str(self._bridge.hello.get("version", self.version))
        timeout_ms = max(int(round(timeout * 1000)), 1)
        self._call("connect", {"host": host, "port": int(port), "unit": int(unit), "timeout_ms": timeout_ms}, timeout + MARGIN_S)

    def close(self) -> None:
        """Close the Modbus connection and end the node process."""
        bridge, self._bridge = self._bridge, None
        if bridge is None:
            return
        try:
            if bridge.running:
                bridge.call("close", {}, 2.0)
        except (AdapterError, BridgeReplyError):
            pass
        finally:
            bridge.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def time_direct(self, op: str, args: dict, n: int) -> dict:
        """Run `op` n times inside node (no bridge round trip): {n, elapsed_ms, per_call_us}."""
        return self._call("time", {"op": op, "args": args, "n": int(n)}, n * (self._timeout + 0.1) + MARGIN_S)

    # ------------------------------------------------------------------ reads
    def read_coils(self, address: int, count: int) -> list[bool]:
        return self._call("read_coils", {"address": address, "count": count})

    def read_discrete_inputs(self, address: int, count: int) -> list[bool]:
        return self._call("read_discrete_inputs", {"address": address, "count": count})

    def read_holding_registers(self, address: int, count: int) -> list[int]:
        return self._call("read_holding_registers", {"address": address, "count": count})

    def read_input_registers(self, address: int, count: int) -> list[int]:
        return self._call("read_input_registers", {"address": address, "count": count})

    # ------------------------------------------------------------------ writes
    def write_coil(self, address: int, value: bool) -> None:
        self._call("write_coil", {"address": address, "value": bool(value)})

    def write_register(self, address: int, value: int) -> None:
        self._call("write_register", {"address": address, "value": value})

    def write_coils(self, address: int, values: list[bool]) -> None:
        self._call("write_coils", {"address": address, "values": [bool(v) for v in values]})

    def write_registers(self, address: int, values: list[int]) -> None:
        self._call("write_registers", {"address": address, "values": list(values)})

    def mask_write_register(self, address: int, and_mask: int, or_mask: int) -> None:
        self._call("mask_write_register", {"address": address, "and_mask": and_mask, "or_mask": or_mask})

    def read_write_registers(self, read_address: int, read_count: int, write_address: int, values: list[int]) -> list[int]:
        args = {"read_address": read_address, "read_count": read_count, "write_address": write_address, "values": list(values)}
        return self._call("read_write_registers", args)

    def read_device_identification(self, read_code: int = 1, object_id: int = 0) -> dict[int, bytes]:
        result = self._call(
            "read_device_identification", {"read_code": read_code, "object_id": object_id}, FC43_ROUNDS * self._timeout + MARGIN_S
        )
        objects = (result or {}).get("objects") or {}
        return {int(k): bytes.fromhex(v) for k, v in sorted(objects.items(), key=lambda kv: int(kv[0]))}


class ModbusSerialClient(_NodeClient):
    """modbus-serial (npm) through the node bridge."""

    name = "modbus-serial"


class JsmodbusClient(_NodeClient):
    """jsmodbus (npm) through the node bridge."""

    name = "jsmodbus"
