"""The asyncio protocol under `UaChannel`: asyncua's client protocol with a judge's receive path.

asyncua's `UASocketProtocol` raises, logs or drops the connection on much of what a server can
send (a ServiceFault, an ERR, a reply to a request that timed out, undecodable bytes).  This
subclass keeps asyncua's send side (request headers, chunking, signing, encryption, token
renewal) and replaces the receive side: messages are framed with the UACP codec, decoded with
asyncua, recorded as evidence frames, and handed to the waiting request as values; what cannot
be handed over becomes a `UaTransportError` on the pending requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asyncua import ua
from asyncua.client.ua_client import UASocketProtocol, UASocketState
from asyncua.common.connection import TransportLimits
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import header_from_binary, nodeid_from_binary, struct_from_binary, struct_to_binary

from ..codec.opcua import uacp
from .errors import BadReply, ChannelClosed, UaTransportError
from .evidence import FrameLog, conn_name, split_messages
from .summary import summarize

# Never chunk below this, whatever an Acknowledge says (asyncua cannot chunk into tiny pieces).
MIN_CHUNK = 1024


def decode_service(body: Buffer) -> Any:
    """The service object a message body holds, as the class its encoding id names."""
    typeid = nodeid_from_binary(body.copy())
    cls = ua.extension_objects_by_typeid.get(typeid)
    if cls is None:
        raise ValueError(f"unknown encoding id {typeid.to_string()}")
    return struct_from_binary(cls, body)


def describe_message(frame: bytes) -> str:
    """A UACP message as a relay records it; a final MSG chunk over SecurityPolicy None also with
    its RequestId and the service it carries (the body is plain: headers of 24 bytes)."""
    text = uacp.describe(frame)
    if frame[:4] != b"MSGF" or len(frame) < 24:
        return text
    request_id = int.from_bytes(frame[20:24], "little")
    try:
        service = summarize(decode_service(Buffer(frame[24:])))
    except Exception as exc:  # noqa: BLE001 - a body that does not decode (cut short, encrypted) is described so
        return f"{text}, RequestId {request_id}, body not decodable ({type(exc).__name__})"
    return f"{text}, RequestId {request_id}: {service}"


class RecordingTransport:
    """The socket transport with every write recorded, one frame per UACP message.

    The final chunk of a message is summarised with `label` (set just before the write by the
    code that knows the decoded request); anything else with the UACP summary.
    """

    def __init__(self, transport: asyncio.Transport, log: FrameLog):
        self._transport, self._log = transport, log
        self.label: str | None = None

    def write(self, data: bytes) -> None:
        label, self.label = self.label, None
        parts = split_messages(bytes(data))
        for index, part in enumerate(parts):
            summary = label if label and index == len(parts) - 1 else None
            if summary and len(parts) > 1:
                summary += f" ({len(parts)} chunks)"
            self._log.tx(part, summary)
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class ChannelProtocol(UASocketProtocol):
    """asyncua's client protocol with a receive path that never raises and records evidence.

    Replies are matched to requests by RequestId (futures in asyncua's `_callbackmap`; 0 is
    the Hello).  A reply nobody waits for any more (late, after a timeout) goes to `unsolicited`.
    """

    def __init__(self, policy: Any, limits: TransportLimits, log: FrameLog, timeout: float, send_buffer: int):
        super().__init__(timeout, security_policy=policy, limits=limits)
        self.log = log
        self._send_buffer = send_buffer
        self._buffer = bytearray()
        self._chunks = 0
        self.pending_open: ua.OpenSecureChannelParameters | None = None
        self.acknowledge: uacp.Acknowledge | None = None
        self.error: uacp.ErrorMessage | None = None
        self.unsolicited: list[tuple[int, Any]] = []
        self.closed = asyncio.Event()
        self.closed_by_peer = False
        self.failure: UaTransportError | None = None  # why the client dropped the connection
        self._local_close = False

    # ---------------------------------------------------------------- connection events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.log.conn = conn_name(transport)
        super().connection_made(RecordingTransport(transport, self.log))  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = UASocketState.CLOSED
        self.transport = None
        if not self._local_close:
            self.closed_by_peer = True
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            self.log.rx(data, f"{uacp.describe(data)}, then the connection closed")
        if self.failure is None:
            if self._local_close:
                reason = "the channel was closed"
            else:
                reason = f"the server closed the connection{f': {exc}' if exc else ''}"
            self.failure = ChannelClosed(reason, self.error)
        self._fail_all_pending(self.failure)
        self.closed.set()

    def disconnect(self) -> None:
        self._local_close = True
        if self.transport is not None:
            self.transport.close()

    # ---------------------------------------------------------------- receiving

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self.transport is not None and self.failure is None:
            header = uacp.parse_header(self._buffer, self._connection._limits.max_recv_buffer)
            if header is None:
                return
            if isinstance(header, uacp.Malformed):
                raw = bytes(self._buffer)
                self._buffer.clear()
                self.log.rx(raw, f"malformed: {header}")
                self._abort(BadReply(f"malformed message header from the server: {header}", raw))
                return
            if len(self._buffer) < header.size:
                return
            raw = bytes(self._buffer[: header.size])
            del self._buffer[: header.size]
            if header.is_secure:
                self._handle_secure(header, raw)
            else:
                self._handle_uacp(raw)

    def _handle_uacp(self, raw: bytes) -> None:
        body = uacp.decode(raw)
        self.log.rx(raw)
        if isinstance(body, uacp.Acknowledge):
            self._apply_acknowledge(body)
            self._resolve(0, result=body)
        elif isinstance(body, uacp.ErrorMessage):
            self.error = body
            self._resolve(0, result=body)
            self._abort(ChannelClosed(f"the server sent ERR {body.name} {body.reason!r}", body))
        else:  # a malformed body, or HEL/RHE, which a server does not send on this connection
            self._abort(BadReply(f"unexpected from the server: {uacp.describe(raw)}", raw))

    def _apply_acknowledge(self, ack: uacp.Acknowledge) -> None:
        # asyncua's update_client_limits swaps the Acknowledge's buffer sizes; the chunks we
        # send must fit the server's ReceiveBufferSize (Part 6 §7.1.2.4).
        self.acknowledge = ack
        limits = self._connection._limits
        limits.max_send_buffer = max(MIN_CHUNK, min(ack.receive_buffer_size, self._send_buffer))

    def _handle_secure(self, header: uacp.Header, raw: bytes) -> None:
        try:
            buf = Buffer(raw)
            msg = self._connection.receive_from_header_and_body(header_from_binary(buf), buf)
        except Exception as exc:  # asyncua raises many types for bytes it cannot decrypt or verify
            self.log.rx(raw, f"{uacp.describe(raw)}, undecodable: {exc}")
            self._abort(BadReply(f"cannot decode {header.type_name} from the server: {exc}", raw))
            return
        if msg is None:  # an intermediate chunk, or an abort chunk (the message is dropped)
            self._chunks = 0 if header.chunk_type == "A" else self._chunks + 1
            note = ", abort: the server dropped the message" if header.chunk_type == "A" else ""
            self.log.rx(raw, uacp.describe(raw) + note)
            return
        chunks, self._chunks = self._chunks + 1, 0
        request_id = msg.request_id()
        try:
            response = decode_service(msg.body())
        except Exception as exc:  # a body asyncua cannot decode: that request fails, the channel lives
            self.log.rx(raw, f"{uacp.describe(raw)}, undecodable body: {exc}")
            self._resolve(request_id, exc=BadReply(f"cannot decode the reply to request {request_id}: {exc}", raw))
            return
        problem = self._apply_open(response) if header.message_type == b"OPN" else None
        summary = summarize(response) + (f" ({chunks} chunks)" if chunks > 1 else "")
        if request_id not in self._callbackmap:
            summary += f" (request {request_id} is not waiting)"
        self.log.rx(raw, summary)
        if problem is not None:
            self._resolve(request_id, exc=problem)
        else:
            self._resolve(request_id, result=response)

    def _apply_open(self, response: Any) -> BadReply | None:
        """Take the keys and token of a good OpenSecureChannelResponse into use."""
        params, self.pending_open = self.pending_open, None
        if params is None or not isinstance(response, ua.OpenSecureChannelResponse):
            return None
        if not response.ResponseHeader.ServiceResult.is_good():
            return None
        try:
            self._connection.set_channel(response.Parameters, params.RequestType, params.ClientNonce)
        except Exception as exc:
            return BadReply(f"cannot use the security token the server issued: {exc}")
        return None

    def _resolve(self, request_id: int, *, result: Any = None, exc: Exception | None = None) -> None:
        future = self._callbackmap.pop(request_id, None)
        if future is None or future.done():
            self.unsolicited.append((request_id, exc if exc is not None else result))
        elif exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _abort(self, exc: UaTransportError) -> None:
        if self.failure is None:
            self.failure = exc
        self._fail_all_pending(exc)
        self.disconnect()

    # ---------------------------------------------------------------- sending

    def _transport(self) -> RecordingTransport:
        if self.failure is not None:
            raise self.failure
        if self.transport is None:
            raise ChannelClosed("the connection is not open", self.error)
        return self.transport  # type: ignore[return-value]

    def send_hello(self, hello: uacp.Hello) -> asyncio.Future:  # type: ignore[override]
        transport = self._transport()
        future = asyncio.get_running_loop().create_future()
        self._callbackmap[0] = future
        transport.write(uacp.encode(hello))
        return future

    def send(
        self,
        request: Any,
        message_type: bytes = ua.MessageType.SecureMessage,
        *,
        hint_s: float,
        keep_header: bool = False,
        auth_token: ua.NodeId | None = None,
        expect_reply: bool = True,
    ) -> tuple[int, asyncio.Future | None]:
        """Encode, secure and write one request; returns its RequestId and reply future."""
        transport = self._transport()
        if not keep_header:
            self._setup_request_header(request.RequestHeader, hint_s)
            if auth_token is not None:
                request.RequestHeader.AuthenticationToken = auth_token
        body = struct_to_binary(request)
        self.revolve_security_token()
        request_id = self._request_id + 1
        data = self._connection.message_to_binary(body, message_type=message_type, request_id=request_id)
        self._request_id = request_id
        future = None
        if expect_reply:
            future = asyncio.get_running_loop().create_future()
            self._callbackmap[request_id] = future
        if message_type == ua.MessageType.SecureOpen:
            self.pending_open = request.Parameters
        transport.label = summarize(request)
        transport.write(data)
        return request_id, future

    def forget(self, request_id: int) -> None:
        self._callbackmap.pop(request_id, None)
