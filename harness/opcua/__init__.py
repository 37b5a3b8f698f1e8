"""The harness's OPC UA client layer: the judge's side of every OPC UA test case.

    raw        RawUacpConnection: bytes in, framed UACP messages out (transport-level cases)
    channel    UaChannel: a secure channel that sends any ua.*Request and returns the reply as
               it came (ServiceFault and bad status codes included)
    session    create/activate/close session, identity tokens, signatures
    login      open_session: GetEndpoints, channel, CreateSession, ActivateSession in one call
    discovery  GetEndpoints, FindServers, endpoint selection
    security   security policies by spec name, certificate and key loading
    summary    one-line summaries of service messages for evidence
    evidence   FrameLog: every message on the wire as a harness.model.Frame
    errors     UaTransportError and its subclasses

Every network operation has a timeout; what a server answers is returned, what it fails to
answer raises a `UaTransportError`.

`ua` is asyncua's OPC UA type and encoding module (DESIGN §2: the encoding is asyncua's),
re-exported so that conformance suites build requests without importing a stack themselves.
"""

from asyncua import ua

from .channel import UaChannel
from .discovery import endpoint_certificate, find_servers, find_servers_on, get_endpoints, get_endpoints_on, select_endpoint
from .errors import BadReply, ChannelClosed, ChannelRefused, NoResponse, UaTransportError, Unreachable
from .raw import RawUacpConnection, Received
from .session import (
    activate_session,
    anonymous_token,
    close_session,
    create_session,
    username_token,
    verify_server_signature,
    x509_token,
)
from .summary import summarize

__all__ = [
    "ua",
    "BadReply",
    "ChannelClosed",
    "ChannelRefused",
    "NoResponse",
    "RawUacpConnection",
    "Received",
    "UaChannel",
    "UaTransportError",
    "Unreachable",
    "activate_session",
    "anonymous_token",
    "close_session",
    "create_session",
    "endpoint_certificate",
    "find_servers",
    "find_servers_on",
    "get_endpoints",
    "get_endpoints_on",
    "select_endpoint",
    "summarize",
    "username_token",
    "verify_server_signature",
    "x509_token",
]
