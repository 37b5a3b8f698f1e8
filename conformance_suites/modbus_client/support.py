"""One client stack under test, against simulators that misbehave on purpose.

The bundled simulator passes the whole server suite, so what it sends under a planted fault is
known exactly; what the client stack makes of it is the verdict.  `ClientCase.client(faults)`
connects a fresh client of the stack to a simulator with those faults, through a
`RecordingRelay` of the case's own, so the evidence holds the frames the client sent and what
it received (a reply the fault cut short included).
"""

from __future__ import annotations

from harness.adapters.errors import NotInstalled
from harness.adapters.registry import make_client
from harness.conformance import HarnessError
from harness.model import Evidence
from harness.peers.base import PeerError
from harness.peers.simulator_peer import start_simulator_server
from harness.profile import Profile
from harness.transport.relay import RecordingRelay

AP = "MODBUS Application Protocol V1.1b3"
IG = "MODBUS Messaging on TCP/IP Implementation Guide V1.0b"
TIMEOUT_S = 1.0
RULE = "mbc_rule"


def rule(id: str, title: str, *, requirements: list[str], clause: str):
    """Mark a client-side case; it runs once per client stack (`<id>-<stack>`)."""
    import pytest

    return getattr(pytest.mark, RULE)(id=id, title=title, requirements=list(requirements), clause=clause)


class FaultySimulators:
    """Simulators by fault set, started on first use; `fresh=True` starts one for a single case."""

    def __init__(self, profile_path: str):
        self.profile_path = profile_path
        self._shared: dict[tuple[str, ...], object] = {}
        self._all: list = []

    def get(self, faults: tuple[str, ...], fresh: bool = False):
        if not fresh and faults in self._shared:
            sim = self._shared[faults]
            if isinstance(sim, HarnessError):
                raise sim
            return sim
        try:
            sim = start_simulator_server(self.profile_path, faults=faults)
        except (PeerError, OSError) as exc:
            error = HarnessError(f"the simulator with faults {faults} could not be started: {str(exc).splitlines()[0]}")
            if not fresh:
                self._shared[faults] = error  # not retried by every stack's case
            raise error from None
        self._all.append(sim)
        if not fresh:
            self._shared[faults] = sim
        return sim

    def close(self) -> None:
        for sim in self._all:
            if isinstance(sim, HarnessError):
                continue
            sim.close()
        self._all.clear()
        self._shared.clear()


class ClientCase:
    def __init__(self, stack: str, simulators: FaultySimulators, profile: Profile, evidence: Evidence):
        self.stack = stack
        self.simulators = simulators
        self.profile = profile
        self.evidence = evidence
        self._clients: list = []
        self._relays: dict[tuple[str, int], RecordingRelay] = {}  # one per simulator

    def __enter__(self) -> "ClientCase":
        return self

    def __exit__(self, *exc) -> None:
        for client in self._clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing after a failure must not hide the verdict
                pass
        for relay in self._relays.values():
            relay.close()

    def client(self, *faults: str, fresh: bool = False, timeout: float = TIMEOUT_S):
        sim = self.simulators.get(tuple(faults), fresh)
        try:
            client = make_client(self.stack)
        except NotInstalled as exc:
            raise HarnessError(f"the {self.stack} client stack is not installed: {exc}") from None
        self._clients.append(client)
        unit = self.profile.modbus.unit_id if self.profile.modbus else 1
        relay = self._relays.get((sim.host, sim.port))
        if relay is None:
            relay = self._relays[(sim.host, sim.port)] = RecordingRelay(sim.host, sim.port, self.evidence.frames.append)
        client.connect(relay.host, relay.port, unit=unit, timeout=timeout)
        self.note(f"{self.stack} {getattr(client, 'version', '?')} connected to the simulator at {sim.url}"
                  + (f" with faults {', '.join(faults)}" if faults else "")
                  + f", through the recording relay at {relay.host}:{relay.port}")
        return client

    def note(self, text: str) -> None:
        self.evidence.notes.append(text)

    def attempt(self, what: str, fn, *args):
        """(result, None) or (None, exception): the outcome of one call, noted in the evidence."""
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - every outcome is judged by the case
            self._flush()
            self.note(f"{what} -> {type(exc).__name__}: {exc} {getattr(exc, 'detail', '')}".strip())
            return None, exc
        self._flush()
        self.note(f"{what} -> {result!r}"[:300])
        return result, None

    def requests(self):
        """Every request the client has sent in this case, as the relay recorded it, with its answer."""
        from conformance_suites.modbus_observe.traffic import pair_requests

        self._flush()
        return pair_requests(list(self.evidence.frames))

    def _flush(self) -> None:
        """A reply the client has only part of goes to the evidence now, before the verdict."""
        for relay in self._relays.values():
            relay.flush()
