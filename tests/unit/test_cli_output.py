"""Device strings reach the terminal as text: rich markup in them is printed, not parsed."""

from __future__ import annotations

from harness import cli


def test_summary_prints_device_strings_literally(tmp_path, capsys):
    hostile = "[/red] [bold]x[link=file:///etc/passwd]y"
    results = {
        "summary": {"overall": "NOT_COMPLIANT", "counts": {"FAIL": 1}, "coverage": {}},
        "cases": [{"id": "MB-X", "level": "MUST", "verdict": "FAIL", "message": f"vendor says {hostile}"}],
    }
    cli.console.width = 400
    cli._print_summary(results, tmp_path)
    out = capsys.readouterr().out
    assert hostile in out
    assert "Overall: NOT_COMPLIANT" in out
