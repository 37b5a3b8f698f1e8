"""Stopping a subprocess started in a session of its own, with every process of its group.

`stop_process_group(proc)`: SIGTERM to the group, a grace period, then SIGKILL to whatever of
the group is left (a server's worker children would otherwise keep its port), and a bounded
wait for the group to empty.  Standard library only; used by the peers and the restarter."""

from __future__ import annotations

import os
import signal
import subprocess
import time

STOP_GRACE_S = 3.0


def stop_process_group(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> int | None:
    """Stop `proc` (started with start_new_session=True) and its group; its exit code, or None
    when it could not be reaped (an unkillable process)."""
    if proc.poll() is None:
        signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    # Whatever happened to the leader, make sure no member of the group survives.
    signal_group(proc.pid, signal.SIGKILL)
    try:
        code = proc.wait(grace_s)
    except subprocess.TimeoutExpired:  # unkillable (D state): nothing more we can do
        code = None
    # Grandchildren are not ours to wait for: watch the group empty (init reaps them).
    deadline = time.monotonic() + grace_s
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return code


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
