"""Modbus TCP and RTU ADUs: encode_tcp's explicit length, and the streaming TcpFramer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.codec.modbus import (
    MBAP,
    Malformed,
    RtuAdu,
    TcpAdu,
    TcpFramer,
    decode_rtu,
    decode_tcp,
    encode_rtu,
    encode_tcp,
    is_modbus,
)

H = bytes.fromhex


def test_encode_tcp_with_a_wrong_length() -> None:
    frame = encode_tcp(7, 1, H("03 00 00 00 01"), length=9)
    assert frame == H("00 07 00 00 00 09 01 03 00 00 00 01")
    result = decode_tcp(frame)
    assert isinstance(result, Malformed) and result.code == "short-frame"


def test_mbap_alias_and_is_modbus() -> None:
    assert MBAP is TcpAdu
    assert is_modbus(TcpAdu(1, 1, b"\x07"))
    assert not is_modbus(TcpAdu(1, 1, b"\x07", protocol_id=1))


def test_encode_rtu_with_a_chosen_crc() -> None:
    frame = encode_rtu(2, b"\x07", crc=0x0000)
    assert frame == H("02 07 00 00")
    result = decode_rtu(frame)
    assert isinstance(result, Malformed) and result.code == "bad-crc"
    assert decode_rtu(encode_rtu(0, b"\x07")) == RtuAdu(0, b"\x07")  # broadcast address


def test_framer_waits_for_more_data() -> None:
    framer = TcpFramer()
    wire = encode_tcp(1, 1, H("03 00 00 00 01"))
    framer.feed(wire[:5])
    assert framer.next_frame() is None
    framer.feed(wire[5:9])
    assert framer.next_frame() is None
    assert framer.pending() == wire[:9]
    framer.feed(wire[9:] + wire[:3])
    assert framer.next_frame() == TcpAdu(1, 1, H("03 00 00 00 01"))
    assert framer.next_frame() is None
    assert framer.pending() == wire[:3]


def test_framer_bad_length_breaks_the_stream() -> None:
    framer = TcpFramer()
    good = encode_tcp(1, 1, b"\x07")
    framer.feed(good + H("00 02 00 00 01 00 01 07") + good)
    assert framer.next_frame() == TcpAdu(1, 1, b"\x07")
    bad = framer.next_frame()
    assert isinstance(bad, Malformed)
    assert (bad.code, bad.offset, bad.data) == ("bad-length-field", 4, H("00 02 00 00 01 00"))
    assert framer.broken
    assert framer.next_frame() is None
    framer.feed(good)
    assert framer.next_frame() is None
    assert framer.pending() == b""


def test_framer_reports_bad_length_before_the_unit_id_arrives() -> None:
    framer = TcpFramer()
    framer.feed(H("00 01 00 00 00 00"))
    bad = framer.next_frame()
    assert isinstance(bad, Malformed) and bad.code == "bad-length-field"


def test_framer_keeps_a_non_zero_protocol_id() -> None:
    framer = TcpFramer()
    framer.feed(encode_tcp(1, 1, b"\x07", protocol_id=0x1234))
    assert list(framer.frames()) == [TcpAdu(1, 1, b"\x07", protocol_id=0x1234)]


def test_framer_is_linear_on_a_large_burst() -> None:
    # 20 000 frames in one feed: quadratic copying would take minutes, linear takes < 1 s.
    wire = encode_tcp(1, 1, H("03 00 00 00 01"))
    framer = TcpFramer()
    framer.feed(wire * 20_000)
    assert sum(1 for _ in framer.frames()) == 20_000
    assert framer.pending() == b""


frames = st.lists(
    st.builds(
        TcpAdu,
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFF),
        st.binary(min_size=1, max_size=253),
        st.integers(0, 0xFFFF),
    ),
    max_size=12,
)


def _feed_all(chunks: list[bytes]) -> list[TcpAdu | Malformed]:
    framer = TcpFramer()
    out: list[TcpAdu | Malformed] = []
    for chunk in chunks:
        framer.feed(chunk)
        out.extend(framer.frames())
    return out


@settings(max_examples=80, deadline=None)
@given(frames, st.lists(st.integers(0, 4000), max_size=20), st.booleans())
def test_framer_output_does_not_depend_on_chunking(
    adus: list[TcpAdu], cuts: list[int], corrupt: bool
) -> None:
    stream = b"".join(a.encode() for a in adus)
    expected: list[TcpAdu | Malformed] = list(adus)
    if corrupt:  # a bad length field after the good frames ends the stream
        stream += H("00 09 00 00 00 FF 01") + b"\x03" * 300
        expected.append(Malformed("bad-length-field", "", 4, H("00 09 00 00 00 FF")))
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    got = _feed_all(chunks)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        if isinstance(e, Malformed):
            assert isinstance(g, Malformed)
            assert (g.code, g.offset, g.data) == (e.code, e.offset, e.data)
        else:
            assert g == e
    assert got == _feed_all([stream])  # one chunk gives the same answer
    assert _feed_all([bytes([b]) for b in stream]) == got  # and so does one byte at a time


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=10))
def test_framer_never_raises(chunks: list[bytes]) -> None:
    for item in _feed_all(chunks):
        if isinstance(item, TcpAdu):
            assert 1 <= len(item.pdu) <= 253
