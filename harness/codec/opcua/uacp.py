"""OPC UA Connection Protocol (UACP) framing, as tables: OPC UA Part 6 v1.04 §7.1.

Every UACP message starts with an 8-byte header (§7.1.2.2): three ASCII bytes of message type,
one chunk-type byte and a UInt32 little-endian MessageSize that counts the whole message,
header included.  HEL, ACK, ERR and RHE have fixed-layout bodies (§7.1.2.3 - §7.1.2.6) that
this module encodes and decodes; OPN, MSG and CLO carry UA Secure Conversation (§6.7), which
asyncua decodes.

Nothing here raises on input from the wire: `parse_header`, `decode` and `describe` return a
`Malformed` value naming what is wrong, at which byte, and the status code a receiver answers
with in its ERR.  Encoders take what they are given, so a test can build wrong messages
(`encode_message` with any type, chunk type and size).  Standard library only, no asyncua:
the OPC UA simulator reuses this module.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

HEADER_SIZE = 8
# §7.1.2.3 / §7.1.2.4: ReceiveBufferSize and SendBufferSize shall be at least 8192 bytes.
MIN_BUFFER_SIZE = 8192
# §7.1.2.3: the EndpointUrl of a Hello shall be less than 4096 bytes (else BadTcpEndpointUrlInvalid).
MAX_URL_LENGTH = 4096
# §7.1.2.5: the Reason of an Error shall not be more than 4096 bytes.
MAX_REASON_LENGTH = 4096

_UINT32 = struct.Struct("<I")
_INT32 = struct.Struct("<i")
_FIVE_UINT32 = struct.Struct("<5I")


class StatusCode(enum.IntEnum):
    """The status codes UACP and secure-channel errors use (values as in Part 6 / asyncua)."""

    Good = 0x00000000
    BadInternalError = 0x80020000
    BadCommunicationError = 0x80050000
    BadDecodingError = 0x80070000
    BadTimeout = 0x800A0000
    BadCertificateInvalid = 0x80120000
    BadSecurityChecksFailed = 0x80130000
    BadCertificateUntrusted = 0x801A0000
    BadSecureChannelIdInvalid = 0x80220000
    BadNonceInvalid = 0x80240000
    BadSecurityPolicyRejected = 0x80550000
    BadTcpServerTooBusy = 0x807D0000
    BadTcpMessageTypeInvalid = 0x807E0000
    BadTcpSecureChannelUnknown = 0x807F0000
    BadTcpMessageTooLarge = 0x80800000
    BadTcpNotEnoughResources = 0x80810000
    BadTcpInternalError = 0x80820000
    BadTcpEndpointUrlInvalid = 0x80830000
    BadRequestInterrupted = 0x80840000
    BadRequestTimeout = 0x80850000
    BadSecureChannelClosed = 0x80860000
    BadSecureChannelTokenUnknown = 0x80870000
    BadSequenceNumberInvalid = 0x80880000
    BadRequestTooLarge = 0x80B80000
    BadResponseTooLarge = 0x80B90000
    BadProtocolVersionUnsupported = 0x80BE0000


def status_name(code: int) -> str:
    """"BadTcpMessageTypeInvalid" for a known code, "0x80AB0000" for any other."""
    try:
        return StatusCode(code).name
    except ValueError:
        return f"0x{code & 0xFFFFFFFF:08X}"


@dataclass(frozen=True, slots=True)
class MessageType:
    """One row of the message-type table: what the type is and what its header may say."""

    name: str
    chunk_types: str  # the chunk-type letters allowed with this message type
    min_size: int  # the smallest MessageSize that can hold this type's fixed fields
    clause: str


# Minimum sizes: HEL = header + 5 UInt32 + String length; ACK = header + 5 UInt32 (exact);
# ERR = header + UInt32 + String length; RHE = header + two String lengths; OPN = header +
# SecureChannelId + asymmetric security header (three String/ByteString lengths) + sequence
# header (8); MSG/CLO = header + SecureChannelId + TokenId + sequence header.
MESSAGE_TYPES: dict[bytes, MessageType] = {
    b"HEL": MessageType("Hello", "F", 32, "Part 6 v1.04 §7.1.2.3"),
    b"ACK": MessageType("Acknowledge", "F", 28, "Part 6 v1.04 §7.1.2.4"),
    b"ERR": MessageType("Error", "F", 16, "Part 6 v1.04 §7.1.2.5"),
    b"RHE": MessageType("ReverseHello", "F", 16, "Part 6 v1.04 §7.1.2.6"),
    b"OPN": MessageType("OpenSecureChannel", "FCA", 32, "Part 6 v1.04 §6.7.2"),
    b"MSG": MessageType("SecureMessage", "FCA", 24, "Part 6 v1.04 §6.7.2"),
    b"CLO": MessageType("CloseSecureChannel", "FCA", 24, "Part 6 v1.04 §6.7.2"),
}
SECURE_TYPES = frozenset({b"OPN", b"MSG", b"CLO"})
CHUNK_TYPES = {"F": "final", "C": "intermediate", "A": "abort"}

# code -> what it means.  Tests check that every code here is produced somewhere.
MALFORMED_CODES: dict[str, str] = {
    "unknown-message-type": "the first three bytes are not HEL, ACK, ERR, RHE, OPN, MSG or CLO",
    "bad-chunk-type": "the chunk type is not one this message type allows",
    "size-too-small": "MessageSize is below the minimum for the message type",
    "size-too-large": "MessageSize is above the largest message the receiver accepts",
    "size-mismatch": "the message is not exactly MessageSize bytes long",
    "short-body": "the body ends before its fixed fields do",
    "trailing-bytes": "bytes left over after the body's last field",
    "bad-string-length": "a String length is negative but not -1 (null)",
    "bad-utf8": "a String is not valid UTF-8",
}


@dataclass(frozen=True, slots=True)
class Malformed:
    """Bytes that are not a valid UACP message: what is wrong and at which byte.

    `offset` indexes the bytes given to the function that found the problem.  `status` is
    the code a receiver sends in its ERR for it (Part 6 §7.1.5).
    """

    code: str
    reason: str
    offset: int
    status: int = StatusCode.BadDecodingError

    def __str__(self) -> str:
        return f"{self.reason} (at byte {self.offset})"


@dataclass(frozen=True, slots=True)
class Header:
    """The 8-byte message header.  `message_type` is three bytes, `chunk_type` one letter."""

    message_type: bytes
    chunk_type: str
    size: int

    @property
    def body_size(self) -> int:
        return self.size - HEADER_SIZE

    @property
    def is_secure(self) -> bool:
        """OPN, MSG or CLO: a SecureChannelId follows the header."""
        return self.message_type in SECURE_TYPES

    @property
    def type_name(self) -> str:
        return self.message_type.decode("ascii")


def parse_header(data: bytes, max_size: int | None = None) -> Header | Malformed | None:
    """The header at the start of `data`; None until 8 bytes are there.

    Checks, in this order: the message type is known, the chunk type is allowed for it, the
    size can hold the type's fixed fields, and (when `max_size` is given) the size is at most
    `max_size`.  Never raises.
    """
    if len(data) < HEADER_SIZE:
        return None
    mtype, chunk = bytes(data[0:3]), bytes(data[3:4])
    rule = MESSAGE_TYPES.get(mtype)
    if rule is None:
        return Malformed(
            "unknown-message-type", f"unknown message type {mtype!r}", 0, StatusCode.BadTcpMessageTypeInvalid
        )
    letter = chunk.decode("latin-1")
    if letter not in rule.chunk_types:
        allowed = " or ".join(repr(c) for c in rule.chunk_types)
        return Malformed(
            "bad-chunk-type",
            f"chunk type {chunk!r} is not allowed with {mtype.decode()} (only {allowed})",
            3,
            StatusCode.BadTcpMessageTypeInvalid,
        )
    (size,) = _UINT32.unpack_from(data, 4)
    if size < rule.min_size:
        return Malformed(
            "size-too-small",
            f"MessageSize {size} is below the minimum of {rule.min_size} bytes for {mtype.decode()}",
            4,
            StatusCode.BadDecodingError,
        )
    if max_size is not None and size > max_size:
        return Malformed(
            "size-too-large",
            f"MessageSize {size} is above the maximum of {max_size}",
            4,
            StatusCode.BadTcpMessageTooLarge,
        )
    return Header(mtype, letter, size)


def secure_channel_id(data: bytes) -> int | None:
    """The SecureChannelId of an OPN/MSG/CLO message (bytes 8..11), None if absent."""
    if len(data) < 12 or bytes(data[0:3]) not in SECURE_TYPES:
        return None
    return _UINT32.unpack_from(data, 8)[0]


# ---------------------------------------------------------------------------- bodies


@dataclass(slots=True)
class Hello:
    """HEL body (§7.1.2.3).  `endpoint_url` may be bytes to send something that is not UTF-8."""

    protocol_version: int = 0
    receive_buffer_size: int = 65536
    send_buffer_size: int = 65536
    max_message_size: int = 0
    max_chunk_count: int = 0
    endpoint_url: str | bytes | None = ""

    MESSAGE_TYPE = b"HEL"


@dataclass(slots=True)
class Acknowledge:
    """ACK body (§7.1.2.4)."""

    protocol_version: int = 0
    receive_buffer_size: int = 65536
    send_buffer_size: int = 65536
    max_message_size: int = 0
    max_chunk_count: int = 0

    MESSAGE_TYPE = b"ACK"


@dataclass(slots=True)
class ErrorMessage:
    """ERR body (§7.1.2.5): a status code and a reason."""

    error: int = StatusCode.BadTcpInternalError
    reason: str | bytes | None = ""

    MESSAGE_TYPE = b"ERR"

    @property
    def name(self) -> str:
        return status_name(self.error)


@dataclass(slots=True)
class ReverseHello:
    """RHE body (§7.1.2.6): sent by a server that opens the connection itself."""

    server_uri: str | bytes | None = ""
    endpoint_url: str | bytes | None = ""

    MESSAGE_TYPE = b"RHE"


UacpBody = Hello | Acknowledge | ErrorMessage | ReverseHello


def _string(value: str | bytes | None) -> bytes:
    if value is None:
        return _INT32.pack(-1)
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return _INT32.pack(len(raw)) + raw


def encode_body(msg: UacpBody) -> bytes:
    if isinstance(msg, Hello):
        fields = (msg.protocol_version, msg.receive_buffer_size, msg.send_buffer_size)
        return _FIVE_UINT32.pack(*fields, msg.max_message_size, msg.max_chunk_count) + _string(msg.endpoint_url)
    if isinstance(msg, Acknowledge):
        fields = (msg.protocol_version, msg.receive_buffer_size, msg.send_buffer_size)
        return _FIVE_UINT32.pack(*fields, msg.max_message_size, msg.max_chunk_count)
    if isinstance(msg, ErrorMessage):
        return _UINT32.pack(msg.error) + _string(msg.reason)
    if isinstance(msg, ReverseHello):
        return _string(msg.server_uri) + _string(msg.endpoint_url)
    raise TypeError(f"not a UACP body: {msg!r}")


def encode_message(message_type: bytes | str, body: bytes, chunk_type: bytes | str = b"F", size: int | None = None) -> bytes:
    """Header + body.  `size` overrides MessageSize (to send a wrong one); any type is allowed."""
    mtype = message_type.encode("latin-1") if isinstance(message_type, str) else bytes(message_type)
    chunk = chunk_type.encode("latin-1") if isinstance(chunk_type, str) else bytes(chunk_type)
    total = HEADER_SIZE + len(body) if size is None else size
    return mtype + chunk + _UINT32.pack(total) + body


def encode(msg: UacpBody, *, chunk_type: bytes | str = b"F", size: int | None = None) -> bytes:
    """The whole message (header + body) for a Hello, Acknowledge, ErrorMessage or ReverseHello."""
    return encode_message(msg.MESSAGE_TYPE, encode_body(msg), chunk_type, size)


class _Reader:
    """Reads fields from a message body; the first problem is kept in `error`."""

    def __init__(self, data: bytes, start: int):
        self.data, self.pos, self.error = data, start, None

    def _short(self, need: int, what: str) -> None:
        self.error = Malformed(
            "short-body", f"the body ends at byte {len(self.data)} but {what} needs {need} more", len(self.data)
        )

    def uint32s(self, count: int, what: str) -> tuple[int, ...] | None:
        end = self.pos + 4 * count
        if self.error or end > len(self.data):
            if not self.error:
                self._short(end - len(self.data), what)
            return None
        values = struct.unpack_from(f"<{count}I", self.data, self.pos)
        self.pos = end
        return values

    def string(self, what: str) -> str | None:
        at = self.pos
        lengths = self.uint32s(1, f"the length of {what}")
        if lengths is None:
            return None
        (length,) = _INT32.unpack(_UINT32.pack(lengths[0]))
        if length == -1:
            return None
        if length < 0:
            self.error = Malformed("bad-string-length", f"{what} has length {length}", at)
            return None
        end = self.pos + length
        if end > len(self.data):
            self._short(end - len(self.data), what)
            return None
        raw = bytes(self.data[self.pos : end])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.error = Malformed("bad-utf8", f"{what} is not UTF-8: {exc.reason}", self.pos + exc.start)
            return None
        self.pos = end
        return text

    def finish(self, what: str) -> Malformed | None:
        if self.error is None and self.pos != len(self.data):
            extra = len(self.data) - self.pos
            self.error = Malformed("trailing-bytes", f"{extra} bytes left over after the {what}", self.pos)
        return self.error


def _decode_fields(message_type: bytes, data: bytes, start: int) -> UacpBody | Malformed | None:
    r = _Reader(data, start)
    if message_type in (b"HEL", b"ACK"):
        values = r.uint32s(5, "the five UInt32 fields")
        if message_type == b"ACK":
            return r.finish("Acknowledge") or Acknowledge(*values)
        url = r.string("EndpointUrl")
        return r.finish("Hello") or Hello(*values, endpoint_url=url)
    if message_type == b"ERR":
        code = r.uint32s(1, "the Error status code")
        reason = r.string("Reason")
        return r.finish("Error") or ErrorMessage(code[0], reason)
    if message_type == b"RHE":
        uri = r.string("ServerUri")
        url = r.string("EndpointUrl")
        return r.finish("ReverseHello") or ReverseHello(uri, url)
    return None


def decode_body(message_type: bytes | str, body: bytes) -> UacpBody | Malformed | None:
    """The fixed-layout body of a HEL/ACK/ERR/RHE; None for other types.  Offsets index `body`."""
    mtype = message_type.encode("latin-1") if isinstance(message_type, str) else bytes(message_type)
    return _decode_fields(mtype, bytes(body), 0)


def decode(message: bytes, max_size: int | None = None) -> UacpBody | Malformed | None:
    """One whole HEL/ACK/ERR/RHE message, exactly MessageSize bytes; None for OPN/MSG/CLO
    (and for fewer than 8 bytes).  Offsets index `message`."""
    header = parse_header(message, max_size)
    if header is None or isinstance(header, Malformed):
        return header
    if len(message) != header.size:
        at = min(len(message), header.size)
        return Malformed(
            "size-mismatch", f"MessageSize says {header.size} bytes but the message has {len(message)}", at
        )
    return _decode_fields(header.message_type, bytes(message), HEADER_SIZE)


# ---------------------------------------------------------------------------- summaries


def _text(value: str | None, limit: int = 96) -> str:
    if value is None:
        return "null"
    shown = value if value.isprintable() else value.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(value)} chars)"


def _summary(body: UacpBody) -> str:
    if isinstance(body, Hello):
        return (
            f"HEL v{body.protocol_version} rbuf={body.receive_buffer_size} sbuf={body.send_buffer_size}"
            f" max_msg={body.max_message_size} chunks={body.max_chunk_count} url={_text(body.endpoint_url)}"
        )
    if isinstance(body, Acknowledge):
        return (
            f"ACK v{body.protocol_version} rbuf={body.receive_buffer_size} sbuf={body.send_buffer_size}"
            f" max_msg={body.max_message_size} chunks={body.max_chunk_count}"
        )
    if isinstance(body, ErrorMessage):
        reason = "null" if body.reason is None else repr(_text(body.reason))
        return f"ERR {body.name} {reason}"
    return f"RHE server={_text(body.server_uri)} url={_text(body.endpoint_url)}"


def describe(data: bytes) -> str:
    """One line about the UACP message at the start of `data`, for evidence.  Never raises.

        HEL v0 rbuf=65536 sbuf=65536 max_msg=0 chunks=0 url=opc.tcp://host:4840
        ERR BadTcpMessageTypeInvalid 'unknown message type'
        MSG F 120 bytes channel=5
        malformed: unknown message type b'XYZ' (at byte 0)
    """
    data = bytes(data)
    header = parse_header(data)
    if header is None:
        return f"incomplete header: {len(data)} bytes" if data else "no bytes"
    if isinstance(header, Malformed):
        return f"malformed: {header}"
    name = header.type_name
    if len(data) < header.size:
        return f"{name} {header.chunk_type} incomplete: {len(data)} of {header.size} bytes"
    extra = len(data) - header.size
    tail = f" (+{extra} bytes after the message)" if extra else ""
    message = data[: header.size]
    if header.is_secure:
        return f"{name} {header.chunk_type} {header.size} bytes channel={secure_channel_id(message)}{tail}"
    body = decode(message)
    if isinstance(body, Malformed):
        return f"{name} malformed: {body}{tail}"
    return _summary(body) + tail
