"""A recording TCP relay: evidence frames for traffic between two stacks the harness does not own.

In the interoperability matrix and the client-side cases the client under test is a third-party
stack (pymodbus, libmodbus, a node process, ...) whose socket the harness cannot see.  The case
points that client at a `RecordingRelay` instead of the server; the relay forwards every byte,
both ways, unchanged and as soon as it arrives (a fault that truncates or delays a reply reaches
the client exactly as the server sent it), and records what passes as `harness.model.Frame`s:

- "tx" is client -> server, "rx" server -> client;
- `conn` is "client ip:port->server ip:port", the client's address as the relay sees it and the
  server's real address, so `harness.transport.pcap` writes the traffic as if there were no relay;
- frames are cut by a framing object (the framing rules, kept apart from the I/O here):
  `ModbusTcpCutter` (the codec's streaming framer, summaries from `describe_tcp`) or
  `uacp_framing(summary)` (the 8-byte UACP header, summaries from `uacp.describe` or the
  caller's function).  Bytes that cannot be framed (an impossible length field) and bytes left
  over are recorded too, with a summary that says what is wrong: nothing is dropped.

A frame is recorded before its last byte is passed on, so once a client has a reply its frames
are in the evidence.  A frame the other side has only begun is recorded by `flush()` (call it
after each client operation: "incomplete: 11 bytes of a 12-byte frame") and when the connection
closes; bytes that complete it later are recorded as the rest of that frame.

One daemon thread per relay runs a selector loop; every socket is nonblocking, the upstream
connect has a timeout (an unreachable upstream closes the accepted client connection, logs a
warning and records no frame), an end of stream from one side is passed on as a FIN
(shutdown(SHUT_WR)), and the connection is closed once both sides have ended, or at once on an
error.  Nothing a peer sends can raise out of the thread: an unexpected error is logged and costs
that one connection.  `close()` is bounded and idempotent; the relay is a context manager.

Standard library, `harness.codec` and `harness.model` only (the transport layer's imports).
"""

from __future__ import annotations

import errno
import functools
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

from ..codec.modbus.adu import TcpFramer
from ..codec.modbus.describe import describe_tcp
from ..codec.modbus.malformed import Malformed
from ..codec.opcua import uacp
from ..model import Frame

log = logging.getLogger(__name__)

Recorder = Callable[[Frame], None]
Cut = tuple[bytes, str]  # the bytes of one frame (or of what cannot be framed) and its summary

CONNECT_TIMEOUT_S = 3.0
CLOSE_TIMEOUT_S = 5.0
RECV_SIZE = 65536
MAX_UACP_MESSAGE = 1 << 24  # a MessageSize above this is taken as unframable, not waited for


# ---------------------------------------------------------------------------- framing rules
#
# A cutter frames one direction of one connection, sans-io:
#   feed(data) -> [(frame bytes, summary), ...]   every frame `data` completes, in order
#   pending() -> bytes                            a frame begun but not complete
#   incomplete(data) -> str                       what such a partial frame is
# A framing is `direction -> cutter` ("tx" or "rx"), called once per direction and connection.


class ModbusTcpCutter:
    """Modbus TCP frames, cut by the codec's `TcpFramer` and summarised with `describe_tcp`."""

    def __init__(self, direction: str):
        self._framer = TcpFramer()
        self._is_response = direction == "rx"
        self._broken = ""  # after an impossible length field the stream cannot be framed again

    def feed(self, data: bytes) -> list[Cut]:
        if self._broken:
            return [(data, f"unframable: {len(data)} more bytes after {self._broken}")]
        self._framer.feed(data)
        held, pos, cuts = self._framer.pending(), 0, []
        while (item := self._framer.next_frame()) is not None:
            if isinstance(item, Malformed):  # the framer has dropped its buffer: record all of it
                length = int.from_bytes(item.data[4:6], "big")
                self._broken = f"an MBAP length of {length}"
                cuts.append((held[pos:], f"unframable: MBAP length {length}, outside 2..254 ({len(held) - pos} bytes)"))
                break
            end = pos + 7 + len(item.pdu)
            frame, pos = held[pos:end], end
            cuts.append((frame, describe_tcp(frame, self._is_response)))
        return cuts

    def pending(self) -> bytes:
        return b"" if self._broken else self._framer.pending()

    def incomplete(self, data: bytes) -> str:
        if len(data) < 6:
            return f"incomplete: {len(data)} bytes of an MBAP header"
        size = 6 + int.from_bytes(data[4:6], "big")
        head = f" (tid=0x{int.from_bytes(data[0:2], 'big'):04x} uid={data[6]})" if len(data) > 6 else ""
        return f"incomplete: {len(data)} bytes of a {size}-byte frame{head}"


class UacpCutter:
    """OPC UA messages cut by the 8-byte UACP header (type, chunk type, UInt32 LE MessageSize).

    `summary(frame bytes) -> str` makes each frame's summary (default `uacp.describe`: HEL, ACK
    and ERR in full, secure messages as type, chunk type, size and channel)."""

    def __init__(self, direction: str, summary: Callable[[bytes], str] | None = None):
        self._buf = bytearray()
        self._summary = summary
        self._broken = ""

    def feed(self, data: bytes) -> list[Cut]:
        if self._broken:
            return [(data, f"unframable: {len(data)} more bytes after {self._broken}")]
        buf, pos, cuts = self._buf, 0, []
        buf += data
        while len(buf) - pos >= uacp.HEADER_SIZE:
            size = int.from_bytes(buf[pos + 4 : pos + 8], "little")
            if not uacp.HEADER_SIZE <= size <= MAX_UACP_MESSAGE:
                self._broken = f"a MessageSize of {size}"
                cuts.append((bytes(buf[pos:]), f"unframable: MessageSize {size}, outside {uacp.HEADER_SIZE}..{MAX_UACP_MESSAGE}"
                             f" ({len(buf) - pos} bytes, starting {bytes(buf[pos : pos + 4])!r})"))
                buf.clear()
                return cuts
            if len(buf) - pos < size:
                break
            frame = bytes(buf[pos : pos + size])
            pos += size
            cuts.append((frame, self._describe(frame)))
        del buf[:pos]
        return cuts

    def _describe(self, frame: bytes) -> str:
        if self._summary is None:
            return uacp.describe(frame)
        try:
            return str(self._summary(frame))
        except Exception as exc:  # noqa: BLE001 - a summary never costs the frame
            return f"{uacp.describe(frame)} (summary failed: {type(exc).__name__}: {exc})"

    def pending(self) -> bytes:
        return bytes(self._buf)

    def incomplete(self, data: bytes) -> str:
        if len(data) < uacp.HEADER_SIZE:
            return f"incomplete: {len(data)} bytes of an 8-byte UACP header"
        size = int.from_bytes(data[4:8], "little")
        return f"incomplete: {len(data)} bytes of a {size}-byte {bytes(data[0:4]).decode('latin-1')!r} message"


def modbus_tcp_framing() -> Callable[[str], ModbusTcpCutter]:
    """The Modbus TCP framing for `RecordingRelay` (its default)."""
    return ModbusTcpCutter


def uacp_framing(summary: Callable[[bytes], str] | None = None) -> Callable[[str], UacpCutter]:
    """The OPC UA framing for `RecordingRelay`, with `summary` for each message (see UacpCutter)."""
    return functools.partial(UacpCutter, summary=summary)


# ---------------------------------------------------------------------------- I/O


def _address(addr) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class _Flow:
    """One direction of a relayed connection: bytes from `src` to `dst`."""

    def __init__(self, direction: str, src: socket.socket, dst: socket.socket, cutter):
        self.direction, self.src, self.dst, self.cutter = direction, src, dst, cutter
        self.out = bytearray()  # received, not yet written to dst
        self.eof = False  # src has ended its stream
        self.shown = 0  # leading bytes of cutter.pending() already recorded (by a flush)


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket, client_addr, framing, deadline: float):
        self.client, self.upstream = client, upstream
        self.client_addr = client_addr
        self.deadline = deadline  # for the upstream connect; None once connected
        self.name = ""
        self.tx = _Flow("tx", client, upstream, framing("tx"))
        self.rx = _Flow("rx", upstream, client, framing("rx"))
        self.closed = False

    def flows(self) -> tuple[_Flow, _Flow]:
        return self.tx, self.rx

    def flow_from(self, sock: socket.socket) -> _Flow:
        return self.tx if sock is self.client else self.rx


class RecordingRelay:
    """Listens on `listen_host`:`listen_port` (`.host`, `.port`; 127.0.0.1 and a free port by
    default), relays each connection to the server at `host`:`port` and records what passes.

    >>> with RecordingRelay(server.host, server.port, evidence.frames.append) as relay:
    ...     client.connect(relay.host, relay.port)

    `framing` is `modbus_tcp_framing()` (the default) or `uacp_framing(...)`.  Frames are
    recorded from the relay's thread, one call of `recorder` each; use one relay per test case so
    that no frame lands in another case's evidence.
    """

    def __init__(self, host: str, port: int, recorder: Recorder, *, framing: Callable[[str], object] = ModbusTcpCutter,
                 listen_host: str = "127.0.0.1", listen_port: int = 0, connect_timeout: float = CONNECT_TIMEOUT_S):
        self.upstream = (str(host), int(port))
        family, _, _, _, self._upstream_addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        self._upstream_family = family
        self._recorder = recorder
        self._framing = framing
        self._connect_timeout = connect_timeout
        self._conns: dict[socket.socket, _Conn] = {}
        self._requests: list[threading.Event] = []
        self._lock = threading.Lock()
        self._closing = False
        self._sel = selectors.DefaultSelector()
        family = socket.AF_INET6 if ":" in listen_host else socket.AF_INET
        self._listener = socket.create_server((listen_host, listen_port), family=family)
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._main, name=f"recording-relay-{self.port}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public
    def __enter__(self) -> "RecordingRelay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RecordingRelay {self.host}:{self.port} -> {_address(self.upstream)}>"

    def flush(self, timeout: float = 1.0) -> None:
        """Record what has arrived but is not yet a whole frame, as it stands; returns once done."""
        done = threading.Event()
        with self._lock:
            if self._closing or not self._thread.is_alive():
                return
            self._requests.append(done)
        self._wake()
        done.wait(timeout)

    def close(self) -> None:
        """Record what is left, close every socket and stop the thread (bounded); idempotent."""
        with self._lock:
            self._closing = True
        self._wake()
        if self._thread is not threading.current_thread():
            self._thread.join(CLOSE_TIMEOUT_S)
            if self._thread.is_alive():
                log.error("%r: the relay thread did not stop within %g s", self, CLOSE_TIMEOUT_S)

    # ------------------------------------------------------------------ the loop
    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # closed, or the pipe is full: the loop wakes anyway
            pass

    def _main(self) -> None:
        try:
            while not self._closing:
                self._poll(self._select_timeout())
                self._expire_connects()
                self._serve_requests()
            self._pump()  # what arrived before close() is still recorded as frames
        except Exception:  # noqa: BLE001 - the loop itself failed: log, then close everything
            log.exception("%r: the relay loop failed", self)
        finally:
            self._shutdown()

    def _select_timeout(self) -> float | None:
        deadlines = [c.deadline for c in self._conns.values() if c.deadline is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _poll(self, timeout: float | None) -> bool:
        """One select and its events; True if any socket had something to do."""
        busy = False
        for key, mask in self._sel.select(timeout):
            sock = key.fileobj
            if sock is self._wake_r:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except OSError:
                    pass
            elif sock is self._listener:
                try:
                    self._accept()
                except Exception:  # noqa: BLE001 - a failed accept costs that connection only
                    log.exception("%r: accepting a connection failed", self)
            else:
                conn = self._conns.get(sock)
                if conn is None or conn.closed:
                    continue
                busy = True
                try:
                    self._handle(conn, sock, mask)
                except Exception:  # noqa: BLE001 - one bad connection must not stop the relay
                    log.exception("%r: unexpected error on %s, closing it", self, conn.name or "a connection")
                    self._close_conn(conn, "then the relay dropped the connection after an error")
        return busy

    def _pump(self, rounds: int = 16) -> None:
        """Take in whatever the sockets hold right now."""
        for _ in range(rounds):
            if not self._poll(0):
                break

    def _serve_requests(self) -> None:
        with self._lock:
            requests, self._requests = self._requests, []
        if not requests:
            return
        self._pump()
        for conn in list(self._conns.values()):
            for flow in conn.flows():
                self._record_pending(conn, flow, "so far")
        for done in requests:
            done.set()

    # ------------------------------------------------------------------ connections
    def _accept(self) -> None:
        try:
            client, addr = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("%r: accept failed: %s", self, exc)
            return
        upstream = socket.socket(self._upstream_family, socket.SOCK_STREAM)
        for s in (client, upstream):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(client, upstream, addr, self._framing, time.monotonic() + self._connect_timeout)
        conn.name = f"{_address(addr)}->{_address(self.upstream)}"
        self._conns[client] = self._conns[upstream] = conn
        code = upstream.connect_ex(self._upstream_addr)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self._unreachable(conn, errno.errorcode.get(code, str(code)))
            return
        self._sel.register(upstream, selectors.EVENT_WRITE)  # writable = connected (or failed)

    def _unreachable(self, conn: _Conn, why: str) -> None:
        log.warning("%r: upstream %s unreachable (%s); closing the client connection from %s",
                    self, _address(self.upstream), why, _address(conn.client_addr))
        self._close_conn(conn)

    def _expire_connects(self) -> None:
        now = time.monotonic()
        for conn in {c for c in self._conns.values() if c.deadline is not None and c.deadline <= now}:
            self._unreachable(conn, f"no connection within {self._connect_timeout:g} s")

    def _connected(self, conn: _Conn) -> None:
        code = conn.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._unreachable(conn, errno.errorcode.get(code, str(code)))
            return
        conn.deadline = None
        try:
            conn.name = f"{_address(conn.client_addr)}->{_address(conn.upstream.getpeername())}"
        except OSError:
            pass
        self._update(conn)

    def _handle(self, conn: _Conn, sock: socket.socket, mask: int) -> None:
        if conn.deadline is not None:
            if sock is conn.upstream and mask & selectors.EVENT_WRITE:
                self._connected(conn)
            return
        if mask & selectors.EVENT_WRITE:
            self._send(conn, conn.tx if sock is conn.upstream else conn.rx)
        if mask & selectors.EVENT_READ and not conn.closed:
            self._receive(conn, conn.flow_from(sock))
        if not conn.closed:
            self._update(conn)

    def _receive(self, conn: _Conn, flow: _Flow) -> None:
        try:
            data = flow.src.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # reset: record what is left and drop the connection
            self._close_conn(conn, f"then the connection was reset ({exc.strerror or exc})")
            return
        if not data:
            flow.eof = True
            self._record_pending(conn, flow, "then the connection closed")
            self._send(conn, flow)  # passes the FIN on once the buffered bytes are out
            return
        self._record(conn, flow, data)  # recorded before the bytes go on: a client that has a
        flow.out += data                # reply finds its frames in the evidence
        self._send(conn, flow)

    def _send(self, conn: _Conn, flow: _Flow) -> None:
        if flow.out:
            try:
                sent = flow.dst.send(flow.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:  # the other side is gone: nothing more can be passed on
                log.debug("%r: %s: send failed: %s", self, conn.name, exc)
                self._close_conn(conn, f"then the connection was reset ({exc.strerror or exc})")
                return
            del flow.out[:sent]
        if flow.eof and not flow.out:
            try:
                flow.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if all(f.eof and not f.out for f in conn.flows()):
                self._close_conn(conn)

    def _update(self, conn: _Conn) -> None:
        """Selector interests: read a side while its bytes can go on, write while some wait."""
        for sock, outgoing, incoming in ((conn.client, conn.tx, conn.rx), (conn.upstream, conn.rx, conn.tx)):
            mask = 0
            if not outgoing.eof and not outgoing.out:  # back-pressure: no reading while the
                mask |= selectors.EVENT_READ           # other side has not taken the last bytes
            if incoming.out:
                mask |= selectors.EVENT_WRITE
            try:
                key = self._sel.get_key(sock)
            except KeyError:
                key = None
            if key is None and mask:
                self._sel.register(sock, mask)
            elif key is not None and not mask:
                self._sel.unregister(sock)
            elif key is not None and key.events != mask:
                self._sel.modify(sock, mask)

    def _close_conn(self, conn: _Conn, why: str = "then the connection closed") -> None:
        if conn.closed:
            return
        conn.closed = True
        for flow in conn.flows():
            self._record_pending(conn, flow, why)
        for sock in (conn.client, conn.upstream):
            self._conns.pop(sock, None)
            try:
                self._sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            try:
                sock.close()
            except OSError:
                pass

    def _shutdown(self) -> None:
        for conn in list(self._conns.values()):
            try:
                self._close_conn(conn, "when the relay closed")
            except Exception:  # noqa: BLE001
                log.exception("%r: closing %s failed", self, conn.name)
        for sock in (self._listener, self._wake_r, self._wake_w):
            try:
                sock.close()
            except OSError:
                pass
        try:
            self._sel.close()
        except Exception:  # noqa: BLE001
            pass
        with self._lock:
            self._closing = True
            requests, self._requests = self._requests, []
        for done in requests:
            done.set()

    # ------------------------------------------------------------------ recording
    def _record(self, conn: _Conn, flow: _Flow, data: bytes) -> None:
        for frame, summary in flow.cutter.feed(data):
            if flow.shown:  # its first bytes were recorded by a flush as an incomplete frame
                frame, summary = frame[flow.shown :], f"the last {len(frame) - flow.shown} of {len(frame)} bytes: {summary}"
                flow.shown = 0
            if frame:
                self._emit(conn, flow.direction, frame, summary)

    def _record_pending(self, conn: _Conn, flow: _Flow, when: str) -> None:
        """The bytes of a frame begun but not complete, not yet recorded, as "incomplete"."""
        held = flow.cutter.pending()
        if len(held) <= flow.shown:
            return
        summary = f"{flow.cutter.incomplete(held)}, {when}"
        if flow.shown:
            summary += f" (the first {flow.shown} recorded before)"
        self._emit(conn, flow.direction, held[flow.shown :], summary)
        flow.shown = len(held)

    def _emit(self, conn: _Conn, direction: str, data: bytes, summary: str) -> None:
        frame = Frame(direction, time.monotonic(), time.time(), bytes(data).hex(), summary, conn.name)
        try:
            self._recorder(frame)
        except Exception:  # noqa: BLE001 - the recorder is the caller's; the relay goes on
            log.exception("%r: the recorder failed", self)
