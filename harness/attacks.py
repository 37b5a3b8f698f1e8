"""Socket-level attack drivers for robustness testing: they send the bytes you give them.

The drivers know no protocol.  Where they must find the end of a reply they ask a
`ReplyLength` function ("how long is the first reply in this buffer, if you can tell yet");
`modbus_tcp_reply_length` and `uacp_reply_length` are the two the harness needs.

    send_each           frames one at a time on one connection, one reply awaited per frame
                        (malformed frames, boundary values, fuzzing)
    flood               frames at a set total rate over N connections, replies counted
    connection_storm    many connections opened and dropped (optionally with RST)
    idle_connections    many connections held open, doing nothing, while a with-block runs
    dribble             one frame sent a byte at a time (slow partial frames)

Every socket operation has a timeout, and nothing the peer does (refuse, reset, close, send
garbage, stop reading) raises out of a driver or hangs it: OS errors are caught and recorded
in the `Outcome` / `AttackResult`.  Standard library only.
"""

from __future__ import annotations

import dataclasses
import selectors
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

ReplyLength = Callable[[bytes], "int | None"]
"""Total length of the first reply in the buffer, or None while that cannot be told yet."""

_RECV_SIZE = 65536
# A device that streams bytes without ever completing a reply (or declares a reply of gigabytes)
# must not fill the harness's memory: past this many bytes the reply is given up.
MAX_REPLY_BYTES = 4 * 1024 * 1024
# Opening many connections to a device whose backlog is full makes each wait for its connect
# timeout: without a deadline of the caller's, opening stops after this long.
OPEN_DEADLINE_S = 30.0
_HEADER_PEEK = 256  # bytes handed to a ReplyLength; any protocol header fits
_FLOOD_BATCH = 256  # most frames sent per loop turn before replies are read again
_LATE_GRACE_S = 0.005  # a paced flood still sends frames due before its end this late (timer granularity)
_DRAIN_S = 0.25  # after a flood, how long replies still in flight are waited for
_SLOW_CONNECT_S = 0.5  # a storm's connect this slow means a retried SYN (1 s initial RTO)
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


# --- where a reply ends ----------------------------------------------------------------


def modbus_tcp_reply_length(buffer: bytes) -> int | None:
    """Modbus TCP: the 6 MBAP bytes up to the length field plus what that field counts."""
    if len(buffer) < 6:
        return None
    return 6 + (buffer[4] << 8 | buffer[5])


def uacp_reply_length(buffer: bytes) -> int | None:
    """OPC UA UACP (Part 6 §7.1.2.2): the UInt32 little-endian MessageSize at bytes 4..8.

    A size below the 8-byte header is garbage; it counts as the header alone so that the
    reader moves on instead of waiting for a message that can never be complete.
    """
    if len(buffer) < 8:
        return None
    return max(8, int.from_bytes(buffer[4:8], "little"))


def _reply_end(reply_length: ReplyLength, buffer: bytes | bytearray, pos: int = 0) -> int | None:
    """Where the first reply at `pos` ends (an offset into buffer), or None while unknown.

    Only a window of the buffer is copied for `reply_length`, so splitting many replies out
    of one large read costs linear time.
    """
    length = reply_length(bytes(buffer[pos : pos + _HEADER_PEEK]))
    if length is None and len(buffer) - pos > _HEADER_PEEK:
        length = reply_length(bytes(buffer[pos:]))
    if length is None:
        return None
    return pos + max(1, length)  # a length of 0 or less would never consume anything


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What happened to one frame (`send_each`, `dribble`)."""

    index: int
    reply: bytes | None  # the first complete reply, or None
    closed: bool  # the peer closed (or reset) the connection after this frame
    error: str  # "" or what went wrong ("timeout after 0.5 s waiting for a reply", ...)
    elapsed_s: float


@dataclass(frozen=True)
class AttackResult:
    """The totals of one flood, storm or idle hold."""

    name: str
    sent: int  # frames (or connections) delivered
    replies: int
    errors: int
    duration_s: float
    rate_per_s: float  # achieved
    notes: list[str]  # e.g. "12 of 200 connections failed: connection refused by ..."

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- socket helpers --------------------------------------------------------------------


def _why(exc: OSError) -> str:
    """A short, stable description of a socket error (stable so that notes can group them)."""
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the peer"
    if isinstance(exc, BrokenPipeError):
        return "connection closed by the peer (broken pipe)"
    if isinstance(exc, ConnectionAbortedError):
        return "connection aborted"
    return exc.strerror or str(exc) or type(exc).__name__


def _connect(host: str, port: int, timeout_s: float) -> tuple[socket.socket | None, str]:
    """(socket, "") or (None, why not) — the reason says what to check."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except ConnectionRefusedError:
        return None, f"connection refused by {host}:{port} (is the device listening on that port?)"
    except TimeoutError:
        return None, f"connect timeout after {timeout_s:g} s to {host}:{port} (device down, or a firewall dropping SYNs?)"
    except socket.gaierror as exc:
        return None, f"cannot resolve host {host!r}: {exc.strerror or exc}"
    except OSError as exc:
        return None, f"cannot connect to {host}:{port}: {_why(exc)}"
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one frame, one segment
    except OSError:
        pass
    return sock, ""


def _close(sock: socket.socket, *, reset: bool = False) -> None:
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        sock.close()
    except OSError:
        pass


def _receive(
    sock: socket.socket, buffer: bytearray, deadline: float, reply_length: ReplyLength | None
) -> tuple[str, str]:
    """Read into `buffer` until a complete reply is there (when `reply_length` is given) or
    `deadline` (perf_counter) passes.  Returns (state, detail), state one of "reply",
    "timeout", "closed" (FIN) or "broken" (reset or another error; detail says which)."""
    while True:
        if reply_length is not None:
            end = _reply_end(reply_length, buffer)
            if end is not None and len(buffer) >= end:
                return "reply", ""
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return "timeout", ""
        try:
            sock.settimeout(remaining)
            chunk = sock.recv(_RECV_SIZE)
        except TimeoutError:
            continue
        except OSError as exc:
            return "broken", _why(exc)
        if not chunk:
            return "closed", ""
        buffer += chunk
        if len(buffer) > MAX_REPLY_BYTES:
            return "broken", f"the peer sent more than {MAX_REPLY_BYTES} bytes without completing a reply"


def _await_reply(
    sock: socket.socket, buffer: bytearray, reply_length: ReplyLength, timeout_s: float
) -> tuple[bytes | None, bool, str]:
    """Wait up to `timeout_s` for the first complete reply: (reply, peer closed, error)."""
    state, detail = _receive(sock, buffer, time.perf_counter() + timeout_s, reply_length)
    if state == "reply":
        return bytes(buffer[: _reply_end(reply_length, buffer)]), False, ""
    if state == "timeout":
        return None, False, f"timeout after {timeout_s:g} s waiting for a reply{_partial(buffer)}"
    if state == "closed":
        return None, True, f"the peer closed the connection mid-reply{_partial(buffer)}" if buffer else ""
    return None, True, f"{detail}{_partial(buffer)}"


def _peer_state(sock: socket.socket) -> tuple[str, int]:
    """Without blocking: ("open" | "closed" | "reset" | "error: ...", bytes read and discarded)."""
    discarded = 0
    try:
        sock.settimeout(0.0)
        while discarded <= MAX_REPLY_BYTES:  # a peer that never stops sending is still "open"
            chunk = sock.recv(_RECV_SIZE)
            if not chunk:
                return "closed", discarded
            discarded += len(chunk)
        return "open", discarded
    except BlockingIOError:
        return "open", discarded
    except ConnectionResetError:
        return "reset", discarded
    except OSError as exc:
        return f"error: {_why(exc)}", discarded


def _partial(buffer: bytearray) -> str:
    return f" ({len(buffer)} bytes of an incomplete reply: {bytes(buffer[:32]).hex(' ')})" if buffer else ""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _grouped(reasons: Counter, total: int, what: str) -> list[str]:
    """'12 of 200 connections failed: connection refused by ...', one line per reason."""
    return [f"{n} of {total} {what} failed: {reason}" for reason, n in reasons.most_common()]


# --- send_each -------------------------------------------------------------------------


def _exchange(
    sock: socket.socket, frame: bytes, reply_length: ReplyLength, timeout_s: float
) -> tuple[bytes | None, bool, str, bool]:
    """Send one frame and wait for its reply: (reply, peer closed, error, connection usable)."""
    try:
        sock.settimeout(timeout_s)
        sock.sendall(frame)
    except TimeoutError:
        # part of the frame may be out: the stream is no longer framed, so drop the connection
        return None, False, f"timeout after {timeout_s:g} s sending the frame (the peer is not reading)", False
    except OSError as exc:
        return None, True, f"send failed: {_why(exc)}", False
    reply, closed, error = _await_reply(sock, bytearray(), reply_length, timeout_s)
    return reply, closed, error, not closed


def send_each(
    host: str,
    port: int,
    frames: Sequence[bytes],
    *,
    reply_length: ReplyLength,
    reply_timeout_s: float = 0.5,
    connect_timeout_s: float = 2.0,
    reconnect: bool = True,
) -> list[Outcome]:
    """Send `frames` one at a time on one connection, waiting for one reply (or the timeout,
    or a close) after each; one `Outcome` per frame, in order.

    Bytes left over from an earlier frame (a late or extra reply) are discarded before the
    next frame goes out, so each reply belongs to its frame (a reply later than that still
    passes for the next frame's: give a timeout longer than the device's response time).
    When the peer closed the connection, the next frame goes on a new one (`reconnect=True`)
    or is not sent; a close noticed only before the next frame is still put on the frame it
    followed.  A frame that could not be sent in full also costs its connection.
    """
    outcomes: list[Outcome] = []
    sock: socket.socket | None = None
    gave_up = ""  # set when the peer closed and reconnect is False

    def peer_closed_before() -> None:
        """The connection we kept turned out closed: mark the frame that was sent last."""
        nonlocal sock
        if sock is not None:
            _close(sock)
            sock = None
        if outcomes and not outcomes[-1].closed:
            outcomes[-1] = dataclasses.replace(outcomes[-1], closed=True)

    try:
        for index, frame in enumerate(frames):
            start = time.perf_counter()
            if sock is not None:
                state, _ = _peer_state(sock)  # drops stale bytes; notices a close
                if state != "open":
                    peer_closed_before()
                    if not reconnect:
                        gave_up = "not sent: the peer closed the connection earlier (reconnect=False)"
            if gave_up:
                outcomes.append(Outcome(index, None, False, gave_up, 0.0))
                continue
            if sock is None:
                sock, why = _connect(host, port, connect_timeout_s)
                if sock is None:
                    outcomes.append(Outcome(index, None, False, why, time.perf_counter() - start))
                    continue
            reply, closed, error, usable = _exchange(sock, frame, reply_length, reply_timeout_s)
            if not usable:
                _close(sock)
                sock = None
            if closed:
                if not reconnect:
                    gave_up = "not sent: the peer closed the connection earlier (reconnect=False)"
            outcomes.append(Outcome(index, reply, closed, error, time.perf_counter() - start))
        if sock is not None and _peer_state(sock)[0] != "open":
            peer_closed_before()
    finally:
        if sock is not None:
            _close(sock)
    return outcomes


# --- dribble ---------------------------------------------------------------------------


def dribble(
    host: str,
    port: int,
    frame: bytes,
    *,
    byte_interval_s: float,
    reply_length: ReplyLength,
    reply_timeout_s: float = 2.0,
    connect_timeout_s: float = 2.0,
) -> Outcome:
    """Send `frame` one byte at a time, `byte_interval_s` apart (on a fixed schedule), then
    wait up to `reply_timeout_s` for the reply.  A peer that gives up on the slow frame and
    closes shows as closed=True with how many bytes it had got."""
    start = time.perf_counter()
    sock, why = _connect(host, port, connect_timeout_s)
    if sock is None:
        return Outcome(0, None, False, why, time.perf_counter() - start)
    buffer = bytearray()  # anything the peer sends while the frame is still dribbling
    try:
        first_byte_at = time.perf_counter()
        for i in range(len(frame)):
            if i:
                state, detail = _receive(sock, buffer, first_byte_at + i * byte_interval_s, None)
                if state in ("closed", "broken"):
                    how = "closed" if state == "closed" else f"broke ({detail})"
                    error = f"the peer {how} the connection after {i} of {len(frame)} bytes{_partial(buffer)}"
                    return Outcome(0, None, True, error, time.perf_counter() - start)
            try:
                sock.settimeout(reply_timeout_s)
                sock.sendall(frame[i : i + 1])
            except TimeoutError:
                error = f"timeout after {reply_timeout_s:g} s sending byte {i + 1} of {len(frame)} (the peer is not reading)"
                return Outcome(0, None, False, error, time.perf_counter() - start)
            except OSError as exc:
                error = f"send of byte {i + 1} of {len(frame)} failed: {_why(exc)}"
                return Outcome(0, None, True, error, time.perf_counter() - start)
        reply, closed, error = _await_reply(sock, buffer, reply_length, reply_timeout_s)
        return Outcome(0, reply, closed, error, time.perf_counter() - start)
    finally:
        _close(sock)


# --- flood -----------------------------------------------------------------------------


class _Lane:
    """One flood connection: non-blocking, with the tail of a partly sent frame and the
    bytes of replies not yet complete."""

    __slots__ = ("sock", "outbox", "inbox", "open", "blocked")

    def __init__(self, sock: socket.socket):
        sock.setblocking(False)
        self.sock = sock
        self.outbox = b""  # the rest of a frame the kernel took only part of
        self.inbox = bytearray()
        self.open = True
        self.blocked = False  # the last send found the send buffer full

    def flush(self) -> bool:
        """Push the outbox; True when it is empty afterwards.  OSError propagates."""
        if self.outbox:
            try:
                n = self.sock.send(self.outbox)
            except BlockingIOError:
                self.blocked = True
                return False
            self.outbox = self.outbox[n:]
        self.blocked = bool(self.outbox)
        return not self.outbox

    def offer(self, frame: bytes) -> bool:
        """Hand `frame` to the kernel if the send buffer has room; False (nothing sent) if not."""
        if not self.flush():
            return False
        try:
            n = self.sock.send(frame)
        except BlockingIOError:
            self.blocked = True
            return False
        if n < len(frame):
            self.outbox = frame[n:]  # finished later, so the stream stays framed
            self.blocked = True
        return True


class _FloodTally:
    def __init__(self) -> None:
        self.sent = 0
        self.unsent = 0  # due, but every send buffer was full: the peer stopped reading
        self.replies = 0
        self.bytes_in = 0
        self.send_errors: Counter = Counter()
        self.closed = 0
        self.reset = 0


def flood(
    host: str,
    port: int,
    frames: Sequence[bytes],
    *,
    rate_per_s: float,
    duration_s: float,
    connections: int = 1,
    reply_length: ReplyLength | None = None,
    connect_timeout_s: float = 2.0,
) -> AttackResult:
    """Send `frames` (cycling) for `duration_s` at `rate_per_s` in total over `connections`
    sockets, counting replies as they come, without ever blocking.

    Frame k is due at start + k / rate_per_s (a fixed schedule: a slow turn is caught up, not
    carried over as drift).  The achieved rate is the frames sent over the time until the
    last one went out (plus one interval), so sending too fast shows as much as too slow.  A due frame goes on the next connection in turn whose send
    buffer has room; when none has, it is counted as not sent (the peer stopped reading) and
    in `errors`.  `rate_per_s=0` sends as fast as the send buffers take frames.  Without
    `reply_length` received bytes are counted in the notes, not replies.  After the sending
    window, replies still in flight are awaited for at most a quarter of a second.
    """
    name = f"flood {rate_per_s:g}/s x {connections}" if rate_per_s > 0 else f"flood max x {connections}"
    if not frames or connections < 1 or duration_s <= 0:
        return AttackResult(name, 0, 0, 0, 0.0, 0.0, ["nothing to do: no frames, no connections or no duration"])
    lanes: list[_Lane] = []
    connect_failures: Counter = Counter()
    opening = time.perf_counter()
    for _ in range(connections):
        if time.perf_counter() - opening >= OPEN_DEADLINE_S:
            connect_failures[f"not attempted: the {OPEN_DEADLINE_S:g} s deadline for opening them passed"] += 1
            continue
        sock, why = _connect(host, port, connect_timeout_s)
        if sock is None:
            connect_failures[why] += 1
        else:
            lanes.append(_Lane(sock))
    notes = _grouped(connect_failures, connections, "connections")
    if not lanes:
        return AttackResult(name, 0, 0, connections, 0.0, 0.0, notes)

    tally = _FloodTally()
    selector = selectors.DefaultSelector()
    try:
        for lane in lanes:
            selector.register(lane.sock, selectors.EVENT_READ, lane)
        duration, stopped_early = _flood_loop(lanes, selector, frames, rate_per_s, duration_s, reply_length, tally)
        _flood_drain(lanes, selector, reply_length, tally)
    finally:
        selector.close()
        for lane in lanes:
            _close(lane.sock)

    if tally.unsent:
        notes.append(f"{_plural(tally.unsent, 'frame')} not sent: every send buffer was full (the peer stopped reading)")
    notes += _grouped(tally.send_errors, tally.sent + sum(tally.send_errors.values()), "sends")
    if tally.closed or tally.reset:
        notes.append(f"server closed {tally.closed} and reset {tally.reset} of {len(lanes)} connections")
    if stopped_early:
        notes.append(f"stopped after {duration:.3f} s: every connection was closed by the server")
    unfinished = sum(1 for lane in lanes if lane.outbox)
    if unfinished:
        notes.append(f"{_plural(unfinished, 'frame')} left partly sent at the end (send buffer full)")
    if reply_length is None:
        notes.append(f"{tally.bytes_in} bytes received (no reply_length: replies not counted)")
    errors = sum(connect_failures.values()) + tally.unsent + sum(tally.send_errors.values())
    rate = tally.sent / duration if duration > 0 else 0.0
    return AttackResult(name, tally.sent, tally.replies, errors, duration, rate, notes)


def _flood_loop(lanes, selector, frames, rate_per_s, duration_s, reply_length, tally) -> tuple[float, bool]:
    """The sending window; returns (its length in seconds, whether every lane closed)."""
    count = len(frames)
    paced = rate_per_s > 0
    total_due = max(1, int(-(-rate_per_s * duration_s // 1))) if paced else 0  # ceil
    k = 0  # frames scheduled so far (sent or not)
    turn = 0  # round-robin position
    start = time.perf_counter()
    last_batch_at = start
    end = start + duration_s
    while True:
        now = time.perf_counter()
        if (paced and (k >= total_due or now >= end + _LATE_GRACE_S)) or (not paced and now >= end):
            break
        live = [lane for lane in lanes if lane.open]
        if not live:
            return now - start, True
        if paced:
            due = min(total_due, int((now - start) * rate_per_s) + 1)
            batch = 0
            while k < due and batch < _FLOOD_BATCH:
                turn = _send_on_some_lane(live, turn, frames[k % count], selector, tally)
                k += 1
                batch += 1
            if batch:
                last_batch_at = time.perf_counter()
            wait = 0.0 if k < due else max(0.0, min(end, start + k / rate_per_s) - time.perf_counter())
        else:
            progress = False
            for lane in live:
                for _ in range(16):
                    if _send_on_lane(lane, frames[k % count], selector, tally) != "sent":
                        break
                    k += 1
                    progress = True
            wait = 0.0 if progress else max(0.0, end - time.perf_counter())
            _want_write(lanes, selector)
        _service(selector, wait, reply_length, tally)
    if paced:
        # until the last frame went out, plus the one interval it stands for: on schedule that
        # is the duration; a loop that ran ahead of its schedule shows a higher rate
        return last_batch_at - start + 1 / rate_per_s, False
    return time.perf_counter() - start, False


def _send_on_lane(lane: _Lane, frame: bytes, selector, tally: _FloodTally) -> str:
    """Offer one frame on one lane: "sent", "full" or "error" (the error closes the lane)."""
    try:
        if lane.offer(frame):
            tally.sent += 1
            return "sent"
        return "full"
    except OSError as exc:
        tally.send_errors[_why(exc)] += 1
        _lane_closed(lane, selector, tally, reset=isinstance(exc, ConnectionResetError))
        return "error"


def _send_on_some_lane(live: list[_Lane], turn: int, frame: bytes, selector, tally: _FloodTally) -> int:
    """Send on the lane whose turn it is, or the next one with room; returns the next turn.

    A frame no lane took is counted unsent, unless its send failed (then it is a send error).
    """
    n = len(live)
    failed = False
    for step in range(n):
        lane = live[(turn + step) % n]
        if not lane.open:
            continue
        state = _send_on_lane(lane, frame, selector, tally)
        if state == "sent":
            return (turn + step + 1) % n
        failed = failed or state == "error"
    if not failed:
        tally.unsent += 1
    return (turn + 1) % n


def _want_write(lanes: list[_Lane], selector) -> None:
    """Also wake on writability for lanes whose send buffer was full (as-fast-as-possible mode)."""
    for lane in lanes:
        if lane.open:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if lane.blocked or lane.outbox else 0)
            try:
                if selector.get_key(lane.sock).events != events:
                    selector.modify(lane.sock, events, lane)
            except (KeyError, ValueError, OSError):
                pass


def _service(selector, wait_s: float, reply_length: ReplyLength | None, tally: _FloodTally) -> None:
    """One select: read what arrived, count complete replies, finish partly sent frames."""
    try:
        events = selector.select(wait_s)
    except OSError:
        return
    for key, mask in events:
        lane: _Lane = key.data
        if not lane.open:
            continue
        if mask & selectors.EVENT_WRITE:
            lane.blocked = False  # room again: the next offer will tell
            try:
                lane.flush()
            except OSError as exc:
                tally.send_errors[_why(exc)] += 1
                _lane_closed(lane, selector, tally, reset=isinstance(exc, ConnectionResetError))
                continue
        if mask & selectors.EVENT_READ:
            _read_lane(lane, selector, reply_length, tally)


def _read_lane(lane: _Lane, selector, reply_length: ReplyLength | None, tally: _FloodTally) -> None:
    try:
        chunk = lane.sock.recv(_RECV_SIZE)
    except BlockingIOError:
        return
    except OSError as exc:
        _lane_closed(lane, selector, tally, reset=isinstance(exc, ConnectionResetError))
        return
    if not chunk:
        _lane_closed(lane, selector, tally, reset=False)
        return
    tally.bytes_in += len(chunk)
    if reply_length is None:
        return
    inbox = lane.inbox
    inbox += chunk
    pos = 0
    while True:
        end = _reply_end(reply_length, inbox, pos)
        if end is None or end > len(inbox):
            break
        tally.replies += 1
        pos = end
    if pos:
        del inbox[:pos]
    if len(inbox) > MAX_REPLY_BYTES:
        del inbox[:]  # a reply that never completes: its bytes are counted (bytes_in), not kept


def _lane_closed(lane: _Lane, selector, tally: _FloodTally, *, reset: bool) -> None:
    if not lane.open:
        return
    lane.open = False
    if reset:
        tally.reset += 1
    else:
        tally.closed += 1
    try:
        selector.unregister(lane.sock)
    except (KeyError, ValueError, OSError):
        pass


def _flood_drain(lanes, selector, reply_length, tally) -> None:
    """Collect replies still in flight, until each sent frame has one or _DRAIN_S passes."""
    deadline = time.perf_counter() + _DRAIN_S
    _want_write(lanes, selector)
    while any(lane.open for lane in lanes):
        remaining = deadline - time.perf_counter()
        if remaining <= 0 or (reply_length is not None and tally.replies >= tally.sent):
            return
        _service(selector, min(remaining, 0.05), reply_length, tally)


# --- connection storm --------------------------------------------------------------------


def connection_storm(
    host: str,
    port: int,
    *,
    count: int,
    rate_per_s: float = 0,
    payload: bytes | None = None,
    linger_reset: bool = False,
    connect_timeout_s: float = 2.0,
    deadline_s: float = OPEN_DEADLINE_S,
) -> AttackResult:
    """Open `count` connections one after another and drop each at once: sending `payload`
    first when given, closing with RST (SO_LINGER 0) when `linger_reset`.  `rate_per_s`
    paces the opens on a fixed schedule (0 = as fast as possible).  `sent` counts the
    connections that were opened (and, with a payload, took it).  No connection is begun
    after `deadline_s` (a device whose backlog is full makes every
    connect wait for its timeout)."""
    how = "RST" if linger_reset else "FIN"
    name = f"connection storm x {count} ({how})"
    failures: Counter = Counter()
    payload_failures: Counter = Counter()
    opened = 0
    slowest, slow = 0.0, 0
    start = time.perf_counter()
    stopped_at = None
    for i in range(count):
        if rate_per_s > 0:
            pause = start + i / rate_per_s - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        if time.perf_counter() - start >= deadline_s:
            stopped_at = i
            break
        began = time.perf_counter()
        sock, why = _connect(host, port, connect_timeout_s)
        took = time.perf_counter() - began
        slowest = max(slowest, took)
        slow += took >= _SLOW_CONNECT_S
        if sock is None:
            failures[why] += 1
            continue
        try:
            if payload:
                sock.settimeout(connect_timeout_s)
                sock.sendall(payload)
            opened += 1
        except OSError as exc:
            payload_failures[f"sending the payload: {_why(exc)}"] += 1
        finally:
            _close(sock, reset=linger_reset)
    duration = time.perf_counter() - start
    notes = _grouped(failures, count, "connections") + _grouped(payload_failures, count, "connections")
    notes.append(f"{opened} of {count} connections opened and closed with {how}")
    if stopped_at is not None:
        notes.append(f"stopped after {stopped_at} connection attempts: the {deadline_s:g} s deadline passed")
    if slow:
        notes.append(
            f"{_plural(slow, 'connect')} took {_SLOW_CONNECT_S:g} s or more (slowest {slowest:.2f} s): the SYN was"
            " retried, typically because the server's listen backlog was full"
        )
    errors = sum(failures.values()) + sum(payload_failures.values())
    return AttackResult(name, opened, 0, errors, duration, opened / duration if duration > 0 else 0.0, notes)


# --- idle connections ----------------------------------------------------------------------


class IdleConnections:
    """The handle `idle_connections` yields: how many connections were accepted, how many
    failed, and (after `check()`, done again on exit) how many the server has closed.

    "Accepted" means the TCP handshake completed; the kernel does that for a listening
    socket before the server program calls accept(), up to the listen backlog.
    """

    def __init__(self, host: str, port: int, count: int, connect_timeout_s: float, deadline_s: float = OPEN_DEADLINE_S):
        self.requested = count
        self.sockets: list[socket.socket] = []
        self.failures: Counter = Counter()
        self.closed_by_server = 0
        self.reset_by_server = 0
        self.bytes_received = 0  # data the server sent on a connection nobody spoke on
        start = time.perf_counter()
        for _ in range(count):
            if time.perf_counter() - start >= deadline_s:
                self.failures[f"not attempted: the {deadline_s:g} s deadline for opening them passed"] += 1
                continue
            sock, why = _connect(host, port, connect_timeout_s)
            if sock is None:
                self.failures[why] += 1
            else:
                self.sockets.append(sock)
        self.accepted = len(self.sockets)
        self.connect_s = time.perf_counter() - start
        self.held_since = time.perf_counter()
        self.held_s = 0.0  # set on release; until then result() measures up to now
        self._released = False
        self._open = list(self.sockets)

    @property
    def refused(self) -> int:
        """Connections that could not be opened (refused, timed out, or another error)."""
        return sum(self.failures.values())

    @property
    def still_open(self) -> int:
        return len(self._open)

    def check(self) -> int:
        """Look, without blocking, for connections the server closed; returns how many
        have been closed so far."""
        still = []
        for sock in self._open:
            state, discarded = _peer_state(sock)
            self.bytes_received += discarded
            if state == "open":
                still.append(sock)
            elif state == "reset":
                self.reset_by_server += 1
            else:
                self.closed_by_server += 1
        self._open = still
        return self.closed_by_server + self.reset_by_server

    def result(self) -> AttackResult:
        held = self.held_s if self._released else time.perf_counter() - self.held_since
        notes = _grouped(self.failures, self.requested, "connections")
        notes.append(f"{self.accepted} of {self.requested} idle connections accepted, held {held:.3f} s")
        lost = self.closed_by_server + self.reset_by_server
        if lost:
            notes.append(f"server closed {self.closed_by_server} and reset {self.reset_by_server} idle connections meanwhile")
        if self.bytes_received:
            notes.append(f"server sent {self.bytes_received} bytes on connections where nothing was asked")
        rate = self.accepted / self.connect_s if self.connect_s > 0 else 0.0
        return AttackResult(
            f"idle connections x {self.requested}", self.accepted, 0, self.refused + lost, held, rate, notes
        )

    def to_dict(self) -> dict:
        return self.result().to_dict()

    # the AttackResult fields, as of now, so the handle reads like a result
    name = property(lambda self: self.result().name)
    sent = property(lambda self: self.accepted)
    replies = property(lambda self: 0)
    errors = property(lambda self: self.result().errors)
    duration_s = property(lambda self: self.result().duration_s)
    rate_per_s = property(lambda self: self.result().rate_per_s)
    notes = property(lambda self: self.result().notes)

    def _release(self) -> None:
        self.held_s = time.perf_counter() - self.held_since
        self._released = True
        self.check()
        for sock in self.sockets:
            _close(sock)
        self._open = []


@contextmanager
def idle_connections(host: str, port: int, *, count: int, connect_timeout_s: float = 2.0,
                     deadline_s: float = OPEN_DEADLINE_S) -> Iterator[IdleConnections]:
    """Hold `count` idle connections open while the with-block runs; the yielded handle
    reports accepted / refused, and on exit how many the server closed meanwhile."""
    hold = IdleConnections(host, port, count, connect_timeout_s, deadline_s)
    try:
        yield hold
    finally:
        hold._release()
