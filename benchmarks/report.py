"""Report benchmark: render time and size of the HTML report for 100, 1,000 and 10,000 cases,
beside a plain jinja2 table of the same rows.

    .venv/bin/python benchmarks/report.py [--sizes 100,1000,10000] [--repeat 3]

The results documents are synthetic but shaped like a real run of the Modbus suite: real
requirement ids and clauses from the bundled catalogue, a MUST/SHOULD/MAY mix, about 5% FAIL
(with expected, observed and a message), some NOT_APPLICABLE, a few INCONCLUSIVE and ERROR,
2 to 4 frames per case (12 to 60 bytes each, with decoded summaries), durations and the pcap
frame numbers.  For each size it prints the best of `--repeat` renders of
`reports.html.render_html` and the report's size in UTF-8 bytes, then the same for the
reference: a minimal autoescaped jinja2 template with one row (id, title, verdict, message)
per case, and the ratios report / reference.  Goal: 10,000 cases in under 1 s and 5 MB.
Absolute numbers depend on the machine, the ratios much less.
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jinja2  # noqa: E402

from harness.model import CaseResult, Evidence, Frame, Level, Verdict  # noqa: E402
from harness.requirements import suite_catalogue  # noqa: E402
from harness.verdict import summarize  # noqa: E402
from reports.html import render_html  # noqa: E402
from reports.viewmodel import build_view  # noqa: E402

GOAL_SECONDS, GOAL_BYTES = 1.0, 5_000_000
REFERENCE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{{ title }}</title></head><body>\n"
    "<table>\n<tr><th>Case</th><th>Title</th><th>Verdict</th><th>Message</th></tr>\n"
    "{% for c in cases %}<tr><td>{{ c.id }}</td><td>{{ c.title }}</td><td>{{ c.verdict }}</td><td>{{ c.message }}</td></tr>\n"
    "{% endfor %}</table>\n</body></html>\n")

FUNCTIONS = {1: "Read Coils", 2: "Read Discrete Inputs", 3: "Read Holding Registers", 4: "Read Input Registers",
             5: "Write Single Coil", 6: "Write Single Register", 15: "Write Multiple Coils",
             16: "Write Multiple Registers", 23: "Read/Write Multiple Registers"}
CHECKS = ["quantity {q} is served", "quantity {q} is refused with exception 03", "the first address is served",
          "the last address is served", "the address one past the end is refused with exception 02",
          "a request crossing the end of the table is refused", "the answer echoes the request",
          "the transaction id {t:#06x} is echoed"]
EXCEPTIONS = ["01 ILLEGAL FUNCTION", "02 ILLEGAL DATA ADDRESS", "03 ILLEGAL DATA VALUE", "04 SERVER DEVICE FAILURE"]
CONN = "127.0.0.1:40512->127.0.0.1:502"


def _frame(rng: random.Random, direction: str, t: float, tid: int, fc: int) -> Frame:
    size = rng.randint(12, 60)
    body = bytes([fc]) + bytes(rng.randrange(256) for _ in range(size - 8))
    raw = tid.to_bytes(2, "big") + b"\x00\x00" + (len(body) + 1).to_bytes(2, "big") + b"\x01" + body
    if direction == "tx":
        summary = f"tid={tid:#06x} uid=1 FC{fc:02d} {FUNCTIONS[fc]} addr={rng.randrange(400)} qty={rng.randint(1, 125)}"
    else:
        summary = f"tid={tid:#06x} uid=1 FC{fc:02d} {len(body) - 2} data bytes"
    return Frame(direction, 1000.0 + t, 1_700_000_000.0 + t, raw.hex(), summary, CONN)


def _case(rng: random.Random, index: int, requirements: list, first_pcap_frame: int) -> tuple[CaseResult, list[int]]:
    requirement = requirements[index % len(requirements)]
    fc = rng.choice(list(FUNCTIONS))
    check = rng.choice(CHECKS).format(q=rng.choice([0, 1, 125, 126, 2000]), t=rng.randrange(65536))
    roll = rng.random()
    verdict = (Verdict.FAIL if roll < 0.05 else Verdict.NOT_APPLICABLE if roll < 0.12 else
               Verdict.INCONCLUSIVE if roll < 0.13 else Verdict.ERROR if roll < 0.135 else Verdict.PASS)
    level = rng.choices([Level.MUST, Level.SHOULD, Level.MAY], weights=[80, 15, 5])[0]
    frames: list[Frame] = []
    if verdict is not Verdict.NOT_APPLICABLE:
        t = rng.random() * 100
        for n in range(rng.randint(2, 4)):
            t += rng.uniform(0.0002, 0.02)
            frames.append(_frame(rng, "tx" if n % 2 == 0 else "rx", t, (index + n // 2) & 0xFFFF, fc))
    message = expected = observed = ""
    if verdict is Verdict.FAIL:
        exception = rng.choice(EXCEPTIONS)
        message = f"device answered exception {exception} where the request is valid"
        expected = f"FC{fc:02d} normal response with the registers of the profile"
        observed = f"exception {exception} (function code {fc | 0x80:#04x})"
    elif verdict is Verdict.NOT_APPLICABLE:
        message = f"FC {fc} is not claimed in the profile"
    elif verdict is Verdict.INCONCLUSIVE:
        message = "response time varied beyond the tolerance (timing noise)"
    elif verdict is Verdict.ERROR:
        message = "ConnectionResetError: the harness lost the connection before the request was sent"
    case = CaseResult(
        id=f"MB-FC{fc:02d}-BENCH-{index:05d}",
        title=f"FC{fc:02d} {FUNCTIONS[fc]}: {check}",
        suite="modbus",
        requirements=[requirement.id],
        level=level,
        clause=f"{requirement.document} {requirement.version} §{requirement.clause}",
        verdict=verdict,
        message=message,
        duration_s=round(rng.uniform(0.0003, 0.05), 6),
        nodeid=f"conformance_suites/modbus/test_bench.py::test_case[{index}]",
        evidence=Evidence(frames=frames, expected=expected, observed=observed,
                          notes=["the profile declares this address range"] if verdict is Verdict.FAIL else []),
    )
    return case, list(range(first_pcap_frame, first_pcap_frame + len(frames)))


def synthetic_results(n: int, seed: int = 20240501) -> dict:
    """A results.json document with `n` cases (deterministic for a given `n` and `seed`)."""
    rng = random.Random(seed + n)
    catalogue = suite_catalogue("modbus")
    requirements = list(catalogue.requirements.values())
    cases, pcap_frames, next_frame = [], {}, 1
    for i in range(n):
        case, numbers = _case(rng, i, requirements, next_frame)
        cases.append(case)
        if numbers:
            pcap_frames[case.id] = numbers
            next_frame += len(numbers)
    summary = summarize(cases)
    summary["coverage"] = {"modbus": {"catalogued": len(requirements),
                                      "tested": len({r for c in cases for r in c.requirements})}}
    device = {"vendor_name": "Example Automation", "product_code": "EX-PM100", "revision": "1.2",
              "product_name": "Power Meter 100", "model_name": "PM100-TCP"}
    return {
        "schema": "harness.results/1",
        "run": {"id": f"20240501T100000Z-bench{n:05d}", "start": "2024-05-01T10:00:00.000+00:00",
                "end": "2024-05-01T10:03:20.000+00:00", "status": "finished",
                "versions": {"harness": "0.1.0", "python": "3.11.7", "catalogue:modbus": catalogue.sha256[:16]},
                "command": "harness certify modbus+tcp://192.0.2.10:502 --profile device.yaml", "seed": 1234,
                "host": {"os": "Linux", "python": "3.11.7"}},
        "target": {"url": "modbus+tcp://192.0.2.10:502", "protocol": "modbus", "host": "192.0.2.10", "port": 502},
        "profile": {"source": "device.yaml", "device": device,
                    "claims": {"modbus": {"function_codes": sorted(FUNCTIONS), "max_outstanding": 16}},
                    "parameters": {"modbus": {"unit_ids": [1], "response_timeout_ms": 500}}, "points": 21},
        "dut": {"source": "Modbus FC43/14",
                "objects": {"VendorName": "Example Automation", "ProductCode": "EX-PM100", "MajorMinorRevision": "1.2",
                            "ProductName": "Power Meter 100", "ModelName": "PM100-TCP"}},
        "summary": summary,
        "capture": {"file": "capture.pcap", "note": "server port written as 502", "frames": pcap_frames},
        "cases": [c.to_dict() for c in cases],
    }


def _paused_gc(function, *args):
    gc.disable()
    try:
        return function(*args)
    finally:
        gc.enable()


def best_of(repeat: int, render) -> tuple[float, str]:
    times, html = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        html = render()
        times.append(time.perf_counter() - t0)
    return min(times), html


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated case counts")
    parser.add_argument("--repeat", type=int, default=3, help="renders per measurement; the best is kept")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    render_html(synthetic_results(10))  # templates and catalogues loaded once, outside the timings
    print(f"HTML report vs a plain jinja2 table of the same rows (best of {args.repeat}; goal at 10,000 cases: "
          f"under {GOAL_SECONDS:g} s and under {GOAL_BYTES / 1e6:g} MB):")
    print(f"  {'cases':>6s} {'report s':>9s} {'report MB':>10s} {'table s':>8s} {'table MB':>9s} "
          f"{'time ratio':>10s} {'size ratio':>10s}  goal")
    for n in sizes:
        results = synthetic_results(n)
        report_s, report = best_of(args.repeat, lambda: render_html(results))
        table_s, table = best_of(args.repeat, lambda: REFERENCE.render(title=f"{n} cases", cases=results["cases"]))
        report_bytes, table_bytes = len(report.encode("utf-8")), len(table.encode("utf-8"))
        goal = ""
        if n >= 10_000:
            met = report_s < GOAL_SECONDS and report_bytes < GOAL_BYTES
            goal = "met" if met else (f"MISSED ({'time' if report_s >= GOAL_SECONDS else ''}"
                                      f"{' and ' if report_s >= GOAL_SECONDS and report_bytes >= GOAL_BYTES else ''}"
                                      f"{'size' if report_bytes >= GOAL_BYTES else ''})")
        print(f"  {n:6d} {report_s:9.3f} {report_bytes / 1e6:10.2f} {table_s:8.4f} {table_bytes / 1e6:9.2f} "
              f"{report_s / table_s:9.1f}x {report_bytes / table_bytes:9.1f}x  {goal}")
    view_s, _ = best_of(args.repeat, lambda: _paused_gc(build_view, results))  # as render_html runs it
    print(f"Where the {sizes[-1]} cases go: view model {view_s:.3f} s of {report_s:.3f} s (the rest is the template); "
          f"bytes by section: {section_sizes(report)}")


def section_sizes(html: str, top: int = 4) -> str:
    """The largest top-level sections of a report, by their share of its UTF-8 bytes."""
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<section id="([^"]+)"', html)]
    sizes = [(len(html[a:b].encode("utf-8")), name)
             for (a, name), (b, _) in zip(starts, starts[1:] + [(len(html), "")])]
    total = len(html.encode("utf-8"))
    return ", ".join(f"#{name} {size / total:.0%}" for size, name in sorted(sizes, reverse=True)[:top])


if __name__ == "__main__":
    main()
