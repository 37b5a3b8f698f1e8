"""Writes a run's results.json as each case ends, and the other artifacts when the run ends.

results.json is rewritten atomically (temporary file + rename) after every case, so an
interrupted run always leaves a readable file whose `run.status` says "running" or
"interrupted".  At the end the writer adds junit.xml, report.html and capture.pcap beside it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .model import RESULTS_SCHEMA, CaseResult
from .verdict import profile_verdicts, summarize

# The harness rewrites the pcap's server port to the protocol's registered port so that tshark
# and Wireshark decode it without options; the real port stays in results.json.
PCAP_SERVER_PORTS = {"modbus": 502, "opcua": 4840}
PCAP_PROTOCOL_NAMES = {"modbus": "Modbus/TCP", "opcua": "OPC UA"}
_CASES_SLOT = "\u0000cases written here\u0000"  # no case text can contain it: JSON escapes NUL


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _umask_mode()
# The protocol stacks a run may have used, by the module that shows it was loaded.
_PYTHON_STACKS = {"asyncua": "asyncua", "pymodbus": "pymodbus", "modbus_tk": "modbus-tk", "umodbus": "uModbus",
                  "pyModbusTCP": "pyModbusTCP"}
_NODE_STACKS = ("node-opcua", "modbus-serial", "jsmodbus")


def stack_versions() -> dict:
    """{stack: version} of the third-party protocol stacks loaded in this run (the OPC UA judge
    encodes with asyncua; matrix runs load the stacks under test)."""
    from .installed import installed_version

    stacks = {dist: installed_version(dist) for module, dist in _PYTHON_STACKS.items() if module in sys.modules}
    if "harness.node_runtime" in sys.modules:
        from .node_runtime import npm_package_version

        for package in _NODE_STACKS:
            try:
                stacks[package] = npm_package_version(package)
            except Exception:  # node packages not installed: the run used none of them
                continue
    return stacks


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ResultsWriter:
    def __init__(self, path: Path, *, command: str, seed: int, target: dict | None, profile: dict | None, catalogues: dict,
                 lab: dict | None = None, report_lang: str = "en", archive: str | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cases: list[CaseResult] = []
        self._case_texts: list[str] = []
        self.catalogues = catalogues  # suite -> Catalogue
        self.report_lang = report_lang
        self.archive = archive  # None: the default archive; "off": none
        self.data: dict = {
            "schema": RESULTS_SCHEMA,
            "run": {
                "id": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8],
                "start": _now(),
                "end": None,
                "status": "running",
                "versions": self._versions(),
                "command": command,
                "seed": seed,
                "host": {"os": platform.platform(), "python": sys.version.split()[0]},
            },
            "target": target,
            "profile": profile,
            "lab": lab,
            "dut": None,
            "summary": {},
            "capture": None,
            "cases": [],
        }
        self.flush()

    def _versions(self) -> dict:
        versions = {"harness": __version__, "python": sys.version.split()[0]}
        for suite, cat in self.catalogues.items():
            if cat is not None:
                versions[f"catalogue:{suite}"] = cat.sha256[:16]
        return versions

    def _suites(self) -> dict:
        """Each suite's catalogue as the report's environment section names it."""
        return {
            suite: {
                "version": __version__,  # the suites ship inside the harness
                "catalogue_sha256": cat.sha256,
                "requirements": len(cat.requirements),
                "documents": sorted({f"{r.document} {r.version}" for r in cat.requirements.values()}),
            }
            for suite, cat in self.catalogues.items()
            if cat is not None
        }

    def ensure_catalogue(self, suite: str) -> None:
        """Load the bundled catalogue of `suite` the first time one of its cases arrives."""
        if suite in self.catalogues:
            return
        from .requirements import suite_catalogue

        try:
            self.catalogues[suite] = suite_catalogue(suite)
        except OSError:
            self.catalogues[suite] = None  # a suite of the user's own, without a catalogue
            return
        self.data["run"]["versions"] = self._versions()
        self.data["run"]["suites"] = self._suites()

    def set_dut(self, dut: dict | None) -> None:
        self.data["dut"] = dut
        self.flush()

    def add(self, case: CaseResult) -> None:
        self.cases.append(case)
        # Each case is serialised once: rewriting the file after every case then costs a join,
        # not a re-encoding of every earlier case's frames (a matrix run holds thousands).
        self._case_texts.append(json.dumps(case.to_dict(), indent=1, ensure_ascii=False))
        self.flush()

    def _summary(self) -> dict:
        summary = summarize(self.cases)
        coverage = {}
        for suite, cat in self.catalogues.items():
            if cat is None:
                continue
            tested = {r for c in self.cases if c.suite == suite for r in c.requirements if c.verdict.value not in ("NOT_APPLICABLE", "ERROR")}
            coverage[suite] = {"catalogued": len(cat.requirements), "tested": len(tested & set(cat.requirements))}
        summary["coverage"] = coverage
        profiles = self._profile_verdicts()
        if profiles:
            summary["profiles"] = profiles
        return summary

    def _profile_verdicts(self) -> dict:
        """Overall verdict per claimed server profile (and each profile it includes)."""
        claims = (self.data.get("profile") or {}).get("claims") or {}
        out = {}
        for suite, cat in self.catalogues.items():
            claimed = (claims.get(suite) or {}).get("profile")
            if cat is None or not cat.profiles or claimed not in cat.profiles:
                continue
            out.update(profile_verdicts([c for c in self.cases if c.suite == suite], cat, claimed))
        return out

    def flush(self) -> None:
        self.data["summary"] = self._summary()
        head = json.dumps({**self.data, "cases": _CASES_SLOT}, indent=1, ensure_ascii=False)
        cases = "[\n" + ",\n".join(self._case_texts) + "\n]" if self._case_texts else "[]"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".results-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(head.replace(json.dumps(_CASES_SLOT), cases, 1))
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes it 0600; results are shared like the report beside them
        os.replace(tmp, self.path)

    def _protocol(self) -> str:
        """The run's protocol: the target's, else the one its suites' catalogues name (the matrix
        and `harness observe` run without a target)."""
        target = self.data.get("target") or {}
        if target.get("protocol"):
            return target["protocol"]
        named = [cat.protocol for cat in self.catalogues.values() if cat is not None and cat.protocol]
        return named[0] if named else "modbus"

    def finish(self, status: str = "finished", *, artifacts: bool = True) -> list[str]:
        """Close the run; returns warnings about artifacts that could not be written."""
        self.data["run"]["end"] = _now()
        self.data["run"]["status"] = status
        self.data["run"]["suites"] = self._suites()
        self.data["run"]["stacks"] = stack_versions()
        warnings: list[str] = []
        out = self.path.parent
        self.data["cases"] = [c.to_dict() for c in self.cases]  # for the artifacts below
        if artifacts:
            warnings += self._write_pcap(out / "capture.pcap")
        self.flush()
        if artifacts:
            for name, writer in (("junit.xml", _write_junit), ("report.html", self._write_html)):
                try:
                    writer(self.data, out / name)
                except Exception as exc:  # a broken artifact must not lose the results
                    warnings.append(f"could not write {name}: {exc!r}")
            warnings += self._archive()
        return warnings

    def _write_html(self, results: dict, path: Path) -> None:
        from reports.html import write_html

        write_html(results, path, lang=self.report_lang)

    def _archive(self) -> list[str]:
        """Add the finished run to the run archive (`harness runs`)."""
        if self.archive == "off":
            return []
        try:
            from .store import RunArchive

            with RunArchive.open(Path(self.archive) if self.archive else None) as archive:
                archive.add(self.data, run_dir=self.path.parent.resolve())
        except Exception as exc:  # the results on disk are what counts; say why the archive missed it
            return [f"could not add the run to the archive: {exc}"]
        return []

    def _write_pcap(self, path: Path) -> list[str]:
        try:
            from .transport.pcap import pcap_connections_from_cases, write_pcap

            target = self.data.get("target") or {}
            protocol = self._protocol()
            port = PCAP_SERVER_PORTS.get(protocol, 502)
            connections = pcap_connections_from_cases(self.data["cases"], server_port_override=port)
            positions = write_pcap(path, connections)
        except Exception as exc:
            return [f"could not write capture.pcap: {exc!r}"]
        self.data["capture"] = {
            "file": path.name,
            "note": f"synthesised from the harness's socket I/O; server port written as {port} so that "
            f"tshark decodes {PCAP_PROTOCOL_NAMES.get(protocol, protocol)} "
            + (f"(real port: {target['port']})" if target.get("port") else "(the real ports are in each frame's connection)"),
            "frames": positions or {},
        }
        return []


def _write_junit(results: dict, path: Path) -> None:
    from reports.junit import write_junit

    write_junit(results, path)
