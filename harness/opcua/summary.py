"""One-line summaries of decoded OPC UA service messages, for evidence frames.

    ReadRequest 2 nodes
    ReadResponse Good [Good, BadNodeIdUnknown]
    ServiceFault BadSessionIdInvalid
    OpenSecureChannelRequest Issue SignAndEncrypt lifetime=600000ms
    ActivateSessionRequest token=UserName(alice)

Encrypted channels carry ciphertext on the wire, so the summary is made from the objects asyncua
decoded (or the request as the harness built it).  Every function returns a string for any
object and never raises.
"""

from __future__ import annotations

from typing import Any

from asyncua import ua

MAX_LISTED = 8

# list field of a request (or of its Parameters) -> what its items are called
_NOUNS = {
    "NodesToRead": "nodes",
    "NodesToWrite": "values",
    "NodesToBrowse": "nodes",
    "ContinuationPoints": "continuation points",
    "BrowsePaths": "paths",
    "MethodsToCall": "methods",
    "ItemsToCreate": "items",
    "ItemsToModify": "items",
    "MonitoredItemIds": "items",
    "SubscriptionAcknowledgements": "acks",
    "NodesToRegister": "nodes",
    "NodesToUnregister": "nodes",
    "SubscriptionIds": "subscriptions",
    "NodesToAdd": "nodes",
    "NodesToDelete": "nodes",
    "ReferencesToAdd": "references",
    "ReferencesToDelete": "references",
}


def status_text(code: Any) -> str:
    """Name of a ua.StatusCode (or int); hex for values asyncua does not know by name."""
    value = getattr(code, "value", code)
    if value is None:
        return "Good"  # an absent status code means Good (Part 6 §5.2.2.16)
    try:
        value = int(value) & 0xFFFFFFFF
    except (TypeError, ValueError):
        return repr(code)
    name, doc = ua.status_codes.get_name_and_doc(value)
    return f"0x{value:08X}" if doc.startswith("Unknown StatusCode") else name


def _count(n: int, noun: str) -> str:
    return f"{n} {noun[:-1] if n == 1 and noun.endswith('s') else noun}"


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    more = f", ... (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return f"[{shown}{more}]"


def _fields(obj: Any) -> dict[str, Any]:
    names = getattr(type(obj), "__dataclass_fields__", {})
    return {name: getattr(obj, name, None) for name in names}


def _token(token: Any) -> str:
    if token is None:
        return "none"
    if isinstance(token, ua.UserNameIdentityToken):
        return f"UserName({token.UserName})"
    if isinstance(token, ua.X509IdentityToken):
        return "X509"
    if isinstance(token, ua.AnonymousIdentityToken):
        return "Anonymous"
    return type(token).__name__


def _request(obj: Any) -> str:
    name = type(obj).__name__
    params = getattr(obj, "Parameters", None)
    if isinstance(obj, ua.OpenSecureChannelRequest) and params is not None:
        kind = "Renew" if params.RequestType == ua.SecurityTokenRequestType.Renew else "Issue"
        return f"{name} {kind} {params.SecurityMode.name.rstrip('_')} lifetime={params.RequestedLifetime}ms"
    if isinstance(obj, ua.ActivateSessionRequest) and params is not None:
        return f"{name} token={_token(params.UserIdentityToken)}"
    if isinstance(obj, ua.CreateSessionRequest) and params is not None:
        return f"{name} name={params.SessionName!r} timeout={params.RequestedSessionTimeout:g}ms"
    if isinstance(obj, (ua.GetEndpointsRequest, ua.FindServersRequest)) and params is not None:
        return f"{name} url={params.EndpointUrl}"
    for source in (params, obj):
        for field, value in _fields(source).items():
            if isinstance(value, list):
                return f"{name} {_count(len(value), _NOUNS.get(field, field))}"
    return name


def _result_status(item: Any) -> str | None:
    if isinstance(item, ua.StatusCode):
        return status_text(item)
    if hasattr(item, "StatusCode"):
        return status_text(item.StatusCode)
    return None


def _response(obj: Any) -> str:
    name = type(obj).__name__
    header = getattr(obj, "ResponseHeader", None)
    head = f"{name} {status_text(header.ServiceResult if header else None)}"
    if isinstance(obj, ua.ServiceFault):
        return f"ServiceFault {status_text(header.ServiceResult if header else None)}"
    params = getattr(obj, "Parameters", None)
    if isinstance(obj, ua.OpenSecureChannelResponse) and params is not None:
        token = params.SecurityToken
        return f"{head} channel={token.ChannelId} token={token.TokenId} lifetime={token.RevisedLifetime}ms"
    if isinstance(obj, ua.CreateSessionResponse) and params is not None:
        return f"{head} session={params.SessionId.to_string()} timeout={params.RevisedSessionTimeout:g}ms"
    if isinstance(obj, ua.GetEndpointsResponse):
        return f"{head} {_count(len(obj.Endpoints or []), 'endpoints')}"
    if isinstance(obj, ua.FindServersResponse):
        return f"{head} {_count(len(obj.Servers or []), 'servers')}"
    results = getattr(obj, "Results", None)
    if results is None and params is not None:
        results = getattr(params, "Results", None)
    if isinstance(results, list):
        statuses = [s for s in map(_result_status, results) if s is not None]
        if statuses or not results:
            return f"{head} {_listed(statuses)}"
        return f"{head} {_count(len(results), 'results')}"
    return head


def summarize(obj: Any) -> str:
    """The one-line summary of a request, response or ServiceFault object."""
    try:
        if hasattr(obj, "RequestHeader"):
            line = _request(obj)
        elif hasattr(obj, "ResponseHeader"):
            line = _response(obj)
        else:
            line = type(obj).__name__
    except Exception:  # a summary must never break a test; the hex is still in the frame
        return type(obj).__name__
    # strings from the server (node ids, URLs) must not break the line
    return line if line.isprintable() else line.encode("unicode_escape").decode("ascii")
