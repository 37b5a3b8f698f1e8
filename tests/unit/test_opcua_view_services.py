"""The simulator's View service set (simulators/opcua/view_services.py) on a small address space.

The requests are encoded as on the wire and handed to `handle` through a stand-in for the
service layer, so decoding, status codes, continuation points and malformed input are all
exercised without a server.
"""

from __future__ import annotations

import random

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.server.address_space import AddressSpace, AttributeValue, NodeData
from asyncua.ua.ua_binary import Primitives, nodeid_to_binary, struct_to_binary

from simulators.opcua import view_services
from simulators.opcua.services import ConformantProcessor

NS = 2
OBJ = ua.NodeId("Meter", NS)
VARS = [ua.NodeId(f"Meter.v{i}", NS) for i in range(3)]
METHOD = ua.NodeId("Meter.Add", NS)
UNIT = ua.NodeId("Meter.v0.EngineeringUnits", NS)
O = ua.ObjectIds


def _i(n: int) -> ua.NodeId:
    return ua.NodeId(n, 0)


def _node(aspace, nodeid, node_class, **attrs) -> NodeData:
    data = NodeData(nodeid)
    data.attributes[ua.AttributeIds.NodeClass] = AttributeValue(ua.DataValue(ua.Variant(int(node_class), ua.VariantType.Int32)))
    for name, variant in attrs.items():
        data.attributes[getattr(ua.AttributeIds, name)] = AttributeValue(ua.DataValue(variant))
    aspace[nodeid] = data
    return data


def _link(aspace, source, reftype, target, name, target_class, typedef=None):
    forward = ua.ReferenceDescription(ReferenceTypeId=_i(reftype), IsForward=True, NodeId=target, BrowseName=name,
                                      DisplayName=ua.LocalizedText(name.Name), NodeClass=target_class,
                                      TypeDefinition=typedef or ua.NodeId())
    aspace[source].references.append(forward)
    src_name = aspace[source].attributes.get(ua.AttributeIds.BrowseName)
    src_class = aspace[source].attributes[ua.AttributeIds.NodeClass].value.Value.Value
    inverse = ua.ReferenceDescription(ReferenceTypeId=_i(reftype), IsForward=False, NodeId=source,
                                      BrowseName=src_name.value.Value.Value if src_name else ua.QualifiedName(),
                                      NodeClass=ua.NodeClass(src_class))
    aspace[target].references.append(inverse)


def build_aspace() -> AddressSpace:
    aspace = AddressSpace()
    # ReferenceTypes (Symmetric=True everywhere, as asyncua stores them)
    tree = {O.References: None, O.HierarchicalReferences: O.References, O.NonHierarchicalReferences: O.References,
            O.HasChild: O.HierarchicalReferences, O.Organizes: O.HierarchicalReferences, O.Aggregates: O.HasChild,
            O.HasSubtype: O.HasChild, O.HasComponent: O.Aggregates, O.HasProperty: O.Aggregates,
            O.HasTypeDefinition: O.NonHierarchicalReferences}
    for ref in tree:
        _node(aspace, _i(ref), ua.NodeClass.ReferenceType, Symmetric=ua.Variant(True),
              BrowseName=ua.Variant(ua.QualifiedName(f"T{ref}", 0)))
    for ref, parent in tree.items():
        if parent is not None:
            _link(aspace, _i(parent), O.HasSubtype, _i(ref), ua.QualifiedName(f"T{ref}", 0), ua.NodeClass.ReferenceType)
    _node(aspace, _i(O.BaseDataVariableType), ua.NodeClass.VariableType, BrowseName=ua.Variant(ua.QualifiedName("BaseDataVariableType", 0)))
    _node(aspace, _i(O.PropertyType), ua.NodeClass.VariableType, BrowseName=ua.Variant(ua.QualifiedName("PropertyType", 0)))
    _node(aspace, _i(O.ObjectsFolder), ua.NodeClass.Object, BrowseName=ua.Variant(ua.QualifiedName("Objects", 0)))
    _node(aspace, OBJ, ua.NodeClass.Object, BrowseName=ua.Variant(ua.QualifiedName("Meter", NS)))
    _link(aspace, _i(O.ObjectsFolder), O.Organizes, OBJ, ua.QualifiedName("Meter", NS), ua.NodeClass.Object)
    for i, var in enumerate(VARS):
        _node(aspace, var, ua.NodeClass.Variable, BrowseName=ua.Variant(ua.QualifiedName(f"v{i}", NS)))
        _link(aspace, OBJ, O.HasComponent, var, ua.QualifiedName(f"v{i}", NS), ua.NodeClass.Variable, _i(O.BaseDataVariableType))
        aspace[var].references.append(ua.ReferenceDescription(ReferenceTypeId=_i(O.HasTypeDefinition), IsForward=True,
                                                              NodeId=_i(O.BaseDataVariableType), NodeClass=ua.NodeClass.VariableType))
    _node(aspace, METHOD, ua.NodeClass.Method, BrowseName=ua.Variant(ua.QualifiedName("Add", NS)))
    _link(aspace, OBJ, O.HasComponent, METHOD, ua.QualifiedName("Add", NS), ua.NodeClass.Method)
    _node(aspace, UNIT, ua.NodeClass.Variable, BrowseName=ua.Variant(ua.QualifiedName("EngineeringUnits", 0)))
    _link(aspace, VARS[0], O.HasProperty, UNIT, ua.QualifiedName("EngineeringUnits", 0), ua.NodeClass.Variable, _i(O.PropertyType))
    return aspace


def _run(coro):
    """Run a coroutine that never suspends (the handlers only compute and send)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the handler suspended")


class _Session:
    def touch(self):
        pass


class _Device:
    def __init__(self, **limits):
        self.limits = {"max_nodes_per_browse": 10, "max_nodes_per_translate": 10, "max_nodes_per_register_nodes": 10,
                       "max_browse_continuation_points": 2, **limits}


class _IServer:
    def __init__(self, aspace):
        self.aspace = aspace


class FakeProcessor:
    """What view_services uses of `ConformantProcessor`, recording what it sends."""

    _too_many = ConformantProcessor._too_many

    def __init__(self, aspace, session=None, **limits):
        self.iserver = _IServer(aspace)
        self.session = session or _Session()
        self.device = _Device(**limits)
        self.sent = []

    def send_response(self, handle, seqhdr, response):
        self.sent.append(response)

    def _fault(self, requesthdr, seqhdr, code):
        fault = ua.ServiceFault()
        fault.ResponseHeader.ServiceResult = ua.StatusCode(code)
        self.sent.append(fault)

    def call(self, request, raw: bytes | None = None):
        """Send `request` (or its TypeId with the raw parameter bytes) and return the reply."""
        body = raw if raw is not None else struct_to_binary(request.Parameters)
        handled = _run(view_services.handle(self, request.TypeId, ua.RequestHeader(), None, Buffer(body)))
        assert handled
        return self.sent.pop()


@pytest.fixture
def proc():
    return FakeProcessor(build_aspace())


def browse_request(*descriptions, max_refs=0):
    req = ua.BrowseRequest()
    req.Parameters.RequestedMaxReferencesPerNode = max_refs
    req.Parameters.NodesToBrowse = list(descriptions)
    return req


def desc(node, direction=ua.BrowseDirection.Forward, reftype=O.HierarchicalReferences, subtypes=True, mask=0, result_mask=0x3F):
    return ua.BrowseDescription(NodeId=node, BrowseDirection=direction, ReferenceTypeId=_i(reftype) if reftype else ua.NodeId(),
                                IncludeSubtypes=subtypes, NodeClassMask=mask, ResultMask=result_mask)


def browse_next(proc, points, release=False):
    req = ua.BrowseNextRequest()
    req.Parameters.ReleaseContinuationPoints = release
    req.Parameters.ContinuationPoints = list(points)
    return proc.call(req)


def codes(results):
    return [r.StatusCode.value for r in results]


def targets(result):
    return {r.NodeId for r in result.References}


# ---------------------------------------------------------------------- Browse


def test_browse_forward_hierarchical(proc):
    (result,) = proc.call(browse_request(desc(OBJ))).Results
    assert result.StatusCode.is_good() and not result.ContinuationPoint
    assert targets(result) == set(VARS) | {METHOD}
    assert all(r.IsForward for r in result.References)


def test_browse_inverse_and_both(proc):
    inverse, both = proc.call(browse_request(desc(VARS[0], ua.BrowseDirection.Inverse), desc(VARS[0], ua.BrowseDirection.Both))).Results
    assert targets(inverse) == {OBJ} and not inverse.References[0].IsForward
    assert targets(both) == {OBJ, UNIT}


def test_browse_filters(proc):
    comp, prop, all_refs, methods = proc.call(browse_request(
        desc(VARS[0], reftype=O.HasComponent, subtypes=False), desc(VARS[0], reftype=O.HasProperty, subtypes=False),
        desc(VARS[0], reftype=None), desc(OBJ, mask=int(ua.NodeClass.Method)))).Results
    assert targets(comp) == set()
    assert targets(prop) == {UNIT}
    assert targets(all_refs) == {UNIT, _i(O.BaseDataVariableType)}  # forward only
    assert targets(methods) == {METHOD}


def test_browse_aggregates_subtypes(proc):
    with_sub, without = proc.call(browse_request(desc(OBJ, reftype=O.Aggregates), desc(OBJ, reftype=O.Aggregates, subtypes=False))).Results
    assert targets(with_sub) == set(VARS) | {METHOD}
    assert targets(without) == set()


def test_symmetric_attribute_of_asyncua_is_not_trusted(proc):
    # Every type in this space says Symmetric=True (as asyncua's do): inverse refs stay inverse.
    (result,) = proc.call(browse_request(desc(VARS[1], reftype=None))).Results
    assert targets(result) == {_i(O.BaseDataVariableType)}


def test_result_mask(proc):
    (result,) = proc.call(browse_request(desc(OBJ, result_mask=0x08))).Results
    ref = result.References[0]
    assert ref.BrowseName.Name and ref.NodeId in set(VARS) | {METHOD}
    assert ref.ReferenceTypeId == ua.NodeId() and ref.NodeClass == 0 and not ref.DisplayName.Text


def test_browse_status_codes(proc):
    reply = proc.call(browse_request(desc(ua.NodeId("nope", NS)), desc(OBJ, ua.BrowseDirection.Invalid),
                                     desc(OBJ, reftype=O.ObjectsFolder), desc(OBJ, reftype=999_999)))
    S = ua.StatusCodes
    assert codes(reply.Results) == [S.BadNodeIdUnknown, S.BadBrowseDirectionInvalid, S.BadReferenceTypeIdInvalid, S.BadReferenceTypeIdInvalid]


def test_browse_direction_outside_the_enum(proc):
    # asyncua's decoder refuses 7; the simulator decodes the raw Int32 and answers per operation.
    body = struct_to_binary(ua.ViewDescription()) + Primitives.UInt32.pack(0) + Primitives.Int32.pack(1)
    body += nodeid_to_binary(OBJ) + Primitives.Int32.pack(7) + nodeid_to_binary(_i(O.HierarchicalReferences))
    body += Primitives.Boolean.pack(True) + Primitives.UInt32.pack(0) + Primitives.UInt32.pack(0x3F)
    reply = proc.call(ua.BrowseRequest(), raw=body)
    assert codes(reply.Results) == [ua.StatusCodes.BadBrowseDirectionInvalid]


def test_browse_service_faults(proc):
    S = ua.StatusCodes
    assert proc.call(browse_request()).ResponseHeader.ServiceResult.value == S.BadNothingToDo
    assert proc.call(browse_request(*[desc(OBJ)] * 11)).ResponseHeader.ServiceResult.value == S.BadTooManyOperations
    req = browse_request(desc(OBJ))
    req.Parameters.View.ViewId = ua.NodeId(1234, NS)
    assert proc.call(req).ResponseHeader.ServiceResult.value == S.BadViewIdUnknown


# ---------------------------------------------------------------------- continuation points


def test_continuation_walk(proc):
    (first,) = proc.call(browse_request(desc(OBJ), max_refs=1)).Results
    walked, point = list(first.References), first.ContinuationPoint
    assert len(walked) == 1 and point
    while point:
        (nxt,) = browse_next(proc, [point]).Parameters.Results
        assert nxt.StatusCode.is_good() and len(nxt.References) == 1
        walked.extend(nxt.References)
        last, point = point, nxt.ContinuationPoint
    assert sorted(r.NodeId.to_string() for r in walked) == sorted(n.to_string() for n in VARS + [METHOD])
    assert codes(browse_next(proc, [last]).Parameters.Results) == [ua.StatusCodes.BadContinuationPointInvalid]


def test_continuation_release_and_unknown(proc):
    (first,) = proc.call(browse_request(desc(OBJ), max_refs=1)).Results
    released = browse_next(proc, [first.ContinuationPoint, b"nope"], release=True).Parameters.Results
    assert codes(released) == [0, ua.StatusCodes.BadContinuationPointInvalid] and not released[0].References
    assert codes(browse_next(proc, [first.ContinuationPoint]).Parameters.Results) == [ua.StatusCodes.BadContinuationPointInvalid]
    assert codes(browse_next(proc, [b""]).Parameters.Results) == [ua.StatusCodes.BadContinuationPointInvalid]
    assert browse_next(proc, []).ResponseHeader.ServiceResult.value == ua.StatusCodes.BadNothingToDo


def test_continuation_points_are_per_session(proc):
    (first,) = proc.call(browse_request(desc(OBJ), max_refs=1)).Results
    other = FakeProcessor(proc.iserver.aspace)
    assert codes(browse_next(other, [first.ContinuationPoint]).Parameters.Results) == [ua.StatusCodes.BadContinuationPointInvalid]
    assert browse_next(proc, [first.ContinuationPoint]).Parameters.Results[0].StatusCode.is_good()


def test_continuation_point_limit(proc):
    results = proc.call(browse_request(desc(OBJ), desc(OBJ), desc(OBJ), desc(VARS[2]), max_refs=1)).Results
    S = ua.StatusCodes
    # limit 2: two points, then Bad_NoContinuationPoints for operations that need one; VARS[2] needs none
    assert codes(results) == [0, 0, S.BadNoContinuationPoints, 0]
    held = [r.ContinuationPoint for r in results[:2]]
    assert len(set(held)) == 2 and not results[3].ContinuationPoint
    # a new request frees the oldest of the earlier ones
    (fresh,) = proc.call(browse_request(desc(OBJ), max_refs=1)).Results
    assert fresh.ContinuationPoint
    assert codes(browse_next(proc, held).Parameters.Results) == [S.BadContinuationPointInvalid, 0]
    # continuing never needs a new slot
    (again,) = browse_next(proc, [fresh.ContinuationPoint]).Parameters.Results
    assert again.StatusCode.is_good() and again.ContinuationPoint


# ---------------------------------------------------------------------- TranslateBrowsePathsToNodeIds


def path(start, *names, reftype=O.HierarchicalReferences):
    p = ua.BrowsePath(StartingNode=start)
    for name in names:
        p.RelativePath.Elements.append(ua.RelativePathElement(ReferenceTypeId=_i(reftype), IsInverse=False, IncludeSubtypes=True,
                                                              TargetName=name or ua.QualifiedName()))
    return p


def translate(proc, *paths):
    req = ua.TranslateBrowsePathsToNodeIdsRequest()
    req.Parameters.BrowsePaths = list(paths)
    return proc.call(req)


def test_translate(proc):
    objects = _i(O.ObjectsFolder)
    reply = translate(proc, path(objects, ua.QualifiedName("Meter", NS), ua.QualifiedName("v1", NS)),
                      path(objects, ua.QualifiedName("Meter", NS), ua.QualifiedName("nope", NS)),
                      path(objects), path(ua.NodeId("nope", NS), ua.QualifiedName("Meter", NS)),
                      path(objects, None, ua.QualifiedName("v1", NS)),
                      path(objects, ua.QualifiedName("Meter", NS), None))
    S = ua.StatusCodes
    assert codes(reply.Results) == [0, S.BadNoMatch, S.BadNothingToDo, S.BadNodeIdUnknown, S.BadBrowseNameInvalid, 0]
    (target,) = reply.Results[0].Targets
    assert target.TargetId == VARS[1] and target.RemainingPathIndex == 0xFFFFFFFF
    assert {t.TargetId for t in reply.Results[5].Targets} == set(VARS) | {METHOD}  # empty last name: every target


def test_translate_service_faults(proc):
    S = ua.StatusCodes
    assert translate(proc).ResponseHeader.ServiceResult.value == S.BadNothingToDo
    assert translate(proc, *[path(OBJ, ua.QualifiedName("v0", NS))] * 11).ResponseHeader.ServiceResult.value == S.BadTooManyOperations


# ---------------------------------------------------------------------- RegisterNodes / UnregisterNodes


def test_register_and_unregister(proc):
    req = ua.RegisterNodesRequest()
    req.Parameters.NodesToRegister = [VARS[0], ua.NodeId("unknown", NS)]
    reply = proc.call(req)
    assert isinstance(reply, ua.RegisterNodesResponse) and reply.Parameters.RegisteredNodeIds == [VARS[0], ua.NodeId("unknown", NS)]
    unreq = ua.UnregisterNodesRequest()
    unreq.Parameters.NodesToUnregister = [VARS[0]]
    assert isinstance(proc.call(unreq), ua.UnregisterNodesResponse)


def test_register_service_faults(proc):
    S = ua.StatusCodes
    assert proc.call(ua.RegisterNodesRequest()).ResponseHeader.ServiceResult.value == S.BadNothingToDo
    assert proc.call(ua.UnregisterNodesRequest()).ResponseHeader.ServiceResult.value == S.BadNothingToDo
    req = ua.RegisterNodesRequest()
    req.Parameters.NodesToRegister = [VARS[0]] * 11
    assert proc.call(req).ResponseHeader.ServiceResult.value == S.BadTooManyOperations


# ---------------------------------------------------------------------- malformed input


REQUESTS = [browse_request(desc(OBJ), max_refs=1), ua.BrowseNextRequest(), ua.TranslateBrowsePathsToNodeIdsRequest(),
            ua.RegisterNodesRequest(), ua.UnregisterNodesRequest()]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_truncated_parameters_give_decoding_error(proc, request_):
    body = struct_to_binary(request_.Parameters)
    for cut in range(len(body)):
        reply = proc.call(request_, raw=body[:cut])
        assert isinstance(reply, ua.ServiceFault), cut
        assert reply.ResponseHeader.ServiceResult.value == ua.StatusCodes.BadDecodingError


def test_random_bytes_never_escape(proc):
    rng = random.Random(1234)
    for request_ in REQUESTS:
        valid = struct_to_binary(request_.Parameters) if not isinstance(request_, ua.BrowseNextRequest) else b""
        for _ in range(200):
            body = bytearray(valid + bytes(rng.randrange(256) for _ in range(rng.randrange(40))))
            for _ in range(rng.randrange(4)):
                if body:
                    body[rng.randrange(len(body))] = rng.randrange(256)
            reply = proc.call(request_, raw=bytes(body))  # answers with a response or a fault, never raises
            assert reply is not None


def test_other_services_are_left_to_asyncua(proc):
    handled = _run(view_services.handle(proc, ua.ReadRequest().TypeId, ua.RequestHeader(), None, Buffer(b"")))
    assert handled is False and not proc.sent
