"""`harness runs list | show RUN | diff RUN_A RUN_B`: the run archive on the command line.

    harness runs list [--device TEXT] [--since DATE] [--until DATE] [--verdict V] [--limit N]
    harness runs show RUN [--json]
    harness runs diff RUN_A RUN_B [--html FILE] [--lang en|zh-CN]

RUN is a run id, a unique prefix of one, `latest` or `latest~N`; `diff` also takes a path to a
results.json.  Every command reads the archive named by --archive, else $HARNESS_ARCHIVE, else
the default path (harness/store.py).  Exit codes: 0 fine (diff: no verdict changed), 1 diff: a
verdict changed, 2 usage error (unknown run, bad date, no archive).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .run_diff import RunDiff, diff_runs
from .store import ArchiveError, RunArchive, default_archive_path

runs_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="The run archive: list archived runs, show one, diff two.")

EXIT_SAME, EXIT_CHANGED, EXIT_USAGE = 0, 1, 2
VERDICT_STYLE = {"PASS": "green", "FAIL": "bold red", "ERROR": "magenta", "INCONCLUSIVE": "yellow", "NOT_APPLICABLE": "dim"}
OVERALL_STYLE = {"COMPLIANT": "bold green", "CONDITIONALLY_COMPLIANT": "bold yellow", "NOT_COMPLIANT": "bold red",
                 "INCOMPLETE": "bold magenta"}
KIND_STYLE = {"regression": "bold red", "improvement": "green", "changed": "yellow"}
NOT_PASSED = ("FAIL", "ERROR", "INCONCLUSIVE")

PIPE_WIDTH = 200
ARCHIVE_HELP = "the run archive file (default: $HARNESS_ARCHIVE, else ~/.local/share/protocol-harness/runs.sqlite)"


def _consoles() -> tuple[Console, Console]:
    # markup=False: device strings and messages may contain "[/red]" and must print as they are.
    # Made per command, so that the width is read when the command runs; piped output (no
    # terminal, no $COLUMNS) gets wide lines rather than rich's 80 columns, for grep and diff.
    console = Console(highlight=False, markup=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPE_WIDTH
    return console, Console(stderr=True, highlight=False, markup=False)


def _usage_error(message: str) -> typer.Exit:
    _, err = _consoles()
    err.print(Text.assemble(("harness: error:", "red"), " ", " ".join(message.split())), soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


@contextmanager
def _archive(path: Optional[Path]) -> Iterator[RunArchive]:
    """The archive to read (never created by reading it); its errors, also those raised in the
    with-block (unknown run, bad date), become usage errors."""
    try:
        with RunArchive.open(path or default_archive_path(), create=False) as archive:
            yield archive
    except ArchiveError as exc:
        raise _usage_error(str(exc)) from None


def _local_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def _counts_text(counts: dict) -> Text:
    text = Text()
    for verdict, n in counts.items():
        if n:
            if text:
                text.append(", ")
            text.append(f"{n} {verdict.lower().replace('_', ' ')}", style=VERDICT_STYLE.get(verdict, ""))
    return text


def _overall_text(overall: str) -> Text:
    return Text(overall or "?", style=OVERALL_STYLE.get(overall, "bold"))


# --------------------------------------------------------------------------- list


@runs_app.command("list")
def list_runs(
    device: Optional[str] = typer.Option(None, "--device", help="only runs whose device or target URL contains this text (any case)"),
    since: Optional[str] = typer.Option(None, "--since", help="only runs started on or after this date/time (ISO, local time unless an offset is given)"),
    until: Optional[str] = typer.Option(None, "--until", help="only runs started on or before this date/time (a date covers the whole day)"),
    verdict: Optional[str] = typer.Option(None, "--verdict", help="only runs with this overall verdict, e.g. NOT_COMPLIANT"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="at most N runs (the newest)"),
    archive_path: Optional[Path] = typer.Option(None, "--archive", help=ARCHIVE_HELP),
):
    """List archived runs, newest first."""
    console, _ = _consoles()
    path = archive_path or default_archive_path()
    if not path.exists():
        console.print(f"No runs archived yet: there is no archive at {path}.", soft_wrap=True)
        return
    with _archive(path) as archive:
        runs = archive.list(device=device, since=since, until=until, verdict=verdict, limit=limit)
    if not runs:
        console.print(f"No archived run matches in {path}.", soft_wrap=True)
        return
    table = Table(title=f"Archived runs ({len(runs)}) in {path}", title_justify="left", box=box.SIMPLE_HEAD)
    # the verdict columns before the long device and target texts, which fold first when narrow
    table.add_column("run", no_wrap=True)
    table.add_column("started (local)", no_wrap=True)
    table.add_column("overall", no_wrap=True)
    table.add_column("cases", overflow="fold", min_width=8)
    table.add_column("device", overflow="fold", min_width=10)
    table.add_column("target", overflow="fold", min_width=10)
    for run in runs:
        target = Text(run.target_url) if run.target_url else Text(", ".join(run.suites), style="dim")
        table.add_row(run.id, _local_time(run.start), _overall_text(run.overall), _counts_text(run.counts),
                      run.device_label, target)
    console.print(table)


# --------------------------------------------------------------------------- show


@runs_app.command("show")
def show(
    run: str = typer.Argument(..., help="run id, unique prefix, latest or latest~N"),
    as_json: bool = typer.Option(False, "--json", help="print the stored results.json document"),
    archive_path: Optional[Path] = typer.Option(None, "--archive", help=ARCHIVE_HELP),
):
    """Show one archived run: who, when, the verdict, what did not pass, and where its files are."""
    with _archive(archive_path) as archive:
        stored = archive.get(run)
    if as_json:
        typer.echo(json.dumps(stored.results, indent=2, ensure_ascii=False))
        return
    console, _ = _consoles()
    results = stored.results
    meta = results.get("run") or {}
    console.print(Text.assemble(("Run ", "bold"), (stored.id, "bold")), soft_wrap=True)
    rows = [
        ("started", f"{stored.start}  (local {_local_time(stored.start)})" if stored.start else ""),
        ("ended", f"{stored.end}  status {stored.status}" if stored.end else stored.status),
        ("device", stored.device_label or "(unknown)"),
        ("firmware", stored.firmware),
        ("target", stored.target_url),
        ("suites", ", ".join(stored.suites)),
        ("command", str(meta.get("command") or "")),
        ("sha256", stored.sha256),
    ]
    for label, value in rows:
        if value:
            console.print(Text.assemble((f"  {label:9s}", "dim"), " ", value), soft_wrap=True)
    console.print(Text.assemble(("  overall  ", "dim"), " ", _overall_text(stored.overall), "  ", _counts_text(stored.counts)),
                  soft_wrap=True)
    failures = [c for c in results.get("cases") or () if c.get("verdict") in NOT_PASSED]
    if failures:
        console.print(f"Cases that did not pass ({len(failures)}):")
        for case in failures:
            console.print(Text.assemble("  ", (case.get("id", ""), "bold"), "  ",
                                        (case.get("verdict", ""), VERDICT_STYLE.get(case.get("verdict", ""), "")),
                                        f"  {case.get('level', '')}  ", " ".join(str(case.get("message") or "").split())),
                          soft_wrap=True)
    else:
        console.print("Every case passed or was not applicable.")
    _print_run_dir(console, stored.run_dir)


def _print_run_dir(console: Console, run_dir: Optional[Path]) -> None:
    if run_dir is None:
        console.print("Run directory: not recorded (the results are in the archive: --json prints them).", soft_wrap=True)
    elif run_dir.is_dir():
        files = [name for name in ("report.html", "results.json", "junit.xml", "capture.pcap") if (run_dir / name).exists()]
        console.print(f"Run directory: {run_dir}" + (f"  ({', '.join(files)})" if files else ""), soft_wrap=True)
    else:
        console.print(f"Run directory: {run_dir} (no longer there; the results are in the archive: --json prints them)",
                      soft_wrap=True)


# --------------------------------------------------------------------------- diff


@runs_app.command("diff")
def diff(
    run_a: str = typer.Argument(..., help="the earlier run: id, unique prefix, latest~N, or a results.json path"),
    run_b: str = typer.Argument(..., help="the later run: id, unique prefix, latest, or a results.json path"),
    html: Optional[Path] = typer.Option(None, "--html", help="also write the diff as a self-contained HTML report to FILE"),
    lang: str = typer.Option("en", "--lang", help="language of the HTML report: en or zh-CN"),
    archive_path: Optional[Path] = typer.Option(None, "--archive", help=ARCHIVE_HELP),
):
    """What changed per case from RUN_A to RUN_B.  Exit 0: no verdict changed; 1: some did."""
    from reports.i18n import UnknownLanguage, check_language

    try:
        check_language(lang)
    except UnknownLanguage as exc:
        raise _usage_error(f"--lang: {exc}") from None
    documents = _load_documents([run_a, run_b], archive_path)
    result = diff_runs(documents[0], documents[1])
    console, _ = _consoles()
    _print_diff(console, result)
    if html is not None:
        from reports.diff import render_diff_html

        try:
            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(render_diff_html(result.to_dict(), lang=lang), encoding="utf-8")
        except OSError as exc:
            raise _usage_error(f"cannot write {html}: {exc.strerror or exc}") from None
        console.print(f"HTML diff: {html}", soft_wrap=True)
    raise typer.Exit(EXIT_CHANGED if result.verdict_changed else EXIT_SAME)


def _load_documents(refs: list[str], archive_path: Optional[Path]) -> list[dict]:
    """Each ref's results document: a results.json file if the ref names one, else an archived run."""
    documents: list[Optional[dict]] = [_results_file(ref) for ref in refs]
    if any(doc is None for doc in documents):
        with _archive(archive_path) as archive:
            for i, ref in enumerate(refs):
                if documents[i] is None:
                    documents[i] = archive.results(ref)
    return documents  # type: ignore[return-value]


def _results_file(ref: str) -> Optional[dict]:
    """The results document `ref` names as a file (or a run directory), None if it names no path."""
    path = Path(ref)
    if path.is_dir():
        path = path / "results.json"
    elif not (ref.endswith(".json") or "/" in ref or os.sep in ref):
        return None  # run ids have neither
    if not path.is_file():
        raise _usage_error(f"no results file {path}: give a results.json path, or a run id from `harness runs list`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _usage_error(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("harness.results/"):
        raise _usage_error(f"{path} is not a harness results file (schema {data.get('schema') if isinstance(data, dict) else None!r})")
    return data


def _header(console: Console, name: str, summary) -> None:
    console.print(Text.assemble((f"{name}: ", "bold"), summary.id or "(no id)", "  ", _local_time(summary.start) if summary.start else "",
                                "  ", summary.device_label or "(unknown device)", "  ", _overall_text(summary.overall)),
                  soft_wrap=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _print_diff(console: Console, result: RunDiff) -> None:
    _header(console, "A", result.a)
    _header(console, "B", result.b)
    for warning in result.warnings:
        console.print(Text.assemble(("warning: ", "bold yellow"), warning), soft_wrap=True)
    regressions, improvements = len(result.regressions), len(result.improvements)
    console.print(Text.assemble(("Verdict changes: ", "bold"), str(len(result.verdict_changed)),
                                " (", (f"{regressions} regressions", "bold red" if regressions else ""),
                                f", {improvements} improvements)"), soft_wrap=True)
    for change in result.verdict_changed:
        message = _one_line(change.message_after or change.message_before)
        console.print(Text.assemble("  ", (change.case_id, KIND_STYLE.get(change.kind, "bold")), "  ",
                                    (change.before, VERDICT_STYLE.get(change.before, "")), " -> ",
                                    (change.after, VERDICT_STYLE.get(change.after, "")),
                                    f"  {change.level}", f"  {message}" if message else ""), soft_wrap=True)
    for label, entries in (("Only in A", result.only_in_a), ("Only in B", result.only_in_b)):
        if entries:
            console.print(Text.assemble((f"{label}: ", "bold"), str(len(entries))), soft_wrap=True)
            for entry in entries:
                console.print(Text.assemble("  ", entry.case_id, "  ", (entry.verdict, VERDICT_STYLE.get(entry.verdict, "")),
                                            f"  {entry.level}"), soft_wrap=True)
    console.print(f"Message changed, same verdict: {len(result.message_changed)}. Unchanged: {result.unchanged_count}.",
                  soft_wrap=True)
