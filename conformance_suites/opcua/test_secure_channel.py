"""Secure channels: OpenSecureChannel (issue and renew), CloseSecureChannel, the claimed
security policies and modes, and the client application certificate checks.

OPC UA Part 4 v1.04 §5.5.2 (OpenSecureChannel, Tables 11 and 12), §5.5.3 (CloseSecureChannel),
§5.6.2 (CreateSession, Table 16), §6.1.3 (certificate trust); Part 6 v1.05 §6.7.4 (the
OpenSecureChannel message), §6.7.6 (verifying messages: an error is reported with an Error
message, then the connection is closed) and §7.1.4 (CloseSecureChannel has no response).

The secured cases present the harness client certificate (`harness.certs`), which the device
under test is expected to trust; the certificate cases present one it cannot trust.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.certs import harness_client_certificate, make_certificate
from harness.conformance import case, fail, not_applicable, param
from harness.opcua import UaChannel, ua
from harness.opcua.discovery import endpoint_certificate, select_endpoint
from harness.opcua.errors import BadReply, ChannelClosed, ChannelRefused, NoResponse, UaTransportError
from harness.opcua.security import POLICIES
from harness.opcua.session import activate_session, anonymous_token, close_session, create_session, username_token
from harness.opcua.session import verify_server_signature
from harness.profile_opcua import SECURITY_POLICIES

from .support import P4, P6, Session, describe, result_of, status_name

# Part 4 v1.04 Table 12 / Table 16 and Part 6 v1.05 §6.7.6: the codes a refused certificate
# may be reported with (the generic one, or the specific result of a Part 4 §6.1.3 check).
CERTIFICATE_CODES = frozenset(
    [ua.StatusCodes.BadSecurityChecksFailed]
    + [v for k, v in vars(ua.StatusCodes).items() if k.startswith("BadCertificate")]
)
# Part 4 v1.04 Table 12: a policy or mode the server does not offer.
POLICY_CODES = frozenset(
    [ua.StatusCodes.BadSecurityPolicyRejected, ua.StatusCodes.BadSecurityModeRejected, ua.StatusCodes.BadSecurityChecksFailed]
)
STATE_NODE = ua.NodeId(ua.ObjectIds.Server_ServerStatus_State)

REQUESTED_LIFETIME_MS = 1000  # short: servers revise it up to their minimum
RENEWED_LIFETIME_MS = 60_000
MAX_EXPIRY_WAIT_S = 4.0  # wait for the first token to expire only if it is this short
CLOSE_WAIT_S = 1.0


# ---------------------------------------------------------------------------- helpers


def _refusal_code(exc: ChannelRefused) -> int | None:
    """The status code a refused OpenSecureChannel carried: the ERR's, else the reply's."""
    if exc.error is not None:
        return exc.error.error
    if exc.response is not None and getattr(exc.response, "ResponseHeader", None) is not None:
        return result_of(exc.response).value
    return None


def _refusal_text(exc: ChannelRefused) -> str:
    if exc.error is not None:
        return f"Error message {status_name(exc.error.error)} ({exc.error.reason!r})"
    return describe(exc.response)


async def _session_on(dut, channel: UaChannel) -> Session:
    """An activated session on a channel the case opened itself (anonymous when claimed)."""
    created = await create_session(channel, endpoint_url=dut.url)
    if not isinstance(created, ua.CreateSessionResponse) or not result_of(created).is_good():
        fail("CreateSession did not succeed", expected="a CreateSessionResponse with Good", observed=describe(created))
    if "anonymous" in dut.ua.user_tokens or not dut.ua.users:
        token = anonymous_token(channel)
    else:
        user = dut.ua.users[0]
        token = username_token(channel, user.name, user.password)
    activated = await activate_session(channel, token=token)
    if not isinstance(activated, ua.ActivateSessionResponse) or not result_of(activated).is_good():
        fail("ActivateSession did not succeed", expected="an ActivateSessionResponse with Good", observed=describe(activated))
    return Session(channel, created, activated)


def _session_user(dut) -> str | None:
    """Who a claimed-policy session logs in as: anonymous when claimed, else the first test user."""
    if "anonymous" in dut.ua.user_tokens or not dut.ua.users:
        return None
    return dut.ua.users[0].name


async def _server_certificate(dut) -> bytes:
    """A server certificate to secure an OpenSecureChannel with: the first endpoint's that has one."""
    for endpoint in await dut.endpoints():
        try:
            cert = endpoint_certificate(endpoint)
        except BadReply:
            continue
        if cert:
            return cert
    not_applicable("no endpoint carries a server certificate to secure an OpenSecureChannel request with")


def _secured_channel(dut, policy: str, mode: str, server_cert: bytes, certificate, private_key) -> UaChannel:
    return UaChannel(dut.host, dut.port, dut.url, policy=policy, mode=mode, certificate=certificate,
                     private_key=private_key, server_certificate=server_cert, timeout=dut.timeout, record=dut.record)


# ---------------------------------------------------------------------------- open / renew / close


@case("UA-SC-OPEN", "OpenSecureChannel with security None issues a security token with a revised lifetime",
      requirements=["UA-P4-5.5.2-OPEN"], level="MUST", clause=f"{P4} §5.5.2")
def test_open_none(dut):
    async def check():
        try:
            channel = await dut.open_channel("None")
        except ChannelRefused as exc:
            fail("OpenSecureChannel with security None was refused", expected="an OpenSecureChannelResponse with Good",
                 observed=_refusal_text(exc))
        except UaTransportError as exc:
            fail("OpenSecureChannel with security None did not succeed", expected="an OpenSecureChannelResponse with Good",
                 observed=str(exc))
        try:
            params = channel.open_response.Parameters
            token = params.SecurityToken
            problems = []
            if token is None:
                problems.append("no SecurityToken")
            elif token.RevisedLifetime <= 0:
                # Part 4 Table 11: revisedLifetime is the token's lifetime, which the client
                # renews the channel before; a zero lifetime leaves nothing to use.
                problems.append(f"RevisedLifetime {token.RevisedLifetime} (a token needs a lifetime)")
            # Part 6 §6.7.4: with UA TCP, the version in OpenSecureChannel is the one of Hello/Acknowledge.
            ack = channel.acknowledge
            if ack is not None and params.ServerProtocolVersion != ack.protocol_version:
                problems.append(f"ServerProtocolVersion {params.ServerProtocolVersion}, "
                                f"the Acknowledge said {ack.protocol_version}")
            if problems:
                fail("the OpenSecureChannelResponse is not complete", expected="a SecurityToken with a positive "
                     "RevisedLifetime and the Acknowledge's protocol version", observed="; ".join(problems))
            # The channel carries a service request with the token it was issued.
            try:
                reply = await channel.request(ua.GetEndpointsRequest(Parameters=ua.GetEndpointsParameters(EndpointUrl=dut.url)))
            except UaTransportError as exc:
                fail("the new channel does not carry a GetEndpoints request", expected="a GetEndpointsResponse",
                     observed=str(exc))
            if not isinstance(reply, ua.GetEndpointsResponse) or not result_of(reply).is_good():
                fail("GetEndpoints over the new channel did not succeed", expected="a GetEndpointsResponse with Good",
                     observed=describe(reply))
        finally:
            await channel.close()

    dut.run(check())


@case("UA-SC-RENEW", "A channel renewed before its token expires keeps serving the session with the new token",
      requirements=["UA-P4-5.5.2-RENEW"], level="MUST", clause=f"{P4} §5.5.2")
def test_renew(dut):
    async def check():
        try:
            channel = await dut.open_channel("None", lifetime_ms=REQUESTED_LIFETIME_MS)
        except UaTransportError as exc:
            fail("OpenSecureChannel did not succeed", expected="an OpenSecureChannelResponse with Good", observed=str(exc))
        opened_at = time.monotonic()
        first = channel.open_response.Parameters.SecurityToken
        stage = "before the renewal"
        try:
            session = await _session_on(dut, channel)
            await session.value(STATE_NODE)
            stage = "at the renewal"
            reply = await channel.renew(RENEWED_LIFETIME_MS)
            if not isinstance(reply, ua.OpenSecureChannelResponse) or not result_of(reply).is_good():
                fail("the renewal was not accepted", expected="an OpenSecureChannelResponse with Good", observed=describe(reply))
            renewed = reply.Parameters.SecurityToken
            # Part 4 Table 11: RENEW creates a new SecurityToken for the existing SecureChannel;
            # the tokenId identifies one token within the channel.
            problems = []
            if renewed.ChannelId != first.ChannelId:
                problems.append(f"ChannelId {renewed.ChannelId} (the channel is {first.ChannelId})")
            if renewed.TokenId == first.TokenId:
                problems.append(f"TokenId {renewed.TokenId} is the one of the token being renewed")
            if renewed.RevisedLifetime <= 0:
                problems.append(f"RevisedLifetime {renewed.RevisedLifetime}")
            if problems:
                fail("the renewed token is not a new token of the same channel",
                     expected=f"ChannelId {first.ChannelId}, a TokenId other than {first.TokenId}, a positive lifetime",
                     observed="; ".join(problems))
            # The next request carries the new token (the client switches on its first use).
            stage = "after the renewal"
            await session.value(STATE_NODE)
            expiry_s = first.RevisedLifetime * 1.25 / 1000.0  # Part 4 §5.5.2.1: 25 % grace for late messages
            if expiry_s <= MAX_EXPIRY_WAIT_S:
                await asyncio.sleep(max(0.0, opened_at + expiry_s + 0.2 - time.monotonic()))
                # The first token has expired now: the channel lives on with the renewed one.
                stage = f"after the first token's lifetime ({first.RevisedLifetime} ms + 25 %) had passed"
                await session.value(STATE_NODE)
            await close_session(channel)
        except (ChannelClosed, BadReply, NoResponse) as exc:
            fail(f"the channel stopped serving {stage}", expected="the session's Read requests answered "
                 "with the renewed token, also after the first token's lifetime", observed=str(exc))
        finally:
            await channel.close()

    dut.run(check())


@case("UA-SC-CLOSE", "CloseSecureChannel ends the channel: no response, and the connection is closed",
      requirements=["UA-P4-5.5.3-CLOSE"], level="MUST", clause=f"{P4} §5.5.3, {P6} §7.1.4")
def test_close(dut):
    async def check():
        try:
            channel = await dut.open_channel("None")
        except UaTransportError as exc:
            fail("OpenSecureChannel did not succeed", expected="an OpenSecureChannelResponse with Good", observed=str(exc))
        try:
            # CloseSecureChannel without dropping our side of the connection, so that what the
            # server does with it is seen.  (Part 6 §7.1.4: no response; the channel's resources
            # are released.)
            channel._require().send(ua.CloseSecureChannelRequest(), ua.MessageType.SecureClose, hint_s=CLOSE_WAIT_S,
                                    expect_reply=False)
            deadline = time.monotonic() + CLOSE_WAIT_S
            while not channel.closed_by_peer and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            answered = [r for _, r in channel.unsolicited if isinstance(r, ua.CloseSecureChannelResponse)]
            if answered:
                fail("the server answered CloseSecureChannel", expected="no response (Part 6 §7.1.4)",
                     observed=describe(answered[0]))
            if channel.closed_by_peer:
                return
            # Still open: the closed channel must not serve anything any more; a message on it
            # is an error (Part 6 §6.7.6: an Error message, then the connection is closed).
            try:
                reply = await channel.request(ua.ReadRequest(Parameters=ua.ReadParameters(NodesToRead=[
                    ua.ReadValueId(NodeId=STATE_NODE, AttributeId=ua.AttributeIds.Value)])))
            except ChannelClosed:
                return
            except NoResponse:
                fail("after CloseSecureChannel the connection stayed open and a request on the closed channel "
                     "got no answer", expected="the connection closed, or an Error message and a close",
                     observed=f"connection open {CLOSE_WAIT_S:g} s after CloseSecureChannel; no answer to a Read")
            fail("the channel still serves requests after CloseSecureChannel",
                 expected="the connection closed, or an Error message and a close", observed=describe(reply))
        finally:
            channel.abort()

    dut.run(check())


# ---------------------------------------------------------------------------- policies

POLICY_PAIRS = [
    ("None", "None", "NONE"),
    ("Basic256Sha256", "Sign", "BASIC256SHA256-SIGN"),
    ("Basic256Sha256", "SignAndEncrypt", "BASIC256SHA256-SIGNANDENCRYPT"),
    ("Aes128_Sha256_RsaOaep", "Sign", "AES128SHA256RSAOAEP-SIGN"),
    ("Aes128_Sha256_RsaOaep", "SignAndEncrypt", "AES128SHA256RSAOAEP-SIGNANDENCRYPT"),
    ("Aes256_Sha256_RsaPss", "Sign", "AES256SHA256RSAPSS-SIGN"),
    ("Aes256_Sha256_RsaPss", "SignAndEncrypt", "AES256SHA256RSAPSS-SIGNANDENCRYPT"),
]


@pytest.mark.parametrize(
    "policy, mode",
    [
        param(policy, mode, id=f"UA-SC-POLICY-{suffix}",
              title=f"A channel with the claimed {policy} {mode} carries a session that reads a value",
              requirements=["UA-P4-5.5.2-POLICY-CLAIMED"] + (["UA-P4-5.5.2-OPEN"] if policy == "None" else []),
              level="MUST", clause=f"{P4} §5.5.2")
        for policy, mode, suffix in POLICY_PAIRS
    ],
)
def test_claimed_policy(dut, policy, mode):
    if not dut.ua.claims_policy(policy, mode):
        not_applicable(f"the profile does not claim {policy} {mode}")

    async def check():
        try:
            async with dut.session(policy, None if policy == "None" else mode, user=_session_user(dut)) as s:
                await s.value(STATE_NODE)
                point = next(iter(dut.profile.points), None)
                if point is not None:
                    await s.value(await dut.node(s, point.node_id))
                # Part 4 §5.6.2: on a secured channel the serverSignature signs the client
                # certificate and nonce with the key of the policy; a client checks it.
                if verify_server_signature(s.channel, s.create) is False:
                    fail(f"the CreateSession serverSignature does not verify under {policy}",
                         expected="a signature of clientCertificate + clientNonce with the server's key",
                         observed=f"algorithm {s.create.Parameters.ServerSignature.Algorithm!r}, signature does not verify")
        except ChannelRefused as exc:
            fail(f"OpenSecureChannel with the claimed {policy} {mode} was refused",
                 expected="an OpenSecureChannelResponse with Good", observed=_refusal_text(exc))
        except UaTransportError as exc:
            fail(f"the {policy} {mode} channel failed", expected="a channel and session that answer a Read",
                 observed=str(exc))

    dut.run(check())


def _unclaimed_attempts(dut) -> list[tuple[str, str]]:
    """(policy, mode) pairs the profile does not claim: the unclaimed modes of claimed secured
    policies, then the secured policies it does not claim at all (deprecated ones included, which
    a profile cannot claim).  Policy None is left out: it stays open for discovery (Part 4 §5.4.4)."""
    attempts = []
    for claim in dut.ua.security:
        if claim.policy != "None":
            attempts += [(claim.policy, m) for m in ("Sign", "SignAndEncrypt") if m not in claim.modes]
    claimed = {c.policy for c in dut.ua.security}
    ordered = [p for p in SECURITY_POLICIES if p != "None"] + [p for p in POLICIES if p not in SECURITY_POLICIES]
    attempts += [(p, "SignAndEncrypt") for p in ordered if p not in claimed]
    return attempts


@case("UA-SC-POLICY-UNCLAIMED", "OpenSecureChannel with a policy or mode the server does not offer is refused",
      requirements=["UA-P4-5.5.2-POLICY-UNCLAIMED"], level="MUST", clause=f"{P4} §5.5.2")
def test_unclaimed_policy(dut):
    attempts = _unclaimed_attempts(dut)
    if not attempts:
        not_applicable("the profile claims every security policy and mode the harness can try")

    async def check():
        server_cert = await _server_certificate(dut)
        pair = harness_client_certificate()
        expected = "refused with an Error message or a fault: " + " or ".join(status_name(c) for c in sorted(POLICY_CODES))
        problems, refused = [], []
        for policy, mode in attempts:
            channel = _secured_channel(dut, policy, mode, server_cert, pair.cert_path, pair.key_path)
            what = f"{policy} {mode}"
            try:
                await channel.open()
            except ChannelRefused as exc:
                code = _refusal_code(exc)
                if code in POLICY_CODES:
                    refused.append(f"{what}: {status_name(code)}")
                else:
                    problems.append(f"{what}: refused with {_refusal_text(exc)}")
                continue
            except ChannelClosed as exc:
                # Part 6 §6.7.6: the server reports the error with an Error message before closing.
                problems.append(f"{what}: connection closed without an Error message ({exc})")
                continue
            except UaTransportError as exc:
                problems.append(f"{what}: {exc}")
                break  # a server that stalls once would only stall again: no need to wait each time
            channel.abort()
            problems.append(f"{what}: accepted (OpenSecureChannelResponse Good, SecureChannelId {channel.channel_id})")
        if problems:
            fail(f"OpenSecureChannel with a policy or mode the profile does not claim was not refused as Part 4 "
                 f"Table 12 says ({len(problems)} of {len(problems) + len(refused)} tried)", expected=expected,
                 observed="; ".join(problems + refused))

    dut.run(check())


# ---------------------------------------------------------------------------- certificates


def _malformed(der: bytes) -> bytes:
    """The certificate cut short: its DER length no longer matches its content."""
    return der[: len(der) - 40]


@pytest.mark.parametrize(
    "kind",
    [
        param("untrusted", id="UA-SC-CERT-UNTRUSTED",
              title="A client certificate the server does not trust is refused (at OpenSecureChannel or CreateSession)",
              requirements=["UA-P4-6.1.3-UNTRUSTED-CERT"], level="MUST", clause=f"{P4} §6.1.3"),
        param("malformed", id="UA-SC-CERT-MALFORMED",
              title="A malformed client certificate is refused (at OpenSecureChannel or CreateSession)",
              requirements=["UA-P4-6.1.3-UNTRUSTED-CERT"], level="MUST", clause=f"{P4} §6.1.3"),
    ],
)
def test_client_certificate_refused(dut, kind):
    claims = dut.ua.secure_claims()
    if not claims:
        not_applicable("the profile claims no secured policy: no client certificate is ever presented")
    policy, mode = next(((p, m) for p, m in claims if m == "SignAndEncrypt"), claims[0])

    async def check():
        endpoint = select_endpoint(await dut.endpoints(), policy, mode)
        if endpoint is None or not endpoint.ServerCertificate:
            fail(f"no endpoint offers the claimed {policy} {mode} with a certificate",
                 expected=f"an endpoint for {policy} {mode}", observed="none in GetEndpoints")
        server_cert = endpoint_certificate(endpoint)
        if kind == "untrusted":
            # A fresh self-signed certificate: valid, but in no trust list (Part 4 §6.1.3).
            cert, key = make_certificate("protocol-harness untrusted", "urn:protocol-harness:untrusted-client")
            channel = _secured_channel(dut, policy, mode, server_cert, cert, key)
            presented = "a valid self-signed certificate that is in no trust list"
        else:
            pair = harness_client_certificate()
            channel = _secured_channel(dut, policy, mode, server_cert, pair.cert_path, pair.key_path)
            bad = _malformed(channel.security.host_certificate)
            channel.security.host_certificate, channel.security.host_certificate_chain = bad, []
            channel.client_certificate = bad
            presented = "the trusted harness certificate cut short by 40 bytes (not decodable DER)"
        expected = ("refused at OpenSecureChannel or CreateSession with "
                    "Bad_SecurityChecksFailed or a Bad_Certificate* code")
        try:
            await channel.open()
        except ChannelRefused as exc:
            code = _refusal_code(exc)
            if code not in CERTIFICATE_CODES:
                fail(f"OpenSecureChannel with {presented} was refused with the wrong code", expected=expected,
                     observed=_refusal_text(exc))
            return
        except ChannelClosed as exc:
            fail(f"OpenSecureChannel with {presented}: the server closed the connection without an Error message",
                 expected=expected, observed=str(exc))
        except UaTransportError as exc:
            fail(f"OpenSecureChannel with {presented} was not answered", expected=expected, observed=str(exc))
        # The channel is open: CreateSession (which carries the same certificate) must refuse it.
        try:
            created = await create_session(channel, endpoint_url=dut.url)
        except UaTransportError as exc:
            fail(f"the channel opened with {presented}; CreateSession got no answer", expected=expected,
                 observed=f"OpenSecureChannel Good, then {exc}")
        finally:
            channel.abort()
        code = result_of(created).value if getattr(created, "ResponseHeader", None) is not None else None
        if isinstance(created, ua.CreateSessionResponse) and result_of(created).is_good():
            fail(f"{presented.capitalize()} was accepted: the channel opened and a session was created",
                 expected=expected, observed="OpenSecureChannel Good, CreateSession Good")
        if code not in CERTIFICATE_CODES:
            fail(f"CreateSession with {presented} was refused with the wrong code", expected=expected,
                 observed=f"OpenSecureChannel Good, then {describe(created)}")

    dut.run(check())
