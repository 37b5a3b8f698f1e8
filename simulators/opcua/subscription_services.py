"""The simulator's Subscription and MonitoredItem service sets (OPC UA Part 4 v1.04 §5.12, §5.13) where asyncua's deviates.

`handle(processor, typeid, requesthdr, seqhdr, body)` is called by the service layer
(`services.ConformantProcessor`) for every request of an activated session; it answers the
request (with `processor._respond` / `processor._fault`) and returns True, or returns False to
leave the request to asyncua.

asyncua 2.1.0 keeps the subscriptions, their publishing loop and the Publish queue; this
module answers the requests where it deviates, and fixes up each subscription it creates:

- CreateSubscription / ModifySubscription (§5.13.2.2, §5.13.3.2): a 0 or negative publishing
  interval becomes the fastest supported one, a keep-alive count of 0 the smallest (1), the
  lifetime count at least three times the keep-alive count; Modify applies what it returns
  (asyncua ignores the request and answers the old values);
- CreateMonitoredItems / ModifyMonitoredItems (§7.16): the revised sampling interval is the
  requested one (-1: the publishing interval; never below MinSupportedSampleRate), queue size
  0 or 1 is 1 (asyncua makes 0 its maximum), Modify applies and revises the parameters and
  answers Bad_MonitoredItemIdInvalid for an unknown item (asyncua fails with an internal error);
- the monitored-item queue (§5.12.1.5): discardOldest is honoured and a discard sets the
  Overflow InfoBit (InfoType DataValue) on the value the spec names;
- the absolute deadband (§7.17.2) compares with the last value queued, not the last sampled;
- Republish (§5.13.6): Bad_SubscriptionIdInvalid for a subscription that is not the session's,
  Bad_MessageNotAvailable for a message not in the retransmission queue (asyncua answers Good
  with an empty message), and a republished message stays there until acknowledged.

Errors raised here reach asyncua's `process_message`, which answers them with a ServiceFault,
so no request can break the connection.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import math
from functools import partial

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.ua.ua_binary import struct_from_binary

log = logging.getLogger("simulators.opcua")

MIN_PUBLISHING_MS = 20.0       # the fastest publishing interval the simulator offers
MAX_PUBLISHING_MS = 3_600_000.0
MAX_SAMPLING_MS = 3_600_000.0
# Part 4 §7.34.1: InfoType DataValue (bits 10-11 = 01) with the Overflow InfoBit (bit 7).
OVERFLOW_INFO = 0x0400 | 0x0080


def _id(name: str) -> ua.NodeId:
    return ua.NodeId(getattr(ua.ObjectIds, f"{name}Request_Encoding_DefaultBinary"))


async def handle(processor, typeid, requesthdr, seqhdr, body) -> bool:
    handler = _HANDLERS.get(typeid)
    if handler is None:
        return False
    await handler(processor, requesthdr, seqhdr, body)
    return True


# ---------------------------------------------------------------------------- Subscription services


def _revised_subscription(iserver, interval: float, keepalive: int, lifetime: int) -> tuple[float, int, int]:
    if not math.isfinite(interval) or interval < MIN_PUBLISHING_MS:
        interval = MAX_PUBLISHING_MS if interval == math.inf else MIN_PUBLISHING_MS
    interval = min(interval, MAX_PUBLISHING_MS)
    keepalive = min(max(int(keepalive), 1), iserver.max_keep_alive_count)
    if lifetime <= 0:
        lifetime = iserver.max_lifetime_count  # no wish: asyncua's default
    lifetime = min(max(int(lifetime), 3 * keepalive), max(iserver.max_lifetime_count, 3 * keepalive))
    return float(interval), keepalive, lifetime


async def _create_subscription(processor, requesthdr, seqhdr, body) -> None:
    params = struct_from_binary(ua.CreateSubscriptionParameters, body)
    (params.RequestedPublishingInterval, params.RequestedMaxKeepAliveCount,
     params.RequestedLifetimeCount) = _revised_subscription(processor.iserver, params.RequestedPublishingInterval,
                                                            params.RequestedMaxKeepAliveCount, params.RequestedLifetimeCount)
    result = await processor.session.create_subscription(params, processor.forward_publish_response,
                                                         request_callback=processor.get_publish_request)
    sub = processor.session.subscription_service.subscriptions.get(result.SubscriptionId)
    if sub is not None:
        _conform(sub)
    response = ua.CreateSubscriptionResponse()
    response.Parameters = result
    processor.session.touch()
    processor.send_response(requesthdr.RequestHandle, seqhdr, response)


async def _modify_subscription(processor, requesthdr, seqhdr, body) -> None:
    params = struct_from_binary(ua.ModifySubscriptionParameters, body)
    sub = _own_subscription(processor, params.SubscriptionId)
    interval, keepalive, lifetime = _revised_subscription(processor.iserver, params.RequestedPublishingInterval,
                                                          params.RequestedMaxKeepAliveCount, params.RequestedLifetimeCount)
    data = sub.data
    changed = interval != data.RevisedPublishingInterval
    data.RevisedPublishingInterval, data.RevisedMaxKeepAliveCount, data.RevisedLifetimeCount = interval, keepalive, lifetime
    if changed and sub._task is not None and not sub._closing:
        # asyncua's publishing loop reads the interval once: start it again with the new one
        sub._task.cancel()
        sub._task = asyncio.create_task(sub._subscription_loop())
    response = ua.ModifySubscriptionResponse()
    response.Parameters = ua.ModifySubscriptionResult(RevisedPublishingInterval=interval, RevisedLifetimeCount=lifetime,
                                                      RevisedMaxKeepAliveCount=keepalive)
    processor.session.touch()
    processor.send_response(requesthdr.RequestHandle, seqhdr, response)


async def _republish(processor, requesthdr, seqhdr, body) -> None:
    params = struct_from_binary(ua.RepublishParameters, body)
    sub = _own_subscription(processor, params.SubscriptionId)
    kept = sub._not_acknowledged_results.get(params.RetransmitSequenceNumber)
    if kept is None:
        raise ServiceError(ua.StatusCodes.BadMessageNotAvailable)
    response = ua.RepublishResponse()
    response.NotificationMessage = kept.NotificationMessage
    processor.session.touch()
    processor.send_response(requesthdr.RequestHandle, seqhdr, response)


def _own_subscription(processor, subscription_id: int):
    sub = processor.session.subscription_service.subscriptions.get(subscription_id)
    if sub is None or sub.session_id != processor.session.session_id:
        raise ServiceError(ua.StatusCodes.BadSubscriptionIdInvalid)
    return sub


# ---------------------------------------------------------------------------- MonitoredItem services


def _min_sampling(processor) -> float:
    value = processor.iserver.aspace.read_attribute_value(
        ua.NodeId(ua.ObjectIds.Server_ServerCapabilities_MinSupportedSampleRate), ua.AttributeIds.Value)
    rate = value.Value.Value if value is not None and value.Value is not None else None
    return float(rate) if isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0 else 0.0


def _revised_sampling(requested: float, sub, minimum: float) -> float:
    """§7.16: -1 (any negative) is the publishing interval; otherwise the request, never
    below the server's minimum (every change of a point is seen at once, so any interval
    is one the simulator keeps)."""
    if math.isnan(requested) or requested < 0:
        requested = sub.data.RevisedPublishingInterval
    return float(min(max(requested, minimum), MAX_SAMPLING_MS))


def _revised_queue(requested: int, sub) -> int:
    """§7.16: 0 or 1 is the default queue size, 1 for data items; larger up to the server's maximum."""
    return max(1, min(int(requested), sub.max_queue_size))


def _too_many(processor, count: int) -> None:
    if count == 0:
        raise ServiceError(ua.StatusCodes.BadNothingToDo)
    limit = processor.device.limits.get("max_monitored_items_per_call", 0)
    if limit and count > limit:
        raise ServiceError(ua.StatusCodes.BadTooManyOperations)


async def _create_monitored_items(processor, requesthdr, seqhdr, body) -> None:
    params = struct_from_binary(ua.CreateMonitoredItemsParameters, body)
    sub = _own_subscription(processor, params.SubscriptionId)
    _too_many(processor, len(params.ItemsToCreate))
    requested = []
    for item in params.ItemsToCreate:
        wanted = item.RequestedParameters
        requested.append((wanted.SamplingInterval, wanted.DiscardOldest))
        if item.ItemToMonitor.AttributeId != ua.AttributeIds.EventNotifier:
            wanted.QueueSize = _revised_queue(wanted.QueueSize, sub)  # event queues: asyncua's revision
    results = await processor.session.create_monitored_items(params)
    minimum = _min_sampling(processor)
    items = sub.monitored_item_srv._monitored_items
    for result, (sampling, discard_oldest), item in zip(results, requested, params.ItemsToCreate):
        if not result.StatusCode.is_good():
            continue
        if item.ItemToMonitor.AttributeId != ua.AttributeIds.EventNotifier:
            result.RevisedSamplingInterval = _revised_sampling(sampling, sub, minimum)
        mdata = items.get(result.MonitoredItemId)
        if mdata is not None:
            mdata.discard_oldest = discard_oldest
            result.RevisedQueueSize = mdata.queue_size
    response = ua.CreateMonitoredItemsResponse()
    response.Results = results
    processor.session.touch()
    processor.send_response(requesthdr.RequestHandle, seqhdr, response)


async def _modify_monitored_items(processor, requesthdr, seqhdr, body) -> None:
    params = struct_from_binary(ua.ModifyMonitoredItemsParameters, body)
    sub = _own_subscription(processor, params.SubscriptionId)
    _too_many(processor, len(params.ItemsToModify))
    minimum = _min_sampling(processor)
    items = sub.monitored_item_srv._monitored_items
    results = []
    for item in params.ItemsToModify:
        result = ua.MonitoredItemModifyResult()
        mdata = items.get(item.MonitoredItemId)
        if mdata is None:
            result.StatusCode = ua.StatusCode(ua.StatusCodes.BadMonitoredItemIdInvalid)
            results.append(result)
            continue
        wanted = item.RequestedParameters
        data_item = mdata.read_value_id is None or mdata.read_value_id.AttributeId != ua.AttributeIds.EventNotifier
        mdata.client_handle = wanted.ClientHandle
        if data_item:
            mdata.filter = wanted.Filter  # a null filter is no filter (event filters stay as created)
            result.RevisedSamplingInterval = _revised_sampling(wanted.SamplingInterval, sub, minimum)
            mdata.queue_size = _revised_queue(wanted.QueueSize, sub)
        else:
            mdata.queue_size = sub.monitored_item_srv._revise_queue_size(wanted.QueueSize)
        mdata.discard_oldest = wanted.DiscardOldest
        queued = sub._triggered_datachanges.get(item.MonitoredItemId)
        while queued and len(queued) > mdata.queue_size:  # §5.12.3.2: the discard policy trims the queue
            del queued[0 if mdata.discard_oldest else -1]
        result.RevisedQueueSize = mdata.queue_size
        results.append(result)
    response = ua.ModifyMonitoredItemsResponse()
    response.Results = results
    processor.session.touch()
    processor.send_response(requesthdr.RequestHandle, seqhdr, response)


# ---------------------------------------------------------------------------- data changes of a subscription


def _conform(sub) -> None:
    """Route the subscription's data changes through the deadband and queue rules below."""
    service = sub.monitored_item_srv
    service.datachange_callback = partial(_datachange, service)


async def _datachange(service, handle: int, value: ua.DataValue, error: ua.StatusCode | None = None) -> None:
    if error:
        await service.trigger_statuschange(error)
        return
    mid = service._monitored_datachange.get(handle)
    mdata = service._monitored_items.get(mid) if mid is not None else None
    if mdata is None:
        return
    if mdata.mode == ua.MonitoringMode.Disabled:
        mdata.last_queued = None  # enabled again, the first sample is reported (§5.12.1.2)
        return
    last = getattr(mdata, "last_queued", None)
    if last is not None and not _reportable(last, value, mdata.filter):
        return
    mdata.last_queued = copy.deepcopy(value)
    notification = ua.MonitoredItemNotification(ClientHandle=mdata.client_handle, Value=value)
    await _enqueue(service.isub, mid, notification, mdata.queue_size, getattr(mdata, "discard_oldest", True))


async def _enqueue(sub, mid: int, notification: ua.MonitoredItemNotification, size: int, discard_oldest: bool) -> None:
    """§5.12.1.5: a full queue of one keeps the newest; a larger one discards the oldest (the
    next value gets the Overflow bit) or replaces the newest (the new value gets it)."""
    queue = sub._triggered_datachanges
    items = queue.get(mid)
    if items is None:
        queue[mid] = [notification]
        await sub._trigger_publish()
        return
    if not size or len(items) < size:
        items.append(notification)
    elif size == 1:
        items[:] = [notification]
    elif discard_oldest:
        del items[: len(items) - size + 1]
        items[0] = _with_overflow(items[0])
        items.append(notification)
    else:
        items[-1] = _with_overflow(notification)


def _with_overflow(notification: ua.MonitoredItemNotification) -> ua.MonitoredItemNotification:
    value = notification.Value
    code = value.StatusCode.value if value.StatusCode is not None else 0
    flagged = dataclasses.replace(value, StatusCode=ua.StatusCode(code | OVERFLOW_INFO))
    return ua.MonitoredItemNotification(ClientHandle=notification.ClientHandle, Value=flagged)


def _reportable(last: ua.DataValue, new: ua.DataValue, flt) -> bool:
    """§7.17.2 DataChangeFilter against the last queued value (STATUS_VALUE without a filter)."""
    trigger, deadband, band = _STATUS_VALUE, _NO_DEADBAND, 0.0
    if all(hasattr(flt, f) for f in ("Trigger", "DeadbandType", "DeadbandValue")):
        # a DataChangeFilter (asyncua decodes into a class of its own, with plain-int enums)
        trigger, deadband, band = _number(flt.Trigger), _number(flt.DeadbandType), flt.DeadbandValue
    if _code(last) != _code(new):
        return True
    if trigger == _STATUS:
        return False
    old_value, new_value = _plain(last), _plain(new)
    if deadband == _ABSOLUTE and _numeric(old_value) and _numeric(new_value):
        return _exceeds(old_value, new_value, band)
    if not _same(old_value, new_value):
        return True
    return (trigger == _STATUS_VALUE_TIMESTAMP and deadband == _NO_DEADBAND
            and (last.SourceTimestamp, last.SourcePicoseconds) != (new.SourceTimestamp, new.SourcePicoseconds))


def _number(x) -> int:
    return int(getattr(x, "value", x))


_STATUS, _STATUS_VALUE, _STATUS_VALUE_TIMESTAMP = (_number(t) for t in (
    ua.DataChangeTrigger.Status, ua.DataChangeTrigger.StatusValue, ua.DataChangeTrigger.StatusValueTimestamp))
_NO_DEADBAND, _ABSOLUTE = _number(ua.DeadbandType.None_), _number(ua.DeadbandType.Absolute)


def _code(dv: ua.DataValue) -> int:
    return dv.StatusCode.value if dv.StatusCode is not None else 0


def _plain(dv: ua.DataValue):
    return dv.Value.Value if dv.Value is not None else None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numeric(v) -> bool:
    return _is_number(v) or (isinstance(v, list) and all(_is_number(x) for x in v))


def _exceeds(old, new, band: float) -> bool:
    if isinstance(old, list) or isinstance(new, list):
        if not (isinstance(old, list) and isinstance(new, list)) or len(old) != len(new):
            return True
        return any(abs(a - b) > band for a, b in zip(old, new))
    return abs(new - old) > band


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True  # NaN is reported once, when the value enters it (§7.17.2)
    return a == b


_HANDLERS = {
    _id("CreateSubscription"): _create_subscription,
    _id("ModifySubscription"): _modify_subscription,
    _id("Republish"): _republish,
    _id("CreateMonitoredItems"): _create_monitored_items,
    _id("ModifyMonitoredItems"): _modify_monitored_items,
}
