"""`harness replay RUN CASE [--target URL] [--with-preceding]`: the CLI face of harness.replay.

Exit codes: 0 the failure did not show again, 1 reproduced (the device stopped answering after
the input, or the input whose answer is required got none), 2 usage error, 3 the device did not
answer before the input was sent."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .replay import ReplayError, load_results, replay

console = Console(highlight=False, markup=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, markup=False)


def replay_command(
    run: str = typer.Argument(..., help="a run directory, a results.json, or an archived run (id, prefix, latest)"),
    case: str = typer.Argument(..., help="the id of a robustness case that FAILed, e.g. ROB-MB-MALFORMED"),
    target: Optional[str] = typer.Option(None, "--target", help="send to this device instead of the run's target (e.g. a restarted one)"),
    archive: Optional[Path] = typer.Option(None, "--archive", help="run archive to look the run up in"),
    with_preceding: bool = typer.Option(False, "--with-preceding",
                                        help="send first the inputs the fuzzer sent just before the one that broke the "
                                             "device (for a failure that needs the state they leave)"),
):
    """Send the minimised input that broke a device in a run once more, and check whether it breaks it again."""
    try:
        report = replay(load_results(run, archive), case, target, with_preceding)
    except (ReplayError, ValueError) as exc:
        err.print(f"harness: {exc}")
        raise typer.Exit(2) from None
    console.print(f"Replaying {case} to {report.target}")
    if report.problem:
        console.print(f"  recorded failure: {report.problem}")
    if not report.alive_before:
        err.print("harness: the device does not answer reads of its known points before the input was sent; "
                  "restart it (or pass --target) and replay again")
        raise typer.Exit(3)
    for n, step in enumerate(report.steps, 1):
        before = "  (an input sent before the one that broke the device)" if step.preceding else ""
        console.print(f"  {n}. sent {step.sent.hex()}  ({step.described_sent}){before}")
        if step.reply:
            console.print(f"     got  {step.reply.hex()}  ({step.described_reply})")
        else:
            console.print(f"     no answer: {step.error or 'nothing'}{' (connection closed)' if step.closed else ''}")
    if report.alive_after is False:
        console.print("REPRODUCED: the device stopped answering reads of its known points after this input.")
        raise typer.Exit(1)
    if report.unanswered:
        console.print("REPRODUCED: the input got no answer again, where the specification requires one.")
        raise typer.Exit(1)
    if report.alive_after is None:
        console.print("No known points to check the device with: judge the answers above.")
        raise typer.Exit(0)
    console.print("Not reproduced: the device still answers reads of its known points.")
