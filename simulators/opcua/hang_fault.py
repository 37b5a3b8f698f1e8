"""The robustness fault `ua-hang-on-bad-size=MS`: a firmware whose framing bug silences it.

A message whose MessageSize disagrees with what it holds (below the smallest size its type can
have, or a Hello whose fields end before or after the MessageSize) is not answered with the
Error message Part 6 v1.05 §7.1.5 requires: instead the whole server goes silent, on every
connection, new ones included, for MS milliseconds (0: for good).  The robustness suite's
fuzzing case must find such an input by itself and shrink it (ROB-UA-MALFORMED).

Only a server started with the fault gets this protocol class (`hanging_guard`), so the
fault-free path never checks for it.
"""

from __future__ import annotations

import logging
import time

from harness.codec.opcua import uacp

from .uacp_guard import GuardedProtocol

log = logging.getLogger("simulators.opcua")

# Malformed codes (harness.codec.opcua.uacp) meaning "MessageSize and the bytes disagree".
SIZE_CODES = frozenset({"size-too-small", "size-mismatch", "short-body", "trailing-bytes"})


class _Silence:
    """When the server speaks again (monotonic seconds); shared by every connection of a server."""

    def __init__(self, ms: int):
        self.ms = ms
        self.until: float | None = None

    def start(self) -> None:
        self.until = time.monotonic() + self.ms / 1000 if self.ms else float("inf")

    def active(self) -> bool:
        return self.until is not None and time.monotonic() < self.until


class HangingGuard(GuardedProtocol):
    """The UACP guard of a server with the fault; `silence` is set per server by `hanging_guard`."""

    silence: _Silence = _Silence(0)

    def connection_made(self, transport) -> None:
        self._silent = False
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.silence.active():
            return  # hung: whatever comes is dropped, on every connection
        super().data_received(data)

    def _refuse_malformed(self, problem: uacp.Malformed) -> None:
        if problem.code in SIZE_CODES:
            self._hang(problem)
            return
        super()._refuse_malformed(problem)

    def _hello_problem(self, hello: uacp.Hello | uacp.Malformed):
        if isinstance(hello, uacp.Malformed) and hello.code in SIZE_CODES:
            self._hang(hello)
        return super()._hello_problem(hello)

    def _refuse(self, status: int, reason: str) -> None:
        if self._silent:
            return  # the planted bug: no Error message, no close
        super()._refuse(status, reason)

    def _hang(self, problem: uacp.Malformed) -> None:
        how_long = f"{self.silence.ms} ms" if self.silence.ms else "good"
        log.warning("fault ua-hang-on-bad-size: %s from %s; the server goes silent for %s", problem, self.peer_name, how_long)
        self._silent = True
        self._refused = True
        self.silence.start()


def hanging_guard(base: type[GuardedProtocol], ms: int) -> type[GuardedProtocol]:
    """`base` (the guard the server would use) with the fault, silent for `ms` ms (0: for good)."""
    bases = (HangingGuard,) if base is GuardedProtocol else (HangingGuard, base)
    return type(f"Hanging{base.__name__}", bases, {"silence": _Silence(ms)})
