"""Deliberate defects of the OPC UA face: server defects for the server suite, and misbehaviour
for testing OPC UA *clients*.

`harness simulate PROFILE --protocol opcua --fault ua-any-auth-token` serves a device that
breaks one rule; certifying it must FAIL the case that names that rule (tests/e2e checks each
fault against its case).  Each fault undoes one of the conformance layer's corrections, so
most of them make the simulator behave like a plain asyncua server in that one respect.

The client-test faults (`CLIENT_FAULTS`, `NAME` or `NAME=VALUE`) make the simulator send what a
client must cope with: a response with another RequestId, a late, truncated or mis-sized
response, a ServiceFault, an Error message instead of an Acknowledge, a dropped connection, a
short-lived security token that really expires, small receive buffers or message sizes.  The
client-side suite (`conformance_suites/opcua_client`) judges what each client stack makes of
them; `simulators/opcua/client_faults.py` implements them.  The read faults hit only Reads of
the device's own points, so a client's connect sequence and its background reads (asyncua's
ServerStatus watchdog) go through untouched.

The robustness faults (`ROBUSTNESS_FAULTS`) plant a weakness only the robustness suite
(`conformance_suites/opcua_robustness`) can see: `ua-hang-on-bad-size=MS`, an input that
silences the whole server for a while (`simulators/opcua/hang_fault.py`), and
`ua-lose-writes[:every=N]`, Writes answered Good whose values are not stored
(`simulators/opcua/lose_writes_fault.py`).
"""

from __future__ import annotations

import re

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

# Client-test faults: name -> (what the server sends, the client-side rule that judges it,
# the kind of VALUE it takes: None (no value), "ms", "bytes" or "status"; and its default).
CLIENT_FAULTS: dict[str, tuple[str, str, str | None, str | None]] = {
    "ua-wrong-request-id": ("a Read of a device point is answered with another RequestId in the sequence header "
                            "(Part 6 §6.7.2.4)", "UAC-REQUEST-ID", None, None),
    "ua-late-read": ("Reads of device points are answered late: the 1st, 3rd, ... on a connection MS ms late, "
                     "the others MS/2 ms late (other requests are answered meanwhile)", "UAC-LATE-RESPONSE", "ms", "2400"),
    "ua-service-fault": ("a Read of a device point is answered with a ServiceFault carrying STATUS (Part 4 §7.30)",
                         "UAC-SERVICE-FAULT", "status", "BadTooManyOperations"),
    "ua-truncated-response": ("the response to a Read of a device point lacks its last 4 bytes (MessageSize says so)",
                              "UAC-TRUNCATED", None, None),
    "ua-size-mismatch": ("the response to a Read of a device point is sent whole, but its MessageSize is 4 bytes short, "
                         "ending the chunk before its last field (Part 6 §6.7.2.2)", "UAC-MESSAGE-SIZE", None, None),
    "ua-drop-on-read": ("a Read of a device point is not answered: the server closes the connection", "UAC-CONNECTION-LOST", None, None),
    "ua-hello-error": ("a Hello is answered with an Error message carrying STATUS, then the connection is closed "
                       "(Part 6 §7.1.5)", "UAC-HELLO-ERROR", "status", "BadTcpServerTooBusy"),
    "ua-token-lifetime": ("security tokens are revised to MS ms, and a message secured with an expired token gets "
                          "Bad_TcpSecureChannelUnknown and a close (Part 4 §5.5.2)", "UAC-TOKEN-RENEWAL", "ms", "2000"),
    "ua-receive-buffer": ("the Acknowledge's ReceiveBufferSize is BYTES, and a larger chunk gets Bad_TcpMessageTooLarge "
                          "and a close; the server's own chunks stay as large as negotiated (Part 6 §7.1.2.4)",
                          "UAC-CHUNKING, UAC-ACK-LIMITS", "bytes", "8192"),
    "ua-small-chunks": ("the server sends chunks of at most BYTES, while its Acknowledge still offers the negotiated "
                        "SendBufferSize (legal: the field is a maximum)", "UAC-CHUNKING", "bytes", "8192"),
    "ua-max-message-size": ("the Acknowledge's MaxMessageSize is BYTES, and a larger request gets Bad_RequestTooLarge "
                            "and a close; the server's responses are not limited (Part 6 §7.1.2.4)",
                            "UAC-MAX-MESSAGE-SIZE, UAC-ACK-LIMITS", "bytes", "32768"),
    "ua-record-hello": ("each Hello received is printed on stdout as `hello-received {json}` (a record, not a defect)",
                        "UAC-HELLO-FIELDS", None, None),
}

# Robustness faults: name -> (what the server does wrong, the robustness case that must catch it,
# the kind of VALUE and its default: "ms" is `NAME=MS` (0 allowed: for good); "every" takes no
# value, only an optional `:every=N` suffix).
ROBUSTNESS_FAULTS: dict[str, tuple[str, str, str, str]] = {
    "ua-hang-on-bad-size": ("a message whose MessageSize disagrees with its bytes (below its type's minimum, or a Hello "
                            "whose fields end before or after it) silences the whole server, every connection, for MS ms "
                            "(0: for good) instead of the Error message (Part 6 §7.1.5)", "ROB-UA-MALFORMED", "ms", "1500"),
    "ua-lose-writes": ("a Write of a device point's Value is answered Good but the value is not stored (every such "
                       "write, or with :every=N every Nth, counted over the whole server); a write the point would "
                       "refuse is still refused (Part 4 §5.10.4.1)", "ROB-UA-STATEFUL-WRITES", "every", ""),
}
_EVERY = re.compile(r"^every=(\d+)$")

_STATUS_NAME = re.compile(r"^Bad_?[A-Za-z0-9]+$")


class OpcuaFaultError(ValueError):
    pass


def parse_opcua_faults(names) -> frozenset[str]:
    """Validated fault texts; a client-test fault without its VALUE gets the default
    (``ua-late-read`` -> ``ua-late-read=2400``)."""
    faults = set()
    for text in names:
        head, colon, option = str(text).partition(":")
        if colon and head in ROBUSTNESS_FAULTS and ROBUSTNESS_FAULTS[head][2] == "every":
            faults.add(_every_fault_text(head, option))
            continue
        name, sep, value = str(text).partition("=")
        if name in OPCUA_FAULTS:
            if sep:
                raise OpcuaFaultError(f"OPC UA fault {name} takes no value (got {text!r})")
            faults.add(name)
        elif name in CLIENT_FAULTS:
            faults.add(_client_fault_text(name, value if sep else None))
        elif name in ROBUSTNESS_FAULTS:
            faults.add(_robustness_fault_text(name, value if sep else None))
        else:
            known = ", ".join(sorted([*OPCUA_FAULTS, *CLIENT_FAULTS, *ROBUSTNESS_FAULTS]))
            raise OpcuaFaultError(f"unknown OPC UA fault {name!r}; the OPC UA face knows: {known}")
    return frozenset(faults)


def _client_fault_text(name: str, value: str | None) -> str:
    _, _, kind, default = CLIENT_FAULTS[name]
    if kind is None:
        if value is not None:
            raise OpcuaFaultError(f"OPC UA fault {name} takes no value (got {name}={value})")
        return name
    value = default if value is None or value == "" else value
    if kind in ("ms", "bytes"):
        if not value.isdigit() or int(value) <= 0:
            raise OpcuaFaultError(f"{name}={value}: give a positive number of {'milliseconds' if kind == 'ms' else 'bytes'}")
        if kind == "bytes" and int(value) < 1024:
            raise OpcuaFaultError(f"{name}={value}: at least 1024 bytes (Part 6 §7.1.2.4)")
        return f"{name}={int(value)}"
    status_code(value, name)  # "status": a StatusCode name or 0x... value
    return f"{name}={value}"


def _robustness_fault_text(name: str, value: str | None) -> str:
    kind, default = ROBUSTNESS_FAULTS[name][2:]
    if kind == "every":
        if value is not None:
            raise OpcuaFaultError(f"OPC UA fault {name} takes no value (got {name}={value}); "
                                  f"write {name} or {name}:every=N")
        return name
    value = default if value is None or value == "" else value
    if not value.isdigit():
        raise OpcuaFaultError(f"{name}={value}: give a number of milliseconds (0: for good)")
    return f"{name}={int(value)}"


def _every_fault_text(name: str, option: str) -> str:
    match = _EVERY.match(option)
    if match is None or int(match.group(1)) < 1:
        raise OpcuaFaultError(f"{name}:{option}: the only option is :every=N, N a whole number from 1 "
                              f"(e.g. {name}:every=5)")
    return f"{name}:every={int(match.group(1))}"


def lose_writes_every(faults) -> int | None:
    """Every how many writes `ua-lose-writes` loses one (1: every write), among validated
    `faults`; None without the fault."""
    for text in faults:
        name, _, option = text.partition(":")
        if name == "ua-lose-writes":
            return int(option.partition("=")[2]) if option else 1
    return None


def hang_fault_ms(faults) -> int | None:
    """The milliseconds of `ua-hang-on-bad-size` among validated `faults`; None without it."""
    for text in faults:
        name, _, value = text.partition("=")
        if name == "ua-hang-on-bad-size":
            return int(value)
    return None


def status_code(text: str, fault: str = "") -> int:
    """The 32-bit value of a StatusCode given as ``BadTooManyOperations``, ``Bad_TooManyOperations``
    or ``0x80100000``; `OpcuaFaultError` for anything else or a code whose severity is not Bad."""
    where = f"{fault}={text}" if fault else text
    if text.lower().startswith("0x"):
        try:
            code = int(text, 16)
        except ValueError:
            raise OpcuaFaultError(f"{where}: not a StatusCode") from None
    elif _STATUS_NAME.match(text):
        from asyncua.ua import StatusCodes  # only when a fault names a status

        code = getattr(StatusCodes, text.replace("_", ""), None)
        if code is None:
            raise OpcuaFaultError(f"{where}: no StatusCode of that name (e.g. BadTooManyOperations)")
    else:
        raise OpcuaFaultError(f"{where}: give a Bad StatusCode name (BadTooManyOperations) or its value (0x80100000)")
    if not 0 <= code <= 0xFFFFFFFF or code & 0xC0000000 != 0x80000000:
        raise OpcuaFaultError(f"{where}: the severity of 0x{code:08X} is not Bad")
    return code


def client_fault_values(faults) -> dict[str, object]:
    """The client-test faults among validated `faults`, by name: True for a fault without a
    value, the number of ms/bytes, or the StatusCode value."""
    values: dict[str, object] = {}
    for text in faults:
        name, sep, value = text.partition("=")
        if name not in CLIENT_FAULTS:
            continue
        kind = CLIENT_FAULTS[name][2]
        values[name] = True if kind is None else (status_code(value, name) if kind == "status" else int(value))
    return values


def is_opcua_fault(name: str) -> bool:
    return name.startswith("ua-")
