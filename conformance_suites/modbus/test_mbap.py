"""MBAP header rules (TCP guide V1.0b §3.1.3, §4.4.2) and the TCP byte stream (§4.2)."""

from __future__ import annotations

import struct

import pytest

from harness.codec.modbus import pdu as P
from harness.codec.modbus.adu import encode_tcp
from harness.codec.modbus.constants import FunctionCode
from harness.codec.modbus.malformed import Malformed
from harness.conformance import case, fail, not_applicable, param
from harness.transport.modbus_tcp import NoResponse

from .support import IG, READ_RESPONSE


@pytest.mark.parametrize(
    "tid",
    [
        param(0x0000, id="MB-MBAP-TID-0000", title="Transaction id 0x0000 is recopied into the response",
              requirements=["MBTCP-3.1.3-TID"], level="MUST", clause=f"{IG} §3.1.3"),
        param(0xFFFF, id="MB-MBAP-TID-FFFF", title="Transaction id 0xFFFF is recopied into the response",
              requirements=["MBTCP-3.1.3-TID"], level="MUST", clause=f"{IG} §3.1.3"),
        param(0x5A3C, id="MB-MBAP-TID-5A3C", title="Transaction id 0x5A3C is recopied into the response",
              requirements=["MBTCP-3.1.3-TID"], level="MUST", clause=f"{IG} §3.1.3"),
    ],
)
def test_transaction_id_echo(dut, tid):
    dut.transact(dut.any_read(), tid=tid)  # transact fails the case on a foreign transaction id


@case("MB-MBAP-UID", "Each unit id the device serves is returned unchanged in the response",
      requirements=["MBTCP-3.1.3-UID"], level="MUST", clause=f"{IG} §3.1.3")
def test_unit_id_echo(dut):
    conn = dut.connect()
    for unit in dut.mb.unit_ids:
        dut.transact(dut.any_read(), conn, unit=unit)


@case("MB-MBAP-PID-ZERO", "The response's protocol identifier is 0",
      requirements=["MBTCP-3.1.3-PID"], level="MUST", clause=f"{IG} §3.1.3")
def test_protocol_id_zero(dut):
    dut.transact(dut.any_read())  # transact fails on a non-zero protocol id


@case("MB-MBAP-LEN", "The length field counts exactly the unit id and PDU bytes that follow",
      requirements=["MBTCP-3.1.3-LEN"], level="MUST", clause=f"{IG} §3.1.3")
def test_length_field(dut):
    conn = dut.connect()
    conn.send_pdu(P.encode_pdu(dut.any_read()))
    # Collect raw bytes rather than trusting the framer, which itself relies on the field:
    # everything that arrives within the timeout, stopping early once a whole response and
    # a short quiet spell have gone by.
    data = conn.collect_raw(dut.timeout, settle_s=0.05)
    if len(data) < 7:
        fail(f"only {len(data)} bytes arrived; an MBAP header has 7", observed=data.hex(" "))
    declared = struct.unpack_from(">H", data, 4)[0]
    actual = len(data) - 6
    if declared != actual:
        fail(
            f"length field says {declared} bytes follow, {actual} did",
            expected=f"length {actual}",
            observed=f"length {declared} ({data.hex(' ')})",
        )


@case("MB-MBAP-PID-DISCARD", "A request with a non-zero protocol id is discarded without a response",
      requirements=["MBTCP-4.4.2-PID-DISCARD"], level="MUST", clause=f"{IG} §4.4.2.2")
def test_non_modbus_protocol_id_discarded(dut):
    conn = dut.connect()
    pdu = P.encode_pdu(dut.any_read())
    foreign = conn.send_pdu(pdu, protocol_id=0x0001)
    # The device handles requests in order: an answer to the foreign frame comes first.
    follow_up = conn.send_pdu(pdu)
    reply = conn.receive()
    if isinstance(reply.adu, Malformed):
        fail(f"malformed frame: {reply.adu}")
    if reply.adu.transaction_id == foreign:
        fail(
            "the device answered a request whose protocol id is 1",
            expected="no response to the protocol id 1 request",
            observed=f"a response with transaction id 0x{foreign:04X}",
        )
    dut.check_answer(reply, follow_up, dut.unit, pdu[0])


@case("MB-FC-UNCLAIMED", "A public function code the device does not claim is refused with exception 01",
      requirements=["MBTCP-4.4.2-ILLEGAL-FUNCTION", "MB-AP-4.5-EXCEPTION-FORMAT"], level="MUST", clause=f"{IG} §4.4.2.2")
def test_unclaimed_function_code(dut):
    candidates = [fc for fc in FunctionCode if not dut.mb.claims(fc)]
    if not candidates:
        not_applicable("the device claims every public function code")
    fc = candidates[0]
    # A request of the right shape for that code, so only "unsupported" can be wrong with it.
    body = {FunctionCode.READ_EXCEPTION_STATUS: b"", FunctionCode.GET_COMM_EVENT_COUNTER: b"",
            FunctionCode.GET_COMM_EVENT_LOG: b"", FunctionCode.REPORT_SERVER_ID: b"",
            FunctionCode.DIAGNOSTICS: b"\x00\x00\x12\x34"}.get(fc, b"\x00\x00\x00\x01")
    answer = dut.transact(bytes([fc]) + body)
    dut.expect_exception(answer, 0x01, f"function code {int(fc)} is not claimed")


@case("MB-FC-UNDEFINED", "An undefined function code (0x37) is refused with exception 01",
      requirements=["MBTCP-4.4.2-ILLEGAL-FUNCTION", "MB-AP-4.5-EXCEPTION-FORMAT"], level="MUST", clause=f"{IG} §4.4.2.2")
def test_undefined_function_code(dut):
    answer = dut.transact(b"\x37\x00\x00\x00\x01")
    dut.expect_exception(answer, 0x01, "0x37 is no public function code")


@case("MB-TCP-PIPELINE", "Requests pipelined on one connection are all answered, each with its transaction id",
      requirements=["MBTCP-4.2.1-PIPELINE", "MBTCP-3.1.3-TID"], level="MUST", clause=f"{IG} §4.2.1.1")
def test_pipelined_requests(dut):
    conn = dut.connect()
    base = dut.any_read()
    count = max(2, min(dut.mb.max_outstanding, 8))
    pdu = P.encode_pdu(base)
    sent = {0x0100 + i for i in range(count)}
    frames = b"".join(encode_tcp(tid, dut.unit, pdu) for tid in sorted(sent))
    conn.send_raw(frames, summary=f"{count} requests in one write, transaction ids 0x0100..0x{0x0100 + count - 1:04X}")
    seen = set()
    for _ in range(count):
        try:
            reply = conn.receive(dut.timeout * 2)
        except NoResponse:
            fail(
                f"{len(seen)} of {count} pipelined requests were answered",
                expected=f"{count} responses",
                observed=f"responses for {sorted(hex(t) for t in seen)}",
            )
        tid = None if isinstance(reply.adu, Malformed) else reply.adu.transaction_id
        if tid not in sent or tid in seen:
            fail(f"response with transaction id {tid!r} matches no outstanding request")
        seen.add(tid)
        answer = dut.check_answer(reply, tid, dut.unit, pdu[0])
        if isinstance(answer, P.ExceptionResponse):
            # Beyond the claimed NumberMaxOfServerTransaction, "busy" (06) is allowed (§4.4.2.2).
            if answer.exception_code != 0x06 or len(seen) <= dut.mb.max_outstanding:
                dut.expect_normal(answer, READ_RESPONSE[base.function_code], "a pipelined read is answered normally")


@pytest.mark.parametrize(
    "gap_s, split",
    [
        param(0.005, "bytes", id="MB-TCP-SPLIT-BYTES", title="A request sent one byte per TCP segment is answered",
              requirements=["MBTCP-4.2-STREAM"], level="MUST", clause=f"{IG} §4.2"),
        param(0.05, "header", id="MB-TCP-SPLIT-HEADER", title="A request split after the MBAP header is answered",
              requirements=["MBTCP-4.2-STREAM"], level="MUST", clause=f"{IG} §4.2"),
    ],
)
def test_request_split_across_segments(dut, gap_s, split):
    import time

    conn = dut.connect()
    request = dut.any_read()
    pdu = P.encode_pdu(request)
    frame = encode_tcp(0x2222, dut.unit, pdu)
    if split == "bytes":
        conn.send_dribbled(frame, gap_s)
    else:
        conn.send_raw(frame[:7], summary="MBAP header only")
        time.sleep(gap_s)
        conn.send_raw(frame[7:], summary="the PDU, 50 ms later")
    reply = conn.receive()
    dut.check_answer(reply, 0x2222, dut.unit, pdu[0])
