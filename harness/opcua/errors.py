"""What a server can do to the OPC UA client at the transport level, as exception types.

Anything the server *answers* (an Acknowledge, an ERR, a ServiceFault, a response with bad
status codes) is returned as a value for the test to judge.  These exceptions are for the cases
where there is no answer to return: the connection could not be opened, nothing came back in
time, the connection went away, or the bytes could not be decoded.  All derive from
`UaTransportError`, so a test can catch them in one place and give the case a verdict.
"""

from __future__ import annotations

from typing import Any

from ..codec.opcua.uacp import ErrorMessage


class UaTransportError(Exception):
    """Base of the transport-level outcomes of an OPC UA exchange."""


class Unreachable(UaTransportError):
    """The TCP connection could not be opened (refused, unroutable, or not within the timeout)."""


class NoResponse(UaTransportError):
    """Nothing (or not a whole message) arrived within the timeout."""


class ChannelClosed(UaTransportError):
    """The connection is gone: closed by the server, reset, or after an ERR (kept in `error`)."""

    def __init__(self, message: str, error: ErrorMessage | None = None):
        super().__init__(message)
        self.error = error


class ChannelRefused(UaTransportError):
    """Opening the channel failed with an answer: an ERR (`error`) to the Hello or the
    OpenSecureChannel, or an OpenSecureChannel reply that is a fault or bad (`response`)."""

    def __init__(self, message: str, error: ErrorMessage | None = None, response: Any = None):
        super().__init__(message)
        self.error = error
        self.response = response


class BadReply(UaTransportError):
    """The server sent bytes the client cannot decode (bad header, signature, or body)."""

    def __init__(self, message: str, data: bytes = b""):
        super().__init__(message)
        self.data = data
