"""A long-lived node process that runs one JavaScript client stack for Python (`NodeBridge`).

``node harness/adapters/node_bridge.js STACK --node-modules DIR`` is started once per client
adapter instance, in its own process group, with stdin/stdout as pipes and stderr going to a
temporary file (quoted in error messages).  Python writes one JSON request per line and reads
the reply with the same id (node_bridge.js documents the protocol), so a call costs one round
trip through two pipes, not a process start.

Every wait is bounded: `call()` gives up after its `timeout` (the client's timeout plus a
margin, so the library's own timeout answers first).  A bridge that does not answer in time
is taken for hung: it is killed and `Timeout` is raised; a bridge that dies (EOF on its
stdout, a broken pipe) raises `ConnectionLost`; both quote the tail of its stderr.  `close()`
closes stdin (the bridge then closes its Modbus connection and exits), waits briefly, then
SIGTERM and SIGKILL to the whole process group: nothing is left behind.  Bridges still alive
at interpreter exit are closed by an atexit hook.

Where node and the packages are: ``HARNESS_NODE`` or ``node`` on PATH; ``HARNESS_NODE_MODULES``
or ``<project>/node_modules`` (installed by scripts/install-node-packages.sh).  Missing ones
raise `NotInstalled` naming that script.  Standard library only.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path

from .. import node_runtime
from .errors import AdapterError, ConnectionLost, NotInstalled, Timeout

SCRIPT = Path(__file__).with_name("node_bridge.js")
INSTALL_HINT = node_runtime.INSTALL_HINT
START_TIMEOUT_S = 15.0
STOP_GRACE_S = 1.0
MIN_NODE_MAJOR = 18

_live: weakref.WeakSet[NodeBridge] = weakref.WeakSet()


def node_binary() -> str:
    """The node executable: ``HARNESS_NODE`` or ``node`` on PATH; `NotInstalled` otherwise."""
    try:
        return node_runtime.node_binary()
    except node_runtime.NodeMissing as exc:
        raise NotInstalled(str(exc)) from None


def node_modules_dir() -> Path:
    """``HARNESS_NODE_MODULES`` or <project>/node_modules."""
    return node_runtime.node_modules_dir()


def package_version(package: str) -> str:
    """The installed version of an npm package (its package.json), or `NotInstalled`."""
    try:
        return node_runtime.npm_package_version(package)
    except node_runtime.NodeMissing as exc:
        raise NotInstalled(str(exc)) from None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class NodeBridge:
    """One node process running `stack` (``modbus-serial`` or ``jsmodbus``), spoken to in JSON lines.
    `script` selects another bridge script with the same protocol and command line
    (``node SCRIPT STACK --node-modules DIR``), e.g. node_opcua_bridge.js for ``node-opcua``."""

    def __init__(self, stack: str, start_timeout: float = START_TIMEOUT_S, script: Path = SCRIPT):
        self.stack = stack
        self.script = Path(script)  # another bridge script speaking the same protocol (node_opcua_bridge.js)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.hello: dict = {}
        self._stderr = None
        self._buffer = bytearray()
        self._next_id = 0
        self._lock = threading.Lock()  # one request at a time per bridge

    # ------------------------------------------------------------------ lifecycle
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> NodeBridge:
        """Start the process and wait for its hello (stack name and version)."""
        if self.proc is not None:
            raise RuntimeError("bridge already started")
        node = node_binary()
        argv = [node, str(self.script), self.stack, "--node-modules", str(node_modules_dir().resolve())]
        self._stderr = tempfile.TemporaryFile(prefix=f"node-bridge-{self.stack}-")
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                start_new_session=True,  # own process group: killpg reaches everything it starts
                bufsize=0,
            )
        except OSError as exc:
            self._stderr.close()
            self._stderr = None
            raise NotInstalled(f"cannot run {node} ({exc}); {INSTALL_HINT}") from None
        _live.add(self)
        proc = self.proc
        try:
            self.hello = self.call("hello", {}, self.start_timeout)
        except AdapterError as exc:
            code = proc.poll()
            tail = self.stderr_tail()
            self.close()
            if code == 3 or "Cannot find module" in tail:
                raise NotInstalled(f"node could not load {self.stack}; {INSTALL_HINT}", tail) from None
            raise type(exc)(f"the {self.stack} node bridge did not start: {exc}", exc.detail) from None
        major = str(self.hello.get("node", "0")).split(".")[0]
        if not major.isdigit() or int(major) < MIN_NODE_MAJOR:
            version = self.hello.get("node")
            self.close()
            raise NotInstalled(f"Node.js >= {MIN_NODE_MAJOR} needed, found {version}; {INSTALL_HINT}")
        return self

    def close(self) -> None:
        """End the process: close stdin, short grace, SIGTERM then SIGKILL to its group."""
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                if proc.stdin:
                    proc.stdin.close()  # the bridge closes its connection and exits on EOF
            except OSError:
                pass
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
            _signal_group(proc.pid, signal.SIGKILL)  # whatever the leader did, no member survives
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            if proc.stdout:
                proc.stdout.close()
            _live.discard(self)
        self._buffer.clear()

    def kill(self) -> None:
        """SIGKILL the process group at once (the bridge is hung or broken)."""
        if self.proc is not None:
            _signal_group(self.proc.pid, signal.SIGKILL)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass

    def __del__(self) -> None:  # a forgotten bridge: no process may outlive its owner
        proc = self.proc
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL)
            try:
                proc.wait(STOP_GRACE_S)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def stderr_tail(self, lines: int = 15, max_chars: int = 3000) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", errors="replace")
        except (OSError, ValueError):
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])[-max_chars:]

    def __enter__(self) -> NodeBridge:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ calls
    def call(self, op: str, args: dict, timeout: float) -> object:
        """Send one request, return its result; the bridge's error replies are returned as
        `BridgeReplyError` for the adapter to map.  `Timeout`/`ConnectionLost` when the bridge
        hangs or dies (it is killed then)."""
        with self._lock:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                raise self._dead(f"the {self.stack} node bridge is not running")
            self._next_id += 1
            rid = self._next_id
            line = json.dumps({"id": rid, "op": op, "args": args}, separators=(",", ":")).encode("utf-8") + b"\n"
            try:
                os.write(proc.stdin.fileno(), line)  # small lines: the pipe takes them at once
            except (BrokenPipeError, OSError) as exc:
                raise self._dead(f"the {self.stack} node bridge is gone ({exc})") from None
            deadline = time.monotonic() + timeout
            while True:
                reply = self._read_reply(proc, deadline, op, timeout)
                if reply.get("id") == rid:
                    break
                # a reply to an earlier request (cannot happen: a hung bridge is killed): skip it
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        raise BridgeReplyError(error.get("kind", "other"), error.get("code"), str(error.get("message", "")), error)

    def _read_reply(self, proc: subprocess.Popen, deadline: float, op: str, timeout: float) -> dict:
        fd = proc.stdout.fileno()
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                raw = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                try:
                    reply = json.loads(raw)
                except ValueError:
                    continue  # not a protocol line (should not happen: stdout is reserved)
                if isinstance(reply, dict):
                    return reply
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = self.stderr_tail()
                self.kill()
                self.close()
                raise Timeout(f"the {self.stack} node bridge did not answer {op} within {timeout:g} s (killed)", tail)
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                try:
                    proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
                raise self._dead(f"the {self.stack} node bridge died during {op} (exit status {proc.returncode})")
            self._buffer += chunk

    def _dead(self, message: str) -> ConnectionLost:
        tail = self.stderr_tail()
        self.kill()
        self.close()
        return ConnectionLost(message + (f"; stderr: {tail.splitlines()[-1]}" if tail else ""), tail)


class BridgeReplyError(Exception):
    """An error reply of the bridge: `kind` (modbus, timeout, ...), `code`, the stack's `message`;
    `error` is the whole error object of the reply (a bridge may add fields of its own)."""

    def __init__(self, kind: str, code: int | None, message: str, error: dict | None = None):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.code = code
        self.message = message
        self.error = error or {}


@atexit.register
def _close_all() -> None:
    for bridge in list(_live):
        bridge.close()
