"""harness.restart: the profile's restart command brings a device back, on the same port, and
says why when it cannot; a device it started in the foreground never outlives the harness."""

from __future__ import annotations

import os
import sys

import pytest

from harness.liveness import answers_within
from harness.liveness_modbus import checks_from_profile, modbus_probe
from harness.peers.base import free_port
from harness.profile import example_profile_path, load_profile
from harness.restart import Restarter

PROFILE = str(example_profile_path())
# A restarted device must come back where the harness looks for it, so the command names a port;
# the port the OS gave a moment ago is the nearest a test can get to port 0 here.
SIMULATOR = [sys.executable, "-m", "simulators.modbus", PROFILE, "--port", "{port}"]


def _alive(port: int):
    probe = modbus_probe("127.0.0.1", port, 1, checks_from_profile(load_profile(example_profile_path())))

    def alive(within_s: float) -> bool:
        try:
            return answers_within(probe, within_s, 0.5)
        finally:
            probe.close()

    return alive


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) is not running
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_a_device_started_in_the_foreground_is_restarted_on_its_port_and_stopped_at_the_end():
    port = free_port()
    alive = _alive(port)
    with Restarter(SIMULATOR, "127.0.0.1", port, timeout_s=30) as restarter:
        first = restarter.restart(alive)
        assert first.ok, first.problem
        pid = restarter._proc.pid
        again = restarter.restart(alive)  # the previous device is stopped first: it holds the port
        assert again.ok, again.problem
        assert not _running(pid)
        pid = restarter._proc.pid
        assert alive(1.0) and restarter.restarts == 2
    assert not _running(pid), "the device started in the foreground outlived the restarter"
    assert not alive(0.2)


@pytest.mark.parametrize("command, expected", [
    ([sys.executable, "-c", "print('power relay: no answer from rack 3'); raise SystemExit(3)"],
     ["exited with code 3", "power relay: no answer from rack 3"]),
    ([sys.executable, "-c", "pass"], ["did not answer within 0.5 s", "robustness.restart_timeout_ms", "it printed nothing"]),
    (["/nonexistent/restart-plc"], ["could not be started", "fix robustness.restart_command"]),
])
def test_a_restart_that_does_not_bring_the_device_back_says_why(command, expected):
    port = free_port()
    with Restarter(command, "127.0.0.1", port, timeout_s=0.5) as restarter:
        outcome = restarter.restart(_alive(port))
    assert not outcome.ok
    for text in expected:
        assert text in outcome.problem, outcome.problem


def test_placeholders_are_the_targets_and_nothing_reaches_a_shell():
    restarter = Restarter(["restart", "{host}:{port}", "$(reboot); `id`"], "127.0.0.9", 5020, timeout_s=1)
    assert restarter.argv == ["restart", "127.0.0.9:5020", "$(reboot); `id`"]
    restarter.close()
