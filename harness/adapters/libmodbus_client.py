"""libmodbus (the C library, Debian ``libmodbus5``) as a Modbus TCP client stack, through ctypes.

`LibmodbusClient` loads ``libmodbus.so.5`` (found with ``ctypes.util.find_library("modbus")``)
the first time a client is made and drives the library's synchronous client API:
``modbus_new_tcp`` (``modbus_new_tcp_pi`` when the host is not an IPv4 literal),
``modbus_set_slave``, ``modbus_set_response_timeout``, ``modbus_connect``, one ``modbus_*`` call
per operation, ``modbus_close`` + ``modbus_free``.  Every prototype is declared (argtypes and
restype), the library is loaded with ``use_errno=True`` and failures are read from errno the
way libmodbus reports them:

* a Modbus exception response sets errno = MODBUS_ENOBASE (112345678) + the exception code
  (EMBXILFUN, EMBXILADD, ...): `ModbusException(code, function_code)`;
* ETIMEDOUT -> `Timeout`; ECONNREFUSED (and the other connect errors) at connect ->
  `ConnectFailed`; ECONNRESET / EPIPE / ENOTCONN / EBADF -> `ConnectionLost`;
* EMBBADDATA / EMBBADCRC / EMBBADEXC / EMBUNKEXC / EMBBADSLAVE -> `BadResponse`;
* EMBMDATA ("Too many data") and EINVAL are raised by libmodbus 3.1.6 *before anything is
  sent* (a read of more than 125 registers / 2000 bits, a write of more than 123 registers /
  1968 bits, 121 for FC23): they are a plain `AdapterError` saying so, not a bad response.
  The message of every error is ``modbus_strerror(errno)``, kept in `detail`.

Quirks of libmodbus 3.1.6 as shipped (nothing here works around them):

* no Read Device Identification API: `read_device_identification` raises `Unsupported` (the
  library's ``modbus_send_raw_request`` could send FC43, but libmodbus would not parse the
  answer, so it would be our codec speaking, not libmodbus);
* it checks the MBAP transaction id and protocol id of a response (``EMBBADDATA`` on a
  mismatch), the byte count / echo of each function, and that an exception answers the
  function that was asked; it does not flush or reconnect after an error (error recovery is
  left at MODBUS_ERROR_RECOVERY_NONE), so the next request after a late answer can see it;
* the response timeout bounds the wait for the first byte *and* the TCP connect; between
  bytes the byte timeout (default 0.5 s) applies, so a reply that stalls mid-frame takes up to
  timeout + 0.5 s;
* FC23 (``modbus_write_and_read_registers``) takes the write part first in its arguments,
  the wire order (read first) is the spec's.

Calls release the GIL (ctypes.CDLL) and block for at most the timeouts above.  The context is
freed on `close()` whatever happened before, and when the object is garbage-collected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_mod
import ipaddress
import threading

from .errors import AdapterError, BadResponse, ConnectFailed, ConnectionLost, ModbusException, NotInstalled, Timeout, Unsupported

INSTALL_HINT = "install the Debian package libmodbus5 (`apt-get install -y libmodbus5`, scripts/install-system-packages.sh)"

MODBUS_ENOBASE = 112345678
MODBUS_EXCEPTION_MAX = 12  # codes 1..11 map to EMBX*; libmodbus gives EMBBADEXC for others
EMBXGTAR = MODBUS_ENOBASE + 11
EMBBADCRC = EMBXGTAR + 1
EMBBADDATA = EMBXGTAR + 2
EMBBADEXC = EMBXGTAR + 3
EMBUNKEXC = EMBXGTAR + 4
EMBMDATA = EMBXGTAR + 5
EMBBADSLAVE = EMBXGTAR + 6
_BAD_RESPONSE = {EMBBADCRC, EMBBADDATA, EMBBADEXC, EMBUNKEXC, EMBBADSLAVE}
_LOST = {errno_mod.ECONNRESET, errno_mod.EPIPE, errno_mod.ENOTCONN, errno_mod.EBADF, errno_mod.ECONNABORTED}
_REFUSED_BEFORE_SENDING = {EMBMDATA, errno_mod.EINVAL}

def _u16(value: int, what: str) -> int:
    # ctypes wraps out-of-range integers silently: a wrong value must not reach the wire
    if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} must be an integer 0..65535, got {value!r}")
    return value


_lib = None
_lib_lock = threading.Lock()
_version = ""


def _declare(lib) -> None:
    c_int, c_void_p, c_char_p, c_uint32 = ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32
    u8p, u16p = ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(ctypes.c_uint16)
    protos = {
        "modbus_new_tcp": (c_void_p, [c_char_p, c_int]),
        "modbus_new_tcp_pi": (c_void_p, [c_char_p, c_char_p]),
        "modbus_set_slave": (c_int, [c_void_p, c_int]),
        "modbus_set_response_timeout": (c_int, [c_void_p, c_uint32, c_uint32]),
        "modbus_connect": (c_int, [c_void_p]),
        "modbus_close": (None, [c_void_p]),
        "modbus_free": (None, [c_void_p]),
        "modbus_strerror": (c_char_p, [c_int]),
        "modbus_read_bits": (c_int, [c_void_p, c_int, c_int, u8p]),
        "modbus_read_input_bits": (c_int, [c_void_p, c_int, c_int, u8p]),
        "modbus_read_registers": (c_int, [c_void_p, c_int, c_int, u16p]),
        "modbus_read_input_registers": (c_int, [c_void_p, c_int, c_int, u16p]),
        "modbus_write_bit": (c_int, [c_void_p, c_int, c_int]),
        "modbus_write_register": (c_int, [c_void_p, c_int, ctypes.c_uint16]),  # 3.1.6: const uint16_t value
        "modbus_write_bits": (c_int, [c_void_p, c_int, c_int, u8p]),
        "modbus_write_registers": (c_int, [c_void_p, c_int, c_int, u16p]),
        "modbus_mask_write_register": (c_int, [c_void_p, c_int, ctypes.c_uint16, ctypes.c_uint16]),
        "modbus_write_and_read_registers": (c_int, [c_void_p, c_int, c_int, u16p, c_int, c_int, u16p]),
    }
    for name, (restype, argtypes) in protos.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def load_library():
    """The loaded libmodbus (once per process) and its version; `NotInstalled` if missing."""
    global _lib, _version
    with _lib_lock:
        if _lib is not None:
            return _lib, _version
        path = ctypes.util.find_library("modbus")
        candidates = [p for p in (path, "libmodbus.so.5") if p]
        last: Exception | None = None
        for candidate in candidates:
            try:
                lib = ctypes.CDLL(candidate, use_errno=True)
                break
            except OSError as exc:
                last = exc
        else:
            raise NotInstalled(f"libmodbus (libmodbus.so.5) is not installed; {INSTALL_HINT}", str(last or "not found"))
        try:
            _declare(lib)
        except AttributeError as exc:
            raise NotInstalled(f"the installed libmodbus lacks a function the adapter needs ({exc}); {INSTALL_HINT}") from None
        try:
            parts = [ctypes.c_uint.in_dll(lib, f"libmodbus_version_{p}").value for p in ("major", "minor", "micro")]
            _version = ".".join(str(p) for p in parts)
        except ValueError:
            _version = "unknown"
        _lib = lib
        return _lib, _version


class LibmodbusClient:
    """A `ModbusClient` (harness.adapters.modbus) on libmodbus's synchronous TCP client."""

    name = "libmodbus"

    def __init__(self) -> None:
        self._lib, self.version = load_library()
        self._ctx: int | None = None
        self._timeout = 2.0

    # ------------------------------------------------------------------ errors
    def _strerror(self, code: int) -> str:
        raw = self._lib.modbus_strerror(code)
        return raw.decode("utf-8", errors="replace") if raw else f"errno {code}"

    def _error(self, what: str, function_code: int | None = None, connecting: bool = False) -> AdapterError:
        code = ctypes.get_errno()
        text = self._strerror(code)
        detail = f"{what}: {text} (errno {code})"
        if MODBUS_ENOBASE < code < MODBUS_ENOBASE + MODBUS_EXCEPTION_MAX:
            return ModbusException(code - MODBUS_ENOBASE, function_code, detail)
        if code == errno_mod.ETIMEDOUT or (connecting and code == errno_mod.EINPROGRESS):
            # a connect that does not complete within the response timeout leaves EINPROGRESS
            if connecting:
                return ConnectFailed(f"libmodbus: connect timed out after {self._timeout:g} s", detail)
            return Timeout(f"libmodbus: no answer within {self._timeout:g} s", detail)
        if code in _BAD_RESPONSE:
            return BadResponse(f"libmodbus rejected the answer: {text}", detail)
        if connecting:
            return ConnectFailed(f"libmodbus could not connect: {text}", detail)
        if code in _LOST:
            return ConnectionLost(f"libmodbus: connection lost: {text}", detail)
        if code in _REFUSED_BEFORE_SENDING:
            return AdapterError(f"libmodbus refused the request before sending it: {text}", detail)
        return AdapterError(f"libmodbus: {text}", detail)

    def _context(self) -> int:
        if self._ctx is None:
            raise ConnectionLost("libmodbus: not connected (call connect() first)")
        return self._ctx

    def _check(self, rc: int, what: str, function_code: int) -> int:
        if rc == -1:
            raise self._error(what, function_code)
        return rc

    # ------------------------------------------------------------------ connection
    def connect(self, host: str, port: int, unit: int = 1, timeout: float = 2.0) -> None:
        self.close()
        self._timeout = timeout
        lib = self._lib
        try:
            is_ipv4 = ipaddress.ip_address(host).version == 4
        except ValueError:
            is_ipv4 = False
        ctypes.set_errno(0)
        if is_ipv4:
            ctx = lib.modbus_new_tcp(host.encode("ascii"), int(port))
        else:  # names and IPv6: the protocol-independent constructor resolves them
            ctx = lib.modbus_new_tcp_pi(host.encode("utf-8"), str(int(port)).encode("ascii"))
        if not ctx:
            raise self._error(f"modbus_new_tcp({host!r}, {port})", connecting=True)
        self._ctx = ctx
        try:
            if lib.modbus_set_slave(ctx, int(unit)) == -1:
                raise self._error(f"modbus_set_slave({unit})", connecting=True)
            micros = max(int(round(timeout * 1_000_000)), 1)
            if lib.modbus_set_response_timeout(ctx, micros // 1_000_000, micros % 1_000_000) == -1:
                raise self._error(f"modbus_set_response_timeout({timeout})", connecting=True)
            if lib.modbus_connect(ctx) == -1:
                raise self._error(f"modbus_connect({host}:{port})", connecting=True)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx:
            self._lib.modbus_close(ctx)  # safe on a context that never connected (s == -1)
            self._lib.modbus_free(ctx)

    def __del__(self) -> None:  # a forgotten client must not leak its socket
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __enter__(self) -> LibmodbusClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ reads
    def _read_bits(self, fn, fc: int, address: int, count: int) -> list[bool]:
        buf = (ctypes.c_uint8 * max(count, 1))()
        rc = self._check(fn(self._context(), address, count, buf), f"{fn.__name__}({address}, {count})", fc)
        return [bool(b) for b in buf[:rc]]

    def _read_registers(self, fn, fc: int, address: int, count: int) -> list[int]:
        buf = (ctypes.c_uint16 * max(count, 1))()
        rc = self._check(fn(self._context(), address, count, buf), f"{fn.__name__}({address}, {count})", fc)
        return list(buf[:rc])

    def read_coils(self, address: int, count: int) -> list[bool]:
        return self._read_bits(self._lib.modbus_read_bits, 1, address, count)

    def read_discrete_inputs(self, address: int, count: int) -> list[bool]:
        return self._read_bits(self._lib.modbus_read_input_bits, 2, address, count)

    def read_holding_registers(self, address: int, count: int) -> list[int]:
        return self._read_registers(self._lib.modbus_read_registers, 3, address, count)

    def read_input_registers(self, address: int, count: int) -> list[int]:
        return self._read_registers(self._lib.modbus_read_input_registers, 4, address, count)

    # ------------------------------------------------------------------ writes
    def write_coil(self, address: int, value: bool) -> None:
        self._check(self._lib.modbus_write_bit(self._context(), address, 1 if value else 0), f"modbus_write_bit({address})", 5)

    def write_register(self, address: int, value: int) -> None:
        self._check(self._lib.modbus_write_register(self._context(), address, _u16(value, "value")), f"modbus_write_register({address})", 6)

    def write_coils(self, address: int, values: list[bool]) -> None:
        buf = (ctypes.c_uint8 * max(len(values), 1))(*[1 if v else 0 for v in values])
        self._check(self._lib.modbus_write_bits(self._context(), address, len(values), buf), f"modbus_write_bits({address}, {len(values)})", 15)

    def write_registers(self, address: int, values: list[int]) -> None:
        buf = (ctypes.c_uint16 * max(len(values), 1))(*[_u16(v, "value") for v in values])
        self._check(
            self._lib.modbus_write_registers(self._context(), address, len(values), buf), f"modbus_write_registers({address}, {len(values)})", 16
        )

    def mask_write_register(self, address: int, and_mask: int, or_mask: int) -> None:
        self._check(
            self._lib.modbus_mask_write_register(self._context(), address, _u16(and_mask, "and_mask"), _u16(or_mask, "or_mask")), f"modbus_mask_write_register({address})", 22
        )

    def read_write_registers(self, read_address: int, read_count: int, write_address: int, values: list[int]) -> list[int]:
        src = (ctypes.c_uint16 * max(len(values), 1))(*[_u16(v, "value") for v in values])
        dest = (ctypes.c_uint16 * max(read_count, 1))()
        rc = self._check(
            self._lib.modbus_write_and_read_registers(self._context(), write_address, len(values), src, read_address, read_count, dest),
            f"modbus_write_and_read_registers(write {write_address}+{len(values)}, read {read_address}+{read_count})",
            23,
        )
        return list(dest[:rc])

    def read_device_identification(self, read_code: int = 1, object_id: int = 0) -> dict[int, bytes]:
        raise Unsupported(f"libmodbus {self.version} has no Read Device Identification (FC43/14) API")
