"""Each server stack's own conformance run, stored and reused by `harness matrix`.

The matrix names the side that broke a failing cell from each side's conformance verdicts
(`harness/matrix_attribution.py`).  For a server stack those are the server suite's verdicts
against it: `server_conformance()` starts a fresh instance of each server (loaded with the
matrix's profile), runs `harness certify` against it in a subprocess, and keeps the results in

    STORE/<protocol>/<server>/results.json, report.html, ...   (what certify writes)
    STORE/<protocol>/<server>/stack.json                        (what the run was made for)

A stored run is reused while it was made for the same stack version, profile, suite catalogue
and harness version; `rerun=True` makes a fresh one anyway.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .matrix_attribution import SideVerdicts

CERTIFY_TIMEOUT_S = 900.0


@dataclass
class StoredRun:
    server: str
    directory: Path
    key: dict
    reused: bool

    def verdicts(self) -> SideVerdicts:
        data = json.loads((self.directory / "results.json").read_text(encoding="utf-8"))
        counts = ", ".join(f"{n} {v}" for v, n in data["summary"]["counts"].items() if n)
        source = f"{self.directory / 'results.json'}: {self.key['stack']} {self.key['version']}, {data['summary']['overall']} ({counts})"
        return SideVerdicts.from_cases(source, data["cases"])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _key(protocol: str, suite: str, server, profile_path: Path) -> dict:
    from . import __version__
    from .requirements import suite_catalogue

    return {"stack": server.name, "version": server.version, "protocol": protocol, "profile": _sha(profile_path),
            "catalogue": suite_catalogue(suite).sha256[:16], "harness": __version__}


def _stored_key(directory: Path) -> dict | None:
    try:
        key = json.loads((directory / "stack.json").read_text(encoding="utf-8"))
        json.loads((directory / "results.json").read_text(encoding="utf-8"))["summary"]["counts"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return key.get("key") if isinstance(key, dict) else None


def _certify(protocol: str, suite: str, name: str, profile_path: Path, directory: Path, rerun: bool) -> StoredRun:
    from .peers.registry import start_server

    server = start_server(protocol, name, profile_path)
    try:
        key = _key(protocol, suite, server, profile_path)
        if not rerun and _stored_key(directory) == key:
            return StoredRun(name, directory, key, reused=True)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "stack.json").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "harness.cli", "certify", server.url, "--profile", str(profile_path),
                "--suite", suite, "--out", str(directory)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=CERTIFY_TIMEOUT_S)
        if proc.returncode not in (0, 1) or not (directory / "results.json").exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"certify exited {proc.returncode}: {' | '.join(tail)}")
        made = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (directory / "stack.json").write_text(json.dumps({"key": key, "made": made, "url": server.url}, indent=1), encoding="utf-8")
        return StoredRun(name, directory, key, reused=False)
    finally:
        server.close()


def server_conformance(protocol: str, suite: str, servers: list[str], profile_path: Path, store: Path, *,
                       rerun: bool = False, workers: int = 2, progress=print) -> dict[str, SideVerdicts | str]:
    """{server: its verdicts, or the reason there are none}; runs certify (the server `suite`)
    where nothing fitting is stored."""
    from .peers.base import PeerError

    profile_path = Path(profile_path).resolve()

    def one(name: str):
        directory = store / protocol / name
        try:
            run = _certify(protocol, suite, name, profile_path, directory, rerun)
            verdicts = run.verdicts()
        except (PeerError, OSError, RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
            progress(f"  {name}: no conformance run ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
            return name, f"no conformance run: {exc}"
        how = "reused" if run.reused else "made"
        progress(f"  {name} {run.key['version']}: conformance run {how} -> {directory}/")
        return name, verdicts

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(pool.map(one, servers))
