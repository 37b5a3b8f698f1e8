"""Security policies by name, and the client-side asyncua policy object for a channel.

Test cases and target URLs name policies the way the specification does
("Aes128_Sha256_RsaOaep"); asyncua names its classes without underscores.  `policy_class`
accepts either spelling or the policy URI, and `build_policy` loads the client certificate and
key (DER or PEM, path or bytes) and the server certificate into the asyncua object that signs
and encrypts the channel's messages.
"""

from __future__ import annotations

from pathlib import Path

from asyncua import ua
from asyncua.crypto import security_policies as sp
from cryptography import x509
from cryptography.hazmat.primitives import serialization

# spec name -> asyncua class.  Basic128Rsa15 and Basic256 are deprecated but kept, so that a
# test can check that a server refuses them.
POLICIES: dict[str, type[sp.SecurityPolicy]] = {
    "None": sp.SecurityPolicyNone,
    "Basic128Rsa15": sp.SecurityPolicyBasic128Rsa15,
    "Basic256": sp.SecurityPolicyBasic256,
    "Basic256Sha256": sp.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": sp.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": sp.SecurityPolicyAes256Sha256RsaPss,
}
MODES = {
    "None": ua.MessageSecurityMode.None_,
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}


def policy_class(name: str) -> type[sp.SecurityPolicy]:
    """The asyncua class for "Basic256Sha256", "Aes128Sha256RsaOaep", a policy URI, ..."""
    key = name.rsplit("#", 1)[-1].replace("_", "").lower()
    for spec_name, cls in POLICIES.items():
        if spec_name.replace("_", "").lower() == key:
            return cls
    raise ValueError(f"unknown security policy {name!r}; known: {', '.join(POLICIES)}")


def policy_name(cls_or_uri: type[sp.SecurityPolicy] | str) -> str:
    uri = cls_or_uri if isinstance(cls_or_uri, str) else cls_or_uri.URI
    return uri.rsplit("#", 1)[-1]


def message_mode(mode: str | ua.MessageSecurityMode) -> ua.MessageSecurityMode:
    if isinstance(mode, ua.MessageSecurityMode):
        return mode
    try:
        return MODES[mode.rstrip("_")]
    except KeyError:
        raise ValueError(f"unknown security mode {mode!r}; known: {', '.join(MODES)}") from None


def _content(source: Path | str | bytes) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def load_certificate(source: Path | str | bytes) -> x509.Certificate:
    """A DER or PEM certificate from a path or bytes (the first one of a DER chain)."""
    data = _content(source)
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return sp.uacrypto.x509_from_der(data)


def load_private_key(source: Path | str | bytes, password: bytes | None = None):
    data = _content(source)
    if data.lstrip().startswith(b"-----BEGIN"):
        return serialization.load_pem_private_key(data, password=password)
    return serialization.load_der_private_key(data, password=password)


def build_policy(
    policy: str | type[sp.SecurityPolicy],
    mode: str | ua.MessageSecurityMode | None = None,
    *,
    certificate: Path | str | bytes | None = None,
    private_key: Path | str | bytes | None = None,
    server_certificate: bytes | None = None,
) -> sp.SecurityPolicy:
    """The client-side policy object.  `mode` defaults to None for policy None and to
    SignAndEncrypt for the others, which need all three of certificate, key and server
    certificate (the DER bytes from GetEndpoints)."""
    cls = policy_class(policy) if isinstance(policy, str) else policy
    if cls is sp.SecurityPolicyNone:
        return sp.SecurityPolicyNone()
    resolved = message_mode(mode or "SignAndEncrypt")
    if resolved == ua.MessageSecurityMode.None_:
        raise ValueError(f"policy {policy_name(cls)} needs mode Sign or SignAndEncrypt")
    missing = [n for n, v in (("certificate", certificate), ("private_key", private_key),
                              ("server_certificate", server_certificate)) if not v]
    if missing:
        raise ValueError(f"policy {policy_name(cls)} needs {', '.join(missing)}")
    return cls(
        load_certificate(server_certificate),
        load_certificate(certificate),
        load_private_key(private_key),
        resolved,
    )
