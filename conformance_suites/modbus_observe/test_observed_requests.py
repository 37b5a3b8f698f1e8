"""Every request a client device sent while `harness observe` served it, judged rule by rule.

One case per rule (`rules.RULES`).  A rule broken by any request FAILs, with the first offending
requests (and the answers they got) as frames; with no request at all the case is INCONCLUSIVE.
"""

from __future__ import annotations

from harness.conformance import case, fail, inconclusive, not_applicable

from .rules import RULES

IG = "MODBUS Messaging on TCP/IP Implementation Guide V1.0b"
AP = "MODBUS Application Protocol V1.1b3"
SHOWN = 20  # offending requests put in the evidence; the count covers them all
ALL_FRAMES_SHOWN = 2000  # frames of the whole exchange attached to the framing case


def _judge(requirement: str, profile, traffic, requests, evidence, *, attach_all: bool = False) -> None:
    if profile.modbus is None:
        not_applicable("the profile has no modbus section")
    if traffic.dropped_frames:
        evidence.notes.append(f"{traffic.dropped_frames} frame(s) beyond the recording limit were not kept or judged")
    if not requests:
        inconclusive(f"no request arrived at {traffic.listen} during the {traffic.duration_s:g} s observation")
    check = RULES[requirement]
    broken = [(r, why) for r in requests if (why := check(r, profile.modbus))]
    connections = len({r.conn for r in requests})
    if attach_all:
        evidence.frames.extend(traffic.frames[:ALL_FRAMES_SHOWN])
    if not broken:
        evidence.notes.append(f"{len(requests)} request(s) on {connections} connection(s) judged; none breaks the rule")
        return
    for r, why in broken[:SHOWN]:
        evidence.notes.append(f"{r.conn} at t={r.frame.t_wall:.3f}: {why}")
        if not attach_all:
            evidence.frames.append(r.frame)
            if r.response is not None:
                evidence.frames.append(r.response)
    more = f" (the first {SHOWN} are shown)" if len(broken) > SHOWN else ""
    fail(f"{len(broken)} of {len(requests)} request(s) break the rule{more}: {broken[0][1]}",
         expected="every request obeys the rule", observed=f"{len(broken)} request(s) do not{more}")


@case("MBO-FRAME", "Every request is a well-formed MBAP frame with a valid PDU",
      requirements=["MBO-3.1.3-FRAME"], level="MUST", clause=f"{IG} §3.1.3; {AP} §4.1")
def test_requests_well_formed(profile, traffic, observed_requests, evidence):
    _judge("MBO-3.1.3-FRAME", profile, traffic, observed_requests, evidence, attach_all=True)


@case("MBO-LIMITS", "No request breaks a quantity, value or byte-count limit",
      requirements=["MBO-AP-LIMITS"], level="MUST", clause=f"{AP} §4.1, §6.1-§6.5, §6.11, §6.12, §6.17")
def test_requests_within_limits(profile, traffic, observed_requests, evidence):
    _judge("MBO-AP-LIMITS", profile, traffic, observed_requests, evidence)


@case("MBO-UNIT", "Every request addresses a unit identifier the device answers to",
      requirements=["MBO-4.4.1.2-UNIT"], level="MUST", clause=f"{IG} §4.4.1.2")
def test_requests_unit_id(profile, traffic, observed_requests, evidence):
    _judge("MBO-4.4.1.2-UNIT", profile, traffic, observed_requests, evidence)


@case("MBO-TID", "No transaction identifier is reused while its request is unanswered",
      requirements=["MBO-4.4.1.2-TID"], level="MUST", clause=f"{IG} §4.4.1.2")
def test_transaction_ids_distinct(profile, traffic, observed_requests, evidence):
    _judge("MBO-4.4.1.2-TID", profile, traffic, observed_requests, evidence)


@case("MBO-FC-CLAIMED", "Only the function codes the device claims are used",
      requirements=["MBO-PICS-FC"], level="SHOULD", clause=f"{AP} §4.5, §7")
def test_function_codes_claimed(profile, traffic, observed_requests, evidence):
    _judge("MBO-PICS-FC", profile, traffic, observed_requests, evidence)
