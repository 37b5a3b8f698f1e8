"""Every fixed text of the reports comes from the message catalogues, and each language has
all of them: the msgids are extracted from the templates and the view code as a translator's
tools would (Babel), and each must be translated with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from reports.html import render_html
from reports.i18n import LANGUAGES, UnknownLanguage, catalogue_path, check_language

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


def extracted_msgids() -> set[str]:
    method_map = [("reports/templates/**.j2", "jinja2"), ("reports/**.py", "python")]
    options = {"reports/templates/**.j2": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options, keywords={"_": None, "N_": None, "gettext": None}):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_the_view_code_and_templates_have_msgids():
    msgids = extracted_msgids()
    assert "Conformance test report" in msgids  # a template text
    assert "Not applicable" in msgids  # a label of the view code (N_)
    assert len(msgids) > 100


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_every_msgid_is_translated_with_the_same_placeholders(lang):
    with catalogue_path(lang).open("rb") as fh:
        catalog = read_po(fh)
    missing, placeholders = [], []
    for msgid in sorted(extracted_msgids()):
        message = catalog.get(msgid)
        if message is None or not message.string:
            missing.append(msgid)
        elif sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(message.string)):
            placeholders.append(msgid)
    assert not missing, f"{len(missing)} msgid(s) without a {lang} translation; run scripts/update-messages.sh and fill them in: {missing[:10]}"
    assert not placeholders, f"translations whose placeholders differ from the msgid: {placeholders}"


def test_chinese_report_uses_the_catalogue_and_keeps_device_strings():
    data = {"schema": "harness.results/1", "run": {"id": "r1", "status": "finished"},
            "profile": {"device": {"vendor_name": "ACME 自动化", "product_name": "PLC-1"}},
            "cases": [{"id": "C1", "title": "title C1", "suite": "modbus", "requirements": ["R"], "level": "MUST",
                       "verdict": "FAIL", "message": "device message"}]}
    html = render_html(data, lang="zh-CN")
    assert '<html lang="zh-CN">' in html
    for text in ("一致性测试报告", "被测设备", "不符合", "不通过", "签名与完整性"):
        assert text in html
    for english in ("Conformance test report", "Device under test", "Not compliant"):
        assert english not in html
    assert "ACME 自动化" in html and "device message" in html  # data is never translated


def test_unknown_language_says_which_exist():
    with pytest.raises(UnknownLanguage, match="en, zh-CN"):
        check_language("fr")
    with pytest.raises(UnknownLanguage):
        render_html({}, lang="de")
