"""An OPC UA secure channel that sends any request and returns whatever the server answered.

`UaChannel` is the judge's client.  It reuses asyncua's client protocol (`UASocketProtocol`)
for what asyncua does well (request headers, secure-conversation chunking, signing and
encryption, token renewal) and replaces its receive path, so that:

- `request()` returns the decoded response object: the proper *Response, or a `ua.ServiceFault`
  when the server answered with a fault.  Bad status codes are data, never exceptions;
- the transport-level outcomes raise `UaTransportError` subclasses: `Unreachable`,
  `NoResponse` (the timeout expired), `ChannelClosed` (the connection dropped, or an ERR came),
  `ChannelRefused` (Hello or OpenSecureChannel answered with an error), `BadReply`
  (undecodable bytes).  No input from the server hangs or crashes the client;
- every UACP message sent or received becomes an evidence frame with the wire bytes (ciphertext
  on encrypted channels) and a summary made from the decoded objects.

Every network operation has a timeout.  The asyncio protocol is in `protocol.py`, session
helpers in `session.py`, discovery helpers in `discovery.py`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.connection import TransportLimits
from asyncua.common.utils import create_nonce
from cryptography.hazmat.primitives.serialization import Encoding

from ..codec.opcua import uacp
from .errors import ChannelClosed, ChannelRefused, NoResponse, UaTransportError, Unreachable
from .evidence import FrameLog, Recorder, address_text
from .protocol import ChannelProtocol
from .security import build_policy, load_certificate, policy_name
from .summary import summarize

DEFAULT_LIFETIME_MS = 600_000
# When the Hello says MaxMessageSize 0 (no limit), still refuse to buffer more than this.
MESSAGE_SIZE_GUARD = 64 * 1024 * 1024
# How long close() waits by default for the server to drop the connection after CLO.
CLOSE_WAIT_S = 0.5


def default_url(host: str, port: int) -> str:
    return f"opc.tcp://{address_text((host, port))}"


class UaChannel:
    """One secure channel to an OPC UA server, for sending any request.

        async with UaChannel("127.0.0.1", 4840, record=frames.append) as channel:
            reply = await channel.request(ua.ReadRequest(...), timeout=1.0)

    `policy` is a spec name ("None", "Basic256Sha256", "Aes128_Sha256_RsaOaep",
    "Aes256_Sha256_RsaPss", ...) and `mode` "Sign" or "SignAndEncrypt" (the default for a
    secure policy).  Secure policies need `certificate` and `private_key` (path or bytes, DER or
    PEM) and `server_certificate` (DER, from GetEndpoints).  `timeout` bounds connect, Hello,
    OpenSecureChannel and close, and is the default for each request.
    """

    def __init__(
        self,
        host: str,
        port: int,
        endpoint_url: str | None = None,
        *,
        policy: str = "None",
        mode: str | ua.MessageSecurityMode | None = None,
        certificate: Path | str | bytes | None = None,
        private_key: Path | str | bytes | None = None,
        server_certificate: bytes | None = None,
        lifetime_ms: int = DEFAULT_LIFETIME_MS,
        timeout: float = 2.0,
        record: Recorder | None = None,
        receive_buffer: int = 65536,
        send_buffer: int = 65536,
        max_message: int = 0,
        max_chunks: int = 0,
    ):
        self.host, self.port = host, port
        self.endpoint_url = endpoint_url or default_url(host, port)
        self.security = build_policy(
            policy, mode, certificate=certificate, private_key=private_key, server_certificate=server_certificate
        )
        self.policy_uri: str = self.security.URI
        self.policy_name = policy_name(self.policy_uri)
        self.mode: ua.MessageSecurityMode = self.security.Mode
        self.client_certificate: bytes | None = None
        if certificate is not None:
            self.client_certificate = load_certificate(certificate).public_bytes(Encoding.DER)
        self.server_certificate = server_certificate
        self.lifetime_ms = lifetime_ms
        self.timeout = timeout
        self.hello_message = uacp.Hello(0, receive_buffer, send_buffer, max_message, max_chunks, self.endpoint_url)
        self.log = FrameLog(record)
        self.open_response: ua.OpenSecureChannelResponse | None = None
        # Session state kept by session.py: the last good CreateSessionResponse, the client
        # nonce sent with CreateSession and the latest server nonce.
        self.session: ua.CreateSessionResponse | None = None
        self.client_nonce: bytes | None = None
        self.server_nonce: bytes | None = None
        self._auth_token = ua.NodeId()
        self._protocol: ChannelProtocol | None = None

    @classmethod
    async def connect(cls, host: str, port: int, endpoint_url: str | None = None, **options: Any) -> "UaChannel":
        """Construct and open: the channel, ready for requests."""
        channel = cls(host, port, endpoint_url, **options)
        await channel.open()
        return channel

    # ---------------------------------------------------------------- state

    @property
    def frames(self):
        return self.log.frames

    @property
    def acknowledge(self) -> uacp.Acknowledge | None:
        return self._protocol.acknowledge if self._protocol else None

    @property
    def error(self) -> uacp.ErrorMessage | None:
        """The ERR the server sent, if it sent one."""
        return self._protocol.error if self._protocol else None

    @property
    def unsolicited(self) -> list[tuple[int, Any]]:
        """(RequestId, reply) of replies that arrived when nobody waited (e.g. after a timeout)."""
        return self._protocol.unsolicited if self._protocol else []

    @property
    def is_open(self) -> bool:
        return self._protocol is not None and self._protocol.transport is not None

    @property
    def closed_by_peer(self) -> bool:
        return bool(self._protocol and self._protocol.closed_by_peer)

    @property
    def channel_id(self) -> int:
        return self._protocol._connection.security_token.ChannelId if self._protocol else 0

    @property
    def token_id(self) -> int:
        """The TokenId the next request will carry (a renewed token is taken into use then)."""
        if self._protocol is None:
            return 0
        conn = self._protocol._connection
        return conn.next_security_token.TokenId or conn.security_token.TokenId

    @property
    def authentication_token(self) -> ua.NodeId:
        """Put into the RequestHeader of every request (session.py sets it on CreateSession)."""
        return self._protocol.authentication_token if self._protocol else self._auth_token

    @authentication_token.setter
    def authentication_token(self, token: ua.NodeId) -> None:
        self._auth_token = token
        if self._protocol is not None:
            self._protocol.authentication_token = token

    # ---------------------------------------------------------------- opening

    async def open(self) -> ua.OpenSecureChannelResponse:
        """TCP connect, Hello/Acknowledge, OpenSecureChannel (Issue).  Raises Unreachable,
        ChannelRefused (with the ERR or the fault), NoResponse or ChannelClosed."""
        if self._protocol is not None:
            raise RuntimeError("this channel was already opened; make a new UaChannel")
        hello = self.hello_message
        limits = TransportLimits(
            max_recv_buffer=hello.receive_buffer_size,
            max_send_buffer=hello.send_buffer_size,
            max_chunk_count=hello.max_chunk_count,
            max_message_size=hello.max_message_size or MESSAGE_SIZE_GUARD,
        )

        def factory() -> ChannelProtocol:
            return ChannelProtocol(self.security, limits, self.log, self.timeout, hello.send_buffer_size)

        where = f"{self.host}:{self.port}"
        try:
            _, protocol = await asyncio.wait_for(
                asyncio.get_running_loop().create_connection(factory, self.host, self.port), self.timeout
            )
        except asyncio.TimeoutError:
            raise Unreachable(f"no TCP connection to {where} within {self.timeout * 1000:.0f} ms") from None
        except OSError as exc:
            raise Unreachable(f"cannot connect to {where}: {exc.strerror or exc}") from None
        self._protocol = protocol
        protocol.authentication_token = self._auth_token
        try:
            reply = await self._wait(protocol.send_hello(hello), "Hello", self.timeout)
            if isinstance(reply, uacp.ErrorMessage):
                raise ChannelRefused(f"the server answered Hello with ERR {reply.name} {reply.reason!r}", error=reply)
            response = await self._open_secure_channel(ua.SecurityTokenRequestType.Issue, self.lifetime_ms, None)
            if not isinstance(response, ua.OpenSecureChannelResponse) or not response.ResponseHeader.ServiceResult.is_good():
                raise ChannelRefused(f"OpenSecureChannel was answered with {summarize(response)}", response=response)
        except ChannelClosed as exc:
            protocol.disconnect()
            if exc.error is not None:
                raise ChannelRefused(str(exc), error=exc.error) from None
            raise
        except BaseException:
            protocol.disconnect()
            raise
        self.open_response = response
        return response

    async def _open_secure_channel(self, request_type: int, lifetime_ms: int, timeout: float | None) -> Any:
        timeout = self.timeout if timeout is None else timeout
        params = ua.OpenSecureChannelParameters(
            ClientProtocolVersion=0,
            RequestType=request_type,
            SecurityMode=self.mode,
            ClientNonce=create_nonce(self.security.secure_channel_nonce_length),
            RequestedLifetime=lifetime_ms,
        )
        request = ua.OpenSecureChannelRequest(Parameters=params)
        request_id, future = self._require().send(request, ua.MessageType.SecureOpen, hint_s=timeout)
        return await self._wait(future, "OpenSecureChannel", timeout, request_id)

    async def renew(self, lifetime_ms: int | None = None, *, timeout: float | None = None) -> Any:
        """Send OpenSecureChannel with RequestType Renew; returns the reply, whatever it is.
        The new token is used from the next request on."""
        lifetime = self.lifetime_ms if lifetime_ms is None else lifetime_ms
        return await self._open_secure_channel(ua.SecurityTokenRequestType.Renew, lifetime, timeout)

    # ---------------------------------------------------------------- requests

    async def request(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        auth_token: ua.NodeId | None = None,
        keep_header: bool = False,
    ) -> Any:
        """Send any ua.*Request; returns the decoded reply (a *Response or a ua.ServiceFault).

        The RequestHeader is filled in (AuthenticationToken, RequestHandle, TimeoutHint) unless
        `keep_header`; `auth_token` overrides the token for this request only.  The request
        object keeps the header as sent, so a test can compare the reply's RequestHandle.
        Raises NoResponse after `timeout`, ChannelClosed or BadReply.
        """
        timeout = self.timeout if timeout is None else timeout
        request_id, future = self._require().send(request, hint_s=timeout, keep_header=keep_header, auth_token=auth_token)
        return await self._wait(future, type(request).__name__, timeout, request_id)

    def send_raw(self, data: bytes, summary: str | None = None) -> None:
        """Write bytes as they are on the channel's connection (e.g. a MSG built by hand)."""
        transport = self._require()._transport()
        transport.label = summary
        transport.write(data)

    async def _wait(self, future: asyncio.Future, what: str, timeout: float, request_id: int | None = None) -> Any:
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            if request_id is not None and self._protocol is not None:
                self._protocol.forget(request_id)
            raise NoResponse(f"no reply to {what} within {timeout * 1000:.0f} ms") from None

    def _require(self) -> ChannelProtocol:
        if self._protocol is None:
            raise RuntimeError("the channel is not open: await channel.open() first")
        return self._protocol

    # ---------------------------------------------------------------- closing

    async def close(self, timeout: float | None = None) -> bool:
        """Send CloseSecureChannel (no reply is expected), wait up to `timeout` (default the
        smaller of the channel timeout and CLOSE_WAIT_S) for the server to close the TCP
        connection, then close it.  True if the server closed it.  Never raises."""
        protocol = self._protocol
        if protocol is None:
            return False
        timeout = min(self.timeout, CLOSE_WAIT_S) if timeout is None else timeout
        if protocol.transport is not None:
            try:
                protocol.send(ua.CloseSecureChannelRequest(), ua.MessageType.SecureClose, hint_s=timeout, expect_reply=False)
                await asyncio.wait_for(protocol.closed.wait(), timeout)
            except (UaTransportError, asyncio.TimeoutError):
                pass
        closed_by_peer = protocol.closed_by_peer
        protocol.disconnect()
        return closed_by_peer

    def abort(self) -> None:
        """Drop the TCP connection without CloseSecureChannel."""
        if self._protocol is not None:
            self._protocol.disconnect()

    async def __aenter__(self) -> "UaChannel":
        if self._protocol is None:
            await self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
