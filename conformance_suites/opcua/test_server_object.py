"""The Server object: ServerStatus, NamespaceArray, ServerCapabilities/OperationLimits, and
the operation limits enforced by the services.

OPC UA Part 5 v1.04 §6.3.1 (ServerType), §6.3.2 (ServerCapabilitiesType), §6.3.11
(OperationLimitsType), §12.6 (ServerState: Running = 0), §12.10 (ServerStatusDataType) and
Part 3 v1.04 §8.2.2 (namespace index 0 is http://opcfoundation.org/UA/); Part 4 v1.04 §7.34.2
Table 177: Bad_TooManyOperations "the request could not be processed because there are too
many operations in the request", listed as a service result of Read (§5.10.2.3), Write
(§5.10.4.3), Call (§5.11.2.3), Browse (§5.8.2.3), TranslateBrowsePathsToNodeIds (§5.8.4.3) and
RegisterNodes (§5.8.5.3).  Nodes are addressed by their standard NodeIds (Part 6 NodeIds.csv).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, datetime, timezone

import pytest

from harness.conformance import case, fail, inconclusive, not_applicable, param
from harness.opcua import ChannelClosed, UaTransportError, ua

from .support import P4, P5, describe, expect_status, result_of, status_name

UA_NAMESPACE = "http://opcfoundation.org/UA/"
O = ua.ObjectIds
RUNNING = 0  # ServerState Running_0 (Part 5 §12.6)
CLOCK_TOLERANCE_S = 60.0  # CurrentTime vs the harness's UTC clock (different machines may drift)
TIME_STEP_S = 0.2  # between reads of CurrentTime
TIME_STEP_MAX_S = 1.6  # how long CurrentTime may stand still (a server may refresh it once a second)
MAX_OPERATIONS_SENT = 20_000  # above this an oversized request is not built
AT_LIMIT_CHECK_MAX = 1000  # a request of exactly the limit is sent up to this many operations
SECONDS_PER_OPERATION = 0.001  # added to the response timeout for each operation of a big request
# Answers that mean the request was too big in bytes, before its operations were counted.
SIZE_REFUSALS = (ua.StatusCodes.BadRequestTooLarge, ua.StatusCodes.BadEncodingLimitsExceeded,
                 ua.StatusCodes.BadTcpMessageTooLarge, ua.StatusCodes.BadResponseTooLarge)

LIMITS = {  # profile key -> OperationLimits property
    "max_nodes_per_read": ("MaxNodesPerRead", O.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead),
    "max_nodes_per_write": ("MaxNodesPerWrite", O.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite),
    "max_nodes_per_browse": ("MaxNodesPerBrowse", O.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse),
    "max_nodes_per_method_call": ("MaxNodesPerMethodCall", O.Server_ServerCapabilities_OperationLimits_MaxNodesPerMethodCall),
}


def _nid(i: int) -> ua.NodeId:
    return ua.NodeId(i)


def _value(result: ua.DataValue):
    return result.Value.Value if result.Value is not None else None


def _fmt(value) -> str:
    return repr(value) if not isinstance(value, datetime) else value.isoformat()


async def _read_values(s, ids: list[int], what: str) -> list:
    """The Values of standard nodes, each of which must be read with Good."""
    reply = await s.read([_nid(i) for i in ids])
    if not isinstance(reply, ua.ReadResponse) or not result_of(reply).is_good() or len(reply.Results) != len(ids):
        fail(f"reading {what} did not succeed", expected="a ReadResponse with one result per node", observed=describe(reply))
    bad = [(i, r.StatusCode) for i, r in zip(ids, reply.Results) if not r.StatusCode.is_good()]
    if bad:
        fail(f"reading {what}: some nodes were not read", expected="Good for every node",
             observed="; ".join(f"i={i}: {status_name(code)}" for i, code in bad))
    return [_value(r) for r in reply.Results]


# ---------------------------------------------------------------- ServerStatus


STATUS_IDS = [
    O.Server_ServerStatus_State,
    O.Server_ServerStatus_CurrentTime,
    O.Server_ServerStatus_StartTime,
    O.Server_ServerStatus_BuildInfo_ProductUri,
    O.Server_ServerStatus_BuildInfo_ManufacturerName,
    O.Server_ServerStatus_BuildInfo_ProductName,
    O.Server_ServerStatus_BuildInfo_SoftwareVersion,
    O.Server_ServerStatus_BuildInfo_BuildNumber,
    O.Server_ServerStatus_BuildInfo_BuildDate,
    O.Server_ServerStatus,
]


def _expected_build_info(dut) -> dict[str, str]:
    device = dut.profile.device
    claims = {
        "ProductUri": dut.ua.product_uri,
        "ManufacturerName": device.get("vendor_name"),
        "ProductName": device.get("product_name"),
        "SoftwareVersion": device.get("revision"),
        "BuildNumber": dut.ua.build_number,
    }
    return {k: str(v) for k, v in claims.items() if v not in (None, "")}


def _build_date(dut) -> date | None:
    try:
        return date.fromisoformat(dut.ua.build_date[:10])
    except (TypeError, ValueError):
        return None


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@case("UA-SERVER-STATUS", "ServerStatus: State Running, CurrentTime advancing in UTC, StartTime before it, "
      "BuildInfo matching the device", requirements=["UA-P5-6.3-SERVER-STATUS"], level="MUST",
      clause=f"{P5} §6.3.1, §12.6, §12.10")
def test_server_status(dut):
    async def check():
        async with dut.session() as s:
            before = datetime.now(timezone.utc)
            values = await _read_values(s, STATUS_IDS, "the ServerStatus variables")
            after = datetime.now(timezone.utc)
            state, current, start, *build, structure = values
            # Read CurrentTime again until it moves on; a server may refresh it only once a second.
            waited = 0.0
            while True:
                await asyncio.sleep(TIME_STEP_S)
                waited += TIME_STEP_S
                (current2,) = await _read_values(s, [O.Server_ServerStatus_CurrentTime], "ServerStatus.CurrentTime")
                if not (isinstance(current, datetime) and isinstance(current2, datetime)):
                    break
                if _utc(current2) > _utc(current) or waited >= TIME_STEP_MAX_S:
                    break
        problems = []
        if state != RUNNING:
            problems.append(f"State is {state!r} (Running is 0)")
        if not isinstance(current, datetime) or not isinstance(start, datetime) or not isinstance(current2, datetime):
            problems.append(f"CurrentTime {current!r} / StartTime {start!r} are not DateTime values")
        else:
            current, current2, start = _utc(current), _utc(current2), _utc(start)
            if current2 <= current:
                problems.append(f"CurrentTime did not advance: {_fmt(current)}, and still {_fmt(current2)} "
                                f"{waited:.1f} s later")
            if not start < current:
                problems.append(f"StartTime {_fmt(start)} is not before CurrentTime {_fmt(current)}")
        fields = ["ProductUri", "ManufacturerName", "ProductName", "SoftwareVersion", "BuildNumber"]
        got = dict(zip(fields, build[:5]))
        expected = _expected_build_info(dut)  # the fields the profile states
        for name in expected:
            if got.get(name) != expected[name]:
                problems.append(f"BuildInfo.{name} is {got.get(name)!r}, the device's is {expected[name]!r}")
        claimed_date = _build_date(dut)
        build_date = build[5]
        if claimed_date is not None and (not isinstance(build_date, datetime) or _utc(build_date).date() != claimed_date):
            problems.append(f"BuildInfo.BuildDate is {_fmt(build_date)}, the device's is {claimed_date.isoformat()}")
        # The ServerStatus variable holds the same in one ServerStatusDataType (§12.10).
        if not isinstance(structure, ua.ServerStatusDataType):
            problems.append(f"ServerStatus is a {type(structure).__name__}, not a ServerStatusDataType")
        else:
            if int(structure.State) != RUNNING:
                problems.append(f"ServerStatus.State in the structure is {structure.State!r}")
            info = structure.BuildInfo
            for name in expected:
                if getattr(info, name, None) != expected[name]:
                    problems.append(f"ServerStatus.BuildInfo.{name} in the structure is {getattr(info, name, None)!r}")
        if problems:
            fail("the Server's ServerStatus is not as the specification and the device's identity require",
                 expected="State 0 (Running), CurrentTime advancing and after StartTime, BuildInfo = "
                          + ", ".join(f"{k} {v!r}" for k, v in expected.items()),
                 observed="; ".join(problems))
        # CurrentTime is UTC (§12.10); a server clock may drift from ours, so only an offset
        # that looks like a time zone is a failure, any other large one is left undecided.
        local = before + (after - before) / 2
        offset = (current - local).total_seconds()
        if abs(offset) > CLOCK_TOLERANCE_S:
            quarter_hours = round(offset / 900)
            if quarter_hours and abs(offset - quarter_hours * 900) <= 120:
                fail("ServerStatus.CurrentTime is off from UTC by a time-zone offset",
                     expected=f"UTC within {CLOCK_TOLERANCE_S:g} s of the harness clock {local.isoformat()}",
                     observed=f"{current.isoformat()} ({offset / 3600:+.2f} h)")
            inconclusive(f"ServerStatus.CurrentTime {current.isoformat()} differs from the harness's UTC clock by "
                         f"{offset:+.0f} s; the rest of ServerStatus is correct, the clocks may not be synchronised")

    dut.run(check())


@case("UA-SERVER-NAMESPACES", "NamespaceArray starts with the OPC UA namespace and holds the device namespace",
      requirements=["UA-P5-6.3-NAMESPACES"], level="MUST", clause=f"{P5} §6.3.1; Part 3 v1.04 §8.2.2")
def test_namespace_array(dut):
    async def check():
        async with dut.session() as s:
            (array,) = await _read_values(s, [O.Server_NamespaceArray], "the NamespaceArray")
        if not isinstance(array, list) or not all(isinstance(u, str) for u in array):
            fail("the NamespaceArray is not an array of strings", expected="String[]", observed=repr(array))
        if not array or array[0] != UA_NAMESPACE:
            fail("NamespaceArray[0] is not the OPC UA namespace", expected=UA_NAMESPACE,
                 observed=repr(array[0] if array else array))
        if dut.ua.namespace not in array:
            fail("the device namespace is not in the NamespaceArray", expected=dut.ua.namespace, observed=repr(array))

    dut.run(check())


# ---------------------------------------------------------------- ServerCapabilities


@case("UA-SERVER-CAPABILITIES", "ServerCapabilities and OperationLimits exist and state the claimed limits",
      requirements=["UA-P5-6.3.2-CAPABILITIES"], level="MUST", clause=f"{P5} §6.3.2, §6.3.11")
def test_server_capabilities(dut):
    async def check():
        objects = [O.Server_ServerCapabilities, O.Server_ServerCapabilities_OperationLimits]
        async with dut.session() as s:
            reply = await s.read([_nid(i) for i in objects], attribute=ua.AttributeIds.NodeClass)
            if not isinstance(reply, ua.ReadResponse) or len(reply.Results) != 2:
                fail("reading the NodeClass of ServerCapabilities and OperationLimits did not succeed",
                     expected="a ReadResponse with two results", observed=describe(reply))
            for name, result in zip(("ServerCapabilities", "ServerCapabilities/OperationLimits"), reply.Results):
                if not result.StatusCode.is_good():
                    fail(f"{name} does not exist", expected=f"the {name} Object", observed=status_name(result.StatusCode))
                if _value(result) != ua.NodeClass.Object:
                    fail(f"{name} is not an Object", expected="NodeClass Object", observed=repr(_value(result)))
            reply = await s.read([_nid(node) for _, node in LIMITS.values()])
        if not isinstance(reply, ua.ReadResponse) or len(reply.Results) != len(LIMITS):
            fail("reading the OperationLimits did not succeed", expected="a ReadResponse with one result per limit",
                 observed=describe(reply))
        problems = []
        for (key, (name, _)), result in zip(LIMITS.items(), reply.Results):
            claimed = dut.ua.limits[key]
            if not result.StatusCode.is_good():
                problems.append(f"{name}: {status_name(result.StatusCode)}")
            elif _value(result) != claimed or result.Value.VariantType != ua.VariantType.UInt32:
                problems.append(f"{name} is {_value(result)!r} ({result.Value.VariantType.name}), claimed {claimed}")
        if problems:
            fail("the OperationLimits do not state the claimed limits",
                 expected=", ".join(f"{name} {dut.ua.limits[key]} (UInt32)" for key, (name, _) in LIMITS.items()),
                 observed="; ".join(problems))

    dut.run(check())


# ---------------------------------------------------------------- Bad_TooManyOperations


def _read_request(n: int) -> ua.ReadRequest:
    req = ua.ReadRequest()
    for _ in range(n):
        item = ua.ReadValueId()
        item.NodeId = _nid(O.Server_ServerStatus_State)
        item.AttributeId = ua.AttributeIds.Value
        req.Parameters.NodesToRead.append(item)
    return req


def _write_request(n: int, build_number) -> ua.WriteRequest:
    # BuildNumber is read-only to clients; even a server that wrote it would keep its value.
    req = ua.WriteRequest()
    for _ in range(n):
        item = ua.WriteValue()
        item.NodeId = _nid(O.Server_ServerStatus_BuildInfo_BuildNumber)
        item.AttributeId = ua.AttributeIds.Value
        item.Value = ua.DataValue(ua.Variant(build_number, ua.VariantType.String))
        req.Parameters.NodesToWrite.append(item)
    return req


def _call_request(n: int) -> ua.CallRequest:
    # Server.GetMonitoredItems(0): a subscription id that cannot exist, so nothing happens.
    req = ua.CallRequest()
    for _ in range(n):
        call = ua.CallMethodRequest()
        call.ObjectId = _nid(O.Server)
        call.MethodId = _nid(O.Server_GetMonitoredItems)
        call.InputArguments = [ua.Variant(0, ua.VariantType.UInt32)]
        req.Parameters.MethodsToCall.append(call)
    return req


def _browse_request(n: int) -> ua.BrowseRequest:
    req = ua.BrowseRequest()
    req.Parameters.RequestedMaxReferencesPerNode = 0
    for _ in range(n):
        item = ua.BrowseDescription()
        item.NodeId = _nid(O.Server_ServerStatus_State)  # a leaf: small replies
        item.BrowseDirection = ua.BrowseDirection.Forward
        item.ReferenceTypeId = _nid(O.HierarchicalReferences)
        item.IncludeSubtypes = True
        item.NodeClassMask = 0
        item.ResultMask = 63
        req.Parameters.NodesToBrowse.append(item)
    return req


def _translate_request(n: int) -> ua.TranslateBrowsePathsToNodeIdsRequest:
    req = ua.TranslateBrowsePathsToNodeIdsRequest()
    for _ in range(n):
        element = ua.RelativePathElement()
        element.ReferenceTypeId = _nid(O.HierarchicalReferences)
        element.IsInverse = False
        element.IncludeSubtypes = True
        element.TargetName = ua.QualifiedName("Server", 0)
        path = ua.BrowsePath()
        path.StartingNode = _nid(O.ObjectsFolder)
        path.RelativePath = ua.RelativePath(Elements=[element])
        req.Parameters.BrowsePaths.append(path)
    return req


def _register_request(n: int) -> ua.RegisterNodesRequest:
    req = ua.RegisterNodesRequest()
    req.Parameters.NodesToRegister = [_nid(O.Server_ServerStatus) for _ in range(n)]
    return req


SERVICES = {
    # name: (OperationLimits property, its NodeId, request builder, Part 4 clause of the service results)
    "Read": ("MaxNodesPerRead", O.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead, _read_request, "§5.10.2.3"),
    "Write": ("MaxNodesPerWrite", O.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite, _write_request, "§5.10.4.3"),
    "Call": ("MaxNodesPerMethodCall", O.Server_ServerCapabilities_OperationLimits_MaxNodesPerMethodCall, _call_request,
             "§5.11.2.3"),
    "Browse": ("MaxNodesPerBrowse", O.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse, _browse_request,
               "§5.8.2.3"),
    "TranslateBrowsePathsToNodeIds": ("MaxNodesPerTranslateBrowsePathsToNodeIds",
                                      O.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds,
                                      _translate_request, "§5.8.4.3"),
    "RegisterNodes": ("MaxNodesPerRegisterNodes", O.Server_ServerCapabilities_OperationLimits_MaxNodesPerRegisterNodes,
                      _register_request, "§5.8.5.3"),
}
CASE_IDS = {"Read": "READ", "Write": "WRITE", "Call": "CALL", "Browse": "BROWSE",
            "TranslateBrowsePathsToNodeIds": "TRANSLATE", "RegisterNodes": "REGISTER"}


async def _advertised_limit(s, service: str) -> int:
    name, node, _, _ = SERVICES[service]
    reply = await s.read([_nid(node)])
    if not isinstance(reply, ua.ReadResponse) or not reply.Results:
        fail(f"reading OperationLimits/{name} did not succeed", expected="a ReadResponse", observed=describe(reply))
    result = reply.Results[0]
    if not result.StatusCode.is_good():
        not_applicable(f"the server advertises no {name} ({status_name(result.StatusCode)}): no limit to exceed")
    value = _value(result)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        fail(f"OperationLimits/{name} is not a UInt32", expected="a UInt32 (0 = no limit)", observed=repr(value))
    if value == 0:
        not_applicable(f"{name} is 0: the server advertises no limit for {service}")
    if value + 1 > MAX_OPERATIONS_SENT:
        inconclusive(f"{name} is {value}: a request above it would have more than {MAX_OPERATIONS_SENT} operations, "
                     "which this suite does not send")
    return value


async def _send(dut, s, req, operations: int, what: str):
    """The reply to a request; a connection closed for the message's size is INCONCLUSIVE.
    A server that processes every operation of a big request needs longer than one small one."""
    try:
        return await s.request(req, timeout=dut.timeout + operations * SECONDS_PER_OPERATION)
    except ChannelClosed as exc:
        error = getattr(exc, "error", None)
        if error is not None and error.error in SIZE_REFUSALS:
            inconclusive(f"{what}: the server closed the connection with {status_name(error.error)}, "
                         "a message size limit, before the operations were counted")
        fail(f"{what}: the server closed the connection", expected="a response or ServiceFault",
             observed=f"{type(exc).__name__}: {exc}")
    except UaTransportError as exc:
        fail(f"{what}: no reply", expected="a response or ServiceFault", observed=f"{type(exc).__name__}: {exc}")


async def _cleanup(s, service: str, reply) -> None:
    """Unregister what an accepted RegisterNodes registered."""
    if service == "RegisterNodes" and isinstance(reply, ua.RegisterNodesResponse) and reply.Parameters.RegisteredNodeIds:
        req = ua.UnregisterNodesRequest()
        req.Parameters.NodesToUnregister = list(reply.Parameters.RegisteredNodeIds)
        with contextlib.suppress(UaTransportError):
            await s.request(req)


@pytest.mark.parametrize(
    "service",
    [
        param(name, id=f"UA-SERVER-TOO-MANY-{CASE_IDS[name]}",
              title=f"{name} with more operations than {limit} is refused with Bad_TooManyOperations",
              requirements=["UA-P4-7.34-TOO-MANY-OPERATIONS"], level="MUST", clause=f"{P4} §7.34.2, {clause}")
        for name, (limit, _, _, clause) in SERVICES.items()
    ],
)
def test_too_many_operations(dut, service):
    if service == "Call" and "Method Call" not in dut.units:
        not_applicable("the device claims no Method Call conformance unit: the Call service is optional")
    limit_name, _, build, _ = SERVICES[service]

    async def check():
        async with dut.session() as s:
            limit = await _advertised_limit(s, service)
            extra = ()
            if service == "Write":
                (build_number,) = await _read_values(s, [O.Server_ServerStatus_BuildInfo_BuildNumber], "BuildInfo.BuildNumber")
                extra = (build_number,)
            over = await _send(dut, s, build(limit + 1, *extra), limit + 1, f"{service} with {limit + 1} operations")
            await _cleanup(s, service, over)
            if result_of(over).value in SIZE_REFUSALS:
                inconclusive(f"{service} with {limit + 1} operations ({limit_name} is {limit}) was refused for its size "
                             f"({describe(over)}) before its operations were counted")
            if not isinstance(over, ua.ServiceFault) and result_of(over).is_good():
                fail(f"{service} with {limit + 1} operations ({limit_name} is {limit}) was processed",
                     expected=status_name(ua.StatusCodes.BadTooManyOperations), observed=describe(over))
            expect_status(result_of(over), [ua.StatusCodes.BadTooManyOperations],
                          f"{service} with {limit + 1} operations ({limit_name} is {limit}) was refused with")
            # The advertised limit itself is allowed: exactly that many is not refused for its
            # count (checked where that request stays small).
            if limit > AT_LIMIT_CHECK_MAX:
                return
            at = await _send(dut, s, build(limit, *extra), limit, f"{service} with {limit} operations")
            await _cleanup(s, service, at)
            if result_of(at).value == ua.StatusCodes.BadTooManyOperations:
                fail(f"{service} with exactly {limit} operations, the advertised {limit_name}, was refused",
                     expected=f"no {status_name(ua.StatusCodes.BadTooManyOperations)} at the limit", observed=describe(at))

    dut.run(check())
