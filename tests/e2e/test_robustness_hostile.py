"""The robustness suites against devices that serve nothing and misbehave at the socket: one that
accepts connections and never reads or answers (a black hole), and one that streams bytes at
every connection without end (a chatterbox).  Whatever such a device does, the run must end,
write its results, and give no case a PASS it did not earn; and the harness's memory must not
follow the chatterbox's stream."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from harness.profile import example_profile_path

from .helpers import certify

# Small budgets: these devices fail every case at once, so a short run shows the same.
FAST = ("\nrobustness:\n  recovery_time_ms: 300\n  attack_duration_ms: 300\n  monitor_timeout_ms: 300\n"
        "  fuzz_examples: 10\n  storm_connections: 20\n  idle_connections: 5\n  shrink_time_ms: 2000\n")
RUN_LIMIT_S = 240  # far beyond what the run needs; a hang would meet it


class HostileDevice:
    """A TCP listener on 127.0.0.1 port 0, each connection served by `behaviour(conn, stop)` in a
    thread of its own."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> HostileDevice:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.behaviour(conn, self.stop)
            except OSError:
                pass


def black_hole(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait()  # never reads, never answers: the harness's sends fill the socket buffers


def chatterbox(conn: socket.socket, stop: threading.Event) -> None:
    # a Modbus MBAP header / UACP header that declares the largest reply, then bytes without end
    conn.settimeout(1.0)
    head = bytes.fromhex("0001000000ff01") + b"MSGF\xff\xff\xff\x7f"
    chunk = head + bytes(range(256)) * 256
    while not stop.is_set():
        conn.sendall(chunk)


@pytest.mark.parametrize("behaviour", [black_hole, chatterbox], ids=["black-hole", "chatterbox"])
@pytest.mark.parametrize("scheme, suite", [("modbus+tcp", "modbus_robustness"), ("opc.tcp", "opcua_robustness")],
                         ids=["modbus", "opcua"])
def test_a_device_that_serves_nothing_ends_the_run_with_no_pass(tmp_path, behaviour, scheme, suite):
    profile = tmp_path / "device.yaml"
    profile.write_text(example_profile_path().read_text(encoding="utf-8") + FAST, encoding="utf-8")
    with HostileDevice(behaviour) as device:
        started = time.monotonic()
        code, data, output = certify(f"{scheme}://127.0.0.1:{device.port}", tmp_path / "run", "--suite", suite,
                                     "--no-archive", profile=profile, timeout=RUN_LIMIT_S)
        took = time.monotonic() - started
    assert data is not None and data["run"]["status"] == "finished", output[-3000:]
    verdicts = {c["id"]: c["verdict"] for c in data["cases"]}
    assert verdicts, output[-3000:]
    passed = [case for case, verdict in verdicts.items() if verdict == "PASS"]
    assert passed == [], f"PASS against a device that serves nothing: {passed}\n{output[-3000:]}"
    assert code != 0
    assert device.connections > 0  # the harness did reach it
    print(f"{suite} against a {behaviour.__name__}: {took:.0f} s, {verdicts}")
