"""Running `harness certify` as a user would: a subprocess, its exit code, its results.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.profile import example_profile_path

HARNESS = [sys.executable, "-m", "harness.cli"]


def certify(url: str, out: Path, *args: str, profile: Path | None = None, timeout: float = 240) -> tuple[int, dict | None, str]:
    cmd = [*HARNESS, "certify", url, "--profile", str(profile or example_profile_path()), "--out", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    results = out / "results.json"
    data = json.loads(results.read_text()) if results.exists() else None
    return proc.returncode, data, proc.stdout + proc.stderr


def verdicts(data: dict) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in data["cases"]}
