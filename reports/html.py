"""Render a run's `results.json` dict as one self-contained HTML report.

The page has inline CSS and SVG and one small inline script (filtering and search; the page
reads the same without it), no fonts or stylesheets from a CDN, no request of any kind, so it
can be mailed, archived and opened offline.  Device strings are data: the Jinja environment
autoescapes everything and fails on an undefined name (`StrictUndefined`) instead of printing
an empty string, and the Content-Security-Policy admits only the report's own script.
"""

from __future__ import annotations

import base64
import gc
import hashlib
from collections.abc import Mapping
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from markupsafe import Markup

from .i18n import DEFAULT_LANGUAGE, TEMPLATES, check_language, environment
from .viewmodel import build_view


@lru_cache(maxsize=1)
def _script() -> tuple[Markup, str]:
    """The report's one inline script (static, ours) and its CSP hash: the page runs that script
    and no other, so text that slipped past escaping still could not execute."""
    source = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii")
    return Markup(source), f"sha256-{digest}"


def _generator_version() -> str:
    # The version of the code that renders, which may differ from the one that ran (re-render).
    try:
        return metadata.version("protocol-harness")
    except metadata.PackageNotFoundError:
        return "unknown"


def render_html(results: Mapping[str, Any], *, lang: str = DEFAULT_LANGUAGE, lab: Mapping[str, Any] | None = None) -> str:
    """The HTML report for `results` (a results.json dict, possibly partial), in `lang`.
    `lab` (the laboratory block of a --lab file) replaces the one stored in `results`."""
    env = environment(check_language(lang))
    script, script_hash = _script()
    # A 10,000-case view is some 200,000 small objects and no reference cycle: the cyclic
    # collector would walk them again and again while they are made (a third of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        view = build_view(results, lang=lang, lab=lab)
        return env.get_template("report.html.j2").render(v=view, generator_version=_generator_version(), script=script,
                                                         script_hash=script_hash)
    finally:
        if collecting:
            gc.enable()


def write_html(results: Mapping[str, Any], path: str | Path, *, lang: str = DEFAULT_LANGUAGE,
               lab: Mapping[str, Any] | None = None) -> Path:
    """Render `results` and write it to `path` (UTF-8), via a temporary file so that a reader
    never sees half a report while a run rewrites it after each case."""
    path = Path(path)
    html = render_html(results, lang=lang, lab=lab)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
