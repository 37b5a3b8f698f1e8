"""`harness probe` drafts a usable profile from a live device (the simulator)."""

from __future__ import annotations

import subprocess

from harness.codec.modbus.constants import Table
from harness.profile import load_profile

from .helpers import HARNESS


def test_probe_drafts_the_simulated_device(simulator, example_profile, tmp_path):
    out = tmp_path / "drafted.yaml"
    proc = subprocess.run([*HARNESS, "probe", f"modbus+tcp://{simulator.host}:{simulator.port}", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    drafted = load_profile(out)  # the draft is a valid profile
    assert drafted.modbus.function_codes == example_profile.modbus.function_codes
    for table in Table:
        assert drafted.modbus.tables[table] == example_profile.modbus.tables[table], table
    assert drafted.device["vendor_name"] == "Example Automation"
    assert drafted.modbus.device_identification.level == "regular"
    assert "DRAFT" in out.read_text()
