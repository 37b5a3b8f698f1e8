"""The uModbus client stack (1.0.4, `umodbus.client.tcp`) behind the `ModbusClient` interface.

umodbus is imported when a `UmodbusClient` is made, never when this module is imported.  The
stack is sans-connection: `umodbus.client.tcp.read_coils(unit, address, count)` etc. build a
request ADU, and `send_message(adu, sock)` sends it on a socket the caller owns and parses the
answer.  The adapter owns that socket (made with the connect timeout, which then bounds every
`recv`).  What the adapter knows about the stack (read in the installed 1.0.4 sources and seen
against the bundled simulator):

- Only FC01-06, 15 and 16 exist in the TCP client: FC22, FC23 and FC43 raise `Unsupported`.
- An exception response raises a class of `umodbus.exceptions` (IllegalFunctionError = 01,
  IllegalDataAddressError = 02, IllegalDataValueError = 03, ServerDeviceFailureError = 04,
  AcknowledgeError = 05, ServerDeviceBusyError = 06, MemoryParityError = 08,
  GatewayPathUnavailableError = 0A, GatewayTargetDeviceFailedToRespondError = 0B); the adapter
  takes the code from its `error_code`.  A code outside that table raises a bare `KeyError`
  (-> `BadResponse`).  Any response whose function code the stack does not know is read as an
  exception response, whatever the high bit says.
- The transaction id is random and never compared with the answer's; the unit id and protocol
  id of the answer are not checked either, nor is the MBAP length: the stack reads 9 bytes,
  then exactly as many more as the request implies.  An answer with a wrong transaction id is
  therefore returned as if it were right (finding, see the tests), and an answer of another
  length desynchronises the stream.
- A short read (the peer closed) raises a bare `ValueError` from `recv_exactly` (no message),
  mapped to `ConnectionLost`; a socket timeout surfaces as `TimeoutError` (-> `Timeout`).
  After a timeout, a lost connection or a rejected answer the adapter closes its socket (the
  stack has no way to resynchronise a stream) and reconnects on the next call.
- The request builders check quantities and values before anything is sent (1..2000 bits,
  1..125 registers, 1..1968 values for FC15 and also for FC16, coil values 0/1) by raising
  `IllegalDataValueError`, the same class as a device's exception 03: the adapter reports those
  as `Unsupported` (the stack will not send that request), never as a Modbus exception.  FC16
  with 124..1968 registers (the spec allows 123) does go out, in a request PDU longer than the
  253 bytes a PDU may have.
- Registers are unsigned unless the process sets UMODBUS_SIGNED_VALUES (a global `conf`); the
  adapter returns them as 0..65535 either way.
"""

from __future__ import annotations

import socket

from ..installed import installed_version
from .errors import (
    AdapterError,
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    ModbusException,
    NotInstalled,
    Timeout,
    Unsupported,
)

_INSTALL = "pip install -c constraints.txt uModbus"


class UmodbusClient:
    """`ModbusClient` over `umodbus.client.tcp` with a socket of its own."""

    name = "umodbus"

    def __init__(self):
        try:
            from umodbus.client import tcp
            from umodbus import exceptions as umodbus_exceptions
        except ImportError as exc:
            raise NotInstalled(f"uModbus is not installed: {_INSTALL}", str(exc)) from None
        self.version = installed_version("uModbus")
        self._tcp = tcp
        self._modbus_error = umodbus_exceptions.ModbusError
        self._sock: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self._unit = 1
        self._timeout = 2.0

    # ------------------------------------------------------------------ connection

    def connect(self, host: str, port: int, unit: int = 1, timeout: float = 2.0) -> None:
        self.close()
        self._unit = unit
        self._timeout = timeout
        self._address = (host, port)
        self._sock = self._open()

    def _open(self) -> socket.socket:
        host, port = self._address  # type: ignore[misc]
        try:
            return socket.create_connection((host, port), timeout=self._timeout)
        except OSError as exc:
            raise ConnectFailed(f"could not connect to {host}:{port} for umodbus", f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # ------------------------------------------------------------------ the one place stack errors are mapped

    def _request(self, function_code: int, build, *args):
        if self._address is None:
            raise AdapterError("umodbus client is not connected: call connect() first")
        try:
            adu = build(self._unit, *args)
        except Exception as exc:  # noqa: BLE001 - IllegalDataValueError, struct.error: nothing was sent
            raise Unsupported(f"umodbus refuses to send this FC{function_code} request", _describe(exc)) from None
        if self._sock is None:  # closed after an earlier failure: the stream had to be dropped
            self._sock = self._open()
        try:
            return self._tcp.send_message(adu, self._sock)
        except self._modbus_error as exc:
            code = getattr(exc, "error_code", None)
            if code is None:
                self.close()
                raise BadResponse(f"umodbus raised a ModbusError without a code on FC{function_code}", _describe(exc)) from None
            raise ModbusException(int(code), function_code, _describe(exc)) from None
        except TimeoutError as exc:  # socket.timeout
            self.close()
            raise Timeout(f"umodbus: no response to FC{function_code} within {self._timeout} s", str(exc) or "timed out") from None
        except ValueError as exc:  # recv_exactly: the stream ended before the answer did
            self.close()
            raise ConnectionLost("umodbus: the connection closed before the whole answer arrived", _describe(exc)) from None
        except OSError as exc:
            self.close()
            raise ConnectionLost("umodbus: socket error", _describe(exc)) from None
        except Exception as exc:  # noqa: BLE001 - KeyError (unknown exception code), struct.error, ...
            self.close()
            raise BadResponse(f"umodbus could not decode the response to FC{function_code}", _describe(exc)) from None

    # ------------------------------------------------------------------ reads

    def read_coils(self, address: int, count: int) -> list[bool]:
        return [bool(b) for b in self._request(1, self._tcp.read_coils, address, count)[:count]]

    def read_discrete_inputs(self, address: int, count: int) -> list[bool]:
        return [bool(b) for b in self._request(2, self._tcp.read_discrete_inputs, address, count)[:count]]

    def read_holding_registers(self, address: int, count: int) -> list[int]:
        return [v & 0xFFFF for v in self._request(3, self._tcp.read_holding_registers, address, count)]

    def read_input_registers(self, address: int, count: int) -> list[int]:
        return [v & 0xFFFF for v in self._request(4, self._tcp.read_input_registers, address, count)]

    # ------------------------------------------------------------------ writes

    def write_coil(self, address: int, value: bool) -> None:
        self._request(5, self._tcp.write_single_coil, address, 1 if value else 0)

    def write_register(self, address: int, value: int) -> None:
        self._request(6, self._tcp.write_single_register, address, value)

    def write_coils(self, address: int, values: list[bool]) -> None:
        self._request(15, self._tcp.write_multiple_coils, address, [1 if v else 0 for v in values])

    def write_registers(self, address: int, values: list[int]) -> None:
        self._request(16, self._tcp.write_multiple_registers, address, list(values))

    def mask_write_register(self, address: int, and_mask: int, or_mask: int) -> None:
        raise Unsupported("umodbus 1.0.4 has no FC22 (Mask Write Register) in umodbus.client.tcp")

    def read_write_registers(self, read_address: int, read_count: int, write_address: int, values: list[int]) -> list[int]:
        raise Unsupported("umodbus 1.0.4 has no FC23 (Read/Write Multiple Registers) in umodbus.client.tcp")

    def read_device_identification(self, read_code: int = 1, object_id: int = 0) -> dict[int, bytes]:
        raise Unsupported("umodbus 1.0.4 has no FC43/14 (Read Device Identification) in umodbus.client.tcp")


def _describe(exc: BaseException) -> str:
    """The stack's exception as text; umodbus raises bare classes and message-less errors."""
    text = " ".join(str(exc).split())  # some classes answer str() with their docstring
    code = getattr(exc, "error_code", None)
    name = type(exc).__name__
    if code is not None:
        name += f" (error_code {code})"
    return f"{name}: {text}" if text else name
