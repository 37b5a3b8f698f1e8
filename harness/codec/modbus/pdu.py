"""Modbus PDUs: every request and response type, `encode_pdu`, `decode_request`, `decode_response`.

The types live in `pdu_requests` (requests) and `pdu_responses` (responses); this module is the
one place callers import them from.  A PDU is the function code plus its data, without the
MBAP header or the RTU address and CRC (see `adu`).  Standard library only.
"""

from __future__ import annotations

import struct

from .pdu_requests import (
    DiagnosticsRequest,
    FileRecord,
    FileSubRequest,
    GetCommEventCounterRequest,
    GetCommEventLogRequest,
    MaskWriteRegisterRequest,
    MeiRequest,
    ReadCoilsRequest,
    ReadDeviceIdRequest,
    ReadDiscreteInputsRequest,
    ReadExceptionStatusRequest,
    ReadFifoQueueRequest,
    ReadFileRecordRequest,
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
    ReadWriteMultipleRegistersRequest,
    ReportServerIdRequest,
    Request,
    UnknownRequest,
    WriteFileRecordRequest,
    WriteMultipleCoilsRequest,
    WriteMultipleRegistersRequest,
    WriteSingleCoilRequest,
    WriteSingleRegisterRequest,
    decode_request,
)
from .pdu_responses import (
    DiagnosticsResponse,
    ExceptionResponse,
    GetCommEventCounterResponse,
    GetCommEventLogResponse,
    MaskWriteRegisterResponse,
    MeiResponse,
    ReadCoilsResponse,
    ReadDeviceIdResponse,
    ReadDiscreteInputsResponse,
    ReadExceptionStatusResponse,
    ReadFifoQueueResponse,
    ReadFileRecordResponse,
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
    ReadWriteMultipleRegistersResponse,
    ReportServerIdResponse,
    Response,
    UnknownResponse,
    WriteFileRecordResponse,
    WriteMultipleCoilsResponse,
    WriteMultipleRegistersResponse,
    WriteSingleCoilResponse,
    WriteSingleRegisterResponse,
    decode_response,
)

Message = Request | Response | ExceptionResponse


def encode_pdu(message: Message) -> bytes:
    """The PDU bytes of any request or response, written exactly as its fields say.

    Fields are not checked against each other (a test may send a byte count that lies), and
    the 253-byte limit is not enforced here.  A field that does not fit its wire size (a
    register above 0xFFFF, a negative address) raises ValueError.
    """
    try:
        return message.encode()
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"cannot encode {message!r}: {exc}") from None


__all__ = [
    "DiagnosticsRequest",
    "DiagnosticsResponse",
    "ExceptionResponse",
    "FileRecord",
    "FileSubRequest",
    "GetCommEventCounterRequest",
    "GetCommEventCounterResponse",
    "GetCommEventLogRequest",
    "GetCommEventLogResponse",
    "MaskWriteRegisterRequest",
    "MaskWriteRegisterResponse",
    "MeiRequest",
    "MeiResponse",
    "Message",
    "ReadCoilsRequest",
    "ReadCoilsResponse",
    "ReadDeviceIdRequest",
    "ReadDeviceIdResponse",
    "ReadDiscreteInputsRequest",
    "ReadDiscreteInputsResponse",
    "ReadExceptionStatusRequest",
    "ReadExceptionStatusResponse",
    "ReadFifoQueueRequest",
    "ReadFifoQueueResponse",
    "ReadFileRecordRequest",
    "ReadFileRecordResponse",
    "ReadHoldingRegistersRequest",
    "ReadHoldingRegistersResponse",
    "ReadInputRegistersRequest",
    "ReadInputRegistersResponse",
    "ReadWriteMultipleRegistersRequest",
    "ReadWriteMultipleRegistersResponse",
    "ReportServerIdRequest",
    "ReportServerIdResponse",
    "Request",
    "Response",
    "UnknownRequest",
    "UnknownResponse",
    "WriteFileRecordRequest",
    "WriteFileRecordResponse",
    "WriteMultipleCoilsRequest",
    "WriteMultipleCoilsResponse",
    "WriteMultipleRegistersRequest",
    "WriteMultipleRegistersResponse",
    "WriteSingleCoilRequest",
    "WriteSingleCoilResponse",
    "WriteSingleRegisterRequest",
    "WriteSingleRegisterResponse",
    "decode_request",
    "decode_response",
    "encode_pdu",
]
