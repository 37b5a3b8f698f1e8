"""The Modbus TCP probe of the liveness monitor: read known points, judge the answers.

`modbus_probe(host, port, unit, checks)` returns a `harness.liveness.Probe`: each call reads
every `PointCheck` with FC 1/2/3/4 over one persistent TCP connection and says

    (OK, "")                                        every answer came and was right
    (WRONG, "FC04 @0x2: got [1, 2], expected [3, 4]")   an answer, but not the right one:
            an exception response, a transaction/unit id not echoed, a malformed frame,
            a byte count that does not fit, other values than expected
    (MISSING, "no answer within 1 s (FC04 @0x2)")   no answer: timeout, connection refused,
            connection closed or reset

The whole call (connect and all reads) is bounded by the `timeout_s` the monitor passes.  The
connection is reopened on the next call after a timeout, a close, or a reply that leaves the
stream in doubt (wrong transaction id, malformed frame, extra bytes), so a late answer never
passes for the answer to a later request.  Never raises.

`checks_from_profile(profile)` picks read-only points with known values (input registers,
discrete inputs): data no attack and no stateful write can change, so any difference is the
device's fault.  Standard library and `harness.codec` only.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .codec.modbus import (
    ExceptionResponse,
    Malformed,
    ReadCoilsRequest,
    ReadDiscreteInputsRequest,
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
    TcpFramer,
    decode_response,
    encode_pdu,
    encode_tcp,
    unpack_bits,
)
from .codec.modbus import datatypes
from .liveness import MISSING, OK, WRONG, Probe, answers_within, take_in_turn

# table -> (read request type, most items one read may ask for: Application Protocol §6.1-6.4)
_READS = {
    "coils": (ReadCoilsRequest, 2000),
    "discrete_inputs": (ReadDiscreteInputsRequest, 2000),
    "holding_registers": (ReadHoldingRegistersRequest, 125),
    "input_registers": (ReadInputRegistersRequest, 125),
}
READ_ONLY_TABLES = ("input_registers", "discrete_inputs")
_VALUES_SHOWN = 8  # values quoted in a WRONG detail


@dataclass(frozen=True)
class PointCheck:
    """Read `count` items of `table` from `address`; when `expected` is given the values must
    equal it (register words, or 0/1 for bits)."""

    table: str
    address: int
    count: int
    expected: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        table = getattr(self.table, "value", self.table)  # accepts the codec's Table enum too
        if table not in _READS:
            raise ValueError(f"PointCheck table must be one of {', '.join(_READS)}; got {self.table!r}")
        object.__setattr__(self, "table", table)
        limit = _READS[table][1]
        if not 1 <= self.count <= limit:
            raise ValueError(f"PointCheck count must be 1..{limit} for {table}; got {self.count!r}")
        if not 0 <= self.address <= 0xFFFF or self.address + self.count > 0x10000:
            raise ValueError(f"PointCheck address {self.address!r} (+{self.count}) is outside 0..65535")
        if self.expected is not None:
            expected = tuple(int(v) for v in self.expected)
            if len(expected) != self.count:
                raise ValueError(f"PointCheck expected has {len(expected)} values but count is {self.count}; give one per item")
            object.__setattr__(self, "expected", expected)

    @property
    def function_code(self) -> int:
        return _READS[self.table][0].function_code

    @property
    def is_bits(self) -> bool:
        return self.table in ("coils", "discrete_inputs")

    @property
    def label(self) -> str:
        return f"FC{self.function_code:02d} @{self.address}x{self.count}"


class _Missing(Exception):
    """No answer (internal: becomes a MISSING result)."""


class ModbusProbe:
    """A `Probe` over one persistent Modbus TCP connection; see the module docstring."""

    def __init__(self, host: str, port: int, unit: int, checks: Sequence[PointCheck]):
        if not checks:
            raise ValueError("modbus_probe needs at least one PointCheck to read")
        if not 0 <= unit <= 255:
            raise ValueError(f"unit id must be 0..255, got {unit!r}")
        self.host = host
        self.port = int(port)
        self.unit = unit
        self.checks = tuple(checks)
        self._sock: socket.socket | None = None
        self._tid = 0
        self._requests = [(check, encode_pdu(_READS[check.table][0](check.address, check.count))) for check in self.checks]

    def __call__(self, timeout_s: float) -> tuple[str, str]:
        deadline = time.monotonic() + timeout_s
        try:
            for check, pdu in self._requests:
                problem = self._read(check, pdu, deadline, timeout_s)
                if problem is not None:
                    return WRONG, problem
            return OK, ""
        except _Missing as exc:
            self.close()
            return MISSING, str(exc)
        except Exception as exc:  # our own bug; record it rather than kill the monitor
            self.close()
            return MISSING, f"the probe failed: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # ------------------------------------------------------------------ I/O

    def _connection(self, deadline: float, timeout_s: float) -> socket.socket:
        if self._sock is not None:
            return self._sock
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Missing(f"no answer within {timeout_s:g} s")
        try:
            sock = socket.create_connection((self.host, self.port), timeout=remaining)
        except ConnectionRefusedError:
            raise _Missing(f"connection refused by {self.host}:{self.port}") from None
        except TimeoutError:
            raise _Missing(f"could not connect to {self.host}:{self.port} within {timeout_s:g} s") from None
        except OSError as exc:
            raise _Missing(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._sock = sock
        return sock

    def _read(self, check: PointCheck, pdu: bytes, deadline: float, timeout_s: float) -> str | None:
        """One read; None when right, else what was wrong.  Raises _Missing when no answer."""
        sock = self._connection(deadline, timeout_s)
        self._tid = self._tid % 0xFFFF + 1
        tid = self._tid
        framer = TcpFramer()
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(encode_tcp(tid, self.unit, pdu))
            while True:
                frame = framer.next_frame()
                if frame is not None:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                data = sock.recv(4096)
                if not data:
                    got = len(framer.pending())
                    partial = f" after {got} bytes of a reply" if got else ""
                    raise _Missing(f"connection closed by the device{partial} ({check.label})")
                framer.feed(data)
        except TimeoutError:
            got = len(framer.pending())
            partial = f", {got} bytes of a reply came" if got else ""
            raise _Missing(f"no answer within {timeout_s:g} s ({check.label}{partial})") from None
        except OSError as exc:
            raise _Missing(f"connection lost ({check.label}): {exc.strerror or exc}") from None
        problem = self._judge_frame(check, tid, frame)
        if problem is None and framer.pending():
            problem = f"{check.label}: {len(framer.pending())} unexpected bytes after the reply"
        if problem is not None and (isinstance(frame, Malformed) or frame.transaction_id != tid or framer.pending()):
            self.close()  # the stream is in doubt: start afresh next time
        return problem

    # ------------------------------------------------------------------ judgement (no I/O)

    def _judge_frame(self, check: PointCheck, tid: int, frame) -> str | None:
        label = check.label
        if isinstance(frame, Malformed):
            return f"{label}: malformed reply: {frame}"
        if frame.protocol_id != 0:
            return f"{label}: protocol id 0x{frame.protocol_id:04X} in the reply, not 0"
        if frame.transaction_id != tid:
            return f"{label}: tid mismatch: reply has transaction id {frame.transaction_id}, request had {tid}"
        if frame.unit_id != self.unit:
            return f"{label}: unit id {frame.unit_id} in the reply, request had {self.unit}"
        return judge_response(check, frame.pdu)


def judge_response(check: PointCheck, pdu: bytes) -> str | None:
    """None when `pdu` is the right answer to `check`, else what is wrong (pure)."""
    label = check.label
    response = decode_response(pdu)
    if isinstance(response, Malformed):
        return f"{label}: malformed reply: {response}"
    if isinstance(response, ExceptionResponse):
        if response.function_code != check.function_code:
            return f"{label}: exception {response.exception_code:02d} for function code {response.function_code:02d}"
        return f"{label}: exception {response.exception_code:02d}"
    if response.function_code != check.function_code:
        return f"{label}: reply has function code {response.function_code:02d}"
    if check.is_bits:
        need = (check.count + 7) // 8
        if len(response.data) != need:
            return f"{label}: byte count {len(response.data)} for {check.count} bits (expected {need})"
        values = tuple(int(b) for b in unpack_bits(response.data, check.count))
    else:
        values = response.values
        if len(values) != check.count:
            return f"{label}: byte count {2 * len(values)} for {check.count} registers (expected {2 * check.count})"
    if check.expected is not None and values != check.expected:
        return f"{label}: got {_short(values)}, expected {_short(check.expected)}"
    return None


def _short(values: tuple[int, ...]) -> str:
    if len(values) <= _VALUES_SHOWN:
        return str(list(values))
    return "[" + ", ".join(map(str, values[:_VALUES_SHOWN])) + f", ... ({len(values)} values)]"


def modbus_probe(host: str, port: int, unit: int, checks: Sequence[PointCheck]) -> Probe:
    """A liveness probe reading `checks` from the Modbus TCP device at host:port, unit `unit`."""
    return ModbusProbe(host, port, unit, checks)


def checks_from_profile(profile, limit: int = 3, *, with_values: bool = True) -> list[PointCheck]:
    """Up to `limit` read-only points with known values from a device profile.

    Input registers and discrete inputs only (Modbus cannot write them), taken in turn from
    each table so both kinds of read are watched.  `with_values=False` checks only that the
    answers are well-formed: for a real device whose measurements move.
    """
    per_table: dict[str, list[PointCheck]] = {t: [] for t in READ_ONLY_TABLES}
    for point in profile.points:
        table = getattr(point.table, "value", point.table)
        if table not in per_table or point.value is None:
            continue
        values = point.value if point.array else [point.value]
        if table == "discrete_inputs":
            words = [1 if v else 0 for v in values]
        else:
            words = []
            for v in values:
                words += datatypes.encode(point.type, v, point.word_order, point.length)
        if len(words) > _READS[table][1]:
            continue
        per_table[table].append(PointCheck(table, point.address, len(words), tuple(words) if with_values else None))
    return take_in_turn(list(per_table.values()), limit)


def checks_to_block(checks: Sequence[PointCheck]) -> list[dict]:
    """The checks as a replay block stores them (JSON)."""
    return [{"table": c.table, "address": c.address, "count": c.count,
             "expected": list(c.expected) if c.expected is not None else None} for c in checks]


def replay_alive(host: str, port: int, unit: int, block: dict, timeout_s: float, within_s: float) -> bool | None:
    """Does the device answer the replay block's checks within `within_s` (each read bounded by
    `timeout_s` too)?  None when the block has no checks.  For `harness replay` (protocol
    "modbus")."""
    checks = [PointCheck(c["table"], c["address"], c["count"], tuple(c["expected"]) if c.get("expected") is not None else None)
              for c in block.get("checks") or []]
    if not checks:
        return None
    probe = modbus_probe(host, port, unit, checks)
    try:
        return answers_within(probe, max(within_s, timeout_s), timeout_s, pause_s=0.05)
    finally:
        probe.close()


__all__ = ["ModbusProbe", "PointCheck", "checks_from_profile", "checks_to_block", "judge_response", "modbus_probe",
           "replay_alive"]
