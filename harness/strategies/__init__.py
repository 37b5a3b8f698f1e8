"""Hypothesis strategies that generate protocol input for robustness testing (fuzzing).

Every strategy yields `FuzzFrame`s: the exact bytes to put on the wire, a `kind` that names
what the frame is (and, for a bad one, what is wrong with it) and whether a conforming server
must answer it.  The strategies are built from simple parts with the most ordinary variant
first, so a failing input shrinks to a small frame a person can read.

    modbus   Modbus TCP request ADUs: valid, boundary, malformed (`MODBUS_KINDS`)
    uacp     OPC UA Connection Protocol messages: Hello, OPN and MSG/CLO chunks (`UACP_KINDS`)

Kinds read "<class>:<what>": class "valid", "boundary" or "malformed" for Modbus, "uacp" for
OPC UA.  The sets of every kind each module can produce are documented constants, so a fuzz
runner can group its findings by kind.
"""

from __future__ import annotations

from dataclasses import dataclass

_SHOWN_BYTES = 64


@dataclass(frozen=True)
class FuzzFrame:
    """One generated input.

    `expect_reply` is True when a conforming server must send something back (a normal or an
    exception response, an ACK or an ERR).  False means the spec lets the server stay silent:
    it may discard the frame, wait for bytes that never come, or close the connection; a
    reply is then not a failure, and the runner should judge only liveness.
    """

    kind: str
    data: bytes
    expect_reply: bool

    def describe(self) -> str:
        """"<kind>: <hex>", at most 64 bytes shown, for evidence and failure messages."""
        shown = self.data[:_SHOWN_BYTES].hex(" ")
        if len(self.data) > _SHOWN_BYTES:
            shown += f" ... ({len(self.data)} bytes)"
        return f"{self.kind}: {shown}" if shown else f"{self.kind}: (no bytes)"


# The strategy modules import FuzzFrame from here, so they are imported after it is defined.
from .modbus import (  # noqa: E402
    MODBUS_KINDS,
    boundary_adus,
    malformed_adus,
    modbus_adus,
    valid_adus,
)
from .uacp import (  # noqa: E402
    DEFAULT_ENDPOINT_URL,
    UACP_KINDS,
    hello_messages,
    message_chunks,
    open_secure_channel_chunks,
    uacp_messages,
)

__all__ = [
    "DEFAULT_ENDPOINT_URL",
    "MODBUS_KINDS",
    "UACP_KINDS",
    "FuzzFrame",
    "boundary_adus",
    "hello_messages",
    "malformed_adus",
    "message_chunks",
    "modbus_adus",
    "open_secure_channel_chunks",
    "uacp_messages",
    "valid_adus",
]
