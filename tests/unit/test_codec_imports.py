"""The Modbus codec imports the standard library only (DESIGN.md section 2)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import harness.codec.modbus as codec

PACKAGE = Path(codec.__file__).parent


def test_codec_modules_import_only_the_standard_library() -> None:
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "__future__":
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert not offenders, offenders


def test_every_module_says_what_it_is_for() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} has no docstring"
