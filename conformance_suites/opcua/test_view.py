"""View service set: Browse, BrowseNext, TranslateBrowsePathsToNodeIds, RegisterNodes.

OPC UA Part 4 v1.04 §5.8 and §7.6 (ContinuationPoint).  The cases browse the device object
the profile describes (its points are Variables, its methods Methods, each with the BrowseName
(device namespace, name)) and check what the references say against the profile and against
the server's own answers to differently filtered requests; the status codes are the ones the
service tables list: Table 36 (Browse), Table 39 (BrowseNext), Table 42
(TranslateBrowsePathsToNodeIds), Tables 44/46 (RegisterNodes/UnregisterNodes).
"""

from __future__ import annotations

from harness.conformance import case, fail, inconclusive, not_applicable
from harness.opcua import ua

from .support import P4, describe, expect_status, result_of, status_name

HIERARCHICAL = ua.NodeId(ua.ObjectIds.HierarchicalReferences)
HAS_COMPONENT = ua.NodeId(ua.ObjectIds.HasComponent)
HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)
HAS_SUBTYPE = ua.NodeId(ua.ObjectIds.HasSubtype)
HAS_TYPE_DEFINITION = ua.NodeId(ua.ObjectIds.HasTypeDefinition)
OBJECTS_FOLDER = ua.NodeId(ua.ObjectIds.ObjectsFolder)
# Part 5 v1.04 §11: HierarchicalReferences and the standard ReferenceTypes below it.
STANDARD_HIERARCHICAL = {
    ua.ObjectIds.HierarchicalReferences, ua.ObjectIds.HasChild, ua.ObjectIds.Organizes, ua.ObjectIds.HasEventSource,
    ua.ObjectIds.Aggregates, ua.ObjectIds.HasSubtype, ua.ObjectIds.HasProperty, ua.ObjectIds.HasComponent,
    ua.ObjectIds.HasNotifier, ua.ObjectIds.HasOrderedComponent,
}
# The roots that are not below HierarchicalReferences (References, NonHierarchicalReferences).
NOT_HIERARCHICAL_ROOTS = {ua.ObjectIds.References, ua.ObjectIds.NonHierarchicalReferences}
END_OF_PATH = 0xFFFFFFFF  # BrowsePathTarget.remainingPathIndex when the whole path was followed
UNKNOWN_CP = b"harness-unknown-continuation-point"
LIMIT_TEST_CAP = 10_000  # OperationLimits above this are not exercised (the request gets too big)

CLAUSE_BROWSE = f"{P4} §5.8.2"
CLAUSE_NEXT = f"{P4} §5.8.3, §7.6"
CLAUSE_TRANSLATE = f"{P4} §5.8.4"
CLAUSE_REGISTER = f"{P4} §5.8.5, §5.8.6"


# ---------------------------------------------------------------------- helpers


def _ident(node) -> tuple:
    """A node id (NodeId or ExpandedNodeId) as a comparable (namespace index, identifier)."""
    return (node.NamespaceIndex, node.Identifier)


def _is_null(node) -> bool:
    return node is None or (node.NamespaceIndex == 0 and node.Identifier in (0, None, "", b""))


def _text(node) -> str:
    try:
        return node.to_string()
    except Exception:
        return repr(node)


def _description(node, direction=ua.BrowseDirection.Forward, reftype=HIERARCHICAL, subtypes=True, class_mask=0) -> ua.BrowseDescription:
    d = ua.BrowseDescription()
    d.NodeId = node
    d.BrowseDirection = direction
    d.ReferenceTypeId = reftype if reftype is not None else ua.NodeId()
    d.IncludeSubtypes = subtypes
    d.NodeClassMask = class_mask
    d.ResultMask = ua.BrowseResultMask.All
    return d


async def _browse(s, descriptions, max_refs: int = 0):
    req = ua.BrowseRequest()
    req.Parameters.RequestedMaxReferencesPerNode = max_refs
    req.Parameters.NodesToBrowse = list(descriptions)
    return await s.request(req)


async def _browse_next(s, points, release: bool = False):
    req = ua.BrowseNextRequest()
    req.Parameters.ReleaseContinuationPoints = release
    req.Parameters.ContinuationPoints = list(points)
    return await s.request(req)


def _results(reply, count: int, what: str) -> list:
    """The per-operation results of a Good Browse/BrowseNext/Translate reply, one per request item."""
    if isinstance(reply, ua.ServiceFault) or not result_of(reply).is_good():
        fail(f"{what}: the service failed", expected="a response with ServiceResult Good and one result per item",
             observed=describe(reply))
    results = reply.Parameters.Results if isinstance(reply, ua.BrowseNextResponse) else reply.Results
    if len(results) != count:
        fail(f"{what}: {len(results)} results for {count} items", expected=f"{count} results (Part 4 §5.3: one per operation)",
             observed=describe(reply))
    return list(results)


def _good(result, what: str):
    if not result.StatusCode.is_good():
        fail(f"{what}: {status_name(result.StatusCode)}", expected="Good", observed=status_name(result.StatusCode))
    return result


def _key(ref) -> tuple:
    return (_ident(ref.ReferenceTypeId), bool(ref.IsForward), _ident(ref.NodeId))


def _show(refs) -> str:
    return ", ".join(f"{ref.BrowseName.Name if ref.BrowseName else '?'}({_text(ref.NodeId)})" for ref in refs) or "none"


async def _browse_all(s, node, what: str, **kw) -> list:
    """Every reference of one Browse, without a limit (continuation points followed if any)."""
    result = _good(_results(await _browse(s, [_description(node, **kw)]), 1, what)[0], what)
    refs = list(result.References)
    point = result.ContinuationPoint
    for _ in range(1000):
        if not point:
            return refs
        nxt = _good(_results(await _browse_next(s, [point]), 1, f"{what} (BrowseNext)")[0], f"{what} (BrowseNext)")
        refs.extend(nxt.References)
        point = nxt.ContinuationPoint
    fail(f"{what}: BrowseNext never ended", expected="a last BrowseNext without a continuation point",
         observed="still a continuation point after 1000 calls")


async def _is_hierarchical(s, reftype, cache: dict) -> bool:
    """Whether a ReferenceType is below HierarchicalReferences, asking the server for its supertypes."""
    chain, current = [], reftype
    for _ in range(12):
        key = _ident(current)
        if key in cache:
            answer = cache[key]
            break
        if current.NamespaceIndex == 0 and current.Identifier in STANDARD_HIERARCHICAL:
            answer = True
            break
        if current.NamespaceIndex == 0 and current.Identifier in NOT_HIERARCHICAL_ROOTS:
            answer = False
            break
        chain.append(key)
        result = _results(await _browse(s, [_description(current, ua.BrowseDirection.Inverse, HAS_SUBTYPE, False)]), 1,
                          f"browsing the supertype of {_text(current)}")[0]
        parents = [r.NodeId for r in result.References] if result.StatusCode.is_good() else []
        if not parents:
            answer = False
            break
        current = parents[0]
    else:
        answer = False
    for key in chain:
        cache[key] = answer
    return answer


async def _device(dut, s):
    """The device object's node id, its namespace index, and the points' and methods' node ids."""
    ns = await dut.ns(s)
    obj = await dut.node(s, dut.ua.object_node_id)
    points = {p.name: await dut.node(s, p.node_id) for p in dut.profile.points}
    methods = {m.name: await dut.node(s, m.node_id) for m in dut.ua.methods}
    return ns, obj, points, methods


async def _chunked_browse(s, descriptions, what: str, size: int = 10) -> list:
    results = []
    for i in range(0, len(descriptions), size):
        chunk = descriptions[i:i + size]
        results.extend(_results(await _browse(s, chunk), len(chunk), what))
    return results


def _need_two(refs) -> None:
    if len(refs) < 2:
        inconclusive(f"the device object has {len(refs)} hierarchical reference(s): a continuation point needs at least 2")


# ---------------------------------------------------------------------- Browse (§5.8.2)


@case("UA-VIEW-BROWSE-OBJECT", "Browsing the device object returns its variables and methods with the right BrowseName, NodeClass and TypeDefinition",
      requirements=["UA-P4-5.8.2-BROWSE"], level="MUST", clause=f"{CLAUSE_BROWSE}, §7.25")
def test_browse_device_object(dut):
    async def check():
        async with dut.session() as s:
            ns, obj, points, methods = await _device(dut, s)
            refs = await _browse_all(s, obj, "Browse of the device object (Forward, HierarchicalReferences and subtypes)")
            problems = []
            by_target = {}
            for ref in refs:
                by_target.setdefault(_ident(ref.NodeId), []).append(ref)
                if not ref.IsForward:
                    problems.append(f"{_text(ref.NodeId)} has IsForward false in a Forward browse")
            cache: dict = {}
            for reftype in {_ident(r.ReferenceTypeId): r.ReferenceTypeId for r in refs}.values():
                if not await _is_hierarchical(s, reftype, cache):
                    problems.append(f"ReferenceType {_text(reftype)} is not a subtype of HierarchicalReferences")
            expected = [(name, nid, ua.NodeClass.Variable) for name, nid in points.items()]
            expected += [(name, nid, ua.NodeClass.Method) for name, nid in methods.items()]
            found_vars = {}
            for name, nid, node_class in expected:
                matches = by_target.get(_ident(nid))
                if not matches:
                    problems.append(f"{name} ({_text(nid)}) is missing")
                    continue
                ref = matches[0]
                if ref.BrowseName != ua.QualifiedName(name, ns):
                    problems.append(f"{_text(nid)} has BrowseName {ref.BrowseName.NamespaceIndex}:{ref.BrowseName.Name}, not {ns}:{name}")
                if ref.NodeClass != node_class:
                    problems.append(f"{_text(nid)} has NodeClass {ref.NodeClass!r}, not {node_class.name}")
                if node_class == ua.NodeClass.Method and not _is_null(ref.TypeDefinition):
                    # §7.25: TypeDefinitions exist for Objects and Variables only; others get a null NodeId.
                    problems.append(f"method {name} has TypeDefinition {_text(ref.TypeDefinition)}, not a null NodeId")
                if node_class == ua.NodeClass.Variable:
                    found_vars[name] = (nid, ref)
            # The TypeDefinition in each ReferenceDescription is the target of the variable's HasTypeDefinition.
            names = list(found_vars)
            typedefs = await _chunked_browse(s, [_description(found_vars[n][0], reftype=HAS_TYPE_DEFINITION, subtypes=False) for n in names],
                                             "Browse of the variables' HasTypeDefinition")
            for name, result in zip(names, typedefs):
                ref = found_vars[name][1]
                targets = [_ident(r.NodeId) for r in result.References] if result.StatusCode.is_good() else []
                if len(targets) != 1:
                    problems.append(f"variable {name} has {len(targets)} HasTypeDefinition references ({status_name(result.StatusCode)})")
                elif _is_null(ref.TypeDefinition) or _ident(ref.TypeDefinition) != targets[0]:
                    problems.append(f"variable {name}: TypeDefinition {_text(ref.TypeDefinition)} in the reference, "
                                    f"but its HasTypeDefinition points to ns={targets[0][0]};{targets[0][1]!r}")
            if problems:
                fail(f"the device object's references are not what the profile describes ({len(problems)} problem(s))",
                     expected=f"forward hierarchical references to {len(points)} variables and {len(methods)} methods, "
                              f"BrowseName {ns}:<name>, NodeClass Variable/Method, TypeDefinition = HasTypeDefinition (null for methods)",
                     observed="; ".join(problems[:12]))

    dut.run(check())


@case("UA-VIEW-BROWSE-INVERSE", "An Inverse browse from a variable returns the device object",
      requirements=["UA-P4-5.8.2-BROWSE"], level="MUST", clause=CLAUSE_BROWSE)
def test_browse_inverse(dut):
    point = dut.point(lambda p: True, "point")

    async def check():
        async with dut.session() as s:
            ns, obj, points, _ = await _device(dut, s)
            refs = await _browse_all(s, points[point.name], f"Inverse browse of {point.name}", direction=ua.BrowseDirection.Inverse)
            wrong = [r for r in refs if r.IsForward]
            if wrong:
                fail("an Inverse browse returned forward references", expected="IsForward false on every reference",
                     observed=_show(wrong))
            parents = [r for r in refs if _ident(r.NodeId) == _ident(obj)]
            if not parents:
                fail(f"the Inverse browse of {point.name} does not return the device object",
                     expected=f"a reference to {_text(obj)} ({dut.ua.object_name})", observed=_show(refs))
            ref = parents[0]
            if ref.BrowseName != ua.QualifiedName(dut.ua.object_name, ns) or ref.NodeClass != ua.NodeClass.Object:
                fail("the reference to the device object describes it wrongly",
                     expected=f"BrowseName {ns}:{dut.ua.object_name}, NodeClass Object",
                     observed=f"BrowseName {ref.BrowseName.NamespaceIndex}:{ref.BrowseName.Name}, NodeClass {ref.NodeClass!r}")

    dut.run(check())


@case("UA-VIEW-BROWSE-FILTER", "A referenceTypeId without subtypes and a nodeClassMask return exactly the matching references",
      requirements=["UA-P4-5.8.2-BROWSE"], level="MUST", clause=CLAUSE_BROWSE)
def test_browse_filters(dut):
    async def check():
        async with dut.session() as s:
            _, obj, points, methods = await _device(dut, s)
            targets = [("the device object", obj)]
            unit_point = next((p for p in dut.profile.points if p.unit), None)
            if unit_point is not None:
                targets.append((unit_point.name, points[unit_point.name]))
            problems = []
            for label, node in targets:
                everything = await _browse_all(s, node, f"Browse of {label} (Forward, all ReferenceTypes)", reftype=None)
                hierarchical = await _browse_all(s, node, f"Browse of {label} (Forward, HierarchicalReferences)")
                checks = [
                    (f"HasComponent without subtypes on {label}", dict(reftype=HAS_COMPONENT, subtypes=False),
                     {_key(r) for r in everything if _ident(r.ReferenceTypeId) == _ident(HAS_COMPONENT)}),
                    (f"HasProperty without subtypes on {label}", dict(reftype=HAS_PROPERTY, subtypes=False),
                     {_key(r) for r in everything if _ident(r.ReferenceTypeId) == _ident(HAS_PROPERTY)}),
                    (f"nodeClassMask Variable on {label}", dict(class_mask=ua.NodeClass.Variable),
                     {_key(r) for r in hierarchical if r.NodeClass == ua.NodeClass.Variable}),
                ]
                if methods and label == "the device object":
                    checks.append((f"nodeClassMask Method on {label}", dict(class_mask=ua.NodeClass.Method),
                                   {_key(r) for r in hierarchical if r.NodeClass == ua.NodeClass.Method}))
                for what, kw, wanted in checks:
                    got = {_key(r) for r in await _browse_all(s, node, f"Browse with {what}", **kw)}
                    if got != wanted:
                        extra, missing = got - wanted, wanted - got
                        problems.append(f"{what}: {len(extra)} reference(s) that do not match the filter, "
                                        f"{len(missing)} matching one(s) missing "
                                        f"(e.g. {sorted(map(str, extra or missing))[:2]})")
            if problems:
                fail("a filtered Browse does not return exactly the references that match the filter",
                     expected="the references of the unfiltered Browse that have that ReferenceType (no subtypes) or NodeClass",
                     observed="; ".join(problems))

    dut.run(check())


@case("UA-VIEW-BROWSE-UNKNOWN-NODE", "Browsing a node that does not exist gives Bad_NodeIdUnknown",
      requirements=["UA-P4-5.8.2-BROWSE"], level="MUST", clause=f"{CLAUSE_BROWSE}.4 (Table 36)")
def test_browse_unknown_node(dut):
    async def check():
        async with dut.session() as s:
            node = await dut.node(s, "s=harness.no-such-node")
            result = _results(await _browse(s, [_description(node)]), 1, "Browse of a node that does not exist")[0]
            expect_status(result.StatusCode, [ua.StatusCodes.BadNodeIdUnknown], f"Browse of {_text(node)}")

    dut.run(check())


@case("UA-VIEW-BROWSE-BAD-DIRECTION", "A browseDirection other than Forward, Inverse or Both gives Bad_BrowseDirectionInvalid",
      requirements=["UA-P4-5.8.2-BROWSE"], level="MUST", clause=f"{CLAUSE_BROWSE}.4 (Table 36)")
def test_browse_invalid_direction(dut):
    async def check():
        async with dut.session() as s:
            obj = await dut.node(s, dut.ua.object_node_id)
            # INVALID_3: "no value specified" (Table 34 BrowseDirection).
            result = _results(await _browse(s, [_description(obj, direction=ua.BrowseDirection.Invalid)]), 1,
                              "Browse with browseDirection INVALID_3")[0]
            expect_status(result.StatusCode, [ua.StatusCodes.BadBrowseDirectionInvalid], "Browse with browseDirection INVALID_3")

    dut.run(check())


@case("UA-VIEW-BROWSE-BAD-REFTYPE", "A referenceTypeId that is not a ReferenceType gives Bad_ReferenceTypeIdInvalid",
      requirements=["UA-P4-5.8.2-BROWSE"], level="MUST", clause=f"{CLAUSE_BROWSE}.4 (Table 36)")
def test_browse_invalid_reference_type(dut):
    async def check():
        async with dut.session() as s:
            obj = await dut.node(s, dut.ua.object_node_id)
            missing = ua.NodeId(999_999, 0)  # no standard node has this id
            reply = await _browse(s, [_description(obj, reftype=OBJECTS_FOLDER), _description(obj, reftype=missing)])
            first, second = _results(reply, 2, "Browse with a referenceTypeId that is not a ReferenceType")
            expect_status(first.StatusCode, [ua.StatusCodes.BadReferenceTypeIdInvalid],
                          "Browse with referenceTypeId = the Objects folder (an Object)")
            expect_status(second.StatusCode, [ua.StatusCodes.BadReferenceTypeIdInvalid],
                          "Browse with referenceTypeId = i=999999 (no such node)")

    dut.run(check())


# ---------------------------------------------------------------------- continuation points (§5.8.3, §7.6)


@case("UA-VIEW-CONTINUATION-WALK", "With requestedMaxReferencesPerNode 1, Browse and BrowseNext return every reference exactly once",
      requirements=["UA-P4-5.8.3-CONTINUATION"], level="MUST", clause=f"{CLAUSE_NEXT}, {CLAUSE_BROWSE}")
def test_continuation_walk(dut):
    async def check():
        async with dut.session() as s:
            obj = await dut.node(s, dut.ua.object_node_id)
            everything = await _browse_all(s, obj, "unlimited Browse of the device object")
            _need_two(everything)
            first = _good(_results(await _browse(s, [_description(obj)], max_refs=1), 1,
                                   "Browse with requestedMaxReferencesPerNode 1")[0], "Browse with requestedMaxReferencesPerNode 1")
            if len(first.References) > 1:
                fail("Browse returned more references than requestedMaxReferencesPerNode",
                     expected="at most 1 reference", observed=f"{len(first.References)} references")
            if not first.ContinuationPoint:
                fail("Browse with requestedMaxReferencesPerNode 1 returned no continuation point although "
                     f"{len(everything)} references match", expected="1 reference and a continuation point",
                     observed=f"{len(first.References)} reference(s), no continuation point")
            walked = list(first.References)
            point, calls = first.ContinuationPoint, 0
            while point:
                calls += 1
                if calls > 2 * len(everything) + 5:
                    fail("BrowseNext keeps returning continuation points", expected=f"the end after about {len(everything)} calls",
                         observed=f"{calls} calls, {len(walked)} references so far")
                what = f"BrowseNext #{calls}"
                nxt = _good(_results(await _browse_next(s, [point]), 1, what)[0], what)
                if len(nxt.References) > 1:
                    fail(f"{what} returned more references than the original requestedMaxReferencesPerNode",
                         expected="at most 1 reference", observed=f"{len(nxt.References)} references")
                walked.extend(nxt.References)
                point = nxt.ContinuationPoint
            want, got = sorted(map(_key, everything)), sorted(map(_key, walked))
            if want != got:
                dup = len(got) - len(set(got))
                fail("Browse plus BrowseNext did not return each reference exactly once",
                     expected=f"the {len(want)} references of the unlimited Browse",
                     observed=f"{len(got)} references ({dup} duplicate(s)); missing {len(set(want) - set(got))}, "
                              f"extra {len(set(got) - set(want))}")

    dut.run(check())


@case("UA-VIEW-CONTINUATION-RELEASE", "A released or used-up continuation point gives Bad_ContinuationPointInvalid",
      requirements=["UA-P4-5.8.3-CONTINUATION"], level="MUST", clause=f"{CLAUSE_NEXT} (Table 39)")
def test_continuation_release(dut):
    async def check():
        async with dut.session() as s:
            obj = await dut.node(s, dut.ua.object_node_id)
            what = "Browse with requestedMaxReferencesPerNode 1"
            first = _good(_results(await _browse(s, [_description(obj)], max_refs=1), 1, what)[0], what)
            if not first.ContinuationPoint:
                fail(f"{what} returned no continuation point", expected="at most 1 reference and a continuation point",
                     observed=f"{len(first.References)} reference(s), no continuation point")
            released = await _browse_next(s, [first.ContinuationPoint], release=True)
            if isinstance(released, ua.ServiceFault) or not result_of(released).is_good():
                fail("BrowseNext with releaseContinuationPoints TRUE failed", expected="ServiceResult Good",
                     observed=describe(released))
            # Table 37: released points give empty results; a result per point is accepted too if Good and empty.
            for r in released.Parameters.Results:
                if not r.StatusCode.is_good() or r.References:
                    fail("releasing a valid continuation point did not succeed", expected="no result, or Good without references",
                         observed=f"{status_name(r.StatusCode)} with {len(r.References)} reference(s)")
            again = _results(await _browse_next(s, [first.ContinuationPoint]), 1, "BrowseNext with a released continuation point")[0]
            expect_status(again.StatusCode, [ua.StatusCodes.BadContinuationPointInvalid], "BrowseNext with a released continuation point")

            # Used up (§7.6: active only until the Client has retrieved the remaining results).
            first = _good(_results(await _browse(s, [_description(obj)], max_refs=1), 1, what)[0], what)
            point, last, calls = first.ContinuationPoint, None, 0
            while point and calls < 200:
                calls += 1
                nxt = _good(_results(await _browse_next(s, [point]), 1, "BrowseNext")[0], "BrowseNext")
                last, point = point, nxt.ContinuationPoint
            if point:
                fail("BrowseNext never ended", expected="a last BrowseNext without a continuation point", observed=f"{calls} calls")
            if last is not None:
                used = _results(await _browse_next(s, [last]), 1, "BrowseNext with a used-up continuation point")[0]
                expect_status(used.StatusCode, [ua.StatusCodes.BadContinuationPointInvalid],
                              "BrowseNext with the continuation point whose results were all returned")

    dut.run(check())


@case("UA-VIEW-CONTINUATION-UNKNOWN", "BrowseNext with a continuation point the server never issued gives Bad_ContinuationPointInvalid",
      requirements=["UA-P4-5.8.3-CONTINUATION"], level="MUST", clause=f"{CLAUSE_NEXT} (Table 39)")
def test_continuation_unknown(dut):
    async def check():
        async with dut.session() as s:
            for release in (False, True):
                what = f"BrowseNext (releaseContinuationPoints {str(release).upper()}) with a never-issued continuation point"
                reply = await _browse_next(s, [UNKNOWN_CP], release=release)
                if release and isinstance(reply, ua.BrowseNextResponse) and result_of(reply).is_good() and not reply.Parameters.Results:
                    continue  # Table 37: results are empty when releasing
                result = _results(reply, 1, what)[0]
                expect_status(result.StatusCode, [ua.StatusCodes.BadContinuationPointInvalid], what)

    dut.run(check())


@case("UA-VIEW-CONTINUATION-LIMIT", "Continuation points beyond the per-session maximum give Bad_NoContinuationPoints; a new Browse frees old ones",
      requirements=["UA-P4-5.8.3-CONTINUATION"], level="MUST", clause=f"{P4} §7.6, §5.8.2.4 (Table 36)")
def test_continuation_limit(dut):
    claimed = int(dut.ua.limits.get("max_browse_continuation_points", 0) or 0)
    per_browse = int(dut.ua.limits.get("max_nodes_per_browse", 0) or 0)

    async def check():
        async with dut.session() as s:
            # §7.6: the Server states its maximum per Session in ServerCapabilities
            # (MaxBrowseContinuationPoints, Part 5 §6.3.2; 0 = no limit); without a usable
            # value there, the profile's claim (the harness's default when it claims none).
            reply = await s.read([ua.NodeId(ua.ObjectIds.Server_ServerCapabilities_MaxBrowseContinuationPoints)])
            advertised = None
            if isinstance(reply, ua.ReadResponse) and reply.Results and reply.Results[0].StatusCode.is_good():
                value = reply.Results[0].Value.Value if reply.Results[0].Value is not None else None
                advertised = value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
            limit, source = (advertised, "advertised in MaxBrowseContinuationPoints") if advertised else (claimed, "claimed in the profile")
            if limit <= 0:
                not_applicable("neither the server nor the profile states a maximum number of browse continuation points")
            count = limit + 1 if not per_browse or limit + 1 <= per_browse else limit
            if count > 100:
                inconclusive(f"{limit} continuation points per session ({source}) are too many to exhaust in one request here")
            obj = await dut.node(s, dut.ua.object_node_id)
            everything = await _browse_all(s, obj, "unlimited Browse of the device object")
            _need_two(everything)
            what = f"Browse of the device object {count} times with requestedMaxReferencesPerNode 1"
            results = _results(await _browse(s, [_description(obj)] * count, max_refs=1), count, what)
            issued, exhausted_at, problems = [], None, []
            for i, r in enumerate(results):
                code = r.StatusCode.value
                if code == ua.StatusCodes.BadNoContinuationPoints:
                    exhausted_at = i if exhausted_at is None else exhausted_at
                elif r.StatusCode.is_good() and r.ContinuationPoint:
                    if exhausted_at is not None:
                        problems.append(f"operation {i} got a continuation point after operation {exhausted_at} got Bad_NoContinuationPoints")
                    issued.append(r.ContinuationPoint)
                else:
                    problems.append(f"operation {i}: {status_name(r.StatusCode)}, "
                                    f"{'a' if r.ContinuationPoint else 'no'} continuation point")
            if len(set(issued)) != len(issued):
                problems.append("the same continuation point was issued twice")
            if len(issued) < min(limit, count):
                problems.append(f"only {len(issued)} continuation point(s) issued although {limit} per session are {source}")
            if problems:
                fail("continuation points are not allocated as §7.6 requires", expected=(
                    f"each operation Good with a continuation point until the maximum ({limit}, {source}) is used, "
                    "Bad_NoContinuationPoints for the rest"), observed="; ".join(problems))
            # §7.6: a new request frees continuation points of earlier requests when it needs them.
            what = "a new Browse while the earlier continuation points are held"
            fresh = _results(await _browse(s, [_description(obj)], max_refs=1), 1, what)[0]
            if fresh.StatusCode.value == ua.StatusCodes.BadNoContinuationPoints or not fresh.ContinuationPoint:
                fail(f"{what} got no continuation point", expected="Good with a continuation point (older ones freed)",
                     observed=f"{status_name(fresh.StatusCode)}, {'a' if fresh.ContinuationPoint else 'no'} continuation point")
            await _browse_next(s, issued + [fresh.ContinuationPoint], release=True)

    dut.run(check())


# ---------------------------------------------------------------------- TranslateBrowsePathsToNodeIds (§5.8.4)


def _path(start, *names, reftype=HIERARCHICAL) -> ua.BrowsePath:
    path = ua.BrowsePath()
    path.StartingNode = start
    for name in names:
        element = ua.RelativePathElement()
        element.ReferenceTypeId = reftype
        element.IsInverse = False
        element.IncludeSubtypes = True
        element.TargetName = name if name is not None else ua.QualifiedName()
        path.RelativePath.Elements.append(element)
    return path


async def _translate(s, paths):
    req = ua.TranslateBrowsePathsToNodeIdsRequest()
    req.Parameters.BrowsePaths = list(paths)
    return await s.request(req)


@case("UA-VIEW-TRANSLATE", "Objects/<device object>/<point> resolves to the point's node id",
      requirements=["UA-P4-5.8.4-TRANSLATE"], level="MUST", clause=CLAUSE_TRANSLATE)
def test_translate(dut):
    async def check():
        async with dut.session() as s:
            ns, obj, points, methods = await _device(dut, s)
            wanted = [(dut.ua.object_name, obj, (dut.ua.object_name,))]
            point = dut.profile.points[0] if dut.profile.points else None
            if point is not None:
                wanted.append((f"{dut.ua.object_name}/{point.name}", points[point.name], (dut.ua.object_name, point.name)))
            if dut.ua.methods:
                m = dut.ua.methods[0]
                wanted.append((f"{dut.ua.object_name}/{m.name}", methods[m.name], (dut.ua.object_name, m.name)))
            paths = [_path(OBJECTS_FOLDER, *(ua.QualifiedName(n, ns) for n in names)) for _, _, names in wanted]
            results = _results(await _translate(s, paths), len(paths), "TranslateBrowsePathsToNodeIds")
            for (label, nid, _), result in zip(wanted, results):
                what = f"Objects/{label}"
                if not result.StatusCode.is_good():
                    fail(f"{what} did not resolve", expected=f"Good with target {_text(nid)}", observed=status_name(result.StatusCode))
                hits = [t for t in result.Targets if _ident(t.TargetId) == _ident(nid)]
                if not hits:
                    fail(f"{what} resolved to other nodes", expected=_text(nid),
                         observed=", ".join(_text(t.TargetId) for t in result.Targets) or "no targets")
                if hits[0].RemainingPathIndex != END_OF_PATH:
                    fail(f"{what}: the target says the path was not fully followed",
                         expected=f"remainingPathIndex {END_OF_PATH} (all elements processed)", observed=str(hits[0].RemainingPathIndex))

    dut.run(check())


@case("UA-VIEW-TRANSLATE-NO-MATCH", "A path whose last element does not exist gives Bad_NoMatch",
      requirements=["UA-P4-5.8.4-TRANSLATE"], level="MUST", clause=f"{CLAUSE_TRANSLATE}.4 (Table 42)")
def test_translate_no_match(dut):
    async def check():
        async with dut.session() as s:
            ns = await dut.ns(s)
            path = _path(OBJECTS_FOLDER, ua.QualifiedName(dut.ua.object_name, ns), ua.QualifiedName("harness-no-such-point", ns))
            result = _results(await _translate(s, [path]), 1, "TranslateBrowsePathsToNodeIds")[0]
            expect_status(result.StatusCode, [ua.StatusCodes.BadNoMatch], f"Objects/{dut.ua.object_name}/harness-no-such-point")

    dut.run(check())


@case("UA-VIEW-TRANSLATE-UNKNOWN-START", "A path from a startingNode that does not exist gives Bad_NodeIdUnknown",
      requirements=["UA-P4-5.8.4-TRANSLATE"], level="MUST", clause=f"{CLAUSE_TRANSLATE}.4 (Table 42)")
def test_translate_unknown_start(dut):
    async def check():
        async with dut.session() as s:
            ns = await dut.ns(s)
            start = await dut.node(s, "s=harness.no-such-node")
            path = _path(start, ua.QualifiedName(dut.ua.object_name, ns))
            result = _results(await _translate(s, [path]), 1, "TranslateBrowsePathsToNodeIds")[0]
            expect_status(result.StatusCode, [ua.StatusCodes.BadNodeIdUnknown], f"a path starting at {_text(start)}")

    dut.run(check())


@case("UA-VIEW-TRANSLATE-EMPTY", "An empty relativePath gives Bad_NothingToDo",
      requirements=["UA-P4-5.8.4-TRANSLATE"], level="MUST", clause=f"{CLAUSE_TRANSLATE}.4 (Table 42)")
def test_translate_empty_path(dut):
    async def check():
        async with dut.session() as s:
            result = _results(await _translate(s, [_path(OBJECTS_FOLDER)]), 1, "TranslateBrowsePathsToNodeIds with an empty relativePath")[0]
            expect_status(result.StatusCode, [ua.StatusCodes.BadNothingToDo], "a browse path with an empty relativePath")

    dut.run(check())


@case("UA-VIEW-TRANSLATE-NO-NAME", "A missing targetName before the last path element gives Bad_BrowseNameInvalid",
      requirements=["UA-P4-5.8.4-TRANSLATE"], level="MUST", clause=f"{CLAUSE_TRANSLATE}.4 (Table 42), §7.26")
def test_translate_missing_name(dut):
    point = dut.point(lambda p: True, "point")

    async def check():
        async with dut.session() as s:
            ns = await dut.ns(s)
            # §7.26: only the final element may have an empty targetName.
            path = _path(OBJECTS_FOLDER, None, ua.QualifiedName(point.name, ns))
            result = _results(await _translate(s, [path]), 1, "TranslateBrowsePathsToNodeIds")[0]
            expect_status(result.StatusCode, [ua.StatusCodes.BadBrowseNameInvalid], "a path whose first element has no targetName")

    dut.run(check())


# ---------------------------------------------------------------------- RegisterNodes / UnregisterNodes (§5.8.5, §5.8.6)


@case("UA-VIEW-REGISTER", "Registered node ids read the same values as the originals; UnregisterNodes succeeds",
      requirements=["UA-P4-5.8.5-REGISTER"], level="MUST", clause=CLAUSE_REGISTER)
def test_register_nodes(dut):
    fixed = [p for p in dut.profile.points if not p.writable][:3]
    if not fixed:
        not_applicable("the profile has no read-only point (a writable one may change while the case reads it)")

    async def check():
        async with dut.session() as s:
            originals = [await dut.node(s, p.node_id) for p in fixed]
            req = ua.RegisterNodesRequest()
            req.Parameters.NodesToRegister = originals
            reply = await s.request(req)
            if not isinstance(reply, ua.RegisterNodesResponse) or not result_of(reply).is_good():
                fail("RegisterNodes failed", expected="a RegisterNodesResponse with Good", observed=describe(reply))
            registered = list(reply.Parameters.RegisteredNodeIds)
            if len(registered) != len(originals):
                fail("RegisterNodes returned a list of another size", expected=f"{len(originals)} node ids (§5.8.5.2)",
                     observed=f"{len(registered)} node ids")
            read = await s.read(originals + registered)
            if not isinstance(read, ua.ReadResponse) or len(read.Results) != 2 * len(originals):
                fail("reading the original and the registered node ids failed", expected="a ReadResponse", observed=describe(read))
            n = len(originals)
            for p, orig, reg, a, b in zip(fixed, originals, registered, read.Results[:n], read.Results[n:]):
                if not a.StatusCode.is_good():
                    fail(f"reading {p.name} failed", expected="Good", observed=status_name(a.StatusCode))
                if not b.StatusCode.is_good() or b.Value != a.Value:
                    fail(f"the registered node id of {p.name} does not read the same value",
                         expected=f"{_text(reg)} reads {a.Value.Value!r} like {_text(orig)}",
                         observed=f"{status_name(b.StatusCode)} {b.Value.Value if b.Value is not None else None!r}")
            unreq = ua.UnregisterNodesRequest()
            unreq.Parameters.NodesToUnregister = registered
            reply = await s.request(unreq)
            if not isinstance(reply, ua.UnregisterNodesResponse) or not result_of(reply).is_good():
                fail("UnregisterNodes failed", expected="an UnregisterNodesResponse with Good", observed=describe(reply))

    dut.run(check())


@case("UA-VIEW-REGISTER-EMPTY", "RegisterNodes and UnregisterNodes with no nodes give Bad_NothingToDo",
      requirements=["UA-P4-5.8.5-REGISTER"], level="MUST", clause=f"{CLAUSE_REGISTER} (Tables 44, 46)")
def test_register_nothing(dut):
    async def check():
        async with dut.session() as s:
            reply = await s.request(ua.RegisterNodesRequest())
            expect_status(result_of(reply), [ua.StatusCodes.BadNothingToDo], "RegisterNodes with an empty nodesToRegister")
            reply = await s.request(ua.UnregisterNodesRequest())
            expect_status(result_of(reply), [ua.StatusCodes.BadNothingToDo], "UnregisterNodes with an empty nodesToUnregister")

    dut.run(check())


# ---------------------------------------------------------------------- OperationLimits of the View services


_LIMITS = (
    ("Browse", ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse),
    ("TranslateBrowsePathsToNodeIds", ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds),
    ("RegisterNodes", ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRegisterNodes),
)


def _oversized(service: str, count: int, node: ua.NodeId, name: ua.QualifiedName):
    if service == "Browse":
        req = ua.BrowseRequest()
        req.Parameters.NodesToBrowse = [_description(node)] * count
    elif service == "TranslateBrowsePathsToNodeIds":
        req = ua.TranslateBrowsePathsToNodeIdsRequest()
        req.Parameters.BrowsePaths = [_path(node, name)] * count
    else:
        req = ua.RegisterNodesRequest()
        req.Parameters.NodesToRegister = [node] * count
    return req


@case("UA-VIEW-TOO-MANY-OPERATIONS", "Browse, TranslateBrowsePathsToNodeIds and RegisterNodes above the advertised OperationLimits give Bad_TooManyOperations",
      requirements=["UA-P4-7.34-TOO-MANY-OPERATIONS"], level="MUST", clause=f"{P4} §7.34.2, §5.8.2.3, §5.8.4.3, §5.8.5.3")
def test_view_too_many_operations(dut):
    async def check():
        async with dut.session() as s:
            ns = await dut.ns(s)
            reply = await s.read([ua.NodeId(object_id) for _, object_id in _LIMITS])
            if not isinstance(reply, ua.ReadResponse) or len(reply.Results) != len(_LIMITS):
                fail("reading the OperationLimits failed", expected="a ReadResponse", observed=describe(reply))
            limits = {}
            for (service, _), dv in zip(_LIMITS, reply.Results):
                value = dv.Value.Value if dv.StatusCode.is_good() and dv.Value is not None else None
                if isinstance(value, int) and 0 < value <= LIMIT_TEST_CAP:
                    limits[service] = value
            if not limits:
                not_applicable(f"the server advertises no MaxNodesPerBrowse/TranslateBrowsePathsToNodeIds/RegisterNodes "
                               f"limit between 1 and {LIMIT_TEST_CAP}")
            # A small, unknown node keeps the request and any (wrong) full answer short.
            node = ua.NodeId(65_000, ns)
            name = ua.QualifiedName("harness", ns)
            problems = []
            for service, limit in limits.items():
                answer = await s.request(_oversized(service, limit + 1, node, name), timeout=max(dut.timeout, 10.0))
                code = result_of(answer)
                if code.value != ua.StatusCodes.BadTooManyOperations:
                    problems.append(f"{service} with {limit + 1} items (limit {limit}): {describe(answer)}")
            if problems:
                fail("a request above the advertised OperationLimits was not refused", expected="Bad_TooManyOperations",
                     observed="; ".join(problems))

    dut.run(check())
