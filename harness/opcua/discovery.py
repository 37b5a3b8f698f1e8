"""Discovery services (Part 4 v1.04 §5.4): GetEndpoints and FindServers, and picking an endpoint.

`get_endpoints` / `find_servers` open their own channel with security None (as a client must
before it knows the server certificate), send one request, close, and return the reply as it
came: a GetEndpointsResponse / FindServersResponse or a ServiceFault.  The `*_on` variants use
a channel the test already has.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asyncua import ua
from cryptography.hazmat.primitives.serialization import Encoding

from .channel import UaChannel
from .errors import BadReply
from .evidence import Recorder
from .security import load_certificate, message_mode, policy_class


async def get_endpoints_on(
    channel: UaChannel,
    url: str | None = None,
    *,
    locale_ids: Iterable[str] = (),
    profile_uris: Iterable[str] = (),
    timeout: float | None = None,
) -> Any:
    params = ua.GetEndpointsParameters(
        EndpointUrl=url if url is not None else channel.endpoint_url,
        LocaleIds=list(locale_ids),
        ProfileUris=list(profile_uris),
    )
    return await channel.request(ua.GetEndpointsRequest(Parameters=params), timeout=timeout)


async def find_servers_on(
    channel: UaChannel,
    url: str | None = None,
    *,
    server_uris: Iterable[str] = (),
    locale_ids: Iterable[str] = (),
    timeout: float | None = None,
) -> Any:
    params = ua.FindServersParameters(
        EndpointUrl=url if url is not None else channel.endpoint_url,
        LocaleIds=list(locale_ids),
        ServerUris=list(server_uris),
    )
    return await channel.request(ua.FindServersRequest(Parameters=params), timeout=timeout)


async def get_endpoints(
    host: str, port: int, url: str | None = None, *, timeout: float = 2.0, record: Recorder | None = None, **options: Any
) -> Any:
    """GetEndpoints over a fresh None channel: the GetEndpointsResponse or ServiceFault."""
    async with UaChannel(host, port, url, timeout=timeout, record=record) as channel:
        return await get_endpoints_on(channel, url, **options)


async def find_servers(
    host: str, port: int, url: str | None = None, *, timeout: float = 2.0, record: Recorder | None = None, **options: Any
) -> Any:
    """FindServers over a fresh None channel: the FindServersResponse or ServiceFault."""
    async with UaChannel(host, port, url, timeout=timeout, record=record) as channel:
        return await find_servers_on(channel, url, **options)


def select_endpoint(
    endpoints: Iterable[ua.EndpointDescription], policy: str, mode: str | ua.MessageSecurityMode | None = None
) -> ua.EndpointDescription | None:
    """The first endpoint with this security policy (spec name or URI) and mode."""
    uri = policy_class(policy).URI
    wanted = message_mode(mode) if mode is not None else None
    for endpoint in endpoints:
        if endpoint.SecurityPolicyUri == uri and (wanted is None or endpoint.SecurityMode == wanted):
            return endpoint
    return None


def endpoint_certificate(endpoint: ua.EndpointDescription) -> bytes | None:
    """The server's own certificate (DER) from an endpoint, without the rest of its chain;
    None if there is none, BadReply if it is not a certificate."""
    if not endpoint.ServerCertificate:
        return None
    try:
        return load_certificate(endpoint.ServerCertificate).public_bytes(Encoding.DER)
    except ValueError as exc:
        raise BadReply(f"the endpoint's ServerCertificate is not an X.509 certificate: {exc}") from None
