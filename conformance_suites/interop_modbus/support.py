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

from harness.adapters.errors import AdapterError, ModbusException, NotInstalled, Unsupported
from harness.adapters.registry import make_client
from harness.conformance import HarnessError, fail, not_applicable
from harness.model import Evidence
from harness.profile import Profile
from harness.transport.relay import RecordingRelay

AP = "MODBUS Application Protocol V1.1b3"
IG = "MODBUS Messaging on TCP/IP Implementation Guide V1.0b"
CALL_TIMEOUT_S = 2.0


class Pair:
    def __init__(self, client_name: str, server, profile: Profile, evidence: Evidence, rng=None):
        import random

        # Values written by a case differ from every other case's (the run's seed and the case
        # id), so a server that ignores a write cannot pass on what an earlier pair left behind.
        self.nonce = (rng or random.Random()).randrange(1, 0xFFFF)
        self.client_name = client_name
        self.server = server
        self.profile = profile
        self.evidence = evidence
        self._clients: list = []
        self._relay: RecordingRelay | None = None

    def __enter__(self) -> "Pair":
        return self

    def __exit__(self, *exc) -> None:
        for client in self._clients:
            try:
                client.close()
            except AdapterError:
                pass
        if self._relay is not None:
            self._relay.close()

    def client(self):
        """A new client of the stack, connected to the server."""
        try:
            client = make_client(self.client_name)
        except NotInstalled as exc:
            raise HarnessError(f"the {self.client_name} client stack is not installed: {exc}") from None
        self._clients.append(client)
        unit = self.profile.modbus.unit_id if self.profile.modbus else 1
        if self._relay is None:
            self._relay = RecordingRelay(self.server.host, self.server.port, self.evidence.frames.append)
        try:
            client.connect(self._relay.host, self._relay.port, unit=unit, timeout=CALL_TIMEOUT_S)
        except AdapterError as exc:
            fail(f"{self.client_name} could not connect to {self.server.name}: {exc}", expected="a connection",
                 observed=f"{type(exc).__name__}: {exc} {exc.detail}".strip())
        self.note(f"{self.client_name} {getattr(client, 'version', '?')} connected to {self.server.name} "
                  f"{self.server.version} at {self.server.url}, "
                  f"through the recording relay at {self._relay.host}:{self._relay.port}")
        return client

    def note(self, text: str) -> None:
        self.evidence.notes.append(text)

    def call(self, what: str, fn, *args, exception_expected: bool = False):
        """Run one client operation; the outcome goes to the evidence, failures become verdicts.

        A Modbus exception response is a FAIL (the request was legal), unless the scenario
        expects one: then the `ModbusException` is raised for it to judge."""
        try:
            result = self._run(fn, args)
        except Unsupported as exc:
            self.note(f"{what}: not supported by {self.client_name}: {exc}")
            not_applicable(f"the {self.client_name} client stack has no API for this: {exc}")
        except ModbusException as exc:
            self.note(f"{what} -> exception {exc.code:02X}")
            if exception_expected:
                raise
            fail(f"{what}: exception {exc.code:02X} between {self.client_name} and {self.server.name}",
                 expected="a normal response to a legal request", observed=f"Modbus exception {exc.code:02X} {exc.detail}".strip())
        except AdapterError as exc:
            self.note(f"{what} -> {type(exc).__name__}: {exc} {exc.detail}".strip())
            fail(f"{what} failed between {self.client_name} and {self.server.name}: {type(exc).__name__}: {exc}",
                 expected="a normal response", observed=f"{type(exc).__name__}: {exc} {exc.detail}".strip())
        self.note(f"{what} -> {_short(result)}")
        return result

    def _run(self, fn, args):
        try:
            return fn(*args)
        finally:
            if self._relay is not None:
                self._relay.flush()  # a reply cut short is in the evidence before the verdict


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."

