"""The `harness` command (DESIGN section 6, a contract).

    harness certify TARGET [--profile FILE] [--suite NAME]... [--out DIR] [-k EXPR] [-n WORKERS]
    harness simulate PROFILE [--protocol modbus] [--host 127.0.0.1] [--port N] [--fault NAME]...
    harness demo [--out DIR] [--lang en|zh-CN]
    harness probe TARGET --out profile.yaml
    harness report RESULTS.json [--out FILE] [--lang en|zh-CN] [--lab FILE] [--pdf]
    harness sign RUN_DIR [--key FILE] [--new-key] [--signer NAME]
    harness verify RUN_DIR [--public-key FILE]
    harness runs list | show RUN | diff RUN_A RUN_B [--html FILE]
    harness replay RUN CASE [--target URL]
    harness suites [--protocol P]

certify, demo and matrix take the report options --lab FILE, --lab-name, --client and --lang,
and add each finished run to the run archive (--archive PATH, --no-archive; default
$HARNESS_ARCHIVE, else ~/.local/share/protocol-harness/runs.sqlite).

Exit codes of certify: 0 compliant, 1 not (or conditionally) compliant, 2 usage or harness
error, 3 target unreachable.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Protocol-compatibility test harness for industrial devices.")
# markup=False: messages carry device strings (a vendor name may contain "[/red]"), which
# must print as they are; styling goes through Text objects instead.
console = Console(highlight=False, markup=False)
err = Console(stderr=True, highlight=False, markup=False)

EXIT_COMPLIANT, EXIT_NOT_COMPLIANT, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
SUITES_DIR = Path(__file__).resolve().parent.parent / "conformance_suites"
DEFAULT_SUITE = {"modbus": "modbus", "opcua": "opcua"}
VERDICT_STYLE = {"PASS": "green", "FAIL": "bold red", "ERROR": "magenta", "INCONCLUSIVE": "yellow", "NOT_APPLICABLE": "dim"}
OVERALL_STYLE = {"COMPLIANT": "bold green", "CONDITIONALLY_COMPLIANT": "bold yellow", "NOT_COMPLIANT": "bold red", "INCOMPLETE": "bold magenta"}


def _usage_error(message: str) -> "typer.Exit":
    err.print(Text.assemble(("harness: error:", "red"), " ", message))
    return typer.Exit(EXIT_USAGE)


def _parse_target(text: str):
    from .target import TargetError, parse_target

    try:
        return parse_target(text)
    except TargetError as exc:
        raise _usage_error(str(exc)) from None


def _load_profile(path: Path):
    from .profile import ProfileError, load_profile

    try:
        return load_profile(path)
    except ProfileError as exc:
        raise _usage_error(str(exc)) from None


def _reachable(target, timeout: float = 3.0) -> str | None:
    """None when a TCP connection opens, else the reason it did not."""
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


# --------------------------------------------------------------------------- certify


@dataclass(frozen=True)
class ReportOptions:
    """What a run records for its report besides the cases: the lab block, the report's
    language and the archive the finished run goes to."""

    lab: Optional[Path] = None
    lab_name: Optional[str] = None
    client: Optional[str] = None
    lang: str = "en"
    archive: Optional[str] = None  # a path, "off", or None for the default archive

    def check(self) -> None:
        """A usage error now, before any case runs, for a bad lab file or language."""
        from reports.i18n import UnknownLanguage, check_language

        from .lab import LabError, load_lab

        try:
            check_language(self.lang)
            if self.lab is not None:
                load_lab(self.lab)
        except (UnknownLanguage, LabError) as exc:
            raise _usage_error(str(exc)) from None

    def pytest_args(self) -> list[str]:
        args = ["--harness-lang", self.lang]
        if self.lab is not None:
            args += ["--harness-lab", str(self.lab)]
        if self.lab_name:
            args += ["--harness-lab-name", self.lab_name]
        if self.client:
            args += ["--harness-client", self.client]
        if self.archive:
            args += ["--harness-archive", self.archive]
        return args


LAB_HELP = "lab file (YAML): laboratory, client, operator, signatories, observations (see simulators/profiles/example-lab.yaml)"


def _report_options(lab, lab_name, client, lang, archive, no_archive) -> ReportOptions:
    options = ReportOptions(lab, lab_name, client, lang, "off" if no_archive else (str(archive) if archive else None))
    options.check()
    return options


@app.command()
def certify(
    target: str = typer.Argument(..., help="device to test, e.g. modbus+tcp://192.0.2.10:502?unit=1"),
    profile: Optional[Path] = typer.Option(None, "--profile", help="device profile YAML; without it the device is probed first"),
    suite: list[str] = typer.Option([], "--suite", help="suite to run (default: the target protocol's suite)"),
    out: Path = typer.Option(Path("out/certify"), "--out", help="directory for results.json, report.html, junit.xml, capture.pcap"),
    k: Optional[str] = typer.Option(None, "-k", help="only cases matching this pytest -k expression"),
    workers: int = typer.Option(0, "-n", help="run cases in parallel on N workers (pytest-xdist)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed, recorded in results.json"),
    verbose: bool = typer.Option(False, "-v", help="one line per case while running"),
    lab: Optional[Path] = typer.Option(None, "--lab", help=LAB_HELP),
    lab_name: Optional[str] = typer.Option(None, "--lab-name", help="name of the test laboratory (overrides the lab file's)"),
    client: Optional[str] = typer.Option(None, "--client", help="name of the client the test is for (overrides the lab file's)"),
    lang: str = typer.Option("en", "--lang", help="language of report.html: en or zh-CN"),
    archive: Optional[Path] = typer.Option(None, "--archive", help="run archive to add the run to (default: $HARNESS_ARCHIVE or ~/.local/share/protocol-harness/runs.sqlite)"),
    no_archive: bool = typer.Option(False, "--no-archive", help="do not add the run to the run archive"),
):
    """Run the conformance suites against TARGET and write the certification files."""
    options = _report_options(lab, lab_name, client, lang, archive, no_archive)
    raise typer.Exit(run_certify(target, profile, suite, out, k, workers, seed, verbose, command=_command_line(), report=options))


def _command_line() -> str:
    return "harness " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def run_certify(target_text, profile, suites, out, k=None, workers=0, seed=None, verbose=False, command="",
                report: ReportOptions = ReportOptions()) -> int:
    target = _parse_target(target_text)
    suites = suites or [DEFAULT_SUITE.get(target.protocol, "")]
    for name in suites:
        if not (SUITES_DIR / name / "requirements.toml").exists():
            available = sorted(p.name for p in SUITES_DIR.iterdir() if (p / "requirements.toml").exists())
            raise _usage_error(f"no suite {name!r} for {target.protocol}; available suites: {', '.join(available)}")
    loaded = _load_profile(profile) if profile is not None else None  # a broken profile is a usage error, whatever the target does
    problem = _reachable(target)
    if problem:
        hint = ("; the profile's robustness.restart_command brings a device back during a run, it does not start one: "
                "start the device first" if loaded is not None and loaded.robustness.restart_command else "")
        err.print(f"harness: target unreachable: {target.url} ({problem}){hint}")
        return EXIT_UNREACHABLE
    out.mkdir(parents=True, exist_ok=True)
    if profile is None:
        profile = out / "profile.probed.yaml"
        console.print(f"No --profile given: probing {target.url} to draft one ({profile}) ...")
        try:
            summary = _probe(target, profile)
        except Exception as exc:  # the device answered the TCP connect but not Modbus
            err.print(f"harness: probing {target.url} failed: {exc}")
            return EXIT_USAGE
        console.print(f"  {summary}")
        console.print("  Review and correct the drafted profile, then pass it with --profile: the claims decide which cases apply.")
    args = [str(SUITES_DIR / name) for name in suites]
    args += ["--target", target_text, "--profile", str(profile), "--harness-out", str(out), "-p", "no:cacheprovider",
             "--harness-command", command or f"harness certify {target.url}", "-o", "addopts=", "--rootdir", str(SUITES_DIR.parent)]
    args += ["-rN", "-q" if not verbose else "-v", "--no-header", "--tb=no", *report.pytest_args()]
    # A second certify in one process (harness demo) re-imports nothing, which pytest warns about.
    args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if k:
        args += ["-k", k]
    if seed is not None:
        args += ["--harness-seed", str(seed)]
    console.print(f"Certifying {target.url} with suite(s) {', '.join(suites)} -> {out}/")
    code, results = _run_suites(args, out, workers)
    if results is None:
        return EXIT_USAGE
    import pytest

    if code == pytest.ExitCode.NO_TESTS_COLLECTED or not results["cases"]:
        err.print("harness: no case was selected; check -k and --suite")
        return EXIT_USAGE
    _print_summary(results, out)
    if report.archive != "off":
        run_id = results["run"]["id"]
        console.print(f"  run archive   harness runs show {run_id}")
    return _exit_code(results)


def _probe(target, path: Path, progress=lambda msg: None) -> str:
    """Draft a profile for `target` with the probe of its protocol; returns a one-line summary."""
    if target.protocol == "opcua":
        from .probe_opcua import probe_opcua_to_file

        return probe_opcua_to_file(target, path, progress=progress)
    if target.protocol != "modbus" or target.scheme != "modbus+tcp":
        raise ValueError(f"probing {target.scheme} targets is not supported; write the profile by hand")
    from .probe import probe_to_file

    return probe_to_file(target, path, progress=progress)


def _run_suites(args: list[str], out: Path, workers: int):
    """pytest.main on the suites (in parallel with `workers`); (exit code, results) or (code, None)
    after saying why the run did not start."""
    import pytest

    if workers:
        args = [*args, "-n", str(workers), "--dist", "loadgroup"]
    code = pytest.main(args)
    results_path = out / "results.json"
    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR) or not results_path.exists():
        err.print(f"harness: the test run failed to start (pytest exit code {int(code)})")
        return code, None
    return code, json.loads(results_path.read_text(encoding="utf-8"))


def _exit_code(results: dict) -> int:
    overall = results["summary"]["overall"]
    return {"COMPLIANT": EXIT_COMPLIANT, "CONDITIONALLY_COMPLIANT": EXIT_NOT_COMPLIANT, "NOT_COMPLIANT": EXIT_NOT_COMPLIANT}.get(overall, EXIT_USAGE)


def _print_summary(results: dict, out: Path) -> None:
    summary = results["summary"]
    failures = [c for c in results["cases"] if c["verdict"] in ("FAIL", "ERROR", "INCONCLUSIVE")]
    if failures:
        table = Table(title="Cases that did not pass", show_lines=False)
        for col in ("case", "level", "verdict", "message"):
            table.add_column(col, overflow="fold")
        for c in failures:
            table.add_row(c["id"], c["level"], Text(c["verdict"], style=VERDICT_STYLE[c["verdict"]]), c["message"][:200])
        console.print(table)
    counts = ", ".join(f"{n} {v.lower()}" for v, n in summary["counts"].items() if n)
    coverage = "; ".join(f"{s}: {c['tested']}/{c['catalogued']} requirements tested" for s, c in summary.get("coverage", {}).items())
    console.print(f"{counts}. {coverage}")
    style = OVERALL_STYLE.get(summary["overall"], "bold")
    console.print(Text.assemble("Overall: ", (summary["overall"], style)))
    for p in summary.get("profiles", {}).values():
        mark = " (claimed)" if p["claimed"] else ""
        console.print(Text.assemble(f"  {p['title']}{mark}: ", (p["overall"], OVERALL_STYLE.get(p["overall"], "bold"))))
    for name in ("report.html", "results.json", "junit.xml", "capture.pcap"):
        if (out / name).exists():
            console.print(f"  {name:13s} {out / name}")


# --------------------------------------------------------------------------- matrix

MATRIX_SUITES = {"modbus": ["interop_modbus", "modbus_client"], "opcua": ["interop_opcua", "opcua_client"]}


@app.command()
def matrix(
    protocol: str = typer.Option("modbus", "--protocol", help="modbus or opcua"),
    clients: str = typer.Option("", "--clients", help="client stacks, comma-separated (default: every one)"),
    servers: str = typer.Option("", "--servers", help="server stacks, comma-separated (default: every one, the simulator included)"),
    profile: Optional[Path] = typer.Option(None, "--profile", help="device the servers are loaded with (default: the example device)"),
    out: Path = typer.Option(Path("out/matrix"), "--out", help="where results.json, report.html and junit.xml go"),
    workers: int = typer.Option(2, "-n", help="parallel workers (pytest-xdist); each server runs on one worker"),
    conformance: Path = typer.Option(Path("out/conformance"), "--conformance",
                                     help="where each server stack's own conformance run is stored and reused"),
    no_conformance: bool = typer.Option(False, "--no-conformance", help="skip the servers' conformance runs; "
                                        "failing cells are then attributed by the reference simulator only"),
    rerun_conformance: bool = typer.Option(False, "--rerun-conformance", help="make fresh conformance runs even where stored ones fit"),
):
    """Run the interoperability scenarios for every client stack x server stack pair, and the
    client-side conformance cases for every client stack; name the side of each failing cell
    from each side's conformance verdicts."""
    store = None if no_conformance else conformance
    raise typer.Exit(run_matrix(protocol, clients, servers, profile, out, workers, command=_command_line(),
                                store=store, rerun=rerun_conformance))


def run_matrix(protocol, clients, servers, profile, out, workers=2, command="", store=None, rerun=False) -> int:
    if protocol not in MATRIX_SUITES:
        raise _usage_error(f"--protocol {protocol}: the matrix covers {', '.join(MATRIX_SUITES)}")
    from .profile import example_profile_path

    profile = profile or example_profile_path()
    _load_profile(profile)
    out.mkdir(parents=True, exist_ok=True)
    args = [*(str(SUITES_DIR / name) for name in MATRIX_SUITES[protocol]), "--profile", str(profile), "--harness-out", str(out),
            "-p", "no:cacheprovider", "--harness-command", command or "harness matrix", "-o", "addopts=",
            "--rootdir", str(SUITES_DIR.parent), "-rN", "-q", "--no-header", "--tb=no",
            "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if clients:
        args += ["--clients", clients]
    if servers:
        args += ["--servers", servers]
    server_runs = _server_conformance(protocol, servers, profile, store, rerun, workers) if store is not None else {}
    console.print(f"Interoperability matrix ({protocol}) -> {out}/")
    _, results = _run_suites(args, out, workers)
    if results is None:
        return EXIT_USAGE
    sides = _attribute_failures(results, out, protocol, server_runs)
    _print_matrix(results, out, sides)
    verdicts = {c["verdict"] for c in results["cases"]}
    if "FAIL" in verdicts:
        return EXIT_NOT_COMPLIANT
    return EXIT_USAGE if "ERROR" in verdicts else EXIT_COMPLIANT


def _server_conformance(protocol: str, servers: str, profile: Path, store: Path, rerun: bool, workers: int) -> dict:
    """Each server stack's verdicts from its own conformance run (stored, or made now)."""
    from .conformance_store import server_conformance
    from .peers.registry import SERVERS

    names = [n.strip() for n in servers.split(",") if n.strip()] or list(SERVERS[protocol])
    names = [n for n in names if n in SERVERS[protocol]]  # the suite reports unknown names
    console.print(f"Servers' own conformance runs ({', '.join(names)}) -> {store}/{protocol}/")
    runs = server_conformance(protocol, DEFAULT_SUITE[protocol], names, profile, store, rerun=rerun, workers=max(1, workers),
                              progress=console.print)
    return {name: verdicts for name, verdicts in runs.items() if not isinstance(verdicts, str)}


def _attribute_failures(results: dict, out: Path, protocol: str, server_runs: dict) -> dict:
    """Name the side of each failing cell in the evidence, then rewrite the results and report."""
    from .matrix_attribution import attribute
    from .requirements import suite_catalogue

    exercises = {}
    for suite in MATRIX_SUITES[protocol]:
        for rid, req in suite_catalogue(suite).requirements.items():
            if req.server_cases or req.client_requirements:
                exercises[rid] = (req.server_cases, req.client_requirements)
    sides = attribute(results["cases"], exercises, server_runs)
    _rewrite_results(results, out)
    return sides


def _rewrite_results(results: dict, out: Path) -> None:
    """results.json and the report again, after the CLI has added to what the run wrote."""
    from reports.html import write_html

    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    write_html(results, out / "report.html")


def _print_matrix(results: dict, out: Path, sides: dict | None = None) -> None:
    cells: dict[tuple[str, str], list[str]] = {}
    client_side: dict[str, list[str]] = {}
    for case in results["cases"]:
        tags = case.get("tags") or {}
        if "client" in tags and "server" in tags:
            cells.setdefault((tags["client"], tags["server"]), []).append(case["verdict"])
        elif "client" in tags:
            client_side.setdefault(tags["client"], []).append(case["verdict"])
    servers = sorted({s for _, s in cells}, key=str.lower)
    table = Table(title="scenarios passed / decided (rows: client stacks, columns: server stacks)")
    table.add_column("client")
    for server in servers:
        table.add_column(server, justify="center")
    for client in sorted({c for c, _ in cells}, key=str.lower):
        row = []
        for server in servers:
            verdicts = [v for v in cells.get((client, server), []) if v != "NOT_APPLICABLE"]
            passed = verdicts.count("PASS")
            style = "green" if passed == len(verdicts) else ("magenta" if "ERROR" in verdicts and not passed else "red")
            row.append(Text(f"{passed}/{len(verdicts)}", style=style))
        table.add_row(client, *row)
    console.print(table)
    if client_side:
        console.print("Client-side conformance (cases passed / decided): " + ", ".join(
            f"{name} {v.count('PASS')}/{len([x for x in v if x != 'NOT_APPLICABLE'])}" for name, v in sorted(client_side.items(), key=lambda i: i[0].lower())))
    if sides:
        console.print("Failing scenarios, by the side that broke them:")
        for (scenario, side), text in sorted(sides.items()):
            console.print(f"  {scenario} / {side}: {text}")
    for name in ("report.html", "results.json", "junit.xml"):
        if (out / name).exists():
            console.print(f"  {name:13s} {out / name}")


# --------------------------------------------------------------------------- observe


@app.command()
def observe(
    target: str = typer.Argument(..., help="where to listen for the client device, e.g. modbus+tcp://0.0.0.0:5020 (port 0: any free port)"),
    profile: Path = typer.Option(..., "--profile", help="the device the client expects: the simulator serves it"),
    duration: float = typer.Option(60.0, "--duration", help="seconds to observe (Ctrl-C ends early)"),
    out: Path = typer.Option(Path("out/observe"), "--out", help="where traffic.json, results.json, report.html, junit.xml, capture.pcap go"),
):
    """Serve PROFILE to a real client device (an HMI, a SCADA master) and judge every request it sends."""
    raise typer.Exit(run_observe(target, profile, duration, out, command=_command_line()))


def run_observe(target_text: str, profile: Path, duration: float, out: Path, command: str = "", on_listening=None) -> int:
    from urllib.parse import urlsplit

    from .observe_modbus import observe_modbus
    from .peers.base import PeerError

    target = _parse_target(target_text)
    if target.scheme != "modbus+tcp":
        raise _usage_error(f"observe serves Modbus TCP clients: give modbus+tcp://HOST:PORT, not {target.scheme}://")
    port = 0 if urlsplit(target_text.strip()).port == 0 else target.port
    if duration <= 0:
        raise _usage_error(f"--duration {duration:g}: give the number of seconds to observe, e.g. --duration 60")
    prof = _load_profile(profile)
    if prof.modbus is None:
        raise _usage_error(f"{profile}: the profile has no modbus section, so there is no Modbus device to serve")
    out.mkdir(parents=True, exist_ok=True)
    try:
        observation = observe_modbus(target.host, port, profile, duration, progress=console.print, on_listening=on_listening)
    except OSError as exc:
        err.print(f"harness: cannot listen on {target.host}:{port}: {exc.strerror or exc}")
        return EXIT_USAGE
    except PeerError as exc:
        err.print(f"harness: the simulator did not start: {str(exc).splitlines()[0]}")
        return EXIT_USAGE
    traffic = out / "traffic.json"
    observation.write(traffic)
    connections, requests = observation.recording.counts()
    console.print(f"Judging {requests} request(s) from {connections} connection(s) -> {out}/")
    args = [str(SUITES_DIR / "modbus_observe"), "--profile", str(profile), "--observed", str(traffic), "--harness-out", str(out),
            "-p", "no:cacheprovider", "--harness-command", command or f"harness observe {target_text}", "-o", "addopts=",
            "--rootdir", str(SUITES_DIR.parent), "-rN", "-q", "--no-header", "--tb=no",
            "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    _, results = _run_suites(args, out, 0)
    if results is None:
        return EXIT_USAGE
    _describe_observation(results, observation, out)
    _print_summary(results, out)
    return _exit_code(results)


def _describe_observation(results: dict, observation, out: Path) -> None:
    """The observed run's target is the harness's own listening address, and the device under
    test is whatever connected to it: say so in results.json and the report."""
    from .transport.pcap import parse_conn

    clients = sorted({f"{c[0][0]}:{c[0][1]}" for f in observation.recording.frames if (c := parse_conn(f.conn))})
    results["target"] = {"url": observation.listen_url, "protocol": "modbus", "role": "the harness served the profile here; the device under test is the client"}
    source = (f"the client(s) that connected from {', '.join(clients)}" if clients else "no client connected") + \
        f", judged from the traffic observed while {observation.simulator} served the profile"
    results["dut"] = {"role": "client", "source": source, "connections": clients, "simulator": observation.simulator,
                      "observed": {"start": observation.start, "end": observation.end, "duration_s": round(observation.duration_s, 3),
                                   "interrupted": observation.interrupted, "frames_not_kept": observation.recording.dropped}}
    _rewrite_results(results, out)


# --------------------------------------------------------------------------- simulate / demo


@app.command()
def simulate(
    profile: Path = typer.Argument(..., help="device profile YAML"),
    protocol: str = typer.Option("all", "--protocol", help="modbus, opcua, or all (every face the profile describes)"),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(0, "--port", help="Modbus TCP port; 0 lets the OS pick a free port (printed)"),
    opcua_port: int = typer.Option(0, "--opcua-port", help="OPC UA port; 0 lets the OS pick a free port (printed)"),
    fault: list[str] = typer.Option([], "--fault", help="misbehave on purpose. Modbus face: delay=MS, no-reply, wrong-tid, "
                                    "wrong-unit, wrong-length, exception=CODE, truncate, close-mid-reply; suffix :fc=N or :every=N. "
                                    "OPC UA face: ua-ack-swapped, ua-small-buffers, ua-any-auth-token, ua-ignore-index-range, "
                                    "ua-no-type-check, ua-node-id-invalid, ua-no-argument-check; for testing clients: "
                                    "ua-wrong-request-id, ua-late-read[=MS], ua-service-fault[=STATUS], ua-truncated-response, "
                                    "ua-size-mismatch, ua-drop-on-read, ua-hello-error[=STATUS], ua-token-lifetime[=MS], "
                                    "ua-receive-buffer[=BYTES], ua-small-chunks[=BYTES], ua-max-message-size[=BYTES], ua-record-hello. "
                                    "Weaknesses for the robustness suites: hang-on-bad-length=MS, lose-writes (Modbus); "
                                    "ua-hang-on-bad-size=MS, ua-lose-writes (OPC UA); MS 0: for good"),
):
    """Serve PROFILE as a simulated device until interrupted: every face shares one data model."""
    prof = _load_profile(profile)
    protocols = _simulated_protocols(prof, protocol, profile)
    ua_faults = [f for f in fault if f.startswith("ua-")]
    faults = _parse_faults([f for f in fault if not f.startswith("ua-")])
    if faults and "modbus" not in protocols:
        raise _usage_error("--fault " + ", ".join(f for f in fault if not f.startswith("ua-")) + " applies to the Modbus face; add --protocol modbus or all")
    if ua_faults:
        if "opcua" not in protocols:
            raise _usage_error(f"--fault {', '.join(ua_faults)} applies to the OPC UA face; add --protocol opcua or all")
        from simulators.opcua.faults import OpcuaFaultError, parse_opcua_faults

        try:
            parse_opcua_faults(ua_faults)
        except OpcuaFaultError as exc:
            raise _usage_error(str(exc)) from None
        faults = [*faults, *ua_faults]
    import asyncio

    from simulators.device import DeviceSimulator
    from simulators.modbus.server import new_event_loop

    async def serve():
        device = DeviceSimulator(prof, protocols, host=host, modbus_port=port, opcua_port=opcua_port, faults=faults)
        await device.start()
        for name, url in device.urls.items():
            mine = [f for f in fault if f.startswith("ua-") == (name == "opcua")]
            extra = f"  faults: {', '.join(mine)}" if mine else ""
            console.print(f"listening on {url}{extra}")
        sys.stdout.flush()
        try:
            await asyncio.Event().wait()
        finally:
            await device.stop()

    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise _usage_error(f"cannot listen on {host}: {exc.strerror or exc}") from None


def _simulated_protocols(prof, protocol: str, path: Path) -> tuple[str, ...]:
    present = tuple(p for p in ("modbus", "opcua") if getattr(prof, p) is not None)
    if protocol == "all":
        if not present:
            raise _usage_error(f"{path}: the profile has neither a modbus nor an opcua section to simulate")
        return present
    if protocol not in ("modbus", "opcua"):
        raise _usage_error(f"--protocol {protocol}: expected modbus, opcua or all")
    if protocol not in present:
        raise _usage_error(f"{path}: the profile has no {protocol} section to simulate")
    return (protocol,)


def _parse_faults(texts: list[str]):
    from simulators.modbus.faults import FaultSyntaxError, parse_fault

    try:
        return [parse_fault(t) for t in texts]
    except FaultSyntaxError as exc:
        raise _usage_error(str(exc)) from None


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="where the reports go: one directory per protocol"),
    lang: str = typer.Option("en", "--lang", help="language of the reports: en or zh-CN"),
    no_archive: bool = typer.Option(False, "--no-archive", help="do not add the runs to the run archive"),
):
    """Simulate the bundled example device on every protocol and certify each face: reports in one command."""
    from simulators.device import start_device_in_thread

    from .profile import example_profile_path

    options = _report_options(example_profile_path().with_name("example-lab.yaml"), None, None, lang, None, no_archive)
    path = example_profile_path()
    prof = _load_profile(path)
    console.print(f"Simulating {prof.name} from {path}")
    codes = []
    with start_device_in_thread(prof) as device:
        for protocol, url in device.urls.items():
            console.print(f"  {protocol} face listening on {url}")
        for protocol, url in device.urls.items():
            console.print("")
            codes.append(run_certify(url, path, [], out / protocol, command=f"harness demo --out {out}", report=options))
    console.print("")
    for protocol in device.urls:
        report = (out / protocol / "report.html").resolve()
        if report.exists():
            console.print(f"Report ({protocol}): {report}")
    raise typer.Exit(max(codes))


# --------------------------------------------------------------------------- probe / report / suites


@app.command()
def probe(
    target: str = typer.Argument(..., help="device to probe, e.g. modbus+tcp://192.0.2.10:502"),
    out: Path = typer.Option(Path("profile.yaml"), "--out", help="where to write the drafted profile"),
):
    """Draft a device profile by probing a device (Modbus: function codes, tables, identification;
    OPC UA: endpoints, limits, identity and a browse of the device object)."""
    t = _parse_target(target)
    problem = _reachable(t)
    if problem:
        err.print(f"harness: target unreachable: {t.url} ({problem})")
        raise typer.Exit(EXIT_UNREACHABLE)
    console.print(f"Probing {t.url} ...")
    try:
        summary = _probe(t, out, progress=lambda msg: console.print(f"  {msg}"))
    except Exception as exc:  # the device answered the TCP connect but not the protocol
        err.print(f"harness: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    console.print(f"Drafted {out}: {summary}")
    console.print("Check it against the device's documentation before you certify with it.")


@app.command()
def report(
    results: Path = typer.Argument(..., help="a results.json written by certify or pytest --results-json"),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default: report.html beside the results)"),
    lang: str = typer.Option("en", "--lang", help="language of the report: en or zh-CN"),
    lab: Optional[Path] = typer.Option(None, "--lab", help=LAB_HELP + "; replaces the lab block stored in the results"),
    lab_name: Optional[str] = typer.Option(None, "--lab-name", help="name of the test laboratory"),
    client: Optional[str] = typer.Option(None, "--client", help="name of the client the test is for"),
    pdf: bool = typer.Option(False, "--pdf", help="also print the report to a PDF beside it (headless Chromium)"),
):
    """Re-render the HTML report (and a PDF) from stored results; results.json is not changed."""
    from reports.html import write_html

    from .lab import load_lab, with_overrides

    options = _report_options(lab, lab_name, client, lang, None, True)
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise _usage_error(f"cannot read {results}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != "harness.results/1":
        schema = data.get("schema") if isinstance(data, dict) else None
        raise _usage_error(f"{results} is not a harness results file (schema {schema!r})")
    lab_block = None
    if options.lab or lab_name or client:
        stored = data.get("lab") if isinstance(data.get("lab"), dict) else None
        lab_block = with_overrides(load_lab(options.lab) if options.lab else stored, lab_name=lab_name, client_name=client)
    target = out or results.with_name("report.html")
    write_html(data, target, lang=lang, lab=lab_block)
    console.print(f"Report: {target}")
    if pdf:
        from .browser import BrowserUnavailable
        from .pdf import write_pdf

        try:
            pdf_path = write_pdf(target, target.with_suffix(".pdf"))
        except (BrowserUnavailable, TimeoutError) as exc:
            raise _usage_error(str(exc)) from None
        console.print(f"PDF:    {pdf_path}")


@app.command()
def suites(
    protocol: Optional[str] = typer.Option(None, "--protocol", help="only this protocol's suites"),
    requirements: bool = typer.Option(False, "--requirements", help="list the requirement catalogue instead of cases"),
):
    """List the test cases (or requirements) of the bundled suites."""
    from .requirements import suite_catalogue
    from .suite_index import collect_cases

    names = sorted(p.name for p in SUITES_DIR.iterdir() if (p / "requirements.toml").exists())
    if protocol:
        names = [n for n in names if n == protocol or n.startswith(protocol)]
        if not names:
            raise _usage_error(f"no suite for protocol {protocol!r}")
    for name in names:
        catalogue = suite_catalogue(name)
        if requirements:
            table = Table(title=f"{name}: {len(catalogue.requirements)} requirements")
            for col in ("id", "level", "clause", "summary"):
                table.add_column(col, overflow="fold")
            for r in catalogue.requirements.values():
                table.add_row(r.id, r.level.value, r.citation, r.summary)
        else:
            cases = collect_cases(SUITES_DIR / name)
            table = Table(title=f"{name}: {len(cases)} cases")
            for col in ("case", "level", "requirements", "clause", "title"):
                table.add_column(col, overflow="fold")
            for c in cases:
                table.add_row(c["id"], c["level"], ", ".join(c["requirements"]), c["clause"], c["title"])
        console.print(table)


from .cli_integrity import sign_command, verify_command  # noqa: E402  (commands of their own module)

from .cli_replay import replay_command  # noqa: E402
from .cli_runs import runs_app  # noqa: E402

app.command("sign")(sign_command)
app.command("verify")(verify_command)
app.command("replay")(replay_command)
app.add_typer(runs_app, name="runs", help="the run archive: list, show and diff stored runs")


def main() -> None:
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    app()


if __name__ == "__main__":
    main()
