"""Which side of a failing matrix cell broke which rule, from each side's own conformance verdicts.

Each interoperability scenario names, in its catalogue entry, the cases of the server suite
that check the same exchange from the server's side (`server_cases`) and the requirements of
the client-side suite it depends on (`client_requirements`).
For a failing cell (client C, server S, scenario X):

- the server side is named when S's own conformance run (the server suite run against S, see
  `harness/conformance_store.py`) FAILs one of X's server cases;
- the client side is named when C's client-side cases (run in the same matrix) FAIL one of X's
  client requirements;
- both, when both do; each with the requirement ids and the cases that failed them.

When neither side's verdicts cover the failure, the bundled simulator is the reference: it
passes the whole server suite, so a client that fails X against it too is taken to break X
itself, and a client that passes X there points at the server.  Such a note says it rests on
the reference, not on a verdict.

`attribute(...)` adds one `attribution:` note to each failing cell's evidence and returns a
summary {(scenario, side): text} for printing.  Pure function over results.json case dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

REFERENCE_SERVER = "simulator"
GRID_TAGS = {"client", "server", "scenario"}


@dataclass
class SideVerdicts:
    """One side's case verdicts (id, verdict, requirements), and where they come from."""

    source: str
    cases: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)

    @classmethod
    def from_cases(cls, source: str, cases) -> "SideVerdicts":
        return cls(source, [(c["id"], c["verdict"], tuple(c.get("requirements", ()))) for c in cases])

    def failed(self, checks) -> list[str]:
        """'CHECK (failing case, ...)' for each of `checks` (a case id or a requirement id) that
        a case of this side FAILs."""
        found = []
        for check in checks:
            cases = [cid for cid, verdict, reqs in self.cases if verdict == "FAIL" and (cid == check or check in reqs)]
            if cases == [check]:
                found.append(check)
            elif cases:
                shown = ", ".join(cases[:3]) + (f" and {len(cases) - 3} more" if len(cases) > 3 else "")
                found.append(f"{check} ({shown})")
        return found


def client_side_verdicts(cases) -> dict[str, SideVerdicts]:
    """The client-side cases of a matrix run (tagged with a client and no server), per client stack."""
    by_client: dict[str, list] = {}
    for case in cases:
        tags = case.get("tags") or {}
        if "client" in tags and "server" not in tags:
            by_client.setdefault(tags["client"], []).append(case)
    return {client: SideVerdicts.from_cases("client-side conformance", group) for client, group in by_client.items()}


def attribute(cases: list[dict], exercises: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]],
              server_runs: Mapping[str, SideVerdicts] | None = None) -> dict[tuple[str, str], str]:
    """`exercises`: scenario requirement id -> (server case ids, client requirement ids);
    `server_runs`: server stack -> its conformance verdicts (a server without one is judged by
    the reference rule only)."""
    server_runs = server_runs or {}
    clients = client_side_verdicts(cases)
    grid = {(c["tags"]["client"], c["tags"]["server"], c["tags"]["scenario"]): c["verdict"]
            for c in cases if GRID_TAGS <= set(c.get("tags") or {})}
    summary: dict[tuple[str, str], str] = {}
    for case in cases:
        tags = case.get("tags") or {}
        if case["verdict"] != "FAIL" or not GRID_TAGS <= set(tags):
            continue
        client, server, scenario = tags["client"], tags["server"], tags["scenario"]
        server_checks, client_checks = (), ()
        for rid in case.get("requirements", []):
            s, c = exercises.get(rid, ((), ()))
            server_checks, client_checks = (*server_checks, *s), (*client_checks, *c)
        run = server_runs.get(server)
        server_broke = run.failed(server_checks) if run else []
        client_broke = clients[client].failed(client_checks) if client in clients else []
        parts = []
        if server_broke:
            parts.append(f"server side: {server} fails {'; '.join(server_broke)} in its own conformance run ({run.source})")
            summary[(scenario, server)] = f"server side: {', '.join(r.split(' ')[0] for r in server_broke)}"
        if client_broke:
            parts.append(f"client side: {client} fails {'; '.join(client_broke)} in client-side conformance")
            summary[(scenario, f"client {client}")] = f"client side: {', '.join(r.split(' ')[0] for r in client_broke)}"
        if not parts:
            parts.append(_by_reference(grid, client, server, scenario, run is not None, summary))
        for text in parts:
            case.setdefault("evidence", {}).setdefault("notes", []).append(f"attribution: {text}")
    return summary


def _by_reference(grid, client: str, server: str, scenario: str, has_run: bool, summary: dict) -> str:
    why = ("no verdict of either side's conformance runs covers this failure" if has_run or server == REFERENCE_SERVER
           else f"{server} has no stored conformance run")
    on_reference = grid.get((client, REFERENCE_SERVER, scenario))
    if server == REFERENCE_SERVER or on_reference == "FAIL":
        summary.setdefault((scenario, f"client {client}"), "client side (by the reference simulator)")
        return (f"client side, by the reference simulator ({why}): {client} fails {scenario} "
                f"against the simulator, which passes the whole server suite")
    if on_reference == "PASS":
        others = sorted(c for (c, s, sc), v in grid.items() if s == server and sc == scenario and v == "FAIL"
                        and grid.get((c, REFERENCE_SERVER, sc)) == "PASS")
        summary.setdefault((scenario, server), f"server side (by the reference simulator), {len(others)} client(s): {', '.join(others)}")
        return (f"server side, by the reference simulator ({why}): {client} passes {scenario} against the simulator; "
                f"{len(others)} client(s) that pass it there fail it against {server}")
    return f"undetermined ({why}): {client} has no verdict for {scenario} against the reference simulator"
