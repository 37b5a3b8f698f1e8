"""`harness runs` on real runs: the simulator certified clean and with a planted fault, both archived,
then listed, shown and diffed as a user would after a firmware update."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from harness.cli_runs import runs_app
from harness.store import RunArchive
from simulators.modbus.faults import parse_fault
from simulators.modbus.server import start_in_thread

from .helpers import certify, verdicts

# about thirty cases: the FC03 ones break under the fault, the others are the control
SELECTION = "FC01 or FC03 or FC06 or MBAP"
FAULT = "exception=4:fc=3"
CHANGE_LINE = re.compile(r"^  (\S+)  (\S+) -> (\S+)  (MUST|SHOULD|MAY)\b")

harness_app = typer.Typer()
harness_app.add_typer(runs_app, name="runs")  # as harness/cli.py registers it


def runs(*args: str):
    """`harness runs ARGS` as the harness registers it, with a wide terminal so lines do not fold."""
    return CliRunner().invoke(harness_app, ["runs", *args], env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def archived(tmp_path_factory, example_profile):
    base = tmp_path_factory.mktemp("runs-cli")
    archive = base / "archive" / "runs.sqlite"
    made = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_ARCHIVE", str(archive))  # if certify archives its own run, into this file too
        for name, faults in (("clean", []), ("faulty", [parse_fault(FAULT)])):
            with start_in_thread(example_profile, faults) as sim:
                url = f"modbus+tcp://{sim.host}:{sim.port}"
                code, data, output = certify(url, base / name, "-k", SELECTION)
            assert data is not None and data["cases"], output
            made[name] = SimpleNamespace(dir=base / name, url=url, code=code, id=data["run"]["id"])
    with RunArchive.open(archive) as opened:
        for run in made.values():
            opened.add(json.loads((run.dir / "results.json").read_text(encoding="utf-8")), run.dir)
    return SimpleNamespace(archive=str(archive), base=base, **made)


def _file_verdicts(run) -> dict[str, str]:
    return verdicts(json.loads((run.dir / "results.json").read_text(encoding="utf-8")))


def test_diff_lists_exactly_the_cases_whose_verdict_differs(archived):
    clean, faulty = _file_verdicts(archived.clean), _file_verdicts(archived.faulty)
    expected = {cid: (clean[cid], faulty[cid]) for cid in clean.keys() & faulty.keys() if clean[cid] != faulty[cid]}
    assert expected and any(cid.startswith("MB-FC03") for cid in expected)  # the fault did break something
    assert len(clean) >= 20 and clean.keys() == faulty.keys()

    html = archived.base / "reports" / "diff.html"
    result = runs("diff", archived.clean.id, archived.faulty.id[:20], "--html", str(html), "--archive", archived.archive)
    assert result.exit_code == 1, result.output
    listed = {m.group(1): (m.group(2), m.group(3)) for m in map(CHANGE_LINE.match, result.stdout.splitlines()) if m}
    assert listed == expected, result.stdout
    assert f"Verdict changes: {len(expected)} ({len(expected)} regressions, 0 improvements)" in result.stdout
    assert "Only in A" not in result.stdout and "Only in B" not in result.stdout
    assert "Message changed, same verdict: " in result.stdout

    page = html.read_text(encoding="utf-8")
    for cid in expected:
        assert cid in page
    unchanged = sorted(clean.keys() - expected.keys())
    assert unchanged and not any(f">{cid}<" in page for cid in unchanged)
    assert archived.clean.id in page and archived.faulty.id in page


def test_diff_of_a_run_with_itself_exits_0(archived):
    result = runs("diff", archived.faulty.id, "latest", "--archive", archived.archive)
    assert result.exit_code == 0, result.output
    assert "Verdict changes: 0 (0 regressions, 0 improvements)" in result.stdout


def test_diff_takes_results_files_and_chinese_html(archived):
    html = archived.base / "diff.zh.html"
    result = runs("diff", str(archived.faulty.dir / "results.json"), str(archived.clean.dir / "results.json"),
                  "--html", str(html), "--lang", "zh-CN", "--archive", archived.archive)
    assert result.exit_code == 1, result.output
    assert "0 regressions" in result.stdout  # fault -> clean: every change is an improvement
    assert '<html lang="zh-CN">' in html.read_text(encoding="utf-8")


def test_list_filters_by_verdict_and_device(archived):
    clean, faulty = archived.clean.id, archived.faulty.id
    everything = runs("list", "--archive", archived.archive)
    assert everything.exit_code == 0, everything.output
    assert everything.stdout.index(faulty) < everything.stdout.index(clean)  # newest first
    bad = runs("list", "--verdict", "NOT_COMPLIANT", "--archive", archived.archive)
    assert faulty in bad.stdout and clean not in bad.stdout
    good = runs("list", "--verdict", "compliant", "--archive", archived.archive)
    assert clean in good.stdout and faulty not in good.stdout
    device = runs("list", "--device", "POWER METER 100", "--archive", archived.archive)
    assert clean in device.stdout and faulty in device.stdout
    by_port = runs("list", "--device", archived.faulty.url.rsplit("//", 1)[1], "--archive", archived.archive)
    assert faulty in by_port.stdout and clean not in by_port.stdout
    nothing = runs("list", "--device", "no such device", "--archive", archived.archive)
    assert nothing.exit_code == 0 and clean not in nothing.stdout and "No archived run matches" in nothing.stdout


def test_show_prints_the_failures_and_where_the_files_are(archived):
    data = json.loads((archived.faulty.dir / "results.json").read_text(encoding="utf-8"))
    failures = [c for c in data["cases"] if c["verdict"] == "FAIL"]
    result = runs("show", archived.faulty.id[:22], "--archive", archived.archive)
    assert result.exit_code == 0, result.output
    assert f"Cases that did not pass ({len(failures)}):" in result.stdout
    for case in failures:
        assert f"{case['id']}  FAIL  {case['level']}  {' '.join(case['message'].split())}" in result.stdout
    assert "NOT_COMPLIANT" in result.stdout
    assert f"Run directory: {archived.faulty.dir.resolve()}" in result.stdout

    as_json = runs("show", archived.faulty.id, "--json", "--archive", archived.archive)
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == data
