"""The pymodbus client stack (3.16, synchronous `ModbusTcpClient`) behind the `ModbusClient` interface.

pymodbus is imported when a `PymodbusClient` is made, never when this module is imported.  What
the adapter knows about the stack (read in the installed 3.16.1 sources and seen against the
bundled simulator):

- Requests take the unit as the keyword `device_id=` (the old `slave=`/`unit=` are gone in
  3.16).  The stack returns every answer as a PDU object: an exception response is an
  `ExceptionResponse` with `isError()` true and `exception_code`, not a raised error; the
  adapter turns it into `ModbusException(code, function_code)`.
- `retries` defaults to 3, and a timeout is retried by re-sending the request, so a silent
  device costs 4 x the timeout per call.  The adapter passes `retries=0` so that one call costs
  one timeout, as the interface promises.  A timeout is a `ModbusIOException` ("No response
  received after 0 retries"); after 3 of them in a row the stack closes the connection itself.
- A response with a wrong transaction id (or unit id) is not rejected: the framer logs
  "Skipping" and keeps waiting, so the caller sees a timeout, not a bad response.
- The peer closing the connection is a `ConnectionException` ("Connection unexpectedly
  closed"); `connect()` returns False instead of raising (its reason only goes to the log, which
  the adapter captures for `detail`).  Every request reconnects first if the socket was closed.
- Quantities are checked before sending (1..2000 bits, 1..125 registers, but 1..2000 for FC15,
  more than the spec's 1968) with a `ValueError`: the adapter reports that as `Unsupported`
  (the stack will not send that request), never as a Modbus exception.  FC16 is not checked at
  all: 0 registers go out (the device answers 03), and so do 124 or more, in a request PDU
  longer than the 253 bytes a PDU may have (the simulator drops such a connection).
- Read results are padded to whole bytes (`bits` has a multiple of 8); the adapter trims them to
  the requested count and adds no check of its own: what the stack accepts is what is returned.
- `read_device_information` (FC43/14) answers one transaction; the adapter follows "more
  follows" itself for the stream read codes.  Repeated object ids come back as lists in
  `information`; the adapter keeps the first value.
- Each socket read waits up to the timeout; the transaction gives up at the timeout after the
  last byte it got, so a device trickling bytes can stretch one call to about twice the timeout.
"""

from __future__ import annotations

import logging

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

_INSTALL = "pip install -c constraints.txt pymodbus"
_MORE_FOLLOWS = 0xFF


class _LogCapture(logging.Handler):
    """Keeps the messages pymodbus logs (it logs, rather than raises, why a connect failed)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # noqa: BLE001 - a log record we cannot format is no reason to fail
            pass


class PymodbusClient:
    """`ModbusClient` over `pymodbus.client.ModbusTcpClient`."""

    name = "pymodbus"

    def __init__(self):
        try:
            from pymodbus.client import ModbusTcpClient
            from pymodbus import exceptions as pymodbus_exceptions
        except ImportError as exc:
            raise NotInstalled(f"pymodbus is not installed: {_INSTALL}", str(exc)) from None
        self.version = installed_version("pymodbus")
        self._tcp_client_class = ModbusTcpClient
        self._exc = pymodbus_exceptions
        self._client = None
        self._unit = 1
        self._timeout = 2.0

    # ------------------------------------------------------------------ connection

    def connect(self, host: str, port: int, unit: int = 1, timeout: float = 2.0) -> None:
        self.close()
        self._unit = unit
        self._timeout = timeout
        capture = _LogCapture()
        logger = logging.getLogger("pymodbus.logging")
        logger.addHandler(capture)
        try:
            client = self._tcp_client_class(host, port=port, timeout=timeout, retries=0)
            ok = client.connect()
        except Exception as exc:  # noqa: BLE001 - every stack error is mapped here
            raise ConnectFailed(f"pymodbus could not connect to {host}:{port}", f"{type(exc).__name__}: {exc}") from None
        finally:
            logger.removeHandler(capture)
        if not ok:
            detail = "; ".join(capture.messages) or "ModbusTcpClient.connect() returned False"
            raise ConnectFailed(f"pymodbus could not connect to {host}:{port}", detail)
        self._client = client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing never fails the caller
                pass

    # ------------------------------------------------------------------ the one place stack errors are mapped

    def _call(self, function_code: int, method: str, *args, **kwargs):
        client = self._client
        if client is None:
            raise AdapterError("pymodbus client is not connected: call connect() first")
        exc_mod = self._exc
        try:
            response = getattr(client, method)(*args, device_id=self._unit, **kwargs)
        except ValueError as exc:  # the request's own checks, before anything is sent
            raise Unsupported(f"pymodbus refuses to send this FC{function_code} request", str(exc)) from None
        except exc_mod.ConnectionException as exc:
            text = str(exc)
            if "Failed to connect" in text or "cannot connect" in text:  # the reconnect before sending failed
                raise ConnectFailed("pymodbus could not (re)connect", text) from None
            raise ConnectionLost("pymodbus: connection lost", text) from None
        except exc_mod.ModbusIOException as exc:
            text = str(exc)
            if "No response received" in text:
                raise Timeout(f"pymodbus: no response to FC{function_code} within {self._timeout} s", text) from None
            raise BadResponse(f"pymodbus rejected the response to FC{function_code}", text) from None
        except exc_mod.ModbusException as exc:
            raise BadResponse(f"pymodbus failed on FC{function_code}", f"{type(exc).__name__}: {exc}") from None
        except TimeoutError as exc:
            raise Timeout(f"pymodbus: timeout on FC{function_code}", str(exc)) from None
        except OSError as exc:
            raise ConnectionLost("pymodbus: socket error", f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - nothing of the stack's leaves the adapter
            raise BadResponse(f"pymodbus failed on FC{function_code}", f"{type(exc).__name__}: {exc}") from None
        if response is None:
            raise BadResponse(f"pymodbus returned no response object for FC{function_code}")
        if response.isError():
            code = getattr(response, "exception_code", None)
            if code is None:
                raise BadResponse(f"pymodbus returned an error object for FC{function_code}", str(response))
            raise ModbusException(int(code), response.function_code & 0x7F, str(response))
        return response

    # ------------------------------------------------------------------ reads

    def read_coils(self, address: int, count: int) -> list[bool]:
        return [bool(b) for b in self._call(1, "read_coils", address, count=count).bits[:count]]

    def read_discrete_inputs(self, address: int, count: int) -> list[bool]:
        return [bool(b) for b in self._call(2, "read_discrete_inputs", address, count=count).bits[:count]]

    def read_holding_registers(self, address: int, count: int) -> list[int]:
        return list(self._call(3, "read_holding_registers", address, count=count).registers)

    def read_input_registers(self, address: int, count: int) -> list[int]:
        return list(self._call(4, "read_input_registers", address, count=count).registers)

    # ------------------------------------------------------------------ writes

    def write_coil(self, address: int, value: bool) -> None:
        self._call(5, "write_coil", address, bool(value))

    def write_register(self, address: int, value: int) -> None:
        self._call(6, "write_register", address, value)

    def write_coils(self, address: int, values: list[bool]) -> None:
        self._call(15, "write_coils", address, [bool(v) for v in values])

    def write_registers(self, address: int, values: list[int]) -> None:
        self._call(16, "write_registers", address, list(values))

    def mask_write_register(self, address: int, and_mask: int, or_mask: int) -> None:
        self._call(22, "mask_write_register", address=address, and_mask=and_mask, or_mask=or_mask)

    def read_write_registers(self, read_address: int, read_count: int, write_address: int, values: list[int]) -> list[int]:
        # keywords only: the stack's `address=` shortcut would override both addresses
        response = self._call(
            23, "readwrite_registers", read_address=read_address, read_count=read_count, write_address=write_address, values=list(values)
        )
        return list(response.registers)

    # ------------------------------------------------------------------ FC43 / MEI 14

    def read_device_identification(self, read_code: int = 1, object_id: int = 0) -> dict[int, bytes]:
        objects: dict[int, bytes] = {}
        asked = {object_id}
        next_id = object_id
        while True:
            response = self._call(43, "read_device_information", read_code=read_code, object_id=next_id)
            for oid, value in response.information.items():
                if isinstance(value, list):  # the stack collects a repeated object id into a list
                    value = value[0]
                objects.setdefault(int(oid), bytes(value))
            if read_code == 4 or response.more_follows != _MORE_FOLLOWS:
                return objects
            next_id = int(response.next_object_id)
            if next_id in asked:  # the device would send the same part again: never ends
                raise BadResponse(f"FC43/14: 'more follows' points back to object 0x{next_id:02X}", str(response))
            asked.add(next_id)
