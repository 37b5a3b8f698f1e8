"""The modbus-tk client stack (1.1.5, `modbus_tk.modbus_tcp.TcpMaster`) behind the `ModbusClient` interface.

modbus_tk is imported when a `ModbusTkClient` is made, never when this module is imported.  Every
operation goes through the stack's one entry point, `Master.execute(unit, function_code, ...)`
with the codes of `modbus_tk.defines`.  What the adapter knows about the stack (read in the
installed 1.1.5 sources and seen against the bundled simulator):

- An exception response raises `modbus_tk.exceptions.ModbusError`; `get_exception_code()` is
  the code from the response.  The stack tests `function code > 0x80`, so a response whose
  function code is exactly 0x80 would be read as data.
- The MBAP header of the answer is checked: a wrong transaction id, protocol id or unit id, or a
  length field that disagrees with the bytes received, raises `ModbusInvalidMbapError`
  (-> `BadResponse`).  The transaction id counter is class-wide (shared by every master in the
  process) and `execute` holds one process-wide lock: two masters never run concurrently.
- The answer is read one byte per `recv(1)` call until the MBAP length is reached, each
  `recv` with the full timeout (a device trickling bytes can stretch one call far beyond it).
  If the peer closes mid-answer, the stack does not notice: it parses the partial bytes and
  raises `ModbusInvalidMbapError`/`ModbusInvalidResponseError`.  The adapter records what was
  received (a `TcpMaster` subclass wrapping `_recv`) and reports a short read as
  `ConnectionLost`, keeping the stack's own message in `detail`.
- Before each request the stack drains whatever is waiting on the socket (`flush_socket`), so
  a late answer to a timed-out request is silently discarded, if it has arrived by then; one
  that arrives after the drain is read as the next answer and rejected by the transaction id
  check (`BadResponse`), and the real answer is drained before the request after.  When
  draining fails (the peer has closed) the stack reconnects by itself.
- Quantities are not checked before sending (any count goes out on the wire), so the device's
  own exception 03 is what comes back; values that do not fit the frame fail in `struct.pack`
  before sending, which the adapter reports as `Unsupported` (never as a Modbus exception).
- FC22 (`MASK_WRITE_REGISTER`), FC23 (`READ_WRITE_MULTIPLE_REGISTERS`) and FC43/14
  (`DEVICE_INFO`) are in `execute`.  For FC43 the stack returns the raw bytes after the
  function code (no parsing, no check): the adapter decodes them with `harness.codec` and
  follows "more follows" for the stream read codes.
- Connecting raises the socket's own `OSError` (`ConnectionRefusedError`, `TimeoutError`).
"""

from __future__ import annotations

import struct

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

_INSTALL = "pip install -c constraints.txt modbus_tk"
_MORE_FOLLOWS = 0xFF


def _master_class(modbus_tcp):
    """`TcpMaster` that remembers whether a request left and what came back (for the mapping)."""

    class _RecordingTcpMaster(modbus_tcp.TcpMaster):
        sent = False
        received = b""

        def _send(self, request):
            self.sent = True
            return super()._send(request)

        def _recv(self, expected_length=-1):
            response = super()._recv(expected_length)
            self.received = response
            return response

    return _RecordingTcpMaster


class ModbusTkClient:
    """`ModbusClient` over `modbus_tk.modbus_tcp.TcpMaster.execute`."""

    name = "modbus-tk"

    def __init__(self):
        try:
            from modbus_tk import defines, modbus_tcp
            from modbus_tk import exceptions as tk_exceptions
        except ImportError as exc:
            raise NotInstalled(f"modbus-tk is not installed: {_INSTALL}", str(exc)) from None
        self.version = installed_version("modbus_tk")
        self._defines = defines
        self._tk = tk_exceptions
        self._master_class = _master_class(modbus_tcp)
        self._master = None
        self._unit = 1
        self._timeout = 2.0

    # ------------------------------------------------------------------ connection

    def connect(self, host: str, port: int, unit: int = 1, timeout: float = 2.0) -> None:
        self.close()
        self._unit = unit
        self._timeout = timeout
        master = self._master_class(host=host, port=port, timeout_in_sec=timeout)
        try:
            master.open()
        except Exception as exc:  # noqa: BLE001 - every stack error is mapped here
            try:
                master._do_close()  # close() does nothing for a master that never opened
            except Exception:  # noqa: BLE001
                pass
            raise ConnectFailed(f"modbus-tk could not connect to {host}:{port}", f"{type(exc).__name__}: {exc}") from None
        self._master = master

    def close(self) -> None:
        master, self._master = self._master, None
        if master is not None:
            try:
                master.close()
            except Exception:  # noqa: BLE001 - closing never fails the caller
                pass

    # ------------------------------------------------------------------ the one place stack errors are mapped

    def _execute(self, function_code: int, *args, **kwargs):
        master = self._master
        if master is None:
            raise AdapterError("modbus-tk client is not connected: call connect() first")
        master.sent = False
        master.received = b""
        tk = self._tk
        try:
            return master.execute(self._unit, function_code, *args, **kwargs)
        except tk.ModbusError as exc:
            raise ModbusException(exc.get_exception_code(), function_code, str(exc)) from None
        except tk.ModbusFunctionNotSupportedError as exc:
            raise Unsupported(f"modbus-tk has no FC{function_code}", str(exc)) from None
        except TimeoutError as exc:  # socket.timeout
            raise Timeout(f"modbus-tk: no response to FC{function_code} within {self._timeout} s", str(exc) or "timed out") from None
        except OSError as exc:
            # refused: the stack's own reconnect (after draining a dead socket) failed
            if not master.sent or isinstance(exc, ConnectionRefusedError):
                raise ConnectFailed("modbus-tk could not (re)connect before sending", f"{type(exc).__name__}: {exc}") from None
            raise ConnectionLost("modbus-tk: socket error", f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - nothing of the stack's leaves the adapter
            detail = f"{type(exc).__name__}: {exc}"
            if not master.sent:  # failed while building the request
                raise Unsupported(f"modbus-tk refuses to send this FC{function_code} request", detail) from None
            if self._short_read(master.received):
                raise ConnectionLost(
                    f"modbus-tk: the peer closed the connection after {len(master.received)} bytes of the answer",
                    f"{detail}; received {master.received.hex(' ')}",
                ) from None
            raise BadResponse(f"modbus-tk rejected the response to FC{function_code}", detail) from None

    @staticmethod
    def _short_read(received: bytes) -> bool:
        """The stack returns a short answer only when `recv` saw the end of the stream."""
        if len(received) < 6:
            return True
        return len(received) < 6 + struct.unpack_from(">H", received, 4)[0]

    # ------------------------------------------------------------------ reads

    def read_coils(self, address: int, count: int) -> list[bool]:
        return [bool(b) for b in self._execute(self._defines.READ_COILS, address, count)]

    def read_discrete_inputs(self, address: int, count: int) -> list[bool]:
        return [bool(b) for b in self._execute(self._defines.READ_DISCRETE_INPUTS, address, count)]

    def read_holding_registers(self, address: int, count: int) -> list[int]:
        return list(self._execute(self._defines.READ_HOLDING_REGISTERS, address, count))

    def read_input_registers(self, address: int, count: int) -> list[int]:
        return list(self._execute(self._defines.READ_INPUT_REGISTERS, address, count))

    # ------------------------------------------------------------------ writes

    def write_coil(self, address: int, value: bool) -> None:
        self._execute(self._defines.WRITE_SINGLE_COIL, address, output_value=1 if value else 0)

    def write_register(self, address: int, value: int) -> None:
        self._execute(self._defines.WRITE_SINGLE_REGISTER, address, output_value=value)

    def write_coils(self, address: int, values: list[bool]) -> None:
        self._execute(self._defines.WRITE_MULTIPLE_COILS, address, output_value=[1 if v else 0 for v in values])

    def write_registers(self, address: int, values: list[int]) -> None:
        self._execute(self._defines.WRITE_MULTIPLE_REGISTERS, address, output_value=list(values))

    def mask_write_register(self, address: int, and_mask: int, or_mask: int) -> None:
        self._execute(self._defines.MASK_WRITE_REGISTER, address, and_mask=and_mask, or_mask=or_mask)

    def read_write_registers(self, read_address: int, read_count: int, write_address: int, values: list[int]) -> list[int]:
        return list(
            self._execute(
                self._defines.READ_WRITE_MULTIPLE_REGISTERS,
                read_address,
                read_count,
                output_value=list(values),
                write_starting_address_fc23=write_address,
            )
        )

    # ------------------------------------------------------------------ FC43 / MEI 14

    def read_device_identification(self, read_code: int = 1, object_id: int = 0) -> dict[int, bytes]:
        from ..codec.modbus.pdu_responses import ReadDeviceIdResponse, decode_response

        objects: dict[int, bytes] = {}
        asked = {object_id}
        next_id = object_id
        while True:
            raw = self._execute(self._defines.DEVICE_INFO, 0, output_value=(read_code, next_id), returns_raw=True)
            decoded = decode_response(b"\x2b" + bytes(raw))
            if not isinstance(decoded, ReadDeviceIdResponse):
                detail = f"{decoded}; bytes {bytes(raw).hex(' ')}"
                raise BadResponse("FC43/14: the answer modbus-tk returned is not a device identification", detail)
            for oid, value in decoded.objects:
                objects.setdefault(oid, value)
            if read_code == 4 or decoded.more_follows != _MORE_FOLLOWS:
                return objects
            next_id = decoded.next_object_id
            if next_id in asked:
                raise BadResponse(f"FC43/14: 'more follows' points back to object 0x{next_id:02X}", bytes(raw).hex(" "))
            asked.add(next_id)
