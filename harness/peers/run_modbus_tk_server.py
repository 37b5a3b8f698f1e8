"""Run the modbus-tk TCP server for a device profile: ``python -m harness.peers.run_modbus_tk_server PROFILE``.

Binds 127.0.0.1 port 0 by default (modbus-tk binds in its server thread; the port is read back
from its listening socket), then prints

    version: 1.1.5
    listening on modbus+tcp://127.0.0.1:PORT

and serves until SIGTERM/SIGINT.  modbus-tk runs as shipped (see harness/peers/modbus_tk_server.py
for how the profile is loaded).  Exit codes: 0 after a signal, 2 for a bad profile or arguments,
1 if modbus-tk is missing or fails to start.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from harness.peers.runner_args import peer_arguments

BIND_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 2.0


def main(argv: list[str] | None = None) -> int:
    args, profile = peer_arguments("run_modbus_tk_server", __doc__, argv, "modbus_tk", "modbus-tk")

    from harness.peers.modbus_tk_server import build_server

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    server = build_server(profile, args.host, args.port)
    server.start()
    # modbus-tk creates and binds its socket in the server thread: wait for it (bounded).
    deadline = time.monotonic() + BIND_TIMEOUT_S
    sock = None
    while time.monotonic() < deadline and not stop.is_set():
        sock = getattr(server, "_sock", None)
        if sock is not None:
            try:
                bound_host, bound_port = sock.getsockname()[:2]
                if bound_port:
                    break
            except OSError:
                pass
        if not server._thread.is_alive():  # the bind failed: modbus-tk logged why on stderr
            print(f"run_modbus_tk_server: modbus-tk could not listen on {args.host}:{args.port}", file=sys.stderr)
            return 1
        time.sleep(0.005)
    else:
        if not stop.is_set():
            print(f"run_modbus_tk_server: modbus-tk did not listen within {BIND_TIMEOUT_S:g} s", file=sys.stderr)
        _stop(server)
        return 1 if not stop.is_set() else 0
    import modbus_tk

    print(f"version: {getattr(modbus_tk, 'VERSION', '') or 'unknown'}", flush=True)
    print(f"listening on modbus+tcp://{bound_host}:{bound_port}", flush=True)

    while not stop.wait(0.5):
        if not server._thread.is_alive():
            print("run_modbus_tk_server: the modbus-tk server thread ended", file=sys.stderr)
            return 1
    _stop(server)
    return 0


def _stop(server) -> None:
    """server.stop() joins modbus-tk's thread (up to ~1 s of select timeout); bounded here too."""
    stopper = threading.Thread(target=server.stop, daemon=True)
    stopper.start()
    stopper.join(STOP_TIMEOUT_S)


if __name__ == "__main__":
    sys.exit(main())
