"""Subscriptions and monitored items: revised parameters, keep-alive, data changes, queues, deadband, Republish.

OPC UA Part 4 v1.04 §5.12 (MonitoredItem services), §5.13 (Subscription services), §7.16
(MonitoringParameters), §7.17.2 (DataChangeFilter).  Every case drives Publish itself
(`s.channel.request(ua.PublishRequest(...), timeout=...)`): a Publish the server holds is
answered only when there is something to send or a keep-alive is due, so each wait is bounded
by the keep-alive time the server revised plus a margin, and "no answer" becomes a verdict.

Timing is judged only where the spec fixes it (the keep-alive after maxKeepAliveCount
publishing cycles, §5.13.1.1): a miss that noise can explain is INCONCLUSIVE, never a FAIL.
Cases that write a point restore the value they read first.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field

import pytest

from harness.conformance import case, fail, inconclusive, not_applicable
from harness.opcua import ua
from harness.opcua.errors import NoResponse, UaTransportError
from harness.profile import Point
from harness.profile_opcua import point_ua_type

from .support import P4, P5, describe, expect_status, result_of, status_name

PUBLISH_MS = 100.0   # requested publishing interval
KEEPALIVE = 3        # requested max keep-alive count: a keep-alive every 300 ms
LIFETIME = 30        # requested lifetime count (>= 3 x keep-alive, §5.13.2.2)
LONGEST_KEEPALIVE_S = 5.0  # a server revising the keep-alive time beyond this is too slow to test here
HANDLE = 7           # ClientHandle of the monitored item under test

NUMERIC = ("SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Float", "Double")
FLOATS = ("Float", "Double")
# Part 4 §7.34.1: InfoType (bits 10-11) 01 = DataValue, and then InfoBits bit 7 = Overflow.
INFO_TYPE_MASK, INFO_TYPE_DATAVALUE, OVERFLOW_BIT = 0x0C00, 0x0400, 0x0080
SUB_CLAUSE = f"{P4} §5.13"


# ---------------------------------------------------------------------------- helpers


@dataclass
class Subscription:
    """A subscription of one session, and the Publish traffic the case drives for it."""

    s: object
    id: int
    interval_s: float
    keepalive: int
    lifetime: int
    unacked: list[int] = field(default_factory=list)

    @property
    def keepalive_s(self) -> float:
        return self.interval_s * self.keepalive

    @property
    def wait_s(self) -> float:
        """How long a held Publish may take at most: a keep-alive is due well before."""
        return 2 * self.keepalive_s + 1.0

    async def publish(self, timeout: float | None = None):
        """Send one Publish (acknowledging what came before); (reply or None, seconds)."""
        req = ua.PublishRequest()
        req.Parameters.SubscriptionAcknowledgements = [
            ua.SubscriptionAcknowledgement(SubscriptionId=self.id, SequenceNumber=n) for n in self.unacked]
        self.unacked = []
        started = time.monotonic()
        try:
            reply = await self.s.channel.request(req, timeout=timeout or self.wait_s)
        except NoResponse:
            return None, time.monotonic() - started
        elapsed = time.monotonic() - started
        if isinstance(reply, ua.PublishResponse) and result_of(reply).is_good():
            result = reply.Parameters
            # §5.13.5.2: acknowledge only what the server keeps for retransmission
            if result.NotificationMessage.NotificationData and result.NotificationMessage.SequenceNumber in result.AvailableSequenceNumbers:
                self.unacked.append(result.NotificationMessage.SequenceNumber)
        return reply, elapsed

    async def message(self, what: str, timeout: float | None = None) -> ua.PublishResult:
        """The next PublishResult of this subscription; FAIL on no answer or a bad one."""
        timeout = timeout or self.wait_s
        reply, _ = await self.publish(timeout)
        return self.check(reply, what, timeout)

    def check(self, reply, what: str, timeout: float) -> ua.PublishResult:
        if reply is None:
            fail(f"{what}: no Publish response within {timeout:.1f} s",
                 expected=f"a PublishResponse (a keep-alive is due after {self.keepalive_s * 1000:.0f} ms)",
                 observed="no response")
        if not isinstance(reply, ua.PublishResponse) or not result_of(reply).is_good():
            fail(f"{what}: Publish did not succeed", expected="a PublishResponse with Good", observed=describe(reply))
        result = reply.Parameters
        if result.SubscriptionId != self.id:
            fail(f"{what}: the PublishResponse is for another subscription", expected=f"SubscriptionId {self.id}",
                 observed=f"SubscriptionId {result.SubscriptionId}")
        return result


async def create_subscription(s, interval: float = PUBLISH_MS, keepalive: int = KEEPALIVE, lifetime: int = LIFETIME,
                              check_timing: bool = True) -> Subscription:
    req = ua.CreateSubscriptionRequest()
    p = req.Parameters
    p.RequestedPublishingInterval = interval
    p.RequestedMaxKeepAliveCount = keepalive
    p.RequestedLifetimeCount = lifetime
    p.MaxNotificationsPerPublish = 0
    p.PublishingEnabled = True
    p.Priority = 0
    reply = await s.request(req)
    if not isinstance(reply, ua.CreateSubscriptionResponse) or not result_of(reply).is_good():
        fail("CreateSubscription did not succeed", expected="a CreateSubscriptionResponse with Good", observed=describe(reply))
    r = reply.Parameters
    sub = Subscription(s, r.SubscriptionId, r.RevisedPublishingInterval / 1000.0, r.RevisedMaxKeepAliveCount, r.RevisedLifetimeCount)
    if check_timing and not 0 < sub.keepalive_s <= LONGEST_KEEPALIVE_S:
        inconclusive(f"the server revised the keep-alive time to {sub.interval_s * 1000:g} ms x {sub.keepalive}; "
                     f"this case needs one between 0 and {LONGEST_KEEPALIVE_S:g} s")
    return sub


async def delete_subscription(s, sub: Subscription) -> None:
    with contextlib.suppress(UaTransportError):
        await s.request(ua.DeleteSubscriptionsRequest(Parameters=ua.DeleteSubscriptionsParameters(SubscriptionIds=[sub.id])))


def item_request(node: ua.NodeId, handle: int = HANDLE, sampling: float = -1.0, queue: int = 1,
                 discard_oldest: bool = True, filter=None) -> ua.MonitoredItemCreateRequest:
    item = ua.MonitoredItemCreateRequest()
    item.ItemToMonitor = ua.ReadValueId(NodeId=node, AttributeId=ua.AttributeIds.Value)
    item.MonitoringMode = ua.MonitoringMode.Reporting
    params = item.RequestedParameters
    params.ClientHandle = handle
    params.SamplingInterval = sampling
    params.QueueSize = queue
    params.DiscardOldest = discard_oldest
    if filter is not None:
        params.Filter = filter
    return item


async def create_items(s, sub: Subscription, items: list[ua.MonitoredItemCreateRequest]):
    req = ua.CreateMonitoredItemsRequest()
    req.Parameters.SubscriptionId = sub.id
    req.Parameters.TimestampsToReturn = ua.TimestampsToReturn.Both
    req.Parameters.ItemsToCreate = items
    reply = await s.request(req)
    if not isinstance(reply, ua.CreateMonitoredItemsResponse) or not result_of(reply).is_good():
        fail("CreateMonitoredItems did not succeed", expected="a CreateMonitoredItemsResponse with Good", observed=describe(reply))
    if len(reply.Results) != len(items):
        fail("CreateMonitoredItems returned a result list of the wrong length", expected=f"{len(items)} results",
             observed=f"{len(reply.Results)} results")
    return reply.Results


async def monitor(s, sub: Subscription, node: ua.NodeId, **options) -> ua.MonitoredItemCreateResult:
    """One monitored item on a node's Value; FAIL unless it is created Good."""
    result = (await create_items(s, sub, [item_request(node, **options)]))[0]
    if not result.StatusCode.is_good():
        fail(f"creating a monitored item on {node.to_string()} failed", expected="Good", observed=status_name(result.StatusCode))
    return result


def values_of(result: ua.PublishResult, handle: int = HANDLE) -> list[ua.DataValue]:
    """The DataValues a NotificationMessage reports for one monitored item, in order."""
    values = []
    for data in result.NotificationMessage.NotificationData:
        if isinstance(data, ua.DataChangeNotification):
            values.extend(m.Value for m in data.MonitoredItems if m.ClientHandle == handle)
    return values


async def first_data_change(sub: Subscription, original) -> ua.PublishResult:
    """The first Publish after the item was created; FAIL when it carries no DataChange for it
    (§5.12.1.2: an enabled item reports its first sample as soon as possible)."""
    first = await sub.message("the first Publish after creating the monitored item")
    if not values_of(first):
        fail("the first notification does not carry the current value", expected=f"a DataChange with {original!r}",
             observed="no DataChange for the item")
    return first


def is_keepalive(result: ua.PublishResult) -> bool:
    return not result.NotificationMessage.NotificationData


def plain(value):
    return value.Value if isinstance(value, ua.Variant) else value


def shown(dv: ua.DataValue) -> str:
    if dv is None or dv.Value is None:
        return f"no value ({status_name(dv.StatusCode) if dv is not None else '-'})"
    code = dv.StatusCode.value if dv.StatusCode is not None else 0
    return f"{plain(dv.Value)!r}" + (f" (status 0x{code:08X})" if code else "")


def same(point: Point, a, b) -> bool:
    a, b = plain(a), plain(b)
    if point_ua_type(point) in FLOATS and isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)
    return a == b


def writable_numeric(p: Point) -> bool:
    return p.writable and not p.array and point_ua_type(p) in NUMERIC


def step_of(point: Point) -> float | int:
    """A change of about 1 that the point can hold exactly (a multiple of its scale)."""
    if point.scale is not None:
        return point.scale * max(1, round(1 / point.scale))
    return 1.0 if point_ua_type(point) in FLOATS else 1


def new_values(point: Point, original, count: int) -> list:
    """`count` values different from the original and from each other, inside the type's range."""
    step = step_of(point)
    sign = -1 if original - count * step >= 0 else 1
    values = [original + sign * step * (i + 1) for i in range(count)]
    if point.scale is not None:
        values = [float(f"{v:.12g}") for v in values]
    return values


def variant(point: Point, value) -> ua.Variant:
    return ua.Variant(value, getattr(ua.VariantType, point_ua_type(point)))


async def write(s, node: ua.NodeId, point: Point, value) -> None:
    reply = await s.write([(node, variant(point, value))])
    if not isinstance(reply, ua.WriteResponse) or not reply.Results or not reply.Results[0].is_good():
        fail(f"writing {value!r} to the writable point {point.name} did not succeed", expected="Good",
             observed=describe(reply))


async def restore(dut, s, node: ua.NodeId, point: Point, original) -> None:
    """Put the value back (on a fresh session if the case's one is gone)."""
    try:
        reply = await s.write([(node, variant(point, original))])
        if isinstance(reply, ua.WriteResponse) and reply.Results and reply.Results[0].is_good():
            return
    except UaTransportError:
        pass
    with contextlib.suppress(UaTransportError):
        async with dut.session() as again:
            await again.write([(node, variant(point, original))])


async def current(s, node: ua.NodeId):
    return plain(await s.value(node))


# ---------------------------------------------------------------------------- Subscription services


@case("UA-SUB-CREATE-MODIFY-DELETE", "Subscriptions are created and modified with revised parameters and deleted once",
      requirements=["UA-P4-5.13.2-SUBSCRIPTION"], level="MUST", clause=f"{P4} §5.13.2.2, §5.13.3.2, §5.13.8.2")
def test_subscription_lifecycle(dut):
    def revised_ok(what: str, interval: float, keepalive: int, lifetime: int) -> None:
        # §5.13.2.2: a 0 or negative interval is revised to the fastest supported one, a
        # keep-alive count of 0 to the smallest supported one, and the lifetime count is at
        # least three times the keep-alive count; illegal values are revised, not refused.
        problems = []
        if not interval > 0:
            problems.append(f"revisedPublishingInterval {interval:g} ms (must be a positive interval)")
        if keepalive < 1:
            problems.append(f"revisedMaxKeepAliveCount {keepalive} (must be at least 1)")
        if lifetime < 3 * keepalive:
            problems.append(f"revisedLifetimeCount {lifetime} < 3 x revisedMaxKeepAliveCount {keepalive}")
        if problems:
            fail(f"{what}: the revised parameters break §5.13.2.2", expected="interval > 0, keep-alive >= 1, lifetime >= 3 x keep-alive",
                 observed="; ".join(problems))

    async def check():
        async with dut.session() as s:
            # keep-alive 10 with lifetime 12: the lifetime must be revised to >= 30
            sub = await create_subscription(s, PUBLISH_MS, keepalive=10, lifetime=12, check_timing=False)
            if sub.id == 0:
                fail("CreateSubscription returned SubscriptionId 0", expected="a server-assigned id", observed="0")
            revised_ok("CreateSubscription(100 ms, keep-alive 10, lifetime 12)", sub.interval_s * 1000, sub.keepalive, sub.lifetime)
            # illegal values: interval -1, keep-alive 0, lifetime 0
            odd = await create_subscription(s, -1.0, keepalive=0, lifetime=0, check_timing=False)
            try:
                revised_ok("CreateSubscription(-1 ms, keep-alive 0, lifetime 0)", odd.interval_s * 1000, odd.keepalive, odd.lifetime)
            finally:
                await delete_subscription(s, odd)

            req = ua.ModifySubscriptionRequest()
            req.Parameters = ua.ModifySubscriptionParameters(SubscriptionId=sub.id, RequestedPublishingInterval=250.0,
                                                            RequestedLifetimeCount=10, RequestedMaxKeepAliveCount=8,
                                                            MaxNotificationsPerPublish=0, Priority=0)
            reply = await s.request(req)
            if not isinstance(reply, ua.ModifySubscriptionResponse) or not result_of(reply).is_good():
                fail("ModifySubscription of an existing subscription did not succeed", expected="a ModifySubscriptionResponse with Good",
                     observed=describe(reply))
            m = reply.Parameters
            revised_ok("ModifySubscription(250 ms, keep-alive 8, lifetime 10)", m.RevisedPublishingInterval,
                       m.RevisedMaxKeepAliveCount, m.RevisedLifetimeCount)

            req = ua.ModifySubscriptionRequest()
            req.Parameters = ua.ModifySubscriptionParameters(SubscriptionId=sub.id + 1000, RequestedPublishingInterval=250.0,
                                                            RequestedLifetimeCount=30, RequestedMaxKeepAliveCount=3)
            reply = await s.request(req)
            expect_status(result_of(reply), [ua.StatusCodes.BadSubscriptionIdInvalid], "ModifySubscription of an unknown subscription")

            deleting = ua.DeleteSubscriptionsRequest(Parameters=ua.DeleteSubscriptionsParameters(SubscriptionIds=[sub.id]))
            for attempt, allowed in (("first", ua.StatusCodes.Good), ("second", ua.StatusCodes.BadSubscriptionIdInvalid)):
                reply = await s.request(deleting)
                if not isinstance(reply, ua.DeleteSubscriptionsResponse) or not result_of(reply).is_good() or len(reply.Results) != 1:
                    fail(f"the {attempt} DeleteSubscriptions was not answered with one result per id",
                         expected="a DeleteSubscriptionsResponse with Good and 1 result", observed=describe(reply))
                expect_status(reply.Results[0], [allowed], f"the {attempt} DeleteSubscriptions of subscription {sub.id}")

    dut.run(check())


@case("UA-SUB-KEEPALIVE", "Without changes a Publish is answered with a keep-alive after maxKeepAliveCount publishing intervals",
      requirements=["UA-P4-5.13.1-KEEPALIVE"], level="MUST", clause=f"{P4} §5.13.1.1, §5.13.5")
def test_keepalive(dut):
    async def check():
        async with dut.session() as s:
            started = time.monotonic()
            await s.read([ua.NodeId(ua.ObjectIds.Server_ServerStatus_State)])
            rtt = time.monotonic() - started
            sub = await create_subscription(s)  # no monitored items: nothing will ever change
            first = await sub.message("the first Publish after CreateSubscription")
            # §5.13.1.1: the first message comes at the end of the first publishing cycle; with
            # nothing to report it is a keep-alive carrying sequence number 1.
            if not is_keepalive(first) or first.NotificationMessage.SequenceNumber != 1:
                fail("the first message of a subscription without monitored items is not a keep-alive with sequence number 1",
                     expected="an empty NotificationMessage with SequenceNumber 1",
                     observed=f"{len(first.NotificationMessage.NotificationData)} notification(s), "
                              f"SequenceNumber {first.NotificationMessage.SequenceNumber}")
            due = sub.keepalive_s
            reply, elapsed = await sub.publish(sub.wait_s)
            if reply is None:
                fail(f"no keep-alive within {sub.wait_s:.1f} s", expected=f"a keep-alive after about {due * 1000:.0f} ms "
                     f"({sub.interval_s * 1000:g} ms x {sub.keepalive})", observed="no Publish response")
            second = sub.check(reply, "the Publish after the first keep-alive", sub.wait_s)
            if not is_keepalive(second) or second.NotificationMessage.SequenceNumber != 1:
                fail("with nothing to report the Publish was not answered with a keep-alive",
                     expected="an empty NotificationMessage with SequenceNumber 1 (the next one to be sent)",
                     observed=f"{len(second.NotificationMessage.NotificationData)} notification(s), "
                              f"SequenceNumber {second.NotificationMessage.SequenceNumber}")
            # The keep-alive counter runs in publishing cycles from the previous message; even
            # if that one left mid-cycle, the next keep-alive is at most one cycle early.
            slack = 2 * rtt + 0.01
            expected = f"{due * 1000:.0f} ms ({sub.interval_s * 1000:g} ms x {sub.keepalive})"
            if elapsed < due - sub.interval_s - slack:
                fail("the keep-alive came too early", expected=f"after {expected}", observed=f"after {elapsed * 1000:.0f} ms")
            if elapsed < due - 0.3 * sub.interval_s - slack:
                inconclusive(f"the keep-alive came after {elapsed * 1000:.0f} ms, somewhat before the {expected} "
                             "(the server's publishing cycle may be out of phase)")
            if elapsed > due + 2 * sub.interval_s + 0.25:
                inconclusive(f"the keep-alive came after {elapsed * 1000:.0f} ms, late for {expected} (load or timer noise)")
            await delete_subscription(s, sub)

    dut.run(check())


# ---------------------------------------------------------------------------- MonitoredItem services


@case("UA-MI-CREATE-MODIFY-DELETE", "Monitored items get revised sampling intervals and queue sizes, are modified and deleted once",
      requirements=["UA-P4-5.12.2-MONITORED-ITEMS"], level="MUST",
      clause=f"{P4} §5.12.2.2, §5.12.3.2, §5.12.6.2, §7.16; {P5} §6.3.2 (MinSupportedSampleRate)")
def test_monitored_items(dut):
    async def check():
        point = dut.point(lambda p: not p.array, "scalar point to monitor")
        async with dut.session() as s:
            node = await dut.node(s, point.node_id)
            minimum = 0.0
            rate = await s.read([ua.NodeId(ua.ObjectIds.Server_ServerCapabilities_MinSupportedSampleRate)])
            if isinstance(rate, ua.ReadResponse) and rate.Results and rate.Results[0].StatusCode.is_good():
                with contextlib.suppress(TypeError, ValueError):
                    minimum = max(0.0, float(plain(rate.Results[0].Value) or 0.0))
            sub = await create_subscription(s, check_timing=False)
            publishing_ms = sub.interval_s * 1000
            results = await create_items(s, sub, [
                item_request(node, 1, sampling=-1.0, queue=1),
                item_request(node, 2, sampling=1.0, queue=0),
                item_request(node, 3, sampling=250.0, queue=5),
                item_request(ua.NodeId.from_string(f"ns={node.NamespaceIndex};s=NoSuchPoint.{point.name}"), 4),
            ])
            for i, r in enumerate(results[:3], 1):
                if not r.StatusCode.is_good():
                    fail(f"monitored item {i} on {node.to_string()} was not created", expected="Good", observed=status_name(r.StatusCode))
            # §5.12.2.4 / Table 178: an unknown node is refused for that item
            expect_status(results[3].StatusCode, [ua.StatusCodes.BadNodeIdUnknown], "CreateMonitoredItems on an unknown node")
            ids = [r.MonitoredItemId for r in results[:3]]
            if len(set(ids)) != 3:
                fail("the monitored items did not get distinct ids", expected="3 distinct MonitoredItemIds", observed=repr(ids))
            problems = []
            # §7.16: -1 asks for the publishing interval (another one if that is not supported);
            # a revised interval is never below the requested one nor below the server's minimum.
            if results[0].RevisedSamplingInterval < 0:
                problems.append(f"sampling -1 revised to {results[0].RevisedSamplingInterval:g} ms (a real interval expected, "
                                f"normally the publishing interval {publishing_ms:g} ms)")
            if results[1].RevisedSamplingInterval < max(1.0, minimum):
                problems.append(f"sampling 1 ms revised to {results[1].RevisedSamplingInterval:g} ms "
                                f"(must be >= 1 ms and >= MinSupportedSampleRate {minimum:g} ms)")
            # §7.16 queueSize: 0 or 1 gives the default queue size, which is 1 for data items
            for r, requested in ((results[0], 1), (results[1], 0)):
                if r.RevisedQueueSize != 1:
                    problems.append(f"queueSize {requested} revised to {r.RevisedQueueSize} (must be 1)")
            if results[2].RevisedQueueSize < 1:
                problems.append(f"queueSize 5 revised to {results[2].RevisedQueueSize} (must be at least 1)")
            if problems:
                fail("CreateMonitoredItems revised the parameters against §7.16", expected="revised values within §7.16",
                     observed="; ".join(problems))

            req = ua.ModifyMonitoredItemsRequest()
            req.Parameters.SubscriptionId = sub.id
            req.Parameters.TimestampsToReturn = ua.TimestampsToReturn.Both
            for mid, sampling, queue in ((ids[0], 500.0, 3), (ids[1], -1.0, 0), (ids[2] + 1000, 100.0, 1)):
                item = ua.MonitoredItemModifyRequest()
                item.MonitoredItemId = mid
                item.RequestedParameters.ClientHandle = 9
                item.RequestedParameters.SamplingInterval = sampling
                item.RequestedParameters.QueueSize = queue
                item.RequestedParameters.DiscardOldest = True
                req.Parameters.ItemsToModify.append(item)
            reply = await s.request(req)
            if not isinstance(reply, ua.ModifyMonitoredItemsResponse) or not result_of(reply).is_good() or len(reply.Results) != 3:
                fail("ModifyMonitoredItems was not answered with one result per item",
                     expected="a ModifyMonitoredItemsResponse with Good and 3 results", observed=describe(reply))
            a, b, unknown = reply.Results
            for r, what in ((a, "the first item"), (b, "the second item")):
                if not r.StatusCode.is_good():
                    fail(f"ModifyMonitoredItems of {what} failed", expected="Good", observed=status_name(r.StatusCode))
            problems = []
            if a.RevisedSamplingInterval < 0 or a.RevisedQueueSize < 1:
                problems.append(f"sampling 500 ms / queue 3 revised to {a.RevisedSamplingInterval:g} ms / {a.RevisedQueueSize}")
            if b.RevisedSamplingInterval < 0:
                problems.append(f"sampling -1 revised to {b.RevisedSamplingInterval:g} ms (a real interval expected)")
            if b.RevisedQueueSize != 1:
                problems.append(f"queueSize 0 revised to {b.RevisedQueueSize} (must be 1)")
            if problems:
                fail("ModifyMonitoredItems revised the parameters against §7.16", expected="revised values within §7.16",
                     observed="; ".join(problems))
            expect_status(unknown.StatusCode, [ua.StatusCodes.BadMonitoredItemIdInvalid], "ModifyMonitoredItems of an unknown item")

            deleting = ua.DeleteMonitoredItemsRequest()
            deleting.Parameters.SubscriptionId = sub.id
            deleting.Parameters.MonitoredItemIds = [ids[0]]
            for attempt, allowed in (("first", ua.StatusCodes.Good), ("second", ua.StatusCodes.BadMonitoredItemIdInvalid)):
                reply = await s.request(deleting)
                if not isinstance(reply, ua.DeleteMonitoredItemsResponse) or not result_of(reply).is_good() or len(reply.Results) != 1:
                    fail(f"the {attempt} DeleteMonitoredItems was not answered with one result per id",
                         expected="a DeleteMonitoredItemsResponse with Good and 1 result", observed=describe(reply))
                expect_status(reply.Results[0], [allowed], f"the {attempt} DeleteMonitoredItems of item {ids[0]}")

            wrong = ua.CreateMonitoredItemsRequest()
            wrong.Parameters.SubscriptionId = sub.id + 1000
            wrong.Parameters.TimestampsToReturn = ua.TimestampsToReturn.Both
            wrong.Parameters.ItemsToCreate = [item_request(node)]
            reply = await s.request(wrong)
            expect_status(result_of(reply), [ua.StatusCodes.BadSubscriptionIdInvalid], "CreateMonitoredItems on an unknown subscription")
            await delete_subscription(s, sub)

    dut.run(check())


@case("UA-MI-DATA-CHANGE", "A monitored value is reported first as it is, then with each written change",
      requirements=["UA-P4-5.12.1-DATA-CHANGE"], level="MUST", clause=f"{P4} §5.12.1.2, §5.12.1.4, §5.13.1.1")
@pytest.mark.writes
def test_data_change(dut):
    async def check():
        point = dut.point(writable_numeric, "writable numeric scalar point")
        async with dut.session() as s:
            node = await dut.node(s, point.node_id)
            original = await current(s, node)
            new = new_values(point, original, 1)[0]
            sub = await create_subscription(s)
            await monitor(s, sub, node)
            try:
                # §5.12.1.2: an item created enabled reports its first sample as soon as possible
                first = await sub.message("the first Publish after creating the monitored item")
                got = values_of(first)
                if len(got) != 1 or not same(point, got[0].Value, original):
                    fail("the first notification does not carry the current value", expected=f"one DataChange with {original!r}",
                         observed=", ".join(shown(v) for v in got) or "no DataChange for the item")
                await write(s, node, point, new)
                seen = []
                deadline = time.monotonic() + sub.wait_s
                while time.monotonic() < deadline:
                    result = await sub.message(f"the Publish after writing {new!r}", timeout=max(0.1, deadline - time.monotonic()))
                    got = values_of(result)
                    seen.extend(got)
                    if got:
                        break
                if not seen or not same(point, seen[-1].Value, new):
                    fail(f"writing {new!r} to {point.name} was not reported", expected=f"a DataChange with {new!r}",
                         observed=", ".join(shown(v) for v in seen) or "keep-alives only")
                if len(seen) != 1:
                    fail("one written change was reported more than once", expected=f"one DataChange with {new!r}",
                         observed=", ".join(shown(v) for v in seen))
            finally:
                await restore(dut, s, node, point, original)
                await delete_subscription(s, sub)

    dut.run(check())


async def _queue_run(dut, requested_queue: int):
    """Three values written (one sampling interval apart) while no Publish is outstanding,
    then what the next Publish responses report: (point, values written, revised queue, reported)."""
    point = dut.point(writable_numeric, "writable numeric scalar point")
    async with dut.session() as s:
        node = await dut.node(s, point.node_id)
        original = await current(s, node)
        written = new_values(point, original, 3)
        sub = await create_subscription(s)
        item = await monitor(s, sub, node, sampling=0.0, queue=requested_queue, discard_oldest=True)
        sampling_s = max(item.RevisedSamplingInterval, 0.0) / 1000
        if sampling_s > 0.5:
            inconclusive(f"the server revised the sampling interval to {sampling_s * 1000:g} ms; three separately "
                         "sampled writes would take too long here")
        try:
            await first_data_change(sub, original)
            # No Publish is outstanding now: the notifications wait in the item's queue (§5.12.1.5,
            # the subscription is late, §5.13.1.2).  Each write is a sample of its own.
            for value in written:
                await write(s, node, point, value)
                await asyncio.sleep(sampling_s * 1.5 + 0.02)
            messages = []
            deadline = time.monotonic() + sub.wait_s
            while time.monotonic() < deadline:
                result = await sub.message("the Publish after three writes", timeout=max(0.1, deadline - time.monotonic()))
                got = values_of(result)
                if got:
                    messages.append(got)
                if got and same(point, got[-1].Value, written[-1]) and not result.MoreNotifications:
                    break
                if not got and messages:
                    break
        finally:
            await restore(dut, s, node, point, original)
            await delete_subscription(s, sub)
        return point, written, item.RevisedQueueSize, messages


def _status(dv: ua.DataValue) -> int:
    return dv.StatusCode.value if dv.StatusCode is not None else 0


def _overflow(dv: ua.DataValue) -> bool:
    code = _status(dv)
    return bool(code & OVERFLOW_BIT) and (code & INFO_TYPE_MASK) == INFO_TYPE_DATAVALUE


def _check_queue(point: Point, written: list, size: int, messages: list[list[ua.DataValue]]) -> None:
    reported = [v for m in messages for v in m]
    listing = ", ".join(shown(v) for v in reported) or "nothing"
    if not reported or not same(point, reported[-1].Value, written[-1]):
        fail("the newest written value was not reported", expected=f"the last value {written[-1]!r} reported",
             observed=listing)
    if len(messages) > 1:
        inconclusive(f"the values came in {len(messages)} NotificationMessages ({listing}); a publishing cycle may have "
                     "passed between the writes, so the queue cannot be judged")
    keep = min(size, len(written))
    expected_values = written[-keep:]
    if len(reported) != keep or not all(same(point, v.Value, w) for v, w in zip(reported, expected_values)):
        fail(f"a queue of {size} did not report the newest {keep} of {len(written)} values in order",
             expected=", ".join(repr(w) for w in expected_values), observed=listing)
    overflowed = size > 1 and len(written) > size
    for i, dv in enumerate(reported):
        should = overflowed and i == 0
        if _overflow(dv) != should:
            what = "the oldest reported value" if i == 0 else f"reported value {i + 1}"
            fail(f"the Overflow bit of {what} is {'missing' if should else 'set'} (queue {size}, {len(written)} values)",
                 expected=("InfoType DataValue with the Overflow bit (0x0480) on the oldest value after a discard"
                           if should else "no Overflow bit (queue size 1, or nothing discarded)"),
                 observed=f"status 0x{_status(dv):08X} on {plain(dv.Value)!r}")


@case("UA-MI-QUEUE-1", "With queue size 1 only the newest of three quick changes is reported, without an Overflow bit",
      requirements=["UA-P4-5.12.1.5-QUEUE"], level="MUST", clause=f"{P4} §5.12.1.5, §7.16")
@pytest.mark.writes
def test_queue_size_one(dut):
    async def check():
        point, written, size, messages = await _queue_run(dut, 1)
        if size != 1:
            fail("queueSize 1 was revised", expected="revisedQueueSize 1", observed=f"revisedQueueSize {size}")
        _check_queue(point, written, 1, messages)

    dut.run(check())


@case("UA-MI-QUEUE-2", "With queue size 2 and discardOldest the newest two of three changes are reported, the oldest with Overflow",
      requirements=["UA-P4-5.12.1.5-QUEUE-OVERFLOW"], level="MUST", clause=f"{P4} §5.12.1.5, §7.16, §7.34.1")
@pytest.mark.writes
def test_queue_size_two(dut):
    async def check():
        point, written, size, messages = await _queue_run(dut, 2)
        if size < 2:
            not_applicable(f"the server revised queueSize 2 to {size}: it keeps no queue of two (Monitor MinQueueSize_02)")
        _check_queue(point, written, size, messages)

    dut.run(check())


def writable_float(p: Point) -> bool:
    if not (p.writable and not p.array and point_ua_type(p) in FLOATS):
        return False
    return p.scale is None or abs(round(0.1 / p.scale) * p.scale - 0.1) < 1e-9


@case("UA-MI-DEADBAND-ABSOLUTE", "An absolute deadband of 1.0 hides changes of 0.5 and 0.6 and reports 2.0 and 1.2 from the last reported value",
      requirements=["UA-P4-7.17.2-DEADBAND"], level="MUST", clause=f"{P4} §7.17.2")
@pytest.mark.writes
def test_absolute_deadband(dut):
    async def check():
        point = dut.point(writable_float, "writable Float or Double scalar point")
        async with dut.session() as s:
            node = await dut.node(s, point.node_id)
            original = float(await current(s, node))
            sign = -1.0 if original > 0 else 1.0
            sub = await create_subscription(s)
            deadband = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValue, DeadbandType=ua.DeadbandType.Absolute,
                                           DeadbandValue=1.0)
            await monitor(s, sub, node, sampling=0.0, queue=1, filter=deadband)
            try:
                await first_data_change(sub, original)
                # §7.17.2: notify if |last cached value - current value| > 1.0, the last cached
                # value being the last one queued (not the last one sampled).
                steps = [(0.5, False, "0.5 from the last reported value"),
                         (2.5, True, "2.5 from the last reported value, 2.0 from the previous one"),
                         (3.1, False, "0.6 from the last reported value"),
                         (3.7, True, "1.2 from the last reported value, 0.6 from the previous sample")]
                for offset, reported, why in steps:
                    value = float(f"{original + sign * offset:.12g}")
                    await write(s, node, point, value)
                    result = await sub.message(f"the Publish after writing {value!r}")
                    got = values_of(result)
                    if reported and (len(got) != 1 or not same(point, got[0].Value, value)):
                        fail(f"a change of {why} was not reported under an absolute deadband of 1.0",
                             expected=f"a DataChange with {value!r}",
                             observed=", ".join(shown(v) for v in got) or "a keep-alive (no DataChange)")
                    if not reported and got:
                        fail(f"a change of {why} was reported under an absolute deadband of 1.0",
                             expected="a keep-alive (no DataChange)", observed=", ".join(shown(v) for v in got))
            finally:
                await restore(dut, s, node, point, original)
                await delete_subscription(s, sub)

    dut.run(check())


# ---------------------------------------------------------------------------- Publish queue and Republish


@case("UA-SUB-PUBLISH-QUEUE-2", "Two outstanding Publish requests are both held, then answered with a data change and a keep-alive",
      requirements=["UA-P4-5.13.5-PUBLISH-QUEUE"], level="MUST", clause=f"{P4} §5.13.5.1, §5.13.1.1")
@pytest.mark.writes
def test_two_publish_requests(dut):
    async def check():
        point = dut.point(writable_numeric, "writable numeric scalar point")
        async with dut.session() as s:
            node = await dut.node(s, point.node_id)
            original = await current(s, node)
            new = new_values(point, original, 1)[0]
            sub = await create_subscription(s)
            await monitor(s, sub, node)
            try:
                await first_data_change(sub, original)
                a = asyncio.ensure_future(sub.publish(sub.wait_s))
                b = asyncio.ensure_future(sub.publish(sub.wait_s))
                await asyncio.sleep(min(sub.interval_s, sub.keepalive_s / 3))
                for task in (a, b):
                    if task.done():
                        reply, _ = task.result()
                        if reply is not None and result_of(reply).value == ua.StatusCodes.BadTooManyPublishRequests:
                            fail("the server does not hold two Publish requests", expected="both Publish requests held",
                                 observed=f"one answered at once with {describe(reply)}")
                await write(s, node, point, new)
                (ra, _), (rb, _) = await asyncio.gather(a, b)
                results = [sub.check(r, f"outstanding Publish {n}", sub.wait_s) for r, n in ((ra, 1), (rb, 2))]
                changes = [r for r in results if values_of(r)]
                keepalives = [r for r in results if is_keepalive(r)]
                if len(changes) != 1 or len(keepalives) != 1:
                    fail("the two outstanding Publish requests were not answered with the data change and a keep-alive",
                         expected=f"one DataChange with {new!r} and one keep-alive",
                         observed="; ".join(f"Publish {i + 1}: " + (", ".join(shown(v) for v in values_of(r)) or "keep-alive")
                                            for i, r in enumerate(results)))
                got = values_of(changes[0])
                if not same(point, got[-1].Value, new):
                    fail(f"writing {new!r} was reported with another value", expected=repr(new), observed=shown(got[-1]))
            finally:
                await restore(dut, s, node, point, original)
                await delete_subscription(s, sub)

    dut.run(check())


@case("UA-SUB-REPUBLISH", "Republish returns a retained message or Bad_MessageNotAvailable; unknown numbers give Bad_MessageNotAvailable",
      requirements=["UA-P4-5.13.6-REPUBLISH"], level="MUST", clause=f"{P4} §5.13.6.2, §5.13.6.3, §5.13.5.2")
def test_republish(dut):
    async def check():
        point = dut.point(lambda p: not p.array, "scalar point to monitor")
        async with dut.session() as s:
            node = await dut.node(s, point.node_id)
            sub = await create_subscription(s)
            await monitor(s, sub, node)
            first = await sub.message("the first Publish after creating the monitored item")
            sub.unacked = []  # keep the message in the retransmission queue
            got = values_of(first)
            if not got:
                fail("the first notification does not carry the current value", expected="a DataChange for the item",
                     observed="no DataChange for the item")
            number = first.NotificationMessage.SequenceNumber
            kept = number in first.AvailableSequenceNumbers

            def republish(sid: int, seq: int):
                return s.request(ua.RepublishRequest(Parameters=ua.RepublishParameters(SubscriptionId=sid, RetransmitSequenceNumber=seq)))

            reply = await republish(sub.id, number)
            code = result_of(reply).value
            if kept or code == ua.StatusCodes.Good:
                # §5.13.5.2: availableSequenceNumbers lists what the retransmission queue holds
                if not isinstance(reply, ua.RepublishResponse) or code != ua.StatusCodes.Good:
                    fail(f"Republish of message {number}, listed as available for retransmission, did not return it",
                         expected="a RepublishResponse with Good", observed=describe(reply))
                again = reply.NotificationMessage
                values = [m.Value for d in again.NotificationData if isinstance(d, ua.DataChangeNotification)
                          for m in d.MonitoredItems if m.ClientHandle == HANDLE]
                if again.SequenceNumber != number or len(values) != len(got) or not all(
                        same(point, v.Value, w.Value) for v, w in zip(values, got)):
                    fail(f"Republish of message {number} returned another message",
                         expected=f"SequenceNumber {number} with {', '.join(shown(v) for v in got)}",
                         observed=f"SequenceNumber {again.SequenceNumber} with {', '.join(shown(v) for v in values) or 'no DataChange'}")
            else:
                # "Subscription Publish Min 02": without a retransmission queue, Bad_MessageNotAvailable
                expect_status(code, [ua.StatusCodes.BadMessageNotAvailable], f"Republish of message {number} (not retained)")
            reply = await republish(sub.id, number + 1000)
            expect_status(result_of(reply), [ua.StatusCodes.BadMessageNotAvailable], f"Republish of never-sent message {number + 1000}")
            reply = await republish(sub.id + 1000, number)
            expect_status(result_of(reply), [ua.StatusCodes.BadSubscriptionIdInvalid], "Republish on an unknown subscription")
            await delete_subscription(s, sub)

    dut.run(check())
