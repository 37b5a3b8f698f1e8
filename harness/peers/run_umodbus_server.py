"""Run the uModbus TCP server for a device profile: ``python -m harness.peers.run_umodbus_server PROFILE``.

Binds 127.0.0.1 port 0 by default (socketserver binds in the constructor; the port is read back
from ``server_address``), then prints

    version: 1.0.4
    listening on modbus+tcp://127.0.0.1:PORT

and serves with ``serve_forever()`` until SIGTERM/SIGINT.  uModbus runs as shipped (see
harness/peers/umodbus_server.py for how the profile is loaded and what a single-threaded
TCPServer means for concurrent clients).  The signal handler raises an exception in the main
thread, so a signal ends the process even while uModbus is blocked reading from a client.
Exit codes: 0 after a signal, 2 for a bad profile or arguments, 1 if uModbus is missing or
cannot listen.
"""

from __future__ import annotations

import signal
import sys

from harness.peers.runner_args import peer_arguments


class _Stop(BaseException):
    """Raised by the signal handler: unwinds serve_forever() wherever it is blocked."""


def _on_signal(signum, frame):
    raise _Stop()


def main(argv: list[str] | None = None) -> int:
    args, profile = peer_arguments("run_umodbus_server", __doc__, argv, "umodbus", "uModbus")

    from harness.peers.umodbus_server import build_app, umodbus_version

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    try:
        try:
            app, _store = build_app(profile, args.host, args.port)
        except OSError as exc:
            print(f"run_umodbus_server: uModbus could not listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        bound_host, bound_port = app.server_address[:2]
        print(f"version: {umodbus_version()}", flush=True)
        print(f"listening on modbus+tcp://{bound_host}:{bound_port}", flush=True)
        try:
            app.serve_forever(poll_interval=0.2)
        finally:
            app.server_close()
    except _Stop:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
