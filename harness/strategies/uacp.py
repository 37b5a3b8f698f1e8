"""Hypothesis strategies for OPC UA Connection Protocol messages (Part 6 v1.05 §7.1.2, §6.7).

- `hello_messages`: a valid Hello, and Hellos with a MessageSize that disagrees with the
  bytes, buffer sizes below 8192 or at 0xFFFFFFFF, an EndpointUrl of 4096 bytes or more,
  String lengths that are negative or run past the message, a chunk type other than 'F', an
  unknown message type, a cut header or body.
- `open_secure_channel_chunks`: an OpenSecureChannel request with SecurityPolicy None, and the
  same with the size, the policy URI (length) or the chunk type changed, or the body cut.
- `message_chunks`: MSG/CLO chunks for a secure channel that does not exist, 'C' chunks never
  followed by an 'F', 'A' (abort) chunks, a MessageSize beyond the negotiated buffer.

Where a frame goes: Hello frames are the first bytes on a new connection.  OPN, MSG and CLO
frames are meant for a connection whose Hello was acknowledged (send
`uacp.encode(uacp.Hello(endpoint_url=...))` first, and an OPN before MSG/CLO if the channel
should exist).  `UACP_EXPECT_REPLY` states, for that use, whether a conforming server must send
something back: the ACK, the OPN response, or the Error message §7.1.5 requires before it
closes on a protocol error ("the Server shall send an Error Message ... and close"), which
includes a chunk for a SecureChannelId it never issued (§6.7.2.2, §6.7.6).  No reply is
required while the server is still waiting for bytes (a MessageSize larger than what was sent,
a cut header, an intermediate chunk) or for an abort chunk; 'C' and 'A' chunks keep that
leniency even when they carry random channel ids (pass `channel_id` to aim them at a channel).

The OPN body is built here byte by byte (policy None needs no cryptography), so this module
needs only the codec; the tests check it against asyncua's decoder.
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from harness.codec.opcua import uacp
from harness.codec.opcua.uacp import HEADER_SIZE, MAX_URL_LENGTH, MESSAGE_TYPES, MIN_BUFFER_SIZE

from . import FuzzFrame

DEFAULT_ENDPOINT_URL = "opc.tcp://127.0.0.1:4840"
POLICY_NONE_URI = "http://opcfoundation.org/UA/SecurityPolicy#None"
KNOWN_POLICY_URIS = frozenset(
    f"http://opcfoundation.org/UA/SecurityPolicy#{name}"
    for name in ("None", "Basic128Rsa15", "Basic256", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
)
# ns=0;i=446: OpenSecureChannelRequest_Encoding_DefaultBinary (Part 6 §5.2.2.9, FourByte NodeId).
OPEN_REQUEST_TYPE_ID = 446
DEFAULT_LIFETIME_MS = 600_000

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_UINT32 = st.integers(0, 0xFFFFFFFF)

# kind -> whether a conforming server must answer it (see the module docstring).
UACP_EXPECT_REPLY: dict[str, bool] = {
    "uacp:hello": True,  # ACK
    "uacp:hello-url-null": True,  # ACK or ERR
    "uacp:hello-buffer-max": True,  # ACK with the server's own sizes
    "uacp:hello-protocol-version": True,  # ACK with the server's version, or ERR
    "uacp:hello-buffer-small": True,  # below 8192 (§7.1.2.3): ERR (or ACK)
    "uacp:hello-url-too-long": True,  # ERR Bad_TcpEndpointUrlInvalid
    "uacp:hello-url-length-negative": True,  # ERR Bad_DecodingError
    "uacp:hello-url-length-beyond": True,  # ERR Bad_DecodingError
    "uacp:hello-trailing": True,  # bytes after the EndpointUrl: ERR (or ACK)
    "uacp:hello-chunk-type": True,  # ERR Bad_TcpMessageTypeInvalid
    "uacp:hello-size-short": True,  # the message read is cut: ERR
    "uacp:hello-size-long": False,  # the server waits for the rest
    "uacp:hello-truncated": False,  # the server waits for the rest
    "uacp:unknown-type": True,  # ERR Bad_TcpMessageTypeInvalid
    "uacp:truncated-header": False,  # the server waits for the rest
    "uacp:opn": True,  # OpenSecureChannel response
    "uacp:opn-policy-unknown": True,  # ERR Bad_SecurityPolicyRejected
    "uacp:opn-policy-length": True,  # ERR
    "uacp:opn-size-short": True,  # ERR
    "uacp:opn-size-long": False,  # the server waits for the rest
    "uacp:opn-body-truncated": True,  # ERR Bad_DecodingError
    "uacp:opn-chunk-intermediate": False,  # the server waits for the final chunk
    "uacp:opn-chunk-abort": False,  # an aborted message is discarded
    "uacp:opn-chunk-invalid": True,  # ERR Bad_TcpMessageTypeInvalid
    "uacp:msg-bogus-channel": True,  # ERR Bad_TcpSecureChannelUnknown / Bad_SecureChannelIdInvalid
    "uacp:clo-bogus-channel": True,  # §6.7.2.2: an unknown SecureChannelId gets a transport error
    "uacp:msg-intermediate": False,  # the server waits for the final chunk
    "uacp:msg-abort": False,  # an aborted message is discarded
    "uacp:msg-size-beyond-buffer": True,  # ERR Bad_TcpMessageTooLarge
}
UACP_KINDS = frozenset(UACP_EXPECT_REPLY)


def _frame(kind: str, data: bytes) -> FuzzFrame:
    return FuzzFrame(kind, data, UACP_EXPECT_REPLY[kind])


def _string(raw: bytes | None) -> bytes:
    """A String/ByteString: Int32 length (-1 = null), then the bytes."""
    return _I32.pack(-1) if raw is None else _I32.pack(len(raw)) + raw


def _other_than(*excluded: int) -> SearchStrategy[int]:
    return _UINT32.filter(lambda v: v not in excluded)


# ---------------------------------------------------------------------------- Hello


@st.composite
def _hello(draw: st.DrawFn, endpoint_url: str | None) -> uacp.Hello:
    """A Hello a server must acknowledge: version 0, buffers of at least 8192 bytes."""
    receive = draw(st.integers(MIN_BUFFER_SIZE, 1 << 24))
    send = draw(st.integers(MIN_BUFFER_SIZE, 1 << 24))
    max_message = draw(st.one_of(st.just(0), st.integers(MIN_BUFFER_SIZE, 1 << 26)))  # 0: no limit
    max_chunks = draw(st.one_of(st.just(0), st.integers(1, 4096)))  # 0: no limit
    return uacp.Hello(0, receive, send, max_message, max_chunks, endpoint_url)


def _hello_fields(hello: uacp.Hello) -> bytes:
    """The five UInt32 fields of a Hello body, without the EndpointUrl."""
    return struct.pack(
        "<5I",
        hello.protocol_version,
        hello.receive_buffer_size,
        hello.send_buffer_size,
        hello.max_message_size,
        hello.max_chunk_count,
    )


@st.composite
def _hello_valid(draw: st.DrawFn, url: str) -> FuzzFrame:
    return _frame("uacp:hello", uacp.encode(draw(_hello(url))))


@st.composite
def _hello_url_null(draw: st.DrawFn) -> FuzzFrame:
    return _frame("uacp:hello-url-null", uacp.encode(draw(_hello(None))))


@st.composite
def _hello_buffer_max(draw: st.DrawFn, url: str) -> FuzzFrame:
    hello = draw(_hello(url))
    hello.receive_buffer_size = hello.send_buffer_size = 0xFFFFFFFF
    return _frame("uacp:hello-buffer-max", uacp.encode(hello))


@st.composite
def _hello_protocol_version(draw: st.DrawFn, url: str) -> FuzzFrame:
    hello = draw(_hello(url))
    hello.protocol_version = draw(st.integers(1, 0xFFFFFFFF))
    return _frame("uacp:hello-protocol-version", uacp.encode(hello))


@st.composite
def _hello_buffer_small(draw: st.DrawFn, url: str) -> FuzzFrame:
    hello = draw(_hello(url))
    small = st.one_of(st.sampled_from([0, MIN_BUFFER_SIZE - 1]), st.integers(0, MIN_BUFFER_SIZE - 1))
    which = draw(st.sampled_from(["receive", "send", "both"]))
    if which in ("receive", "both"):
        hello.receive_buffer_size = draw(small)
    if which in ("send", "both"):
        hello.send_buffer_size = draw(small)
    return _frame("uacp:hello-buffer-small", uacp.encode(hello))


@st.composite
def _hello_url_too_long(draw: st.DrawFn, url: str) -> FuzzFrame:
    """An EndpointUrl of 4096 bytes or more (§7.1.2.3: it shall be less than 4096)."""
    size = draw(st.integers(MAX_URL_LENGTH, MAX_URL_LENGTH + 64))
    long_url = url + "/" + "a" * max(0, size - len(url) - 1)
    return _frame("uacp:hello-url-too-long", uacp.encode(draw(_hello(long_url))))


@st.composite
def _hello_url_length(draw: st.DrawFn, url: str, kind: str) -> FuzzFrame:
    """The EndpointUrl bytes intact, its Int32 length negative (not -1) or past the end."""
    raw = url.encode("utf-8")
    if kind == "uacp:hello-url-length-negative":
        length = draw(st.one_of(st.sampled_from([-2, -0x80000000]), st.integers(-0x80000000, -2)))
    else:
        length = draw(st.one_of(st.just(len(raw) + 1), st.integers(len(raw) + 1, 0x7FFFFFFF)))
    body = _hello_fields(draw(_hello(url))) + _I32.pack(length) + raw
    return _frame(kind, uacp.encode_message(b"HEL", body))


@st.composite
def _hello_trailing(draw: st.DrawFn, url: str) -> FuzzFrame:
    body = uacp.encode_body(draw(_hello(url))) + draw(st.binary(min_size=1, max_size=16))
    return _frame("uacp:hello-trailing", uacp.encode_message(b"HEL", body))


@st.composite
def _hello_chunk_type(draw: st.DrawFn, url: str) -> FuzzFrame:
    other = st.binary(min_size=1, max_size=1).filter(lambda b: b != b"F")
    chunk = draw(st.one_of(st.sampled_from([b"C", b"A"]), other))
    return _frame("uacp:hello-chunk-type", uacp.encode(draw(_hello(url)), chunk_type=chunk))


@st.composite
def _hello_size(draw: st.DrawFn, url: str, kind: str) -> FuzzFrame:
    """MessageSize below the bytes sent (down to 0), or above them (up to 8192)."""
    message = uacp.encode(draw(_hello(url)))
    if kind == "uacp:hello-size-short":
        size = draw(st.integers(0, len(message) - 1))
    else:
        size = draw(st.integers(len(message) + 1, MIN_BUFFER_SIZE))
    return _frame(kind, message[:4] + _U32.pack(size) + message[8:])


@st.composite
def _cut(draw: st.DrawFn, url: str, kind: str) -> FuzzFrame:
    """A valid Hello cut inside its header, or after it (the header says the full size)."""
    message = uacp.encode(draw(_hello(url)))
    if kind == "uacp:truncated-header":
        cut = draw(st.integers(1, HEADER_SIZE - 1))
    else:
        cut = draw(st.integers(HEADER_SIZE, len(message) - 1))
    return _frame(kind, message[:cut])


@st.composite
def _unknown_type(draw: st.DrawFn, url: str) -> FuzzFrame:
    mtype = draw(
        st.one_of(
            st.sampled_from([b"XYZ", b"hel", b"HEL"[::-1], b"\x00\x00\x00"]),
            st.binary(min_size=3, max_size=3),
        ).filter(lambda t: t not in MESSAGE_TYPES)
    )
    return _frame("uacp:unknown-type", uacp.encode_message(mtype, uacp.encode_body(draw(_hello(url)))))


def hello_messages(endpoint_url: str = DEFAULT_ENDPOINT_URL) -> SearchStrategy[FuzzFrame]:
    """Hello frames for the start of a connection: the valid one first, then mutations.

    `endpoint_url` is the EndpointUrl the valid Hellos carry (the server's own URL is the
    safest choice); the long-URL mutation extends it to 4096 bytes or more.
    """
    return st.one_of(
        _hello_valid(endpoint_url),
        _hello_url_null(),
        _hello_buffer_max(endpoint_url),
        _hello_protocol_version(endpoint_url),
        _hello_buffer_small(endpoint_url),
        _hello_size(endpoint_url, "uacp:hello-size-short"),
        _hello_size(endpoint_url, "uacp:hello-size-long"),
        _cut(endpoint_url, "uacp:hello-truncated"),
        _cut(endpoint_url, "uacp:truncated-header"),
        _hello_chunk_type(endpoint_url),
        _unknown_type(endpoint_url),
        _hello_url_length(endpoint_url, "uacp:hello-url-length-negative"),
        _hello_url_length(endpoint_url, "uacp:hello-url-length-beyond"),
        _hello_trailing(endpoint_url),
        _hello_url_too_long(endpoint_url),
    )


# ---------------------------------------------------------------------------- OpenSecureChannel


def open_request_body(request_handle: int = 1, lifetime_ms: int = DEFAULT_LIFETIME_MS) -> bytes:
    """An encoded OpenSecureChannelRequest (Issue, SecurityMode None), TypeId first.

    Part 4 §5.5.2 / Part 6 §5.2: RequestHeader (null AuthenticationToken, Timestamp 0, the
    handle, ReturnDiagnostics 0, null AuditEntryId, TimeoutHint 0, empty AdditionalHeader),
    ClientProtocolVersion 0, RequestType 0 (Issue), SecurityMode 1 (None), an empty
    ClientNonce and the RequestedLifetime.
    """
    type_id = struct.pack("<BBH", 0x01, 0, OPEN_REQUEST_TYPE_ID)
    header = (
        b"\x00\x00"  # AuthenticationToken: TwoByte NodeId 0
        + struct.pack("<qII", 0, request_handle, 0)  # Timestamp, RequestHandle, ReturnDiagnostics
        + _string(None)  # AuditEntryId
        + _U32.pack(0)  # TimeoutHint
        + b"\x00\x00\x00"  # AdditionalHeader: null NodeId, no body
    )
    fields = struct.pack("<IiI", 0, 0, 1) + _string(b"") + _U32.pack(lifetime_ms)
    return type_id + header + fields


def _opn_chunk(
    policy_field: bytes,
    body: bytes,
    *,
    sequence_number: int = 1,
    request_id: int = 1,
    chunk_type: bytes = b"F",
    channel_id: int = 0,
) -> bytes:
    """OPN header + SecureChannelId + asymmetric security header (no certificates) +
    sequence header + body.  `policy_field` is the encoded SecurityPolicyUri (length + bytes)."""
    security = policy_field + _string(None) + _string(None)
    chunk_body = _U32.pack(channel_id) + security + struct.pack("<II", sequence_number, request_id) + body
    return uacp.encode_message(b"OPN", chunk_body, chunk_type)


@st.composite
def _opn_parts(draw: st.DrawFn) -> dict:
    """The drawn values of a valid OPN: sequence number (< 1024 for the first), ids, lifetime."""
    return {
        "sequence_number": draw(st.integers(1, 1023)),
        "request_id": draw(st.integers(1, 0xFFFFFFFF)),
        "body": open_request_body(
            draw(st.integers(1, 0xFFFFFFFF)),
            draw(st.one_of(st.just(DEFAULT_LIFETIME_MS), st.integers(1000, 0xFFFFFFFF))),
        ),
    }


_POLICY_NONE = _string(POLICY_NONE_URI.encode())


@st.composite
def _opn_valid(draw: st.DrawFn) -> FuzzFrame:
    return _frame("uacp:opn", _opn_chunk(_POLICY_NONE, **draw(_opn_parts())))


@st.composite
def _opn_policy_unknown(draw: st.DrawFn) -> FuzzFrame:
    uri = draw(
        st.one_of(
            st.sampled_from(
                [
                    "http://opcfoundation.org/UA/SecurityPolicy#Bogus",
                    "",
                    "None",
                    "http://opcfoundation.org/UA/SecurityPolicy#none",
                ]
            ),
            st.text(max_size=64),
        ).filter(lambda u: u not in KNOWN_POLICY_URIS)
    )
    return _frame("uacp:opn-policy-unknown", _opn_chunk(_string(uri.encode()), **draw(_opn_parts())))


@st.composite
def _opn_policy_length(draw: st.DrawFn) -> FuzzFrame:
    """The None policy URI bytes, with an Int32 length that is not theirs."""
    raw = POLICY_NONE_URI.encode()
    length = draw(
        st.one_of(
            st.sampled_from([len(raw) - 1, len(raw) + 1, -1, -2, 0]),
            st.integers(-0x80000000, 0x7FFFFFFF),
        ).filter(lambda n: n != len(raw))
    )
    return _frame("uacp:opn-policy-length", _opn_chunk(_I32.pack(length) + raw, **draw(_opn_parts())))


@st.composite
def _opn_chunk_type(draw: st.DrawFn, kind: str) -> FuzzFrame:
    if kind == "uacp:opn-chunk-intermediate":
        chunk = b"C"
    elif kind == "uacp:opn-chunk-abort":
        chunk = b"A"
    else:
        chunk = draw(st.binary(min_size=1, max_size=1).filter(lambda b: b not in (b"F", b"C", b"A")))
    return _frame(kind, _opn_chunk(_POLICY_NONE, chunk_type=chunk, **draw(_opn_parts())))


@st.composite
def _opn_size(draw: st.DrawFn, kind: str) -> FuzzFrame:
    chunk = _opn_chunk(_POLICY_NONE, **draw(_opn_parts()))
    if kind == "uacp:opn-size-short":
        size = draw(st.integers(0, len(chunk) - 1))
    else:
        size = draw(st.integers(len(chunk) + 1, MIN_BUFFER_SIZE))
    return _frame(kind, chunk[:4] + _U32.pack(size) + chunk[8:])


@st.composite
def _opn_body_truncated(draw: st.DrawFn) -> FuzzFrame:
    """A valid OPN cut after its SecureChannelId; the MessageSize counts what is left."""
    chunk = _opn_chunk(_POLICY_NONE, **draw(_opn_parts()))
    cut = draw(st.integers(HEADER_SIZE + 4, len(chunk) - 1))
    return _frame("uacp:opn-body-truncated", chunk[:4] + _U32.pack(cut) + chunk[8:cut])


def open_secure_channel_chunks() -> SearchStrategy[FuzzFrame]:
    """OPN chunks (SecurityPolicy None) for a connection whose Hello was acknowledged."""
    return st.one_of(
        _opn_valid(),
        _opn_policy_unknown(),
        _opn_policy_length(),
        _opn_size("uacp:opn-size-short"),
        _opn_size("uacp:opn-size-long"),
        _opn_body_truncated(),
        _opn_chunk_type("uacp:opn-chunk-intermediate"),
        _opn_chunk_type("uacp:opn-chunk-abort"),
        _opn_chunk_type("uacp:opn-chunk-invalid"),
    )


# ---------------------------------------------------------------------------- MSG / CLO


def _symmetric_chunk(message_type: bytes, chunk_type: bytes, channel_id: int, token_id: int, body: bytes,
                     sequence_number: int = 1, request_id: int = 1) -> bytes:
    """MSG/CLO: header, SecureChannelId, TokenId (symmetric security header), sequence header, body."""
    chunk_body = struct.pack("<IIII", channel_id, token_id, sequence_number, request_id) + body
    return uacp.encode_message(message_type, chunk_body, chunk_type)


@st.composite
def _bogus_channel(draw: st.DrawFn, message_type: bytes, kind: str, channel_id: int | None) -> FuzzFrame:
    """A final chunk for a SecureChannelId the server never issued (0 is never issued)."""
    excluded = () if channel_id is None else (channel_id,)
    chunk = _symmetric_chunk(
        message_type,
        b"F",
        draw(_other_than(*excluded)),
        draw(_UINT32),
        draw(st.binary(max_size=32)),
        draw(st.integers(1, 0xFFFFFFFF)),
        draw(st.integers(1, 0xFFFFFFFF)),
    )
    return _frame(kind, chunk)


@st.composite
def _intermediate_only(draw: st.DrawFn, channel_id: int | None, token_id: int | None) -> FuzzFrame:
    """One to three 'C' chunks of one message, never followed by its 'F' chunk."""
    channel = draw(_UINT32) if channel_id is None else channel_id
    token = draw(_UINT32) if token_id is None else token_id
    request_id = draw(st.integers(1, 0xFFFFFFFF))
    first = draw(st.integers(1, 0xFFFFFF))
    count = draw(st.integers(1, 3))
    chunks = b"".join(
        _symmetric_chunk(b"MSG", b"C", channel, token, draw(st.binary(max_size=32)), first + i, request_id)
        for i in range(count)
    )
    return _frame("uacp:msg-intermediate", chunks)


@st.composite
def _abort(draw: st.DrawFn, channel_id: int | None, token_id: int | None) -> FuzzFrame:
    """An 'A' chunk: its body is an Error UInt32 and a Reason String (Part 6 §6.7.3)."""
    channel = draw(_UINT32) if channel_id is None else channel_id
    token = draw(_UINT32) if token_id is None else token_id
    reason = draw(st.one_of(st.just(b""), st.binary(max_size=64)))
    body = _U32.pack(draw(st.one_of(st.just(uacp.StatusCode.BadRequestInterrupted.value), _UINT32))) + _string(reason)
    chunk = _symmetric_chunk(b"MSG", b"A", channel, token, body, draw(st.integers(1, 0xFFFFFFFF)))
    return _frame("uacp:msg-abort", chunk)


@st.composite
def _beyond_buffer(draw: st.DrawFn, channel_id: int | None, token_id: int | None, send_buffer_size: int) -> FuzzFrame:
    """A MessageSize above the buffer the server may have negotiated; only a short body sent."""
    channel = draw(_UINT32) if channel_id is None else channel_id
    token = draw(_UINT32) if token_id is None else token_id
    chunk = _symmetric_chunk(b"MSG", b"F", channel, token, draw(st.binary(max_size=32)))
    size = draw(st.integers(send_buffer_size + 1, 0xFFFFFFFF))
    return _frame("uacp:msg-size-beyond-buffer", chunk[:4] + _U32.pack(size) + chunk[8:])


def message_chunks(
    *,
    channel_id: int | None = None,
    token_id: int | None = None,
    send_buffer_size: int = 65536,
) -> SearchStrategy[FuzzFrame]:
    """MSG/CLO chunks for a connection whose Hello was acknowledged.

    Give `channel_id`/`token_id` of a channel the runner opened to aim the intermediate,
    abort and oversize chunks at it (otherwise they carry random ids); the bogus-channel
    chunks never use `channel_id`.  `send_buffer_size` is the SendBufferSize of the runner's
    Hello: the server's ReceiveBufferSize is at most that (§7.1.2.4), so a MessageSize above
    it is beyond the negotiated buffer.
    """
    if not MIN_BUFFER_SIZE <= send_buffer_size < 0xFFFFFFFF:
        raise ValueError(f"send_buffer_size {send_buffer_size} must be 8192..0xFFFFFFFE, the value the Hello announced")
    return st.one_of(
        _bogus_channel(b"MSG", "uacp:msg-bogus-channel", channel_id),
        _bogus_channel(b"CLO", "uacp:clo-bogus-channel", channel_id),
        _intermediate_only(channel_id, token_id),
        _abort(channel_id, token_id),
        _beyond_buffer(channel_id, token_id, send_buffer_size),
    )


def uacp_messages(endpoint_url: str = DEFAULT_ENDPOINT_URL) -> SearchStrategy[FuzzFrame]:
    """Hello frames, OPN chunks and MSG/CLO chunks (see each for where it is sent)."""
    return st.one_of(hello_messages(endpoint_url), open_secure_channel_chunks(), message_chunks())
