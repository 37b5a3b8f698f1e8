"""The client-test faults of the OPC UA face (`faults.CLIENT_FAULTS`): what a client must cope with.

`ClientFaults.of(faults)` is None unless one is given; only then does the server use the two
classes below, so a simulator without them runs exactly the code it always ran:

- `FaultyGuard` (a `GuardedProtocol`): prints each Hello (``ua-record-hello``), answers a Hello
  with an Error message (``ua-hello-error``), and lowers the chunk size it accepts
  (``ua-receive-buffer``: a larger chunk gets Bad_TcpMessageTooLarge and a close, the guard's
  answer to any over-size chunk);
- `FaultyProcessor` (mixed in before the device's service processor): the Acknowledge's
  ReceiveBufferSize and MaxMessageSize (a larger request gets asyncua's Error
  Bad_RequestTooLarge and a close), each limiting only requests; the server's own chunks
  smaller than the SendBufferSize it offers (``ua-small-chunks``); short-lived security tokens that really expire (``ua-token-lifetime``:
  asyncua's server never checks a token's lifetime, so without this a client that never
  renews would not be caught); and the faults that hit Reads of the device's own points:
  another RequestId, a late answer, a ServiceFault, a truncated or mis-sized chunk (all bytes
  sent, MessageSize 4 short), a dropped connection.

What the faulty server does is printed on stdout, one line each, so that a client-side case
(which sees only what the client stack reports) can put the server's side in its evidence:

    hello-received {"seq": 1, "peer": "127.0.0.1:50102", "protocol_version": 0, ...}
    uac-event {"seq": 2, "peer": "127.0.0.1:50102", "event": "Read answered 2400 ms late"}

`seq` counts both kinds, so a case takes the lines after the last one it saw.

A late answer is encoded when it is sent, not when it is due, so the chunks still carry
consecutive sequence numbers (Part 6 v1.05 §6.7.2.4): a client that checks them is not
misled into a failure the fault did not intend.  The truncated and mis-sized chunks are built
for SecurityPolicy None (with signing they would also fail the signature).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from asyncua import ua
from asyncua.common.connection import SecureConnection
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary, uatcp_to_binary

from harness.codec.opcua import uacp

from .faults import client_fault_values
from .uacp_guard import GuardedProtocol

log = logging.getLogger("simulators.opcua")

_READ = ua.NodeId(ua.ObjectIds.ReadRequest_Encoding_DefaultBinary)
WRONG_REQUEST_ID_OFFSET = 0x10000  # far from any RequestId the client has outstanding
TRUNCATED_BYTES = 4  # the ReadResponse's last field: the length of its (empty) DiagnosticInfos array
_SECURE_HEADERS = 12  # TokenId, SequenceNumber and RequestId before the body of a MSG chunk
_counter = itertools.count(1)


def _print(kind: str, record: dict) -> None:
    print(f"{kind} " + json.dumps({"seq": next(_counter), **record}, separators=(",", ":")), flush=True)


def report(peer, event: str) -> None:
    """One `uac-event` line on stdout: what the faulty server did on a connection."""
    _print("uac-event", {"peer": _peer_text(peer), "event": event})


def _peer_text(peer) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _status_name(code: int) -> str:
    return ua.StatusCode(code).name


@dataclass(frozen=True)
class ClientFaults:
    wrong_request_id: bool = False
    late_read_ms: int = 0
    service_fault: int = 0
    truncated_response: bool = False
    size_mismatch: bool = False
    drop_on_read: bool = False
    hello_error: int = 0
    token_lifetime_ms: int = 0
    receive_buffer: int = 0
    small_chunks: int = 0
    max_message_size: int = 0
    record_hello: bool = False

    @classmethod
    def of(cls, faults) -> ClientFaults | None:
        """The client-test faults among validated fault texts (`faults.parse_opcua_faults`), or None."""
        values = client_fault_values(faults)
        if not values:
            return None
        return cls(
            wrong_request_id=bool(values.get("ua-wrong-request-id")),
            late_read_ms=int(values.get("ua-late-read", 0)),
            service_fault=int(values.get("ua-service-fault", 0)),
            truncated_response=bool(values.get("ua-truncated-response")),
            size_mismatch=bool(values.get("ua-size-mismatch")),
            drop_on_read=bool(values.get("ua-drop-on-read")),
            hello_error=int(values.get("ua-hello-error", 0)),
            token_lifetime_ms=int(values.get("ua-token-lifetime", 0)),
            receive_buffer=int(values.get("ua-receive-buffer", 0)),
            small_chunks=int(values.get("ua-small-chunks", 0)),
            max_message_size=int(values.get("ua-max-message-size", 0)),
            record_hello=bool(values.get("ua-record-hello")),
        )

    @property
    def on_read(self) -> bool:
        return bool(self.wrong_request_id or self.late_read_ms or self.service_fault or self.truncated_response
                    or self.size_mismatch or self.drop_on_read)


# ---------------------------------------------------------------------------- UACP (the guard)


class FaultyGuard(GuardedProtocol):
    """The UACP guard with the Hello-level client-test faults (`client_faults` set by the server)."""

    client_faults: ClientFaults = ClientFaults()

    def _hello_problem(self, hello: uacp.Hello | uacp.Malformed) -> tuple[int, str] | None:
        faults = self.client_faults
        if faults.record_hello:
            self._record_hello(hello)
        problem = super()._hello_problem(hello)
        if problem is not None:
            return problem
        if faults.hello_error:
            return faults.hello_error, "the server cannot take this connection now"
        if faults.receive_buffer:
            self._receive_limit = min(self._receive_limit, faults.receive_buffer)
        return None

    def _refuse(self, status: int, reason: str) -> None:
        report(self.peer_name, f"Error {_status_name(status)} sent, then the connection closed: {reason}")
        super()._refuse(status, reason)

    def _record_hello(self, hello: uacp.Hello | uacp.Malformed) -> None:
        record: dict[str, object] = {"peer": _peer_text(self.peer_name)}
        if isinstance(hello, uacp.Hello):
            url = hello.endpoint_url
            raw = url if isinstance(url, bytes) else (url or "").encode("utf-8")
            record.update(protocol_version=hello.protocol_version, receive_buffer_size=hello.receive_buffer_size,
                          send_buffer_size=hello.send_buffer_size, max_message_size=hello.max_message_size,
                          max_chunk_count=hello.max_chunk_count, endpoint_url_bytes=len(raw) if url is not None else -1,
                          endpoint_url=raw[:300].decode("utf-8", errors="replace"))
        else:
            record["malformed"] = str(hello)
        _print("hello-received", record)


# ---------------------------------------------------------------------------- secure channel and services


class _ShortLivedTokens(SecureConnection):
    """asyncua's server-side secure connection with every token's lifetime revised to `lifetime_ms`."""

    lifetime_ms = 0
    peer = None

    def open(self, params, server):
        requested = params.RequestedLifetime
        params.RequestedLifetime = self.lifetime_ms if not requested else min(requested, self.lifetime_ms)
        result = super().open(params, server)
        kind = "issued" if params.RequestType == ua.SecurityTokenRequestType.Issue else "renewed"
        report(self.peer, f"security token {result.SecurityToken.TokenId} {kind}: lifetime {requested} ms requested, "
                          f"{result.SecurityToken.RevisedLifetime} ms revised")
        return result

    def expired_token(self, token_id: int) -> ua.ChannelSecurityToken | None:
        """The token with that id if it has expired (CreatedAt + RevisedLifetime is past), else None."""
        if token_id == self.next_security_token.TokenId and token_id:
            return None  # just issued by a renewal
        for token in (self.security_token, self.prev_security_token):
            if token.TokenId == token_id and token.CreatedAt is not None:
                if _expiry(token) < datetime.now(timezone.utc):
                    return token
                return None
        return None


def _expiry(token: ua.ChannelSecurityToken) -> datetime:
    created = token.CreatedAt if token.CreatedAt.tzinfo else token.CreatedAt.replace(tzinfo=timezone.utc)
    return created + timedelta(milliseconds=token.RevisedLifetime)


class FaultyProcessor:
    """Mixed in before the device's processor (`ConformantProcessor`) when client faults are given."""

    client_faults: ClientFaults = ClientFaults()

    def __init__(self, iserver, transport, limits) -> None:
        super().__init__(iserver, transport, limits)
        self._device_reads = 0
        self._request_bytes = 0  # the body bytes of the request whose chunks are arriving
        if self.client_faults.token_lifetime_ms:
            connection = _ShortLivedTokens(self._connection.security_policy, self._limits)
            connection.lifetime_ms = self.client_faults.token_lifetime_ms
            connection.peer = self.name
            self._connection = connection

    async def process(self, header, body):
        faults = self.client_faults
        mtype = header.MessageType
        if mtype == ua.MessageType.Hello:
            return self._acknowledge(header, body)
        if faults.token_lifetime_ms and mtype in (ua.MessageType.SecureMessage, ua.MessageType.SecureClose):
            token_id = struct.unpack("<I", body.copy(4).read(4))[0]
            token = self._connection.expired_token(token_id)
            if token is not None:
                self._error(ua.StatusCodes.BadTcpSecureChannelUnknown,
                            f"security token {token_id} expired at {_expiry(token).isoformat(timespec='milliseconds')}")
                return False
        if faults.max_message_size and mtype == ua.MessageType.SecureMessage:
            self._request_bytes += max(header.body_size - _SECURE_HEADERS, 0)
            if self._request_bytes > faults.max_message_size:
                report(self.name, f"request of at least {self._request_bytes} bytes received, above the MaxMessageSize of "
                                  f"{faults.max_message_size}: Error Bad_RequestTooLarge, then the connection closed")
            if header.ChunkType != ua.ChunkType.Intermediate:
                self._request_bytes = 0
        return await super().process(header, body)

    def _error(self, code: int, reason: str) -> None:
        report(self.name, f"Error {_status_name(code)} sent, then the connection closed: {reason}")
        self._transport.write(uatcp_to_binary(ua.MessageType.Error, ua.ErrorMessage(ua.StatusCode(code), reason)))

    def _acknowledge(self, header, body) -> bool:
        """The device processor's Acknowledge, with the buffer-size faults applied."""
        faults = self.client_faults
        hello = self._connection.receive_from_header_and_body(header, body)
        ack = self._limits.create_acknowledge_and_set_limits(hello)
        if "ua-ack-swapped" not in self.faults:
            ack.ReceiveBufferSize, ack.SendBufferSize = ack.SendBufferSize, ack.ReceiveBufferSize
        # Each field limits one direction (Part 6 v1.05 §7.1.2.4): ReceiveBufferSize and
        # MaxMessageSize what the server takes, SendBufferSize what it sends.
        if faults.receive_buffer:
            ack.ReceiveBufferSize = self._limits.max_recv_buffer = min(ack.ReceiveBufferSize, faults.receive_buffer)
        if faults.max_message_size:
            ack.MaxMessageSize = self._limits.max_message_size = faults.max_message_size
        if faults.receive_buffer or faults.small_chunks or faults.max_message_size:
            report(self.name, f"Acknowledge: ReceiveBufferSize {ack.ReceiveBufferSize}, SendBufferSize {ack.SendBufferSize}, "
                              f"MaxMessageSize {ack.MaxMessageSize}, MaxChunkCount {ack.MaxChunkCount}")
        if faults.small_chunks:  # below the SendBufferSize offered: what a client takes is unchanged
            self._limits.max_send_buffer = min(self._limits.max_send_buffer, faults.small_chunks)
            report(self.name, f"the server's own chunks: at most {self._limits.max_send_buffer} bytes")
        self._transport.write(uatcp_to_binary(ua.MessageType.Acknowledge, ack))
        return True

    async def _process_message(self, typeid, requesthdr, seqhdr, body):
        if typeid == _READ and self.client_faults.on_read and self._session_problem(requesthdr) is None:
            params = struct_from_binary(ua.ReadParameters, body)
            points = self.device.nodes.points
            if any(item.NodeId in points for item in params.NodesToRead):
                return self._faulty_read(requesthdr, seqhdr, params)
            self._respond(requesthdr, seqhdr, self._read(params), ua.ReadResponse)
            return True
        return await super()._process_message(typeid, requesthdr, seqhdr, body)

    def _faulty_read(self, requesthdr, seqhdr, params) -> bool:
        faults = self.client_faults
        self._device_reads += 1
        if faults.service_fault:
            report(self.name, f"Read (RequestId {seqhdr.RequestId}) answered with a ServiceFault {_status_name(faults.service_fault)}")
            self._fault(requesthdr, seqhdr, faults.service_fault)
            return True
        if faults.drop_on_read:
            report(self.name, f"Read (RequestId {seqhdr.RequestId}) not answered: the connection closed")
            self._transport.close()
            return False
        outcome = self._read(params)
        if isinstance(outcome, int):
            self._fault(requesthdr, seqhdr, outcome)
            return True
        if self.session is not None:
            self.session.touch()
        response = ua.ReadResponse()
        response.Results = outcome
        response.ResponseHeader.RequestHandle = requesthdr.RequestHandle
        body = struct_to_binary(response)
        request_id = seqhdr.RequestId
        if faults.wrong_request_id:
            request_id = (request_id + WRONG_REQUEST_ID_OFFSET) & 0xFFFFFFFF or 1
            report(self.name, f"Read (RequestId {seqhdr.RequestId}) answered with RequestId {request_id}")
        if faults.late_read_ms:
            delay_ms = faults.late_read_ms if self._device_reads % 2 else faults.late_read_ms // 2
            asyncio.get_running_loop().call_later(delay_ms / 1000, self._send_late, body, request_id, delay_ms)
            return True
        data = self._connection.message_to_binary(body, message_type=ua.MessageType.SecureMessage, request_id=request_id)
        if faults.truncated_response:
            data = _with_size(data[:-TRUNCATED_BYTES], len(data) - TRUNCATED_BYTES)
            report(self.name, f"Read (RequestId {request_id}) answered with a chunk cut {TRUNCATED_BYTES} bytes short "
                              f"({len(data)} bytes, MessageSize {len(data)})")
        if faults.size_mismatch:  # every byte is sent, but MessageSize ends the chunk before its last field
            data = _with_size(data, len(data) - TRUNCATED_BYTES)
            report(self.name, f"Read (RequestId {request_id}) answered with {len(data)} bytes under a MessageSize of "
                              f"{len(data) - TRUNCATED_BYTES}")
        self._transport.write(data)
        return True

    def _send_late(self, body: bytes, request_id: int, delay_ms: int) -> None:
        if self._transport.is_closing():
            return
        report(self.name, f"Read (RequestId {request_id}) answered {delay_ms} ms late")
        self._transport.write(self._connection.message_to_binary(body, message_type=ua.MessageType.SecureMessage,
                                                                  request_id=request_id))


def _with_size(chunk: bytes, size: int) -> bytes:
    """The chunk with its MessageSize field (bytes 4-7) set to `size`."""
    return chunk[:4] + struct.pack("<I", size) + chunk[8:]
