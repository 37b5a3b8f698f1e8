"""`harness certify opc.tcp://...` as a user runs it: the bundled simulator and third-party servers.

The simulator (served by `harness simulate --protocol opcua` in a subprocess) must pass every
applicable case, with security None and with Basic256Sha256 SignAndEncrypt, and be COMPLIANT
for its claimed profile.  A plain asyncua server and node-opcua run to the end; their
deviations are FAIL verdicts with evidence, never harness ERRORs.
"""

from __future__ import annotations

import shutil
import sys

import pytest

from harness.certs import harness_client_certificate
from harness.peers.asyncua_server import start_asyncua_server
from harness.peers.base import PeerProcess, python_peer_env
from harness.peers.node_opcua_server import start_node_opcua_server
from harness.peers.opcua_image import image_from_profile
from harness.profile import example_profile_path, load_profile
from simulators.opcua.faults import OPCUA_FAULTS

from .helpers import certify, verdicts

IMAGE = image_from_profile(load_profile(example_profile_path()))

# Deviations of plain asyncua 2.1.0 the suite must find by itself (README, "Findings").
ASYNCUA_FINDINGS = {
    "UA-UACP-HELLO-ACK",  # Acknowledge buffer sizes in swapped fields
    "UA-UACP-HELLO-SMALL-BUFFERS",  # 1024-byte buffers acknowledged
    "UA-UACP-UNKNOWN-TYPE",  # no Error, connection stays open
    "UA-UACP-OPN-BEFORE-HELLO",  # accepted
    "UA-UACP-HELLO-MALFORMED",  # a Hello cut short inside its fields: no Error, the connection stays open
}


@pytest.fixture(scope="module")
def simulator():
    argv = [sys.executable, "-m", "harness.cli", "simulate", str(example_profile_path()), "--protocol", "opcua"]
    with PeerProcess("simulator", argv, scheme="opc.tcp", env=python_peer_env(), startup_timeout=60) as sim:
        yield sim


def _not_passing(data: dict) -> dict[str, str]:
    return {c["id"]: f"{c['verdict']}: {c['message']}" for c in data["cases"] if c["verdict"] not in ("PASS", "NOT_APPLICABLE")}


@pytest.mark.parametrize("query", ["", "?policy=Basic256Sha256&mode=SignAndEncrypt"], ids=["none", "basic256sha256-sign-encrypt"])
def test_simulator_passes_every_applicable_case(simulator, tmp_path, query):
    code, data, output = certify(simulator.url + query, tmp_path)
    assert data is not None, output
    assert _not_passing(data) == {}, output
    assert code == 0, output
    assert data["summary"]["overall"] == "COMPLIANT"
    claimed = [p for p in data["summary"]["profiles"].values() if p["claimed"]]
    assert [p["overall"] for p in claimed] == ["COMPLIANT"]
    assert data["dut"]["objects"]["ProductName"] == "Power Meter 100"
    assert (tmp_path / "capture.pcap").stat().st_size > 0 and (tmp_path / "report.html").exists()


def test_plain_asyncua_run_completes_with_evidenced_findings(tmp_path):
    with start_asyncua_server(IMAGE, cert_dir=tmp_path / "pki") as peer:
        code, data, output = certify(peer.url, tmp_path / "run")
    assert data is not None and data["run"]["status"] == "finished", output
    assert code == 1, output
    got = verdicts(data)
    assert {cid: got.get(cid) for cid in ASYNCUA_FINDINGS} == {cid: "FAIL" for cid in ASYNCUA_FINDINGS}
    assert not [cid for cid, v in got.items() if v == "ERROR"], "a peer's behaviour must never be a harness ERROR"
    for case in data["cases"]:
        if case["verdict"] == "FAIL":
            assert case["evidence"]["frames"] and case["evidence"]["expected"], case["id"]


def test_node_opcua_run_completes(tmp_path):
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(harness_client_certificate().cert_path, trust / "harness-client.der")
    with start_node_opcua_server(IMAGE, trust_dir=trust) as peer:
        code, data, output = certify(peer.url, tmp_path / "run")
    assert data is not None and data["run"]["status"] == "finished", output
    assert code in (0, 1), output
    assert not [c["id"] for c in data["cases"] if c["verdict"] == "ERROR"], output


@pytest.mark.parametrize("fault", sorted(OPCUA_FAULTS))
def test_each_planted_fault_fails_the_case_naming_its_rule(tmp_path, fault):
    """A server with one defect FAILs the case of the rule it breaks, and that case alone is asked."""
    from simulators.device import start_device_in_thread

    case_id = OPCUA_FAULTS[fault][1]
    with start_device_in_thread(example_profile_path(), ("opcua",), faults=[fault], cert_dir=tmp_path / "pki") as device:
        code, data, output = certify(device.urls["opcua"], tmp_path / "run", "-k", case_id)
    assert data is not None, output
    assert verdicts(data).get(case_id) == "FAIL", output
    assert code == 1, output
