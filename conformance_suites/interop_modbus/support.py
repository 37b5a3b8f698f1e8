"""One cell of the Modbus interoperability matrix: a client stack talking to a server stack.

`Pair` opens clients of the named stack (through `harness.adapters`) to a server started by
`ServerPool` (through `harness.peers`).  The clients connect to a `RecordingRelay` in front of
the server (one per case), so the case's evidence holds every frame that passed between the two
stacks, decoded, beside a note of each call and what it returned.  What the stacks do becomes
a verdict:

- a server that cannot start, or a client stack that is not installed: ERROR with the reason;
- an operation the client stack has no API for (`Unsupported`): NOT_APPLICABLE, saying so;
- anything else that goes wrong between the two: FAIL, with expected and observed.
"""

from __future__ import annotations

from harness.adapters.errors import AdapterError, ModbusException
from harness.conformance import fail
from harness.model import Evidence
from harness.profile import Profile

from ..interop_grid import GridPair

AP = "MODBUS Application Protocol V1.1b3"
IG = "MODBUS Messaging on TCP/IP Implementation Guide V1.0b"
CALL_TIMEOUT_S = 2.0


class Pair(GridPair):
    refusal = ModbusException

    def __init__(self, client_name: str, server, profile: Profile, evidence: Evidence, rng=None):
        import random

        super().__init__(client_name, server, profile, evidence)
        # Values written by a case differ from every other case's (the run's seed and the case
        # id), so a server that ignores a write cannot pass on what an earlier pair left behind.
        self.nonce = (rng or random.Random()).randrange(1, 0xFFFF)

    def client(self):
        """A new client of the stack, connected to the server through the relay."""
        client = self._new_client()
        unit = self.profile.modbus.unit_id if self.profile.modbus else 1
        relay = self.relay()
        try:
            client.connect(relay.host, relay.port, unit=unit, timeout=CALL_TIMEOUT_S)
        except AdapterError as exc:
            fail(f"{self.client_name} could not connect to {self.server.name}: {exc}", expected="a connection",
                 observed=f"{type(exc).__name__}: {exc} {exc.detail}".strip())
        self.note(f"{self.client_name} {getattr(client, 'version', '?')} connected to {self.server.name} "
                  f"{self.server.version} at {self.server.url}, through the recording relay at {relay.host}:{relay.port}")
        return client

    def call(self, what: str, fn, *args, exception_expected: bool = False):
        """Run one client operation; the outcome goes to the evidence, failures become verdicts.

        A Modbus exception response is a FAIL (the request was legal), unless the scenario
        expects one: then the `ModbusException` is raised for it to judge."""
        return self._call(what, fn, args, exception_expected)

    def _refused(self, exc: ModbusException) -> tuple[str, str, str]:
        return (f"exception {exc.code:02X}", "a normal response to a legal request",
                f"Modbus exception {exc.code:02X} {exc.detail}".strip())
