"""One OPC UA client stack under test, against simulators that misbehave on purpose.

The bundled simulator passes the whole OPC UA server suite, so what it sends under a planted
fault (`harness simulate --protocol opcua --fault ...`, see simulators/opcua/faults.py) is known
exactly; what the client stack makes of it is the verdict.

- `FaultySimulators` starts one simulator per fault set (a subprocess, through
  `harness.peers`), all the ones the selected cases need at once in the background, and shares
  each between the stacks' cases.
- `StackClients` keeps one adapter per stack for the session: every case connects it anew (a
  new secure channel and session) and disconnects it at its end, so the node-opcua process
  (about 1.5 s to start) is started once, not once per case.
- `ClientCase` connects the stack's adapter to a simulator (SecurityPolicy None, anonymous)
  through a `RecordingRelay` of the case's own, so the evidence holds every message that passed
  (over SecurityPolicy None the service in each MSG is named), and records every call, its
  outcome and duration, and what the simulator reports doing (its `uac-event` lines).
"""

from __future__ import annotations

import json
import math
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from harness.adapters.errors import AdapterError, NotInstalled
from harness.adapters.registry import make_client
from harness.conformance import HarnessError, not_applicable
from harness.model import Evidence
from harness.opcua.protocol import describe_message
from harness.peers.base import PeerError
from harness.peers.simulator_peer import start_simulator_server
from harness.profile import Profile, engineering_value
from harness.profile_opcua import point_ua_type
from harness.transport.relay import RecordingRelay, uacp_framing

P4 = "OPC 10000-4 Part 4 v1.04"
P6 = "OPC 10000-6 Part 6 v1.05"
RULE = "uac_rule"
TIMEOUT_S = 1.5  # the adapter timeout (connect and every call) unless a case needs another
START_WORKERS = 4  # simulators started side by side
EVENT_WAIT_S = 0.2  # after a failed call, how long to wait for the simulator's report of it
SERVER_STATE = "i=2259"  # Server_ServerStatus_State (Part 5 v1.04 §6.3.1): never hit by a read fault
UNKNOWN_NODE = "s=harness.no-such-node"


def rule(id: str, title: str, *, requirements: list[str], clause: str, faults: tuple[str, ...] = ()):
    """Mark a client-side case; it runs once per client stack (`<id>-<stack>`).  `faults` are the
    simulator faults it uses (the simulators are started ahead from the selected cases' faults)."""
    import pytest

    return getattr(pytest.mark, RULE)(id=id, title=title, requirements=list(requirements), clause=clause,
                                       faults=tuple(faults))


class FaultySimulators:
    """Simulators by fault set, shared for the session; `prestart` starts several in parallel."""

    def __init__(self, profile_path: str):
        self.profile_path = profile_path
        self._lock = threading.Lock()
        self._futures: dict[tuple[str, ...], object] = {}
        self._pool = ThreadPoolExecutor(max_workers=START_WORKERS, thread_name_prefix="uac-simulator")

    def _start(self, faults: tuple[str, ...]):
        try:
            return start_simulator_server(self.profile_path, protocol="opcua", faults=faults)
        except (PeerError, OSError) as exc:
            return HarnessError(f"the simulator with faults {', '.join(faults)} could not be started: {str(exc).splitlines()[0]}")

    def prestart(self, fault_sets) -> None:
        with self._lock:
            for faults in fault_sets:
                if faults not in self._futures:
                    self._futures[faults] = self._pool.submit(self._start, faults)

    def get(self, faults: tuple[str, ...]):
        self.prestart([faults])
        sim = self._futures[faults].result()  # bounded: start_simulator_server has a start-up timeout
        if isinstance(sim, HarnessError):
            raise sim
        if not sim.running:
            raise HarnessError(f"the simulator with faults {', '.join(faults)} is no longer running "
                               f"(exit code {sim.proc.returncode}): {sim.stderr_tail(5)}")
        return sim

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for future in self._futures.values():
            sim = future.result()
            if not isinstance(sim, HarnessError):
                sim.close()
        self._futures.clear()


class StackClients:
    """One adapter per client stack for the session (a stack that is not installed: remembered)."""

    def __init__(self):
        self._clients: dict[str, object] = {}

    def get(self, stack: str):
        if stack not in self._clients:
            try:
                self._clients[stack] = make_client(stack)
            except NotInstalled as exc:
                self._clients[stack] = HarnessError(f"the {stack} client stack is not installed: {exc}")
        client = self._clients[stack]
        if isinstance(client, HarnessError):
            raise client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            if not isinstance(client, HarnessError):
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing at the end must not fail the run
                    pass
        self._clients.clear()


class ClientCase:
    def __init__(self, stack: str, simulators: FaultySimulators, clients: StackClients, profile: Profile, evidence: Evidence):
        if profile.opcua is None:
            not_applicable("the profile has no opcua section: there is no OPC UA device to simulate")
        self.stack = stack
        self.simulators = simulators
        self.clients = clients
        self.profile = profile
        self.ua = profile.opcua
        self.evidence = evidence
        self.sim = None
        self.mark = self._seen = 0
        self.connected = None  # the adapter this case connected
        self._relays: dict[tuple[str, int], RecordingRelay] = {}  # one per simulator the case uses
        self._relay: RecordingRelay | None = None
        self._ns: int | None = None

    def __enter__(self) -> "ClientCase":
        return self

    def __exit__(self, *exc) -> None:
        if self.connected is not None:  # the connection ends with the case; the adapter stays for the next
            try:
                self.connected.disconnect()
            except Exception:  # noqa: BLE001 - ending a connection a fault broke must not hide the verdict
                pass
        for relay in self._relays.values():
            relay.close()

    # ------------------------------------------------------------------ connecting
    def connect(self, *faults: str, timeout: float = TIMEOUT_S, judged: bool = False):
        """The stack's adapter connected to a simulator with `faults`.  A failed connect is an
        ERROR (the environment) unless `judged`: then (client, error) is returned for the case to
        judge, since the fault is about connecting."""
        self.sim = sim = self.simulators.get(tuple(faults))
        self.mark = self._seen = last_seq(sim)  # what the simulator printed before this connect
        client = self.clients.get(self.stack)
        relay = self._relays.get((sim.host, sim.port))
        if relay is None:
            relay = self._relays[(sim.host, sim.port)] = RecordingRelay(sim.host, sim.port, self.evidence.frames.append,
                                                                        framing=uacp_framing(describe_message))
        self._relay = relay
        url = f"opc.tcp://{relay.host}:{relay.port}{sim.path}"
        what = (f"connect({url}, policy None, anonymous, timeout {timeout:g} s) to the simulator at {sim.url}"
                + (f" with faults {', '.join(faults)}" if faults else "") + ", through the recording relay")
        self._ns = None
        self.connected = client
        _, error = self.attempt(what, client.connect, url, timeout=timeout)
        if error is None:
            self.note(f"{self.stack} {getattr(client, 'version', '?')}" + (f" (process {client.pid})" if getattr(client, "pid", None) else ""))
        if judged:
            return client, error
        if error is not None:
            if isinstance(error, AdapterError):
                raise HarnessError(f"{self.stack} could not connect to the simulator with faults {', '.join(faults) or 'none'}, "
                                   f"which these faults do not touch: {type(error).__name__}: {error}")
            raise error
        return client

    def node(self, client, identifier: str) -> str:
        """The device namespace's node id (the NamespaceArray read is never hit by a read fault)."""
        if self._ns is None:
            ns, error = self.attempt(f"namespace_index({self.ua.namespace})", client.namespace_index, self.ua.namespace)
            if error is not None:
                raise HarnessError(f"the device namespace could not be looked up: {type(error).__name__}: {error}")
            self._ns = ns
        return f"ns={self._ns};{identifier}"

    def read_points(self, count: int) -> list:
        """`count` read-only points with values, their engineering values all different."""
        chosen, seen = [], []
        for p in self.profile.points:
            if p.writable or p.array or p.value is None or point_ua_type(p) not in ("Float", "Double", "Int16", "UInt16", "Int32", "UInt32"):
                continue
            value = engineering_value(p, p.value)
            if any(same_value(p, value, v) for v in seen):
                continue
            chosen.append(p)
            seen.append(value)
            if len(chosen) == count:
                return chosen
        not_applicable(f"the profile needs {count} read-only numeric points with different values")

    # ------------------------------------------------------------------ evidence
    def note(self, text: str) -> None:
        self.evidence.notes.append(text)

    def attempt(self, what: str, fn, *args, **kwargs):
        """(result, None) or (None, exception): one call, its outcome and duration in the evidence,
        followed by what the simulator reported doing meanwhile (its `uac-event` lines)."""
        t0 = time.monotonic()
        try:
            result = self._run(fn, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - every outcome is judged by the case
            detail = getattr(exc, "detail", "")
            text = f"{type(exc).__name__}: {exc}" + (f" [{detail}]" if detail and detail not in str(exc) else "")
            self.note(f"{what} -> {text[:400]} ({time.monotonic() - t0:.2f} s)")
            self.simulator_events(wait=EVENT_WAIT_S)
            return None, exc
        shown = repr(result)
        self.note(f"{what} -> {shown if len(shown) <= 200 else shown[:197] + '...'} ({time.monotonic() - t0:.2f} s)")
        self.simulator_events()
        return result, None

    def _run(self, fn, args, kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            if self._relay is not None:
                self._relay.flush()  # a message the server left incomplete is in the evidence now

    def simulator_events(self, wait: float = 0.0) -> None:
        """Note the simulator's `uac-event` lines printed since the last ones noted (its stdout
        reader may lag a moment behind: `wait` gives it that long once the first is missing)."""
        if self.sim is None:
            return
        deadline = time.monotonic() + wait
        while True:
            events = [r for r in _records(self.sim, "uac-event") if r["seq"] > self._seen]
            if events or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        for event in events:
            self.note(f"simulator: {event['event']} [connection from {event['peer']}]")
            self._seen = max(self._seen, event["seq"])

    # ------------------------------------------------------------------ the simulator's Hello records
    def hellos_since(self, mark: int, wait: float = 1.0) -> list[dict]:
        """The Hellos the simulator recorded after `mark` (`ua-record-hello`)."""
        deadline = time.monotonic() + wait
        while True:
            records = [r for r in _records(self.sim, "hello-received") if r["seq"] > mark]
            if records or time.monotonic() >= deadline:
                return records
            time.sleep(0.05)


def _records(sim, kind: str) -> list[dict]:
    """The simulator's stdout lines `KIND {json}` (simulators/opcua/client_faults.py prints them)."""
    prefix = kind + " "
    records = []
    for line in sim.stdout_lines():
        if line.startswith(prefix):
            try:
                records.append(json.loads(line[len(prefix):]))
            except ValueError:
                continue
    return records


def last_seq(sim) -> int:
    """The sequence number of the last record the simulator printed (Hellos and events share it)."""
    return max((r["seq"] for kind in ("hello-received", "uac-event") for r in _records(sim, kind)), default=0)


def same_value(point, expected, observed) -> bool:
    """Equality as the OPC UA type carries it (a Float compared as float32)."""
    if not isinstance(observed, int | float) or isinstance(observed, bool):
        return False
    if point_ua_type(point) == "Float":
        as32 = lambda v: struct.unpack("<f", struct.pack("<f", float(v)))[0]  # noqa: E731
        return as32(expected) == as32(observed)
    if isinstance(expected, float) or isinstance(observed, float):
        return math.isclose(float(expected), float(observed), rel_tol=1e-9, abs_tol=1e-9)
    return expected == observed
