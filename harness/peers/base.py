"""Start and stop a third-party protocol server ("peer") as a subprocess (DESIGN §7).

A peer is some other stack's server (pymodbus, libmodbus, ...) that the harness runs on a free
loopback port so that client stacks and the conformance suites can be pointed at it.  This
module holds what every peer shares:

* `PeerProcess`: a context manager around one subprocess.  The peer announces itself on stdout
  with one line ``listening on modbus+tcp://127.0.0.1:PORT`` or
  ``listening on opc.tcp://127.0.0.1:PORT/PATH`` (optionally preceded by ``version: TEXT``,
  which becomes `.version`); `.url` gives the announced address back.  The peer binds port 0 itself wherever its stack allows it, so there is no
  race for the port.  Where a stack cannot bind port 0, call `free_port()` and pass the number to
  the peer; that has a small race (another process may take the port between our close() and the
  peer's bind()), which shows up as a start-up error naming the peer, never as a hang.
* readiness: after the announcement the parent probes the port: a TCP connect must succeed AND
  the protocol must answer: for Modbus an FC3 read of address 0 gets a reply (any reply,
  exception or not); for OPC UA a Hello gets an Acknowledge (`opcua_probe`).  Everything is
  bounded by the start-up timeout (default 15 s); on failure `PeerError` names the peer and
  quotes the tail of its stderr.
* hard stop: the peer runs in its own process group (session); stop() sends SIGTERM to the
  group, waits 3 s, then SIGKILL, so no grandchild survives.  Peers still running when the
  interpreter exits are stopped by an atexit hook.
* `build_c_program()`: compiles a C source once into a per-user cache directory keyed by the
  source hash (used for the libmodbus server and the benchmark load generator).

Every wait here has a timeout.  Standard library only.
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

from ..process_group import stop_process_group

DEFAULT_STARTUP_TIMEOUT_S = 15.0
LISTEN_RE = re.compile(r"listening on (modbus\+tcp|opc\.tcp)://([^\s:/]+):(\d+)(/\S*)?")
# what the readiness probe of each scheme does, for the error messages
PROBE_WHAT = {"modbus+tcp": "answer a Modbus FC3 read", "opc.tcp": "acknowledge an OPC UA Hello"}
VERSION_RE = re.compile(r"^version:\s*(.+?)\s*$")

_live: weakref.WeakSet[PeerProcess] = weakref.WeakSet()


class PeerError(RuntimeError):
    """A peer could not be built, started or made ready; the message says which and why."""


def project_root() -> Path:
    """The directory that holds the `harness` package (put on PYTHONPATH for Python peers)."""
    return Path(__file__).resolve().parent.parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago: bind port 0, read the number, close.

    Racy by nature (someone else may bind it before the peer does); use only for stacks that
    cannot bind port 0 themselves.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def modbus_probe(host: str, port: int, unit: int = 1, timeout: float = 1.0) -> bytes:
    """Connect, send FC3 read of 1 register at address 0, return the reply ADU.

    Any well-framed reply counts (an exception reply too).  Raises OSError/ConnectionError
    when the port is closed, the peer hangs up, or nothing arrives within `timeout`.
    """
    request = struct.pack(">HHHBBHH", 0x0001, 0, 6, unit, 3, 0, 1)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(request)
        header = _recv_exact(sock, 7)
        length = struct.unpack(">H", header[4:6])[0]
        if not 2 <= length <= 254:
            return header  # a reply, even if a malformed one: the peer is up
        return header + _recv_exact(sock, length - 1)


OPCUA_HELLO_BUFFER = 65536


def opcua_hello(endpoint_url: str) -> bytes:
    """An OPC UA TCP Hello message (Part 6 §7.1.2.3) for `endpoint_url`, built by hand.

    ``HELF`` + uint32 size + ProtocolVersion 0, ReceiveBufferSize and SendBufferSize 65536,
    MaxMessageSize 0 and MaxChunkCount 0 (no limit) + EndpointUrl as an Int32-length string;
    every integer little-endian.
    """
    url = endpoint_url.encode("utf-8")
    body = struct.pack("<5I", 0, OPCUA_HELLO_BUFFER, OPCUA_HELLO_BUFFER, 0, 0) + struct.pack("<i", len(url)) + url
    return b"HELF" + struct.pack("<I", 8 + len(body)) + body


class OpcUaProbeError(ConnectionError):
    """The peer answered the Hello, but not with an Acknowledge (an ERR message or garbage)."""


def opcua_probe(host: str, port: int, timeout: float = 1.0, endpoint_url: str | None = None) -> bytes:
    """Connect, send a Hello, return the Acknowledge message (header included).

    Raises OSError/ConnectionError when the port is closed, the peer hangs up or nothing
    arrives within `timeout`, and `OpcUaProbeError` (a ConnectionError) when the reply is an
    ERR message (its status code and reason are in the message) or not an ACK at all.
    """
    url = endpoint_url or f"opc.tcp://{host}:{port}"
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(opcua_hello(url))
        header = _recv_exact(sock, 8)
        kind, size = header[:3], struct.unpack("<I", header[4:8])[0]
        if kind not in (b"ACK", b"ERR") or not 8 <= size <= 65536:
            raise OpcUaProbeError(f"reply to Hello is not an OPC UA message: {header.hex()}")
        body = _recv_exact(sock, size - 8)
        if kind == b"ERR":
            code = struct.unpack("<I", body[:4])[0] if len(body) >= 4 else 0
            reason = body[8:].decode("utf-8", errors="replace") if len(body) > 8 else ""
            raise OpcUaProbeError(f"Hello answered with ERR 0x{code:08X} {reason!r}")
        if size < 28:
            raise OpcUaProbeError(f"Acknowledge too short ({size} bytes): {(header + body).hex()}")
        return header + body


class PeerProcess:
    """One peer server running as a subprocess on a loopback port.

    >>> with PeerProcess("demo", [sys.executable, "-m", "some.server"]) as peer:
    ...     client.connect(peer.host, peer.port)

    `argv` must make the peer print ``listening on SCHEME://HOST:PORT[/PATH]`` with `scheme`
    ``modbus+tcp`` (the default) or ``opc.tcp``.  If `port` is given (a stack that cannot bind
    port 0), the announcement is optional and the probe decides.  Without an explicit `probe`,
    Modbus peers get `modbus_probe` and OPC UA peers `opcua_probe` (with the announced URL).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        version: str = "",
        host: str = "127.0.0.1",
        port: int | None = None,
        unit: int = 1,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
        probe: Callable[[str, int, float], object] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        on_stop: Sequence[Callable[[], None]] = (),
        scheme: str = "modbus+tcp",
        path: str = "",
    ):
        if scheme not in PROBE_WHAT:
            raise ValueError(f"unknown peer scheme {scheme!r} (known: {', '.join(PROBE_WHAT)})")
        self.name = name
        self.argv = [str(a) for a in argv]
        self.version = version
        self.host = host
        self.port: int = port or 0
        self.unit = unit
        self.startup_timeout = startup_timeout
        self.scheme = scheme
        self.path = path
        self._probe = probe or self._default_probe
        self._env = env
        self._cwd = str(cwd) if cwd else None
        self._on_stop = list(on_stop)
        self._fixed_port = port is not None
        self.proc: subprocess.Popen | None = None
        self._stderr_file = None
        self._stdout_lines: collections.deque[str] = collections.deque(maxlen=200)
        self._announced = threading.Event()
        self._reader: threading.Thread | None = None

    def _default_probe(self, host: str, port: int, timeout: float) -> bytes:
        # chosen by the announced scheme (a peer may announce another scheme than the default)
        if self.scheme == "opc.tcp":
            return opcua_probe(host, port, timeout, endpoint_url=self.url)
        return modbus_probe(host, port, self.unit, timeout)

    # ------------------------------------------------------------------ properties
    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<PeerProcess {self.name} {self.version} {self.url} pid={self.pid} {state}>"

    # ------------------------------------------------------------------ output
    def stdout_lines(self) -> list[str]:
        return list(self._stdout_lines)

    def stderr_tail(self, lines: int = 20, max_chars: int = 4000) -> str:
        if self._stderr_file is None:
            return ""
        try:
            self._stderr_file.flush()
            self._stderr_file.seek(0)
            text = self._stderr_file.read().decode("utf-8", errors="replace")
        except (OSError, ValueError):
            return ""
        tail = "\n".join(text.rstrip().splitlines()[-lines:])
        return tail[-max_chars:]

    def _read_stdout(self, stream) -> None:
        # Runs in a daemon thread for the life of the peer: keeps the pipe drained.
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self._stdout_lines.append(line)
                if not self._announced.is_set():
                    v = VERSION_RE.match(line)
                    if v:  # the peer's own report beats the parent's guess
                        self.version = v.group(1)
                    m = LISTEN_RE.search(line)
                    if m:
                        self.scheme = m.group(1)
                        self.host, self.port = m.group(2), int(m.group(3))
                        self.path = m.group(4) or ""
                        self._announced.set()
        except (OSError, ValueError):
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    # ------------------------------------------------------------------ start / stop
    def _fail(self, why: str) -> PeerError:
        tail = self.stderr_tail()
        out = "\n".join(self.stdout_lines()[-5:])
        self.close()
        msg = f"peer {self.name!r} {why}\n  command: {' '.join(self.argv)}"
        msg += f"\n  stderr tail:\n{_indent(tail) if tail else '    (empty)'}"
        if out:
            msg += f"\n  stdout tail:\n{_indent(out)}"
        return PeerError(msg)

    def start(self) -> PeerProcess:
        if self.proc is not None:
            raise RuntimeError(f"peer {self.name!r} was already started")
        self._stderr_file = tempfile.TemporaryFile(prefix="peer-stderr-")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr_file,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,  # own process group: killpg reaches every child
            )
        except OSError as exc:
            self._stderr_file.close()
            self._stderr_file = None
            raise PeerError(f"peer {self.name!r} could not be started: {exc} (command: {' '.join(self.argv)})") from None
        _live.add(self)
        self._reader = threading.Thread(target=self._read_stdout, args=(self.proc.stdout,), name=f"peer-{self.name}-stdout", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.startup_timeout
        # 1. wait for the announcement (or, with a fixed port, go straight to probing)
        while not self._fixed_port and not self._announced.is_set():
            if self.proc.poll() is not None:
                self._announced.wait(0.2)  # the line may be in flight when it exits
                if not self._announced.is_set():
                    raise self._fail(f"exited with code {self.proc.returncode} before announcing its port")
            if time.monotonic() >= deadline:
                raise self._fail(
                    f"did not print 'listening on {self.scheme}://HOST:PORT' within {self.startup_timeout:g} s"
                )
            self._announced.wait(0.05)
        # 2. probe: TCP connect + the protocol answers (Modbus FC3 read, OPC UA Hello)
        last_error: Exception | None = None
        while True:
            if self.proc.poll() is not None:
                raise self._fail(f"exited with code {self.proc.returncode} while starting (last probe error: {last_error})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(
                    f"did not {PROBE_WHAT[self.scheme]} on {self.host}:{self.port} within "
                    f"{self.startup_timeout:g} s (last probe error: {last_error})"
                )
            try:
                self._probe(self.host, self.port, min(1.0, max(remaining, 0.05)))
                return self
            except (OSError, ConnectionError) as exc:
                last_error = exc
                time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))

    def stop(self) -> int | None:
        """Hard stop: SIGTERM to the process group, wait 3 s, SIGKILL. Returns the exit code."""
        proc = self.proc
        code = None
        if proc is not None:
            code = stop_process_group(proc)  # SIGTERM, a grace period, then SIGKILL to the group
            if self._reader is not None:
                self._reader.join(1.0)
            _live.discard(self)
        # The stderr file stays open for stderr_tail() until close().
        while self._on_stop:
            cb = self._on_stop.pop()
            try:
                cb()
            except Exception:  # noqa: BLE001 - cleanup must not mask the real error
                pass
        return code

    def close(self) -> None:
        self.stop()
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def __enter__(self) -> PeerProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


@atexit.register
def _stop_all() -> None:
    for peer in list(_live):
        peer.stop()


# ---------------------------------------------------------------------- Python peers


def python_peer_env() -> dict[str, str]:
    """Environment for `python -m harness...` peers: the project importable, output unbuffered."""
    env = dict(os.environ)
    root = str(project_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


# ---------------------------------------------------------------------- C programs


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "protocol-harness" / "bin"


def pkg_config(package: str, install_hint: str) -> tuple[str, list[str]]:
    """(version, cflags + libs) of a pkg-config package, or PeerError with the install hint."""
    if shutil.which("pkg-config") is None:
        raise PeerError(f"pkg-config is not installed; {install_hint}")
    try:
        version = subprocess.run(
            ["pkg-config", "--modversion", package], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        flags = subprocess.run(
            ["pkg-config", "--cflags", "--libs", package], capture_output=True, text=True, timeout=10, check=True
        ).stdout.split()
    except subprocess.CalledProcessError:
        raise PeerError(f"{package} development files not found by pkg-config; {install_hint}") from None
    except subprocess.TimeoutExpired:
        raise PeerError(f"pkg-config {package} timed out") from None
    return version, flags


def build_c_program(source: Path, name: str, flags: Sequence[str] = (), key: str = "") -> Path:
    """Compile `source` once into the cache dir, keyed by source hash + flags + `key`.

    Concurrent builders are safe: each compiles to its own temporary name and renames atomically.
    """
    source = Path(source)
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise PeerError("no C compiler found; install one with `apt-get install -y gcc`")
    digest = hashlib.sha256(source.read_bytes() + "\0".join([*flags, key]).encode()).hexdigest()[:16]
    out_dir = cache_dir()
    target = out_dir / f"{name}-{digest}"
    if target.exists() and os.access(target, os.X_OK):
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{target.name}.{os.getpid()}.tmp"
    cmd = [cc, "-O2", "-Wall", "-o", str(tmp), str(source), *flags]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise PeerError(f"compiling {source.name} timed out: {' '.join(cmd)}") from None
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise PeerError(f"compiling {source.name} failed ({' '.join(cmd)}):\n{result.stderr.strip()[-3000:]}")
    os.replace(tmp, target)
    return target


# ---------------------------------------------------------------------- profile data


def table_images(profile) -> dict:
    """Initial contents of each Modbus table the profile declares.

    Returns {Table: (start, values)} where values[i] is the value at address start + i:
    0/1 for the bit tables, 0..65535 for the register tables.  Every point is written at its
    address (registers from `Point.words()`, i.e. `datatypes.encode`); unlisted addresses are 0.
    """
    images: dict = {}
    if profile.modbus is None:
        return images
    for table, extent in profile.modbus.tables.items():
        images[table] = (extent.start, [0] * extent.count)
    for point in profile.points:
        if point.value is None or point.table not in images:
            continue
        start, values = images[point.table]
        words = point.words()  # 0/1 per bit for bit tables, register words otherwise
        for i, word in enumerate(words):
            values[point.address - start + i] = word
    return images
