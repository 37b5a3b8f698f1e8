"""Discovery services: GetEndpoints and FindServers.

OPC UA Part 4 v1.04 §5.4.4 (GetEndpoints, Table 5), §7.10 (EndpointDescription) and §7.37
(UserTokenPolicy); §5.4.2 (FindServers, Table 3) and §7.1 (ApplicationDescription).  Both
services are called over a channel with security None, which they shall not require
message security for.  What the endpoints must offer comes from the profile's claims: its
security policies and modes, and its user token types.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

from harness.conformance import case, fail
from harness.opcua import ua
from harness.opcua.discovery import endpoint_certificate, find_servers
from harness.opcua.errors import BadReply, UaTransportError
from harness.opcua.security import policy_name
from harness.profile_opcua import POLICY_URI_PREFIX

from .support import P4, describe, result_of

# Part 7: the Transport Profile "UA-TCP UA-SC UA-Binary".
UATCP_TRANSPORT = "http://opcfoundation.org/UA-Profile/Transport/uatcp-uasc-uabinary"
NONE_URI = POLICY_URI_PREFIX + "None"
MODE_NAMES = {ua.MessageSecurityMode.None_: "None", ua.MessageSecurityMode.Sign: "Sign",
              ua.MessageSecurityMode.SignAndEncrypt: "SignAndEncrypt"}
TOKEN_TYPES = {"anonymous": ua.UserTokenType.Anonymous, "username": ua.UserTokenType.UserName}
RESOLVE_TIMEOUT_S = 1.0


def _pair_text(pair: tuple[str, str]) -> str:
    return f"{pair[0]} {pair[1]}"


def _default_port(url) -> int | None:
    try:
        return url.port or 4840
    except ValueError:
        return None


async def _resolves(host: str) -> bool:
    """Does a host name the server put into a URL resolve at all (a client could reach it)?"""
    try:
        await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM),
                               RESOLVE_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError, UnicodeError):
        return False
    return True


async def _url_problem(dut, text: str, what: str, check_path: bool = True) -> str | None:
    """Why `text` is not a URL of the target (scheme opc.tcp, its port and path, a reachable host)."""
    url = urlsplit(text or "")
    target = urlsplit(dut.url)
    if url.scheme != "opc.tcp":
        return f"{what} {text!r} is not an opc.tcp URL"
    if _default_port(url) != dut.port:
        return f"{what} {text!r} names port {_default_port(url)}, the server is on {dut.port}"
    if check_path and url.path.rstrip("/") != target.path.rstrip("/"):
        return f"{what} {text!r} has path {url.path!r}, the endpoint is {target.path or '/'!r}"
    host = url.hostname or ""
    # Part 4 Table 5: the server derives the URLs it returns from the URL the client used
    # (a default when it does not know the host name): another name is fine if it resolves.
    if host.lower() != (target.hostname or "").lower() and not await _resolves(host):
        return f"{what} {text!r} names host {host!r}, which does not resolve (the target is {target.hostname})"
    return None


@case("UA-DISC-ENDPOINTS", "GetEndpoints lists exactly the claimed security policies and modes, "
      "each with its certificate, transport profile and the claimed user token types",
      requirements=["UA-P4-5.4.4-ENDPOINTS"], level="MUST", clause=f"{P4} §5.4.4")
def test_get_endpoints(dut):
    async def check():
        endpoints = await dut.endpoints()  # FAILs unless a GetEndpointsResponse comes back
        claimed = {(c.policy, m) for c in dut.ua.security for m in c.modes}
        offered: set[tuple[str, str]] = set()
        problems: list[str] = []
        for i, ep in enumerate(endpoints):
            mode = MODE_NAMES.get(ep.SecurityMode, f"invalid mode {int(ep.SecurityMode)}")
            uri = ep.SecurityPolicyUri or ""
            name = policy_name(uri) if uri.startswith(POLICY_URI_PREFIX) else uri
            pair = (name, mode)
            offered.add(pair)
            where = f"endpoint {i} ({_pair_text(pair)})"
            # §7.10: the transport profile; the profile claims UA-TCP UA-SC UA-Binary.
            if ep.TransportProfileUri != UATCP_TRANSPORT:
                problems.append(f"{where}: TransportProfileUri {ep.TransportProfileUri!r}")
            url_problem = await _url_problem(dut, ep.EndpointUrl, f"{where}: EndpointUrl")
            if url_problem:
                problems.append(url_problem)
            # §5.4.4: the server certificate secures OpenSecureChannel; a client needs it for
            # every secured endpoint, and on a None endpoint for a user token it must encrypt.
            encrypting_tokens = [t for t in ep.UserIdentityTokens or [] if t.SecurityPolicyUri not in (None, "", NONE_URI)]
            if uri != NONE_URI or encrypting_tokens:
                try:
                    cert = endpoint_certificate(ep)
                except BadReply as exc:
                    problems.append(f"{where}: ServerCertificate is not a certificate ({exc})")
                else:
                    if not cert:
                        why = "secured" if uri != NONE_URI else "user token policies that encrypt with a certificate"
                        problems.append(f"{where}: no ServerCertificate ({why})")
            # §7.37: userIdentityTokens are the tokens the server accepts on this endpoint.
            types = {t.TokenType for t in ep.UserIdentityTokens or []}
            missing = [t for t in dut.ua.user_tokens if TOKEN_TYPES[t] not in types]
            if missing:
                problems.append(f"{where}: no user token policy for the claimed {', '.join(missing)}")
        if offered != claimed:
            extra = sorted(offered - claimed)
            absent = sorted(claimed - offered)
            text = []
            if absent:
                text.append("claimed but not offered: " + ", ".join(map(_pair_text, absent)))
            if extra:
                text.append("offered but not claimed: " + ", ".join(map(_pair_text, extra)))
            problems.insert(0, "; ".join(text))
        if problems:
            fail("the endpoints do not match the claims", expected="endpoints for exactly "
                 + ", ".join(map(_pair_text, sorted(claimed))) + f", each on {dut.url} with the UA-TCP transport "
                 "profile, a ServerCertificate when secured and token policies for " + ", ".join(dut.ua.user_tokens),
                 observed="; ".join(problems))

    dut.run(check())


@case("UA-DISC-FIND-SERVERS", "FindServers returns the server itself, with its application URI and a discovery URL",
      requirements=["UA-P4-5.4.2-FIND-SERVERS"], level="MUST", clause=f"{P4} §5.4.2")
def test_find_servers(dut):
    async def check():
        uri = dut.ua.application_uri
        expected = f"an ApplicationDescription with applicationUri {uri!r}, type Server (or ClientAndServer) " \
                   f"and an opc.tcp discovery URL on port {dut.port}"
        try:
            reply = await find_servers(dut.host, dut.port, dut.url, timeout=dut.timeout, record=dut.record)
            filtered = await find_servers(dut.host, dut.port, dut.url, timeout=dut.timeout, record=dut.record,
                                          server_uris=[uri])
        except UaTransportError as exc:
            fail("FindServers did not succeed", expected="a FindServersResponse", observed=str(exc))
        if not isinstance(reply, ua.FindServersResponse) or not result_of(reply).is_good():
            fail("FindServers did not succeed", expected="a FindServersResponse with Good", observed=describe(reply))
        servers = list(reply.Servers or [])
        found = [s for s in servers if s.ApplicationUri == uri]
        if not found:
            # §5.4.2: "The Server shall always return a record that describes itself".
            fail("FindServers does not return the server itself", expected=expected,
                 observed="applicationUris: " + (", ".join(repr(s.ApplicationUri) for s in servers) or "none"))
        me = found[0]
        problems = []
        if me.ApplicationType not in (ua.ApplicationType.Server, ua.ApplicationType.ClientAndServer):
            problems.append(f"applicationType {getattr(me.ApplicationType, 'name', me.ApplicationType)}")
        urls = list(me.DiscoveryUrls or [])
        url_problems = [await _url_problem(dut, u, "discoveryUrl", check_path=False) for u in urls]
        if not urls:
            problems.append("no discoveryUrls")
        elif all(url_problems):
            problems.append("no usable discoveryUrl: " + "; ".join(url_problems))
        # Table 3: serverUris filters by applicationUri; the server's own URI selects its record.
        if not isinstance(filtered, ua.FindServersResponse) or not result_of(filtered).is_good():
            problems.append(f"FindServers with serverUris=[{uri!r}] answered {describe(filtered)}")
        elif not any(s.ApplicationUri == uri for s in filtered.Servers or []):
            problems.append(f"FindServers with serverUris=[{uri!r}] does not return the server")
        if problems:
            fail("the server's own ApplicationDescription is not right", expected=expected, observed="; ".join(problems))
        # §5.4.2: the ServerUri returned here is the one at index 0 of the ServerArray.
        async with dut.session(user=None if "anonymous" in dut.ua.user_tokens or not dut.ua.users
                               else dut.ua.users[0].name) as s:
            array = (await s.value(ua.NodeId(ua.ObjectIds.Server_ServerArray))).Value
        if not array or array[0] != uri:
            fail("the ServerUri FindServers returns is not ServerArray[0]", expected=f"ServerArray[0] = {uri!r}",
                 observed=f"ServerArray = {array!r}")

    dut.run(check())
