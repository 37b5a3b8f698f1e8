"""Properties of the Modbus codec: decode(encode(x)) == x for every PDU type, and no decoder
raises on arbitrary bytes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.codec.modbus import (
    DiagnosticsRequest,
    DiagnosticsResponse,
    ExceptionResponse,
    FileRecord,
    FileSubRequest,
    GetCommEventCounterRequest,
    GetCommEventCounterResponse,
    GetCommEventLogRequest,
    GetCommEventLogResponse,
    Malformed,
    MaskWriteRegisterRequest,
    MaskWriteRegisterResponse,
    MeiRequest,
    MeiResponse,
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDeviceIdRequest,
    ReadDeviceIdResponse,
    ReadDiscreteInputsRequest,
    ReadDiscreteInputsResponse,
    ReadExceptionStatusRequest,
    ReadExceptionStatusResponse,
    ReadFifoQueueRequest,
    ReadFifoQueueResponse,
    ReadFileRecordRequest,
    ReadFileRecordResponse,
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
    ReadWriteMultipleRegistersRequest,
    ReadWriteMultipleRegistersResponse,
    ReportServerIdRequest,
    ReportServerIdResponse,
    UnknownRequest,
    UnknownResponse,
    WriteFileRecordRequest,
    WriteFileRecordResponse,
    WriteMultipleCoilsRequest,
    WriteMultipleCoilsResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleCoilRequest,
    WriteSingleCoilResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
    crc16,
    decode_request,
    decode_response,
    decode_rtu,
    decode_tcp,
    describe_pdu,
    describe_rtu,
    describe_tcp,
    encode_pdu,
    encode_rtu,
    encode_tcp,
    pack_bits,
    unpack_bits,
)
from harness.codec.modbus.constants import FunctionCode

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
KNOWN = {int(fc) for fc in FunctionCode}
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def regs(max_size: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(u16, max_size=max_size).map(tuple)


def _coils(address: int, quantity: int, data: bytes) -> WriteMultipleCoilsRequest:
    return WriteMultipleCoilsRequest(address, quantity, len(data), data)


def _registers(
    address: int, quantity: int, values: tuple[int, ...]
) -> WriteMultipleRegistersRequest:
    return WriteMultipleRegistersRequest(address, quantity, 2 * len(values), values)


def _read_write(
    r_addr: int, r_qty: int, w_addr: int, w_qty: int, values: tuple[int, ...]
) -> ReadWriteMultipleRegistersRequest:
    return ReadWriteMultipleRegistersRequest(r_addr, r_qty, w_addr, w_qty, 2 * len(values), values)


file_records = st.lists(st.builds(FileRecord, u8, u16, u16, regs(10)), max_size=5).map(tuple)
other_mei = u8.filter(lambda t: t != 0x0E)

# PDU length limits (253 bytes) bound every variable part below.
REQUESTS: dict[type, st.SearchStrategy] = {
    ReadCoilsRequest: st.builds(ReadCoilsRequest, u16, u16),
    ReadDiscreteInputsRequest: st.builds(ReadDiscreteInputsRequest, u16, u16),
    ReadHoldingRegistersRequest: st.builds(ReadHoldingRegistersRequest, u16, u16),
    ReadInputRegistersRequest: st.builds(ReadInputRegistersRequest, u16, u16),
    WriteSingleCoilRequest: st.builds(WriteSingleCoilRequest, u16, u16),
    WriteSingleRegisterRequest: st.builds(WriteSingleRegisterRequest, u16, u16),
    ReadExceptionStatusRequest: st.just(ReadExceptionStatusRequest()),
    DiagnosticsRequest: st.builds(DiagnosticsRequest, u16, st.binary(max_size=250)),
    GetCommEventCounterRequest: st.just(GetCommEventCounterRequest()),
    GetCommEventLogRequest: st.just(GetCommEventLogRequest()),
    WriteMultipleCoilsRequest: st.builds(_coils, u16, u16, st.binary(max_size=247)),
    WriteMultipleRegistersRequest: st.builds(_registers, u16, u16, regs(123)),
    ReportServerIdRequest: st.just(ReportServerIdRequest()),
    ReadFileRecordRequest: st.builds(
        ReadFileRecordRequest,
        st.lists(st.builds(FileSubRequest, u8, u16, u16, u16), max_size=35).map(tuple),
    ),
    WriteFileRecordRequest: st.builds(WriteFileRecordRequest, file_records),
    MaskWriteRegisterRequest: st.builds(MaskWriteRegisterRequest, u16, u16, u16),
    ReadWriteMultipleRegistersRequest: st.builds(_read_write, u16, u16, u16, u16, regs(121)),
    ReadFifoQueueRequest: st.builds(ReadFifoQueueRequest, u16),
    ReadDeviceIdRequest: st.builds(ReadDeviceIdRequest, u8, u8),
    MeiRequest: st.builds(MeiRequest, other_mei, st.binary(max_size=251)),
    UnknownRequest: st.builds(
        UnknownRequest, u8.filter(lambda fc: fc not in KNOWN), st.binary(max_size=252)
    ),
}

RESPONSES: dict[type, st.SearchStrategy] = {
    ReadCoilsResponse: st.builds(ReadCoilsResponse, st.binary(max_size=251)),
    ReadDiscreteInputsResponse: st.builds(ReadDiscreteInputsResponse, st.binary(max_size=251)),
    ReadHoldingRegistersResponse: st.builds(ReadHoldingRegistersResponse, regs(125)),
    ReadInputRegistersResponse: st.builds(ReadInputRegistersResponse, regs(125)),
    WriteSingleCoilResponse: st.builds(WriteSingleCoilResponse, u16, u16),
    WriteSingleRegisterResponse: st.builds(WriteSingleRegisterResponse, u16, u16),
    ReadExceptionStatusResponse: st.builds(ReadExceptionStatusResponse, u8),
    DiagnosticsResponse: st.builds(DiagnosticsResponse, u16, st.binary(max_size=250)),
    GetCommEventCounterResponse: st.builds(GetCommEventCounterResponse, u16, u16),
    GetCommEventLogResponse: st.builds(
        GetCommEventLogResponse, u16, u16, u16, st.binary(max_size=245)
    ),
    WriteMultipleCoilsResponse: st.builds(WriteMultipleCoilsResponse, u16, u16),
    WriteMultipleRegistersResponse: st.builds(WriteMultipleRegistersResponse, u16, u16),
    ReportServerIdResponse: st.builds(ReportServerIdResponse, st.binary(max_size=251)),
    ReadFileRecordResponse: st.builds(
        ReadFileRecordResponse, st.lists(st.tuples(u8, regs(10)), max_size=10).map(tuple)
    ),
    WriteFileRecordResponse: st.builds(WriteFileRecordResponse, file_records),
    MaskWriteRegisterResponse: st.builds(MaskWriteRegisterResponse, u16, u16, u16),
    ReadWriteMultipleRegistersResponse: st.builds(
        ReadWriteMultipleRegistersResponse, regs(125)
    ),
    ReadFifoQueueResponse: st.builds(ReadFifoQueueResponse, regs(124)),
    ReadDeviceIdResponse: st.builds(
        ReadDeviceIdResponse,
        u8,
        u8,
        u8,
        u8,
        st.lists(st.tuples(u8, st.binary(max_size=20)), max_size=10).map(tuple),
    ),
    MeiResponse: st.builds(MeiResponse, other_mei, st.binary(max_size=251)),
    ExceptionResponse: st.builds(ExceptionResponse, st.integers(0, 0x7F), u8),
    UnknownResponse: st.builds(
        UnknownResponse,
        st.integers(0, 0x7F).filter(lambda fc: fc not in KNOWN),
        st.binary(max_size=252),
    ),
}


def test_every_type_has_a_strategy() -> None:
    """Adding a PDU type without a round-trip strategy fails here."""
    import harness.codec.modbus.pdu as pdu

    names = {n for n in pdu.__all__ if n.endswith(("Request", "Response"))}
    names -= {"Request", "Response", "FileSubRequest"}
    covered = {cls.__name__ for cls in [*REQUESTS, *RESPONSES]}
    assert covered == names


@EXAMPLES
@given(st.one_of(*REQUESTS.values()))
def test_request_roundtrip(request) -> None:  # type: ignore[no-untyped-def]
    wire = encode_pdu(request)
    assert len(wire) <= 253
    assert decode_request(wire) == request


@EXAMPLES
@given(st.one_of(*RESPONSES.values()))
def test_response_roundtrip(response) -> None:  # type: ignore[no-untyped-def]
    wire = encode_pdu(response)
    assert len(wire) <= 253
    assert decode_response(wire) == response


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_pdu_decoders_never_raise(data: bytes) -> None:
    for result in (decode_request(data), decode_response(data)):
        if isinstance(result, Malformed):
            assert result.data == data
            assert 0 <= result.offset <= len(data)
            assert str(result)
        else:  # whatever decodes re-encodes to the same bytes
            assert encode_pdu(result) == data
    assert describe_pdu(data, True) and describe_pdu(data, False)


@settings(max_examples=200, deadline=None)
@given(st.one_of(*REQUESTS.values(), *RESPONSES.values()).map(encode_pdu), st.data())
def test_mutated_pdus_never_raise(wire: bytes, data: st.DataObject) -> None:
    """Near-valid input reaches the deeper branches that random bytes rarely do."""
    cut = data.draw(st.integers(0, len(wire)))
    flip = data.draw(st.integers(0, max(len(wire) - 1, 0)))
    mutants = [wire[:cut], wire + data.draw(st.binary(min_size=1, max_size=3))]
    if wire:
        mutants.append(wire[:flip] + bytes([data.draw(u8)]) + wire[flip + 1 :])
    for mutant in mutants:
        for result in (decode_request(mutant), decode_response(mutant)):
            if isinstance(result, Malformed):
                assert 0 <= result.offset <= len(mutant)
            else:
                assert encode_pdu(result) == mutant


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_adu_decoders_never_raise(data: bytes) -> None:
    tcp = decode_tcp(data)
    if not isinstance(tcp, Malformed):
        assert tcp.encode() == data
    rtu = decode_rtu(data)
    if not isinstance(rtu, Malformed):
        assert rtu.encode() == data
    assert describe_tcp(data, True) and describe_rtu(data, False)


@EXAMPLES
@given(u16, u8, st.binary(min_size=1, max_size=253), u16)
def test_tcp_roundtrip(tid: int, uid: int, pdu: bytes, pid: int) -> None:
    adu = decode_tcp(encode_tcp(tid, uid, pdu, pid))
    assert not isinstance(adu, Malformed)
    assert (adu.transaction_id, adu.unit_id, adu.pdu, adu.protocol_id) == (tid, uid, pdu, pid)


@EXAMPLES
@given(u8, st.binary(min_size=1, max_size=253))
def test_rtu_roundtrip(uid: int, pdu: bytes) -> None:
    adu = decode_rtu(encode_rtu(uid, pdu))
    assert not isinstance(adu, Malformed)
    assert (adu.unit_id, adu.pdu) == (uid, pdu)


def _crc_bitwise(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


@EXAMPLES
@given(st.binary(max_size=64))
def test_crc_table_matches_bitwise_definition(data: bytes) -> None:
    assert crc16(data) == _crc_bitwise(data)


@EXAMPLES
@given(st.lists(st.booleans(), max_size=100))
def test_bits_roundtrip(bits: list[bool]) -> None:
    packed = pack_bits(bits)
    assert len(packed) == (len(bits) + 7) // 8
    assert unpack_bits(packed, len(bits)) == tuple(bits)
    assert not any(unpack_bits(packed)[len(bits) :])  # zero padding
