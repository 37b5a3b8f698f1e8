"""An activated session in one call: GetEndpoints (for a secured policy), the secure channel,
CreateSession and ActivateSession (Part 4 v1.04 §5.4.4, §5.6.2, §5.6.3).

The conformance suite's sessions (which turn `SessionRefused` into a FAIL), the robustness
suite's own sessions and the liveness probe all log in here.  What the server answers with
instead of a good reply raises `SessionRefused`, naming the step, what it should have answered
and the reply itself; what it fails to answer raises a `UaTransportError` as everywhere in
`harness.opcua`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from asyncua import ua

from .channel import UaChannel
from .discovery import endpoint_certificate, get_endpoints, select_endpoint
from .evidence import Recorder
from .session import _good, activate_session, anonymous_token, create_session, username_token
from .summary import summarize


@dataclass(frozen=True)
class SessionSecurity:
    """How to log in when not over SecurityPolicy None anonymously: the policy and mode (with
    the client certificate and key; the server's certificate comes from GetEndpoints), and a
    user name with its password."""

    policy: str = "None"
    mode: str | None = None
    certificate: Path | str | bytes | None = None
    private_key: Path | str | bytes | None = None
    user: str | None = None
    password: str | None = None


class SessionRefused(Exception):
    """The server answered one step of the login, but not with what gives a session.

    `headline` is the short form for a verdict, `expected` and `observed` its evidence, `reply`
    what the server sent; str() says it all in one line."""

    def __init__(self, step: str, expected: str, reply: Any, *, observed: str | None = None, headline: str | None = None):
        self.step, self.expected, self.reply = step, expected, reply
        self.observed = observed if observed is not None else summarize(reply)
        self.headline = headline or f"{step} did not succeed"
        super().__init__(f"{step}: {observed}" if observed is not None else f"{step} answered with {self.observed}")


@dataclass(frozen=True)
class OpenSession:
    channel: UaChannel
    created: ua.CreateSessionResponse
    activated: ua.ActivateSessionResponse

    @property
    def revised_timeout_ms(self) -> float:
        return float(self.created.Parameters.RevisedSessionTimeout or 0)


async def open_session(host: str, port: int, url: str, security: SessionSecurity | None, timeout_s: float, *,
                       session_name: str = "protocol-harness", session_timeout_ms: float = 60_000,
                       record: Recorder | None = None, on_stage: Callable[[str], None] = lambda stage: None,
                       on_channel: Callable[[UaChannel], None] = lambda channel: None) -> OpenSession:
    """Log in; each step bounded by `timeout_s`.  `record` gets every frame (evidence),
    `on_stage` the name of each step as it starts, `on_channel` the channel once it is open (to
    cut it on a timeout).  On any failure after the channel opened, the channel is aborted."""
    security = security or SessionSecurity()
    options: dict[str, Any] = {}
    if security.policy != "None":
        mode = security.mode or "SignAndEncrypt"
        on_stage("GetEndpoints")
        reply = await get_endpoints(host, port, url, timeout=timeout_s, record=record)
        if not isinstance(reply, ua.GetEndpointsResponse):
            raise SessionRefused("GetEndpoints", "a GetEndpointsResponse", reply)
        endpoint = select_endpoint(list(reply.Endpoints or []), security.policy, mode)
        if endpoint is None:
            raise SessionRefused("GetEndpoints", f"an endpoint for {security.policy} {mode}", reply,
                                 observed=f"no endpoint offers {security.policy} {mode}",
                                 headline=f"no endpoint offers {security.policy} {mode}")
        options = {"certificate": security.certificate, "private_key": security.private_key,
                   "server_certificate": endpoint_certificate(endpoint)}
    on_stage("Hello/OpenSecureChannel")
    channel = UaChannel(host, port, url, policy=security.policy, mode=security.mode, timeout=timeout_s, record=record, **options)
    await channel.open()
    on_channel(channel)
    try:
        on_stage("CreateSession")
        created = await create_session(channel, session_name=session_name, endpoint_url=url,
                                       session_timeout_ms=session_timeout_ms, timeout=timeout_s)
        if not _good(created, ua.CreateSessionResponse):
            raise SessionRefused("CreateSession", "a CreateSessionResponse with Good", created)
        on_stage("ActivateSession")
        token = (anonymous_token(channel) if security.user is None
                 else username_token(channel, security.user, security.password or ""))
        activated = await activate_session(channel, token=token, timeout=timeout_s)
        if not _good(activated, ua.ActivateSessionResponse):
            raise SessionRefused("ActivateSession", "an ActivateSessionResponse with Good", activated)
    except BaseException:
        channel.abort()
        raise
    return OpenSession(channel, created, activated)
