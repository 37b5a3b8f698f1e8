"""The OPC UA client interface every OPC UA adapter implements (synchronous, one request at a time).

Node ids are strings in the standard notation (Part 6 v1.04 §5.3.1.10), e.g.
``ns=2;s=PowerMeter.voltage_l1`` or ``i=85``; the ids an adapter returns are normalised the same
way for every stack (no ``ns=0;`` prefix).  Values are plain Python values named by their OPC UA
built-in type (Part 6 v1.04 §5.1.2: ``Boolean``, ``Int16``, ``UInt16``, ``Int32``, ``UInt32``,
``Float``, ``Double``, ``String``, ...): a value going to the server always travels with its
type name, so no stack has to guess (asyncua would send a Python int as Int64).  Arrays are
lists; ByteString is bytes; DateTime an aware datetime in UTC; Guid a uuid.UUID; NodeId a
string; LocalizedText its text; QualifiedName ``"ns:name"`` (just ``name`` in namespace 0);
StatusCode its name.  A value that does not fit its type (an int out of range, a str for a
Float) is refused with `ValueError` before anything is sent.

A bad status from the server raises `StatusError` with the status name and code; everything
else one of the other `harness.adapters.errors` types (`ConnectFailed`, `Timeout`,
`ConnectionLost`, ...).  A malformed node id or an unknown type name is the caller's mistake:
`ValueError`.  Every call is bounded by the timeout given to `connect`.

    client = make_client("asyncua")          # harness.adapters.registry
    client.connect("opc.tcp://127.0.0.1:4840/pm100", policy="Basic256Sha256", mode="SignAndEncrypt",
                   user="operator", password="...", certificate=pair.cert_path, private_key=pair.key_path)
    try:
        ns = client.namespace_index("urn:example-automation:pm100:data")
        client.read(f"ns={ns};s=PowerMeter.voltage_l1")      # Value(value=230.5, type_name='Float')
    finally:
        client.close()
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# Part 6 v1.04 §5.1.2, Table 1: the built-in types by their id
BUILTIN_TYPES: dict[str, int] = {
    "Boolean": 1, "SByte": 2, "Byte": 3, "Int16": 4, "UInt16": 5, "Int32": 6, "UInt32": 7, "Int64": 8,
    "UInt64": 9, "Float": 10, "Double": 11, "String": 12, "DateTime": 13, "Guid": 14, "ByteString": 15,
    "XmlElement": 16, "NodeId": 17, "ExpandedNodeId": 18, "StatusCode": 19, "QualifiedName": 20,
    "LocalizedText": 21, "ExtensionObject": 22, "DataValue": 23, "Variant": 24, "DiagnosticInfo": 25,
}
# the types a value written or passed to a method may have (the others need structures of their own)
WRITABLE_TYPES = frozenset(
    ["Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Float", "Double",
     "String", "DateTime", "Guid", "ByteString", "XmlElement", "NodeId", "LocalizedText", "QualifiedName", "StatusCode"]
)
POLICIES = ("None", "Basic128Rsa15", "Basic256", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
MODES = ("None", "Sign", "SignAndEncrypt")
NAMESPACE_ARRAY = "i=2255"  # Server_NamespaceArray (Part 5 v1.04 §6.3.1)


@dataclass(frozen=True)
class Reference:
    """One forward hierarchical reference of a browsed node: the target's BrowseName (its name
    part; the namespace is in `node_id`), its node id and its NodeClass name (``Variable``, ...)."""

    browse_name: str
    node_id: str
    node_class: str


@dataclass(frozen=True)
class Value:
    """A variable's value and the built-in type of the Variant that carried it (``Null`` when empty)."""

    value: object
    type_name: str


class OpcuaClient(Protocol):
    name: str  # the stack, e.g. "asyncua"
    version: str  # its version, as installed

    def connect(self, url: str, *, policy: str = "None", mode: str = "None", user: str | None = None,
                password: str | None = None, certificate: str | None = None, private_key: str | None = None,
                timeout: float = 5.0) -> None:
        """Open a secure channel and an activated session (anonymous unless `user` is given).
        `certificate` (DER or PEM) and `private_key` (PEM) are the client's application instance
        certificate, required by every policy but None; the server's certificate is accepted as
        the endpoint offers it."""
        ...

    def close(self) -> None: ...

    def disconnect(self) -> None:
        """End the session and the channel (bounded) but keep what the stack needs to connect
        again (node-opcua's process), so that a later `connect()` is quick; `close()` ends all."""
        ...

    def browse(self, node_id: str) -> list[Reference]:
        """Forward HierarchicalReferences (subtypes included), continuation points followed."""
        ...

    def read(self, node_id: str) -> Value: ...

    def write(self, node_id: str, value: object, type_name: str) -> None: ...

    def call(self, object_id: str, method_id: str, args: list[tuple[object, str]]) -> list:
        """Call a method with (value, type name) input arguments; the output argument values."""
        ...

    def subscribe(self, node_id: str, interval_ms: float) -> int:
        """One subscription with one monitored item on the Value; a handle for the calls below."""
        ...

    def next_change(self, handle: int, timeout: float) -> object:
        """The next data change of that subscription (the first is the initial value), in
        arrival order; `Timeout` if none arrives within `timeout` seconds."""
        ...

    def unsubscribe(self, handle: int) -> None: ...

    def namespace_index(self, uri: str) -> int:
        """The index of a namespace URI in the server's NamespaceArray; `AdapterError` if absent."""
        ...


# ---------------------------------------------------------------------------- helpers for the adapters

def normalize_node_id(text: str) -> str:
    """A node id string as the adapters return it: ``ns=0;i=85`` -> ``i=85``."""
    return text[5:] if text.startswith("ns=0;") else text


def check_type_name(type_name: str) -> str:
    if type_name not in WRITABLE_TYPES:
        known = ", ".join(sorted(WRITABLE_TYPES))
        raise ValueError(f"cannot send a value of OPC UA type {type_name!r}; supported: {known}")
    return type_name


_INT_RANGES = {
    "SByte": (-(2**7), 2**7 - 1), "Byte": (0, 2**8 - 1), "Int16": (-(2**15), 2**15 - 1), "UInt16": (0, 2**16 - 1),
    "Int32": (-(2**31), 2**31 - 1), "UInt32": (0, 2**32 - 1), "Int64": (-(2**63), 2**63 - 1), "UInt64": (0, 2**64 - 1),
}


def check_value(value, type_name: str) -> None:
    """`ValueError` unless `value` (or every element of a list) fits the built-in type, so that
    no stack gets to coerce it its own way (node-opcua would write the String "abc" as a Float
    NaN, asyncua fail while encoding)."""
    check_type_name(type_name)
    values = value if isinstance(value, list | tuple) else [value]
    for v in values:
        ok = True
        if type_name in _INT_RANGES:
            low, high = _INT_RANGES[type_name]
            ok = isinstance(v, int) and not isinstance(v, bool) and low <= v <= high
        elif type_name in ("Float", "Double"):
            ok = isinstance(v, int | float) and not isinstance(v, bool)
        elif type_name == "Boolean":
            ok = isinstance(v, bool)
        elif type_name in ("String", "XmlElement", "NodeId", "LocalizedText", "QualifiedName"):
            ok = isinstance(v, str)
        elif type_name == "ByteString":
            ok = isinstance(v, bytes | bytearray)
        elif type_name == "DateTime":
            ok = isinstance(v, datetime)
        elif type_name == "Guid":
            ok = isinstance(v, uuid.UUID | str)
        elif type_name == "StatusCode":
            ok = isinstance(v, str)
        if not ok:
            raise ValueError(f"{v!r} is not a value of OPC UA type {type_name}")


def policy_name(policy: str) -> str:
    """Accept a policy name or its URI (``http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256``)."""
    name = policy.rsplit("#", 1)[-1] if policy else "None"
    if name not in POLICIES:
        raise ValueError(f"unknown security policy {policy!r}; known: {', '.join(POLICIES)}")
    return name


def mode_name(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown message security mode {mode!r}; known: {', '.join(MODES)}")
    return mode


def check_security(policy: str, mode: str, certificate, private_key) -> tuple[str, str]:
    """Validated (policy, mode): both None or both secure, with a certificate and key for the latter."""
    policy, mode = policy_name(policy), mode_name(mode)
    if (policy == "None") != (mode == "None"):
        raise ValueError(f"security policy {policy} does not go with mode {mode}")
    if policy != "None" and not (certificate and private_key):
        raise ValueError(f"security policy {policy} needs certificate= and private_key= (the client's application certificate)")
    return policy, mode


def nonfinite_tag(value: float) -> str | None:
    """The wire tag of a non-finite float ('nan', 'inf', '-inf'), None for a finite one."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return None
