"""What any client adapter raises, whatever the stack underneath (standard library only).

A stack's own exceptions never leave its adapter: they are mapped to these, keeping the
stack's message in `detail` for the evidence.
"""

from __future__ import annotations


class AdapterError(Exception):
    """Base of every adapter failure.  `detail` keeps the stack's own words."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


class NotInstalled(AdapterError):
    """The stack (package, library or node module) is not installed; the message says how to fix it."""


class Unsupported(AdapterError):
    """The stack has no API for this operation (e.g. no FC43 in the library)."""


class ConnectFailed(AdapterError):
    """The TCP connection (or the protocol handshake) could not be made."""


class Timeout(AdapterError):
    """No (acceptable) answer within the timeout."""


class ConnectionLost(AdapterError):
    """The peer closed or reset the connection during the operation."""


class BadResponse(AdapterError):
    """The stack rejected the answer as malformed or not matching the request."""


class ModbusException(AdapterError):
    """The server answered with a Modbus exception response; `code` is its exception code."""

    def __init__(self, code: int, function_code: int | None = None, detail: str = ""):
        super().__init__(f"Modbus exception {code:02X}" + (f" to function {function_code}" if function_code else ""), detail)
        self.code = code
        self.function_code = function_code


class StatusError(AdapterError):
    """The OPC UA server answered with a bad status: `status` is its name as in Part 6 Annex A
    (e.g. ``BadNodeIdUnknown``), `code` the 32-bit StatusCode value (info bits included)."""

    def __init__(self, status: str, code: int, operation: str = "", detail: str = ""):
        super().__init__(f"{status} (0x{code:08X})" + (f" in {operation}" if operation else ""), detail)
        self.status = status
        self.code = code
        self.operation = operation
