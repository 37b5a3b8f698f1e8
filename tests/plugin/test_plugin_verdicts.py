"""The plugin turns each way a test can end into the right verdict, never into a skip."""

import json

import pytest

SUITE = '''
import pytest
from harness.conformance import case, fail, inconclusive, not_applicable, HarnessError

META = dict(requirements=["R-1"], level="MUST", clause="Some Spec V1.0 §1.2")

@case("C-PASS", "passes", **META)
def test_pass(evidence):
    evidence.notes.append("looked fine")

@case("C-FAIL", "fails", **META)
def test_fail():
    fail("the device said no", expected="yes", observed="no")

@case("C-ASSERT", "assert fails", **META)
def test_assert():
    assert 1 == 2, "one is not two"

@case("C-NA", "not applicable", **META)
def test_na():
    not_applicable("not claimed")

@pytest.fixture
def claimed():
    not_applicable("decided in a fixture")

@case("C-NA-SETUP", "not applicable in setup", **META)
def test_na_setup(claimed):
    raise RuntimeError("must not run")

@case("C-INC", "inconclusive", requirements=["R-2"], level="SHOULD", clause="Some Spec V1.0 §1.3")
def test_inconclusive():
    inconclusive("timing noise")

@case("C-ERR", "harness error", **META)
def test_error():
    raise HarnessError("the lab network is down")

@case("C-BUG", "unexpected exception", **META)
def test_bug():
    {}["missing"]

@case("C-MB-SILENT", "a Modbus device that does not answer", **META)
def test_modbus_silent():
    from harness.transport.modbus_tcp import NoResponse
    raise NoResponse("no response within 1.0 s")

@case("C-UA-CLOSED", "an OPC UA server that closes the channel", **META)
def test_opcua_closed():
    from harness.opcua.errors import ChannelClosed
    raise ChannelClosed("the server closed the connection")

@case("C-UA-UNTRUSTED", "an OPC UA server that does not trust the harness", **META)
def test_opcua_untrusted():
    from harness.codec.opcua.uacp import ErrorMessage
    from harness.opcua.errors import ChannelRefused
    raise ChannelRefused("OpenSecureChannel was answered with ERR", error=ErrorMessage(error=0x80130000, reason="untrusted"))

def test_unmarked():
    pass
'''

EXPECTED = {
    "C-PASS": "PASS",
    "C-FAIL": "FAIL",
    "C-ASSERT": "FAIL",
    "C-NA": "NOT_APPLICABLE",
    "C-NA-SETUP": "NOT_APPLICABLE",
    "C-INC": "INCONCLUSIVE",
    "C-ERR": "ERROR",
    "C-BUG": "ERROR",
    "C-MB-SILENT": "FAIL",
    "C-UA-CLOSED": "FAIL",
    "C-UA-UNTRUSTED": "ERROR",
}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_each_ending_gets_its_verdict(pytester, workers):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("--results-json", "out/results.json", "-p", "no:cacheprovider", *workers)
    data = json.loads((pytester.path / "out" / "results.json").read_text())
    assert data["schema"] == "harness.results/1"
    assert data["run"]["status"] == "finished"
    assert {c["id"]: c["verdict"] for c in data["cases"]} == EXPECTED
    by_id = {c["id"]: c for c in data["cases"]}
    assert by_id["C-FAIL"]["evidence"]["expected"] == "yes"
    assert by_id["C-FAIL"]["message"] == "the device said no"
    assert "one is not two" in by_id["C-ASSERT"]["message"]
    assert by_id["C-ERR"]["message"] == "the lab network is down"
    assert by_id["C-PASS"]["evidence"]["notes"] == ["looked fine"]
    assert by_id["C-UA-CLOSED"]["message"] == "ChannelClosed: the server closed the connection"
    assert "trusted certificates" in by_id["C-UA-UNTRUSTED"]["message"]
    assert data["summary"]["overall"] == "NOT_COMPLIANT"
    assert result.ret == 1  # FAIL and ERROR fail the pytest run; NA and INCONCLUSIVE do not
    out = result.stdout.str()
    assert "skipped" not in out.split("\n")[-2], "verdicts must not be reported as skips"
    assert "2 not applicable" in out and "1 inconclusive" in out


def test_results_are_written_while_running(pytester):
    pytester.makepyfile(test_suite='''
import json, pathlib
from harness.conformance import case
META = dict(requirements=["R"], level="MUST", clause="Spec V1 §1")

@case("FIRST", "first", **META)
def test_first():
    pass

@case("SECOND", "sees the first on disk", **META)
def test_second():
    data = json.loads(pathlib.Path("out/results.json").read_text())
    assert data["run"]["status"] == "running"
    assert [c["id"] for c in data["cases"]] == ["FIRST"]
''')
    result = pytester.runpytest_subprocess("--results-json", "out/results.json", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()


def test_case_marker_demands_versioned_clause():
    from harness.conformance import case

    with pytest.raises(ValueError, match="spec version"):
        case("X", "t", requirements=["R"], level="MUST", clause="somewhere")
    with pytest.raises(ValueError):
        case("X", "t", requirements=["R"], level="OUGHT", clause="Spec V1 §1")
    with pytest.raises(ValueError, match="requirement"):
        case("X", "t", requirements=[], level="MUST", clause="Spec V1 §1")


def test_ctrl_c_that_a_case_swallows_still_ends_the_run_as_interrupted(pytester):
    """Python ignores an exception raised in a finalizer, and the Ctrl-C handler may run inside
    one.  The run must still stop at the next case and say it was interrupted."""
    pytester.makepyfile(test_suite='''
import os, signal
from harness.conformance import case
META = dict(requirements=["R"], level="MUST", clause="Spec V1 §1")

@case("FIRST", "gets the Ctrl-C and loses it", **META)
def test_first():
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass  # the handler runs here
    except KeyboardInterrupt:
        pass

@case("SECOND", "never runs", **META)
def test_second():
    pass
''')
    pytester.runpytest_subprocess("--results-json", "out/results.json", "-p", "no:cacheprovider")
    data = json.loads((pytester.path / "out" / "results.json").read_text())
    assert data["run"]["status"] == "interrupted"
    assert [c["id"] for c in data["cases"]] == ["FIRST"]
