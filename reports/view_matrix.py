"""The interoperability grid of a matrix run: one cell per (client stack, server stack)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .view_cases import CaseRow, Gettext, mapping


@dataclass(frozen=True, slots=True)
class MatrixCell:
    """One (client, server) pair: passed / total decided, linking to its first failing case."""

    text: str
    title: str
    css: str
    link: str


@dataclass(frozen=True, slots=True)
class MatrixView:
    servers: list[str]
    rows: list[tuple[str, list[MatrixCell]]]  # (client, one cell per server)


def matrix_view(raw_cases: list[Mapping[str, Any]], rows: list[CaseRow], _: Gettext) -> MatrixView | None:
    """The grid, when the cases carry client and server tags."""
    anchors = {row.id: row.anchor for row in rows}
    cells: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for case in raw_cases:
        tags = mapping(case.get("tags"))
        if "client" in tags and "server" in tags:
            cells.setdefault((str(tags["client"]), str(tags["server"])), []).append(case)
    if not cells:
        return None
    clients = sorted({c for c, _s in cells}, key=str.lower)
    servers = sorted({s for _c, s in cells}, key=str.lower)
    grid = []
    for client in clients:
        line = []
        for server in servers:
            cases = cells.get((client, server), [])
            decided = [c for c in cases if c.get("verdict") != "NOT_APPLICABLE"]
            passed = sum(1 for c in decided if c.get("verdict") == "PASS")
            bad = [c for c in decided if c.get("verdict") != "PASS"]
            errors = any(c.get("verdict") == "ERROR" for c in bad)
            css = "v-na" if not decided else ("v-pass" if not bad else ("v-error" if errors and not passed else "v-fail"))
            names = ", ".join(str(c.get("id")) for c in bad[:6]) + (" ..." if len(bad) > 6 else "")
            title = _("%(client)s client, %(server)s server: %(passed)s of %(total)s scenarios pass") % {
                "client": client, "server": server, "passed": passed, "total": len(decided)}
            if bad:
                title += "; " + _("not passing: %(cases)s") % {"cases": names}
            link = f"#{anchors[bad[0]['id']]}" if bad and bad[0].get("id") in anchors else ""
            line.append(MatrixCell(f"{passed}/{len(decided)}" if decided else _("n/a"), title, css, link))
        grid.append((client, line))
    return MatrixView(servers, grid)
