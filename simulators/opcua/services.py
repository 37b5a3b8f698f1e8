"""The simulator's conformance layer over asyncua's service processing (OPC UA Part 4 v1.04).

A plain `asyncua.Server` deviates from Part 4 in ways a reference device must not (the suite
finds each of them in a plain asyncua server; see README "Findings").  `ConformantProcessor`
replaces asyncua's `UaProcessor` per connection and handles, before asyncua sees them:

- every request that needs a session: the AuthenticationToken must be the session's (§7.28
  RequestHeader; a never-issued or another session's token gets Bad_SessionIdInvalid), and a
  closed session's requests get Bad_SessionIdInvalid (§5.6.4);
- Read and Write of the device's points: Bad_NothingToDo for an empty request,
  Bad_TooManyOperations above the claimed OperationLimits (§7.34 common codes), per item
  Bad_NodeIdUnknown (§5.10.2.2/§5.10.4.2), Bad_AttributeIdInvalid, IndexRange (§7.22) with
  Bad_IndexRangeInvalid / Bad_IndexRangeNoData, Bad_NotWritable, Bad_TypeMismatch and
  Bad_OutOfRange (§5.10.4.2); a written value goes to the device model, so the Modbus face
  and subscriptions see it;
- Call (§5.11.2): the method must exist and belong to the object (Bad_MethodInvalid),
  Bad_ArgumentsMissing, Bad_TooManyArguments, and Bad_InvalidArgument with a Bad_TypeMismatch
  per wrongly typed argument; the profile's action computes the outputs;
- Hello: the Acknowledge's buffer sizes in the right fields (Part 6 §7.1.2.4);
- ActivateSession with a user name: only the profile's users with their passwords
  (Bad_UserAccessDenied otherwise); no "admin" bypass.

View services (Browse, BrowseNext, TranslateBrowsePathsToNodeIds, RegisterNodes) are in
`view_services`, subscription services in `subscription_services`.  Everything else goes to
asyncua unchanged.
"""

from __future__ import annotations

import logging

from asyncua import ua
from cryptography import x509
from asyncua.server.internal_session import SessionState
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import struct_from_binary, uatcp_to_binary

from harness.profile_opcua import OpcuaSection, point_ua_type

from ..device_model import DeviceModel, PointValueError
from .device_nodes import DeviceNodes, variant_type
from .index_range import IndexRangeError, apply_read_range, apply_write_range, parse_index_range
from .subscription_services import handle as handle_subscription_service
from .view_services import handle as handle_view_service

log = logging.getLogger("simulators.opcua")

SESSIONLESS = {
    ua.NodeId(getattr(ua.ObjectIds, f"{name}Request_Encoding_DefaultBinary"))
    for name in ("CreateSession", "ActivateSession", "CloseSession", "FindServers", "GetEndpoints",
                 "RegisterServer", "RegisterServer2", "CloseSecureChannel")
}
_ID = {name: ua.NodeId(getattr(ua.ObjectIds, f"{name}Request_Encoding_DefaultBinary"))
       for name in ("Read", "Write", "Call", "CloseSession", "ActivateSession")}
_ATTRIBUTE_IDS = frozenset(a.value for a in ua.AttributeIds)
# Service sets handled in their own modules: each `handle(processor, typeid, requesthdr,
# seqhdr, body)` answers and returns True, or returns False to leave the request to asyncua.
EXTENSIONS = (handle_view_service, handle_subscription_service)


def status(code: int) -> ua.StatusCode:
    return ua.StatusCode(code)


class DeviceContext:
    """What the service layer needs of the simulated device, shared by all connections."""

    def __init__(self, section: OpcuaSection, nodes: DeviceNodes, model: DeviceModel):
        self.section = section
        self.nodes = nodes
        self.model = model
        self.limits = section.limits
        self.passwords = {u.name: u.password for u in section.users}


class ConformantProcessor(UaProcessor):
    device: DeviceContext  # set by the server before the first connection
    faults: frozenset[str] = frozenset()  # deliberate defects (simulators.opcua.faults)

    async def process(self, header, body):
        if header.MessageType == ua.MessageType.Hello:
            # asyncua computes the right limits but writes them into the wrong Acknowledge
            # fields (Part 6 §7.1.2.4: the server's ReceiveBufferSize is bounded by the
            # client's SendBufferSize, and the reverse); send the fields the right way round.
            hello = self._connection.receive_from_header_and_body(header, body)
            ack = self._limits.create_acknowledge_and_set_limits(hello)
            if "ua-ack-swapped" not in self.faults:
                ack.ReceiveBufferSize, ack.SendBufferSize = ack.SendBufferSize, ack.ReceiveBufferSize
            self._transport.write(uatcp_to_binary(ua.MessageType.Acknowledge, ack))
            return True
        if header.MessageType == ua.MessageType.SecureOpen and not self._connection.is_open():
            peek = body.copy(header.body_size)
            try:
                return await super().process(header, body)
            except Exception as exc:  # noqa: BLE001 - asyncua raises where Part 6 wants an Error message
                self._refuse_open(peek, exc)
                return False
        return await super().process(header, body)

    def _refuse_open(self, peek, exc: Exception) -> None:
        """An OpenSecureChannel asyncua could not accept: Error message, then close (Part 6 v1.05
        §6.7.6), with the Part 4 Table 12 code for what was wrong."""
        try:
            header = struct_from_binary(ua.AsymmetricAlgorithmHeader, peek)
        except Exception:  # noqa: BLE001 - undecodable security header
            header = None
        offered = {factory.cls.URI for factory in self._connection._policies}
        if header is None:
            code = ua.StatusCodes.BadDecodingError
        elif header.SecurityPolicyURI not in offered:
            code = ua.StatusCodes.BadSecurityPolicyRejected
        elif header.SenderCertificate and not _parses_as_certificate(header.SenderCertificate):
            code = ua.StatusCodes.BadCertificateInvalid
        elif "No matching policy" in str(exc):
            code = ua.StatusCodes.BadSecurityModeRejected
        else:
            code = ua.StatusCodes.BadSecurityChecksFailed
        log.info("refusing OpenSecureChannel from %s: %s (%s)", self.name, ua.StatusCode(code).name, exc)
        self._transport.write(uatcp_to_binary(ua.MessageType.Error, ua.ErrorMessage(ua.StatusCode(code), "OpenSecureChannel refused")))
        self._transport.close()

    async def _process_message(self, typeid, requesthdr, seqhdr, body):
        if typeid not in SESSIONLESS:
            problem = self._session_problem(requesthdr)
            if problem is not None:
                self._fault(requesthdr, seqhdr, problem)
                return True
        if typeid == _ID["Read"]:
            self._respond(requesthdr, seqhdr, self._read(struct_from_binary(ua.ReadParameters, body)), ua.ReadResponse)
            return True
        if typeid == _ID["Write"]:
            self._respond(requesthdr, seqhdr, await self._write(struct_from_binary(ua.WriteParameters, body)), ua.WriteResponse)
            return True
        if typeid == _ID["Call"]:
            self._respond(requesthdr, seqhdr, self._call(struct_from_binary(ua.CallParameters, body)), ua.CallResponse)
            return True
        if typeid == _ID["ActivateSession"] and not self._token_policy_known(body.copy()):
            self._fault(requesthdr, seqhdr, ua.StatusCodes.BadIdentityTokenInvalid)
            return True
        for extension in EXTENSIONS:
            if await extension(self, typeid, requesthdr, seqhdr, body):
                return True
        result = await super()._process_message(typeid, requesthdr, seqhdr, body)
        if typeid == _ID["CloseSession"] and self.session is not None and not self.session.is_activated():
            self.session = None  # later requests on this channel: Bad_SessionIdInvalid
        return result

    # ------------------------------------------------------------------ plumbing

    def _token_policy_known(self, body) -> bool:
        """The identity token names a UserTokenPolicy this channel's endpoint offers (§7.36)."""
        try:
            params = struct_from_binary(ua.ActivateSessionParameters, body)
        except Exception:  # noqa: BLE001 - asyncua answers the undecodable request itself
            return True
        token = params.UserIdentityToken
        policy_id = getattr(token, "PolicyId", None)
        if not policy_id:
            return True  # a null token means anonymous (§5.6.3.2); asyncua checks the type
        channel_policy = self._connection.security_policy.URI
        for endpoint in self.iserver.endpoints:
            if endpoint.SecurityPolicyUri == channel_policy:
                if any(p.PolicyId == policy_id for p in endpoint.UserIdentityTokens):
                    return True
        return False

    def _session_problem(self, requesthdr) -> int | None:
        if self.session is None:
            return ua.StatusCodes.BadSessionIdInvalid
        if requesthdr.AuthenticationToken != self.session.auth_token and "ua-any-auth-token" not in self.faults:
            return ua.StatusCodes.BadSessionIdInvalid
        if self.session.state == SessionState.Closed:  # closed by the client or by its timeout
            return ua.StatusCodes.BadSessionIdInvalid
        if not self.session.is_activated():
            return ua.StatusCodes.BadSessionNotActivated
        return None

    def _fault(self, requesthdr, seqhdr, code: int) -> None:
        response = ua.ServiceFault()
        response.ResponseHeader.ServiceResult = status(code)
        self.send_response(requesthdr.RequestHandle, seqhdr, response)

    def _respond(self, requesthdr, seqhdr, outcome, response_type) -> None:
        if isinstance(outcome, int):  # a service-level fault
            self._fault(requesthdr, seqhdr, outcome)
            return
        if self.session is not None:
            self.session.touch()
        response = response_type()
        response.Results = outcome
        self.send_response(requesthdr.RequestHandle, seqhdr, response)

    def _too_many(self, count: int, limit_name: str) -> int | None:
        if count == 0:
            return ua.StatusCodes.BadNothingToDo
        limit = self.device.limits.get(limit_name, 0)
        if limit and count > limit:
            return ua.StatusCodes.BadTooManyOperations
        return None

    # ------------------------------------------------------------------ Read (§5.10.2)

    def _read(self, params: ua.ReadParameters):
        fault = self._too_many(len(params.NodesToRead), "max_nodes_per_read")
        if fault is not None:
            return fault
        if params.MaxAge < 0:
            return ua.StatusCodes.BadMaxAgeInvalid
        if params.TimestampsToReturn not in (0, 1, 2, 3, 4):
            return ua.StatusCodes.BadTimestampsToReturnInvalid
        aspace = self.iserver.aspace
        results = []
        for item in params.NodesToRead:
            if item.NodeId not in aspace:
                unknown = ua.StatusCodes.BadNodeIdInvalid if "ua-node-id-invalid" in self.faults else ua.StatusCodes.BadNodeIdUnknown
                results.append(ua.DataValue(StatusCode=status(unknown)))
                continue
            if item.AttributeId not in _ATTRIBUTE_IDS:
                results.append(ua.DataValue(StatusCode=status(ua.StatusCodes.BadAttributeIdInvalid)))
                continue
            if item.DataEncoding and item.DataEncoding.Name and item.AttributeId != ua.AttributeIds.Value:
                results.append(ua.DataValue(StatusCode=status(ua.StatusCodes.BadDataEncodingInvalid)))
                continue
            value = aspace.read_attribute_value(item.NodeId, ua.AttributeIds(item.AttributeId))
            if item.IndexRange and "ua-ignore-index-range" not in self.faults:
                value = self._read_range(value, item)
            results.append(_with_timestamps(value, params.TimestampsToReturn))
        return results

    def _read_range(self, value: ua.DataValue, item: ua.ReadValueId) -> ua.DataValue:
        try:
            ranges = parse_index_range(item.IndexRange)
        except IndexRangeError:
            return ua.DataValue(StatusCode=status(ua.StatusCodes.BadIndexRangeInvalid))
        if item.AttributeId != ua.AttributeIds.Value or value.Value is None:
            return ua.DataValue(StatusCode=status(ua.StatusCodes.BadIndexRangeNoData))
        try:
            sub = apply_read_range(value.Value.Value, ranges)
        except IndexRangeError as exc:
            return ua.DataValue(StatusCode=status(exc.status))
        return ua.DataValue(ua.Variant(sub, value.Value.VariantType, is_array=isinstance(sub, list) or None),
                            SourceTimestamp=value.SourceTimestamp, ServerTimestamp=value.ServerTimestamp)

    # ------------------------------------------------------------------ Write (§5.10.4)

    async def _write(self, params: ua.WriteParameters):
        fault = self._too_many(len(params.NodesToWrite), "max_nodes_per_write")
        if fault is not None:
            return fault
        results: list[ua.StatusCode] = []
        for item in params.NodesToWrite:
            results.append(status(await self._write_one(item)))
        return results

    async def _write_one(self, item: ua.WriteValue) -> int:
        aspace = self.iserver.aspace
        if item.NodeId not in aspace:
            return ua.StatusCodes.BadNodeIdUnknown
        if item.AttributeId not in _ATTRIBUTE_IDS:
            return ua.StatusCodes.BadAttributeIdInvalid
        point = self.device.nodes.points.get(item.NodeId)
        if point is None:
            # Not one of the device's points: standard nodes are read-only to clients here.
            return ua.StatusCodes.BadNotWritable
        if item.AttributeId != ua.AttributeIds.Value or not point.writable:
            return ua.StatusCodes.BadNotWritable
        variant = item.Value.Value if item.Value is not None else None
        if variant is None:
            return ua.StatusCodes.BadTypeMismatch
        if variant.VariantType != variant_type(point_ua_type(point)):
            if "ua-no-type-check" not in self.faults:
                return ua.StatusCodes.BadTypeMismatch
            variant = ua.Variant(_convert(variant.Value, point_ua_type(point)), variant_type(point_ua_type(point)))
        new = variant.Value
        if item.IndexRange:
            try:
                ranges = parse_index_range(item.IndexRange)
                if not point.array:
                    return ua.StatusCodes.BadIndexRangeNoData
                new = apply_write_range(self.device.model.value(point.name), ranges, new)
            except IndexRangeError as exc:
                return exc.status
        elif bool(point.array) != isinstance(new, list):
            return ua.StatusCodes.BadTypeMismatch  # a scalar into an array or the reverse (ValueRank)
        if point.array and len(new) != point.array:
            return ua.StatusCodes.BadOutOfRange
        if item.Value.StatusCode is not None and not item.Value.StatusCode.is_good():
            return ua.StatusCodes.BadWriteNotSupported  # writing a status is an optional CU, not claimed
        try:
            self.device.model.write(point.name, new)
        except PointValueError as exc:
            return ua.StatusCodes.BadOutOfRange if exc.kind == "range" else ua.StatusCodes.BadTypeMismatch
        return ua.StatusCodes.Good

    # ------------------------------------------------------------------ Call (§5.11.2)

    def _call(self, params: ua.CallParameters):
        fault = self._too_many(len(params.MethodsToCall), "max_nodes_per_method_call")
        if fault is not None:
            return fault
        return [self._call_one(request) for request in params.MethodsToCall]

    def _call_one(self, request: ua.CallMethodRequest) -> ua.CallMethodResult:
        result = ua.CallMethodResult()
        nodes = self.device.nodes
        aspace = self.iserver.aspace
        if request.ObjectId not in aspace:
            result.StatusCode = status(ua.StatusCodes.BadNodeIdUnknown)
            return result
        method = nodes.methods.get(request.MethodId)
        if method is None or request.ObjectId != nodes.object_id:
            # §5.11.2.2: not a method, or not one of this object's methods
            result.StatusCode = status(ua.StatusCodes.BadMethodInvalid)
            return result
        args = list(request.InputArguments)
        if "ua-no-argument-check" in self.faults:
            args = (args + [ua.Variant(0.0, variant_type(a.data_type)) for a in method.inputs])[: len(method.inputs)]
        if len(args) < len(method.inputs):
            result.StatusCode = status(ua.StatusCodes.BadArgumentsMissing)
            return result
        if len(args) > len(method.inputs):
            result.StatusCode = status(ua.StatusCodes.BadTooManyArguments)
            return result
        arg_results = []
        for arg, spec in zip(args, method.inputs):
            ok = isinstance(arg, ua.Variant) and arg.VariantType == variant_type(spec.data_type) and not isinstance(arg.Value, list)
            arg_results.append(status(ua.StatusCodes.Good if ok else ua.StatusCodes.BadTypeMismatch))
        if any(not r.is_good() for r in arg_results):
            result.StatusCode = status(ua.StatusCodes.BadInvalidArgument)
            result.InputArgumentResults = arg_results
            return result
        values = [a.Value for a in args]
        if method.action == "sum":
            out_type = method.outputs[0].data_type
            total = sum(values)
            outputs = [ua.Variant(float(total) if out_type in ("Float", "Double") else int(total), variant_type(out_type))]
        else:  # echo
            outputs = [ua.Variant(v, variant_type(a.data_type)) for v, a in zip(values, method.outputs)]
        result.StatusCode = status(ua.StatusCodes.Good)
        result.OutputArguments = outputs
        return result


def _parses_as_certificate(data: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(bytes(data))
    except ValueError:
        return False
    return True


def _convert(value, type_name: str):
    """What a careless server does with a value of the wrong type (fault ua-no-type-check)."""
    try:
        if type_name == "Boolean":
            return bool(value)
        if type_name in ("Float", "Double"):
            return float(value)
        if type_name == "String":
            return str(value)
        return int(value)
    except (TypeError, ValueError):
        return value


def _with_timestamps(value: ua.DataValue, which: int) -> ua.DataValue:
    """Return only the timestamps asked for (§5.10.2.2 timestampsToReturn)."""
    source = value.SourceTimestamp if which in (ua.TimestampsToReturn.Source, ua.TimestampsToReturn.Both) else None
    server = value.ServerTimestamp if which in (ua.TimestampsToReturn.Server, ua.TimestampsToReturn.Both) else None
    if source is value.SourceTimestamp and server is value.ServerTimestamp:
        return value
    return ua.DataValue(value.Value, StatusCode=value.StatusCode, SourceTimestamp=source, ServerTimestamp=server)

