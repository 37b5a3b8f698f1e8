"""The layering of DESIGN section 2, checked on the source: who may import whom."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STDLIB = set(sys.stdlib_module_names)

# module prefix -> allowed top-level imports besides the standard library (prefix match)
RULES = {
    "harness.model": (),
    "harness.canonical": (),
    # integrity and the run archive: the canonical form of results.json, and nothing of the runs' machinery
    "harness.signing": ("cryptography", "harness.canonical"),
    "harness.store": ("harness.model", "harness.canonical"),
    "harness.run_diff": ("harness.model", "harness.store"),
    "harness.lab": ("harness.profile_doc",),
    "harness.profile_robustness": ("harness.profile_doc",),
    # robustness: generated input, socket-level attacks, the liveness monitor, the fuzz loop
    "harness.strategies": ("hypothesis", "harness.codec", "harness.strategies"),
    "harness.attacks": (),
    "harness.liveness": ("harness.model",),
    "harness.liveness_modbus": ("harness.codec", "harness.liveness"),
    "harness.liveness_opcua": ("harness.liveness", "harness.liveness_modbus", "harness.opcua", "harness.profile"),
    "harness.fuzz": ("hypothesis", "harness.strategies"),
    "harness.restart": ("harness.process_group",),  # runs the profile's restart command: subprocess, no shell
    "harness.process_group": (),
    "harness.replay": ("harness.attacks", "harness.codec", "harness.liveness", "harness.liveness_modbus",
                       "harness.liveness_opcua", "harness.target", "harness.store"),
    # Debian's Chromium through Playwright: PDF output and the browser tests
    "harness.browser": ("playwright",),
    "harness.pdf": ("harness.browser", "playwright"),
    "harness.matrix_attribution": (),
    # `harness observe`: the simulator as a peer, a recording relay in front of it
    "harness.observe_modbus": ("harness.model", "harness.peers", "harness.transport"),
    "harness.verdict": ("harness.model",),
    "harness.requirements": ("harness.model",),
    "harness.codec": ("harness.codec",),
    "harness.transport": ("harness.codec", "harness.transport", "harness.model"),
    "harness.certs": ("cryptography",),
    # client adapters: the stacks themselves (lazily), plus the codec to judge what they do
    "harness.node_runtime": (),
    "harness.installed": (),
    "harness.adapters": ("harness.adapters", "harness.codec", "harness.transport", "harness.model", "harness.peers.base",
                         "harness.node_runtime", "harness.certs", "harness.installed",
                         "pymodbus", "modbus_tk", "umodbus", "pyModbusTCP", "asyncua"),
    "harness.opcua": ("harness.codec", "harness.model", "harness.certs", "harness.opcua", "asyncua", "cryptography"),
    # peers load a profile to fill the third-party server with the device's data
    "harness.peers": ("harness.process_group", "harness.codec", "harness.transport", "harness.model", "harness.profile", "harness.profile_opcua",
                      "harness.node_runtime", "harness.certs", "harness.installed",
                      "harness.peers", "pymodbus", "modbus_tk", "umodbus", "pyModbusTCP", "asyncua", "cryptography"),
    "reports": ("harness.model", "harness.verdict", "harness.requirements", "harness.canonical", "reports", "jinja2", "markupsafe",
                "babel"),
    "simulators": ("harness.codec", "harness.transport", "harness.profile", "harness.profile_opcua", "harness.model",
                   "harness.certs", "simulators", "uvloop", "asyncua", "cryptography"),
    # suites reach the OPC UA encoding only through harness.opcua (which re-exports asyncua's `ua`)
    "conformance_suites": ("harness.conformance", "harness.codec", "harness.model", "harness.profile", "harness.profile_opcua",
                           "harness.target", "harness.transport", "harness.opcua", "harness.certs", "harness.requirements",
                           "conformance_suites", "pytest"),
    # the interoperability matrix drives client stacks and starts server stacks, through the
    # harness's adapters and peers (never a stack directly)
    # (each through a recording relay, harness.transport.relay, for the frames)
    "conformance_suites.modbus_client": ("harness.conformance", "harness.codec", "harness.model", "harness.profile",
                                         "harness.adapters", "harness.peers", "harness.transport", "conformance_suites", "pytest"),
    # the observation suite judges recorded traffic (the file format is harness.observe_modbus's)
    "conformance_suites.modbus_observe": ("harness.conformance", "harness.codec", "harness.model", "harness.profile",
                                          "harness.observe_modbus", "conformance_suites", "pytest"),
    "conformance_suites.opcua_client": ("harness.conformance", "harness.codec", "harness.model", "harness.profile",
                                        "harness.profile_opcua", "harness.requirements", "harness.opcua", "harness.transport",
                                        "harness.adapters", "harness.peers", "conformance_suites", "pytest"),
    # what the robustness suites share: fixtures, the monitor's life cycle, the fuzz run and its evidence
    "conformance_suites.robustness": ("harness.attacks", "harness.conformance", "harness.model", "harness.profile_robustness",
                                      "harness.liveness", "harness.fuzz", "harness.restart", "pytest"),
    # the robustness suite attacks with harness.attacks and watches with harness.liveness
    "conformance_suites.modbus_robustness": ("harness.conformance", "harness.codec", "harness.model", "harness.profile",
                                             "harness.transport", "harness.attacks", "harness.liveness",
                                             "harness.liveness_modbus", "harness.fuzz", "harness.strategies",
                                             "conformance_suites", "hypothesis", "pytest"),
    "conformance_suites.opcua_robustness": ("harness.conformance", "harness.codec", "harness.model", "harness.profile",
                                            "harness.profile_opcua",
                                            "harness.target", "harness.opcua", "harness.certs", "harness.attacks",
                                            "harness.liveness", "harness.liveness_opcua", "harness.fuzz",
                                            "harness.strategies", "conformance_suites", "hypothesis", "pytest"),
    "conformance_suites.interop_grid": ("harness.conformance", "harness.peers", "harness.adapters", "harness.transport", "pytest"),
    "conformance_suites.interop_opcua": ("harness.conformance", "harness.model", "harness.profile", "harness.profile_opcua",
                                         "harness.certs", "harness.adapters", "harness.peers", "harness.transport",
                                         "harness.opcua", "conformance_suites", "pytest"),
    "conformance_suites.interop_modbus": ("harness.conformance", "harness.codec", "harness.model", "harness.profile",
                                          "harness.adapters", "harness.peers", "harness.transport", "conformance_suites", "pytest"),
}


def _imports(path: Path, module: str):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                if not node.module:  # from . import x
                    for alias in node.names:
                        yield node.lineno, f"{name}.{alias.name}"
                    continue
                yield node.lineno, name
            else:
                yield node.lineno, node.module


def _modules():
    for top in ("harness", "reports", "simulators", "conformance_suites"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield path, ".".join(parts)


def _rule_for(module: str):
    best = None
    for prefix in RULES:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best):
                best = prefix
    return best


@pytest.mark.parametrize("path, module", [(p, m) for p, m in _modules() if _rule_for(m)], ids=lambda v: str(v) if isinstance(v, str) else "")
def test_layer_imports_only_what_it_may(path, module):
    allowed = RULES[_rule_for(module)]
    bad = []
    for lineno, name in _imports(path, module):
        top = name.split(".")[0]
        if top in STDLIB or top == "__future__":
            continue
        if any(name == a or name.startswith(a + ".") for a in allowed):
            continue
        bad.append(f"{path.relative_to(ROOT)}:{lineno} imports {name}")
    assert not bad, "layering broken (DESIGN section 2):\n" + "\n".join(bad)


def test_third_party_stacks_only_in_adapters_and_peers():
    stacks = ("pymodbus", "asyncua", "pyModbusTCP", "modbus_tk", "umodbus")
    bad = []
    for path, module in _modules():
        # harness.opcua is the judge's OPC UA client: its binary encoding is asyncua's (DESIGN §2)
        if module.startswith(("harness.adapters", "harness.peers", "harness.opcua")):
            continue
        for lineno, name in _imports(path, module):
            if name.split(".")[0] in stacks and not (module.startswith("simulators") and name.startswith("asyncua")):
                bad.append(f"{path.relative_to(ROOT)}:{lineno} imports {name}")
    assert not bad, "\n".join(bad)
