"""The OPC UA server under test as the suite sees it, and the checks every case shares.

`UaDut` knows the target (host, port, endpoint URL), the profile's OPC UA claims and the
catalogue's conformance units, so a case is NOT_APPLICABLE exactly when none of its
requirements' units is claimed (by the claimed Part 7 profile, by `opcua.conformance_units`,
or implied: writable points claim "Attribute Write Values", writable arrays "Attribute Write
Index", a username token "User Token – User Name Password").

Cases are plain functions that hand a coroutine to `dut.run`, which bounds it with a timeout:

    @case("UA-READ-UNKNOWN-NODE", ...)
    def test_unknown_node(dut):
        async def check():
            async with dut.session() as s:
                reply = await s.read([dut.ns_node("s=Nope")])
                ...
        dut.run(check())

Every channel opened here records its frames into the case's evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from harness.certs import harness_client_certificate
from harness.conformance import fail, inconclusive, not_applicable
from harness.model import Evidence
from harness.opcua import UaChannel, ua
from harness.opcua.discovery import endpoint_certificate, get_endpoints, select_endpoint
from harness.opcua.errors import UaTransportError
from harness.opcua.raw import RawUacpConnection
from harness.opcua.summary import status_text as status_name
from harness.opcua.login import SessionRefused, SessionSecurity, open_session
from harness.opcua.session import close_session
from harness.profile import Point, Profile
from harness.profile_opcua import OpcuaSection
from harness.requirements import Catalogue, suite_catalogue
from harness.target import Target

P4 = "OPC 10000-4 Part 4 v1.04"
P5 = "OPC 10000-5 Part 5 v1.04"
P6 = "OPC 10000-6 Part 6 v1.05"
P3 = "OPC 10000-3 Part 3 v1.04"
CASE_TIMEOUT_S = 60.0

_CATALOGUE: Catalogue | None = None


def catalogue() -> Catalogue:
    global _CATALOGUE
    if _CATALOGUE is None:
        _CATALOGUE = suite_catalogue("opcua")
    return _CATALOGUE


def result_of(reply) -> ua.StatusCode:
    """The ServiceResult of any response (a ServiceFault included)."""
    return reply.ResponseHeader.ServiceResult


def claimed_units(section: OpcuaSection, profile: Profile) -> set[str]:
    units = set(catalogue().profiles[section.server_profile].units) | set(section.conformance_units)
    if any(p.writable for p in profile.points):
        units.add("Attribute Write Values")
    if any(p.writable and p.array for p in profile.points):
        units.add("Attribute Write Index")
    if section.secure_claims():  # claiming secured endpoints claims what they are made of
        units |= {"Security Policy Required", "Security Default ApplicationInstance Certificate"}
    if "username" not in section.user_tokens:
        units.discard("User Token – User Name Password")
    else:
        units.add("User Token – User Name Password")
    return units


@dataclass
class Session:
    """An activated session on a channel, with the service calls cases use most."""

    channel: UaChannel
    create: object
    activate: object

    async def request(self, req, timeout: float | None = None):
        return await self.channel.request(req, timeout=timeout)

    async def read(self, nodes: Iterable[ua.NodeId], attribute=ua.AttributeIds.Value, index_range: str | None = None):
        req = ua.ReadRequest()
        req.Parameters.TimestampsToReturn = ua.TimestampsToReturn.Both
        for node in nodes:
            item = ua.ReadValueId()
            item.NodeId = node
            item.AttributeId = attribute
            if index_range is not None:
                item.IndexRange = index_range
            req.Parameters.NodesToRead.append(item)
        return await self.channel.request(req)

    async def write(self, items: Iterable[tuple[ua.NodeId, ua.Variant]], index_range: str | None = None):
        req = ua.WriteRequest()
        for node, variant in items:
            item = ua.WriteValue()
            item.NodeId = node
            item.AttributeId = ua.AttributeIds.Value
            item.Value = ua.DataValue(variant)
            if index_range is not None:
                item.IndexRange = index_range
            req.Parameters.NodesToWrite.append(item)
        return await self.channel.request(req)

    async def value(self, node: ua.NodeId):
        """The Value of one node; FAIL when the server does not return a good one."""
        reply = await self.read([node])
        if not isinstance(reply, ua.ReadResponse) or not reply.Results or not reply.Results[0].StatusCode.is_good():
            fail(f"reading {node.to_string()} did not succeed", expected="a ReadResponse with a Good value", observed=describe(reply))
        return reply.Results[0].Value


class UaDut:
    """The OPC UA server under test, seen through its profile."""

    def __init__(self, target: Target, profile: Profile, evidence: Evidence, case_requirements: list[str]):
        if target.protocol != "opcua":
            not_applicable(f"the OPC UA suite needs an opc.tcp:// target, not {target.scheme}")
        if profile.opcua is None:
            not_applicable("the profile has no opcua section")
        self.target, self.profile, self.evidence = target, profile, evidence
        self.ua: OpcuaSection = profile.opcua
        self.host, self.port = target.host, target.port
        self.url = f"opc.tcp://{target.host}:{target.port}{target.path}"
        self.timeout = self.ua.response_timeout_s
        # The target URL may ask for a security policy and mode (?policy=...&mode=...): the
        # sessions of every case then run over it (cases about security pick their own).
        self.policy = target.params.get("policy", "None")
        self.mode = target.params.get("mode") or (None if self.policy == "None" else "SignAndEncrypt")
        self.user = target.params.get("user")  # sessions log in as this profile user when given
        self.units = claimed_units(self.ua, profile)
        self._ns: int | None = None
        self._check_units(case_requirements)

    # ---------------------------------------------------------------- claims

    def _check_units(self, requirement_ids: list[str]) -> None:
        cat = catalogue()
        units = {cat[r].conformance_unit for r in requirement_ids if r in cat and cat[r].conformance_unit}
        if units and not units & self.units:
            title = cat.profiles[self.ua.server_profile].title
            not_applicable(f"conformance unit {', '.join(sorted(units))} is neither in the claimed {title} "
                           f"nor among the claimed conformance units")

    def point(self, predicate, why: str) -> Point:
        """The first point the predicate accepts; NOT_APPLICABLE (saying `why`) if none does."""
        for p in self.profile.points:
            if predicate(p):
                return p
        not_applicable(f"the profile has no {why}")

    # ---------------------------------------------------------------- running

    def run(self, coro, timeout: float = CASE_TIMEOUT_S):
        """Run a case's coroutine with a hard time limit (a stalled server ends as FAIL)."""
        async def bounded():
            try:
                return await asyncio.wait_for(coro, timeout)
            except asyncio.TimeoutError:
                fail(f"the case did not finish within {timeout:g} s: the server stalled")

        return asyncio.run(bounded())

    def record(self, frame) -> None:
        self.evidence.frames.append(frame)

    # ---------------------------------------------------------------- connections

    async def raw(self, timeout: float | None = None) -> RawUacpConnection:
        try:
            return await RawUacpConnection.open(self.host, self.port, record=self.record, timeout=timeout or self.timeout)
        except UaTransportError as exc:
            inconclusive(f"could not connect to {self.host}:{self.port}: {exc}")

    async def endpoints(self) -> list[ua.EndpointDescription]:
        reply = await get_endpoints(self.host, self.port, self.url, timeout=self.timeout, record=self.record)
        if not isinstance(reply, ua.GetEndpointsResponse):
            fail("GetEndpoints did not succeed", expected="a GetEndpointsResponse", observed=describe(reply))
        return list(reply.Endpoints)

    async def open_channel(self, policy: str | None = None, mode: str | None = None, **options) -> UaChannel:
        """An open channel (default: the target's policy and mode); secured ones use the harness certificate."""
        if policy is None:
            policy, mode = self.policy, mode or self.mode
        if policy != "None":
            endpoint = select_endpoint(await self.endpoints(), policy, mode or "SignAndEncrypt")
            if endpoint is None:
                fail(f"no endpoint offers {policy} {mode}", expected=f"an endpoint for the claimed {policy} {mode}",
                     observed="none in GetEndpoints")
            pair = harness_client_certificate()
            options.setdefault("certificate", pair.cert_path)
            options.setdefault("private_key", pair.key_path)
            options.setdefault("server_certificate", endpoint_certificate(endpoint))
        channel = UaChannel(self.host, self.port, self.url, policy=policy, mode=mode, timeout=self.timeout,
                            record=self.record, **options)
        await channel.open()
        return channel

    @contextlib.asynccontextmanager
    async def session(self, policy: str | None = None, mode: str | None = None, user: str | None = None) -> AsyncIterator[Session]:
        """An activated session (anonymous, or as the profile's `user`), closed afterwards.

        Default policy and mode: the target's (`?policy=&mode=`), else None.  A login step the
        server answers badly is a FAIL."""
        try:
            opened = await open_session(self.host, self.port, self.url, self.login_security(policy, mode, user), self.timeout,
                                        record=self.record)
        except SessionRefused as exc:
            fail(exc.headline, expected=exc.expected, observed=exc.observed)
        channel = opened.channel
        try:
            yield Session(channel, opened.created, opened.activated)
            with contextlib.suppress(UaTransportError):
                await close_session(channel)
        finally:
            with contextlib.suppress(UaTransportError):
                await channel.close()

    def login_security(self, policy: str | None = None, mode: str | None = None, user: str | None = None) -> SessionSecurity:
        """How to log in (default: as the target asks, `?policy=&mode=&user=`): the harness's
        client certificate on a secured policy, the profile's password for a user."""
        if policy is None:
            policy, mode = self.policy, mode or self.mode
        user = user if user is not None else self.user
        password = self.password(user) if user is not None else None
        if policy == "None":
            return SessionSecurity(user=user, password=password)
        pair = harness_client_certificate()
        return SessionSecurity(policy, mode, pair.cert_path, pair.key_path, user, password)

    def password(self, user: str) -> str:
        for u in self.ua.users:
            if u.name == user:
                return u.password
        not_applicable(f"the profile lists no password for user {user}")

    # ---------------------------------------------------------------- nodes

    async def ns(self, session: Session) -> int:
        """The server's index of the device namespace (read from NamespaceArray)."""
        if self._ns is None:
            array = (await session.value(ua.NodeId(ua.ObjectIds.Server_NamespaceArray))).Value
            if self.ua.namespace not in array:
                fail(f"the device namespace {self.ua.namespace} is not in the NamespaceArray",
                     expected=self.ua.namespace, observed=repr(array))
            self._ns = array.index(self.ua.namespace)
        return self._ns

    async def node(self, session: Session, identifier: str) -> ua.NodeId:
        return ua.NodeId.from_string(f"ns={await self.ns(session)};{identifier}")


def describe(reply) -> str:
    """A reply in one line for the evidence: type, service result, per-item results."""
    if reply is None:
        return "no reply"
    name = type(reply).__name__
    header = getattr(reply, "ResponseHeader", None)
    text = f"{name} {status_name(header.ServiceResult)}" if header is not None else name
    results = getattr(reply, "Results", None)
    if isinstance(results, list) and results:
        shown = []
        for r in results[:8]:
            code = getattr(r, "StatusCode", r)
            shown.append(status_name(code) if isinstance(code, (ua.StatusCode, int)) else type(r).__name__)
        text += f" [{', '.join(shown)}{', ...' if len(results) > 8 else ''}]"
    return text


def expect_status(observed: ua.StatusCode | int, allowed: Iterable[int], what: str) -> None:
    """FAIL unless `observed` is one of the allowed codes; the evidence names both sides."""
    allowed = list(allowed)
    value = observed.value if isinstance(observed, ua.StatusCode) else int(observed)
    if value not in allowed:
        fail(f"{what}: {status_name(value)}", expected=" or ".join(status_name(a) for a in allowed), observed=status_name(value))
