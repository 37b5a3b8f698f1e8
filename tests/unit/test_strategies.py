"""The fuzzing strategies of harness.strategies: every frame is what its kind says it is.

Modbus frames are checked with the codec (decode_tcp, decode_request, request_rule_violation),
UACP frames with harness.codec.opcua.uacp and, for the OpenSecureChannel body, asyncua's
decoder.  Shrinking is checked with `hypothesis.find`: a failing input must come out small.
The last tests send the frames that must be answered to the bundled Modbus simulator.
"""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis.errors import NoSuchExample
from hypothesis import strategies as st

from harness.codec.modbus import (
    ExceptionCode,
    FunctionCode,
    MaskWriteRegisterRequest,
    Malformed,
    ReadCoilsRequest,
    ReadDiscreteInputsRequest,
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
    ReadWriteMultipleRegistersRequest,
    TcpAdu,
    UnknownRequest,
    WriteMultipleCoilsRequest,
    WriteMultipleRegistersRequest,
    WriteSingleCoilRequest,
    WriteSingleRegisterRequest,
    decode_request,
    decode_tcp,
    request_rule_violation,
)
from harness.codec.modbus.constants import MAX_PDU_SIZE, MAX_TCP_ADU_SIZE, QUANTITY_LIMITS
from harness.codec.opcua import uacp
from harness.profile import example_profile_path, load_profile
from harness.strategies import (
    MODBUS_KINDS,
    UACP_KINDS,
    FuzzFrame,
    boundary_adus,
    hello_messages,
    malformed_adus,
    message_chunks,
    modbus_adus,
    open_secure_channel_chunks,
    uacp_messages,
    valid_adus,
)
from harness.strategies.modbus import MALFORMED_EXPECT_REPLY, UNDEFINED_FUNCTION_CODES
from harness.strategies.uacp import KNOWN_POLICY_URIS, POLICY_NONE_URI, UACP_EXPECT_REPLY

FUZZ = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
# Loops that also check every kind turns up: derandomized, so they cannot flake.
COVERAGE = settings(deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def never_generated(strategy, kinds, seen: set) -> set:
    """The kinds neither seen in a loop's examples nor found by searching for each one: how
    many examples a loop draws before a rare kind turns up varies between Hypothesis runs
    even when derandomized (a kind one loop missed was seen to turn up in another), so a
    missing kind is looked for on its own before the test says it is never generated."""
    missing = set()
    for kind in set(kinds) - seen:
        try:
            find(strategy, lambda frame, kind=kind: frame.kind == kind, settings=settings(COVERAGE, max_examples=2000))
        except NoSuchExample:
            missing.add(kind)
    return missing
TABLES = {
    "coils": (100, 300),
    "discrete_inputs": (0, 2000),
    "holding_registers": (1000, 200),
    "input_registers": (40000, 10),
}
TABLE_OF = {
    ReadCoilsRequest: "coils",
    ReadDiscreteInputsRequest: "discrete_inputs",
    ReadHoldingRegistersRequest: "holding_registers",
    ReadInputRegistersRequest: "input_registers",
    WriteSingleCoilRequest: "coils",
    WriteSingleRegisterRequest: "holding_registers",
    WriteMultipleCoilsRequest: "coils",
    WriteMultipleRegistersRequest: "holding_registers",
    MaskWriteRegisterRequest: "holding_registers",
    ReadWriteMultipleRegistersRequest: "holding_registers",
}


def touched(request) -> list[tuple[str, int, int]]:
    """(table, first address, quantity) for each address range a request reads or writes."""
    table = TABLE_OF[type(request)]
    if isinstance(request, ReadWriteMultipleRegistersRequest):
        return [
            (table, request.read_address, request.read_quantity),
            (table, request.write_address, request.write_quantity),
        ]
    quantity = getattr(request, "quantity", 1)
    return [(table, request.address, quantity)]


def decoded(frame: FuzzFrame):
    """The ADU and the request of a well-framed Modbus frame (the test fails otherwise)."""
    adu = decode_tcp(frame.data)
    assert isinstance(adu, TcpAdu), f"{frame.describe()} does not frame: {adu}"
    return adu, decode_request(adu.pdu)


# ---------------------------------------------------------------------------- FuzzFrame


def test_describe_shows_kind_and_at_most_64_bytes():
    assert FuzzFrame("valid:FC03", bytes.fromhex("0001000000060103000a0002"), True).describe() == (
        "valid:FC03: 00 01 00 00 00 06 01 03 00 0a 00 02"
    )
    long = FuzzFrame("malformed:oversized", bytes(300), False).describe()
    assert long.startswith("malformed:oversized: 00 00") and long.endswith("... (300 bytes)")
    assert long.count("00") == 64 + 1  # 64 bytes shown, plus the "300"
    assert FuzzFrame("malformed:random-bytes", b"", False).describe() == "malformed:random-bytes: (no bytes)"


# ---------------------------------------------------------------------------- Modbus: valid


@FUZZ
@given(valid_adus(unit=7, tables=TABLES))
def test_valid_frames_decode_cleanly_inside_the_tables(frame):
    adu, request = decoded(frame)
    assert frame.kind in MODBUS_KINDS and frame.expect_reply
    assert (adu.protocol_id, adu.unit_id) == (0, 7)
    assert not isinstance(request, (Malformed, UnknownRequest)), request
    assert frame.kind == f"valid:FC{request.function_code:02d}"
    assert request_rule_violation(request) is None, request
    for table, address, quantity in touched(request):
        start, count = TABLES[table]
        assert start <= address and address + quantity <= start + count, (frame.describe(), table)
    if isinstance(request, WriteSingleCoilRequest):
        assert request.value in (0x0000, 0xFF00)


@FUZZ
@given(valid_adus())
def test_valid_frames_without_tables_stay_in_the_address_space(frame):
    _, request = decoded(frame)
    assert request_rule_violation(request) is None
    for _, address, quantity in touched(request):
        assert address + quantity <= 0x10000


@FUZZ
@given(valid_adus(tables={"holding_registers": (0, 10)}, function_codes=[3, 16, 1, 23]))
def test_function_codes_and_tables_restrict_the_valid_frames(frame):
    # FC01 is asked for but there is no coil table: no valid FC01 request exists.
    assert frame.kind in {"valid:FC03", "valid:FC16", "valid:FC23"}


def test_profile_tables_are_accepted_as_they_are():
    profile = load_profile(example_profile_path())
    frame = find(valid_adus(tables=profile.modbus.tables), lambda f: f.kind == "valid:FC04")
    _, request = decoded(frame)
    span = profile.modbus.tables[next(t for t in profile.modbus.tables if t.value == "input_registers")]
    assert span.contains(request.address, request.quantity)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: valid_adus(function_codes=[7]), "function_codes"),
        (lambda: valid_adus(function_codes=[]), "function_codes"),
        (lambda: valid_adus(tables={"registers": (0, 10)}), "unknown table"),
        (lambda: valid_adus(tables={"coils": (65000, 1000)}), "does not fit"),
        (lambda: valid_adus(tables={"coils": (0, 10)}, function_codes=[3]), "no valid request"),
        (lambda: malformed_adus(unit=256), "unit"),
        (lambda: message_chunks(send_buffer_size=100), "send_buffer_size"),
    ],
)
def test_bad_arguments_say_what_to_give(call, words):
    with pytest.raises(ValueError, match=words):
        call()


# ---------------------------------------------------------------------------- Modbus: boundary


def expected_rule(kind: str) -> ExceptionCode | None:
    """The 03 check the boundary kind calls for: quantity 0 or max + 1, a bad coil value."""
    fc = int(kind[len("boundary:FC") : len("boundary:FC") + 2])
    what = kind.split("-", 1)[1]
    if what == "value-other":
        return ExceptionCode.ILLEGAL_DATA_VALUE
    for field, prefix in (("quantity", "qty-"), ("read_quantity", "read-qty-"), ("write_quantity", "write-qty-")):
        if what.startswith(prefix):
            limit = QUANTITY_LIMITS[(FunctionCode(fc), field)]
            value = int(what[len(prefix) :])
            return None if limit.low <= value <= limit.high else ExceptionCode.ILLEGAL_DATA_VALUE
    return None


@FUZZ
@given(boundary_adus(unit=3, tables=TABLES))
def test_boundary_frames_are_well_formed_with_one_value_at_its_limit(frame):
    adu, request = decoded(frame)
    assert frame.kind in MODBUS_KINDS and frame.kind.startswith("boundary:") and frame.expect_reply
    assert (adu.protocol_id, adu.unit_id) == (0, 3) and len(adu.pdu) <= MAX_PDU_SIZE
    assert not isinstance(request, (Malformed, UnknownRequest)), request
    assert request_rule_violation(request) == expected_rule(frame.kind), frame.describe()
    table, address, quantity = touched(request)[0]
    start, count = TABLES[table]
    what = frame.kind.split("-", 1)[1]
    expected_address = {
        "addr-0": 0,
        "addr-65535": 0xFFFF,
        "table-last": start + count - 1,
        "table-past-end": start + count,
    }
    if what in expected_address:
        assert address == expected_address[what]
    if what == "addr-wrap":
        assert quantity >= 2 and address + quantity > 0x10000


def test_boundary_kinds_cover_every_limit():
    for expected in ("boundary:FC03-qty-126", "boundary:FC01-qty-2001", "boundary:FC15-qty-1969",
                     "boundary:FC16-qty-124", "boundary:FC23-write-qty-122", "boundary:FC05-value-other",
                     "boundary:FC03-table-past-end", "boundary:FC16-addr-wrap", "boundary:FC22-table-last"):
        assert expected in MODBUS_KINDS
    frame = find(boundary_adus(tables=TABLES, function_codes=[16]), lambda f: f.kind == "boundary:FC16-qty-124",
                 settings=settings(max_examples=2000, database=None))
    _, request = decoded(frame)
    # 124 registers do not fit a PDU: the quantity says 124, the data holds the 123 that fit
    assert (request.quantity, request.byte_count, len(frame.data)) == (124, 246, 7 + 6 + 246)


def test_boundary_without_tables_leaves_out_the_table_edges():
    kinds = set()

    @settings(max_examples=150, deadline=None, database=None)
    @given(boundary_adus(function_codes=[3]))
    def collect(frame):
        kinds.add(frame.kind)

    collect()
    assert kinds <= {"boundary:FC03-qty-0", "boundary:FC03-qty-1", "boundary:FC03-qty-125", "boundary:FC03-qty-126",
                     "boundary:FC03-addr-0", "boundary:FC03-addr-65535", "boundary:FC03-addr-wrap"}


# ---------------------------------------------------------------------------- Modbus: malformed


def _adu(data: bytes) -> TcpAdu | Malformed:
    return decode_tcp(data)


def _pdu_problem(data: bytes, code: str) -> bool:
    adu = _adu(data)
    if not isinstance(adu, TcpAdu) or adu.protocol_id != 0:
        return False
    request = decode_request(adu.pdu)
    return isinstance(request, Malformed) and request.code == code


def _framing_problem(data: bytes, code: str) -> bool:
    adu = _adu(data)
    return isinstance(adu, Malformed) and adu.code == code


def _rule_problem(data: bytes) -> bool:
    adu = _adu(data)
    request = decode_request(adu.pdu) if isinstance(adu, TcpAdu) else adu
    return not isinstance(request, Malformed) and request_rule_violation(request) == ExceptionCode.ILLEGAL_DATA_VALUE


def _protocol_id(data: bytes) -> bool:
    adu = _adu(data)
    return isinstance(adu, TcpAdu) and adu.protocol_id != 0 and not isinstance(decode_request(adu.pdu), Malformed)


def _unknown_function(data: bytes) -> bool:
    adu = _adu(data)
    return (
        isinstance(adu, TcpAdu)
        and adu.protocol_id == 0
        and adu.pdu[0] in UNDEFINED_FUNCTION_CODES
        and adu.pdu[0] not in {int(fc) for fc in FunctionCode}
        and isinstance(decode_request(adu.pdu), UnknownRequest)
    )


def _trailing_garbage(data: bytes) -> bool:
    adu = _adu(data)
    return isinstance(adu, TcpAdu) and isinstance(decode_request(adu.pdu), Malformed)


# kind -> what the codec says about such a frame
RECOGNISED = {
    "malformed:protocol-id": _protocol_id,
    "malformed:unknown-function": _unknown_function,
    "malformed:trailing-garbage": _trailing_garbage,
    "malformed:byte-count-data": lambda d: _pdu_problem(d, "byte-count-mismatch"),
    "malformed:byte-count-quantity": _rule_problem,
    "malformed:odd-register-bytes": lambda d: _pdu_problem(d, "odd-register-bytes"),
    "malformed:mbap-length-short": lambda d: _framing_problem(d, "trailing-bytes"),
    "malformed:mbap-length-long": lambda d: _framing_problem(d, "short-frame"),
    "malformed:mbap-length-zero": lambda d: _framing_problem(d, "bad-length-field") and d[4:6] == b"\x00\x00",
    "malformed:mbap-length-one": lambda d: _framing_problem(d, "bad-length-field") and d[4:6] == b"\x00\x01",
    "malformed:truncated-header": lambda d: len(d) < 7 and _framing_problem(d, "short-frame"),
    "malformed:header-only": lambda d: len(d) == 7 and _framing_problem(d, "short-frame"),
    "malformed:truncated-pdu": lambda d: len(d) > 7 and _framing_problem(d, "short-frame"),
    "malformed:oversized": lambda d: len(d) > MAX_TCP_ADU_SIZE and _framing_problem(d, "bad-length-field"),
    "malformed:random-bytes": lambda d: 1 <= len(d) <= 300,
}


def test_every_malformed_kind_has_a_check():
    assert set(RECOGNISED) == set(MALFORMED_EXPECT_REPLY)


def test_malformed_frames_are_the_malformation_they_claim():
    seen = set()

    @settings(COVERAGE, max_examples=300)
    @given(malformed_adus(unit=9))
    def check(frame):
        seen.add(frame.kind)
        assert frame.kind in MODBUS_KINDS
        assert frame.expect_reply is MALFORMED_EXPECT_REPLY[frame.kind]
        assert RECOGNISED[frame.kind](frame.data), frame.describe()
        if frame.expect_reply:  # a well-framed ADU for our unit: the server has to answer it
            adu = decode_tcp(frame.data)
            assert isinstance(adu, TcpAdu) and adu.protocol_id == 0 and adu.unit_id == 9

    check()
    missing = never_generated(malformed_adus(unit=9), MALFORMED_EXPECT_REPLY, seen)
    assert not missing, "never generated: " + ", ".join(sorted(missing))


@pytest.mark.parametrize(
    "kind, most",
    [
        ("malformed:protocol-id", 12),  # FC01 read, protocol id 1
        ("malformed:byte-count-quantity", 14),
        ("malformed:truncated-pdu", 8),
        ("malformed:oversized", MAX_TCP_ADU_SIZE + 1),  # cannot be smaller than 261 bytes
    ],
)
def test_malformed_kinds_shrink_to_their_smallest_frame(kind, most):
    frame = find(malformed_adus(), lambda f: f.kind == kind, settings=settings(max_examples=5000, database=None))
    assert RECOGNISED[kind](frame.data)
    assert len(frame.data) <= most, frame.describe()


@FUZZ
@given(modbus_adus(tables=TABLES))
def test_every_modbus_frame_has_a_documented_kind_and_the_right_reply_flag(frame):
    assert frame.kind in MODBUS_KINDS
    if frame.kind.startswith("malformed:"):
        assert frame.expect_reply is MALFORMED_EXPECT_REPLY[frame.kind]
    else:
        assert frame.expect_reply


def test_malformed_frames_make_up_a_large_share():
    kinds = []

    @settings(COVERAGE, max_examples=300)
    @given(modbus_adus())
    def collect(frame):
        kinds.append(frame.kind.split(":")[0])

    collect()
    assert kinds.count("malformed") / len(kinds) > 0.4


def test_a_failing_malformed_input_shrinks_to_a_readable_frame():
    frame = find(modbus_adus(), lambda f: f.kind.startswith("malformed:") and len(f.data) > 12,
                 settings=settings(database=None))
    assert 12 < len(frame.data) <= 30, frame.describe()


# ---------------------------------------------------------------------------- UACP


def _header(data: bytes) -> uacp.Header | uacp.Malformed | None:
    return uacp.parse_header(data)


def _size_disagrees(data: bytes) -> bool:
    header = _header(data)
    return isinstance(header, uacp.Malformed) or (header is not None and header.size != len(data))


def _size_short(data: bytes) -> bool:
    """MessageSize below the bytes sent (or too small for the type, which parse_header refuses)."""
    header = _header(data)
    return isinstance(header, uacp.Malformed) or (header is not None and header.size < len(data))


def _hello_decodes(data: bytes) -> uacp.Hello | None:
    body = uacp.decode(data)
    return body if isinstance(body, uacp.Hello) else None


def _hello_malformed(data: bytes, code: str) -> bool:
    body = uacp.decode(data)
    return isinstance(body, uacp.Malformed) and body.code == code


def _decode_opn(data: bytes):
    """asyncua's reading of an OPN chunk: (policy URI, OpenSecureChannelRequest); raises if it cannot."""
    from asyncua.common.utils import Buffer
    from asyncua.ua.ua_binary import header_from_binary, struct_from_binary

    from harness.opcua import ua

    buf = Buffer(data)
    header = header_from_binary(buf)
    assert header.MessageType == b"OPN"
    security = struct_from_binary(ua.AsymmetricAlgorithmHeader, buf)
    struct_from_binary(ua.SequenceHeader, buf)
    request = struct_from_binary(ua.OpenSecureChannelRequest, buf)
    assert len(buf) == 0, "bytes left after the request"
    return security.SecurityPolicyURI, request


def _opn_undecodable(data: bytes) -> bool:
    try:
        _decode_opn(data)
    except Exception:
        return True
    return False


def _chunks(data: bytes) -> list[uacp.Header]:
    """Consecutive well-sized chunks (the test fails on anything else)."""
    headers, pos = [], 0
    while pos < len(data):
        header = uacp.parse_header(data[pos:])
        assert isinstance(header, uacp.Header), header
        headers.append(header)
        pos += header.size
    assert pos == len(data)
    return headers


def _secure(data: bytes, mtype: bytes, chunk: str) -> bool:
    header = _header(data)
    return (
        isinstance(header, uacp.Header)
        and (header.message_type, header.chunk_type, header.size) == (mtype, chunk, len(data))
    )


UACP_RECOGNISED = {
    "uacp:hello": lambda d: (h := _hello_decodes(d)) is not None
    and h.protocol_version == 0
    and min(h.receive_buffer_size, h.send_buffer_size) >= uacp.MIN_BUFFER_SIZE
    and len(h.endpoint_url) < uacp.MAX_URL_LENGTH,
    "uacp:hello-url-null": lambda d: (h := _hello_decodes(d)) is not None and h.endpoint_url is None,
    "uacp:hello-buffer-max": lambda d: (h := _hello_decodes(d)) is not None and h.receive_buffer_size == 0xFFFFFFFF,
    "uacp:hello-protocol-version": lambda d: (h := _hello_decodes(d)) is not None and h.protocol_version != 0,
    "uacp:hello-buffer-small": lambda d: (h := _hello_decodes(d)) is not None
    and min(h.receive_buffer_size, h.send_buffer_size) < uacp.MIN_BUFFER_SIZE,
    "uacp:hello-url-too-long": lambda d: (h := _hello_decodes(d)) is not None
    and len(h.endpoint_url.encode()) >= uacp.MAX_URL_LENGTH,
    "uacp:hello-url-length-negative": lambda d: _hello_malformed(d, "bad-string-length"),
    "uacp:hello-url-length-beyond": lambda d: _hello_malformed(d, "short-body"),
    "uacp:hello-trailing": lambda d: _hello_malformed(d, "trailing-bytes"),
    "uacp:hello-chunk-type": lambda d: _hello_malformed(d, "bad-chunk-type"),
    "uacp:hello-size-short": _size_short,
    "uacp:hello-size-long": lambda d: isinstance(h := _header(d), uacp.Header) and h.size > len(d),
    "uacp:hello-truncated": lambda d: isinstance(h := _header(d), uacp.Header) and h.size > len(d),
    "uacp:unknown-type": lambda d: isinstance(h := _header(d), uacp.Malformed) and h.code == "unknown-message-type",
    "uacp:truncated-header": lambda d: 0 < len(d) < uacp.HEADER_SIZE and _header(d) is None,
    "uacp:opn": lambda d: _secure(d, b"OPN", "F") and _decode_opn(d)[0] == POLICY_NONE_URI,
    "uacp:opn-policy-unknown": lambda d: _secure(d, b"OPN", "F") and _decode_opn(d)[0] not in KNOWN_POLICY_URIS,
    "uacp:opn-policy-length": lambda d: _secure(d, b"OPN", "F")
    and struct.unpack_from("<i", d, 12)[0] != len(POLICY_NONE_URI),
    "uacp:opn-size-short": _size_short,
    "uacp:opn-size-long": lambda d: isinstance(h := _header(d), uacp.Header) and h.size > len(d),
    "uacp:opn-body-truncated": lambda d: _size_disagrees(d) or (_secure(d, b"OPN", "F") and _opn_undecodable(d)),
    "uacp:opn-chunk-intermediate": lambda d: _secure(d, b"OPN", "C"),
    "uacp:opn-chunk-abort": lambda d: _secure(d, b"OPN", "A"),
    "uacp:opn-chunk-invalid": lambda d: isinstance(h := _header(d), uacp.Malformed) and h.code == "bad-chunk-type",
    "uacp:msg-bogus-channel": lambda d: _secure(d, b"MSG", "F"),
    "uacp:clo-bogus-channel": lambda d: _secure(d, b"CLO", "F"),
    "uacp:msg-intermediate": lambda d: all(h.message_type == b"MSG" and h.chunk_type == "C" for h in _chunks(d)),
    "uacp:msg-abort": lambda d: _secure(d, b"MSG", "A"),
    "uacp:msg-size-beyond-buffer": lambda d: isinstance(h := uacp.parse_header(d, max_size=65536), uacp.Malformed)
    and h.code == "size-too-large",
}


def test_every_uacp_kind_has_a_check():
    assert set(UACP_RECOGNISED) == set(UACP_KINDS) == set(UACP_EXPECT_REPLY)


def test_uacp_frames_are_what_their_kind_says():
    seen = set()

    @settings(COVERAGE, max_examples=400)
    @given(uacp_messages())
    def check(frame):
        seen.add(frame.kind)
        assert frame.kind in UACP_KINDS
        assert frame.expect_reply is UACP_EXPECT_REPLY[frame.kind]
        assert UACP_RECOGNISED[frame.kind](frame.data), frame.describe()

    check()
    missing = never_generated(uacp_messages(), UACP_KINDS, seen)
    assert not missing, "never generated: " + ", ".join(sorted(missing))


@FUZZ
@given(hello_messages("opc.tcp://device.example:4840/ua"))
def test_valid_hello_parses_and_mutations_do_not(frame):
    body = uacp.decode(frame.data)
    if frame.kind == "uacp:hello":
        assert isinstance(body, uacp.Hello) and body.endpoint_url == "opc.tcp://device.example:4840/ua"
    elif frame.kind in ("uacp:hello-url-null", "uacp:hello-buffer-max", "uacp:hello-protocol-version",
                        "uacp:hello-buffer-small", "uacp:hello-url-too-long"):
        assert isinstance(body, uacp.Hello)  # well-formed, but a value breaks a rule of §7.1.2.3
    else:
        assert body is None or isinstance(body, uacp.Malformed) or _size_disagrees(frame.data), frame.describe()


@FUZZ
@given(open_secure_channel_chunks())
def test_the_valid_open_secure_channel_decodes_with_asyncua(frame):
    if frame.kind != "uacp:opn":
        return
    policy, request = _decode_opn(frame.data)
    assert policy == POLICY_NONE_URI
    assert request.Parameters.RequestType == 0 and request.Parameters.SecurityMode == 1  # Issue, None
    assert uacp.secure_channel_id(frame.data) == 0


@FUZZ
@given(message_chunks(channel_id=5, token_id=9, send_buffer_size=8192))
def test_message_chunks_aim_at_the_given_channel_and_buffer(frame):
    channel = uacp.secure_channel_id(frame.data)
    if frame.kind.endswith("bogus-channel"):
        assert channel != 5
    else:
        assert channel == 5 and struct.unpack_from("<I", frame.data, 12)[0] == 9
    if frame.kind == "uacp:msg-size-beyond-buffer":
        assert struct.unpack_from("<I", frame.data, 4)[0] > 8192


@pytest.mark.parametrize(
    "strategy, kind, most",
    [
        (hello_messages, "uacp:hello", 56),  # the default EndpointUrl is 24 bytes
        (hello_messages, "uacp:hello-url-too-long", uacp.MAX_URL_LENGTH + 32),  # 4096 URL bytes + the Hello
        (open_secure_channel_chunks, "uacp:opn", 132),
        (message_chunks, "uacp:msg-intermediate", 24),  # one empty 'C' chunk
    ],
)
def test_uacp_kinds_shrink_to_their_smallest_frame(strategy, kind, most):
    frame = find(strategy(), lambda f: f.kind == kind, settings=settings(max_examples=5000, database=None))
    assert UACP_RECOGNISED[kind](frame.data)
    assert len(frame.data) <= most, frame.describe()


# ---------------------------------------------------------------------------- against the simulator


class ModbusPeer:
    """One TCP connection to the simulator; every read bounded by a timeout."""

    def __init__(self, port: int):
        self.port = port
        self.sock: socket.socket | None = None

    def exchange(self, data: bytes, timeout: float = 2.0) -> bytes:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.sock.sendall(data)
        head = self._read(6)
        length = struct.unpack_from(">H", head, 4)[0]
        return head + self._read(length)

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError(f"the simulator closed the connection after {out.hex(' ')}")
            out += chunk
        return out

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


@pytest.fixture(scope="module")
def simulator():
    from simulators.modbus.server import start_in_thread

    profile = load_profile(example_profile_path())
    with start_in_thread(profile) as sim:
        peer = ModbusPeer(sim.port)
        try:
            yield profile, peer
        finally:
            peer.close()


def expected_exception(frame: FuzzFrame) -> int | None:
    """The exception code the spec calls for, where it does not depend on the device's tables."""
    if frame.kind == "malformed:unknown-function":
        return ExceptionCode.ILLEGAL_FUNCTION
    if frame.kind in ("malformed:trailing-garbage", "malformed:byte-count-data", "malformed:byte-count-quantity",
                      "malformed:odd-register-bytes"):
        return ExceptionCode.ILLEGAL_DATA_VALUE
    if frame.kind.startswith("boundary:") and expected_rule(frame.kind) is not None:
        return ExceptionCode.ILLEGAL_DATA_VALUE
    return None


def test_frames_that_need_an_answer_get_one_from_the_reference_simulator(simulator):
    profile, peer = simulator
    section = profile.modbus
    answered = st.one_of(
        valid_adus(section.unit_id, tables=section.tables, function_codes=sorted(section.function_codes - {43})),
        boundary_adus(section.unit_id, tables=section.tables),
        malformed_adus(section.unit_id).filter(lambda f: f.expect_reply),
    )

    @settings(max_examples=100, deadline=None, database=None)
    @given(answered)
    def check(frame):
        sent = decode_tcp(frame.data)
        reply = decode_tcp(peer.exchange(frame.data))
        assert isinstance(reply, TcpAdu), f"{frame.describe()} -> {reply}"
        assert (reply.transaction_id, reply.protocol_id, reply.unit_id) == (sent.transaction_id, 0, sent.unit_id)
        code = expected_exception(frame)
        if code is not None:
            exception = bytes(((sent.pdu[0] | 0x80) & 0xFF, code))
            assert reply.pdu == exception, f"{frame.describe()} -> {reply.pdu.hex(' ')}"
        if frame.kind.startswith("valid:"):
            assert reply.pdu[0] == sent.pdu[0], f"{frame.describe()} -> {reply.pdu.hex(' ')}"

    check()
