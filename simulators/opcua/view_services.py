"""The simulator's View service set (OPC UA Part 4 v1.04 §5.8) where asyncua's deviates.

`handle(processor, typeid, requesthdr, seqhdr, body)` is called by the service layer
(`services.ConformantProcessor`) for every request of an activated session; it answers the
request (with `processor._respond` / `processor._fault`) and returns True, or returns False to
leave the request to asyncua.

What plain asyncua 2.1.0 gets wrong and this module does as Part 4 says:

- Browse (§5.8.2): Bad_NodeIdUnknown for a node that does not exist (asyncua: NodeIdInvalid),
  Bad_BrowseDirectionInvalid for a direction other than Forward/Inverse/Both (asyncua: an
  empty Good result, and a ServiceFault for values outside its enum), Bad_ReferenceTypeIdInvalid
  for a referenceTypeId that is not a ReferenceType, symmetric references always forward,
  the resultMask honoured, requestedMaxReferencesPerNode honoured with continuation points;
- continuation points (§7.6): per session, at most `max_browse_continuation_points`
  (the profile's claim); within one request, once they are used up the remaining operations
  that need one get Bad_NoContinuationPoints; a new request frees the session's oldest ones
  from earlier requests when it needs them; a released, used-up, unknown or other session's
  continuation point gives Bad_ContinuationPointInvalid;
- BrowseNext (§5.8.3): not implemented in asyncua at all;
- TranslateBrowsePathsToNodeIds (§5.8.4, Table 42): Bad_NothingToDo for an empty
  relativePath (asyncua: BadInternalError), Bad_BrowseNameInvalid for a missing targetName
  before the last element, Bad_NodeIdUnknown for an unknown startingNode, Bad_NoMatch,
  Bad_TooManyMatches;
- RegisterNodes / UnregisterNodes (§5.8.5, §5.8.6): Bad_NothingToDo for an empty list;
- every service: Bad_NothingToDo for an empty request and Bad_TooManyOperations above the
  claimed OperationLimits (MaxNodesPerBrowse also bounds BrowseNext's continuationPoints,
  MaxNodesPerRegisterNodes also UnregisterNodes, Part 5 §6.3.11); a request that does not
  decode gets Bad_DecodingError.

Nothing here runs for Read/Write/Call (handled before the extensions); for every other request
the only cost is one dict lookup.
"""

from __future__ import annotations

import os
import struct
import weakref

from asyncua import ua
from asyncua.ua.ua_binary import Primitives, nodeid_from_binary, struct_from_binary

_NULL = ua.NodeId()
_HAS_SUBTYPE = ua.NodeId(ua.ObjectIds.HasSubtype)
_ALL_FIELDS = 0x3F  # BrowseResultMask: ReferenceType | IsForward | NodeClass | BrowseName | DisplayName | TypeDefinition
_END_OF_PATH = 0xFFFFFFFF  # BrowsePathTarget.remainingPathIndex when every element was followed (max Index)
MAX_MATCHES = 100  # Table 42 Bad_TooManyMatches: "Servers should allow at least 10 matches"
UNLIMITED_CONTINUATION_POINTS = 100  # the bound kept when the profile claims 0 (= no limit)


# The symmetric standard ReferenceTypes (Symmetric="true" in the UA nodeset).  asyncua's address
# space cannot tell: it stores Symmetric=True for every ReferenceType whose nodeset entry does not
# say otherwise (the dataclass default), HasComponent and Organizes included.
_SYMMETRIC_STANDARD = frozenset(getattr(ua.ObjectIds, name) for name in (
    "References", "IsPhysicallyConnectedTo", "RepresentsSameEntityAs", "RepresentsSameHardwareAs",
    "RepresentsSameFunctionalityAs") if hasattr(ua.ObjectIds, name))


def _code(value: int) -> ua.StatusCode:
    return ua.StatusCode(value)


_BAD = {name: _code(getattr(ua.StatusCodes, name)) for name in (
    "BadNodeIdUnknown", "BadBrowseDirectionInvalid", "BadReferenceTypeIdInvalid",
    "BadNoContinuationPoints", "BadContinuationPointInvalid", "BadNothingToDo", "BadBrowseNameInvalid",
    "BadNoMatch", "BadTooManyMatches")}


# ---------------------------------------------------------------------- type knowledge


class _Types:
    """What Browse needs to know of the ReferenceTypes of one address space, cached.

    Only nodes that exist are cached, so a client sending random ids cannot grow it.
    """

    def __init__(self, aspace):
        self.aspace = aspace
        self._is_reftype: dict[ua.NodeId, bool] = {}
        self._subtypes: dict[ua.NodeId, frozenset] = {}
        self._symmetric: dict[ua.NodeId, bool] = {}

    def node(self, nodeid):
        try:
            return self.aspace.get(nodeid)
        except Exception:  # a NodeId the shelf cannot key: it does not exist here
            return None

    def _attribute(self, node, attribute):
        value = node.attributes.get(attribute)
        try:
            return value.value.Value.Value
        except AttributeError:
            return None

    def is_reftype(self, nodeid) -> bool:
        known = self._is_reftype.get(nodeid)
        if known is None:
            node = self.node(nodeid)
            if node is None:
                return False
            known = self._attribute(node, ua.AttributeIds.NodeClass) == ua.NodeClass.ReferenceType
            self._is_reftype[nodeid] = known
        return known

    def subtypes(self, reftype) -> frozenset:
        """`reftype` and every ReferenceType below it (HasSubtype, forward)."""
        found = self._subtypes.get(reftype)
        if found is None:
            seen = {reftype}
            todo = [reftype]
            while todo:
                node = self.node(todo.pop())
                if node is None:
                    continue
                for ref in node.references:
                    if ref.IsForward and ref.ReferenceTypeId == _HAS_SUBTYPE and ref.NodeId not in seen:
                        seen.add(ref.NodeId)
                        todo.append(ref.NodeId)
            found = self._subtypes[reftype] = frozenset(seen)
        return found

    def symmetric(self, reftype) -> bool:
        known = self._symmetric.get(reftype)
        if known is None:
            if reftype.NamespaceIndex == 0:
                known = reftype.Identifier in _SYMMETRIC_STANDARD
            else:
                # asyncua's ReferenceTypeAttributes default to Symmetric=True, so the attribute
                # alone says little; a symmetric type has no InverseName (Part 3 §5.3, ReferenceType NodeClass).
                node = self.node(reftype)
                inverse = self._attribute(node, ua.AttributeIds.InverseName) if node is not None else None
                known = (node is not None and self._attribute(node, ua.AttributeIds.Symmetric) is True
                         and not (inverse is not None and inverse.Text))
            self._symmetric[reftype] = known  # reference types of existing references only
        return known


_TYPES: "weakref.WeakKeyDictionary[object, _Types]" = weakref.WeakKeyDictionary()


def _types(processor) -> _Types:
    aspace = processor.iserver.aspace
    types = _TYPES.get(aspace)
    if types is None:
        types = _TYPES[aspace] = _Types(aspace)
    return types


# ---------------------------------------------------------------------- continuation points (§7.6)


class _Continuations:
    """One session's continuation points: opaque key -> (references still to return, per call)."""

    def __init__(self, limit: int):
        self.limit = limit if limit > 0 else UNLIMITED_CONTINUATION_POINTS
        self.points: dict[bytes, tuple[list, int]] = {}  # oldest first
        self._salt = os.urandom(8)
        self._counter = 0
        self.fresh = 0  # allocated by the request being processed

    def _key(self) -> bytes:
        self._counter += 1
        return self._salt + struct.pack("<Q", self._counter)

    def allocate(self, remaining: list, per_call: int) -> bytes | None:
        """A new continuation point, or None when this request has used all of them."""
        if self.fresh >= self.limit:
            return None
        while len(self.points) >= self.limit:
            # Free the oldest one of an earlier request (§7.6: "shall automatically free
            # ContinuationPoints from prior requests ... if they are needed"); this request's
            # own are the newest and fewer than the limit, so the oldest is never one of them.
            del self.points[next(iter(self.points))]
        self.fresh += 1
        key = self._key()
        self.points[key] = (remaining, per_call)
        return key

    def take(self, key) -> tuple[list, int] | None:
        if not key:
            return None
        return self.points.pop(bytes(key), None)

    def resume(self, remaining: list, per_call: int) -> bytes:
        """Continuing never needs a new slot (§7.6: never Bad_NoContinuationPoints)."""
        key = self._key()
        self.points[key] = (remaining, per_call)
        return key


_SESSIONS: "weakref.WeakKeyDictionary[object, _Continuations]" = weakref.WeakKeyDictionary()


def _continuations(processor) -> _Continuations:
    session = processor.session
    store = _SESSIONS.get(session)
    if store is None:
        store = _SESSIONS[session] = _Continuations(processor.device.limits.get("max_browse_continuation_points", 5))
    return store


# ---------------------------------------------------------------------- Browse (§5.8.2)


def _decode_browse(processor, body):
    """BrowseParameters with the raw browseDirection (asyncua's decoder refuses unknown values)."""
    view = struct_from_binary(ua.ViewDescription, body)
    max_refs = Primitives.UInt32.unpack(body)
    count = Primitives.Int32.unpack(body)
    fault = processor._too_many(max(count, 0), "max_nodes_per_browse")
    if fault is not None:
        return fault
    descriptions = []
    for _ in range(count):
        descriptions.append((nodeid_from_binary(body), Primitives.Int32.unpack(body), nodeid_from_binary(body),
                             Primitives.Boolean.unpack(body), Primitives.UInt32.unpack(body), Primitives.UInt32.unpack(body)))
    return view, max_refs, descriptions


def _browse(processor, decoded):
    if isinstance(decoded, int):
        return decoded
    view, max_refs, descriptions = decoded
    if view.ViewId is not None and view.ViewId != _NULL:
        return ua.StatusCodes.BadViewIdUnknown  # this device has no Views (Table 35)
    types = _types(processor)
    store = _continuations(processor)
    store.fresh = 0
    return [_browse_one(types, store, description, max_refs) for description in descriptions]


def _browse_one(types: _Types, store: _Continuations, description, max_refs: int) -> ua.BrowseResult:
    nodeid, direction, reftype, include_subtypes, class_mask, result_mask = description
    result = ua.BrowseResult()
    if direction not in (0, 1, 2):  # FORWARD_0, INVERSE_1, BOTH_2 (INVALID_3 and anything else)
        result.StatusCode = _BAD["BadBrowseDirectionInvalid"]
        return result
    node = types.node(nodeid)
    if node is None:
        result.StatusCode = _BAD["BadNodeIdUnknown"]
        return result
    allowed = None
    if reftype != _NULL:
        if not types.is_reftype(reftype):
            result.StatusCode = _BAD["BadReferenceTypeIdInvalid"]
            return result
        allowed = types.subtypes(reftype) if include_subtypes else (reftype,)
    references = []
    for ref in node.references:
        # Symmetric References are always forward (§5.8.2 browseDirection).
        forward = ref.IsForward or types.symmetric(ref.ReferenceTypeId)
        if (direction == 0 and not forward) or (direction == 1 and forward):
            continue
        if allowed is not None and ref.ReferenceTypeId not in allowed:
            continue
        if class_mask and not class_mask & ref.NodeClass:
            continue
        references.append(_present(ref, forward, result_mask))
    if max_refs and len(references) > max_refs:
        key = store.allocate(references[max_refs:], max_refs)
        if key is None:
            result.StatusCode = _BAD["BadNoContinuationPoints"]
            return result
        result.ContinuationPoint = key
        references = references[:max_refs]
    result.References = references
    return result


def _present(ref: ua.ReferenceDescription, forward: bool, mask: int) -> ua.ReferenceDescription:
    """The reference with only the fields the resultMask asks for (the rest null/default)."""
    if mask & _ALL_FIELDS == _ALL_FIELDS and forward == ref.IsForward:
        return ref
    out = ua.ReferenceDescription()
    out.NodeId = ref.NodeId
    if mask & 0x01:
        out.ReferenceTypeId = ref.ReferenceTypeId
    if mask & 0x02:
        out.IsForward = forward
    if mask & 0x04:
        out.NodeClass = ref.NodeClass
    if mask & 0x08:
        out.BrowseName = ref.BrowseName
    if mask & 0x10:
        out.DisplayName = ref.DisplayName
    if mask & 0x20:
        out.TypeDefinition = ref.TypeDefinition
    return out


# ---------------------------------------------------------------------- BrowseNext (§5.8.3)


def _browse_next(processor, params: ua.BrowseNextParameters):
    fault = processor._too_many(len(params.ContinuationPoints), "max_nodes_per_browse")
    if fault is not None:
        return fault
    store = _continuations(processor)
    results = []
    for key in params.ContinuationPoints:
        result = ua.BrowseResult()
        entry = store.take(key)
        if entry is None:
            result.StatusCode = _BAD["BadContinuationPointInvalid"]
        elif not params.ReleaseContinuationPoints:
            remaining, per_call = entry
            result.References = remaining[:per_call]
            if len(remaining) > per_call:
                result.ContinuationPoint = store.resume(remaining[per_call:], per_call)
        # released: Good, no references
        results.append(result)
    return results


# ---------------------------------------------------------------------- TranslateBrowsePathsToNodeIds (§5.8.4)


def _null_name(name) -> bool:
    return name is None or (not name.Name and not name.NamespaceIndex)


def _translate(processor, params: ua.TranslateBrowsePathsToNodeIdsParameters):
    fault = processor._too_many(len(params.BrowsePaths), "max_nodes_per_translate")
    if fault is not None:
        return fault
    types = _types(processor)
    return [_translate_one(types, path) for path in params.BrowsePaths]


def _translate_one(types: _Types, path: ua.BrowsePath) -> ua.BrowsePathResult:
    result = ua.BrowsePathResult()
    elements = path.RelativePath.Elements if path.RelativePath is not None else None
    if not elements:
        result.StatusCode = _BAD["BadNothingToDo"]  # Table 42: the relativePath is an empty list
        return result
    if types.node(path.StartingNode) is None:
        result.StatusCode = _BAD["BadNodeIdUnknown"]
        return result
    # RelativePath (§7.26): only the last element may leave its targetName empty.
    if any(_null_name(element.TargetName) for element in elements[:-1]):
        result.StatusCode = _BAD["BadBrowseNameInvalid"]
        return result
    current = [path.StartingNode]
    for element in elements:
        reftype = element.ReferenceTypeId
        allowed = None
        if reftype is not None and reftype != _NULL:
            if not types.is_reftype(reftype):
                result.StatusCode = _BAD["BadNoMatch"]
                return result
            allowed = types.subtypes(reftype) if element.IncludeSubtypes else (reftype,)
        name = None if _null_name(element.TargetName) else element.TargetName
        found: dict = {}
        for nodeid in current:
            node = types.node(nodeid)
            if node is None:
                continue
            for ref in node.references:
                forward = ref.IsForward or types.symmetric(ref.ReferenceTypeId)
                if element.IsInverse == forward:
                    continue
                if allowed is not None and ref.ReferenceTypeId not in allowed:
                    continue
                if name is not None and ref.BrowseName != name:
                    continue
                found[ref.NodeId] = None
                if len(found) > MAX_MATCHES:
                    result.StatusCode = _BAD["BadTooManyMatches"]
                    return result
        if not found:
            result.StatusCode = _BAD["BadNoMatch"]
            return result
        current = list(found)
    for nodeid in current:
        target = ua.BrowsePathTarget()
        target.TargetId = nodeid
        target.RemainingPathIndex = _END_OF_PATH
        result.Targets.append(target)
    return result


# ---------------------------------------------------------------------- RegisterNodes / UnregisterNodes (§5.8.5, §5.8.6)


def _register(processor, params: ua.RegisterNodesParameters):
    nodes = params.NodesToRegister
    fault = processor._too_many(len(nodes), "max_nodes_per_register_nodes")
    if fault is not None:
        return fault
    if any(node.Identifier is None for node in nodes):
        return ua.StatusCodes.BadNodeIdInvalid  # Table 44: a structurally invalid NodeId rejects the request
    # No aliasing: "In case no optimization is supported for a Node, the Server shall return the
    # NodeId from the request"; unknown NodeIds are copied too (§5.8.5.1).
    return list(nodes)


def _unregister(processor, params: ua.UnregisterNodesParameters):
    fault = processor._too_many(len(params.NodesToUnregister), "max_nodes_per_register_nodes")
    return fault if fault is not None else []


# ---------------------------------------------------------------------- dispatch


def _answer(processor, requesthdr, seqhdr, outcome, make_response) -> None:
    if isinstance(outcome, int):
        processor._fault(requesthdr, seqhdr, outcome)
        return
    processor.session.touch()
    processor.send_response(requesthdr.RequestHandle, seqhdr, make_response(outcome))


def _browse_next_response(results):
    response = ua.BrowseNextResponse()
    response.Parameters.Results = results
    return response


def _register_response(node_ids):
    response = ua.RegisterNodesResponse()
    response.Parameters.RegisteredNodeIds = node_ids
    return response


def _simple(response_type):
    def make(results):
        response = response_type()
        response.Results = results
        return response
    return make


def _id(name: str) -> ua.NodeId:
    return ua.NodeId(getattr(ua.ObjectIds, f"{name}Request_Encoding_DefaultBinary"))


# typeid -> (decode(processor, body), serve(processor, decoded), make_response(outcome))
_SERVICES = {
    _id("Browse"): (_decode_browse, _browse, _simple(ua.BrowseResponse)),
    _id("BrowseNext"): (lambda p, body: struct_from_binary(ua.BrowseNextParameters, body), _browse_next, _browse_next_response),
    _id("TranslateBrowsePathsToNodeIds"): (lambda p, body: struct_from_binary(ua.TranslateBrowsePathsToNodeIdsParameters, body),
                                           _translate, _simple(ua.TranslateBrowsePathsToNodeIdsResponse)),
    _id("RegisterNodes"): (lambda p, body: struct_from_binary(ua.RegisterNodesParameters, body), _register, _register_response),
    _id("UnregisterNodes"): (lambda p, body: struct_from_binary(ua.UnregisterNodesParameters, body), _unregister,
                             lambda _: ua.UnregisterNodesResponse()),
}


async def handle(processor, typeid, requesthdr, seqhdr, body) -> bool:
    service = _SERVICES.get(typeid)
    if service is None:
        return False
    decode, serve, make_response = service
    try:
        decoded = decode(processor, body)
    except Exception:  # truncated or malformed parameters: the request, not the server, is bad
        processor._fault(requesthdr, seqhdr, ua.StatusCodes.BadDecodingError)
        return True
    _answer(processor, requesthdr, seqhdr, serve(processor, decoded), make_response)
    return True
