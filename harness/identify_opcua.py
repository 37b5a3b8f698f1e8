"""Reads the identity an OPC UA server reports about itself, for the report's DUT block.

ServerStatus/BuildInfo (Part 5 v1.04 §12.4) over an anonymous session on a None channel, and
the ApplicationDescription from GetEndpoints.  Like the Modbus identity read, it never fails a
run: a server that does not answer is recorded with the reason.
"""

from __future__ import annotations

import asyncio

SOURCE = "OPC UA ServerStatus/BuildInfo"
BUILD_INFO_FIELDS = ("ProductUri", "ManufacturerName", "ProductName", "SoftwareVersion", "BuildNumber", "BuildDate")


async def _read(host: str, port: int, url: str, timeout: float) -> dict:
    from .opcua import UaChannel, activate_session, anonymous_token, close_session, create_session, get_endpoints, ua

    objects: dict[str, str] = {}
    endpoints = await get_endpoints(host, port, url, timeout=timeout)
    if isinstance(endpoints, ua.GetEndpointsResponse) and endpoints.Endpoints:
        server = endpoints.Endpoints[0].Server
        objects["ApplicationUri"] = server.ApplicationUri or ""
        objects["ApplicationName"] = server.ApplicationName.Text or ""
    async with UaChannel(host, port, url, timeout=timeout) as channel:
        await create_session(channel, endpoint_url=url)
        await activate_session(channel, token=anonymous_token(channel))
        request = ua.ReadRequest()
        item = ua.ReadValueId()
        item.NodeId = ua.NodeId(ua.ObjectIds.Server_ServerStatus_BuildInfo)
        item.AttributeId = ua.AttributeIds.Value
        request.Parameters.NodesToRead = [item]
        reply = await channel.request(request)
        await close_session(channel)
    if isinstance(reply, ua.ReadResponse) and reply.Results and reply.Results[0].StatusCode.is_good():
        info = reply.Results[0].Value.Value
        for name in BUILD_INFO_FIELDS:
            value = getattr(info, name, None)
            if value is not None:
                objects[name] = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return objects


def read_opcua_identity(target_text: str, timeout: float = 3.0) -> dict:
    from .opcua import UaTransportError
    from .target import parse_target

    target = parse_target(target_text)
    url = f"opc.tcp://{target.host}:{target.port}{target.path}"
    try:
        objects = asyncio.run(asyncio.wait_for(_read(target.host, target.port, url, timeout), 4 * timeout))
    except (UaTransportError, asyncio.TimeoutError, OSError) as exc:
        return {"source": SOURCE, "objects": {}, "note": f"not read: {exc or type(exc).__name__}"}
    return {"source": SOURCE, "objects": objects}
