"""One-line human summaries of Modbus frames, for evidence in reports and logs.

    FC03 Read Holding Registers addr=0 qty=10
    FC03 response 3 registers [0x022b, 0x0000, 0x0064]
    FC03 exception 02 ILLEGAL DATA ADDRESS
    malformed: byte count says 6 but 4 data bytes follow (at byte 1)
    tid=0x0001 uid=1 FC03 Read Holding Registers addr=0 qty=10

Lists longer than 8 registers (16 bytes) show the first ones then "..., (+N more)".  Every
function here returns a string for any input and never raises.  Standard library only.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, get_args

from .adu import decode_rtu, decode_tcp
from .constants import COIL_OFF, COIL_ON, ExceptionCode
from .malformed import Malformed
from .pdu import (
    ExceptionResponse,
    FileRecord,
    FileSubRequest,
    Message,
    Response,
    WriteSingleCoilRequest,
    WriteSingleCoilResponse,
    decode_request,
    decode_response,
)

FUNCTION_NAMES: dict[int, str] = {
    0x01: "Read Coils",
    0x02: "Read Discrete Inputs",
    0x03: "Read Holding Registers",
    0x04: "Read Input Registers",
    0x05: "Write Single Coil",
    0x06: "Write Single Register",
    0x07: "Read Exception Status",
    0x08: "Diagnostics",
    0x0B: "Get Comm Event Counter",
    0x0C: "Get Comm Event Log",
    0x0F: "Write Multiple Coils",
    0x10: "Write Multiple Registers",
    0x11: "Report Server ID",
    0x14: "Read File Record",
    0x15: "Write File Record",
    0x16: "Mask Write Register",
    0x17: "Read/Write Multiple Registers",
    0x18: "Read FIFO Queue",
    0x2B: "Encapsulated Interface Transport",
}
MEI_NAMES = {0x0D: "CANopen General Reference", 0x0E: "Read Device Identification"}

# field name -> label in the summary; fields not listed keep their name.
_LABELS = {
    "address": "addr",
    "quantity": "qty",
    "byte_count": "bytes",
    "sub_function": "sub",
    "and_mask": "and",
    "or_mask": "or",
    "read_address": "read_addr",
    "read_quantity": "read_qty",
    "write_address": "write_addr",
    "write_quantity": "write_qty",
    "write_byte_count": "bytes",
    "read_code": "code",
    "object_id": "object",
    "conformity_level": "conformity",
    "more_follows": "more",
    "next_object_id": "next",
}
# integer fields shown in hex, with their digit count (the others are decimal)
_HEX = {
    "value": 4,
    "and_mask": 4,
    "or_mask": 4,
    "sub_function": 4,
    "status": 4,
    "object_id": 2,
    "conformity_level": 2,
    "more_follows": 2,
    "next_object_id": 2,
}
_SHOWN_VALUES = 8
_SHOWN_BYTES = 16
_RESPONSE_TYPES = get_args(Response)
_COIL_STATES = {COIL_ON: "(ON)", COIL_OFF: "(OFF)"}


def _registers(values: tuple[int, ...]) -> str:
    shown = ", ".join(f"0x{v:04x}" for v in values[:_SHOWN_VALUES])
    more = len(values) - _SHOWN_VALUES
    return f"[{shown}, ..., (+{more} more)]" if more > 0 else f"[{shown}]"


def _hex(data: bytes) -> str:
    if not data:
        return "(none)"
    more = len(data) - _SHOWN_BYTES
    shown = data[:_SHOWN_BYTES].hex(" ")
    return f"{shown} ... (+{more} bytes)" if more > 0 else shown


def _text(value: bytes) -> str:
    text = value[:40].decode("latin-1")
    return repr(text + ("..." if len(value) > 40 else ""))


def _ref(reference_type: int) -> str:
    return "" if reference_type == 6 else f"ref={reference_type} "


def _item(item: Any) -> str:
    """One element of a file-record or device-id list."""
    if isinstance(item, FileSubRequest):
        return (
            f"{_ref(item.reference_type)}file={item.file_number}"
            f" rec={item.record_number} len={item.record_length}"
        )
    if isinstance(item, FileRecord):
        return (
            f"{_ref(item.reference_type)}file={item.file_number}"
            f" rec={item.record_number} {_registers(item.values)}"
        )
    key, value = item
    if isinstance(value, bytes):  # device identification object
        return f"0x{key:02x}={_text(value)}"
    return _ref(key) + _registers(value)  # read file record sub-response


def _field(name: str, value: Any) -> str:
    label = _LABELS.get(name, name)
    if isinstance(value, int):
        width = _HEX.get(name)
        return f"{label}=0x{value:0{width}x}" if width else f"{label}={value}"
    if isinstance(value, bytes):
        return f"{label}={_hex(value)}"
    if name in ("values", "write_values"):
        return f"{len(value)} registers {_registers(value)}"
    noun = {"sub_requests": "sub-requests"}.get(name, name)
    return f"{len(value)} {noun} [" + ", ".join(_item(v) for v in value) + "]"


def _title(message: Any) -> tuple[str, str]:
    fc: int = message.function_code
    mei = getattr(message, "mei_type", None)
    if mei is not None:
        return f"FC{fc:02d}/{mei:02d}", MEI_NAMES.get(mei, f"MEI type 0x{mei:02x}")
    return f"FC{fc:02d}", FUNCTION_NAMES.get(fc, "unknown function")


def describe_message(message: Message | Malformed) -> str:
    """One line for a decoded request, response, exception or Malformed."""
    try:
        if isinstance(message, Malformed):
            return f"malformed: {message}"
        if isinstance(message, ExceptionResponse):
            code = message.exception_code
            try:
                name = ExceptionCode(code).name.replace("_", " ")
            except ValueError:
                name = "(not a defined exception code)"
            return f"FC{message.function_code:02d} exception {code:02X} {name}"
        tag, name = _title(message)
        parts = [tag, "response" if isinstance(message, _RESPONSE_TYPES) else name]
        parts += (
            _field(f.name, getattr(message, f.name))
            for f in fields(message)
            if f.name not in ("function_code", "mei_type")
        )
        if isinstance(message, WriteSingleCoilRequest | WriteSingleCoilResponse):
            parts.append(_COIL_STATES.get(message.value, "(neither ON nor OFF)"))
        return " ".join(parts)
    except Exception:  # evidence is best effort: a summary never breaks a run
        return f"undescribable message {_raw(message)}"


def _raw(data: object) -> str:
    """Hex of whatever we were given, or a short repr of it; the last resort of a summary."""
    if isinstance(data, bytes | bytearray | memoryview):
        return _hex(bytes(data))
    try:
        return repr(data)[:120]
    except Exception:
        return f"<{type(data).__name__}>"


def describe_pdu(pdu: bytes, is_response: bool) -> str:
    """One line for a PDU as sent by a client (`is_response=False`) or a server."""
    try:
        message = decode_response(pdu) if is_response else decode_request(pdu)
        return describe_message(message)
    except Exception:  # never raises, see module docstring
        return f"undescribable PDU {_raw(pdu)}"


def describe_tcp(frame: bytes, is_response: bool) -> str:
    """One line for a Modbus TCP frame: "tid=0x0001 uid=1 " then the PDU summary."""
    try:
        adu = decode_tcp(frame)
        if isinstance(adu, Malformed):
            return f"malformed ADU: {adu}"
        pid = "" if adu.protocol_id == 0 else f"pid=0x{adu.protocol_id:04x} (not Modbus) "
        head = f"tid=0x{adu.transaction_id:04x} {pid}uid={adu.unit_id} "
        return head + describe_pdu(adu.pdu, is_response)
    except Exception:
        return f"undescribable frame {_raw(frame)}"


def describe_rtu(frame: bytes, is_response: bool) -> str:
    """One line for a Modbus RTU frame: "uid=1 " then the PDU summary."""
    try:
        adu = decode_rtu(frame)
        if isinstance(adu, Malformed):
            return f"malformed ADU: {adu}"
        return f"uid={adu.unit_id} " + describe_pdu(adu.pdu, is_response)
    except Exception:
        return f"undescribable frame {_raw(frame)}"
