"""Deliberate defects of the OPC UA face, for showing that the suite catches each one.

`harness simulate PROFILE --protocol opcua --fault ua-any-auth-token` serves a device that
breaks one rule; certifying it must FAIL the case that names that rule (tests/e2e checks each
fault against its case).  Each fault undoes one of the conformance layer's corrections, so
most of them make the simulator behave like a plain asyncua server in that one respect.
"""

from __future__ import annotations

# fault name -> (what the server does wrong, the case that must catch it)
OPCUA_FAULTS: dict[str, tuple[str, str]] = {
    "ua-ack-swapped": ("Acknowledge with the two buffer sizes in each other's fields (Part 6 §7.1.2.4)", "UA-UACP-HELLO-ACK"),
    "ua-small-buffers": ("a Hello with buffers below 8192 bytes is acknowledged (Part 6 §7.1.2.3)", "UA-UACP-HELLO-SMALL-BUFFERS"),
    "ua-any-auth-token": ("requests with a never-issued authentication token are served (Part 4 §7.28)", "UA-SESSION-AUTH-TOKEN-FORGED"),
    "ua-ignore-index-range": ("Read ignores IndexRange and returns the whole array (Part 4 §7.22)", "UA-READ-INDEX-RANGE"),
    "ua-no-type-check": ("Write accepts a value of any type and converts it (Part 4 §5.10.4.2)", "UA-WRITE-TYPE-MISMATCH"),
    "ua-node-id-invalid": ("an unknown node is read as Bad_NodeIdInvalid, not Bad_NodeIdUnknown (Part 4 §5.10.2.4)", "UA-READ-UNKNOWN-NODE"),
    "ua-no-argument-check": ("Call runs a method with missing or extra arguments (Part 4 §5.11.2.3)", "UA-CALL-ARGUMENTS-MISSING"),
}


class OpcuaFaultError(ValueError):
    pass


def parse_opcua_faults(names) -> frozenset[str]:
    faults = set()
    for name in names:
        if name not in OPCUA_FAULTS:
            known = ", ".join(sorted(OPCUA_FAULTS))
            raise OpcuaFaultError(f"unknown OPC UA fault {name!r}; the OPC UA face knows: {known}")
        faults.add(name)
    return frozenset(faults)


def is_opcua_fault(name: str) -> bool:
    return name.startswith("ua-")
