"""Run the pymodbus TCP server for a device profile: ``python -m harness.peers.run_pymodbus_server PROFILE``.

Binds 127.0.0.1 port 0 by default (pymodbus passes the port straight to
`loop.create_server`, so port 0 works), then prints

    version: 3.16.1
    listening on modbus+tcp://127.0.0.1:PORT

and serves until SIGTERM/SIGINT.  The server runs with pymodbus's default settings on the
default asyncio event loop: this process exists to observe pymodbus as it is shipped.
Exit codes: 0 after a signal, 2 for a bad profile or arguments, 1 if pymodbus fails to start.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from harness.peers.runner_args import peer_arguments


def main(argv: list[str] | None = None) -> int:
    args, profile = peer_arguments("run_pymodbus_server", __doc__, argv, "pymodbus", "pymodbus")
    try:
        import pymodbus

        return asyncio.run(_serve(profile, args.host, args.port, pymodbus.__version__))
    except KeyboardInterrupt:
        return 0


async def _serve(profile, host: str, port: int, version: str) -> int:
    from pymodbus.server import ModbusTcpServer

    from harness.peers.pymodbus_server import build_server_config

    server = ModbusTcpServer(address=(host, port), **build_server_config(profile))
    try:
        await server.serve_forever(background=True)
    except RuntimeError as exc:
        print(f"run_pymodbus_server: pymodbus could not listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    sockets = getattr(server.transport, "sockets", None) or []
    if not sockets:
        print("run_pymodbus_server: pymodbus reports no listening socket", file=sys.stderr)
        return 1
    bound_host, bound_port = sockets[0].getsockname()[:2]
    print(f"version: {version}", flush=True)
    print(f"listening on modbus+tcp://{bound_host}:{bound_port}", flush=True)

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop
    try:
        await asyncio.wait_for(server.shutdown(), timeout=2.0)
    except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - exiting anyway
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
