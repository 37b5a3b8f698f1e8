"""Serve a simulator from its own thread and event loop (for tests, `harness demo`, benchmarks).

`serve_in_thread(service, name)` runs `await service.start()` on a fresh loop (uvloop where
installed) in a daemon thread, returns once it has started (or raises the error it raised), and
keeps the loop running until `stop_thread(loop, thread)`, which runs `service.stop()` there.
"""

from __future__ import annotations

import asyncio
import threading

from .modbus.server import new_event_loop


def serve_in_thread(service, name: str, timeout: float) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(service.start())
        except BaseException as exc:  # handed to the starting thread
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(service.stop())
            loop.close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    if not ready.wait(timeout):
        raise TimeoutError(f"{name} did not start within {timeout} s")
    if failure:
        thread.join(timeout)
        raise failure[0]
    return loop, thread


def stop_thread(loop: asyncio.AbstractEventLoop, thread: threading.Thread, timeout: float) -> None:
    if thread.is_alive():
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # the loop is already closed
            pass
        thread.join(timeout)
