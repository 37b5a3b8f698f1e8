"""UA TCP connection protocol (UACP): Hello/Acknowledge and the errors that end a connection.

OPC UA Part 6 v1.05 §7.1.  Raw cases, sent with our own UACP framing
(`harness.codec.opcua.uacp`): a protocol error is answered with an Error message and the
server closes the connection (§7.1.4/§7.1.5), and the server goes on serving everyone else.
"""

from __future__ import annotations

import struct

from harness.codec.opcua import uacp
from harness.conformance import case, fail

from .support import P6

CLOSE_WAIT_S = 2.0
NONE_POLICY_URI = b"http://opcfoundation.org/UA/SecurityPolicy#None"


async def _expect_error_and_close(dut, conn, what: str, allowed: set[int] | None = None) -> None:
    """The next thing from the server is an Error message (with an allowed code), then a close."""
    got = await conn.read_message(CLOSE_WAIT_S)
    if got.kind == "closed":
        fail(f"{what}: the server closed the connection without an Error message",
             expected="an Error message, then the connection closed", observed="connection closed, no Error message")
    if got.kind != "message" or not isinstance(got.decoded, uacp.ErrorMessage):
        observed = got.kind if got.kind != "message" else uacp.describe(got.data)
        fail(f"{what}: no Error message", expected="an Error message, then the connection closed", observed=observed)
    if allowed and got.decoded.error not in allowed:
        fail(f"{what}: Error {uacp.status_name(got.decoded.error)}",
             expected=" or ".join(uacp.status_name(a) for a in sorted(allowed)), observed=uacp.status_name(got.decoded.error))
    if not await conn.wait_closed(CLOSE_WAIT_S):
        fail(f"{what}: the connection stayed open after the Error message",
             expected=f"the server closes the connection (within {CLOSE_WAIT_S:g} s)", observed="still open")


async def _still_serving(dut) -> None:
    conn = await dut.raw()
    try:
        reply = await conn.hello(dut.url)
        if not isinstance(reply, uacp.Acknowledge):
            fail("after closing a faulty connection the server no longer acknowledges a Hello on a new one",
                 expected="Acknowledge", observed=repr(reply))
    finally:
        conn.close()


def _refused(dut, what: str, data: bytes, *, summary: str | None = None, hello_first: bool = False,
             allowed: set[int] | None = None, still_serving: bool = True) -> None:
    """On a connection of its own (after an acknowledged Hello when `hello_first`), `data` gets
    an Error message (with an allowed code) and a close; then, unless `still_serving` is False,
    the server still acknowledges a Hello on a new connection."""
    async def check():
        conn = await dut.raw()
        try:
            if hello_first:
                ack = await conn.hello(dut.url)
                if not isinstance(ack, uacp.Acknowledge):
                    fail("the Hello was not acknowledged", expected="Acknowledge", observed=repr(ack))
            await conn.send(data, summary=summary)
            await _expect_error_and_close(dut, conn, what, allowed)
        finally:
            conn.close()
        if still_serving:
            await _still_serving(dut)

    dut.run(check())


@case("UA-UACP-HELLO-ACK", "A Hello is acknowledged with buffer sizes within what the Hello offered",
      requirements=["UA-P6-7.1.2.3-HELLO-ACK"], level="MUST", clause=f"{P6} §7.1.2.4")
def test_hello_acknowledge(dut):
    async def check():
        conn = await dut.raw()
        try:
            # Unequal sizes, so a server that swaps the two fields is seen.
            ack = await conn.hello(dut.url, receive_buffer=8192, send_buffer=16384)
        finally:
            conn.close()
        if not isinstance(ack, uacp.Acknowledge):
            fail("a Hello with 8192/16384-byte buffers is not acknowledged", expected="Acknowledge", observed=repr(ack))
        problems = []
        # §7.1.2.4: the server's ReceiveBufferSize is at most the SendBufferSize the client
        # offered, its SendBufferSize at most the client's ReceiveBufferSize, both >= 8192.
        if not uacp.MIN_BUFFER_SIZE <= ack.receive_buffer_size <= 16384:
            problems.append(f"ReceiveBufferSize {ack.receive_buffer_size} (must be 8192..16384, the Hello's SendBufferSize)")
        if not uacp.MIN_BUFFER_SIZE <= ack.send_buffer_size <= 8192:
            problems.append(f"SendBufferSize {ack.send_buffer_size} (must be 8192, the Hello's ReceiveBufferSize)")
        if ack.protocol_version != 0:
            problems.append(f"ProtocolVersion {ack.protocol_version} (must be 0, the version asked for)")
        if problems:
            fail("the Acknowledge does not fit the Hello", expected="buffer sizes no larger than offered, version 0",
                 observed="; ".join(problems))

    dut.run(check())


@case("UA-UACP-HELLO-SMALL-BUFFERS", "A Hello with buffers below 8192 bytes is refused with an Error and a close",
      requirements=["UA-P6-7.1.2.3-HELLO-MIN-BUFFER", "UA-P6-7.1.5-KEEPS-SERVING"], level="MUST", clause=f"{P6} §7.1.2.3")
def test_hello_small_buffers(dut):
    _refused(dut, "Hello with 1024-byte buffers", uacp.encode(uacp.Hello(0, 1024, 1024, 0, 0, dut.url)))


@case("UA-UACP-HELLO-MALFORMED", "A Hello cut short inside its fields is refused with an Error and a close",
      requirements=["UA-P6-7.1.5-MALFORMED-HELLO", "UA-P6-7.1.5-KEEPS-SERVING"], level="MUST", clause=f"{P6} §7.1.5")
def test_hello_malformed(dut):
    # The five UInt32 fields and two of the four bytes of the EndpointUrl's length: the
    # MessageSize (30) covers exactly what is sent, and the Hello cannot be decoded.
    whole = uacp.encode_body(uacp.Hello(0, 65536, 65536, 0, 0, dut.url))
    _refused(dut, "a Hello cut short inside its fields", uacp.encode_message(b"HEL", whole[:22], b"F"),
             summary="Hello ending inside its EndpointUrl length")


@case("UA-UACP-MESSAGE-TOO-LARGE", "A message larger than the negotiated buffer gets Bad_TcpMessageTooLarge and a close",
      requirements=["UA-P6-7.1.2.2-MESSAGE-SIZE", "UA-P6-7.1.5-KEEPS-SERVING"], level="MUST", clause=f"{P6} §7.1.2.2")
def test_message_larger_than_negotiated(dut):
    async def check():
        conn = await dut.raw()
        try:
            ack = await conn.hello(dut.url, receive_buffer=8192, send_buffer=8192)
            if not isinstance(ack, uacp.Acknowledge):
                fail("the Hello was not acknowledged", expected="Acknowledge", observed=repr(ack))
            size = ack.receive_buffer_size + 1024  # more than the server said it can receive
            body = struct.pack("<I", 0) + b"\x00" * (size - uacp.HEADER_SIZE - 4)
            await conn.send(uacp.encode_message(b"OPN", body, b"F", size))
            await _expect_error_and_close(dut, conn, f"a {size}-byte OPN after the server acknowledged {ack.receive_buffer_size}",
                                          {uacp.StatusCode.BadTcpMessageTooLarge})
        finally:
            conn.close()
        await _still_serving(dut)

    dut.run(check())


@case("UA-UACP-UNKNOWN-TYPE", "An unknown message type gets Bad_TcpMessageTypeInvalid and a close",
      requirements=["UA-P6-7.1.2.2-MESSAGE-TYPE", "UA-P6-7.1.5-KEEPS-SERVING"], level="MUST", clause=f"{P6} §7.1.2.2")
def test_unknown_message_type(dut):
    _refused(dut, "message type XYZ", uacp.encode_message(b"XYZ", struct.pack("<I", 0) + b"\x00" * 16, b"F"),
             hello_first=True, allowed={uacp.StatusCode.BadTcpMessageTypeInvalid})


@case("UA-UACP-GARBAGE-HEADER", "A garbage header gets an Error message and a close",
      requirements=["UA-P6-7.1.2.2-MESSAGE-TYPE", "UA-P6-7.1.5-KEEPS-SERVING"], level="MUST", clause=f"{P6} §7.1.5")
def test_garbage_header(dut):
    _refused(dut, "a garbage header", bytes(range(0x80, 0x80 + 64)), summary="64 bytes of garbage")


@case("UA-UACP-OPN-BEFORE-HELLO", "OpenSecureChannel before any Hello is refused with an Error and a close",
      requirements=["UA-P6-7.1.3-HELLO-FIRST"], level="MUST", clause=f"{P6} §7.1.3")
def test_open_before_hello(dut):
    # A well-formed OPN header with an empty security header and sequence header: the server
    # must not get as far as decoding it.
    body = struct.pack("<I", 0) + struct.pack("<i", len(NONE_POLICY_URI)) + NONE_POLICY_URI
    body += struct.pack("<ii", -1, -1) + struct.pack("<II", 1, 1)
    _refused(dut, "OPN before Hello", uacp.encode_message(b"OPN", body, b"F"), still_serving=False)
