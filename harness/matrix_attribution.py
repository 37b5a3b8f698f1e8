"""Which side of a failing matrix cell broke the rule: the client stack or the server stack.

The bundled simulator passes every case of the server conformance suite (tests/e2e checks it),
so it is the reference server of the matrix:

- a client that fails a scenario against the simulator breaks it itself ("client side");
- a scenario that fails against a server for a client that passes it against the simulator is
  the server's doing ("server side"), all the more when several such clients fail it there;
- anything else (the client has no simulator result for the scenario) is left "undetermined".

`attribute(cases)` adds one `attribution:` note to each failing case's evidence and returns a
summary {(scenario, server): text} for printing.  Pure function over results.json case dicts.
"""

from __future__ import annotations

REFERENCE_SERVER = "simulator"


def attribute(cases: list[dict]) -> dict[tuple[str, str], str]:
    verdict = {}
    for case in cases:
        tags = case.get("tags") or {}
        if {"client", "server", "scenario"} <= set(tags):
            verdict[(tags["client"], tags["server"], tags["scenario"])] = case["verdict"]
    summary: dict[tuple[str, str], str] = {}
    for case in cases:
        tags = case.get("tags") or {}
        if case["verdict"] != "FAIL" or not {"client", "server", "scenario"} <= set(tags):
            continue
        client, server, scenario = tags["client"], tags["server"], tags["scenario"]
        on_reference = verdict.get((client, REFERENCE_SERVER, scenario))
        if server == REFERENCE_SERVER or on_reference == "FAIL":
            text = f"client side: {client} fails {scenario} against the reference simulator too"
        elif on_reference == "PASS":
            others = sorted(c for (c, s, sc), v in verdict.items() if s == server and sc == scenario and v == "FAIL"
                            and verdict.get((c, REFERENCE_SERVER, sc)) == "PASS")
            text = (f"server side: {server} ({client} passes {scenario} against the reference simulator; "
                    f"{len(others)} client(s) that pass it there fail it against {server})")
            summary[(scenario, server)] = f"server side, {len(others)} client(s): {', '.join(others)}"
        else:
            text = f"undetermined: {client} has no verdict for {scenario} against the reference simulator"
        case.setdefault("evidence", {}).setdefault("notes", []).append(f"attribution: {text}")
        if server == REFERENCE_SERVER or on_reference == "FAIL":
            summary[(scenario, f"client {client}")] = "client side"
    return summary
