"""Modbus rules as tables: function codes, exception codes, quantity limits, size limits.

Source: MODBUS Application Protocol Specification V1.1b3 (sections 4, 6, 7) and the MODBUS
Messaging on TCP/IP Implementation Guide V1.0b (section 3.1.3).  The codec, the reference
simulator and the conformance suite all read these tables, so a limit is stated once.
Standard library only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FunctionCode(enum.IntEnum):
    READ_COILS = 0x01
    READ_DISCRETE_INPUTS = 0x02
    READ_HOLDING_REGISTERS = 0x03
    READ_INPUT_REGISTERS = 0x04
    WRITE_SINGLE_COIL = 0x05
    WRITE_SINGLE_REGISTER = 0x06
    READ_EXCEPTION_STATUS = 0x07  # serial line only
    DIAGNOSTICS = 0x08  # serial line only
    GET_COMM_EVENT_COUNTER = 0x0B  # serial line only
    GET_COMM_EVENT_LOG = 0x0C  # serial line only
    WRITE_MULTIPLE_COILS = 0x0F
    WRITE_MULTIPLE_REGISTERS = 0x10
    REPORT_SERVER_ID = 0x11  # serial line only
    READ_FILE_RECORD = 0x14
    WRITE_FILE_RECORD = 0x15
    MASK_WRITE_REGISTER = 0x16
    READ_WRITE_MULTIPLE_REGISTERS = 0x17
    READ_FIFO_QUEUE = 0x18
    ENCAPSULATED_INTERFACE = 0x2B  # MEI; type 0x0E = Read Device Identification


class ExceptionCode(enum.IntEnum):
    """Application Protocol V1.1b3 section 7."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    SERVER_DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    SERVER_DEVICE_BUSY = 0x06
    MEMORY_PARITY_ERROR = 0x08
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_FAILED = 0x0B


EXCEPTION_FLAG = 0x80
MEI_READ_DEVICE_ID = 0x0E

# Section 4.1: PDU <= 253 bytes; RTU ADU <= 256 bytes; TCP ADU <= 260 bytes (7 MBAP + 253).
MAX_PDU_SIZE = 253
MAX_RTU_ADU_SIZE = 256
MAX_TCP_ADU_SIZE = 260
MBAP_HEADER_SIZE = 7
# The MBAP length field counts the unit id plus the PDU: 1 + 1 (function code) at least,
# 1 + 253 at most.
MBAP_MIN_LENGTH = 2
MBAP_MAX_LENGTH = 1 + MAX_PDU_SIZE

COIL_ON = 0xFF00
COIL_OFF = 0x0000


class Table(str, enum.Enum):
    """The four primary tables of the Modbus data model (section 4.3)."""

    COILS = "coils"
    DISCRETE_INPUTS = "discrete_inputs"
    HOLDING_REGISTERS = "holding_registers"
    INPUT_REGISTERS = "input_registers"

    @property
    def is_bit(self) -> bool:
        return self in (Table.COILS, Table.DISCRETE_INPUTS)


@dataclass(frozen=True)
class QuantityLimit:
    """Quantity range a server must accept for one function code, and the clause saying so."""

    function: FunctionCode
    field: str
    low: int
    high: int
    clause: str


# The per-function state diagrams of sections 6.x check this range before the address.
QUANTITY_LIMITS: dict[tuple[FunctionCode, str], QuantityLimit] = {
    (q.function, q.field): q
    for q in (
        QuantityLimit(FunctionCode.READ_COILS, "quantity", 1, 0x07D0, "§6.1"),
        QuantityLimit(FunctionCode.READ_DISCRETE_INPUTS, "quantity", 1, 0x07D0, "§6.2"),
        QuantityLimit(FunctionCode.READ_HOLDING_REGISTERS, "quantity", 1, 0x007D, "§6.3"),
        QuantityLimit(FunctionCode.READ_INPUT_REGISTERS, "quantity", 1, 0x007D, "§6.4"),
        QuantityLimit(FunctionCode.WRITE_MULTIPLE_COILS, "quantity", 1, 0x07B0, "§6.11"),
        QuantityLimit(FunctionCode.WRITE_MULTIPLE_REGISTERS, "quantity", 1, 0x007B, "§6.12"),
        QuantityLimit(FunctionCode.READ_WRITE_MULTIPLE_REGISTERS, "read_quantity", 1, 0x007D, "§6.17"),
        QuantityLimit(FunctionCode.READ_WRITE_MULTIPLE_REGISTERS, "write_quantity", 1, 0x0079, "§6.17"),
        QuantityLimit(FunctionCode.READ_FIFO_QUEUE, "fifo_count", 0, 31, "§6.18"),
    )
}

# Which table each data-access function code reads or writes.
FUNCTION_TABLE: dict[FunctionCode, Table] = {
    FunctionCode.READ_COILS: Table.COILS,
    FunctionCode.READ_DISCRETE_INPUTS: Table.DISCRETE_INPUTS,
    FunctionCode.READ_HOLDING_REGISTERS: Table.HOLDING_REGISTERS,
    FunctionCode.READ_INPUT_REGISTERS: Table.INPUT_REGISTERS,
    FunctionCode.WRITE_SINGLE_COIL: Table.COILS,
    FunctionCode.WRITE_SINGLE_REGISTER: Table.HOLDING_REGISTERS,
    FunctionCode.WRITE_MULTIPLE_COILS: Table.COILS,
    FunctionCode.WRITE_MULTIPLE_REGISTERS: Table.HOLDING_REGISTERS,
    FunctionCode.MASK_WRITE_REGISTER: Table.HOLDING_REGISTERS,
    FunctionCode.READ_WRITE_MULTIPLE_REGISTERS: Table.HOLDING_REGISTERS,
}

# Function codes defined for the serial line only (V1.1b3 marks them "Serial Line only").
SERIAL_ONLY = frozenset(
    {
        FunctionCode.READ_EXCEPTION_STATUS,
        FunctionCode.DIAGNOSTICS,
        FunctionCode.GET_COMM_EVENT_COUNTER,
        FunctionCode.GET_COMM_EVENT_LOG,
        FunctionCode.REPORT_SERVER_ID,
    }
)

# Read Device Identification (section 6.21): access codes and object categories.
class ReadDeviceIdCode(enum.IntEnum):
    BASIC = 0x01  # stream access, objects 0x00-0x02
    REGULAR = 0x02  # stream access, objects 0x03-0x7F
    EXTENDED = 0x03  # stream access, objects 0x80-0xFF
    SPECIFIC = 0x04  # one individual object


DEVICE_ID_OBJECT_NAMES = {
    0x00: "VendorName",
    0x01: "ProductCode",
    0x02: "MajorMinorRevision",
    0x03: "VendorUrl",
    0x04: "ProductName",
    0x05: "ModelName",
    0x06: "UserApplicationName",
}
DEVICE_ID_MANDATORY = (0x00, 0x01, 0x02)
# Conformity level byte: 0x01 basic, 0x02 regular, 0x03 extended (stream only); the same
# plus 0x80 when individual access is supported too.
CONFORMITY_LEVELS = {0x01: "basic", 0x02: "regular", 0x03: "extended"}
CONFORMITY_INDIVIDUAL_FLAG = 0x80
