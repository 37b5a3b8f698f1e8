"""A real certification run, signed and verified with the commands: one changed byte is caught."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from harness.cli_integrity import sign_command, verify_command
from harness.signing import KEY_ENV
from simulators.modbus.server import start_in_thread

from .helpers import certify


@pytest.fixture
def harness_app(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "unused-default-key.pem"))  # never the user's home
    app = typer.Typer()
    app.command("sign")(sign_command)
    app.command("verify")(verify_command)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def _flip_one_byte(path, needle: bytes) -> bytes:
    """Change one byte of `path` (the first byte after `needle`); returns the original content."""
    original = path.read_bytes()
    at = original.index(needle) + len(needle)
    changed = bytearray(original)
    changed[at] ^= 0x01
    path.write_bytes(bytes(changed))
    return original


def test_signed_certification_run_detects_one_changed_byte(example_profile, tmp_path, harness_app):
    run = tmp_path / "run"
    with start_in_thread(example_profile) as sim:
        code, data, output = certify(f"modbus+tcp://{sim.host}:{sim.port}", run, "-k", "MB-FC03-QTY")
    assert code == 0, output
    assert data["run"]["status"] == "finished"
    for name in ("results.json", "report.html", "capture.pcap", "junit.xml"):
        assert (run / name).is_file(), f"certify did not write {name}:\n{output}"

    key = tmp_path / "keys" / "lab.pem"
    signed = harness_app("sign", run, "--key", key, "--new-key", "--signer", "E2E Lab")
    assert signed.exit_code == 0, signed.output
    assert (run / "signature.json").is_file() and key.is_file()

    verified = harness_app("verify", run, "--public-key", f"{key}.pub")
    assert verified.exit_code == 0, verified.output
    assert "VERIFIED" in verified.output and "NOT VERIFIED" not in verified.output

    results = run / "results.json"
    original = _flip_one_byte(results, b'"title": "FC03 quantity 1 ')  # "is served" -> "hs served"
    tampered = harness_app("verify", run, "--public-key", f"{key}.pub")
    assert tampered.exit_code == 1, tampered.output
    assert "results.json changed" in tampered.output
    assert "case MB-FC03-QTY-1 changed" in tampered.output
    assert "NOT VERIFIED" in tampered.output
    results.write_bytes(original)
    assert harness_app("verify", run).exit_code == 0

    report = run / "report.html"
    _flip_one_byte(report, b"<html")
    tampered = harness_app("verify", run)
    assert tampered.exit_code == 1, tampered.output
    assert "report.html changed" in tampered.output
    assert "results.json" not in [line.split()[1] for line in tampered.output.splitlines() if line.startswith("- ")]
