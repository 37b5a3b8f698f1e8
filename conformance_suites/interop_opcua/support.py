"""One cell of the OPC UA interoperability matrix: a client stack talking to a server stack.

`UaPair` opens clients of the named stack (through `harness.adapters`) to a server started by
the grid's `ServerPool` (through `harness.peers`), records each call and its outcome in the
evidence, and turns what the stacks do into verdicts: a stack that cannot run is an ERROR with
the reason, an operation the client stack lacks is NOT_APPLICABLE, anything else that goes wrong
between the two is a FAIL with expected and observed.

The clients connect to a `RecordingRelay` in front of the server (one per case,
opc.tcp://127.0.0.1:<relay port>/<server path>), so the evidence also holds every UACP message
that passed, cut by its header: Hello, Acknowledge and Error in full, secure messages by type,
chunk, size and channel (their bodies are ciphertext on secured channels).
"""

from __future__ import annotations

from harness.adapters.errors import AdapterError, StatusError
from harness.certs import harness_client_certificate
from harness.conformance import fail, not_applicable
from harness.model import Evidence
from harness.opcua.protocol import describe_message
from harness.profile import Profile
from harness.transport.relay import uacp_framing

from ..interop_grid import GridPair

P4 = "OPC 10000-4 Part 4 v1.04"
CALL_TIMEOUT_S = 5.0


class UaPair(GridPair):
    refusal = StatusError

    def __init__(self, client_name: str, server, profile: Profile, evidence: Evidence):
        if profile.opcua is None:
            not_applicable("the profile has no opcua section")
        super().__init__(client_name, server, profile, evidence)
        self.ua = profile.opcua
        self._ns: int | None = None

    def client(self, policy: str = "None", mode: str = "None", user: str | None = None):
        """A new client of the stack, connected (and logged in as `user` when given)."""
        client = self._new_client()
        options = {}
        if policy != "None":
            pair = harness_client_certificate()
            options = {"certificate": str(pair.cert_path), "private_key": str(pair.key_path)}
        password = next((u.password for u in self.ua.users if u.name == user), None) if user else None
        relay = self.relay(framing=uacp_framing(describe_message))
        url = f"opc.tcp://{relay.host}:{relay.port}{self.server.path}"
        try:
            client.connect(url, policy=policy, mode=mode, user=user, password=password, timeout=CALL_TIMEOUT_S, **options)
        except AdapterError as exc:
            fail(f"{self.client_name} could not connect to {self.server.name} ({policy} {mode}): {exc}",
                 expected="a session", observed=f"{type(exc).__name__}: {exc} {exc.detail}".strip())
        self.note(f"{self.client_name} {getattr(client, 'version', '?')} connected to {self.server.name} "
                  f"{self.server.version} at {self.server.url} ({policy} {mode}{', user ' + user if user else ''}), "
                  f"through the recording relay at {url}")
        return client

    def node(self, client, identifier: str) -> str:
        if self._ns is None:
            self._ns = self.call(f"namespace_index({self.ua.namespace})", client.namespace_index, self.ua.namespace)
        return f"ns={self._ns};{identifier}"

    def call(self, what: str, fn, *args, status_expected: bool = False):
        """Run one client operation; a bad status is a FAIL unless the scenario expects it."""
        return self._call(what, fn, args, status_expected)

    def _refused(self, exc: StatusError) -> tuple[str, str, str]:
        return exc.status, "Good", f"{exc.status} {exc.detail}".strip()
