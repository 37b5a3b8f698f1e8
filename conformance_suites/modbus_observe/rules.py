"""What each observation rule finds wrong with one request: a table of checks, sans-io.

A check takes an `ObservedRequest` and the device's Modbus claims and returns None when the
request obeys the rule, or a sentence saying how it breaks it.  A malformed frame breaks only
MBO-3.1.3-FRAME: the other rules judge the requests that are well formed.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.codec.modbus.adu import TcpAdu
from harness.codec.modbus.malformed import Malformed
from harness.codec.modbus.pdu import UnknownRequest
from harness.codec.modbus.rules import request_rule_violation
from harness.profile import ModbusSection

from .traffic import ObservedRequest

Check = Callable[[ObservedRequest, ModbusSection], "str | None"]


def _well_formed(r: ObservedRequest, _claims: ModbusSection) -> str | None:
    if isinstance(r.adu, Malformed):
        return f"malformed MBAP frame: {r.adu}"
    if r.adu.protocol_id != 0:
        return f"protocol identifier {r.adu.protocol_id}, where Modbus is 0"
    if isinstance(r.request, Malformed):
        return f"malformed request PDU: {r.request}"
    return None


def _judged(r: ObservedRequest) -> bool:
    return isinstance(r.adu, TcpAdu) and r.adu.protocol_id == 0 and not isinstance(r.request, Malformed)


def _limits(r: ObservedRequest, _claims: ModbusSection) -> str | None:
    if not _judged(r) or request_rule_violation(r.request) is None:
        return None
    return f"{r.frame.summary}: breaks its quantity, value or byte-count rule (a server answers exception 03)"


def _unit(r: ObservedRequest, claims: ModbusSection) -> str | None:
    if not _judged(r) or r.adu.unit_id in claims.unit_ids:
        return None
    answers = ", ".join(str(u) for u in claims.unit_ids)
    return f"unit identifier {r.adu.unit_id}; the device answers to {answers} (no answer comes)"


def _transaction_id(r: ObservedRequest, _claims: ModbusSection) -> str | None:
    if not _judged(r) or r.adu.transaction_id not in r.outstanding:
        return None
    return f"transaction identifier {r.adu.transaction_id} reused while a request with it is still unanswered on {r.conn}"


def _claimed(r: ObservedRequest, claims: ModbusSection) -> str | None:
    if not _judged(r) or r.adu.unit_id not in claims.unit_ids:
        return None
    fc = r.adu.pdu[0]
    if claims.claims(fc):
        return None
    what = "an undefined function code" if isinstance(r.request, UnknownRequest) else r.frame.summary
    claimed = ", ".join(str(c) for c in sorted(claims.function_codes))
    return f"function code {fc} ({what}); the device claims {claimed}"


# requirement id -> check
RULES: dict[str, Check] = {
    "MBO-3.1.3-FRAME": _well_formed,
    "MBO-AP-LIMITS": _limits,
    "MBO-4.4.1.2-UNIT": _unit,
    "MBO-4.4.1.2-TID": _transaction_id,
    "MBO-PICS-FC": _claimed,
}
