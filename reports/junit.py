"""Write a run's `results.json` dict as JUnit XML for CI systems (standard library only).

One <testsuite> per conformance suite; one <testcase> per case with classname = suite and
name = "<case id>: <title>".  Verdicts map onto what CI tools understand:

    PASS            (no child)
    FAIL            <failure message=...>  expected / observed / notes in the text
    ERROR           <error message=...>
    NOT_APPLICABLE  <skipped message="not applicable: ...">
    INCONCLUSIVE    <skipped message="inconclusive: ...">

and every testcase carries <properties> with requirements, level, clause and the verdict, so
the harness verdict is never lost in the mapping.  Device strings may hold anything; characters
XML 1.0 forbids are written as visible escapes ("\\x01") so the file always parses.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_FORBIDDEN = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(value: Any) -> str:
    """`value` as text with every character XML 1.0 forbids replaced by a visible escape."""
    text = "" if value is None else value if isinstance(value, str) else str(value)
    return _FORBIDDEN.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


def _seconds(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def _evidence_text(case: Mapping[str, Any]) -> str:
    evidence = case.get("evidence") if isinstance(case.get("evidence"), Mapping) else {}
    lines = []
    if case.get("message"):
        lines.append(f"Message:  {case['message']}")
    if evidence.get("expected"):
        lines.append(f"Expected: {evidence['expected']}")
    if evidence.get("observed"):
        lines.append(f"Observed: {evidence['observed']}")
    for note in evidence.get("notes") or []:
        lines.append(f"Note:     {note}")
    if case.get("clause"):
        lines.append(f"Clause:   {case['clause']}")
    return "\n".join(str(line) for line in lines)


def _frame_trace(case: Mapping[str, Any]) -> str:
    evidence = case.get("evidence") if isinstance(case.get("evidence"), Mapping) else {}
    frames = [f for f in evidence.get("frames") or [] if isinstance(f, Mapping)]
    if not frames:
        return ""
    t0 = frames[0].get("t_mono")
    lines = []
    for f in frames:
        arrow = {"tx": "->", "rx": "<-"}.get(f.get("direction"), "..")
        try:
            rel = f"{(float(f.get('t_mono')) - float(t0)) * 1000:+9.3f} ms"
        except (TypeError, ValueError):
            rel = " " * 12
        lines.append(f"{arrow} {rel}  {f.get('hex', '')}  {f.get('summary', '')}")
    return "\n".join(lines)


def _sub(parent: ET.Element, tag: str, **attrs: Any) -> ET.Element:
    return ET.SubElement(parent, tag, {k: xml_safe(v) for k, v in attrs.items()})


def _testcase(suite_el: ET.Element, suite: str, case: Mapping[str, Any]) -> str:
    verdict = str(case.get("verdict") or "ERROR")
    case_id, title = xml_safe(case.get("id", "")), xml_safe(case.get("title", ""))
    el = _sub(
        suite_el,
        "testcase",
        classname=suite,
        name=f"{case_id}: {title}" if title else case_id,
        time=f"{_seconds(case.get('duration_s')):.6f}",
    )
    props = _sub(el, "properties")
    requirements = case.get("requirements") or []
    if isinstance(requirements, str):
        requirements = [requirements]
    for name, value in (
        ("requirements", ", ".join(str(r) for r in requirements)),
        ("level", case.get("level", "")),
        ("clause", case.get("clause", "")),
        ("verdict", verdict),
    ):
        _sub(props, "property", name=name, value=value)

    message = str(case.get("message") or "")
    if verdict == "PASS":
        return verdict
    if verdict == "FAIL":
        child = _sub(el, "failure", message=message or "device broke a rule", type="FAIL")
    elif verdict == "NOT_APPLICABLE":
        child = _sub(el, "skipped", message=f"not applicable: {message}" if message else "not applicable")
    elif verdict == "INCONCLUSIVE":
        child = _sub(el, "skipped", message=f"inconclusive: {message}" if message else "inconclusive")
    else:  # ERROR, and any verdict this writer does not know: never report it as a pass
        child = _sub(el, "error", message=message or "harness or environment error", type=verdict)
    text = _evidence_text(case)
    if text and verdict != "NOT_APPLICABLE":
        child.text = xml_safe(text)
    trace = _frame_trace(case)
    if trace and verdict != "NOT_APPLICABLE":
        _sub(el, "system-out").text = xml_safe(trace)
    return verdict


def build_junit(results: Mapping[str, Any]) -> ET.Element:
    """The <testsuites> element for `results` (a results.json dict, possibly partial)."""
    run = results.get("run") if isinstance(results.get("run"), Mapping) else {}
    target = results.get("target") if isinstance(results.get("target"), Mapping) else {}
    cases = [c for c in results.get("cases") or [] if isinstance(c, Mapping)]
    by_suite: dict[str, list[Mapping[str, Any]]] = {}
    for case in cases:
        by_suite.setdefault(str(case.get("suite") or "harness"), []).append(case)

    root = ET.Element("testsuites", {"name": "harness"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for suite, suite_cases in by_suite.items():
        suite_el = _sub(root, "testsuite", name=suite)
        if run.get("start"):
            suite_el.set("timestamp", xml_safe(run["start"]))
        props = _sub(suite_el, "properties")
        for name, value in (("run.id", run.get("id")), ("target", target.get("url"))):
            if value:
                _sub(props, "property", name=name, value=value)
        n = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite_time = 0.0
        for case in suite_cases:
            verdict = _testcase(suite_el, suite, case)
            n["tests"] += 1
            if verdict == "FAIL":
                n["failures"] += 1
            elif verdict in ("NOT_APPLICABLE", "INCONCLUSIVE"):
                n["skipped"] += 1
            elif verdict != "PASS":
                n["errors"] += 1
            suite_time += _seconds(case.get("duration_s"))
        for key, value in n.items():
            suite_el.set(key, str(value))
            totals[key] += value
        suite_el.set("time", f"{suite_time:.6f}")
        total_time += suite_time
        if len(props) == 0:
            suite_el.remove(props)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.6f}")
    return root


def write_junit(results: Mapping[str, Any], path: str | Path) -> Path:
    """Write JUnit XML for `results` to `path` (UTF-8, with an XML declaration)."""
    path = Path(path)
    tree = ET.ElementTree(build_junit(results))
    ET.indent(tree)
    tmp = path.with_name(path.name + ".tmp")
    tree.write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
    return path
