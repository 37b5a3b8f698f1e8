"""UACP rules a plain asyncua server does not enforce, checked before it sees a message.

OPC UA Part 6 v1.05 §7.1 (Connection Protocol).  Per connection, every message header is
checked with the sans-io rules in `harness.codec.opcua.uacp`; a violation is answered with an
Error message naming the problem, and the connection is closed (§7.1.4/§7.1.5):

- the first message must be a Hello; anything else first, a second Hello, or an ACK/ERR/RHE
  from a client gets Bad_TcpMessageTypeInvalid;
- an unknown message type or chunk type gets Bad_TcpMessageTypeInvalid, a size below the
  type's minimum Bad_DecodingError;
- a Hello with ReceiveBufferSize or SendBufferSize below 8192 bytes (§7.1.2.3) is refused,
  as is an EndpointUrl of 4096 bytes or more (Bad_TcpEndpointUrlInvalid);
- a message larger than the negotiated receive buffer gets Bad_TcpMessageTooLarge (§7.1.2.2:
  "make sure the MessageSize is less than the negotiated ReceiveBufferSize");
- a MSG or CLO whose SecureChannelId is not the channel open on this connection (none open
  yet, or another id) gets Bad_TcpSecureChannelUnknown (Part 6 v1.05 §6.7.2.2: "If a Server
  receives a SecureChannelId which it does not recognize it shall return an appropriate
  transport layer error"; §6.7.6).  asyncua itself only logs an exception and keeps the
  connection open without a word.

Valid messages go on to asyncua's protocol unchanged.
"""

from __future__ import annotations

import logging
import struct

from asyncua.server.binary_server_asyncio import OPCUAProtocol

from harness.codec.opcua import uacp

log = logging.getLogger("simulators.opcua")

_CLIENT_MAY_NOT_SEND = {b"ACK", b"ERR", b"RHE"}
_UINT32 = struct.Struct("<I")


class GuardedProtocol(OPCUAProtocol):
    """asyncua's per-connection protocol behind the UACP checks."""

    processor_class: type | None = None  # the service layer's processor, set by the server
    faults: frozenset[str] = frozenset()  # deliberate defects (simulators.opcua.faults)

    def connection_made(self, transport) -> None:
        self._rx = bytearray()
        self._hello_seen = False
        self._receive_limit = self.limits.max_recv_buffer
        self._refused = False
        super().connection_made(transport)
        if self.processor is not None and self.processor_class is not None:
            processor = self.processor_class(self.iserver, self.transport, self.limits)
            processor.set_policies(self.policies)
            self.processor = processor

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._rx += data
        while True:
            header = uacp.parse_header(self._rx, max_size=self._receive_limit)
            if header is None:
                return
            if isinstance(header, uacp.Malformed):
                self._refuse_malformed(header)
                return
            problem = self._order_problem(header)
            if problem is not None:
                self._refuse(*problem)
                return
            if len(self._rx) < header.size:
                return
            message = bytes(self._rx[: header.size])
            del self._rx[: header.size]
            if header.message_type == b"HEL":
                problem = self._hello_problem(uacp.decode(message, max_size=self._receive_limit))
                if problem is not None:
                    self._refuse(*problem)
                    return
            elif header.message_type != b"OPN" and not self._channel_known(message):
                self._refuse(uacp.StatusCode.BadTcpSecureChannelUnknown,
                             f"SecureChannelId {uacp.secure_channel_id(message)} is not open on this connection")
                return
            super().data_received(message)

    # ------------------------------------------------------------------ checks

    def _order_problem(self, header: uacp.Header) -> tuple[int, str] | None:
        mtype = header.message_type
        if mtype in _CLIENT_MAY_NOT_SEND:
            return uacp.StatusCode.BadTcpMessageTypeInvalid, f"a client does not send {header.type_name}"
        if mtype == b"HEL":
            if self._hello_seen:
                return uacp.StatusCode.BadTcpMessageTypeInvalid, "a second Hello on one connection"
            return None
        if not self._hello_seen:
            return uacp.StatusCode.BadTcpMessageTypeInvalid, f"{header.type_name} before Hello"
        return None

    def _channel_known(self, message: bytes) -> bool:
        """Is the SecureChannelId of this MSG/CLO the channel open on this connection?  (The
        size check has made sure the id is there: MSG/CLO are at least 24 bytes.)"""
        processor = self.processor
        if processor is None:
            return False
        connection = processor._connection
        # per MSG, so not uacp.secure_channel_id (which checks the type again: 0.4 µs more)
        return connection.is_open() and _UINT32.unpack_from(message, 8)[0] == connection.security_token.ChannelId

    def _hello_problem(self, hello: uacp.Hello | uacp.Malformed) -> tuple[int, str] | None:
        """Why the Hello (decoded once, here or as what is wrong with it) is refused, or None."""
        if isinstance(hello, uacp.Malformed):
            return hello.status, str(hello)
        url = hello.endpoint_url or ""
        if len(url.encode("utf-8") if isinstance(url, str) else url) >= uacp.MAX_URL_LENGTH:
            return uacp.StatusCode.BadTcpEndpointUrlInvalid, "EndpointUrl of 4096 bytes or more"
        too_small = hello.receive_buffer_size < uacp.MIN_BUFFER_SIZE or hello.send_buffer_size < uacp.MIN_BUFFER_SIZE
        if too_small and "ua-small-buffers" not in self.faults:
            return (uacp.StatusCode.BadTcpInternalError,
                    f"buffer sizes {hello.receive_buffer_size}/{hello.send_buffer_size} are below the minimum of {uacp.MIN_BUFFER_SIZE}")
        self._hello_seen = True
        # What we accept from now on: our buffer, or less if the client sends smaller chunks.
        self._receive_limit = max(min(self.limits.max_recv_buffer, hello.send_buffer_size), uacp.MIN_BUFFER_SIZE)
        return None

    def _refuse_malformed(self, problem: uacp.Malformed) -> None:
        """A header the codec finds malformed: Error message and close (a fault may hook this)."""
        self._refuse(problem.status, problem.reason)

    def _refuse(self, status: int, reason: str) -> None:
        log.info("UACP violation from %s: %s", self.peer_name, reason)
        self._refused = True
        if self.transport is not None:
            self.transport.write(uacp.encode(uacp.ErrorMessage(int(status), reason[:200])))
            self.transport.close()
