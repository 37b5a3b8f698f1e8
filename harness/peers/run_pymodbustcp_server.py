"""Run the pyModbusTCP server for a device profile: ``python -m harness.peers.run_pymodbustcp_server PROFILE``.

Binds 127.0.0.1 port 0 by default (``ModbusServer(no_block=True).start()`` binds and serves from
a thread; the port is read back from its socketserver), then prints

    version: 0.3.1
    listening on modbus+tcp://127.0.0.1:PORT

and serves until SIGTERM/SIGINT.  pyModbusTCP runs as shipped (see
harness/peers/pymodbustcp_server.py for how the profile is loaded).  Exit codes: 0 after a
signal, 2 for a bad profile or arguments, 1 if pyModbusTCP is missing or cannot listen.
"""

from __future__ import annotations

import signal
import sys
import threading

from harness.peers.runner_args import peer_arguments

STOP_TIMEOUT_S = 2.0


def main(argv: list[str] | None = None) -> int:
    args, profile = peer_arguments("run_pymodbustcp_server", __doc__, argv, "pyModbusTCP.server", "pyModbusTCP")

    from harness.peers.pymodbustcp_server import build_server, pymodbustcp_version

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    from pyModbusTCP.server import ModbusServer

    server = build_server(profile, args.host, args.port)
    try:
        server.start()
    except ModbusServer.Error as exc:
        print(f"run_pymodbustcp_server: pyModbusTCP could not listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    bound_host, bound_port = server._service.server_address[:2]
    print(f"version: {pymodbustcp_version()}", flush=True)
    print(f"listening on modbus+tcp://{bound_host}:{bound_port}", flush=True)

    while not stop.wait(0.5):
        pass
    stopper = threading.Thread(target=server.stop, daemon=True)  # shutdown() polls every 0.5 s
    stopper.start()
    stopper.join(STOP_TIMEOUT_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
