"""Turn a `results.json` dict into the plain view model the report template renders.

The report follows the structure of a conformance test report (ISO/IEC 9646-5, ITU-T X.294):
identification of the report, the laboratory and the client; the device under test, declared
and as read; the claims (PICS) and test parameters (PIXIT); the environment; the test
selection; results rolled up per profile, suite, conformance unit and requirement; the cases
and their annex of evidence; observations; the conclusion; signatures; a certificate page.

`build_view(results, lang=..., lab=...)` tolerates partial input: any block may be missing or
null (an interrupted run, a hand-written file), and a case dict may lack optional fields.
Verdicts and counts are recomputed from the cases with `harness.verdict`, so what the report
shows always agrees with the rows it lists.  Nothing here escapes HTML: the template does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from harness.canonical import canonical_sha256
from harness.verdict import summarize

from .charts import LatencyChart, SuiteBar, latency_chart, verdict_bars
from .i18n import LANGUAGES, gettext_for
from .view_cases import CaseRow, as_case_result, case_rows, format_duration, mapping, text
from .view_identity import IdentityRow, identity_rows, identity_value
from .view_matrix import MatrixView, matrix_view
from .view_rollup import (CountCell, ExcludedRow, GroupRow, LevelRow, Overall, RequirementRow, catalogue,
                          count_cells, excluded_rows, level_rows, overall, profile_rows, requirement_rows,
                          suite_rows, unit_rows)

_PASSWORD_IN_URL = re.compile(r"(//[^/@:\s]*:)[^/@\s]*@")
_PASSWORD_PARAM = re.compile(r"(?i)([?&](?:password|passwd|pass|pwd|secret|token)=)[^&#\s]*")


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Signatory:
    role: str
    name: str


@dataclass(frozen=True, slots=True)
class LabView:
    laboratory: list[KeyValue]
    client: list[KeyValue]
    operator: str
    signatories: list[Signatory]


@dataclass(frozen=True, slots=True)
class SuiteEnvironment:
    name: str
    version: str
    catalogue_sha256: str
    requirements: str
    documents: str
    changed_since: bool  # the bundled catalogue now differs from the one the run used


@dataclass(frozen=True, slots=True)
class ReportView:
    lang: str
    title: str
    report_id: str
    report_date: str
    status: str
    partial: bool
    start: str
    end: str
    elapsed: str
    lab: LabView
    subject: str  # the first heading: the device, or the matrix's stacks
    subject_details: list[str]
    device_name: str
    device_revision: str
    target_url: str
    protocol: str
    profile_source: str
    dut_source: str
    identity: list[IdentityRow]
    identity_mismatch: list[str]
    claims: list[KeyValue]
    claims_brief: list[KeyValue]  # the first screen's: short values only
    parameters: list[KeyValue]
    environment: list[KeyValue]
    suite_environment: list[SuiteEnvironment]
    stacks: list[KeyValue]
    capture_file: str
    capture_note: str
    overall: Overall
    total: int
    counts: list[CountCell]
    by_level: list[LevelRow]
    suites: list[GroupRow]
    profiles: list[GroupRow]
    conclusions: list[GroupRow]
    units: list[GroupRow]
    requirements: list[RequirementRow]
    tested: int
    catalogued: int
    verdict_bars: list[SuiteBar]
    latency: LatencyChart | None
    matrix: MatrixView | None
    cases: list[CaseRow]
    failures: list[CaseRow]
    excluded: list[ExcludedRow]
    annex_complete: bool
    observations: list[str]
    results_sha256: str


def redact(text_: str) -> str:
    """Remove passwords from URL-like text (DESIGN section 4: never in a report)."""
    return _PASSWORD_PARAM.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1***@", text_))


def _elapsed(start: str, end: str) -> str:
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
        return format_duration((b - a).total_seconds())
    except (ValueError, TypeError, AttributeError):
        return ""


def _flat(value: Any) -> str:
    """A claim or parameter value on one line: lists joined, mappings as key=value."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items())
    if isinstance(value, list):
        sep = "; " if any(isinstance(v, (Mapping, list)) for v in value) else ", "
        return sep.join(_flat(v) for v in value)
    return text(value)


def _key_values(block: Mapping[str, Any], protocols: set[str]) -> list[KeyValue]:
    """The claims or parameters of the run's protocols, one row per field:
    {"modbus": {"function_codes": [...]}, "opcua": {...}} -> "function codes: 1, 2, 3" for a
    Modbus run.  A block of a protocol the run did not test is left out; with no protocol
    known, every block is shown with its protocol's name."""
    shown = {k: v for k, v in block.items() if k in protocols} or block
    rows = []
    for protocol, fields in shown.items():
        prefix = "" if len(shown) == 1 and protocol in protocols else f"{protocol} · "
        if isinstance(fields, Mapping):
            rows += [KeyValue(prefix + str(key).replace("_", " "), _flat(value)) for key, value in fields.items()]
        else:
            rows.append(KeyValue(str(protocol).replace("_", " "), _flat(fields)))
    return rows


def _run_protocols(target: Mapping[str, Any], suites: list[str]) -> set[str]:
    protocols = {text(target.get("protocol"))} - {""}
    for suite in suites:
        cat = catalogue(suite)
        if cat is not None and cat.protocol:
            protocols.add(cat.protocol)
        if suite.endswith("_robustness"):
            protocols.add("robustness")  # the robustness suites' parameters are a block of their own
    return protocols


def _party(block: Any, _) -> list[KeyValue]:
    labels = {"name": _("Name"), "address": _("Address"), "accreditation": _("Accreditation"), "contact": _("Contact")}
    return [KeyValue(labels.get(k, str(k)), text(v)) for k, v in mapping(block).items() if text(v)]


def _lab(lab: Mapping[str, Any], _) -> LabView:
    signatories = [Signatory(text(mapping(s).get("role")), text(mapping(s).get("name"))) for s in lab.get("signatories") or []
                   if isinstance(s, Mapping)]
    if not signatories:
        signatories = [Signatory(_("Tested by"), ""), Signatory(_("Reviewed and approved by"), "")]
    return LabView(_party(lab.get("laboratory"), _), _party(lab.get("client"), _), text(lab.get("operator")), signatories)


def _suite_environment(run: Mapping[str, Any], suites: list[str]) -> list[SuiteEnvironment]:
    recorded = mapping(run.get("suites"))
    versions = mapping(run.get("versions"))
    rows = []
    for name in suites:
        entry = mapping(recorded.get(name))
        digest = text(entry.get("catalogue_sha256")) or text(versions.get(f"catalogue:{name}"))
        current = catalogue(name)
        changed = bool(digest and current is not None and not current.sha256.startswith(digest))
        rows.append(SuiteEnvironment(
            name, text(entry.get("version")) or text(versions.get("harness")), digest,
            text(entry.get("requirements")) or (str(len(current.requirements)) if current else ""),
            ", ".join(text(d) for d in entry.get("documents") or []), changed))
    return rows


def _observations(view_parts: dict, lab: Mapping[str, Any], _) -> list[str]:
    """The lab's own remarks, then what the harness noticed that a reader must know."""
    notes = [text(o) for o in lab.get("observations") or [] if text(o)]
    if view_parts["identity_mismatch"]:
        notes.append(_("The identity read from the device differs from the profile in: %(fields)s.")
                     % {"fields": ", ".join(view_parts["identity_mismatch"])})
    if not view_parts["dut_source"]:
        notes.append(_("The device's identity was not read from the device; only the profile's declaration is shown."))
    if view_parts["partial"]:
        notes.append(_("The run did not finish; the results are partial and the verdicts provisional."))
    counts = {c.verdict: c.count for c in view_parts["counts"]}
    if counts.get("ERROR"):
        notes.append(_("%(n)s case(s) ended in ERROR: the harness or the environment failed, not necessarily the device.")
                     % {"n": counts["ERROR"]})
    if counts.get("INCONCLUSIVE"):
        notes.append(_("%(n)s case(s) were INCONCLUSIVE: the harness could not decide.") % {"n": counts["INCONCLUSIVE"]})
    for row in view_parts["suites"]:
        if row.catalogued is not None and row.tested is not None and row.tested < row.catalogued:
            notes.append(_("Suite %(suite)s: %(tested)s of %(catalogued)s catalogued requirements were tested.")
                         % {"suite": row.name, "tested": row.tested, "catalogued": row.catalogued})
    for env in view_parts["suite_environment"]:
        if env.changed_since:
            notes.append(_("The bundled catalogue of suite %(suite)s has changed since this run; requirement texts are today's.")
                         % {"suite": env.name})
    return notes


def build_view(results: Mapping[str, Any], *, lang: str = "en", lab: Mapping[str, Any] | None = None) -> ReportView:
    """The view model of one run, from its results.json dict, in language `lang`."""
    _ = gettext_for(lang)
    results = mapping(results)
    run = mapping(results.get("run"))
    target = mapping(results.get("target"))
    profile = mapping(results.get("profile"))
    dut = mapping(results.get("dut"))
    capture = mapping(results.get("capture"))
    lab_block = mapping(lab if lab is not None else results.get("lab"))
    summary_in = mapping(results.get("summary"))
    raw_cases = [c for c in (results.get("cases") or []) if isinstance(c, Mapping)]

    # {case id: [pcap frame numbers]} as harness.transport.pcap.write_pcap returns it
    pcap_frames = mapping(capture.get("frames")) or mapping(capture.get("frames_by_case"))
    rows = case_rows(raw_cases, pcap_frames, _)
    summary = summarize([as_case_result(c) for c in raw_cases])
    suite_names = list(summary["suites"])
    suites = suite_rows(summary, mapping(summary_in.get("coverage")), _)
    protocols = _run_protocols(target, suite_names)
    profiles = profile_rows(raw_cases, mapping(profile.get("claims")), suite_names, _)
    with_profile = {text(mapping(c).get("suite")) for c in raw_cases} if profiles else set()
    # the conclusion: a claimed profile where the suite has one, else the suite's own verdict
    conclusions = [p for p in profiles if p.claimed] + [replace(s, name=_("Suite %(suite)s") % {"suite": s.name})
                                                        for s in suites if s.name not in with_profile]
    requirements = requirement_rows(rows, suite_names, _)

    identity = identity_rows(mapping(profile.get("device")), mapping(dut.get("objects")), _)
    device_name = " ".join(x for x in (identity_value(identity, "vendorname"),
                                       identity_value(identity, "productname", "productcode", "modelname")) if x)
    status = text(run.get("status")) or "unknown"
    start, end = text(run.get("start")), text(run.get("end"))
    parts = {
        "identity_mismatch": [row.label for row in identity if row.mismatch],
        "dut_source": text(dut.get("source")),
        "partial": status != "finished",
        "counts": count_cells(summary["counts"], _),
        "suites": suites,
        "suite_environment": _suite_environment(run, suite_names),
    }
    claims = _key_values(mapping(profile.get("claims")), protocols)
    host = mapping(run.get("host"))
    environment = [KeyValue(k, v) for k, v in (
        (_("Harness version"), text(mapping(run.get("versions")).get("harness"))),
        (_("Python"), text(host.get("python")) or text(mapping(run.get("versions")).get("python"))),
        (_("Operating system"), text(host.get("os"))),
        (_("Command"), redact(text(run.get("command")))),
        (_("Random seed"), text(run.get("seed"))),
    ) if v]
    matrix = matrix_view(raw_cases, rows, _)
    device_revision = identity_value(identity, "revision")
    if matrix is not None:
        subject = _("Interoperability matrix: %(clients)s client stacks × %(servers)s server stacks") % {
            "clients": len(matrix.rows), "servers": len(matrix.servers)}
        details = [_("servers loaded with %(device)s") % {"device": device_name}] if device_name else []
    else:
        subject = device_name or _("Unidentified device")
        details = [_("Revision / firmware") + " " + device_revision] if device_revision else []
        details += [redact(text(target.get("url")))] if target.get("url") else []
    lab_name = text(mapping(lab_block.get("laboratory")).get("name"))
    details += [_("Tested by") + " " + lab_name] if lab_name else []
    try:
        digest = canonical_sha256(results)
    except (TypeError, ValueError):  # not JSON data at all (a hand-built dict): say so, never crash
        digest = ""
    return ReportView(
        lang=lang if lang in LANGUAGES else "en",
        title=_("Conformance test report"),
        report_id=text(run.get("id")),
        report_date=(end or start)[:10],
        status=status,
        partial=parts["partial"],
        start=start,
        end=end,
        elapsed=_elapsed(start, end) if start and end else "",
        lab=_lab(lab_block, _),
        subject=subject,
        subject_details=details,
        device_name=device_name,
        device_revision=device_revision,
        target_url=redact(text(target.get("url"))),
        protocol=text(target.get("protocol")),
        profile_source=text(profile.get("source")),
        dut_source=parts["dut_source"],
        identity=identity,
        identity_mismatch=parts["identity_mismatch"],
        claims=claims,
        claims_brief=[kv for kv in claims if len(kv.value) <= 100][:8],
        parameters=_key_values(mapping(profile.get("parameters")), protocols),
        environment=environment,
        suite_environment=parts["suite_environment"],
        stacks=[KeyValue(str(k), text(v)) for k, v in mapping(run.get("stacks")).items()],
        capture_file=text(capture.get("file")),
        capture_note=text(capture.get("note")),
        overall=overall(summary["overall"], _),
        total=len(raw_cases),
        counts=parts["counts"],
        by_level=level_rows(summary, _),
        suites=suites,
        profiles=profiles,
        conclusions=conclusions,
        units=unit_rows(raw_cases, suite_names, _),
        requirements=requirements,
        tested=sum(1 for r in requirements if r.verdict not in ("NOT_TESTED", "NOT_APPLICABLE", "ERROR")),
        catalogued=len(requirements),
        verdict_bars=verdict_bars({name: s["counts"] for name, s in summary["suites"].items()}, _),
        latency=latency_chart(raw_cases, _),
        matrix=matrix,
        cases=rows,
        failures=[r for r in rows if r.failed],
        excluded=excluded_rows(rows, _),
        annex_complete=all(r.in_annex for r in rows),
        observations=_observations(parts, lab_block, _),
        results_sha256=digest,
    )
