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

from harness.adapters.errors import AdapterError, NotInstalled, StatusError, Unsupported
from harness.adapters.registry import make_client
from harness.certs import harness_client_certificate
from harness.conformance import HarnessError, fail, not_applicable
from harness.model import Evidence
from harness.profile import Profile
from harness.opcua.protocol import describe_message
from harness.transport.relay import RecordingRelay, uacp_framing

P4 = "OPC 10000-4 Part 4 v1.04"
CALL_TIMEOUT_S = 5.0


class UaPair:
    def __init__(self, client_name: str, server, profile: Profile, evidence: Evidence):
        if profile.opcua is None:
            not_applicable("the profile has no opcua section")
        self.client_name = client_name
        self.server = server
        self.profile = profile
        self.ua = profile.opcua
        self.evidence = evidence
        self._clients: list = []
        self._ns: int | None = None
        self._relay: RecordingRelay | None = None

    def __enter__(self) -> "UaPair":
        return self

    def __exit__(self, *exc) -> None:
        for client in self._clients:
            try:
                client.close()
            except AdapterError:
                pass
        if self._relay is not None:
            self._relay.close()

    def client(self, policy: str = "None", mode: str = "None", user: str | None = None):
        """A new client of the stack, connected (and logged in as `user` when given)."""
        try:
            client = make_client(self.client_name)
        except NotInstalled as exc:
            raise HarnessError(f"the {self.client_name} client stack is not installed: {exc}") from None
        self._clients.append(client)
        options = {}
        if policy != "None":
            pair = harness_client_certificate()
            options = {"certificate": str(pair.cert_path), "private_key": str(pair.key_path)}
        password = next((u.password for u in self.ua.users if u.name == user), None) if user else None
        if self._relay is None:
            self._relay = RecordingRelay(self.server.host, self.server.port, self.evidence.frames.append,
                                         framing=uacp_framing(describe_message))
        url = f"opc.tcp://{self._relay.host}:{self._relay.port}{self.server.path}"
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

    def note(self, text: str) -> None:
        self.evidence.notes.append(text)

    def call(self, what: str, fn, *args, status_expected: bool = False):
        try:
            result = self._run(fn, args)
        except Unsupported as exc:
            self.note(f"{what}: not supported by {self.client_name}: {exc}")
            not_applicable(f"the {self.client_name} client stack has no API for this: {exc}")
        except StatusError as exc:
            self.note(f"{what} -> {exc.status}")
            if status_expected:
                raise
            fail(f"{what}: {exc.status} between {self.client_name} and {self.server.name}",
                 expected="Good", observed=f"{exc.status} {exc.detail}".strip())
        except AdapterError as exc:
            self.note(f"{what} -> {type(exc).__name__}: {exc} {exc.detail}".strip())
            fail(f"{what} failed between {self.client_name} and {self.server.name}: {type(exc).__name__}: {exc}",
                 expected="a normal response", observed=f"{type(exc).__name__}: {exc} {exc.detail}".strip())
        text = repr(result)
        self.note(f"{what} -> {text if len(text) <= 160 else text[:157] + '...'}")
        return result

    def _run(self, fn, args):
        try:
            return fn(*args)
        finally:
            if self._relay is not None:
                self._relay.flush()  # a message cut short is in the evidence before the verdict
