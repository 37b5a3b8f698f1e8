"""`python -m simulators.modbus PROFILE [--host H] [--port N] [--fault NAME]...`

Serves the profile's device on Modbus TCP, prints exactly one line
`listening on modbus+tcp://HOST:PORT` once it accepts connections, and runs until SIGTERM or
SIGINT.  Exit status: 0 after a clean stop, 2 for a bad profile or fault, 3 when the address
cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from harness.profile import ProfileError, load_profile

from .faults import FaultSyntaxError, parse_fault
from .server import ModbusSimulator, new_event_loop


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulators.modbus", description="Reference Modbus TCP device simulator.")
    parser.add_argument("profile", help="device profile (YAML), e.g. simulators/profiles/example-device.yaml")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free port)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME",
        help="misbehave on purpose, e.g. delay=200, no-reply:every=5, exception=6:fc=3 (repeatable)",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level for stderr (default WARNING)")
    return parser.parse_args(argv)


async def _serve(simulator: ModbusSimulator) -> None:
    await simulator.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening on {simulator.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        profile = load_profile(args.profile)
        faults = [parse_fault(text) for text in args.fault]
        simulator = ModbusSimulator(profile, faults, args.host, args.port)
    except (ProfileError, FaultSyntaxError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(_serve(simulator))
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
