"""What an OPC UA client must do with what a server sends it, and must not send.

Each case runs for every OPC UA client stack (`UAC-...-<stack>`) against the bundled simulator
with a planted fault (simulators/opcua/faults.py, `CLIENT_FAULTS`), over SecurityPolicy None.
A stack that returns data it should have refused, loses a status the server sent, or cannot
work with what a conformant server may send FAILs; the evidence lists every call, its outcome
and its duration.  The read faults hit only Reads of the device's own points, so connecting,
the namespace lookup and reads of ServerStatus/State go through untouched.
"""

from __future__ import annotations

import time

from harness.adapters.errors import ConnectionLost, StatusError, Timeout, Unsupported
from harness.conformance import HarnessError, fail, inconclusive, not_applicable
from harness.profile import engineering_value

from .support import P4, P6, SERVER_STATE, TIMEOUT_S, UNKNOWN_NODE, rule, same_value

LATE_MS = 2400  # with the 1.5 s timeout: the 1st read is answered after the client gave up,
#                 the 2nd (1.2 s late) in time, and the 1st's answer arrives while the 2nd waits
TOKEN_LIFETIME_MS = 2000
SERVICE_FAULT = "BadTooManyOperations"
HELLO_ERROR = "BadTcpServerTooBusy"
SMALL_BUFFER = 8192  # the least ReceiveBufferSize a server may acknowledge (Part 6 v1.05 §7.1.2.4)
MAX_MESSAGE = 32768
LIMITS_MAX_MESSAGE = 100_000  # above any chunk (65535), below the 210 kB response read in UAC-ACK-LIMITS
BIG_VALUE_NODE = "i=7617"  # the Opc.Ua binary type dictionary: a ByteString of about 210 kB
LOST_STATUSES = {"BadConnectionClosed", "BadSecureChannelClosed", "BadCommunicationError", "BadNotConnected",
                 "BadServerNotConnected", "BadDisconnect"}
TOO_LARGE_STATUSES = {"BadRequestTooLarge", "BadResponseTooLarge"}

# the simulator faults of each rule (simulators/opcua/faults.py, CLIENT_FAULTS)
WRONG_ID = ("ua-wrong-request-id",)
LATE = (f"ua-late-read={LATE_MS}",)
FAULT = (f"ua-service-fault={SERVICE_FAULT}",)
RECORD = ("ua-record-hello",)
HELLO_REFUSED = (f"ua-hello-error={HELLO_ERROR}",)
TRUNCATED = ("ua-truncated-response",)
MIS_SIZED = ("ua-size-mismatch",)
DROPPED = ("ua-drop-on-read",)
SHORT_TOKENS = (f"ua-token-lifetime={TOKEN_LIFETIME_MS}",)
SMALL_RECEIVE = (f"ua-receive-buffer={SMALL_BUFFER}", f"ua-small-chunks={SMALL_BUFFER}")
SMALL_LIMITS = (f"ua-receive-buffer={SMALL_BUFFER}", f"ua-max-message-size={LIMITS_MAX_MESSAGE}", "ua-record-hello")
MAX_MESSAGE_LIMIT = (f"ua-max-message-size={MAX_MESSAGE}",)


def _read_point(case, client, point):
    node = case.node(client, point.node_id)
    got, error = case.attempt(f"read({point.name}) [{node}]", client.read, node)
    return got, error, engineering_value(point, point.value)


def _not_data(case, faults: tuple[str, ...], rule_text: str) -> None:
    """A read of a device point under `faults` must end in an error, not in data."""
    client = case.connect(*faults)
    point = case.read_points(1)[0]
    got, error, _ = _read_point(case, client, point)
    if error is None:
        fail(f"{case.stack} returned {got!r} from a response it must refuse", expected=rule_text, observed=f"data {got!r}")


@rule("UAC-REQUEST-ID", "A response with another RequestId is not taken as the answer",
      requirements=["UAC-P6-6.7.2.4-REQUEST-ID"], clause=f"{P6} §6.7.2.4", faults=WRONG_ID)
def test_wrong_request_id(client_case):
    _not_data(client_case, WRONG_ID,
              "an error (the only response carries a RequestId 65536 above the request's)")


@rule("UAC-LATE-RESPONSE", "A response after the timeout is not delivered to the next request, which gets its own",
      requirements=["UAC-P4-7.28-LATE-RESPONSE"], clause=f"{P4} §7.28; {P6} §6.7.2.4", faults=LATE)
def test_late_response(client_case):
    client = client_case.connect(*LATE)
    first, second = client_case.read_points(2)
    got, error, _ = _read_point(client_case, client, first)
    if error is None:  # the client waited past its own timeout: the late answer was its own
        inconclusive(f"the client returned the read answered {LATE_MS} ms late instead of timing out after "
                     f"{TIMEOUT_S:g} s, so no later request was waiting when it came")
    got, error, expected = _read_point(client_case, client, second)
    stale = engineering_value(first, first.value)
    if error is None and same_value(second, expected, got.value):
        return
    if error is None and same_value(first, stale, got.value):
        fail("the late answer to the previous read was delivered as this read's",
             expected=f"{expected!r} ({second.name})", observed=f"{got.value!r}, the value of {first.name}")
    if error is None:
        fail(f"the second read returned {got.value!r}", expected=f"{expected!r} ({second.name})", observed=repr(got.value))
    fail(f"the second read got no answer of its own: {type(error).__name__}: {error}",
         expected=f"{expected!r} ({second.name}), answered {LATE_MS // 2} ms late, within the timeout",
         observed=f"{type(error).__name__}: {error}")


@rule("UAC-SERVICE-FAULT", "A ServiceFault reaches the caller with its status code",
      requirements=["UAC-P4-7.30-SERVICE-FAULT"], clause=f"{P4} §5.3, §7.29, §7.30", faults=FAULT)
def test_service_fault(client_case):
    client = client_case.connect(*FAULT)
    point = client_case.read_points(1)[0]
    got, error, _ = _read_point(client_case, client, point)
    if error is None:
        fail("a ServiceFault was returned as data", expected=f"StatusError {SERVICE_FAULT}", observed=f"data {got!r}")
    if not isinstance(error, StatusError) or error.status != SERVICE_FAULT:
        fail(f"the ServiceFault reached the caller as {type(error).__name__}: {error}", expected=f"StatusError {SERVICE_FAULT}",
             observed=f"{type(error).__name__}: {error}")


@rule("UAC-OPERATION-STATUS", "A bad operation-level status reaches the caller with its code",
      requirements=["UAC-P4-5.3-OPERATION-STATUS"], clause=f"{P4} §5.3, §5.10.2.4", faults=RECORD)
def test_operation_status(client_case):
    client = client_case.connect(*RECORD)
    node = client_case.node(client, UNKNOWN_NODE)
    got, error = client_case.attempt(f"read({node}), a node that does not exist", client.read, node)
    if error is None:
        fail("a read of an unknown node returned a value", expected="StatusError BadNodeIdUnknown", observed=repr(got))
    if not isinstance(error, StatusError) or error.status != "BadNodeIdUnknown":
        fail(f"the operation status reached the caller as {type(error).__name__}: {error}",
             expected="StatusError BadNodeIdUnknown", observed=f"{type(error).__name__}: {error}")


@rule("UAC-HELLO-ERROR", "An Error message answering the Hello fails the connect with its status",
      requirements=["UAC-P6-7.1.5-ERROR-MESSAGE"], clause=f"{P6} §7.1.2.5, §7.1.5", faults=HELLO_REFUSED)
def test_hello_error(client_case):
    client, error = client_case.connect(*HELLO_REFUSED, judged=True)
    if error is None:
        fail("the connect succeeded although the Hello was answered with an Error message",
             expected=f"connect fails with StatusError {HELLO_ERROR}", observed="connected")
    if not isinstance(error, StatusError) or error.status != HELLO_ERROR:
        fail(f"the Error message's status was lost: the connect failed with {type(error).__name__}: {error}",
             expected=f"StatusError {HELLO_ERROR}", observed=f"{type(error).__name__}: {error}")


@rule("UAC-TRUNCATED", "A response chunk cut short is not returned as data",
      requirements=["UAC-P6-7.1.5-MALFORMED"], clause=f"{P6} §6.7.2.2, §7.1.5", faults=TRUNCATED)
def test_truncated_response(client_case):
    _not_data(client_case, TRUNCATED,
              "an error (the ReadResponse lacks its last 4 bytes, the DiagnosticInfos length)")


@rule("UAC-MESSAGE-SIZE", "A response chunk whose MessageSize ends before its body is not returned as data",
      requirements=["UAC-P6-7.1.5-MALFORMED"], clause=f"{P6} §6.7.2.2, §7.1.5", faults=MIS_SIZED)
def test_message_size_mismatch(client_case):
    _not_data(client_case, MIS_SIZED,
              "an error (MessageSize is 4 bytes short: the chunk it frames lacks the ReadResponse's last field)")


@rule("UAC-CONNECTION-LOST", "A connection the server closes is reported as lost, and the client connects again",
      requirements=["UAC-P4-6.7-CONNECTION-LOST"], clause=f"{P4} §6.7; {P6} §7.1.5", faults=DROPPED)
def test_connection_lost(client_case):
    client = client_case.connect(*DROPPED)
    point = client_case.read_points(1)[0]
    got, error, _ = _read_point(client_case, client, point)
    if error is None:
        fail("a read on a connection the server closed returned data", expected="ConnectionLost", observed=f"data {got!r}")
    lost = isinstance(error, ConnectionLost) or (isinstance(error, StatusError) and error.status in LOST_STATUSES)
    if not lost:
        fail(f"the closed connection was reported as {type(error).__name__}: {error}",
             expected="the loss reported (ConnectionLost) as soon as the server closed",
             observed=f"{type(error).__name__}: {error}" + (" (the client waited for its timeout)" if isinstance(error, Timeout) else ""))
    again, error = client_case.connect(*DROPPED, judged=True)
    if error is not None:
        fail(f"the client could not connect again: {type(error).__name__}: {error}", expected="a new session",
             observed=f"{type(error).__name__}: {error}")
    got, error = client_case.attempt(f"read({SERVER_STATE}) on the new connection", again.read, SERVER_STATE)
    if error is not None:
        fail(f"the client was not served after connecting again: {error}", expected="ServerStatus/State", observed=str(error))


@rule("UAC-TOKEN-RENEWAL", "The security token is renewed before it expires",
      requirements=["UAC-P4-5.5.2-TOKEN-RENEWAL"], clause=f"{P4} §5.5.2.1", faults=SHORT_TOKENS)
def test_token_renewal(client_case):
    client = client_case.connect(*SHORT_TOKENS)
    _, error = client_case.attempt(f"read({SERVER_STATE}) with the first token", client.read, SERVER_STATE)
    if error is not None:
        fail(f"the first read failed: {error}", expected="ServerStatus/State", observed=f"{type(error).__name__}: {error}")
    wait = 1.5 * TOKEN_LIFETIME_MS / 1000
    client_case.note(f"waiting {wait:g} s: 1.5 x the revised lifetime of {TOKEN_LIFETIME_MS} ms; the simulator refuses a "
                     "message secured with an expired token (Error Bad_TcpSecureChannelUnknown, then close)")
    time.sleep(wait)
    _, error = client_case.attempt(f"read({SERVER_STATE}) after {wait:g} s", client.read, SERVER_STATE)
    if error is not None:
        fail(f"a read after 1.5 token lifetimes failed: {type(error).__name__}: {error}",
             expected=f"a token renewed before {TOKEN_LIFETIME_MS} ms (the text asks for 75 %), so the read is served",
             observed=f"{type(error).__name__}: {error}")


@rule("UAC-CHUNKING", "A request larger than the server's ReceiveBufferSize is split into chunks that fit it",
      requirements=["UAC-P6-7.1.2.4-CHUNKING"], clause=f"{P6} §6.7.1, §7.1.2.4",
      faults=SMALL_RECEIVE)
def test_chunking(client_case):
    # The Acknowledge offers ReceiveBufferSize 8192 and SendBufferSize 65535; the server's own
    # chunks stay within 8192 bytes, so a client that wrongly takes ReceiveBufferSize as its
    # own receive limit still connects and is judged on what it sends.
    client = _connect_judged(client_case, SMALL_RECEIVE, f"a server acknowledging a {SMALL_BUFFER}-byte ReceiveBufferSize",
                             "a session")
    size = 20_000
    error = _write_large(client_case, client, size)
    if isinstance(error, StatusError) and error.status == "BadNodeIdUnknown":
        return  # the server decoded the whole request: every chunk fitted its receive buffer
    observed = "the write succeeded" if error is None else f"{type(error).__name__}: {error}"
    fail(f"a {size}-character write did not reach the server in chunks of at most {SMALL_BUFFER} bytes: {observed}",
         expected="StatusError BadNodeIdUnknown (the server decoded the whole request; a larger chunk gets Error "
                  "Bad_TcpMessageTooLarge and a close)",
         observed=observed)


@rule("UAC-ACK-LIMITS", "The Acknowledge's ReceiveBufferSize and MaxMessageSize limit requests, not responses",
      requirements=["UAC-P6-7.1.2.4-ACK-LIMITS"], clause=f"{P6} §7.1.2.3, §7.1.2.4",
      faults=SMALL_LIMITS)
def test_ack_limits(client_case):
    client = _connect_judged(client_case, SMALL_LIMITS, f"a server acknowledging ReceiveBufferSize {SMALL_BUFFER} and "
                             f"MaxMessageSize {LIMITS_MAX_MESSAGE}",
                             f"a session (the server's responses, e.g. CreateSession's, come in chunks larger than {SMALL_BUFFER} "
                             "bytes but within the Acknowledge's SendBufferSize and the client's own Hello)")
    hellos = client_case.hellos_since(client_case.mark)
    limits = [h for h in hellos if 0 < h.get("max_message_size", 0) < 300_000 or 0 < h.get("max_chunk_count", 0) < 8]
    if limits:
        client_case.note(f"the client's Hello limits responses ({limits}): the {BIG_VALUE_NODE} read is not judged")
        return
    got, error = client_case.attempt(f"read({BIG_VALUE_NODE}), a ByteString of about 210 kB", client.read, BIG_VALUE_NODE)
    if error is not None:
        fail(f"a response larger than the Acknowledge's ReceiveBufferSize and MaxMessageSize was refused: {type(error).__name__}: {error}",
             expected="the value (its chunks are within the Acknowledge's SendBufferSize, its size within the client's Hello)",
             observed=f"{type(error).__name__}: {error}")
    if not isinstance(got.value, bytes) or len(got.value) <= SMALL_BUFFER:
        fail(f"{BIG_VALUE_NODE} read as {got.type_name} of {len(got.value or b'')} bytes", expected="a ByteString of about 210 kB",
             observed=f"{got.type_name}")


@rule("UAC-MAX-MESSAGE-SIZE", "A request larger than the server's MaxMessageSize is not sent",
      requirements=["UAC-P6-7.1.2.4-MAX-MESSAGE-SIZE"], clause=f"{P6} §7.1.2.4", faults=MAX_MESSAGE_LIMIT)
def test_max_message_size(client_case):
    client = _connect_judged(client_case, MAX_MESSAGE_LIMIT, f"a server taking requests of up to {MAX_MESSAGE} bytes",
                             "a session (every request of the connect is far below the limit)")
    size = 48_000
    error = _write_large(client_case, client, size)
    status = error.status if isinstance(error, StatusError) else None
    _, after = client_case.attempt(f"read({SERVER_STATE}) on the same connection", client.read, SERVER_STATE)
    if status in TOO_LARGE_STATUSES and after is None:
        return
    observed = "the write was answered" if error is None else f"{type(error).__name__}: {error}"
    if after is not None:
        observed += f"; then the connection was gone ({type(after).__name__}): the request had been sent, and the server refused it"
    fail(f"a {size}-character write above the server's MaxMessageSize of {MAX_MESSAGE} was not refused by the client: {observed}",
         expected="StatusError Bad_RequestTooLarge (or Bad_ResponseTooLarge) before sending, the connection still usable",
         observed=observed)


@rule("UAC-HELLO", "The Hello carries ProtocolVersion 0, buffers of at least 8192 bytes and a short EndpointUrl",
      requirements=["UAC-P6-7.1.2.3-HELLO"], clause=f"{P6} §7.1.2.3", faults=RECORD)
def test_hello_fields(client_case):
    client_case.connect(*RECORD)
    hellos = client_case.hellos_since(client_case.mark)
    if not hellos:
        raise HarnessError("the simulator (fault ua-record-hello) printed no Hello record for this connect")
    wrong = []
    for h in hellos:
        client_case.note(f"Hello received by the simulator: {h}")
        if "malformed" in h:
            wrong.append(f"a malformed Hello ({h['malformed']})")
            continue
        if h["protocol_version"] != 0:
            wrong.append(f"ProtocolVersion {h['protocol_version']}")
        for field in ("receive_buffer_size", "send_buffer_size"):
            if h[field] < SMALL_BUFFER:
                wrong.append(f"{field} {h[field]}")
        if h["endpoint_url_bytes"] >= 4096:
            wrong.append(f"an EndpointUrl of {h['endpoint_url_bytes']} bytes")
    if wrong:
        fail(f"the Hello breaks §7.1.2.3: {', '.join(wrong)}",
             expected="ProtocolVersion 0, ReceiveBufferSize and SendBufferSize >= 8192, EndpointUrl < 4096 bytes",
             observed="; ".join(wrong))


def _connect_judged(case, faults: tuple[str, ...], server: str, expected: str):
    """The client connected to a simulator whose faults concern connecting; FAIL if it cannot."""
    client, error = case.connect(*faults, judged=True)
    if error is not None:
        fail(f"the client could not connect to {server}: {type(error).__name__}: {error}", expected=expected,
             observed=f"{type(error).__name__}: {error}")
    return client


def _write_large(case, client, size: int):
    """Write a String of `size` characters to a node that does not exist; the error (None if none)."""
    node = case.node(client, UNKNOWN_NODE)
    _, error = case.attempt(f"write({node}, a String of {size} characters)", client.write, node, "x" * size, "String")
    _no_api(error)
    return error


def _no_api(error) -> None:
    if isinstance(error, Unsupported):
        not_applicable(f"the client stack has no API for this: {error}")
