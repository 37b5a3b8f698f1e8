"""Nothing written is lost (OPC UA): random sequences of Writes and Reads over the server's
writable points, checked against a model of what each Value must hold (a Hypothesis
RuleBasedStateMachine).  Each sequence runs on a session of its own: Writes of one value, of
several nodes in one WriteRequest, and several WriteRequests in flight at once on the session,
then Reads of every point.  A failure is shrunk to the shortest sequence that still shows it;
that sequence, numbered, and its frames are the evidence.

What the model assumes is what OPC 10000-4 Part 4 v1.04 says, nothing stricter
(https://reference.opcfoundation.org/Core/Part4/v104/docs/5.10.4.1):

- "The values are written to the data source ... and the Service does not return until it
  writes the values or determines that the value cannot be written"; where the Server cannot
  verify the write it "should report a success code that indicates that the write was not
  verified", and an unconditional success where it can.  So a WriteValue answered Good was
  written, and a Read afterwards with maxAge 0 (§5.10.2.2: a new value from the data source)
  returns it until the next write.  Any other result leaves the node's value open (a Bad code
  is not a promise that nothing changed, a Good_ or Uncertain code not that the value is the one
  sent) until it is read again.
- "The order the operations are processed in the Server is not defined ... If an Attribute and
  Node combination is contained in more than one operation, the order of the processing is
  undefined.  If a Client requires sequential processing the Client needs separate Service
  calls."  So no WriteRequest here names a node twice (Part 4 leaves the result open), and
  ordered writes are separate calls, each awaited before the next is sent.
- Requests in flight at once on one Session: we found no text that requires a Server to
  process them in the order they were sent, neither in Part 4 (§4.2, the request/response
  Service procedures, https://reference.opcfoundation.org/v104/Core/docs/Part4/4.2, nor
  §5.10.4.1) nor in Part 6 (the SequenceNumber of §6.7.2.4 orders the MessageChunks on a
  channel, not the processing of requests).  So a node written by more than one request in
  flight at once must hold one of their values, any of them.

No `replay` block is written: the sequence's bytes belong to its secure channel and session
(channel id, token, authentication token, sequence numbers, nonces), so sent again as recorded
they would be refused; the numbered sequence is the evidence, and the run's seed generates it
again (`harness certify ... --seed N -k ROB-UA-STATEFUL-WRITES`).
"""

from __future__ import annotations

import asyncio
import math
import string
import time
from collections import Counter

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.errors import Flaky
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from harness.conformance import DeviceFailure, case, fail, inconclusive, not_applicable
from harness.model import Evidence
from harness.opcua import UaTransportError, ua
from harness.profile import Point, engineering_value, same_point_value
from harness.profile_opcua import point_ua_type

from ..opcua.support import CASE_TIMEOUT_S, P4, UaDut, describe, status_name

CASE_ID = "ROB-UA-STATEFUL-WRITES"
MAX_POINTS = 16  # writable points exercised at most (each sequence reads them all in one request)
STEPS = 25  # steps per sequence
SEQUENCES = 25  # sequences tried (before shrinking)
MAX_IN_FLIGHT = 4  # WriteRequests in flight at once on the session
MAX_PER_CONCURRENT_REQUEST = 3  # WriteValues in each of them
STEP_LIMIT_TIMEOUTS = 6  # a step (opening a session: up to five requests) ends within this many response timeouts
WRITE_VALUES_UNIT = "Attribute Write Values"
RAW_INT_RANGES = {"int16": (-32768, 32767), "uint16": (0, 65535), "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1)}
TEXT = string.ascii_letters + string.digits + " -_."  # one byte each in UTF-8: `length` is in bytes
SCALED_FLOAT_BOUND = 1e9  # a scaled float point's raw values stay within this, so that raw * scale stays finite


# ---------------------------------------------------------------------------- values of a point

def writable_scalars(profile) -> list[Point]:
    return [p for p in profile.points if p.writable and not p.array and p.node_id]


def values_of(point: Point):
    """Engineering values of the point's type and range: raw values the point can hold, times
    the scale for a scaled point (a Double on OPC UA)."""
    kind = point.type
    if kind == "bool":
        raw = st.booleans()
    elif kind in RAW_INT_RANGES:
        raw = st.integers(*RAW_INT_RANGES[kind])
    elif kind in ("float32", "float64"):
        bound = SCALED_FLOAT_BOUND if point.scale is not None else None
        raw = st.floats(None if bound is None else -bound, bound, allow_nan=False, allow_infinity=False,
                        width=32 if kind == "float32" else 64)
    elif kind == "string":
        raw = st.text(alphabet=TEXT, min_size=1, max_size=max(1, point.length))
    else:
        raise ValueError(f"point {point.name}: no values for type {kind}")
    return raw if point.scale is None else raw.map(lambda r: engineering_value(point, r))


def variant(point: Point, value) -> ua.Variant:
    """The value as a Variant of the point's DataType (VariantType explicit: a Python int would
    otherwise go out as Int64)."""
    return ua.Variant(value, getattr(ua.VariantType, point_ua_type(point)))


def same(point: Point, expected, observed) -> bool:
    """The value read is the one written, as the point's type defines equality (float32 after
    rounding; a scaled value to a relative 1e-9, 1e-6 over a float32 raw value, since the
    device computes raw * scale itself)."""
    if observed is None or isinstance(observed, list):
        return False
    if point.type == "bool":
        return isinstance(observed, bool) and observed == expected
    if point.type == "string":
        return isinstance(observed, str) and observed.rstrip("\x00") == expected
    if isinstance(observed, bool) or not isinstance(observed, (int, float)):
        return False
    if point.scale is not None:
        rel = 1e-6 if point.type == "float32" else 1e-9
        return math.isclose(expected, observed, rel_tol=rel, abs_tol=abs(point.scale) * 1e-9)
    return same_point_value(point, expected, observed)


def show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------- one sequence's session

class Budget:
    """The case's time: sequences (and shrinking) stop sending once it is spent.  Shrinking has
    a limit of its own from the first failure on (the profile's robustness.shrink_time_ms)."""

    def __init__(self, total_s: float, step_s: float, shrink_s: float):
        self.deadline = time.monotonic() + total_s
        self.total_s, self.step_s, self.shrink_s = total_s, step_s, shrink_s
        self.limit_s = total_s  # what `hit` refers to: the case's time, or the shrinking time
        self.hit = False
        self._shrinking = False

    def failure_seen(self) -> None:
        if not self._shrinking:
            self._shrinking = True
            end = time.monotonic() + self.shrink_s
            if end < self.deadline:
                self.deadline, self.limit_s = end, self.shrink_s

    def spent(self) -> bool:
        if time.monotonic() >= self.deadline:
            self.hit = True
        return self.hit


class SequenceSession:
    """An activated session on an event loop of its own, recording its frames into an evidence
    of its own (kept only for the failing sequence).  Every operation ends within `limit_s`
    (each request also has the profile's response timeout); a stall, a missing answer or a
    closed channel is a DeviceFailure."""

    def __init__(self, dut: UaDut, user: str | None, limit_s: float, evidence: Evidence):
        self.evidence = evidence
        self._dut = UaDut(dut.target, dut.profile, evidence, [])
        self._limit_s = limit_s
        self._loop = asyncio.new_event_loop()
        self._context = None
        self.s = None
        try:
            context = self._dut.session(user=user)
            self.s = self.run(context.__aenter__(), "opening a session")
            self._context = context
        except BaseException:
            self.close()
            raise

    def run(self, coro, what: str):
        try:
            return self._loop.run_until_complete(asyncio.wait_for(coro, self._limit_s))
        except asyncio.TimeoutError:
            raise DeviceFailure(f"{what}: not done within {self._limit_s:g} s: the server stalled") from None
        except UaTransportError as exc:
            raise DeviceFailure(f"{what}: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        try:
            if self._context is not None:
                context, self._context = self._context, None
                self._loop.run_until_complete(asyncio.wait_for(context.__aexit__(None, None, None), self._limit_s))
        except Exception:  # noqa: BLE001 - closing is best effort; the sequence's verdict is made
            pass
        finally:
            self._loop.close()


def read_request(nodes: list[ua.NodeId]) -> ua.ReadRequest:
    """A Read of every node's Value with maxAge 0: the Server reads the data source (§5.10.2.2)."""
    request = ua.ReadRequest()
    request.Parameters.MaxAge = 0
    request.Parameters.TimestampsToReturn = ua.TimestampsToReturn.Neither
    for node in nodes:
        item = ua.ReadValueId()
        item.NodeId, item.AttributeId = node, ua.AttributeIds.Value
        request.Parameters.NodesToRead.append(item)
    return request


def writer_user(dut: UaDut) -> str | None:
    """Writes go through the profile's test user when the device claims user name tokens (a
    device may keep anonymous sessions read-only), as the OPC UA suite's write cases do."""
    if "username" in dut.ua.user_tokens and dut.ua.users:
        return dut.ua.users[0].name
    return None


# ---------------------------------------------------------------------------- the state machine

def _machine(dut: UaDut, points: list[Point], nodes: list[ua.NodeId], user: str | None, budget: Budget):
    """A state machine class bound to this server and its writable points."""
    count = len(points)
    per_request = min(count, dut.ua.limits.get("max_nodes_per_write") or count)
    # (point index, value): a WriteValue; lists of them are unique by node (never twice in one request)
    item = st.one_of(*[st.tuples(st.just(i), values_of(p)) for i, p in enumerate(points)])

    def distinct(low: int, high: int):
        return st.lists(item, min_size=low, max_size=high, unique_by=lambda t: t[0])

    class WritesHeld(RuleBasedStateMachine):
        failure: dict = {}  # the last (so, after shrinking, the shortest) failing sequence
        sequences = 0
        good = 0  # WriteValues answered Good
        refused: Counter = Counter()  # other results of WriteValues, by name

        def __init__(self):
            super().__init__()
            self.steps: list[str] = []
            self.held: list[list | None] = [None] * count  # values a point may hold; None: any (not known)
            self.session: SequenceSession | None = None
            if budget.spent():
                return  # the case's time is up: this sequence sends nothing
            type(self).sequences += 1
            frames = Evidence()
            try:
                self.session = SequenceSession(dut, user, budget.step_s, frames)
            except DeviceFailure as exc:
                budget.failure_seen()
                type(self).failure = {"message": f"opening a session: {exc}", "steps": [], "frames": list(frames.frames)}
                raise

        def teardown(self):
            if self.session is not None:
                self.session.close()

        # ------------------------------------------------------------ plumbing

        def _live(self) -> bool:
            if self.session is not None and budget.spent():
                self.session.close()
                self.session = None
            return self.session is not None

        def _failed(self, message: str) -> None:
            budget.failure_seen()
            type(self).failure = {"message": message, "steps": list(self.steps),
                                  "frames": list(self.session.evidence.frames) if self.session is not None else []}

        def _run(self, coro, what: str):
            try:
                return self.session.run(coro, what)
            except DeviceFailure as exc:
                self._failed(str(exc))
                raise

        def _fail(self, message: str, expected: str, observed: str) -> None:
            self._failed(message)
            fail(message, expected=expected, observed=observed)

        def _read_all(self, what: str) -> list:
            reply = self._run(self.session.s.request(read_request(nodes)), what)
            if not isinstance(reply, ua.ReadResponse) or not reply.ResponseHeader.ServiceResult.is_good():
                self._fail(f"{what}: the Read did not succeed: {describe(reply)}", expected="a ReadResponse, Good",
                           observed=describe(reply))
            if len(reply.Results) != count:
                self._fail(f"{what}: {len(reply.Results)} results for {count} nodes (Part 4 §5.10.2.2)",
                           expected=f"{count} results", observed=describe(reply))
            bad = [f"{p.name}: {status_name(dv.StatusCode)}" for p, dv in zip(points, reply.Results)
                   if not dv.StatusCode.is_good()]
            if bad:
                self._fail(f"{what}: {len(bad)} writable point(s) cannot be read ({'; '.join(bad[:4])})",
                           expected="a Good value for every writable point", observed="; ".join(bad))
            return [dv.Value.Value if dv.Value is not None else None for dv in reply.Results]

        def _write(self, requests: list[list[tuple[int, object]]], what: str) -> list[str]:
            """Send the WriteRequests (all in flight at once when more than one), then update the
            model from their results; the results, per request, in words."""
            session = self.session.s

            async def send():
                return await asyncio.gather(*(session.write([(nodes[i], variant(points[i], v)) for i, v in request])
                                              for request in requests), return_exceptions=True)

            replies = self._run(send(), what)
            goods: dict[int, list] = {}
            open_again: set[int] = set()
            shown = []
            for n, (request, reply) in enumerate(zip(requests, replies), 1):
                which = f"WriteRequest {n} of {len(requests)}" if len(requests) > 1 else "the WriteRequest"
                if isinstance(reply, UaTransportError):  # no answer, or the channel closed
                    self._fail(f"{what}: {which}: {type(reply).__name__}: {reply}", expected="a WriteResponse",
                               observed=str(reply))
                if isinstance(reply, BaseException):
                    raise reply  # not the server's doing
                if not isinstance(reply, ua.WriteResponse) or not reply.ResponseHeader.ServiceResult.is_good():
                    codes, results = [describe(reply)] * len(request), [None] * len(request)  # the service failed
                elif len(reply.Results) != len(request):
                    self._fail(f"{what}: {which}: {len(reply.Results)} results for {len(request)} WriteValues "
                               "(Part 4 §5.10.4.2)",
                               expected=f"{len(request)} results", observed=describe(reply))
                else:
                    codes, results = [status_name(code) for code in reply.Results], reply.Results
                for (i, v), code, result in zip(request, codes, results):
                    if result is not None and result.value == ua.StatusCodes.Good:
                        written = goods.setdefault(i, [])
                        if not any(same(points[i], w, v) for w in written):
                            written.append(v)
                        type(self).good += 1
                    else:
                        open_again.add(i)
                        type(self).refused[code] += 1
                shown.append(", ".join(codes))
            for i, written in goods.items():
                self.held[i] = written
            for i in open_again:
                self.held[i] = None
            return shown

        # ------------------------------------------------------------ rules

        @initialize()
        def read_initial_values(self):
            if not self._live():
                return
            self.steps.append(f"Read the {count} writable points (maxAge 0): the starting values")
            found = self._read_all("reading the starting values")
            self.held = [[v] for v in found]
            self.steps[-1] += " (" + ", ".join(f"{p.name} = {show(v)}" for p, v in zip(points, found)) + ")"

        @rule(write=item)
        def write_one(self, write):
            """One WriteRequest with one WriteValue, answered before anything else is sent."""
            if not self._live():
                return
            i, v = write
            self.steps.append(f"Write {points[i].name} = {show(v)}")
            self.steps[-1] += " -> " + self._write([[write]], self.steps[-1])[0]

        @precondition(lambda self: per_request >= 2)
        @rule(writes=distinct(2, per_request))
        def write_several(self, writes):
            """One WriteRequest with several WriteValues, each for a different node."""
            if not self._live():
                return
            self.steps.append("Write in one request: " + ", ".join(f"{points[i].name} = {show(v)}" for i, v in writes))
            self.steps[-1] += " -> " + self._write([writes], self.steps[-1])[0]

        @rule(requests=st.lists(distinct(1, min(MAX_PER_CONCURRENT_REQUEST, per_request)), min_size=2, max_size=MAX_IN_FLIGHT))
        def write_in_flight_at_once(self, requests):
            """Several WriteRequests sent at once on the session, the answers awaited together: a
            node written by more than one of them may hold any of their values (no order is
            required among requests in flight)."""
            if not self._live():
                return
            self.steps.append(f"{len(requests)} WriteRequests in flight at once: " + "; ".join(
                f"({n}) " + ", ".join(f"{points[i].name} = {show(v)}" for i, v in request)
                for n, request in enumerate(requests, 1)))
            results = self._write(requests, self.steps[-1])
            self.steps[-1] += " -> " + "; ".join(f"({n}) {r}" for n, r in enumerate(results, 1))

        @rule()
        def read_back(self):
            """A Read of every point: each holds what was last written and answered Good."""
            if not self._live():
                return
            self.steps.append(f"Read back the {count} writable points")
            found = self._read_all("read back")
            wrong = []
            for i, (point, observed) in enumerate(zip(points, found)):
                possible = self.held[i]
                if possible is None or any(same(point, v, observed) for v in possible):
                    self.held[i] = [observed]
                    continue
                if len(possible) == 1:
                    wrong.append(f"{point.name} holds {show(observed)}, last written {show(possible[0])} (answered Good)")
                else:
                    wrong.append(f"{point.name} holds {show(observed)}, written by requests in flight at once (all answered "
                                 f"Good): one of {', '.join(show(v) for v in possible)}")
            if wrong:
                self.steps[-1] += ": " + "; ".join(wrong)
                self._fail(f"read back: {len(wrong)} point(s) do not hold what was written and answered Good "
                           f"({'; '.join(wrong[:4])})",
                           expected="every point holds the value last written to it and answered Good (for a point "
                                    "written by requests in flight at once, one of their values)",
                           observed="; ".join(wrong))

    return WritesHeld


# ---------------------------------------------------------------------------- the case

def _prepare(dut: UaDut, evidence, points: list[Point], user: str | None) -> tuple[list[ua.NodeId], list]:
    """The points' NodeIds (their namespace index as the server numbers it) and their values
    before the case, read on a session of the case's own."""
    scratch = UaDut(dut.target, dut.profile, Evidence(), [])

    async def prepare():
        async with scratch.session(user=user) as s:
            nodes = [await scratch.node(s, p.node_id) for p in points]
            reply = await s.request(read_request(nodes))
        if not isinstance(reply, ua.ReadResponse) or len(reply.Results) != len(points):
            fail("reading the writable points before the case did not succeed", expected="a ReadResponse with a "
                 "result per point", observed=describe(reply))
        bad = [f"{p.name}: {status_name(dv.StatusCode)}" for p, dv in zip(points, reply.Results) if not dv.StatusCode.is_good()]
        if bad:
            fail(f"{len(bad)} writable point(s) cannot be read: {'; '.join(bad)}", expected="a Good value for each",
                 observed="; ".join(bad))
        return nodes, [dv.Value.Value for dv in reply.Results]

    try:
        return scratch.run(prepare())
    except UaTransportError as exc:  # no answer, or the channel closed, before anything was written
        evidence.frames += scratch.evidence.frames
        fail(f"reading the writable points before the case: {type(exc).__name__}: {exc}",
             expected="a Good value for each writable point", observed=str(exc))
    except DeviceFailure:
        evidence.frames += scratch.evidence.frames
        raise


def _restore(dut: UaDut, evidence, points: list[Point], nodes: list[ua.NodeId], originals: list, user: str | None) -> None:
    """Write back the values found before the case (best effort, noted)."""
    scratch = UaDut(dut.target, dut.profile, Evidence(), [])
    items = [(node, variant(p, v)) for p, node, v in zip(points, nodes, originals)]
    per_request = dut.ua.limits.get("max_nodes_per_write") or len(items)

    async def restore():
        async with scratch.session(user=user) as s:
            return [await s.write(items[n:n + per_request]) for n in range(0, len(items), per_request)]

    try:
        replies = scratch.run(restore(), timeout=STEP_LIMIT_TIMEOUTS * dut.timeout + 1)
    except Exception as exc:  # noqa: BLE001 - the verdict is made; restoring is a courtesy
        evidence.notes.append(f"the values found before the case were not written back: {exc}")
        return
    for reply in replies:
        if not isinstance(reply, ua.WriteResponse) or any(code.value != ua.StatusCodes.Good for code in reply.Results):
            evidence.notes.append(f"writing back the values found before the case: {describe(reply)}")


@case(CASE_ID, "Random sequences of Writes (single, several nodes, requests in flight at once) and Reads hold every write "
      "answered Good", requirements=["ROB-UA-P4-5.10.4-WRITES-HELD"], level="MUST", clause=f"{P4} §5.10.4.1, §5.10.4.2")
def test_writes_answered_good_are_held(dut, evidence, rob, harness_seed):
    points = writable_scalars(dut.profile)
    if not points:
        not_applicable("the profile has no writable scalar point with an OPC UA node")
    if WRITE_VALUES_UNIT not in dut.units:
        not_applicable(f"the device does not claim the conformance unit {WRITE_VALUES_UNIT}")
    limit = min(MAX_POINTS, dut.ua.limits.get("max_nodes_per_read") or MAX_POINTS)
    if len(points) > limit:
        evidence.notes.append(f"{len(points)} writable scalar points; the first {limit} are exercised")
        points = points[:limit]
    user = writer_user(dut)
    nodes, originals = _prepare(dut, evidence, points, user)
    budget = Budget(CASE_TIMEOUT_S, STEP_LIMIT_TIMEOUTS * dut.timeout + 1, rob.shrink_time_ms / 1000)
    machine = _machine(dut, points, nodes, user, budget)
    config = settings(max_examples=SEQUENCES, stateful_step_count=STEPS, database=None, deadline=None,
                      # no explain phase: it re-runs the failing sequence's variants against the device,
                      # which costs more than the shrinking itself and adds nothing to the evidence
                      phases=(Phase.generate, Phase.shrink),
                      suppress_health_check=list(HealthCheck), print_blob=False)
    started = time.monotonic()
    try:
        run_state_machine_as_test(seed(harness_seed)(machine), settings=config)
    except Exception as exc:
        if not machine.failure:
            raise  # not the device's doing: the harness failed (ERROR)
        _record_failure(evidence, machine.failure, harness_seed, budget, flaky=isinstance(exc, Flaky))
        fail(machine.failure["message"], expected="every point holds the value last written to it and answered Good",
             observed=machine.failure["message"])
    finally:
        _restore(dut, evidence, points, nodes, originals, user)
    took = time.monotonic() - started
    names = ", ".join(p.name for p in points)
    evidence.notes.append(f"{machine.sequences} sequences of up to {STEPS} steps over {len(points)} writable points ({names}), "
                          f"each on a session of its own, in {took:.1f} s (seed {harness_seed}): every one of "
                          f"{machine.good} WriteValues answered Good was held")
    if budget.hit:
        evidence.notes.append(f"stopped at the case's time limit of {budget.total_s:g} s after {machine.sequences} of "
                              f"{SEQUENCES} sequences")
    if machine.refused:
        evidence.notes.append("WriteValues not answered Good (their nodes' values left open until read again): "
                              + ", ".join(f"{code} x{n}" for code, n in machine.refused.most_common()))
    if machine.good == 0:
        inconclusive("the server answered no WriteValue Good: nothing written to check "
                     f"({', '.join(f'{code} x{n}' for code, n in machine.refused.most_common(3))})")


def _record_failure(evidence, failure: dict, harness_seed: int, budget: Budget, *, flaky: bool) -> None:
    """The shortest failing sequence, numbered, and its frames; why there is no replay block."""
    if budget.hit:
        which = (f"the shortest sequence found when shrinking stopped at its time limit of {budget.limit_s:g} s "
                 f"(seed {harness_seed}), on a session of its own:")
    elif flaky:
        which = (f"the last sequence that showed it (seed {harness_seed}), on a session of its own; the failure did not "
                 "come back each time Hypothesis ran a sequence again, so it depends on more than the sequence (e.g. on "
                 "how many writes the server had before), and this one need not be the shortest:")
    else:
        which = f"the shortest sequence that shows it, after shrinking (seed {harness_seed}), on a session of its own:"
    evidence.notes.append(which)
    evidence.notes += [f"{n}. {step}" for n, step in enumerate(failure["steps"], 1)]
    evidence.frames += failure["frames"]
    evidence.notes.append("no replay block: the sequence's bytes belong to its secure channel and session (channel id, "
                          "tokens, sequence numbers), so they cannot be sent again as recorded; the numbered sequence and "
                          f"its frames are the evidence, and `harness certify ... --seed {harness_seed} -k {CASE_ID}` "
                          "generates the same sequences again (against a device in the same state)")
