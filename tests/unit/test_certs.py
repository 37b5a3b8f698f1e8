"""Application instance certificates (harness.certs): content, reuse, renewal, concurrent creation."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest
from asyncua.crypto import uacrypto
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import ExtendedKeyUsageOID

from harness.certs import CertPair, application_uri_of, default_cert_dir, ensure_certificate, is_usable, make_certificate

URI = "urn:protocol-harness:test"


@pytest.fixture(scope="module")
def made():
    return make_certificate("harness-test", URI, years=3)


def test_certificate_is_what_opc_ua_asks_for(made):
    cert = x509.load_der_x509_certificate(made.cert_der)
    key = serialization.load_pem_private_key(made.key_pem, password=None)
    assert key.key_size == 2048
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.subject == cert.issuer
    # self-signed: the certificate's own key verifies its signature
    key.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [URI]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert application_uri_of(cert) == URI

    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and usage.key_encipherment
    assert usage.data_encipherment and usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is False and constraints.critical


def test_validity_runs_from_yesterday_for_the_years_asked(made):
    cert = x509.load_der_x509_certificate(made.cert_der)
    now = dt.datetime.now(dt.timezone.utc)
    assert abs(cert.not_valid_before_utc - (now - dt.timedelta(days=1))) < dt.timedelta(minutes=5)
    assert abs(cert.not_valid_after_utc - (now + dt.timedelta(days=3 * 365))) < dt.timedelta(minutes=5)


def test_asyncua_loads_the_files(tmp_path):
    pair = ensure_certificate(tmp_path, "server", URI)
    cert = uacrypto.x509_from_der(pair.cert_path.read_bytes())
    key = serialization.load_pem_private_key(pair.key_path.read_bytes(), password=None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert uacrypto.check_certificate(cert, URI, "localhost") is False  # returns "has errors"


def test_ensure_writes_der_and_pem_and_reuses_them(tmp_path):
    directory = tmp_path / "pki" / "own"
    pair = ensure_certificate(directory, "client", URI)
    assert pair == CertPair(directory / "client.der", directory / "client.pem")
    assert pair.key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pair.cert_path.read_bytes()[:1] == b"\x30"  # DER: an ASN.1 SEQUENCE
    assert stat.S_IMODE(os.stat(pair.key_path).st_mode) == 0o600
    first = pair.cert_path.read_bytes()
    assert ensure_certificate(directory, "client", URI).cert_path.read_bytes() == first
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def spare():
    """Key material made once for the damage cases: (a valid pair's files, an expired certificate)."""
    expired = make_certificate("client", URI, not_before=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
                               not_after=dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc))
    return make_certificate("client", URI), expired


@pytest.mark.parametrize("damage", ["other uri", "expired", "corrupt", "other key", "missing key"])
def test_ensure_replaces_what_it_cannot_use(tmp_path, spare, damage):
    valid, expired = spare
    pair = CertPair(tmp_path / "client.der", tmp_path / "client.pem")
    pair.cert_path.write_bytes(valid.cert_der)
    pair.key_path.write_bytes(valid.key_pem)
    assert is_usable(pair, URI)
    uri = URI
    if damage == "other uri":
        uri = "urn:someone:else"
    elif damage == "expired":
        pair.cert_path.write_bytes(expired.cert_der)
        pair.key_path.write_bytes(expired.key_pem)
    elif damage == "corrupt":
        pair.cert_path.write_bytes(b"not a certificate")
    elif damage == "other key":
        pair.key_path.write_bytes(expired.key_pem)
    else:
        pair.key_path.unlink()
    assert not is_usable(pair, uri)
    renewed = ensure_certificate(tmp_path, "client", uri)
    assert renewed == pair and is_usable(renewed, uri)


def test_concurrent_callers_get_one_consistent_pair(tmp_path):
    with ThreadPoolExecutor(4) as pool:
        pairs = list(pool.map(lambda _: ensure_certificate(tmp_path, "shared", URI), range(4)))
    assert len(set(pairs)) == 1
    assert is_usable(pairs[0], URI)


def test_names_cannot_leave_the_directory(tmp_path):
    with pytest.raises(ValueError):
        ensure_certificate(tmp_path, "../evil", URI)


def test_default_cert_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CERT_DIR", str(tmp_path / "certs"))
    assert default_cert_dir() == tmp_path / "certs"
    monkeypatch.delenv("HARNESS_CERT_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cert_dir() == tmp_path / ".cache" / "protocol-harness" / "pki"


def test_make_certificate_touches_no_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = make_certificate("wrong", "urn:untrusted", hostnames=("example.invalid",), addresses=())
    assert list(tmp_path.iterdir()) == []
    cert = x509.load_der_x509_certificate(made.cert_der)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.invalid"]
    assert san.get_values_for_type(x509.IPAddress) == []
