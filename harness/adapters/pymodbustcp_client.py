"""The pyModbusTCP client stack (0.3.1, `pyModbusTCP.client.ModbusClient`) behind the `ModbusClient` interface.

pyModbusTCP is imported when a `PyModbusTcpClient` is made, never when this module is imported.
What the adapter knows about the stack (read in the installed 0.3.1 sources and seen against the
bundled simulator):

- Requests do not raise: a failed read returns None and a failed write False, and the reason is
  left in `last_error` (MB_CONNECT_ERR, MB_SEND_ERR, MB_RECV_ERR, MB_TIMEOUT_ERR,
  MB_EXCEPT_ERR, MB_SOCK_CLOSE_ERR, ...) and, for an exception response, the code in
  `last_except`.  MB_RECV_ERR covers both "the peer closed" ("recv error") and every rejected
  answer ("MBAP checking error", "rx byte count mismatch", "PDU length is too short", "server
  reply does not match the request"); that text only goes to the debug log, so the adapter
  uses a subclass that keeps the stack's internal error (`_req_except_handler`) to tell them
  apart: "recv error" -> `ConnectionLost`, the others -> `BadResponse`.
- The MBAP header of the answer is checked (transaction id, protocol id, unit id, length <
  256); a mismatch closes the socket.  A timeout closes the socket too, so a late answer never
  reaches the next request.  The answer's function code is not compared with the request's.
- Arguments are checked before sending with a `ValueError` (1..2000 bits, 1..125 registers,
  1..1968 coils, 1..123 registers, 1..121 for the FC23 write part, no address past 65535): the
  adapter reports those as `Unsupported` (the stack will not send that request).
- `auto_open` is left on (the stack's default): after the socket was closed by an error, the
  next request reconnects by itself.
- There is no FC22 (Mask Write Register) API: `Unsupported` (only `custom_request`, which sends
  a raw PDU and returns the raw answer, would reach it, and that would not be the stack's
  implementation of the function).  FC23 is `write_read_multiple_registers` and FC43/14 is
  `read_device_identification`, which answers one transaction; the adapter follows "more
  follows" itself for the stream read codes.
- Each socket `recv` has the full timeout, so a device trickling bytes can stretch one call.
"""

from __future__ import annotations


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

_INSTALL = "pip install -c constraints.txt pyModbusTCP"
_MORE_FOLLOWS = 0xFF


def _client_class(base):
    """`ModbusClient` that keeps the last internal error (its message is otherwise only logged)."""

    class _RecordingModbusClient(base):
        last_internal_error = None

        def _req_except_handler(self, _except):
            self.last_internal_error = _except
            return super()._req_except_handler(_except)

    return _RecordingModbusClient


class PyModbusTcpClient:
    """`ModbusClient` over `pyModbusTCP.client.ModbusClient`."""

    name = "pyModbusTCP"

    def __init__(self):
        try:
            from pyModbusTCP import client as pmt_client
            from pyModbusTCP import constants
        except ImportError as exc:
            raise NotInstalled(f"pyModbusTCP is not installed: {_INSTALL}", str(exc)) from None
        self.version = installed_version("pyModbusTCP")
        self._c = constants
        self._client_class = _client_class(pmt_client.ModbusClient)
        self._client = None
        self._timeout = 2.0

    # ------------------------------------------------------------------ connection

    def connect(self, host: str, port: int, unit: int = 1, timeout: float = 2.0) -> None:
        self.close()
        self._timeout = timeout
        try:
            client = self._client_class(host=host, port=port, unit_id=unit, timeout=timeout, auto_open=True, auto_close=False)
        except (TypeError, ValueError) as exc:  # the constructor validates host, port, unit and timeout
            raise ConnectFailed(f"pyModbusTCP refuses these connection parameters ({host}:{port})", str(exc)) from None
        try:
            ok = client.open()
        except Exception as exc:  # noqa: BLE001 - e.g. a name that does not resolve (socket.gaierror)
            raise ConnectFailed(f"pyModbusTCP could not connect to {host}:{port}", f"{type(exc).__name__}: {exc}") from None
        if not ok:
            raise ConnectFailed(f"pyModbusTCP could not connect to {host}:{port}", self._error_text(client))
        self._client = client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing never fails the caller
                pass

    # ------------------------------------------------------------------ the one place stack errors are mapped

    def _error_text(self, client) -> str:
        internal = client.last_internal_error
        message = getattr(internal, "message", None)
        text = f"last_error={client.last_error} ({client.last_error_as_txt})"
        if client.last_error == self._c.MB_EXCEPT_ERR:
            text += f", last_except={client.last_except} ({client.last_except_as_txt})"
        if message:
            text += f": {message}"
        return text

    def _call(self, function_code: int, method: str, *args):
        client = self._client
        if client is None:
            raise AdapterError("pyModbusTCP client is not connected: call connect() first")
        client.last_internal_error = None
        try:
            result = getattr(client, method)(*args)
        except ValueError as exc:  # argument checks, before anything is sent
            raise Unsupported(f"pyModbusTCP refuses to send this FC{function_code} request", str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the stack is meant not to raise; if it does, map it
            raise BadResponse(f"pyModbusTCP failed on FC{function_code}", f"{type(exc).__name__}: {exc}") from None
        if result is not None and result is not False:
            return result
        c = self._c
        error = client.last_error
        detail = self._error_text(client)
        if error == c.MB_EXCEPT_ERR:
            raise ModbusException(int(client.last_except), function_code, detail)
        if error == c.MB_TIMEOUT_ERR:
            raise Timeout(f"pyModbusTCP: no response to FC{function_code} within {self._timeout} s", detail)
        if error in (c.MB_CONNECT_ERR, c.MB_RESOLVE_ERR):
            raise ConnectFailed("pyModbusTCP could not (re)connect", detail)
        if error in (c.MB_SEND_ERR, c.MB_SOCK_CLOSE_ERR):
            raise ConnectionLost(f"pyModbusTCP could not send FC{function_code}", detail)
        if error == c.MB_RECV_ERR and getattr(client.last_internal_error, "message", "") == "recv error":
            raise ConnectionLost(f"pyModbusTCP: the connection closed during FC{function_code}", detail)
        if error == c.MB_NO_ERR:
            raise BadResponse(f"pyModbusTCP returned {result!r} for FC{function_code} without an error code", detail)
        raise BadResponse(f"pyModbusTCP rejected the response to FC{function_code}", detail)

    # ------------------------------------------------------------------ reads

    def read_coils(self, address: int, count: int) -> list[bool]:
        return [bool(b) for b in self._call(1, "read_coils", address, count)]

    def read_discrete_inputs(self, address: int, count: int) -> list[bool]:
        return [bool(b) for b in self._call(2, "read_discrete_inputs", address, count)]

    def read_holding_registers(self, address: int, count: int) -> list[int]:
        return list(self._call(3, "read_holding_registers", address, count))

    def read_input_registers(self, address: int, count: int) -> list[int]:
        return list(self._call(4, "read_input_registers", address, count))

    # ------------------------------------------------------------------ writes

    def write_coil(self, address: int, value: bool) -> None:
        self._call(5, "write_single_coil", address, bool(value))

    def write_register(self, address: int, value: int) -> None:
        self._call(6, "write_single_register", address, value)

    def write_coils(self, address: int, values: list[bool]) -> None:
        self._call(15, "write_multiple_coils", address, [bool(v) for v in values])

    def write_registers(self, address: int, values: list[int]) -> None:
        self._call(16, "write_multiple_registers", address, list(values))

    def mask_write_register(self, address: int, and_mask: int, or_mask: int) -> None:
        raise Unsupported("pyModbusTCP 0.3.1 has no FC22 (Mask Write Register) API")

    def read_write_registers(self, read_address: int, read_count: int, write_address: int, values: list[int]) -> list[int]:
        return list(self._call(23, "write_read_multiple_registers", write_address, list(values), read_address, read_count))

    # ------------------------------------------------------------------ FC43 / MEI 14

    def read_device_identification(self, read_code: int = 1, object_id: int = 0) -> dict[int, bytes]:
        objects: dict[int, bytes] = {}
        asked = {object_id}
        next_id = object_id
        while True:
            response = self._call(43, "read_device_identification", read_code, next_id)
            for oid, value in response.objects_by_id.items():
                objects.setdefault(int(oid), bytes(value))
            if read_code == 4 or response.more_follows != _MORE_FOLLOWS:
                return objects
            next_id = int(response.next_object_id)
            if next_id in asked:
                raise BadResponse(f"FC43/14: 'more follows' points back to object 0x{next_id:02X}")
            asked.add(next_id)
