"""The command line every Python Modbus peer runner shares: PROFILE [--host] [--port], checked.

    args, profile = peer_arguments("run_modbus_tk_server", __doc__, argv, "modbus_tk", "modbus-tk")

Prints why and exits (2: a bad profile or one without a modbus section; 1: the stack is not
installed) so that `PeerProcess` shows the reason in its start-up error.
"""

from __future__ import annotations

import argparse
import importlib
import sys


def peer_arguments(prog: str, doc: str | None, argv: list[str] | None, stack_module: str, stack_label: str):
    parser = argparse.ArgumentParser(prog=f"python -m harness.peers.{prog}", description=(doc or prog).splitlines()[0])
    parser.add_argument("profile", help="device profile YAML")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = let the OS choose (default)")
    args = parser.parse_args(argv)

    from harness.profile import ProfileError, load_profile

    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if profile.modbus is None:
        print(f"{prog}: {args.profile}: the profile has no modbus section", file=sys.stderr)
        raise SystemExit(2)
    try:
        importlib.import_module(stack_module)
    except ImportError as exc:
        print(f"{prog}: {stack_label} is not installed ({exc}); pip install 'protocol-harness[peers]'", file=sys.stderr)
        raise SystemExit(1) from None
    return args, profile
