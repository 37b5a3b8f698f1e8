"""The HTML report of what changed between two runs (`harness runs diff A B --html FILE`).

It renders the plain data of `harness.run_diff.RunDiff.to_dict()` (the report layer does not
import the archive): both runs' headers, the regressions at the top, then every verdict
change, the cases only one run has, and the message-only changes folded away.  One
self-contained file like report.html: inline CSS, no script, no external request, and every
string from the runs autoescaped.
"""

from __future__ import annotations

from typing import Any, Mapping

from .i18n import DEFAULT_LANGUAGE, N_, check_language, environment, gettext_for
from .view_cases import VERDICT_CSS, VERDICT_LABELS
from .view_rollup import OVERALL_LABELS

OVERALL_CSS = {"COMPLIANT": "v-pass", "CONDITIONALLY_COMPLIANT": "v-inconclusive", "NOT_COMPLIANT": "v-fail",
               "INCOMPLETE": "v-na"}
KIND_LABELS = {"regression": N_("Regression"), "improvement": N_("Improvement"), "changed": N_("Changed")}


def render_diff_html(diff_data: Mapping[str, Any], *, lang: str = DEFAULT_LANGUAGE) -> str:
    """The HTML diff report of `diff_data` (a `RunDiff.to_dict()`), in `lang`."""
    check_language(lang)
    # Labels are translated here, not with _() in the template: a Jinja _() result is marked
    # safe, so only fixed msgids may go through it, never a string taken from the runs.
    translate = gettext_for(lang)

    def verdict(code: Any) -> dict[str, str]:
        code = str(code or "")
        return {"code": code, "label": translate(VERDICT_LABELS[code]) if code in VERDICT_LABELS else code,
                "css": VERDICT_CSS.get(code, "v-unknown")}

    def overall(code: Any) -> dict[str, str]:
        code = str(code or "")
        return {"code": code, "label": translate(OVERALL_LABELS[code]) if code in OVERALL_LABELS else (code or "?"),
                "css": OVERALL_CSS.get(code, "v-unknown")}

    def run(header: Mapping[str, Any]) -> dict[str, Any]:
        counts = header.get("counts") or {}
        return {**header, "overall": overall(header.get("overall")),
                "counts": [{"verdict": verdict(code), "count": n} for code, n in counts.items() if n]}

    def change(item: Mapping[str, Any]) -> dict[str, Any]:
        kind = str(item.get("kind") or "changed")
        return {**item, "before": verdict(item.get("before")), "after": verdict(item.get("after")),
                "kind": kind, "kind_label": translate(KIND_LABELS.get(kind, N_("Changed")))}

    def entry(item: Mapping[str, Any]) -> dict[str, Any]:
        return {**item, "verdict": verdict(item.get("verdict"))}

    view = {
        "a": run(diff_data["a"]),
        "b": run(diff_data["b"]),
        "verdict_changed": [change(c) for c in diff_data.get("verdict_changed") or ()],
        "only_in_a": [entry(c) for c in diff_data.get("only_in_a") or ()],
        "only_in_b": [entry(c) for c in diff_data.get("only_in_b") or ()],
        "message_changed": [change(c) for c in diff_data.get("message_changed") or ()],
        "unchanged_count": int(diff_data.get("unchanged_count") or 0),
        "warnings": [str(w) for w in diff_data.get("warnings") or ()],
    }
    view["regressions"] = [c for c in view["verdict_changed"] if c["kind"] == "regression"]
    view["improvements"] = [c for c in view["verdict_changed"] if c["kind"] == "improvement"]
    return environment(lang).get_template("run_diff.html.j2").render(d=view, lang=lang)
