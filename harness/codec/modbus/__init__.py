"""Sans-io Modbus codec: PDUs, TCP (MBAP) and RTU ADUs, rule checks, one-line summaries.

Standard library only, no I/O.  Decoders return a `Malformed` value (what is wrong, at which
byte) instead of raising, so servers, clients and conformance tests can all judge bad input.

    pdu        request/response dataclasses, encode_pdu, decode_request, decode_response
    adu        TcpAdu/encode_tcp/decode_tcp/TcpFramer, RtuAdu/encode_rtu/decode_rtu/crc16
    rules      request_rule_violation: the quantity/value/byte-count checks (exception 03)
    describe   describe_pdu/describe_tcp/describe_rtu for evidence
    constants  function codes, exception codes, limits; datatypes: typed values <-> registers
"""

from .adu import (
    MBAP,
    RtuAdu,
    TcpAdu,
    TcpFramer,
    check_protocol_id,
    crc16,
    decode_rtu,
    decode_tcp,
    encode_rtu,
    encode_tcp,
    is_modbus,
)
from .bits import pack_bits, unpack_bits
from .constants import ExceptionCode, FunctionCode
from .describe import describe_message, describe_pdu, describe_rtu, describe_tcp
from .malformed import CODES as MALFORMED_CODES
from .malformed import Malformed
from .pdu import *  # noqa: F403  (the PDU types; see pdu.__all__)
from .pdu import __all__ as _pdu_all
from .rules import request_rule_violation

__all__ = [
    *_pdu_all,
    "MALFORMED_CODES",
    "MBAP",
    "ExceptionCode",
    "FunctionCode",
    "Malformed",
    "RtuAdu",
    "TcpAdu",
    "TcpFramer",
    "check_protocol_id",
    "crc16",
    "decode_rtu",
    "decode_tcp",
    "describe_message",
    "describe_pdu",
    "describe_rtu",
    "describe_tcp",
    "encode_rtu",
    "encode_tcp",
    "is_modbus",
    "pack_bits",
    "request_rule_violation",
    "unpack_bits",
]
