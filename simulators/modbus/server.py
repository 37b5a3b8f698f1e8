"""Modbus TCP server for the reference simulator: asyncio Protocol API, uvloop when installed.

MBAP handling follows the MODBUS Messaging on TCP/IP Implementation Guide V1.0b:

- transaction id and unit id are copied into the response, protocol id 0, length = PDU + 1
  (§3.1.3, §4.4.2.5);
- a protocol id other than 0: "the indication is simply discarded" (§4.4.2.2), no answer, the
  connection stays open;
- a length field outside 2..254 (unit id + 1..253 PDU bytes, Application Protocol §4.1): the
  frame boundary is lost and the stream cannot be resynchronised, so the connection is closed
  (after answering the requests before it);
- a unit id the profile does not list: no answer (the device is not that unit);
- requests split over TCP segments are reassembled, several requests in one segment
  (pipelining, §4.2.1.1 "several MODBUS transactions can be activated simultaneously") are all
  answered, and the answers to one `data_received` batch leave in one `transport.write`.

Nothing a peer sends can crash the server: a failing request answers exception 04, and any
other error closes that one connection and is logged.  A peer that sends without reading
gets back-pressure (reading pauses while the write buffer is full).
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import logging
import socket
import struct
import time
import threading
from collections.abc import Sequence
from pathlib import Path

from harness.codec.modbus.constants import MBAP_HEADER_SIZE, MBAP_MAX_LENGTH, MBAP_MIN_LENGTH
from harness.profile import Profile, load_profile

from .datastore import DataStore
from .engine import ModbusEngine, exception_pdu
from .faults import WRITE_FUNCTION_CODES, Fault, parse_fault

log = logging.getLogger("simulators.modbus")

# A connection storm opens hundreds of connections at once; the default backlog (100) would
# make the kernel drop SYNs and the storm measure its own retries.
LISTEN_BACKLOG = 1024
_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
_LENGTH = struct.Struct(">H")
_KEEP_OPEN, _CLOSE_NOW, _CLOSE_LATER = 0, 1, 2  # what a fault does to the connection


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is importable (about 2x the throughput), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _Connection(asyncio.Protocol):
    """One client connection: MBAP framing around the engine, with or without faults."""

    def __init__(self, simulator: ModbusSimulator):
        self.simulator = simulator
        self.handlers = simulator.engine.handlers
        self.unit_ok = simulator.unit_ok
        self.transport: asyncio.Transport | None = None
        self.rx = bytearray()  # an incomplete frame carried over to the next data_received
        self.closing = False
        self.peer = "?"
        # delayed answers: heap of (due time, sequence, bytes, close afterwards)
        self.delayed: list[tuple[float, int, bytes, bool]] = []
        self.delayed_seq = 0
        self.timer: asyncio.TimerHandle | None = None
        if simulator.faults:
            self.data_received = self._data_received_with_faults  # type: ignore[method-assign]

    # ------------------------------------------------------------------ connection events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.write = transport.write  # type: ignore[attr-defined]
        self.peer = str(transport.get_extra_info("peername"))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass
        self.simulator.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.simulator.connections.discard(self)

    def pause_writing(self) -> None:
        try:
            self.transport.pause_reading()
        except RuntimeError:  # already closing
            pass

    def resume_writing(self) -> None:
        try:
            self.transport.resume_reading()
        except RuntimeError:
            pass

    def _fail(self, where: str) -> None:
        log.exception("modbus connection %s: %s; closing it", self.peer, where)
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _bad_length(self, length: int) -> None:
        log.info("modbus connection %s: MBAP length %d outside %d..%d; closing it", self.peer, length, MBAP_MIN_LENGTH, MBAP_MAX_LENGTH)
        self.closing = True
        self.transport.close()

    # ------------------------------------------------------------------ fast path (no faults)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            rx = self.rx
            if rx:
                rx += data
                buf = rx
            else:
                buf = data
            n = len(buf)
            pos = 0
            out = bytearray()
            handlers = self.handlers
            unit_ok = self.unit_ok
            unpack = _MBAP.unpack_from
            pack_length = _LENGTH.pack_into
            while n - pos >= MBAP_HEADER_SIZE:
                _tid, protocol, length, unit = unpack(buf, pos)
                if length < MBAP_MIN_LENGTH or length > MBAP_MAX_LENGTH:
                    if out:
                        self.write(out)
                    self._bad_length(length)
                    return
                end = pos + 6 + length
                if end > n:
                    break
                if protocol == 0 and unit_ok[unit]:
                    mark = len(out)
                    out += buf[pos : pos + MBAP_HEADER_SIZE]  # tid, protocol 0, length (set below), unit
                    start = pos + MBAP_HEADER_SIZE
                    try:
                        handlers[buf[start]](out, buf, start, end)
                    except Exception:
                        log.exception("request %s failed", bytes(buf[start:end]).hex(" "))
                        del out[mark + MBAP_HEADER_SIZE :]
                        out += exception_pdu(buf[start], 0x04)
                    pack_length(out, mark + 4, len(out) - mark - 6)
                pos = end
            if rx:
                del rx[:pos]
            elif pos < n:
                rx += buf[pos:]
            if out:
                self.write(out)
        except Exception:
            self._fail("unexpected error")

    # ------------------------------------------------------------------ fault path

    def _data_received_with_faults(self, data: bytes) -> None:
        try:
            if self.closing or self.simulator.hung():
                return
            rx = self.rx
            rx += data
            n = len(rx)
            pos = 0
            out = bytearray()
            close = _KEEP_OPEN
            while n - pos >= MBAP_HEADER_SIZE:
                tid, protocol, length, unit = _MBAP.unpack_from(rx, pos)
                if length < MBAP_MIN_LENGTH or length > MBAP_MAX_LENGTH:
                    if out:
                        self.write(out)
                    self.simulator.hang_if_faulted("hang-on-bad-length")
                    self._bad_length(length)
                    return
                end = pos + 6 + length
                if end > n:
                    break
                request = bytes(rx[pos + MBAP_HEADER_SIZE : end])
                pos = end
                if protocol != 0 or not self.unit_ok[unit]:
                    continue
                close = self._answer_with_faults(out, tid, unit, request)
                if close:  # close-mid-reply: whatever follows in the stream is not answered
                    break
            del rx[:pos]
            if out:
                self.write(out)
            if close == _CLOSE_NOW:
                self.transport.close()
        except Exception:
            self._fail("unexpected error")

    def _answer_with_faults(self, out: bytearray, tid: int, unit: int, request: bytes) -> int:
        """Answer one request as the active faults dictate; says whether and when to close."""
        fc = request[0]
        hits = [f for f in self.simulator.faults if f.applies(fc)]
        kinds = {f.kind: f for f in hits}
        if "exception" in kinds:
            pdu = exception_pdu(fc, kinds["exception"].value or 0)  # the request is not executed
        elif "lose-writes" in kinds and fc in WRITE_FUNCTION_CODES:
            pdu = self.simulator.write_sink.handle_pdu(request)  # checked and answered as stored, but not stored
        else:
            pdu = self.simulator.engine.handle_pdu(request)
            if pdu is None:
                return _KEEP_OPEN
        if "no-reply" in kinds:
            return _KEEP_OPEN
        if "wrong-tid" in kinds:
            tid = (tid + 1) & 0xFFFF
        if "wrong-unit" in kinds:
            unit = (unit + 1) & 0xFF
        length = len(pdu) + 1
        if "wrong-length" in kinds:
            length = (length + 1) & 0xFFFF
        adu = _MBAP.pack(tid, 0, length, unit) + pdu
        if "truncate" in kinds:
            adu = adu[:-1]
        close = "close-mid-reply" in kinds
        if close:
            adu = adu[: len(adu) // 2]
        delay_ms = sum(f.value or 0 for f in hits if f.kind == "delay")
        if delay_ms:
            self._send_later(delay_ms / 1000.0, adu, close)
        else:
            out += adu
        if not close:
            return _KEEP_OPEN
        self.closing = True
        return _CLOSE_LATER if delay_ms else _CLOSE_NOW

    def _send_later(self, delay_s: float, data: bytes, close: bool) -> None:
        loop = asyncio.get_running_loop()
        self.delayed_seq += 1
        heapq.heappush(self.delayed, (loop.time() + delay_s, self.delayed_seq, data, close))
        self._schedule_delayed(loop)

    def _schedule_delayed(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = loop.call_at(self.delayed[0][0], self._flush_delayed) if self.delayed else None

    def _flush_delayed(self) -> None:
        self.timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            self.delayed.clear()
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        batch = bytearray()
        while self.delayed and self.delayed[0][0] <= now:
            _due, _seq, data, close = heapq.heappop(self.delayed)
            batch += data
            if close:
                transport.write(batch)
                self.delayed.clear()
                transport.close()
                return
        if batch:
            transport.write(batch)
        self._schedule_delayed(loop)


class ModbusSimulator:
    """The device a profile describes, served on Modbus TCP.

    `await start()` binds (port 0 picks a free port, then `.port` is the bound one) and serves
    in the running loop; `await stop()` closes the listener and every connection.
    `store` is the device's `DataStore` (read or preset values from tests).
    """

    def __init__(
        self,
        profile: Profile | str | Path,
        faults: Sequence[Fault | str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        store: DataStore | None = None,
    ):
        if not isinstance(profile, Profile):
            profile = load_profile(profile)
        self.profile = profile
        self.engine = ModbusEngine(profile, store)  # `store`: memory shared with other faces
        self.store = self.engine.store
        # Copies: `every=N` counts per simulator, even when one Fault is handed to several.
        self.faults: list[Fault] = [parse_fault(f) if isinstance(f, str) else dataclasses.replace(f, matched=0) for f in faults]
        self.host = host
        self.port = port
        unit_ok = bytearray(256)
        for unit in profile.modbus.unit_ids:  # type: ignore[union-attr]
            unit_ok[unit] = 1
        self.unit_ok = bytes(unit_ok)
        self.connections: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._hung_until: float | None = None  # hang-on-bad-length: silent until then (inf: for good)
        self._write_sink: ModbusEngine | None = None

    @property
    def write_sink(self) -> ModbusEngine:
        """For lose-writes: the device's behaviour over a scratch store of the same extents, so a
        lost write gets exactly the answer a stored one would (exception 02 or 03 for an illegal
        one), while the device's own store and its other faces never see it.  The answer to a
        write function code does not depend on what is stored."""
        if self._write_sink is None:
            self._write_sink = ModbusEngine(self.profile)
        return self._write_sink

    def hang_if_faulted(self, kind: str) -> None:
        """A hang fault of `kind` was triggered: go silent for its time (0: for good)."""
        for fault in self.faults:
            if fault.kind == kind:
                self._hung_until = time.monotonic() + fault.value / 1000 if fault.value else float("inf")

    def hung(self) -> bool:
        return self._hung_until is not None and time.monotonic() < self._hung_until

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"modbus+tcp://{host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port, reuse_address=True,
                                                 backlog=LISTEN_BACKLOG)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("modbus simulator for %s listening on %s", self.profile.name, self.url)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        self.connections.clear()
        await server.wait_closed()

    async def __aenter__(self) -> ModbusSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()


class SimulatorThread:
    """A simulator serving from its own thread and event loop; `stop()` ends and joins it."""

    def __init__(self, simulator: ModbusSimulator, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        self.simulator = simulator
        self.loop = loop
        self.thread = thread

    @property
    def host(self) -> str:
        return self.simulator.host

    @property
    def port(self) -> int:
        return self.simulator.port

    @property
    def url(self) -> str:
        return self.simulator.url

    @property
    def store(self):
        return self.simulator.store

    def stop(self, timeout: float = 5.0) -> None:
        from ..loop_thread import stop_thread

        stop_thread(self.loop, self.thread, timeout)

    def __enter__(self) -> SimulatorThread:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_in_thread(
    profile: Profile | str | Path,
    faults: Sequence[Fault | str] = (),
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 10.0,
) -> SimulatorThread:
    """Start a simulator in a daemon thread; returns once it listens (or raises its error)."""
    from ..loop_thread import serve_in_thread

    simulator = ModbusSimulator(profile, faults, host, port)
    loop, thread = serve_in_thread(simulator, f"modbus-simulator-{host}:{port}", timeout)
    return SimulatorThread(simulator, loop, thread)
