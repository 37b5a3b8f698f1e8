"""Bring a dead device back: the profile's `robustness.restart_command`.

An input that kills a device for good cannot be shrunk: to ask whether a simpler input kills it
too, the device must be alive again.  With a restart command in the profile, the harness runs it
whenever the device is down and it needs the device alive (before each try while shrinking, and
after a case that left the device dead, so the next case is not blamed for it), then waits up to
`restart_timeout_ms` for the device to answer its liveness probe.

The command is an argument list, run without a shell; `{host}` and `{port}` in an argument are
replaced by the target's.  It may be either of two kinds, told apart by what it does:

- an action that ends (a script that power-cycles a PLC, ``systemctl restart plc``): it must
  exit 0, and the device must then answer;
- the device itself, started in the foreground (a simulator, a server process): it is still
  running when the device answers.  The harness keeps it, stops it before the next restart
  (a hung device still holds its port), and stops it at the end of the run.

Each command's output goes to a temporary file; a failed restart quotes its last lines.
"""

from __future__ import annotations

import atexit
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .process_group import stop_process_group

Alive = Callable[[float], bool]  # alive(within_s): does the device answer within that time?

ASK_EVERY_S = 1.0  # while waiting for the restarted device, how long each liveness ask may take
OUTPUT_TAIL_LINES = 8

_running: weakref.WeakSet[Restarter] = weakref.WeakSet()


@dataclass(frozen=True)
class RestartOutcome:
    ok: bool
    took_s: float
    problem: str = ""  # why the device is not back ("" when it is)


class Restarter:
    """Runs the restart command for one target; see the module docstring.

        restarter = Restarter(profile.robustness.restart_command, host, port, timeout_s=30)
        outcome = restarter.restart(alive)    # alive(within_s) -> bool
        ...
        restarter.close()                     # stops a device it started in the foreground
    """

    def __init__(self, command: Sequence[str], host: str, port: int, *, timeout_s: float):
        if not command:
            raise ValueError("a restart command needs at least the program to run")
        self.argv = [arg.format(host=host, port=port) for arg in command]
        self.timeout_s = timeout_s
        self.outcomes: list[RestartOutcome] = []
        self._proc: subprocess.Popen | None = None
        self._output = None
        _running.add(self)

    @property
    def restarts(self) -> int:
        return len(self.outcomes)

    def restart(self, alive: Alive) -> RestartOutcome:
        """Run the command and wait until `alive` says the device answers (or the timeout)."""
        start = time.monotonic()
        self._stop_previous()
        outcome = self._run_and_wait(alive, start)
        self.outcomes.append(outcome)
        return outcome

    def _run_and_wait(self, alive: Alive, start: float) -> RestartOutcome:
        self._output = tempfile.TemporaryFile(prefix="harness-restart-")
        try:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._output,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            return RestartOutcome(False, time.monotonic() - start,
                                  f"the restart command could not be started: {exc} (command: {self._shown()}); "
                                  "fix robustness.restart_command in the profile")
        deadline = start + self.timeout_s
        while True:
            code = self._proc.poll()
            if code not in (None, 0):
                return RestartOutcome(False, time.monotonic() - start,
                                      f"the restart command exited with code {code} (command: {self._shown()})"
                                      + self._tail())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = self._tail()
                self._stop_previous()  # a device started in the foreground that never answered
                return RestartOutcome(False, time.monotonic() - start,
                                      f"the device did not answer within {self.timeout_s:g} s of the restart command "
                                      f"(command: {self._shown()}; robustness.restart_timeout_ms)" + tail)
            if alive(min(ASK_EVERY_S, remaining)):
                return RestartOutcome(True, time.monotonic() - start)

    def _shown(self) -> str:
        return " ".join(self.argv)

    def _tail(self) -> str:
        if self._output is None:
            return ""
        try:
            self._output.seek(0)
            lines = self._output.read().decode("utf-8", errors="replace").rstrip().splitlines()[-OUTPUT_TAIL_LINES:]
        except (OSError, ValueError):
            return ""
        return "; its last output: " + " | ".join(lines) if lines else "; it printed nothing"

    def _stop_previous(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            stop_process_group(proc)
        if self._output is not None:
            self._output.close()
            self._output = None

    def close(self) -> None:
        """Stop a device the command started in the foreground; idempotent."""
        self._stop_previous()
        _running.discard(self)

    def __enter__(self) -> Restarter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@atexit.register
def _stop_all() -> None:
    # A harness that exits without closing (an interrupted run) still leaves no device behind.
    for restarter in list(_running):
        restarter.close()
