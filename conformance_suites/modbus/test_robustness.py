"""Truncated and malformed frames, each followed by a check that the device still answers.

TCP guide V1.0b §4.4.2: the server checks each indication; whatever it does with a broken
frame (ignore it, close the connection), it must go on serving correct requests.
"""

from __future__ import annotations

import struct

import pytest

from harness.codec.modbus import pdu as P
from harness.codec.modbus.adu import encode_tcp
from harness.codec.modbus.malformed import Malformed
from harness.conformance import fail, param
from harness.transport.modbus_tcp import TransportError

from .support import IG


def _frames(unit: int, pdu: bytes) -> dict[str, bytes]:
    good = encode_tcp(0x0042, unit, pdu)
    return {
        "truncated": good[:-2],  # the frame's last two bytes never arrive
        "header-only": good[:5],  # an MBAP header cut short
        "length-0": struct.pack(">HHHB", 0x0043, 0, 0, unit),
        "length-1": struct.pack(">HHHB", 0x0044, 0, 1, unit),  # unit id, no function code
        "length-over": struct.pack(">HHHB", 0x0045, 0, 0xFFFF, unit) + pdu,
        "pdu-too-long": encode_tcp(0x0046, unit, b"\x10" + bytes(260)),
        "garbage": bytes(range(256))[::7] * 3,
        "short-pdu": encode_tcp(0x0047, unit, pdu[:2]),  # function code and one byte of address
    }


CASES = {
    "truncated": "a frame cut two bytes short, then the connection closed",
    "header-only": "five bytes of MBAP header, then the connection closed",
    "length-0": "an MBAP length field of 0",
    "length-1": "an MBAP length field of 1 (unit id but no function code)",
    "length-over": "an MBAP length field of 65535",
    "pdu-too-long": "a 261-byte PDU, over the 253-byte limit",
    "garbage": "96 bytes that are no Modbus frame",
    "short-pdu": "a read request whose PDU stops after the first address byte",
}


@pytest.mark.parametrize(
    "kind",
    [
        param(kind, id=f"MB-ROBUST-{kind.upper()}", title=f"After {text}, the device answers a correct request",
              requirements=["MBTCP-4.4.2-ROBUST"], level="MUST", clause=f"{IG} §4.4.2")
        for kind, text in CASES.items()
    ],
)
def test_device_survives_malformed_frame(dut, kind):
    request = dut.any_read()
    pdu = P.encode_pdu(request)
    bad = dut.connect()
    bad.send_raw(_frames(dut.unit, pdu)[kind], summary=f"deliberately malformed: {CASES[kind]}")
    if kind == "short-pdu":
        # A complete frame with a short PDU deserves an answer or silence, not a broken frame.
        try:
            reply = bad.receive(dut.timeout)
            if isinstance(reply.adu, Malformed):
                fail(f"the device answered with a malformed frame: {reply.adu}")
        except TransportError:
            pass
    else:
        bad.expect_silence(min(0.2, dut.timeout))
    bad.close()
    try:
        answer = dut.transact(request)  # on a fresh connection
    except TransportError as exc:
        fail(f"the device no longer answers after {CASES[kind]}: {exc}", expected="a correct answer on a new connection",
             observed=str(exc))
    if isinstance(answer, P.ExceptionResponse):
        fail(f"the device answers a correct request with exception {answer.exception_code:02X} after {CASES[kind]}")
