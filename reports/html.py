"""Render a run's `results.json` dict as one self-contained HTML report.

The page has inline CSS only: no JavaScript, no fonts or stylesheets from a CDN, no request
of any kind, so it can be mailed, archived and opened offline.  Device strings are data:
the Jinja environment autoescapes everything and fails on an undefined name
(`StrictUndefined`) instead of printing an empty string.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2

from .viewmodel import build_view

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


_ENV: jinja2.Environment | None = None


def _generator_version() -> str:
    # The version of the code that renders, which may differ from the one that ran (re-render).
    try:
        return metadata.version("protocol-harness")
    except metadata.PackageNotFoundError:
        return "unknown"


def render_html(results: Mapping[str, Any]) -> str:
    """The HTML report for `results` (a results.json dict, possibly partial)."""
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV.get_template("report.html.j2").render(v=build_view(results), generator_version=_generator_version())


def write_html(results: Mapping[str, Any], path: str | Path) -> Path:
    """Render `results` and write it to `path` (UTF-8), via a temporary file so that a reader
    never sees half a report while a run rewrites it after each case."""
    path = Path(path)
    html = render_html(results)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
