"""The run archive (harness/store.py) and the run diff, on hand-built results documents."""

from __future__ import annotations

import json
import multiprocessing
import re
import sqlite3

import pytest
from typer.testing import CliRunner

from harness.canonical import canonical_sha256
from harness.cli_runs import runs_app
from harness.run_diff import diff_runs
from harness.store import ARCHIVE_ENV, ArchiveError, RunArchive, RunNotFound, default_archive_path, device_identity
from reports.diff import render_diff_html

MODBUS_DEVICE = {"VendorName": "Example Automation", "ProductCode": "EX-PM100", "ProductName": "Power Meter 100",
                 "MajorMinorRevision": "1.2"}


def results(run_id: str, start: str = "2026-03-10T12:00:00.000+00:00", cases: dict | None = None, *,
            objects: dict | None = None, overall: str = "COMPLIANT", url: str = "modbus+tcp://127.0.0.1:1502",
            suite: str = "modbus") -> dict:
    """A results.json document; `cases` maps case id -> verdict or (verdict, message)."""
    cases = cases if cases is not None else {"MB-A": "PASS", "MB-B": "PASS"}
    rows = []
    for case_id, outcome in cases.items():
        verdict, message = outcome if isinstance(outcome, tuple) else (outcome, "")
        rows.append({"id": case_id, "title": f"title of {case_id}", "suite": suite, "requirements": [f"REQ-{case_id}"],
                     "level": "SHOULD" if "SHOULD" in case_id else "MUST", "clause": "AP V1.1b3 §6.3",
                     "verdict": verdict, "message": message, "duration_s": 0.01, "nodeid": "",
                     "evidence": {"frames": [], "expected": "", "observed": "", "notes": []}, "tags": {}})
    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in ("PASS", "FAIL", "INCONCLUSIVE", "NOT_APPLICABLE", "ERROR")}
    return {
        "schema": "harness.results/1",
        "run": {"id": run_id, "start": start, "end": start, "status": "finished", "versions": {}, "command": "harness certify",
                "seed": 1, "host": {}},
        "target": {"url": url, "protocol": "modbus", "host": "127.0.0.1", "port": 1502},
        "profile": None,
        "dut": {"source": "Modbus FC43/14", "objects": dict(MODBUS_DEVICE if objects is None else objects)},
        "summary": {"overall": overall, "counts": counts, "suites": {suite: {"overall": overall, "counts": counts}}},
        "capture": None,
        "cases": rows,
    }


@pytest.fixture
def archive(tmp_path):
    with RunArchive.open(tmp_path / "archive" / "runs.sqlite") as opened:
        yield opened


# --------------------------------------------------------------------------- add / get


def test_add_stores_the_whole_document_and_one_row_per_case(archive, tmp_path):
    doc = results("20260310T120000Z-aaaa0001", cases={"MB-A": "PASS", "MB-B": ("FAIL", "answered 80 01")})
    assert archive.add(doc, tmp_path / "run1") == "20260310T120000Z-aaaa0001"
    stored = archive.get("20260310T120000Z-aaaa0001")
    assert stored.results == doc
    assert stored.sha256 == canonical_sha256(doc)
    assert stored.run_dir == (tmp_path / "run1").resolve()
    assert stored.device_label == "Example Automation Power Meter 100 1.2"
    assert stored.firmware == "1.2" and stored.target_url == "modbus+tcp://127.0.0.1:1502"
    assert stored.suites == ("modbus",) and stored.overall == "COMPLIANT"
    assert stored.counts["FAIL"] == 1 and stored.case_count == 2
    assert archive.case_rows("20260310T120000Z-aaaa0001") == [
        {"id": "MB-A", "suite": "modbus", "verdict": "PASS", "level": "MUST", "message": "", "requirements": ["REQ-MB-A"]},
        {"id": "MB-B", "suite": "modbus", "verdict": "FAIL", "level": "MUST", "message": "answered 80 01",
         "requirements": ["REQ-MB-B"]},
    ]
    assert archive.results("20260310T120000Z-aaaa0001") == doc


def test_adding_a_run_id_again_replaces_it(archive):
    archive.add(results("R-1", cases={"MB-A": "PASS", "MB-B": "PASS", "MB-C": "PASS"}))
    archive.add(results("R-1", cases={"MB-A": "FAIL"}, overall="NOT_COMPLIANT"))
    runs = archive.list()
    assert [r.id for r in runs] == ["R-1"]
    assert runs[0].overall == "NOT_COMPLIANT"
    assert [row["id"] for row in archive.case_rows("R-1")] == ["MB-A"]


def test_a_run_without_id_is_refused(archive):
    doc = results("x")
    doc["run"]["id"] = ""
    with pytest.raises(ArchiveError, match="no run id"):
        archive.add(doc)


def test_refs_full_id_prefix_latest_and_latest_n(archive):
    archive.add(results("20260310T120000Z-aaaa0001", "2026-03-10T12:00:00+00:00"))
    archive.add(results("20260311T120000Z-bbbb0002", "2026-03-11T12:00:00+00:00"))
    archive.add(results("20260311T130000Z-cccc0003", "2026-03-11T13:00:00+00:00"))
    assert archive.get("20260310").id == "20260310T120000Z-aaaa0001"
    assert archive.get("20260311T12").id == "20260311T120000Z-bbbb0002"
    assert archive.get("latest").id == "20260311T130000Z-cccc0003"
    assert archive.get("latest~0").id == "20260311T130000Z-cccc0003"
    assert archive.get("latest~2").id == "20260310T120000Z-aaaa0001"
    with pytest.raises(RunNotFound, match=r"holds only 3 runs, so the oldest is latest~2"):
        archive.get("latest~3")
    with pytest.raises(RunNotFound, match="latest~N with N a number"):
        archive.get("latest~x")


def test_ambiguous_prefix_names_the_candidates(archive):
    archive.add(results("20260311T120000Z-bbbb0002", "2026-03-11T12:00:00+00:00"))
    archive.add(results("20260311T130000Z-cccc0003", "2026-03-11T13:00:00+00:00"))
    with pytest.raises(RunNotFound) as info:
        archive.get("20260311")
    message = str(info.value)
    assert "20260311T120000Z-bbbb0002" in message and "20260311T130000Z-cccc0003" in message
    assert "give more of the id" in message


def test_unknown_run_lists_the_most_recent_ids(archive):
    with pytest.raises(RunNotFound, match="holds no runs yet"):
        archive.get("latest")
    for day in range(1, 8):
        archive.add(results(f"2026030{day}T120000Z-0000000{day}", f"2026-03-0{day}T12:00:00+00:00"))
    with pytest.raises(RunNotFound) as info:
        archive.get("nope")
    message = str(info.value)
    recent = re.findall(r"2026030\dT120000Z-\w+", message)
    assert recent == [f"2026030{day}T120000Z-0000000{day}" for day in (7, 6, 5, 4, 3)]
    assert "harness runs list" in message


# --------------------------------------------------------------------------- list


def test_list_is_newest_first_and_filters(archive):
    archive.add(results("R-mar01", "2026-03-01T12:00:00+00:00"))
    archive.add(results("R-mar05", "2026-03-05T12:00:00+00:00", {"MB-A": "FAIL"}, overall="NOT_COMPLIANT",
                        url="modbus+tcp://10.0.0.7:502"))
    archive.add(results("R-mar09", "2026-03-09T12:00:00+00:00",
                        objects={"VendorName": "Ąćme Ünïted", "ProductName": "Gateway", "MajorMinorRevision": "3.0"}))
    assert [r.id for r in archive.list()] == ["R-mar09", "R-mar05", "R-mar01"]
    assert [r.id for r in archive.list(limit=2)] == ["R-mar09", "R-mar05"]
    # device: a case-insensitive part of the label (also beyond ASCII) or of the target URL
    assert [r.id for r in archive.list(device="POWER meter")] == ["R-mar05", "R-mar01"]
    assert [r.id for r in archive.list(device="ąćme ün")] == ["R-mar09"]
    assert [r.id for r in archive.list(device="10.0.0.7")] == ["R-mar05"]
    assert archive.list(device="no such device") == []
    assert [r.id for r in archive.list(verdict="not_compliant")] == ["R-mar05"]
    assert [r.id for r in archive.list(verdict="Not-Compliant")] == ["R-mar05"]
    # dates are whole days; two days apart from each run, so any local time zone gives the same answer
    assert [r.id for r in archive.list(since="2026-03-03")] == ["R-mar09", "R-mar05"]
    assert [r.id for r in archive.list(until="2026-03-07")] == ["R-mar05", "R-mar01"]
    assert [r.id for r in archive.list(since="2026-03-03", until="2026-03-07")] == ["R-mar05"]
    # a time with an offset is exact
    assert [r.id for r in archive.list(since="2026-03-05T12:00:00+00:00", until="2026-03-05T12:00:00Z")] == ["R-mar05"]
    assert [r.id for r in archive.list(since="2026-03-05T12:00:01+00:00")] == ["R-mar09"]
    assert [r.id for r in archive.list(device="power", verdict="COMPLIANT", since="2026-02-01")] == ["R-mar01"]


def test_list_explains_bad_filters(archive):
    with pytest.raises(ArchiveError, match="choose one of COMPLIANT, CONDITIONALLY_COMPLIANT, NOT_COMPLIANT, INCOMPLETE"):
        archive.list(verdict="FAILED")
    with pytest.raises(ArchiveError, match="not a date or time: write it as 2026-11-22"):
        archive.list(since="last tuesday")


# --------------------------------------------------------------------------- device identity, paths, schema


def test_device_identity_from_modbus_opcua_and_profile():
    modbus = device_identity(results("a"))
    assert (modbus.label, modbus.key, modbus.firmware) == ("Example Automation Power Meter 100 1.2",
                                                           "example automation / power meter 100", "1.2")
    no_name = device_identity(results("a", objects={"VendorName": "ACME", "ProductCode": "X-1", "MajorMinorRevision": "2.0"}))
    assert no_name.label == "ACME X-1 2.0"
    opcua = results("b", objects={"ApplicationUri": "urn:x", "ProductUri": "https://x.invalid", "ManufacturerName": "Example Automation",
                                  "ProductName": "Power Meter 100", "SoftwareVersion": "1.3", "BuildNumber": "418"})
    identity = device_identity(opcua)
    assert identity.label == "Example Automation Power Meter 100 1.3"
    assert identity.key == modbus.key  # the same device over both protocols, and across firmware versions
    profile_only = results("c")
    profile_only["dut"] = None
    profile_only["profile"] = {"device": {"vendor_name": "Example  Automation", "product_code": "EX-PM100", "revision": "1.2"}}
    assert device_identity(profile_only).label == "Example Automation EX-PM100 1.2"
    profile_only["profile"] = None
    assert device_identity(profile_only).label == "" and device_identity(profile_only).key == ""


def test_default_archive_path_honours_env_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv(ARCHIVE_ENV, str(tmp_path / "mine.sqlite"))
    assert default_archive_path() == tmp_path / "mine.sqlite"
    monkeypatch.delenv(ARCHIVE_ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_archive_path() == tmp_path / "xdg" / "protocol-harness" / "runs.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_archive_path() == tmp_path / "home" / ".local" / "share" / "protocol-harness" / "runs.sqlite"


def test_open_creates_directories_and_wal_schema_but_reading_never_creates(tmp_path):
    path = tmp_path / "a" / "b" / "runs.sqlite"
    with pytest.raises(ArchiveError, match="no run archive at"):
        RunArchive.open(path, create=False)
    assert not path.parent.exists()
    RunArchive.open(path).close()
    with sqlite3.connect(path, timeout=10) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]


def test_an_archive_from_a_newer_harness_is_refused(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunArchive.open(path).close()
    with sqlite3.connect(path, timeout=10) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(ArchiveError, match="schema version 99, newer than this harness"):
        RunArchive.open(path)


def test_a_file_that_is_not_an_archive_is_refused(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_text("not a database, just text " * 100)
    with pytest.raises(ArchiveError, match="is not a usable run archive"):
        RunArchive.open(path)


# --------------------------------------------------------------------------- diff


def test_diff_lists_exactly_the_changed_cases_regressions_first():
    a = results("A", cases={
        "C-SAME": ("PASS", ""), "C-FAIL-MUST": "PASS", "C-FAIL-SHOULD": "PASS", "C-ERROR": "PASS", "C-INCONCLUSIVE": "PASS",
        "C-FIXED": ("FAIL", "answered 80 01"), "C-FIXED-INC": "INCONCLUSIVE", "C-NA": "PASS",
        "C-MESSAGE": ("FAIL", "answered 80 01"), "C-GONE": "FAIL"})
    b = results("B", cases={
        "C-SAME": ("PASS", ""), "C-FAIL-MUST": ("FAIL", "no answer in 500 ms"), "C-FAIL-SHOULD": "FAIL", "C-ERROR": "ERROR",
        "C-INCONCLUSIVE": "INCONCLUSIVE", "C-FIXED": "PASS", "C-FIXED-INC": "PASS", "C-NA": "NOT_APPLICABLE",
        "C-MESSAGE": ("FAIL", "answered 80 02"), "C-NEW": "PASS"},
        objects={**MODBUS_DEVICE, "MajorMinorRevision": "1.3"}, overall="NOT_COMPLIANT")
    diff = diff_runs(a, b)
    assert [(c.case_id, c.before, c.after, c.kind) for c in diff.verdict_changed] == [
        ("C-FAIL-MUST", "PASS", "FAIL", "regression"),
        ("C-FAIL-SHOULD", "PASS", "FAIL", "regression"),
        ("C-ERROR", "PASS", "ERROR", "regression"),
        ("C-INCONCLUSIVE", "PASS", "INCONCLUSIVE", "regression"),
        ("C-NA", "PASS", "NOT_APPLICABLE", "changed"),
        ("C-FIXED", "FAIL", "PASS", "improvement"),
        ("C-FIXED-INC", "INCONCLUSIVE", "PASS", "improvement"),
    ]
    assert [c.case_id for c in diff.regressions] == ["C-FAIL-MUST", "C-FAIL-SHOULD", "C-ERROR", "C-INCONCLUSIVE"]
    assert diff.verdict_changed[0].message_after == "no answer in 500 ms"
    assert diff.verdict_changed[0].title == "title of C-FAIL-MUST" and diff.verdict_changed[0].level == "MUST"
    # a changed message with the same verdict is reported apart from the verdict changes
    assert [(c.case_id, c.message_before, c.message_after) for c in diff.message_changed] == [
        ("C-MESSAGE", "answered 80 01", "answered 80 02")]
    assert [c.case_id for c in diff.only_in_a] == ["C-GONE"] and diff.only_in_a[0].verdict == "FAIL"
    assert [c.case_id for c in diff.only_in_b] == ["C-NEW"]
    assert diff.unchanged_count == 1
    assert (diff.a.firmware, diff.b.firmware, diff.a.overall, diff.b.overall) == ("1.2", "1.3", "COMPLIANT", "NOT_COMPLIANT")
    assert diff.warnings == []  # one device, two firmware versions
    data = json.loads(json.dumps(diff.to_dict()))
    assert data["regression_count"] == 4 and data["improvement_count"] == 2
    assert data["verdict_changed"][0]["kind"] == "regression"


def test_diff_of_identical_runs_is_empty_and_different_devices_warn():
    a = results("A", cases={"MB-A": "PASS", "MB-B": ("FAIL", "x")})
    same = diff_runs(a, results("B", cases={"MB-A": "PASS", "MB-B": ("FAIL", "x")}))
    assert not (same.verdict_changed or same.message_changed or same.only_in_a or same.only_in_b)
    assert same.unchanged_count == 2
    other = results("C", cases={"MB-A": "PASS", "MB-B": "PASS"},
                    objects={"VendorName": "Other Corp", "ProductName": "Relay", "MajorMinorRevision": "1.2"})
    diff = diff_runs(a, other)
    assert [c.case_id for c in diff.verdict_changed] == ["MB-B"]  # still diffed
    assert len(diff.warnings) == 1 and "different devices" in diff.warnings[0] and "Other Corp Relay 1.2" in diff.warnings[0]


# --------------------------------------------------------------------------- HTML diff report


def test_html_diff_escapes_device_strings_and_puts_regressions_first():
    hostile = "<script>alert(1)</script>"
    a = results("A", cases={"MB-FIXED": "FAIL", "MB-BROKEN": "PASS", "MB-MSG": ("FAIL", "was <b>bold</b>")})
    b = results("B", cases={"MB-FIXED": "PASS", "MB-BROKEN": ("FAIL", f"device said {hostile}"), "MB-MSG": ("FAIL", "now & then")},
                objects={"VendorName": hostile, "ProductName": "\"quoted' & <b>", "MajorMinorRevision": "9"})
    html = render_diff_html(diff_runs(a, b).to_dict())
    assert hostile not in html and "was <b>bold" not in html and "& <b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "was &lt;b&gt;bold" in html
    assert "&#34;quoted&#39; &amp; &lt;b&gt;" in html
    assert "device said &lt;script&gt;" in html and "now &amp; then" in html
    assert "<script" not in html.lower()
    assert not re.search(r"<(link|img|iframe)\b|\s(src|href)=", html)  # self-contained: nothing fetched
    assert html.index("MB-BROKEN") < html.index("MB-FIXED")  # the regression above the improvement
    details = html[html.index("<details>"):html.index("</details>")]
    assert "MB-MSG" in details and "MB-BROKEN" not in details
    assert 'lang="zh-CN"' in render_diff_html(diff_runs(a, b).to_dict(), lang="zh-CN")


# --------------------------------------------------------------------------- concurrency

WRITERS, RUNS_PER_WRITER, CASES_PER_RUN = 4, 25, 12


def _write_runs(path: str, writer: int, barrier) -> None:
    with RunArchive.open(path) as archive:
        barrier.wait(timeout=60)
        for n in range(RUNS_PER_WRITER):
            cases = {f"MB-W{writer}-{c}": "FAIL" if (n + c) % 7 == 0 else "PASS" for c in range(CASES_PER_RUN)}
            archive.add(results(f"W{writer}-R{n:02d}", f"2026-03-10T12:{writer:02d}:{n:02d}+00:00", cases))


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "runs.sqlite")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    writers = [ctx.Process(target=_write_runs, args=(path, w, barrier)) for w in range(WRITERS)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(timeout=120)
    assert [p.exitcode for p in writers] == [0] * WRITERS
    with RunArchive.open(path, create=False) as archive:
        runs = archive.list()
        assert sorted(r.id for r in runs) == sorted(f"W{w}-R{n:02d}" for w in range(WRITERS) for n in range(RUNS_PER_WRITER))
        for run in runs:
            rows = archive.case_rows(run.id)
            writer = run.id[1]
            assert [r["id"] for r in rows] == [f"MB-W{writer}-{c}" for c in range(CASES_PER_RUN)]
    with sqlite3.connect(path, timeout=10) as conn:
        assert conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0] == WRITERS * RUNS_PER_WRITER * CASES_PER_RUN


# --------------------------------------------------------------------------- CLI usage errors


def test_cli_unknown_run_is_a_one_line_usage_error(tmp_path):
    path = tmp_path / "runs.sqlite"
    with RunArchive.open(path) as archive:
        archive.add(results("20260310T120000Z-aaaa0001"))
    runner = CliRunner()
    for args in (["show", "nope"], ["diff", "latest", "nope"], ["list", "--verdict", "GREAT"], ["list", "--since", "soon"]):
        result = runner.invoke(runs_app, [*args, "--archive", str(path)])
        assert result.exit_code == 2, (args, result.output)
        assert result.stdout == ""
        assert result.stderr.startswith("harness: error: ") and result.stderr.count("\n") == 1, result.stderr
    result = runner.invoke(runs_app, ["show", "nope", "--archive", str(path)])
    assert "20260310T120000Z-aaaa0001" in result.stderr  # names what exists
    missing = tmp_path / "missing.sqlite"
    result = runner.invoke(runs_app, ["show", "latest", "--archive", str(missing)])
    assert result.exit_code == 2 and "no run archive at" in result.stderr
    assert not missing.exists()


def test_cli_prints_device_strings_literally(tmp_path):
    path = tmp_path / "runs.sqlite"
    hostile = "[/red] [bold]x[link=file:///etc/passwd]y"
    with RunArchive.open(path) as archive:
        archive.add(results("R-1", cases={"MB-A": ("FAIL", f"vendor says {hostile}")}, overall="NOT_COMPLIANT",
                            objects={"VendorName": hostile, "ProductName": "P", "MajorMinorRevision": "1"}))
    result = CliRunner().invoke(runs_app, ["show", "R-1", "--archive", str(path)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert f"vendor says {hostile}" in result.stdout and f"{hostile} P 1" in result.stdout
