"""The pytest plugin (entry point `pytest11`): options, the case marker, fixtures, verdicts.

Thin on purpose: it turns each test's outcome into a CaseResult (harness.outcome), hands it
to the ResultsWriter on the controlling process (so `-n N` through pytest-xdist gives the same
results), and offers the fixtures suites build on: `target`, `profile`, `evidence`,
`harness_seed`.  Protocol knowledge lives in the suites and the harness modules they use.
"""

from __future__ import annotations

import json
import random
import shlex
import signal
import sys
import threading
from pathlib import Path

import pytest

from .conformance import MARKER
from .model import CaseResult, Evidence, Level, Verdict

_CASE_PROP = "harness_case"  # the CaseResult as JSON, carried to the controller by pytest-xdist
_VERDICT_PROP = "harness_verdict"  # the verdict alone, for the terminal status letters
_STASH_EVIDENCE = pytest.StashKey[Evidence]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "protocol conformance harness")
    group.addoption("--target", help="device under test, e.g. modbus+tcp://192.0.2.10:502?unit=1")
    group.addoption("--profile", help="device profile YAML (claims and test parameters)")
    group.addoption("--results-json", help="write results.json here (updated as each case ends)")
    group.addoption("--harness-out", help="directory for results.json, report.html, junit.xml, capture.pcap")
    group.addoption("--harness-seed", type=int, default=None, help="random seed (recorded in results.json)")
    group.addoption("--harness-command", default=None, help="command line to record in results.json (set by `harness certify`)")
    group.addoption("--harness-lab", default=None, help="lab file (YAML): laboratory, client, signatories, observations for the report")
    group.addoption("--harness-lab-name", default=None, help="name of the test laboratory (overrides the lab file's)")
    group.addoption("--harness-client", default=None, help="name of the client the test is for (overrides the lab file's)")
    group.addoption("--harness-lang", default="en", help="language of report.html: en or zh-CN")
    group.addoption("--harness-archive", default=None,
                    help="run archive (SQLite) the finished run is added to; 'off' for none "
                         "(default: $HARNESS_ARCHIVE, else ~/.local/share/protocol-harness/runs.sqlite)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(id, title, requirements, level, clause): a conformance case tied to spec requirements",
    )
    if config.getoption("--harness-seed") is None:
        seed = getattr(config, "workerinput", {}).get("harness_seed") or random.SystemRandom().randrange(2**31)
        config.option.harness_seed = int(seed)
    is_worker = hasattr(config, "workerinput")
    out = config.getoption("--harness-out")
    results_path = config.getoption("--results-json") or (str(Path(out) / "results.json") if out else None)
    if results_path and not is_worker:
        session = _HarnessSession(config, Path(results_path), write_artifacts=bool(out))
        config.pluginmanager.register(session, "harness-session")


def pytest_configure_node(node) -> None:  # pytest-xdist hook: same seed on every worker
    node.workerinput["harness_seed"] = node.config.getoption("--harness-seed")


def pytest_collection_modifyitems(items) -> None:
    # `-k MB-FC03-QTY-0` selects a case by its id, parametrized or not.
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is not None:
            item.extra_keyword_matches.add(marker.kwargs["id"])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def harness_seed(request) -> int:
    return request.config.getoption("--harness-seed")


@pytest.fixture(scope="session")
def target(request):
    from .target import TargetError, parse_target

    text = request.config.getoption("--target")
    if not text:
        raise pytest.UsageError("no device to test: pass --target, e.g. --target modbus+tcp://127.0.0.1:502")
    try:
        return parse_target(text)
    except TargetError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def profile(request):
    from .profile import ProfileError, load_profile

    path = request.config.getoption("--profile")
    if not path:
        raise pytest.UsageError(
            "no device profile: pass --profile FILE, or draft one with `harness probe TARGET --out profile.yaml`"
        )
    try:
        return load_profile(path)
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture
def evidence(request) -> Evidence:
    """The case's evidence; connections opened by a suite record their frames into it."""
    return request.node.stash.setdefault(_STASH_EVIDENCE, Evidence())


@pytest.fixture
def case_random(request, harness_seed) -> random.Random:
    """A random generator repeatable from the run's seed and the case's node id."""
    return random.Random(f"{harness_seed}:{request.node.nodeid}")


# --------------------------------------------------------------------------- verdicts


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return
    from .outcome import classify

    # A case is decided in "call", or in "setup" when a fixture already decided it (e.g. the
    # claims exclude it); teardown problems are pytest's own business.
    if call.when == "teardown" or (call.when == "setup" and call.excinfo is None):
        return
    verdict, message = classify(call.excinfo)
    evidence = item.stash.get(_STASH_EVIDENCE, Evidence())
    exc = call.excinfo.value if call.excinfo else None
    if exc is not None:
        evidence.expected = evidence.expected or getattr(exc, "expected", "")
        evidence.observed = evidence.observed or getattr(exc, "observed", "")
    meta = marker.kwargs
    result = CaseResult(
        id=meta["id"],
        title=meta["title"],
        suite=_suite_of(item),
        requirements=list(meta["requirements"]),
        level=Level(meta["level"]),
        clause=meta["clause"],
        verdict=verdict,
        message=message,
        duration_s=round(report.duration, 6),
        nodeid=item.nodeid,
        evidence=evidence,
        tags=dict(meta.get("tags") or {}),
    )
    item.user_properties += [(_CASE_PROP, json.dumps(result.to_dict())), (_VERDICT_PROP, verdict.value)]
    report.user_properties = list(item.user_properties)
    if verdict in (Verdict.NOT_APPLICABLE, Verdict.INCONCLUSIVE, Verdict.PASS):
        if call.when == "setup":
            # pytest runs the test body after a setup report that "passed"; this outcome
            # stops it.  The verdict itself is recorded above, not as a skip.
            report.outcome = "skipped"
            report.longrepr = (str(item.path), item.location[1] or 0, f"{verdict.value}: {message}")
        else:
            report.outcome = "passed"
            report.longrepr = None
    else:
        report.outcome = "failed"
        if verdict is Verdict.FAIL and exc is not None:
            report.longrepr = f"FAIL {meta['id']}: {message}"


def pytest_report_teststatus(report: pytest.TestReport, config):
    if report.when == "teardown":
        return None  # the case was counted at its setup or call report
    verdict = dict(getattr(report, "user_properties", [])).get(_VERDICT_PROP)
    if verdict == Verdict.NOT_APPLICABLE.value:
        return "not applicable", "n", "NOT_APPLICABLE"
    if verdict == Verdict.INCONCLUSIVE.value:
        return "inconclusive", "i", "INCONCLUSIVE"
    if verdict == Verdict.ERROR.value:
        return "error", "E", "ERROR"
    return None


def _suite_of(item: pytest.Item) -> str:
    parts = Path(str(item.path)).parts
    if "conformance_suites" in parts:
        idx = parts.index("conformance_suites")
        if idx + 1 < len(parts):
            return parts[idx + 1]
    return Path(str(item.path)).parent.name


# --------------------------------------------------------------------------- results


class _HarnessSession:
    """Collects case results on the controlling process and writes the run's files."""

    def __init__(self, config: pytest.Config, results_path: Path, write_artifacts: bool):
        self.config = config
        self.results_path = results_path
        self.write_artifacts = write_artifacts
        self.writer = None
        self.interrupted = False
        self._session: pytest.Session | None = None
        self._previous_sigint = None

    # Ctrl-C raises KeyboardInterrupt as always, and also sets a flag that ends the run at the
    # next case boundary.  The exception alone can be lost on its way: Python ignores an
    # exception raised in a finalizer, and a signal handler may run inside one.  A run that
    # went on to the end would then be written as "finished".
    def _on_sigint(self, signum, frame) -> None:
        self.interrupted = True
        raise KeyboardInterrupt

    def _catch_ctrl_c(self) -> None:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._previous_sigint is not None and signal.getsignal(signal.SIGINT) == self._on_sigint:
            signal.signal(signal.SIGINT, self._previous_sigint)

    def pytest_runtest_logfinish(self, nodeid, location) -> None:
        if self.interrupted and self._session is not None:
            self._session.shouldstop = "interrupted (Ctrl-C)"

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._session = session
        self._catch_ctrl_c()
        # Under pytest-xdist the controlling process never collects, so the writer starts
        # here and learns each suite (and loads its catalogue) from the first case it gets.
        from .results_writer import ResultsWriter
        from .target import parse_target, redact

        cfg = self.config
        target = None
        if cfg.getoption("--target"):
            try:
                t = parse_target(cfg.getoption("--target"))
                target = {"url": t.url, "protocol": t.protocol, "host": t.host, "port": t.port}
            except ValueError:
                target = {"url": redact(cfg.getoption("--target"))}
        profile = _profile_block(cfg.getoption("--profile"))
        lab = _lab_block(cfg.getoption("--harness-lab"), cfg.getoption("--harness-lab-name"), cfg.getoption("--harness-client"))
        command = cfg.getoption("--harness-command") or " ".join(["pytest", *map(shlex.quote, cfg.invocation_params.args)])
        self.writer = ResultsWriter(
            self.results_path,
            command=redact(command),
            seed=cfg.getoption("--harness-seed"),
            target=target,
            profile=profile,
            catalogues={},
            lab=lab,
            report_lang=cfg.getoption("--harness-lang"),
            archive=cfg.getoption("--harness-archive"),
        )
        if target and target.get("protocol") == "modbus" and profile is not None and "error" not in profile:
            from .identify import read_modbus_identity

            self.writer.set_dut(read_modbus_identity(cfg.getoption("--target"), cfg.getoption("--profile")))
        elif target and target.get("protocol") == "opcua":
            from .identify_opcua import read_opcua_identity

            self.writer.set_dut(read_opcua_identity(cfg.getoption("--target")))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.writer is None:
            return
        for name, value in report.user_properties:
            if name == _CASE_PROP and report.when in ("setup", "call"):
                case = CaseResult.from_dict(json.loads(value))
                self.writer.ensure_catalogue(case.suite)
                self.writer.add(case)

    def pytest_keyboard_interrupt(self, excinfo) -> None:
        self.interrupted = True

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        if self.writer is None:
            return
        status = "interrupted" if self.interrupted or exitstatus == pytest.ExitCode.INTERRUPTED else "finished"
        for warning in self.writer.finish(status, artifacts=self.write_artifacts):
            print(f"harness: {warning}", file=sys.stderr)


def _lab_block(path: str | None, lab_name: str | None, client: str | None) -> dict | None:
    from .lab import load_lab, with_overrides

    # a broken lab file stops the run before any case (`harness certify` checks it first)
    return with_overrides(load_lab(path) if path else None, lab_name=lab_name, client_name=client)


def _profile_block(path: str | None) -> dict | None:
    if not path:
        return None
    from .profile import ProfileError, load_profile, profile_summary

    try:
        return profile_summary(load_profile(path))
    except ProfileError as exc:
        return {"source": path, "error": str(exc)}
