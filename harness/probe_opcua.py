"""Drafts a device profile by probing an unknown OPC UA server (`harness probe opc.tcp://...`).

What it reads, with the harness's own client (`harness.opcua`), never writing anything and
never calling a method (a method call may change the device):

- GetEndpoints: the security policies and modes, the user token types, the ApplicationUri;
- over a session (anonymous when offered, else the target's `user=` with HARNESS_PASSWORD):
  ServerStatus/BuildInfo (identity), ServerCapabilities and OperationLimits (limits), the
  NamespaceArray;
- the first object in a non-standard namespace under the Objects folder (the device object),
  its Variable components (points: data type, array shape, current value, access level,
  EngineeringUnits) and its methods (with their arguments, listed as a comment).

Every request has a timeout, the whole probe is bounded (`PROBE_BUDGET_S`), and so are the
number of nodes browsed and BrowseNext rounds, so a misbehaving server cannot hang it.  The
result is a DRAFT: the server profile it claims, what its methods do, scales behind the
values and test users cannot be learned by probing, and the header says so.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import struct
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .codec.modbus import datatypes
from .profile import SCHEMA, parse_profile
from .profile_doc import ProfileError
from .profile_opcua import DATA_TYPES, POLICY_URI_PREFIX, SECURITY_MODES, SECURITY_POLICIES
from .target import Target

__all__ = ["OpcuaProbeError", "Draft", "probe_opcua", "render_draft", "probe_opcua_to_file"]

PROBE_BUDGET_S = 60.0  # the whole probe, connect to close
CALL_TIMEOUT_S = 5.0  # each request
MAX_POINTS = 500  # Variable components drafted at most
MAX_NODES_BROWSED = 2000  # references followed per browsed node at most
MAX_BROWSE_NEXT = 50  # BrowseNext rounds per Browse at most
BROWSE_PAGE = 1000  # RequestedMaxReferencesPerNode
DEFAULT_BATCH = 50  # nodes per Read/Browse when the server advertises no limit
PASSWORD_ENV = "HARNESS_PASSWORD"

DEPRECATED_POLICIES = {"Basic128Rsa15", "Basic256"}  # Part 7 v1.04: deprecated, the harness does not claim them
MODE_NAMES = {1: "None", 2: "Sign", 3: "SignAndEncrypt"}
# ns=0 built-in DataType ids
BUILTIN_TYPES = {1: "Boolean", 2: "SByte", 3: "Byte", 4: "Int16", 5: "UInt16", 6: "Int32", 7: "UInt32", 8: "Int64",
                 9: "UInt64", 10: "Float", 11: "Double", 12: "String"}
POINT_TYPES = {"Boolean": "bool", "Int16": "int16", "UInt16": "uint16", "Int32": "int32", "UInt32": "uint32",
               "Float": "float32", "Double": "float64", "String": "string"}
MIN_STRING_LENGTH = 16
MAX_STRING_LENGTH = 250  # what a profile's string point holds at most (bytes)
MAX_ARRAY = 1000

# profile limit key -> ns=0 node id of the ServerCapabilities variable that advertises it
LIMIT_NODES = {
    "max_nodes_per_read": 11705,
    "max_nodes_per_write": 11707,
    "max_nodes_per_browse": 11710,
    "max_nodes_per_method_call": 11709,
    "max_nodes_per_register_nodes": 11711,
    "max_nodes_per_translate": 11712,
    "max_monitored_items_per_call": 11714,
    "max_sessions": 24095,  # Part 5 v1.05 ServerCapabilities.MaxSessions
    "max_subscriptions_per_session": 24098,
    "max_browse_continuation_points": 2735,
    "min_sampling_interval_ms": 2272,  # MinSupportedSampleRate (ms)
}
OBJECTS_FOLDER, SERVER_OBJECT, NAMESPACE_ARRAY, BUILD_INFO = 85, 2253, 2255, 2260
HIERARCHICAL, ORGANIZES, HAS_COMPONENT, HAS_PROPERTY = 33, 35, 47, 46
NC_OBJECT, NC_VARIABLE, NC_METHOD = 1, 2, 4


class OpcuaProbeError(RuntimeError):
    """The server could not be probed; the message says what happened and where."""


@dataclass
class Draft:
    """What the probe found: the profile document, and notes that become YAML comments."""

    url: str
    device: dict[str, str] = field(default_factory=dict)
    opcua: dict[str, Any] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)  # section -> comment lines
    methods: list[dict[str, Any]] = field(default_factory=list)  # found on the object, commented out

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(_printable(text))

    def document(self) -> dict:
        doc: dict[str, Any] = {"profile": SCHEMA, "device": self.device, "opcua": self.opcua}
        if self.points:
            doc["points"] = self.points
        return doc


# --------------------------------------------------------------------------- small helpers


def _printable(text: str) -> str:
    """Device text made safe for a one-line YAML comment."""
    return "".join(" " if (ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029\ufeff") else c for c in str(text))


def _float32(value: float) -> float:
    """The shortest decimal that is the same float32 (12.3 rather than 12.300000190734863)."""
    if not math.isfinite(value):
        return value
    for digits in range(6, 10):
        short = float(f"{value:.{digits}g}")
        if struct.pack("<f", short) == struct.pack("<f", value):
            return short
    return value


def _type_name(node_id) -> str:
    from .opcua import ua

    if node_id is None:
        return "?"
    if node_id.NamespaceIndex == 0 and isinstance(node_id.Identifier, int):
        return BUILTIN_TYPES.get(node_id.Identifier) or ua.ObjectIdNames.get(node_id.Identifier, node_id.to_string())
    return node_id.to_string()


def _builtin(node_id) -> str | None:
    if node_id is not None and node_id.NamespaceIndex == 0 and isinstance(node_id.Identifier, int):
        return BUILTIN_TYPES.get(node_id.Identifier)
    return None


_NODE_ID_FORM = re.compile(r"^(i=\d+|s=.+|g=[0-9a-fA-F-]{36}|b=[A-Za-z0-9+/=]+)$")


def _identifier(node_id) -> str | None:
    """'s=PowerMeter' from ns=2;s=PowerMeter, or None when a profile cannot name it."""
    text = node_id.to_string()
    if text.startswith("ns="):
        text = text.split(";", 1)[1] if ";" in text else ""
    return text if _NODE_ID_FORM.match(text) and "\n" not in text else None


def _point_name(browse_name: str, taken: set[str]) -> str:
    base = re.sub(r"[^\w.-]+", "_", browse_name).strip("_") or "point"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _value_of(data_value) -> Any:
    """The value of a DataValue read with a good status, else None."""
    if data_value is None or data_value.StatusCode is None or not data_value.StatusCode.is_good():
        return None
    return data_value.Value.Value if data_value.Value is not None else None


def _good(reply, cls) -> bool:
    return isinstance(reply, cls) and reply.ResponseHeader.ServiceResult.is_good()


# --------------------------------------------------------------------------- the session


class _Session:
    """An activated session on a channel, with bounded batched Read and Browse(+Next)."""

    def __init__(self, channel, timeout: float, draft: Draft):
        self.channel, self.timeout, self.draft = channel, timeout, draft
        self.read_batch = DEFAULT_BATCH
        self.browse_batch = DEFAULT_BATCH
        self.namespaces: list[str] = []

    async def read(self, items: list[tuple[Any, int]]) -> list[Any]:
        """DataValues (or None where nothing usable came back) for (NodeId, AttributeId) pairs."""
        from .opcua import ua, summarize

        out: list[Any] = []
        for start in range(0, len(items), self.read_batch):
            chunk = items[start : start + self.read_batch]
            request = ua.ReadRequest()
            request.Parameters.TimestampsToReturn = ua.TimestampsToReturn.Neither
            request.Parameters.NodesToRead = [ua.ReadValueId(NodeId=n, AttributeId=a) for n, a in chunk]
            reply = await self.channel.request(request, timeout=self.timeout)
            if _good(reply, ua.ReadResponse) and len(reply.Results or []) == len(chunk):
                out += reply.Results
            elif len(chunk) > 1:  # e.g. Bad_TooManyOperations under a limit we do not know yet: one by one
                for item in chunk:
                    out += await self.read([item])
            else:
                self.draft.note("points", f"reading {chunk[0][0].to_string()} was answered with {summarize(reply)}")
                out.append(None)
        return out

    async def browse(self, descriptions: list[Any]) -> list[list[Any]]:
        """References of each BrowseDescription, following continuation points (bounded)."""
        from .opcua import ua, summarize

        out: list[list[Any]] = [[] for _ in descriptions]
        for start in range(0, len(descriptions), self.browse_batch):
            chunk = descriptions[start : start + self.browse_batch]
            request = ua.BrowseRequest()
            request.Parameters.View = ua.ViewDescription()
            request.Parameters.RequestedMaxReferencesPerNode = BROWSE_PAGE
            request.Parameters.NodesToBrowse = chunk
            reply = await self.channel.request(request, timeout=self.timeout)
            if not (_good(reply, ua.BrowseResponse) and len(reply.Results or []) == len(chunk)):
                if len(chunk) > 1:
                    for i, d in enumerate(chunk):
                        out[start + i] = (await self.browse([d]))[0]
                    continue
                self.draft.note("points", f"browsing {chunk[0].NodeId.to_string()} was answered with {summarize(reply)}")
                continue
            pending: dict[int, bytes] = {}
            for i, result in enumerate(reply.Results):
                out[start + i] += list(result.References or [])
                if result.ContinuationPoint:
                    pending[start + i] = result.ContinuationPoint
            await self._browse_next(out, pending)
        return out

    async def _browse_next(self, out: list[list[Any]], pending: dict[int, bytes]) -> None:
        from .opcua import ua, summarize

        rounds = 0
        while pending:
            if rounds >= MAX_BROWSE_NEXT or any(len(out[i]) >= MAX_NODES_BROWSED for i in pending):
                self.draft.note("points", f"stopped following continuation points after {rounds} BrowseNext rounds "
                                f"({max(len(out[i]) for i in pending)} references): the draft may be incomplete")
                break
            request = ua.BrowseNextRequest()
            request.Parameters.ReleaseContinuationPoints = False
            request.Parameters.ContinuationPoints = list(pending.values())
            reply = await self.channel.request(request, timeout=self.timeout)
            rounds += 1
            results = list(reply.Parameters.Results or []) if _good(reply, ua.BrowseNextResponse) else []
            if len(results) != len(pending):
                self.draft.note("points", f"BrowseNext was answered with {summarize(reply)}: the draft may be incomplete")
                return  # the server forgot them, or cannot say: nothing to release
            following: dict[int, bytes] = {}
            for (index, point), result in zip(pending.items(), results):
                references = list(result.References or [])
                out[index] += references
                # A continuation point that brings nothing new leads nowhere: stop there.
                if result.ContinuationPoint and (references or result.ContinuationPoint != point):
                    following[index] = result.ContinuationPoint
            pending = following
        if pending:
            request = ua.BrowseNextRequest()
            request.Parameters.ReleaseContinuationPoints = True
            request.Parameters.ContinuationPoints = list(pending.values())
            try:
                await self.channel.request(request, timeout=self.timeout)
            except Exception:  # releasing is a courtesy
                pass


def _description(node_id, reference_type: int, node_classes: int):
    from .opcua import ua

    d = ua.BrowseDescription()
    d.NodeId = node_id
    d.BrowseDirection = ua.BrowseDirection.Forward
    d.ReferenceTypeId = ua.NodeId(reference_type)
    d.IncludeSubtypes = True
    d.NodeClassMask = node_classes
    d.ResultMask = 63  # all fields
    return d


def _unique(references) -> list[Any]:
    seen, out = set(), []
    for ref in references:
        key = (ref.NodeId.to_string(), getattr(ref.NodeId, "ServerIndex", 0))
        if key not in seen:
            seen.add(key)
            out.append(ref)
    return out


# --------------------------------------------------------------------------- the probe


def endpoint_url(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"opc.tcp://{host}:{target.port}{target.path}"


def _security(draft: Draft, endpoints) -> tuple[list[dict], set[str]]:
    """The `security` claims, and the user token types the endpoints offer."""
    found: dict[str, set[str]] = {}
    tokens: set[str] = set()
    for endpoint in endpoints:
        uri = endpoint.SecurityPolicyUri or ""
        name = uri.rsplit("#", 1)[-1] if uri.startswith(POLICY_URI_PREFIX) else uri
        mode = MODE_NAMES.get(int(endpoint.SecurityMode))
        if name in DEPRECATED_POLICIES:
            draft.note("security", f"left out: {name} ({mode}), deprecated since OPC UA 1.04: a profile cannot claim it")
            continue
        if name not in SECURITY_POLICIES:
            draft.note("security", f"left out: {uri or '(no policy)'} ({mode}), a policy the harness does not know")
            continue
        if mode is None or (name == "None") != (mode == "None"):
            draft.note("security", f"left out: an endpoint offering policy {name} with mode {mode or int(endpoint.SecurityMode)}, "
                       "an inconsistent pair")
            continue
        found.setdefault(name, set()).add(mode)
        for policy in endpoint.UserIdentityTokens or []:
            kind = int(policy.TokenType)
            if kind == 0:
                tokens.add("anonymous")
            elif kind == 1:
                tokens.add("username")
            else:
                label = {2: "X.509 certificate", 3: "issued"}.get(kind, f"type {kind}")
                text = f"left out: {label} user tokens (offered on {name}/{mode}): a profile cannot claim them yet"
                if text not in draft.notes.get("user_tokens", []):
                    draft.note("user_tokens", text)
    claims = [{"policy": p, "modes": [m for m in SECURITY_MODES if m in found[p]]} for p in SECURITY_POLICIES if p in found]
    return claims, tokens


async def _open_channel(target: Target, url: str, endpoints, timeout: float, progress):
    """A channel with security None when offered, else the strongest secure one with the
    harness's client certificate (which the server must trust)."""
    from .opcua import UaChannel, endpoint_certificate, ua

    if any(e.SecurityMode == ua.MessageSecurityMode.None_ for e in endpoints):
        return await UaChannel.connect(target.host, target.port, url, timeout=timeout)
    from .certs import harness_client_certificate

    by_preference = sorted(
        (e for e in endpoints if e.SecurityPolicyUri.rsplit("#", 1)[-1] in SECURITY_POLICIES[1:]),
        key=lambda e: (-int(e.SecurityMode), -SECURITY_POLICIES.index(e.SecurityPolicyUri.rsplit("#", 1)[-1])),
    )
    if not by_preference:
        raise OpcuaProbeError("the server offers neither security None nor a policy the harness speaks: nothing to browse with")
    endpoint = by_preference[0]
    pair = harness_client_certificate()
    progress(f"no endpoint with security None: browsing over {endpoint.SecurityPolicyUri.rsplit('#', 1)[-1]} "
             f"{MODE_NAMES.get(int(endpoint.SecurityMode))} with the harness client certificate {pair.cert_path}")
    try:
        return await UaChannel.connect(target.host, target.port, url, timeout=timeout,
                                       policy=endpoint.SecurityPolicyUri.rsplit("#", 1)[-1], mode=MODE_NAMES[int(endpoint.SecurityMode)],
                                       certificate=pair.cert_path, private_key=pair.key_path,
                                       server_certificate=endpoint_certificate(endpoint))
    except Exception as exc:
        raise OpcuaProbeError(f"{exc}; the server offers no security None endpoint, so it must trust the harness "
                              f"client certificate {pair.cert_path} for the probe") from exc


async def _activate(channel, tokens: set[str], user: str | None, password: str | None) -> str:
    from .opcua import activate_session, anonymous_token, create_session, summarize, ua, username_token

    reply = await create_session(channel)
    if not _good(reply, ua.CreateSessionResponse):
        raise OpcuaProbeError(f"CreateSession was answered with {summarize(reply)}")
    if "anonymous" in tokens:
        token, how = anonymous_token(channel), "anonymous"
    elif "username" in tokens and user and password is not None:
        token, how = username_token(channel, user, password), f"user {user}"
    else:
        raise OpcuaProbeError("the server offers no anonymous login: give a user in the target "
                              f"(opc.tcp://host:port/path?user=NAME) and the password in {PASSWORD_ENV}")
    reply = await activate_session(channel, token=token)
    if not _good(reply, ua.ActivateSessionResponse):
        raise OpcuaProbeError(f"ActivateSession ({how}) was answered with {summarize(reply)}")
    return how


async def _check_user(channel, user: str, password: str) -> str | None:
    """None when `user` can log in with `password` (in a second session), else why not."""
    from .opcua import activate_session, close_session, create_session, summarize, ua, username_token

    reply = await create_session(channel, session_name="protocol-harness probe (user check)")
    if not _good(reply, ua.CreateSessionResponse):
        return f"CreateSession was answered with {summarize(reply)}"
    try:
        try:
            token = username_token(channel, user, password)
        except ValueError as exc:
            return str(exc)
        reply = await activate_session(channel, token=token)
        return None if _good(reply, ua.ActivateSessionResponse) else f"ActivateSession was answered with {summarize(reply)}"
    finally:
        try:
            await close_session(channel)
        except Exception:  # the check is done; a server slow to close the session changes nothing
            pass


async def _probe(target: Target, timeout: float, progress: Callable[[str], None]) -> Draft:
    from .opcua import close_session, get_endpoints, summarize, ua

    url = endpoint_url(target)
    draft = Draft(url=target.url)
    reply = await get_endpoints(target.host, target.port, url, timeout=timeout)
    if not _good(reply, ua.GetEndpointsResponse):
        raise OpcuaProbeError(f"GetEndpoints was answered with {summarize(reply)}")
    endpoints = list(reply.Endpoints or [])
    if not endpoints:
        raise OpcuaProbeError("GetEndpoints returned no endpoints")
    security, tokens = _security(draft, endpoints)
    if not security:
        raise OpcuaProbeError("no endpoint offers a security policy a profile can claim: "
                              + "; ".join(draft.notes.get("security", [])))
    progress("endpoints: " + ", ".join(f"{c['policy']} {'/'.join(c['modes'])}" for c in security)
             + f"; user tokens: {', '.join(sorted(tokens)) or 'none'}")
    server = endpoints[0].Server
    user = target.params.get("user") or None
    password = os.environ.get(PASSWORD_ENV) if user else None

    channel = await _open_channel(target, url, endpoints, timeout, progress)
    try:
        how = await _activate(channel, tokens, user, password)
        progress(f"session activated ({how})")
        session = _Session(channel, timeout, draft)
        try:
            await _identity_and_limits(session, draft, server, endpoints, target)
            progress("BuildInfo: " + ", ".join(f"{k}={v!r}" for k, v in draft.device.items()))
            await _device_object(session, draft, progress)
        finally:
            try:
                await close_session(channel, timeout=timeout)
            except Exception:
                pass
        user_tokens = [t for t in ("anonymous", "username") if t in tokens]
        if "username" in tokens:
            problem = "no user was given in the target (?user=NAME, password in HARNESS_PASSWORD)"
            if user and password is not None:
                why = await _check_user(channel, user, password)
                problem = None if why is None else f"user {user} could not log in ({why})"
            if problem is None:
                draft.opcua["users"] = [{"name": user, "password_env": PASSWORD_ENV}]
                progress(f"user {user} can log in")
            else:
                user_tokens.remove("username")
                draft.note("user_tokens", f"the server offers username tokens, but {problem}: a profile that claims them needs "
                           "a test user, so `username` is left out.  Add it back with `users: [{name: NAME, password_env: VAR}]`")
        if not user_tokens:
            raise OpcuaProbeError("no user token the probe could log in with")
        draft.opcua = _ordered_opcua(draft.opcua, security, user_tokens)
    finally:
        try:
            await channel.close()
        except Exception:
            channel.abort()
    return draft


async def _identity_and_limits(session: _Session, draft: Draft, server, endpoints, target: Target) -> None:
    from .opcua import ua

    limit_items = [(ua.NodeId(i), ua.AttributeIds.Value) for i in LIMIT_NODES.values()]
    values = await session.read([(ua.NodeId(NAMESPACE_ARRAY), ua.AttributeIds.Value),
                                 (ua.NodeId(BUILD_INFO), ua.AttributeIds.Value), *limit_items])
    namespaces = _value_of(values[0])
    session.namespaces = list(namespaces) if isinstance(namespaces, list) else []
    info = _value_of(values[1])
    opcua: dict[str, Any] = {}
    limits: dict[str, int] = {}
    for (key, _), data in zip(LIMIT_NODES.items(), values[2:]):
        value = _value_of(data)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            continue  # absent, or 0: no limit
        value = math.ceil(value)
        if value > 2**31 - 1:
            draft.note("limits", f"{key}: advertised as {value}, more than a profile holds: left out (no limit)")
            continue
        limits[key] = value
    if limits.get("max_nodes_per_read"):
        session.read_batch = min(DEFAULT_BATCH, limits["max_nodes_per_read"])
    if limits.get("max_nodes_per_browse"):
        session.browse_batch = min(DEFAULT_BATCH, limits["max_nodes_per_browse"])
    opcua["limits"] = limits

    device: dict[str, str] = {}
    if isinstance(info, ua.BuildInfo):
        for key, attr in (("vendor_name", "ManufacturerName"), ("product_name", "ProductName"), ("revision", "SoftwareVersion")):
            text = getattr(info, attr, None)
            if text:
                device[key] = str(text)
        if info.ProductUri:
            opcua["product_uri"] = str(info.ProductUri)
        if info.BuildNumber:
            opcua["build_number"] = str(info.BuildNumber)
        if isinstance(info.BuildDate, datetime) and info.BuildDate.year > 1601:
            opcua["build_date"] = info.BuildDate.date().isoformat()
    else:
        draft.note("device", "ServerStatus/BuildInfo could not be read: fill in the identity by hand")
    if not device.get("product_name") and server.ApplicationName and server.ApplicationName.Text:
        device["product_name"] = str(server.ApplicationName.Text)
    device.setdefault("vendor_name", "unknown")
    device["product_code"] = device.get("product_name", "unknown")
    draft.device = {k: device[k] for k in ("vendor_name", "product_code", "revision", "product_name") if k in device}
    if server.ApplicationUri:
        opcua["application_uri"] = str(server.ApplicationUri)
    if "product_uri" not in opcua and server.ProductUri:
        opcua["product_uri"] = str(server.ProductUri)
    path = target.path
    if not path:
        advertised = {urlsplit(e.EndpointUrl or "").path for e in endpoints}
        if len(advertised) == 1:
            path = advertised.pop()
    if path:
        opcua["endpoint_path"] = path
    draft.opcua = opcua


async def _device_object(session: _Session, draft: Draft, progress) -> None:
    from .opcua import ua

    (objects,) = await session.browse([_description(ua.NodeId(OBJECTS_FOLDER), HIERARCHICAL, NC_OBJECT)])
    candidates = [r for r in _unique(objects)
                  if r.NodeId.NamespaceIndex != 0 and not getattr(r.NodeId, 'NamespaceUri', None) and not getattr(r.NodeId, 'ServerIndex', 0)]
    if not candidates:
        raise OpcuaProbeError("the Objects folder holds no object outside the standard namespace: no device object to draft")
    obj = candidates[0]
    namespaces = session.namespaces
    index = obj.NodeId.NamespaceIndex
    if index >= len(namespaces):
        raise OpcuaProbeError(f"the device object {obj.NodeId.to_string()} is in namespace {index}, which the NamespaceArray does not list")
    object_id = ua.NodeId(obj.NodeId.Identifier, index, obj.NodeId.NodeIdType)
    identifier = _identifier(object_id)
    if identifier is None:
        raise OpcuaProbeError(f"the device object's node id {object_id.to_string()} cannot be written in a profile")
    name = obj.BrowseName.Name or identifier
    draft.opcua["namespace"] = namespaces[index]
    draft.opcua["object"] = {"name": name, "node_id": identifier}
    if len(candidates) > 1:
        draft.note("object", "other objects under Objects: " + ", ".join(
            f"{r.BrowseName.Name} ({r.NodeId.to_string()})" for r in candidates[1:10]) + (" ..." if len(candidates) > 10 else ""))
    progress(f"device object {name} ({identifier}) in namespace {namespaces[index]}")

    components, organized, properties = await session.browse([
        _description(object_id, HAS_COMPONENT, NC_VARIABLE | NC_METHOD | NC_OBJECT),
        _description(object_id, ORGANIZES, NC_VARIABLE | NC_METHOD | NC_OBJECT),
        _description(object_id, HAS_PROPERTY, NC_VARIABLE),
    ])
    # Only forward references, and never back to the Objects folder: a server that marks
    # the inverse Organizes from Objects as forward (asyncua's address space says every
    # ReferenceType is Symmetric) would otherwise list the folder as a child.
    children = [r for r in _unique(components + organized)
                if r.IsForward is not False and r.NodeId.to_string() != f"i={OBJECTS_FOLDER}"]
    variables = [r for r in children if int(r.NodeClass) == NC_VARIABLE]
    methods = [r for r in children if int(r.NodeClass) == NC_METHOD]
    subobjects = [r for r in children if int(r.NodeClass) == NC_OBJECT]
    if subobjects:
        draft.note("points", f"objects under {name} not browsed (points are the object's own variables): "
                   + ", ".join(r.BrowseName.Name for r in subobjects[:10]) + (" ..." if len(subobjects) > 10 else ""))
    await _product_code(session, draft, _unique(properties))
    if len(variables) > MAX_POINTS:
        draft.note("points", f"{name} has {len(variables)} variables: only the first {MAX_POINTS} are drafted")
        variables = variables[:MAX_POINTS]
    await _points(session, draft, variables, index)
    await _methods(session, draft, methods)
    progress(f"{len(draft.points)} points drafted from {len(variables)} variables; {len(methods)} methods found")


async def _product_code(session: _Session, draft: Draft, properties) -> None:
    """The DI ProductCode property of the device object, when it has one (better than ProductName)."""
    from .opcua import ua

    for ref in properties:
        if ref.BrowseName.Name == "ProductCode":
            (data,) = await session.read([(ua.NodeId(ref.NodeId.Identifier, ref.NodeId.NamespaceIndex, ref.NodeId.NodeIdType), ua.AttributeIds.Value)])
            code = _value_of(data)
            if isinstance(code, str) and code.strip():
                draft.device["product_code"] = code.strip()
            return


ATTRIBUTES = ("DataType", "ValueRank", "ArrayDimensions", "AccessLevel", "Value")


async def _points(session: _Session, draft: Draft, variables, namespace_index: int) -> None:
    from .opcua import ua

    ids = [ua.NodeId(r.NodeId.Identifier, r.NodeId.NamespaceIndex, r.NodeId.NodeIdType) for r in variables]
    items = [(n, getattr(ua.AttributeIds, a)) for n in ids for a in ATTRIBUTES]
    values = await session.read(items)
    units = await _engineering_units(session, ids)
    taken: set[str] = set()
    for k, (ref, node_id) in enumerate(zip(variables, ids)):
        browse_name = ref.BrowseName.Name or node_id.to_string()
        attrs = dict(zip(ATTRIBUTES, values[k * len(ATTRIBUTES) : (k + 1) * len(ATTRIBUTES)]))
        point = _point(draft, browse_name, node_id, attrs, namespace_index)
        if point is None:
            continue
        point["name"] = _point_name(browse_name, taken)
        if units[k]:
            point["unit"] = units[k]
        draft.points.append({key: point[key] for key in ("name", "node_id", "type", "length", "array", "value", "unit", "writable")
                             if key in point})


def _point(draft: Draft, browse_name: str, node_id, attrs: dict, namespace_index: int) -> dict | None:
    label = f"{browse_name} ({node_id.to_string()})"
    if node_id.NamespaceIndex != namespace_index:
        draft.note("points", f"skipped {label}: outside the device namespace, which a profile's points live in")
        return None
    identifier = _identifier(node_id)
    if identifier is None:
        draft.note("points", f"skipped {label}: a node id a profile cannot write")
        return None
    data_type = _value_of(attrs["DataType"])
    ua_type = _builtin(data_type)
    if ua_type not in POINT_TYPES:
        draft.note("points", f"skipped {label}: DataType {_type_name(data_type)} is not one a point can have "
                   f"({', '.join(POINT_TYPES)})")
        return None
    ptype = POINT_TYPES[ua_type]
    rank = _value_of(attrs["ValueRank"])
    rank = rank if isinstance(rank, int) else -1
    dims = _value_of(attrs["ArrayDimensions"]) or []
    value = _value_of(attrs["Value"])
    point: dict[str, Any] = {"node_id": identifier, "type": ptype}
    is_array = isinstance(value, list) if rank in (-2, -3) else rank == 1
    if rank == 0 or rank > 1:
        if not (isinstance(value, list) and not any(isinstance(v, list) for v in value)):
            draft.note("points", f"skipped {label}: ValueRank {rank} (more than one dimension)")
            return None
        is_array = True
    if is_array:
        if ptype == "string":
            draft.note("points", f"skipped {label}: an array of String, which a point cannot be")
            return None
        if isinstance(value, list):
            count = len(value)
        else:
            count = dims[0] if dims and isinstance(dims[0], int) else 0
            if value is not None:
                draft.note("points", f"{label}: ValueRank {rank} but a scalar value; the value is left out")
            value = None
        if not 1 <= count <= MAX_ARRAY:
            draft.note("points", f"skipped {label}: an array of {count} elements (a point holds 1 to {MAX_ARRAY})")
            return None
        point["array"] = count
    elif isinstance(value, list):
        draft.note("points", f"{label}: a scalar by its ValueRank but the value is an array; the value is left out")
        value = None
    if ptype == "string":
        size = len(value.encode("utf-8")) if isinstance(value, str) else 0
        if size > MAX_STRING_LENGTH:
            draft.note("points", f"{label}: the value is {size} bytes, more than a point holds; the value is left out")
            value, size = None, MAX_STRING_LENGTH
        point["length"] = max(size, MIN_STRING_LENGTH)
    if value is not None:
        if ptype == "float32":
            value = [_float32(v) for v in value] if is_array else _float32(value)
        problems = [datatypes.check_value(ptype, v, point.get("length", 0)) for v in (value if is_array else [value])]
        problem = next((p for p in problems if p), None)
        if problem:
            draft.note("points", f"{label}: the value read does not fit {ptype} ({problem}); the value is left out")
        else:
            point["value"] = value
    access = _value_of(attrs["AccessLevel"])
    if isinstance(access, int) and access & 0x02:  # CurrentWrite
        point["writable"] = True
    return point


async def _engineering_units(session: _Session, ids) -> list[str]:
    """The DisplayName of each variable's EngineeringUnits property ('' where there is none)."""
    from .opcua import ua

    found = await session.browse([_description(n, HAS_PROPERTY, NC_VARIABLE) for n in ids])
    wanted: list[tuple[int, Any]] = []
    for k, refs in enumerate(found):
        for ref in refs:
            if ref.BrowseName.Name == "EngineeringUnits":
                wanted.append((k, ua.NodeId(ref.NodeId.Identifier, ref.NodeId.NamespaceIndex, ref.NodeId.NodeIdType)))
                break
    units = [""] * len(ids)
    values = await session.read([(n, ua.AttributeIds.Value) for _, n in wanted])
    for (k, _), data in zip(wanted, values):
        eu = _value_of(data)
        text = getattr(getattr(eu, "DisplayName", None), "Text", None)
        if text:
            units[k] = _printable(text).strip()
    return units


async def _methods(session: _Session, draft: Draft, methods) -> None:
    from .opcua import ua

    ids = [ua.NodeId(r.NodeId.Identifier, r.NodeId.NamespaceIndex, r.NodeId.NodeIdType) for r in methods]
    found = await session.browse([_description(n, HAS_PROPERTY, NC_VARIABLE) for n in ids])
    wanted: list[tuple[int, str, Any]] = []
    for k, refs in enumerate(found):
        for ref in refs:
            if ref.BrowseName.Name in ("InputArguments", "OutputArguments"):
                wanted.append((k, ref.BrowseName.Name, ua.NodeId(ref.NodeId.Identifier, ref.NodeId.NamespaceIndex, ref.NodeId.NodeIdType)))
    values = await session.read([(n, ua.AttributeIds.Value) for _, _, n in wanted])
    arguments: dict[tuple[int, str], list] = {}
    for (k, which, _), data in zip(wanted, values):
        value = _value_of(data)
        arguments[(k, which)] = value if isinstance(value, list) else []
    for k, (ref, node_id) in enumerate(zip(methods, ids)):
        name = _printable(ref.BrowseName.Name or node_id.to_string())
        entry: dict[str, Any] = {"name": name, "node_id": _identifier(node_id) or node_id.to_string()}
        unsupported = []
        for which, key in (("InputArguments", "inputs"), ("OutputArguments", "outputs")):
            args = []
            for i, arg in enumerate(arguments.get((k, which), [])):
                type_name = _builtin(getattr(arg, "DataType", None))
                arg_name = _printable(getattr(arg, "Name", "") or f"{key[:-1]}{i + 1}")
                if type_name not in DATA_TYPES or getattr(arg, "ValueRank", -1) not in (-1, None):
                    unsupported.append(f"{arg_name}: {_type_name(getattr(arg, 'DataType', None))}"
                                       + ("" if getattr(arg, "ValueRank", -1) in (-1, None) else f" (ValueRank {arg.ValueRank})"))
                    type_name = _type_name(getattr(arg, "DataType", None))
                args.append({"name": arg_name, "type": type_name})
            entry[key] = args
        entry["unsupported"] = unsupported
        draft.methods.append(entry)


def _ordered_opcua(found: dict, security: list[dict], user_tokens: list[str]) -> dict:
    opcua: dict[str, Any] = {"profile": "nano", "security": security, "user_tokens": user_tokens}
    if found.get("limits"):
        opcua["limits"] = found["limits"]
    for key in ("application_uri", "product_uri", "build_number", "build_date", "endpoint_path", "namespace", "object", "users"):
        if key in found:
            opcua[key] = found[key]
    return opcua


# --------------------------------------------------------------------------- running and writing


def _run(coro: Coroutine) -> Any:
    """Run a coroutine to completion, also when called from a thread that has a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc

    thread = threading.Thread(target=worker, name="opcua-probe", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def probe_opcua(target: Target, progress: Callable[[str], None] = lambda m: None, *,
                budget_s: float = PROBE_BUDGET_S, timeout: float = CALL_TIMEOUT_S) -> Draft:
    """Probe the server at `target` (an opc.tcp target): the Draft, or OpcuaProbeError."""
    from .opcua import UaTransportError

    if target.protocol != "opcua":
        raise OpcuaProbeError(f"{target.url} is not an OPC UA target (opc.tcp://host:port/path)")
    url = endpoint_url(target)

    async def bounded() -> Draft:
        try:
            return await asyncio.wait_for(_probe(target, min(timeout, budget_s), progress), budget_s)
        except asyncio.TimeoutError:
            raise OpcuaProbeError(f"probing {url}: the probe did not finish within {budget_s:g} s") from None
        except OpcuaProbeError as exc:
            raise OpcuaProbeError(f"probing {url}: {exc}") from exc.__cause__
        except (UaTransportError, OSError, ValueError) as exc:
            raise OpcuaProbeError(f"probing {url}: {exc or type(exc).__name__}") from exc

    return _run(bounded())


HEADER = """\
# Drafted by `harness probe {url}` on {date}.
# This is a DRAFT: check every claim against the device's documentation.
# - security policies, user tokens, limits and identity are what the server advertises;
# - the points are the variables of the first device object under Objects, with the values they
#   held when probed; a value the device scales cannot be told from one it does not (no scale);
# - the Part 7 server profile and the methods' behaviour cannot be probed: see the comments.
"""


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, allow_unicode=True, width=1 << 30).strip()


def _scalar(value: Any) -> str:
    return _flow([value])[1:-1]


def _block(mapping: dict, indent: int) -> str:
    text = yaml.safe_dump(mapping, default_flow_style=False, sort_keys=False, allow_unicode=True, width=1 << 30)
    return "".join(" " * indent + line + "\n" for line in text.splitlines())


def _comments(lines: list[str], indent: int, width: int = 100) -> str:
    out = []
    for line in lines:
        wrapped = textwrap.wrap(line, width - indent - 2, break_long_words=False, break_on_hyphens=False,
                                subsequent_indent="  " if len(line) > width - indent - 2 else "") if line.strip() else [line]
        out += [" " * indent + "# " + part + "\n" for part in (wrapped or [""])]
    return "".join(out)


def render_draft(draft: Draft, date: str | None = None) -> str:
    """The draft as profile YAML with the header and the notes as comments."""
    out = [HEADER.format(url=draft.url, date=date or time.strftime("%Y-%m-%d")), "\n", _block({"profile": SCHEMA}, 0), "\n"]
    out += ["device:\n", _comments(draft.notes.get("device", []), 2), _block(draft.device, 2), "\n", "opcua:\n"]
    for key, value in draft.opcua.items():
        if key == "profile":
            out.append(_comments(["The server profile (Part 7) is not advertised reliably: set the one the vendor claims",
                                  "(nano | micro | embedded), and any conformance_units beyond it, e.g. [Method Call]."], 2))
        if key == "security":
            out += ["  security:\n", *(f"    - {_flow(c)}\n" for c in value), _comments(draft.notes.get("security", []), 4)]
            continue
        if key == "user_tokens":
            out += [f"  user_tokens: {_flow(value)}\n", _comments(draft.notes.get("user_tokens", []), 2)]
            if "users" not in draft.opcua and not draft.notes.get("user_tokens"):
                out.append(_comments(["users: none.  If the device claims username tokens, add test users and their passwords",
                                      "(users: [{name: operator, password_env: OPERATOR_PASSWORD}]) and username above."], 2))
            continue
        if key == "limits":
            out += ["  limits:                     # ServerCapabilities/OperationLimits as advertised (0 = no limit: left out)\n",
                    _block(value, 4), _comments(draft.notes.get("limits", []), 4)]
            continue
        if key == "object":
            out += [_comments(draft.notes.get("object", []), 2), f"  object: {_flow(value)}\n"]
            continue
        if key == "users":
            out += ["  users:\n", *(f"    - {_flow(u)}\n" for u in value)]
            continue
        out.append(_block({key: value}, 2))
    out.append(_methods_comment(draft))
    out += ["\n", "points:\n"]
    out.append(_comments(draft.notes.get("points", []), 2))
    if draft.points:
        out += [f"  - {_flow(p)}\n" for p in draft.points]
    else:
        out.append("  []\n")
    return "".join(out)


def _methods_comment(draft: Draft) -> str:
    if not draft.methods:
        return ""
    obj = draft.opcua.get("object", {}).get("name", "the object")
    lines = [f"Methods of {obj}: what a method does cannot be learned without calling it, and the probe",
             "changes nothing.  To enable the Method Call cases, uncomment those the device documents,",
             "give each its action (sum: one output, the sum of the inputs; echo: returns its inputs),",
             "and add Method Call to conformance_units.",
             "methods:"]
    for m in draft.methods:
        if m["unsupported"]:
            lines.append(f"  (left out: {m['name']} ({m['node_id']}), arguments of types a profile cannot hold: "
                         + ", ".join(m["unsupported"]) + ")")
            continue
        lines += [f"  - name: {_scalar(m['name'])}", f"    node_id: {_scalar(m['node_id'])}",
                  f"    inputs: {_flow(m['inputs'])}", f"    outputs: {_flow(m['outputs'])}",
                  "    action: CHOOSE    # sum | echo, as the device's documentation says"]
    return _comments([_printable(line) for line in lines], 2)


def probe_opcua_to_file(target: Target, path: Path, progress: Callable[[str], None] = lambda m: None) -> str:
    """Probe `target`, write the draft profile to `path`; a one-line summary of what was found.
    Raises OpcuaProbeError when the server cannot be probed (nothing is written then)."""
    draft = probe_opcua(target, progress)
    text = render_draft(draft)
    Path(path).write_text(text, encoding="utf-8")
    try:
        parse_profile(text, str(path))
    except ProfileError as exc:  # a bug of the probe, or a device beyond what it drafts: say so
        progress(f"the draft does not load as a profile yet, fix it by hand: {exc}")
    opcua = draft.opcua
    security = ", ".join(f"{c['policy']}" + ("" if c["policy"] == "None" else f" {'/'.join(c['modes'])}") for c in opcua["security"])
    return (f"object {opcua['object']['name']} in {opcua['namespace']}: {len(draft.points)} points, "
            f"{len(draft.methods)} methods (commented out); security {security}; user tokens {', '.join(opcua['user_tokens'])}")
