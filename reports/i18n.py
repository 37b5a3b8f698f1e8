"""Languages of the reports: message catalogues and the Jinja environments that use them.

Every fixed text of a report is an English msgid, marked `_()` in the templates and `N_()` in
Python, and translated from `reports/locale/<lang>/LC_MESSAGES/messages.po`.  The catalogues
are read with Babel when a language is first used (a few milliseconds), so there is no compiled
`.mo` file to go stale.  `scripts/update-messages.sh` re-extracts the msgids after a template
changes, and a test fails while a msgid has no translation.

Device strings are never msgids: they reach the templates as data and are autoescaped.
"""

from __future__ import annotations

import gettext
import io
from functools import lru_cache
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"
LOCALE = Path(__file__).resolve().parent / "locale"
# the --lang value -> (gettext locale directory name, name of the language in itself)
LANGUAGES = {"en": ("en", "English"), "zh-CN": ("zh_CN", "简体中文")}
DEFAULT_LANGUAGE = "en"


def N_(message: str) -> str:
    """Marks `message` for extraction; it is translated where it is shown."""
    return message


class UnknownLanguage(ValueError):
    pass


def check_language(lang: str) -> str:
    """`lang` if a report can be written in it, else an error that lists the choices."""
    if lang not in LANGUAGES:
        raise UnknownLanguage(f"no report language {lang!r}; choose one of: {', '.join(LANGUAGES)}")
    return lang


def catalogue_path(lang: str) -> Path:
    return LOCALE / LANGUAGES[check_language(lang)][0] / "LC_MESSAGES" / "messages.po"


@lru_cache(maxsize=None)
def translations(lang: str) -> gettext.NullTranslations:
    """The translations of `lang`; English (the msgids themselves) has none."""
    path = catalogue_path(lang)
    if lang == DEFAULT_LANGUAGE or not path.exists():
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with path.open("rb") as fh:
        catalog = read_po(fh, locale=LANGUAGES[lang][0])
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


@lru_cache(maxsize=None)
def environment(lang: str = DEFAULT_LANGUAGE) -> jinja2.Environment:
    """A Jinja environment for `lang`: autoescaped, strict about undefined names, with `_()`
    (new-style gettext: `_("%(n)s cases", n=3)` escapes its arguments)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


def gettext_for(lang: str):
    """`_` for Python code that builds text shown in a report of `lang`."""
    return translations(check_language(lang)).gettext
