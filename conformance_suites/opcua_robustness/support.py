"""What the OPC UA robustness cases share: how the monitor's session connects, the device's
liveness as a yes/no for the fuzzer, the Hello every connection starts with, and the Read
flood (judged by the monitor's record, like every attack: `judge_attack`)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

from harness.attacks import AttackResult
from harness.codec.opcua import uacp
from harness.liveness import answers_within
from harness.liveness_opcua import NodeCheck, opcua_probe, resolve_node_ids
from harness.opcua import UaChannel, UaTransportError, close_session, summarize, ua
from harness.opcua.login import open_session

from ..robustness import IEC, judge_attack

P6 = "OPC 10000-6 Part 6 v1.05"
BUFFER_SIZE = 65536  # the Hello's buffers: what harness.strategies.uacp assumes (message_chunks)
FLOOD_MAX_IN_FLIGHT = 2000  # Reads sent and not yet answered, at most; beyond that a due Read is not sent
FLOOD_DRAIN_S = 0.5  # after the flood, how long answers still in flight are awaited
SETUP_TIMEOUT_S = 5.0

__all__ = ["IEC", "P6", "Liveness", "hello", "judge_attack", "read_flood"]


def hello(dut) -> bytes:
    """A valid Hello for the server's endpoint (version 0, 64 KiB buffers, no limits)."""
    return uacp.encode(uacp.Hello(0, BUFFER_SIZE, BUFFER_SIZE, 0, 0, dut.url))


class Liveness:
    """Does the server answer a Read of the known nodes, within a time? (for the fuzzer)"""

    def __init__(self, dut, checks: Sequence[NodeCheck], timeout_s: float):
        self._probe = opcua_probe(dut.url, checks, security=dut.login_security())
        self._timeout_s = timeout_s

    def __call__(self, within_s: float) -> bool:
        return answers_within(self._probe, within_s, self._timeout_s)

    def close(self) -> None:
        self._probe.close()


# --------------------------------------------------------------------------- the Read flood


def read_flood(dut, checks: Sequence[NodeCheck], *, rate_per_s: float, duration_s: float, reply_timeout_s: float) -> AttackResult:
    """Read requests of the known nodes on one session of their own, at `rate_per_s` for
    `duration_s` (a fixed schedule), without waiting for the answers; counts the good ones."""
    budget = SETUP_TIMEOUT_S * 2 + duration_s + reply_timeout_s + FLOOD_DRAIN_S
    return asyncio.run(asyncio.wait_for(_read_flood(dut, checks, rate_per_s, duration_s, reply_timeout_s), budget))


async def _read_flood(dut, checks, rate_per_s: float, duration_s: float, reply_timeout_s: float) -> AttackResult:
    name = f"Read flood {rate_per_s:g}/s on one session"
    try:
        channel = (await open_session(dut.host, dut.port, dut.url, dut.login_security(), SETUP_TIMEOUT_S,
                                      session_name="harness-flood")).channel
        nodes = await resolve_node_ids(channel, [c.node_id for c in checks], SETUP_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - the server would not give the session: no flood, the monitor judges
        return AttackResult(name, 0, 0, 1, 0.0, 0.0, [f"no session for the flood: {type(exc).__name__}: {exc}"])
    loop = asyncio.get_running_loop()
    tally = _Tally()
    pending: set[asyncio.Task] = set()
    total = max(1, int(-(-rate_per_s * duration_s // 1)))
    start = loop.time()
    sent = unsent = 0
    try:
        while sent + unsent < total and channel.is_open:
            due = min(total, int((loop.time() - start) * rate_per_s) + 1)
            while sent + unsent < due:
                if len(pending) >= FLOOD_MAX_IN_FLIGHT:
                    unsent += 1
                    continue
                task = loop.create_task(_one_read(channel, nodes, reply_timeout_s, tally))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            channel.frames.clear()  # no evidence of each Read: a flood must not grow the heap
            pause = start + (sent + unsent) / rate_per_s - loop.time()
            await asyncio.sleep(max(0.0, pause))
        sending_s = loop.time() - start
        if pending:
            await asyncio.wait(set(pending), timeout=FLOOD_DRAIN_S)
    finally:
        for task in pending:
            task.cancel()
        await _close_quietly(channel)
    notes = []
    if unsent:
        notes.append(f"{unsent} Reads not sent: {FLOOD_MAX_IN_FLIGHT} were waiting for an answer")
    if sent + unsent < total:
        notes.append(f"stopped after {sent} Reads: the server closed the flood's connection")
    notes += [f"{n} of {sent} Reads: {why}" for why, n in tally.problems.most_common(5)]
    errors = unsent + sum(tally.problems.values())
    return AttackResult(name, sent, tally.good, errors, sending_s, sent / sending_s if sending_s > 0 else 0.0, notes)


class _Tally:
    def __init__(self) -> None:
        self.good = 0
        self.problems: Counter = Counter()


async def _one_read(channel: UaChannel, nodes, timeout_s: float, tally: _Tally) -> None:
    request = ua.ReadRequest()
    request.Parameters.TimestampsToReturn = ua.TimestampsToReturn.Neither
    for node in nodes:
        item = ua.ReadValueId()
        item.NodeId = node
        item.AttributeId = ua.AttributeIds.Value
        request.Parameters.NodesToRead.append(item)
    try:
        reply = await channel.request(request, timeout=timeout_s)
    except UaTransportError as exc:
        tally.problems[type(exc).__name__] += 1
        return
    except Exception as exc:  # noqa: BLE001 - counted, never left unretrieved in a task
        tally.problems[f"{type(exc).__name__}: {exc}"] += 1
        return
    if isinstance(reply, ua.ReadResponse) and reply.ResponseHeader.ServiceResult.is_good():
        tally.good += 1
    else:
        tally.problems[f"answered with {summarize(reply)}"] += 1


async def _close_quietly(channel: UaChannel) -> None:
    try:
        await asyncio.wait_for(close_session(channel, timeout=1.0), 1.0)
    except Exception:  # noqa: BLE001 - the flood is over; closing is best effort
        pass
    await channel.close(1.0)
