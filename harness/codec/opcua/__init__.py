"""Sans-io OPC UA codecs that asyncua does not give a judge: standard library only, no I/O.

    uacp   OPC UA Connection Protocol (Part 6 v1.04 §7.1): the 8-byte message header as tables,
           Hello / Acknowledge / Error / ReverseHello bodies, status codes, one-line summaries

The service-level binary encoding (requests, responses, secure conversation) comes from
`asyncua.ua`; this package holds only the checks a conformance judge needs before that, and is
shared with the OPC UA simulator, so it must never import asyncua.
"""

from .uacp import (
    CHUNK_TYPES,
    HEADER_SIZE,
    MALFORMED_CODES,
    MAX_REASON_LENGTH,
    MAX_URL_LENGTH,
    MESSAGE_TYPES,
    MIN_BUFFER_SIZE,
    SECURE_TYPES,
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
    encode_body,
    encode_message,
    parse_header,
    secure_channel_id,
    status_name,
)

__all__ = [
    "CHUNK_TYPES",
    "HEADER_SIZE",
    "MALFORMED_CODES",
    "MAX_REASON_LENGTH",
    "MAX_URL_LENGTH",
    "MESSAGE_TYPES",
    "MIN_BUFFER_SIZE",
    "SECURE_TYPES",
    "Acknowledge",
    "ErrorMessage",
    "Header",
    "Hello",
    "Malformed",
    "ReverseHello",
    "StatusCode",
    "decode",
    "decode_body",
    "describe",
    "encode",
    "encode_body",
    "encode_message",
    "parse_header",
    "secure_channel_id",
    "status_name",
]
