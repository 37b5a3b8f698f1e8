"""Self-signed OPC UA application instance certificates for the harness and its simulators.

OPC UA security policies other than None need a certificate and RSA key on both sides (Part 6
v1.04 §6.2.2).  `make_certificate` builds one in memory (tests use it for a "wrong",
untrusted certificate); `ensure_certificate` keeps one per name in a directory (DER
certificate, PEM key), reusing it while it is valid and for the same applicationUri.  Two
processes starting at once are safe: the files are written to a temporary name and renamed,
under a lock file, and a reader checks that the key belongs to the certificate.
Imports `cryptography` and the standard library only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

try:
    import fcntl
except ImportError:  # Windows: no lock; the rename still keeps each file whole
    fcntl = None

LOCK_TIMEOUT_S = 30.0
# A certificate that expires within this margin is renewed rather than reused.
RENEW_MARGIN = dt.timedelta(days=1)
_NAME = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class CertPair:
    """Paths of a DER certificate and its PEM private key (unencrypted)."""

    cert_path: Path
    key_path: Path


class CertificateBytes(NamedTuple):
    cert_der: bytes
    key_pem: bytes


def default_cert_dir() -> Path:
    """`$HARNESS_CERT_DIR`, else ~/.cache/protocol-harness/pki."""
    env = os.environ.get("HARNESS_CERT_DIR")
    return Path(env) if env else Path.home() / ".cache" / "protocol-harness" / "pki"


def make_certificate(
    name: str,
    application_uri: str,
    *,
    years: int = 10,
    key_size: int = 2048,
    hostnames: tuple[str, ...] = ("localhost",),
    addresses: tuple[str, ...] = ("127.0.0.1",),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> CertificateBytes:
    """A self-signed application instance certificate (SHA-256, RSA `key_size`) and its key.

    Valid from one day ago for `years` years unless `not_before`/`not_after` say otherwise
    (to make an expired or not-yet-valid certificate).  Nothing is written to disk.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    now = dt.datetime.now(dt.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    alt_names += [x509.DNSName(host) for host in hostnames]
    alt_names += [x509.IPAddress(ipaddress.ip_address(addr)) for addr in addresses]
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=365 * years))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,  # nonRepudiation
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=True,  # self-signed: Part 6 §6.2.2 asks for keyCertSign
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return CertificateBytes(cert.public_bytes(serialization.Encoding.DER), key_pem)


def application_uri_of(cert: x509.Certificate) -> str | None:
    """The first URI in the subjectAltName, which OPC UA uses as the applicationUri."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def load_key(path: Path):
    """A PEM private key of ours.  The RSA consistency checks (about 70 ms a key) are skipped:
    the harness generated the key itself, and `is_usable` compares it with the certificate."""
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None, unsafe_skip_rsa_key_validation=True)


def is_usable(pair: CertPair, application_uri: str) -> bool:
    """Both files load, the key belongs to the certificate, the URI matches, and it is valid
    now and for at least RENEW_MARGIN more."""
    try:
        cert = x509.load_der_x509_certificate(pair.cert_path.read_bytes())
        key = load_key(pair.key_path)
    except (OSError, ValueError, TypeError):
        return False
    now = dt.datetime.now(dt.timezone.utc)
    return (
        key.public_key().public_numbers() == cert.public_key().public_numbers()
        and application_uri_of(cert) == application_uri
        and cert.not_valid_before_utc <= now
        and cert.not_valid_after_utc > now + RENEW_MARGIN
    )


def ensure_certificate(directory: Path, name: str, application_uri: str, *, years: int = 10) -> CertPair:
    """`directory/NAME.der` and `directory/NAME.pem`, made unless usable ones are already there."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"certificate name {name!r} may only use letters, digits, '.', '_' and '-'")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pair = CertPair(directory / f"{name}.der", directory / f"{name}.pem")
    if is_usable(pair, application_uri):
        return pair
    with _locked(directory / f".{name}.lock"):
        if not is_usable(pair, application_uri):  # another process may have just made it
            made = make_certificate(name, application_uri, years=years)
            _write_atomic(pair.key_path, made.key_pem, 0o600)
            _write_atomic(pair.cert_path, made.cert_der, 0o644)
    return pair


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class _locked:
    """An exclusive lock file, waited for at most LOCK_TIMEOUT_S."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def __enter__(self) -> "_locked":
        if fcntl is None:
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise TimeoutError(f"{self.path} stayed locked for {LOCK_TIMEOUT_S:.0f} s") from None
                time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


HARNESS_CLIENT_NAME = "harness-client"
HARNESS_CLIENT_URI = "urn:protocol-harness:client"


def harness_client_certificate(directory: Path | None = None) -> CertPair:
    """The harness's own client application certificate, made on first use.

    A device under test must trust it for the secured cases; the bundled simulator trusts it
    by default.  `harness certify` prints where it is.
    """
    return ensure_certificate(Path(directory) if directory else default_cert_dir(), HARNESS_CLIENT_NAME, HARNESS_CLIENT_URI)
