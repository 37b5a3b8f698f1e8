"""The observation suite's pairing of requests with answers, and each rule's verdict on a request."""

from __future__ import annotations

import json

import pytest

from conformance_suites.modbus_observe.rules import RULES
from conformance_suites.modbus_observe.traffic import load_traffic, pair_requests
from harness.codec.modbus.adu import encode_tcp
from harness.model import Frame
from harness.profile import example_profile_path, load_profile

A = "10.0.0.5:40001->127.0.0.1:5020"
B = "10.0.0.5:40002->127.0.0.1:5020"
READ_10 = bytes.fromhex("03 0000 000a")


def frame(direction: str, data: bytes, conn: str = A) -> Frame:
    return Frame(direction, 0.0, 0.0, data.hex(), "", conn)


def req(tid: int, pdu: bytes = READ_10, unit: int = 1, conn: str = A, pid: int = 0) -> Frame:
    return frame("tx", encode_tcp(tid, unit, pdu, pid), conn)


def resp(tid: int, conn: str = A, unit: int = 1) -> Frame:
    return frame("rx", encode_tcp(tid, unit, bytes.fromhex("03 02 0001")), conn)


@pytest.fixture(scope="module")
def claims():
    return load_profile(example_profile_path()).modbus


def broken(rule: str, frames: list[Frame], claims) -> list[str]:
    return [why for r in pair_requests(frames) if (why := RULES[rule](r, claims))]


def test_outstanding_ids_follow_answers_per_connection():
    requests = pair_requests([req(1), req(2), resp(1), req(3), req(1, conn=B), resp(2), resp(3)])
    assert [r.outstanding for r in requests] == [(), (1,), (2,), ()]
    assert [r.response is not None for r in requests] == [True, True, True, False]


def test_a_reused_transaction_id_breaks_the_rule_only_while_outstanding(claims):
    assert broken("MBO-4.4.1.2-TID", [req(7), resp(7), req(7), resp(7)], claims) == []
    found = broken("MBO-4.4.1.2-TID", [req(7), req(7), resp(7), resp(7)], claims)
    assert len(found) == 1 and "transaction identifier 7" in found[0]


def test_over_limit_read_breaks_the_limits_rule(claims):
    assert broken("MBO-AP-LIMITS", [req(1, bytes.fromhex("03 0000 007d"))], claims) == []
    assert len(broken("MBO-AP-LIMITS", [req(1, bytes.fromhex("03 0000 007e"))], claims)) == 1


def test_malformed_frames_break_only_the_framing_rule(claims):
    short_pdu = req(1, bytes.fromhex("03 0000"))
    other_protocol = req(2, pid=1)
    cut = frame("tx", encode_tcp(3, 1, READ_10)[:-2])
    frames = [short_pdu, other_protocol, cut]
    assert len(broken("MBO-3.1.3-FRAME", frames, claims)) == 3
    for rule in ("MBO-AP-LIMITS", "MBO-4.4.1.2-UNIT", "MBO-4.4.1.2-TID", "MBO-PICS-FC"):
        assert broken(rule, frames, claims) == [], rule


def test_unit_id_and_function_code_are_judged_against_the_profile(claims):
    other_unit = max(claims.unit_ids) + 1
    assert len(broken("MBO-4.4.1.2-UNIT", [req(1, unit=other_unit)], claims)) == 1
    unclaimed = next(fc for fc in (7, 8, 11, 17, 20, 24) if not claims.claims(fc))
    found = broken("MBO-PICS-FC", [req(1, bytes([unclaimed]))], claims)
    assert len(found) == 1 and f"function code {unclaimed}" in found[0]
    assert broken("MBO-PICS-FC", [req(1)], claims) == []


def test_traffic_file_errors_say_what_is_wrong(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"schema": "something/else"}))
    with pytest.raises(ValueError, match="harness observe"):
        load_traffic(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="not a readable traffic file"):
        load_traffic(path)
