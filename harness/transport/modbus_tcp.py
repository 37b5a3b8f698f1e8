"""A blocking Modbus/TCP connection that records every frame it sends and receives.

The conformance suites judge a device through this class: it sends exactly the bytes a test
asks for (including deliberately wrong ones), frames what comes back with the codec's
streaming framer, and hands each frame to a recorder as evidence.  Every operation has a
timeout; a device that stalls, floods, sends garbage or drops the connection produces a
typed outcome (`NoResponse`, `ConnectionClosed`, a `Malformed` frame), never a hang.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..codec.modbus.adu import TcpAdu, TcpFramer, encode_tcp
from ..codec.modbus.describe import describe_tcp
from ..codec.modbus.malformed import Malformed
from ..model import Frame

Recorder = Callable[[Frame], None]


class TransportError(Exception):
    """Base of the outcomes a device can cause at the transport level."""


class Unreachable(TransportError):
    """The TCP connection could not be opened."""


class NoResponse(TransportError):
    """Nothing (or not a whole frame) arrived within the timeout."""


class ConnectionClosed(TransportError):
    """The device closed the connection."""


@dataclass
class Reply:
    """A frame received in answer to a request, with the time it took."""

    adu: TcpAdu | Malformed
    elapsed_s: float
    raw: bytes


class ModbusTcpConnection:
    """One TCP connection to a Modbus/TCP device.

    `send_pdu` builds a correct MBAP header unless told otherwise; `send_raw` sends bytes
    as they are.  `receive` returns the next frame.  `request` does both and checks nothing:
    judging the answer is the test's job.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        unit: int = 1,
        timeout: float = 1.0,
        recorder: Recorder | None = None,
        connect_timeout: float | None = None,
    ):
        self.host, self.port, self.unit, self.timeout = host, port, unit, timeout
        self._record = recorder or (lambda frame: None)
        self._framer = TcpFramer()
        self._tids = itertools.count(1)
        self.closed_by_peer = False
        try:
            self._sock = socket.create_connection((host, port), timeout=connect_timeout or max(timeout, 2.0))
        except OSError as exc:
            raise Unreachable(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local, peer = self._sock.getsockname(), self._sock.getpeername()
        self.conn_name = f"{local[0]}:{local[1]}->{peer[0]}:{peer[1]}"  # addresses, for the pcap

    # ------------------------------------------------------------------ sending

    def next_tid(self) -> int:
        return next(self._tids) & 0xFFFF

    def send_raw(self, data: bytes, summary: str | None = None) -> None:
        self._emit("tx", data, summary if summary is not None else describe_tcp(data, is_response=False))
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self.closed_by_peer = True
            raise ConnectionClosed(f"sending failed: {exc.strerror or exc}") from None

    def send_pdu(
        self,
        pdu: bytes,
        *,
        tid: int | None = None,
        unit: int | None = None,
        protocol_id: int = 0,
        length: int | None = None,
    ) -> int:
        """Send one request; returns the transaction id used."""
        tid = self.next_tid() if tid is None else tid
        frame = encode_tcp(tid, self.unit if unit is None else unit, pdu, protocol_id=protocol_id, length=length)
        self.send_raw(frame)
        return tid

    def send_dribbled(self, data: bytes, gap_s: float = 0.01) -> None:
        """Send `data` one byte per TCP segment (TCP_NODELAY is set), `gap_s` apart."""
        self._emit("tx", data, describe_tcp(data, is_response=False) + f" (sent one byte at a time, {gap_s * 1000:.0f} ms apart)")
        try:
            for i in range(len(data)):
                self._sock.sendall(data[i : i + 1])
                time.sleep(gap_s)
        except OSError as exc:
            self.closed_by_peer = True
            raise ConnectionClosed(f"sending failed: {exc.strerror or exc}") from None

    # ------------------------------------------------------------------ receiving

    def receive(self, timeout: float | None = None) -> Reply:
        """The next whole frame; raises NoResponse or ConnectionClosed."""
        timeout = self.timeout if timeout is None else timeout
        start = time.monotonic()
        deadline = start + timeout
        while True:
            item = self._framer.next_frame()
            if item is not None:
                if isinstance(item, Malformed):
                    raw = item.data
                    self._emit("rx", raw, f"malformed: {item}")
                else:
                    # The framer cut the frame by its own length field, so re-encoding gives
                    # back exactly the bytes that arrived.
                    raw = encode_tcp(item.transaction_id, item.unit_id, item.pdu, protocol_id=item.protocol_id)
                    self._emit("rx", raw, describe_tcp(raw, is_response=True))
                return Reply(item, time.monotonic() - start, raw)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._note_partial()
                raise NoResponse(f"no complete response within {timeout * 1000:.0f} ms")
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except (TimeoutError, socket.timeout):
                self._note_partial()
                raise NoResponse(f"no complete response within {timeout * 1000:.0f} ms") from None
            except OSError as exc:
                self.closed_by_peer = True
                self._note_partial()
                raise ConnectionClosed(f"connection reset: {exc.strerror or exc}") from None
            if not chunk:
                self.closed_by_peer = True
                self._note_partial()
                raise ConnectionClosed("the device closed the connection")
            self._framer.feed(chunk)

    def request(self, pdu: bytes, *, timeout: float | None = None, **header) -> Reply:
        self.send_pdu(pdu, **header)
        return self.receive(timeout)

    def expect_silence(self, window_s: float) -> bytes:
        """Wait `window_s` and return whatever arrived (b"" when the device kept quiet)."""
        return self._read_raw(window_s, bytearray(self._framer.pending()), settle_s=None)

    def collect_raw(self, timeout: float, settle_s: float = 0.05) -> bytes:
        """Raw bytes as they arrive, bypassing the framer: up to `timeout`, and once a
        complete response by its own length field is in, for `settle_s` more."""
        return self._read_raw(timeout, bytearray(), settle_s)

    def _read_raw(self, timeout: float, received: bytearray, settle_s: float | None) -> bytes:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except (TimeoutError, socket.timeout):
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.closed_by_peer = True
                break
            received += chunk
            whole = len(received) >= 6 and len(received) >= 6 + int.from_bytes(received[4:6], "big")
            if settle_s is not None and whole:
                deadline = min(deadline, time.monotonic() + settle_s)
        if received:
            self._emit("rx", bytes(received), describe_tcp(bytes(received), is_response=True))
        return bytes(received)

    # ------------------------------------------------------------------ housekeeping

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> "ModbusTcpConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _emit(self, direction: str, data: bytes, summary: str) -> None:
        self._record(Frame(direction, time.monotonic(), time.time(), data.hex(), summary, self.conn_name))

    def _note_partial(self) -> None:
        pending = self._framer.pending()
        if pending:
            self._emit("rx", pending, f"incomplete frame: {len(pending)} bytes, then nothing")
