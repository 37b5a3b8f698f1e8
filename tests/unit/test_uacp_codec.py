"""The UACP codec (harness.codec.opcua.uacp): header tables, Malformed values, bodies, summaries.

Hello, Acknowledge and Error encodings are compared byte for byte with asyncua's
(`uatcp_to_binary` / `struct_from_binary`), and the status codes with asyncua's table, so the
codec the simulator shares agrees with the stack on everything but the checks it adds.
"""

from __future__ import annotations

import ast
import struct
import sys
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, uatcp_to_binary
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.codec.opcua import uacp
from harness.codec.opcua.uacp import (
    MALFORMED_CODES,
    MESSAGE_TYPES,
    MIN_BUFFER_SIZE,
    Acknowledge,
    ErrorMessage,
    Header,
    Hello,
    Malformed,
    ReverseHello,
    StatusCode,
    decode,
    decode_body,
    describe,
    encode,
    encode_message,
    parse_header,
    secure_channel_id,
    status_name,
)

UINT32 = st.integers(0, 0xFFFFFFFF)
TEXT = st.one_of(st.none(), st.text(max_size=40))


def header(mtype: bytes, chunk: bytes = b"F", size: int = 64) -> bytes:
    return mtype + chunk + struct.pack("<I", size)


# ---------------------------------------------------------------------------- the tables


def test_status_codes_are_the_values_asyncua_knows():
    for member in StatusCode:
        assert member.value == getattr(ua.StatusCodes, member.name), member.name
    assert StatusCode.BadTcpMessageTypeInvalid == 0x807E0000
    assert StatusCode.BadTcpMessageTooLarge == 0x80800000
    assert StatusCode.BadTcpInternalError == 0x80820000
    assert StatusCode.BadTcpEndpointUrlInvalid == 0x80830000
    assert StatusCode.BadCommunicationError == 0x80050000
    assert StatusCode.BadProtocolVersionUnsupported == 0x80BE0000
    assert StatusCode.BadTcpSecureChannelUnknown == 0x807F0000
    assert MIN_BUFFER_SIZE == 8192


def test_status_name_of_unknown_code_is_hex():
    assert status_name(0x807E0000) == "BadTcpMessageTypeInvalid"
    assert status_name(0x80AB0000) == "0x80AB0000"


@pytest.mark.parametrize(
    "mtype, chunks",
    [(b"HEL", "F"), (b"ACK", "F"), (b"ERR", "F"), (b"RHE", "F"), (b"OPN", "FCA"), (b"MSG", "FCA"), (b"CLO", "FCA")],
)
def test_every_message_type_parses_with_its_chunk_types(mtype, chunks):
    assert MESSAGE_TYPES[mtype].chunk_types == chunks
    for chunk in chunks:
        parsed = parse_header(header(mtype, chunk.encode(), 4096))
        assert parsed == Header(mtype, chunk, 4096)
        assert parsed.body_size == 4088
        assert parsed.is_secure == (mtype in (b"OPN", b"MSG", b"CLO"))


def test_minimum_sizes_are_accepted_exactly():
    for mtype, rule in MESSAGE_TYPES.items():
        assert isinstance(parse_header(header(mtype, b"F", rule.min_size)), Header)
        assert parse_header(header(mtype, b"F", rule.min_size - 1)).code == "size-too-small"


@pytest.mark.parametrize("length", range(8))
def test_fewer_than_eight_bytes_need_more(length):
    assert parse_header(header(b"HEL", b"F", 32)[:length]) is None


# (name, bytes, max_size, code, offset, status, words in the reason)
MALFORMED_HEADERS = [
    ("unknown type", b"XYZF\x20\x00\x00\x00", None, "unknown-message-type", 0, StatusCode.BadTcpMessageTypeInvalid, "XYZ"),
    ("lower case", b"helF\x20\x00\x00\x00", None, "unknown-message-type", 0, StatusCode.BadTcpMessageTypeInvalid, "hel"),
    ("HEL intermediate", header(b"HEL", b"C", 32), None, "bad-chunk-type", 3, StatusCode.BadTcpMessageTypeInvalid, "only 'F'"),
    ("ACK abort", header(b"ACK", b"A", 28), None, "bad-chunk-type", 3, StatusCode.BadTcpMessageTypeInvalid, "ACK"),
    ("ERR intermediate", header(b"ERR", b"C", 16), None, "bad-chunk-type", 3, StatusCode.BadTcpMessageTypeInvalid, "ERR"),
    ("RHE abort", header(b"RHE", b"A", 16), None, "bad-chunk-type", 3, StatusCode.BadTcpMessageTypeInvalid, "RHE"),
    ("MSG bad letter", header(b"MSG", b"X"), None, "bad-chunk-type", 3, StatusCode.BadTcpMessageTypeInvalid, "'C'"),
    ("HEL too small", header(b"HEL", b"F", 31), None, "size-too-small", 4, StatusCode.BadDecodingError, "31"),
    ("ACK too small", header(b"ACK", b"F", 27), None, "size-too-small", 4, StatusCode.BadDecodingError, "28"),
    ("ERR size zero", header(b"ERR", b"F", 0), None, "size-too-small", 4, StatusCode.BadDecodingError, "16"),
    ("OPN too small", header(b"OPN", b"F", 31), None, "size-too-small", 4, StatusCode.BadDecodingError, "OPN"),
    ("MSG header only", header(b"MSG", b"F", 8), None, "size-too-small", 4, StatusCode.BadDecodingError, "MSG"),
    ("CLO too small", header(b"CLO", b"F", 23), None, "size-too-small", 4, StatusCode.BadDecodingError, "24"),
    ("MSG too large", header(b"MSG", b"F", 65537), 65536, "size-too-large", 4, StatusCode.BadTcpMessageTooLarge, "65537"),
    ("HEL too large", header(b"HEL", b"F", 0xFFFFFFFF), 8192, "size-too-large", 4, StatusCode.BadTcpMessageTooLarge, "8192"),
]


@pytest.mark.parametrize("name, data, max_size, code, offset, status, words", MALFORMED_HEADERS, ids=[c[0] for c in MALFORMED_HEADERS])
def test_malformed_header_says_what_and_where(name, data, max_size, code, offset, status, words):
    result = parse_header(data, max_size)
    assert isinstance(result, Malformed)
    assert (result.code, result.offset, result.status) == (code, offset, status)
    assert words in result.reason
    assert code in MALFORMED_CODES


def test_size_equal_to_max_is_accepted():
    assert isinstance(parse_header(header(b"MSG", b"F", 65536), 65536), Header)


def test_secure_channel_id():
    assert secure_channel_id(header(b"MSG", b"F", 24) + struct.pack("<I", 5)) == 5
    assert secure_channel_id(header(b"MSG", b"F", 24)) is None
    assert secure_channel_id(encode(Hello())) is None


# ---------------------------------------------------------------------------- bodies against asyncua


def ua_hello(h: Hello) -> ua.Hello:
    return ua.Hello(h.protocol_version, h.receive_buffer_size, h.send_buffer_size, h.max_message_size,
                    h.max_chunk_count, h.endpoint_url)


@settings(max_examples=150, deadline=None)
@given(UINT32, UINT32, UINT32, UINT32, UINT32, TEXT)
def test_hello_is_byte_for_byte_asyncuas(version, rbuf, sbuf, max_msg, chunks, url):
    ours = Hello(version, rbuf, sbuf, max_msg, chunks, url)
    wire = encode(ours)
    assert wire == uatcp_to_binary(ua.MessageType.Hello, ua_hello(ours))
    assert decode(wire) == ours
    theirs = struct_from_binary(ua.Hello, Buffer(wire[8:]))
    assert (theirs.ReceiveBufferSize, theirs.EndpointUrl) == (rbuf, url)


@settings(max_examples=100, deadline=None)
@given(UINT32, UINT32, UINT32, UINT32, UINT32)
def test_acknowledge_is_byte_for_byte_asyncuas(version, rbuf, sbuf, max_msg, chunks):
    ours = Acknowledge(version, rbuf, sbuf, max_msg, chunks)
    wire = encode(ours)
    assert wire == uatcp_to_binary(ua.MessageType.Acknowledge, ua.Acknowledge(version, rbuf, sbuf, max_msg, chunks))
    assert decode(wire) == ours
    assert struct_from_binary(ua.Acknowledge, Buffer(wire[8:])) == ua.Acknowledge(version, rbuf, sbuf, max_msg, chunks)


@settings(max_examples=100, deadline=None)
@given(UINT32, TEXT)
def test_error_is_byte_for_byte_asyncuas(code, reason):
    ours = ErrorMessage(code, reason)
    wire = encode(ours)
    assert wire == uatcp_to_binary(ua.MessageType.Error, ua.ErrorMessage(ua.StatusCode(code), reason))
    assert decode(wire) == ours
    theirs = struct_from_binary(ua.ErrorMessage, Buffer(wire[8:]))
    assert (theirs.Error.value, theirs.Reason) == (code, reason)


def test_reverse_hello_round_trip():
    rhe = ReverseHello("urn:server", "opc.tcp://host:4840")
    wire = encode(rhe)
    assert wire[:4] == b"RHEF" and struct.unpack_from("<I", wire, 4)[0] == len(wire)
    assert decode(wire) == rhe
    assert decode(encode(ReverseHello(None, ""))) == ReverseHello(None, "")


def test_decode_body_and_secure_types():
    assert decode_body("ACK", encode(Acknowledge())[8:]) == Acknowledge()
    assert decode_body(b"MSG", b"anything") is None
    assert decode(header(b"MSG", b"F", 24) + bytes(16)) is None


def test_encode_message_sends_what_it_is_told():
    assert encode_message("XYZ", b"abc", "Q", size=3) == b"XYZQ\x03\x00\x00\x00abc"
    assert encode(Hello(), chunk_type="C")[3:4] == b"C"
    assert struct.unpack_from("<I", encode(Hello(), size=9999), 4)[0] == 9999
    raw_url = encode(Hello(endpoint_url=b"\xff\xfe"))
    assert raw_url.endswith(b"\x02\x00\x00\x00\xff\xfe")


# (name, message, code, offset, words)
MALFORMED_BODIES = [
    ("ACK short", encode_message("ACK", bytes(16), size=28), "size-mismatch", 24, "says 28"),
    ("HEL long", encode(Hello(endpoint_url="x"), size=33) + b"zz", "size-mismatch", 33, "has 35"),
    ("HEL no url length", encode_message("HEL", bytes(20), size=32)[:28], "size-mismatch", 28, "says 32"),
    ("ACK trailing", encode_message("ACK", bytes(24)), "trailing-bytes", 28, "4 bytes left"),
    ("HEL trailing", encode_message("HEL", bytes(20) + struct.pack("<i", 1) + b"ab"), "trailing-bytes", 33, "1 bytes"),
    ("HEL url overrun", encode_message("HEL", bytes(20) + struct.pack("<i", 10) + b"abc"), "short-body", 35, "EndpointUrl"),
    ("ERR reason length", encode_message("ERR", bytes(4) + struct.pack("<i", -2)), "bad-string-length", 12, "-2"),
    ("ERR bad utf8", encode_message("ERR", bytes(4) + struct.pack("<i", 2) + b"a\xff"), "bad-utf8", 17, "UTF-8"),
    ("HEL url bad utf8", encode(Hello(endpoint_url=b"\xc3")), "bad-utf8", 32, "EndpointUrl"),
    ("RHE short", encode_message("RHE", struct.pack("<i", -1) + struct.pack("<i", 4) + b"ab"), "short-body", 18, "2 more"),
    ("ERR short code", encode_message("ERR", b"\x00\x00", size=10), "size-too-small", 4, "16"),
]


@pytest.mark.parametrize("name, data, code, offset, words", MALFORMED_BODIES, ids=[c[0] for c in MALFORMED_BODIES])
def test_malformed_body_says_what_and_where(name, data, code, offset, words):
    result = decode(data)
    assert isinstance(result, Malformed), result
    assert (result.code, result.offset) == (code, offset), result
    assert words in result.reason


def test_every_malformed_code_is_produced():
    produced = {c[3] for c in MALFORMED_HEADERS} | {c[2] for c in MALFORMED_BODIES}
    assert produced == set(MALFORMED_CODES)


def test_the_reader_points_at_a_short_fixed_field():
    result = decode_body("ACK", bytes(10))
    assert (result.code, result.offset) == ("short-body", 10)
    assert "10 more" in result.reason


# ---------------------------------------------------------------------------- never raise


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=48), st.one_of(st.none(), st.integers(0, 2**33)))
def test_parse_header_never_raises(data, max_size):
    result = parse_header(data, max_size)
    assert result is None or isinstance(result, (Header, Malformed))
    assert (result is None) == (len(data) < 8)


PREFIXES = st.sampled_from([b"HELF", b"ACKF", b"ERRF", b"RHEF", b"MSGF", b"OPNC", b"CLOA", b"XYZF", b""])


@settings(max_examples=300, deadline=None)
@given(PREFIXES, st.binary(max_size=64))
def test_decode_and_describe_never_raise(prefix, rest):
    for data in (prefix + rest, prefix + struct.pack("<I", len(rest) + 8) + rest):
        assert decode(data) is None or isinstance(decode(data), (Malformed, Hello, Acknowledge, ErrorMessage, ReverseHello))
        line = describe(data)
        assert isinstance(line, str) and line and "\n" not in line


# ---------------------------------------------------------------------------- summaries


def test_describe_examples():
    hello = encode(Hello(0, 65536, 65536, 0, 0, "opc.tcp://127.0.0.1:4840/x"))
    assert describe(hello) == "HEL v0 rbuf=65536 sbuf=65536 max_msg=0 chunks=0 url=opc.tcp://127.0.0.1:4840/x"
    assert describe(encode(Acknowledge(0, 8192, 8192, 0, 0))) == "ACK v0 rbuf=8192 sbuf=8192 max_msg=0 chunks=0"
    err = encode(ErrorMessage(StatusCode.BadTcpMessageTypeInvalid, "bad type"))
    assert describe(err) == "ERR BadTcpMessageTypeInvalid 'bad type'"
    assert describe(encode(ErrorMessage(0x80AB0000, None))) == "ERR 0x80AB0000 null"
    msg = header(b"MSG", b"F", 120) + struct.pack("<I", 5) + bytes(108)
    assert describe(msg) == "MSG F 120 bytes channel=5"
    assert describe(msg + b"xy") == "MSG F 120 bytes channel=5 (+2 bytes after the message)"
    assert describe(msg[:50]) == "MSG F incomplete: 50 of 120 bytes"
    assert describe(b"XYZF1234") == "malformed: unknown message type b'XYZ' (at byte 0)"
    assert describe(b"") == "no bytes"
    assert describe(b"HEL") == "incomplete header: 3 bytes"
    assert describe(encode(Hello(endpoint_url="a\nb"))).endswith("url=a\\nb")
    assert describe(encode(Hello(endpoint_url=None))).endswith("url=null")
    assert describe(encode(Hello(endpoint_url="u" * 300))).endswith("... (300 chars)")
    assert describe(encode_message("ACK", bytes(24))).startswith("ACK malformed: 4 bytes left over")


# ---------------------------------------------------------------------------- the rules of the package


PACKAGE = Path(uacp.__file__).parent


def test_codec_imports_only_the_standard_library():
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{path.name} has no docstring"
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] in sys.stdlib_module_names | {"__future__"}, f"{path.name} imports {name}"
