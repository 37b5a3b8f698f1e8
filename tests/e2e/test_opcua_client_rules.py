"""The OPC UA client-side suite run as the matrix runs it: plain pytest on the suite, every rule
for every OPC UA client stack, each decided (PASS or FAIL with evidence), never an ERROR.

The verdicts of asyncua 2.1.0 and node-opcua 2.182.2 are pinned: each FAIL is a finding of
the README ("Findings: third-party stacks"), so a change in a stack or in a rule shows here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.profile import example_profile_path
from harness.requirements import suite_catalogue

SUITE = Path(__file__).resolve().parents[2] / "conformance_suites" / "opcua_client"
STACKS = ("asyncua", "node-opcua")
RULES = ("UAC-REQUEST-ID", "UAC-LATE-RESPONSE", "UAC-SERVICE-FAULT", "UAC-OPERATION-STATUS", "UAC-HELLO-ERROR",
         "UAC-TRUNCATED", "UAC-MESSAGE-SIZE", "UAC-CONNECTION-LOST", "UAC-TOKEN-RENEWAL", "UAC-CHUNKING",
         "UAC-ACK-LIMITS", "UAC-MAX-MESSAGE-SIZE", "UAC-HELLO")
# Both stacks chunk requests by the Acknowledge's SendBufferSize and take its ReceiveBufferSize
# as the limit of what they receive (asyncua its MaxMessageSize too); asyncua sends a request
# above the server's MaxMessageSize, node-opcua cannot connect to a server with a MaxMessageSize
# below its chunk size.
FINDINGS = {f"{rule}-{stack}" for rule in ("UAC-CHUNKING", "UAC-ACK-LIMITS", "UAC-MAX-MESSAGE-SIZE") for stack in STACKS}


def _pytest(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", str(SUITE), "--profile", str(example_profile_path()),
                           "-p", "no:cacheprovider", "-o", "addopts=", "-q", "--no-header", "--tb=no", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=SUITE.parents[1])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("uac") / "results.json"
    proc = _pytest("--results-json", str(out))
    assert out.exists(), proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc


def test_every_rule_runs_for_every_stack_and_is_decided(results):
    data, proc = results
    got = {c["id"]: c for c in data["cases"]}
    assert set(got) == {f"{rule}-{stack}" for rule in RULES for stack in STACKS}, proc.stdout
    assert {c["verdict"] for c in got.values()} <= {"PASS", "FAIL"}, {cid: c["message"] for cid, c in got.items()
                                                                      if c["verdict"] not in ("PASS", "FAIL")}
    catalogue = suite_catalogue("opcua_client")
    for case in got.values():
        assert case["suite"] == "opcua_client" and case["tags"]["client"] in STACKS
        assert case["level"] == catalogue[case["requirements"][0]].level.value
        assert case["evidence"]["notes"], case["id"]  # every call and its outcome
        if case["verdict"] == "FAIL":
            assert case["evidence"]["expected"] and case["evidence"]["observed"], case["id"]
    assert data["summary"]["coverage"]["opcua_client"] == {"catalogued": len(catalogue.requirements), "tested": len(catalogue.requirements)}
    assert got["UAC-TOKEN-RENEWAL-asyncua"]["level"] == "SHOULD"


def test_the_stacks_verdicts_are_the_recorded_findings(results):
    data, proc = results
    failing = {c["id"] for c in data["cases"] if c["verdict"] == "FAIL"}
    assert failing == FINDINGS, proc.stdout
    by_id = {c["id"]: c for c in data["cases"]}
    # the evidence says what the server did, not only what the client reported
    chunking = by_id["UAC-CHUNKING-asyncua"]["evidence"]["notes"]
    assert any("simulator: Error BadTcpMessageTooLarge" in n for n in chunking), chunking
    sent = by_id["UAC-MAX-MESSAGE-SIZE-asyncua"]["evidence"]["notes"]
    assert any("above the MaxMessageSize of 32768" in n for n in sent), sent
    late = by_id["UAC-LATE-RESPONSE-node-opcua"]["evidence"]["notes"]
    assert any("answered 2400 ms late" in n for n in late), late


def test_clients_option_narrows_the_stacks_and_rejects_unknown_ones():
    proc = _pytest("--collect-only", "--clients", "asyncua", timeout=60)
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert len(ids) == len(RULES) and all(line.endswith("-asyncua]") for line in ids), proc.stdout
    proc = _pytest("--collect-only", "--clients", "asyncua,pymodbus", "--tb=short", timeout=60)
    assert proc.returncode != 0 and "unknown pymodbus" in proc.stdout + proc.stderr  # a collection error
