"""Session services (Part 4 v1.04 §5.6) over a `UaChannel`, returning the raw replies.

`create_session` and `activate_session` return what the server answered (the *Response or a
ServiceFault) and never raise on a bad status.  On a good CreateSessionResponse the channel
keeps the session (`channel.session`), the server nonce and the AuthenticationToken, which is
then put into every later RequestHeader, ActivateSession included (§7.28); a good
ActivateSessionResponse renews the server nonce.  To send a token that was never issued, set
`channel.authentication_token` or pass `auth_token=` to one `channel.request`.

The identity-token builders follow the UserTokenPolicy the server advertised for the channel's
endpoint (Part 4 §7.36, §7.37): a UserName password is encrypted the way asyncua's client does
it (the legacy format: length + password + server nonce, RSA-encrypted with the server's key)
unless the policy says None; an X509 token comes with its signature over server certificate +
server nonce.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.utils import create_nonce
from asyncua.crypto import security_policies as sp
from asyncua.ua.ua_binary import Primitives
from cryptography.hazmat.primitives.serialization import Encoding

from ..certs import HARNESS_CLIENT_URI, application_uri_of
from .channel import UaChannel
from .security import load_certificate, load_private_key

CLIENT_APPLICATION_URI = HARNESS_CLIENT_URI  # one client identity for the whole harness
NONE_URI = sp.SecurityPolicyNone.URI


def _good(reply: Any, cls: type) -> bool:
    return isinstance(reply, cls) and reply.ResponseHeader.ServiceResult.is_good()


def client_application_uri(channel: UaChannel) -> str:
    """The applicationUri of the channel's client certificate, else the harness default."""
    if channel.client_certificate:
        return application_uri_of(load_certificate(channel.client_certificate)) or CLIENT_APPLICATION_URI
    return CLIENT_APPLICATION_URI


async def create_session(
    channel: UaChannel,
    *,
    session_name: str = "protocol-harness",
    endpoint_url: str | None = None,
    session_timeout_ms: float = 60_000,
    client_nonce: bytes | None = None,
    application_uri: str | None = None,
    max_response_size: int = 0,
    timeout: float | None = None,
) -> Any:
    """Send CreateSession; returns the CreateSessionResponse or ServiceFault as received."""
    nonce = create_nonce(32) if client_nonce is None else client_nonce
    description = ua.ApplicationDescription(
        ApplicationUri=application_uri or client_application_uri(channel),
        ProductUri="urn:protocol-harness",
        ApplicationName=ua.LocalizedText("protocol-harness"),
        ApplicationType=ua.ApplicationType.Client,
    )
    params = ua.CreateSessionParameters(
        ClientDescription=description,
        EndpointUrl=endpoint_url or channel.endpoint_url,
        SessionName=session_name,
        ClientNonce=nonce,
        ClientCertificate=channel.client_certificate,
        RequestedSessionTimeout=session_timeout_ms,
        MaxResponseMessageSize=max_response_size,
    )
    reply = await channel.request(ua.CreateSessionRequest(Parameters=params), timeout=timeout)
    channel.client_nonce = nonce
    if _good(reply, ua.CreateSessionResponse):
        channel.session = reply
        channel.server_nonce = reply.Parameters.ServerNonce
        channel.authentication_token = reply.Parameters.AuthenticationToken
    return reply


def server_certificate(channel: UaChannel, session: ua.CreateSessionResponse | None = None) -> bytes:
    """The server certificate (DER) from CreateSession, else the one the channel was opened with."""
    session = session or channel.session
    raw = session.Parameters.ServerCertificate if session is not None else None
    raw = raw or channel.server_certificate
    return load_certificate(raw).public_bytes(Encoding.DER) if raw else b""


def verify_server_signature(channel: UaChannel, session: ua.CreateSessionResponse | None = None) -> bool | None:
    """Does the CreateSession ServerSignature sign client certificate + client nonce
    (Part 4 §5.6.2)?  None on a channel with security None, where there is nothing to check."""
    session = session or channel.session
    if channel.policy_uri == NONE_URI or session is None:
        return None
    data = (channel.client_certificate or b"") + (channel.client_nonce or b"")
    try:
        channel.security.asymmetric_cryptography.verify(data, session.Parameters.ServerSignature.Signature)
    except Exception:  # InvalidSignature, or a signature of the wrong size or type
        return False
    return True


def user_token_policy(
    channel: UaChannel, token_type: ua.UserTokenType, session: ua.CreateSessionResponse | None = None
) -> ua.UserTokenPolicy | None:
    """The server's policy for this token type, preferring the endpoint of the channel's
    security policy and mode; an empty SecurityPolicyUri is filled with the channel's."""
    session = session or channel.session
    endpoints = list(session.Parameters.ServerEndpoints or []) if session is not None else []
    endpoints.sort(key=lambda e: not (e.SecurityPolicyUri == channel.policy_uri and e.SecurityMode == channel.mode))
    for endpoint in endpoints:
        for policy in endpoint.UserIdentityTokens or []:
            if policy.TokenType == token_type:
                if not policy.SecurityPolicyUri:
                    return dataclasses.replace(policy, SecurityPolicyUri=channel.policy_uri)
                return policy
    return None


def anonymous_token(channel: UaChannel | None = None, *, policy_id: str | None = None) -> ua.AnonymousIdentityToken:
    if policy_id is None and channel is not None:
        policy = user_token_policy(channel, ua.UserTokenType.Anonymous)
        policy_id = policy.PolicyId if policy else None
    return ua.AnonymousIdentityToken(PolicyId=policy_id)


def username_token(
    channel: UaChannel,
    username: str | None,
    password: str | bytes,
    *,
    policy_id: str | None = None,
    encrypt: bool | None = None,
) -> ua.UserNameIdentityToken:
    """A UserName token.  `encrypt` None follows the server's policy; True encrypts even when
    the policy says None (with the channel's policy), False sends the password in clear."""
    policy = user_token_policy(channel, ua.UserTokenType.UserName)
    uri = (policy.SecurityPolicyUri if policy else None) or channel.policy_uri
    secret = password.encode("utf-8") if isinstance(password, str) else bytes(password)
    token = ua.UserNameIdentityToken(PolicyId=policy_id or (policy.PolicyId if policy else None), UserName=username)
    if encrypt is None:
        encrypt = uri != NONE_URI
    if not encrypt:
        token.Password, token.EncryptionAlgorithm = secret, None
        return token
    if uri == NONE_URI:
        uri = channel.policy_uri
    if uri == NONE_URI:
        raise ValueError("nothing to encrypt the password with: the token policy and the channel are both None")
    cert = server_certificate(channel)
    if not cert:
        raise ValueError("no server certificate to encrypt the password with")
    plain = Primitives.Bytes.pack(secret + (channel.server_nonce or b""))
    token.Password, token.EncryptionAlgorithm = sp.encrypt_asymmetric(
        load_certificate(cert).public_key(), plain, uri
    )
    return token


def x509_token(
    channel: UaChannel,
    certificate: Path | str | bytes,
    private_key: Path | str | bytes,
    *,
    policy_id: str | None = None,
) -> tuple[ua.X509IdentityToken, ua.SignatureData]:
    """An X509 token and its UserTokenSignature (pass it as `token_signature=`)."""
    policy = user_token_policy(channel, ua.UserTokenType.Certificate)
    uri = (policy.SecurityPolicyUri if policy else None) or channel.policy_uri
    if uri == NONE_URI:
        uri = sp.SecurityPolicyBasic256Sha256.URI  # a signature needs an algorithm; asyncua does the same
    token = ua.X509IdentityToken(
        PolicyId=policy_id or (policy.PolicyId if policy else None),
        CertificateData=load_certificate(certificate).public_bytes(Encoding.DER),
    )
    challenge = server_certificate(channel) + (channel.server_nonce or b"")
    signature, algorithm = sp.sign_asymmetric(load_private_key(private_key), challenge, uri)
    return token, ua.SignatureData(Algorithm=algorithm, Signature=signature)


def client_signature(channel: UaChannel) -> ua.SignatureData:
    """Signature of server certificate + server nonce with the channel's key; empty for None."""
    if channel.policy_uri == NONE_URI:
        return ua.SignatureData()
    challenge = server_certificate(channel) + (channel.server_nonce or b"")
    return ua.SignatureData(
        Algorithm=channel.security.AsymmetricSignatureURI,
        Signature=channel.security.asymmetric_cryptography.signature(challenge),
    )


async def activate_session(
    channel: UaChannel,
    session: ua.CreateSessionResponse | None = None,
    token: Any = None,
    *,
    token_signature: ua.SignatureData | None = None,
    signature: ua.SignatureData | None = None,
    locale_ids: Iterable[str] = (),
    timeout: float | None = None,
) -> Any:
    """Send ActivateSession; returns the ActivateSessionResponse or ServiceFault as received.

    `token` defaults to an anonymous one; `signature` (the ClientSignature) to the correct one.
    """
    if session is not None:
        channel.session = session
    params = ua.ActivateSessionParameters(
        ClientSignature=signature if signature is not None else client_signature(channel),
        LocaleIds=list(locale_ids),
        UserIdentityToken=token if token is not None else anonymous_token(channel),
        UserTokenSignature=token_signature or ua.SignatureData(),
    )
    reply = await channel.request(ua.ActivateSessionRequest(Parameters=params), timeout=timeout)
    if _good(reply, ua.ActivateSessionResponse):
        channel.server_nonce = reply.Parameters.ServerNonce
    return reply


async def close_session(channel: UaChannel, *, delete_subscriptions: bool = True, timeout: float | None = None) -> Any:
    """Send CloseSession; returns the reply.  The channel forgets the session on a good one."""
    reply = await channel.request(ua.CloseSessionRequest(DeleteSubscriptions=delete_subscriptions), timeout=timeout)
    if _good(reply, ua.CloseSessionResponse):
        channel.session, channel.server_nonce = None, None
        channel.authentication_token = ua.NodeId()
    return reply
