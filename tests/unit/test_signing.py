"""Signing a run directory and verifying it offline: every kind of tampering is caught and named."""

from __future__ import annotations

import base64
import json
import os
import hashlib
import stat
from pathlib import Path

import pytest
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from harness import signing
from harness.canonical import canonical_json, canonical_sha256
from harness.cli_integrity import sign_command, verify_command

HOSTILE_ID = "MB-[/red][bold]X"  # rich markup in a case id must print as it is


@pytest.fixture(autouse=True)
def _keys_in_tmp(tmp_path, monkeypatch):
    """No test may read or write the user's real signing key."""
    monkeypatch.setenv(signing.KEY_ENV, str(tmp_path / "env-keys" / "signing-key.pem"))


def _results(status: str = "finished") -> dict:
    cases = [
        {"id": "MB-FC03-QTY-1", "verdict": "PASS", "message": "read one register", "evidence": {"frames": []}},
        {"id": "MB-FC03-QTY-126", "verdict": "FAIL", "message": "device answered 125 registers", "evidence": {"frames": []}},
        {"id": HOSTILE_ID, "verdict": "PASS", "message": "ok", "evidence": {"frames": []}},
    ]
    return {"schema": "harness.results/1", "run": {"id": "20240101T000000Z-abcd1234", "status": status},
            "target": {"url": "modbus+tcp://127.0.0.1:502"}, "summary": {"overall": "NOT_COMPLIANT"}, "cases": cases}


def make_run(root: Path, name: str = "run", *, status: str = "finished") -> Path:
    """A small run directory shaped like the one `harness certify` writes."""
    run = root / name
    run.mkdir()
    (run / "results.json").write_text(json.dumps(_results(status), indent=1), encoding="utf-8")
    (run / "report.html").write_text("<html><body><h1>Report</h1><p>NOT_COMPLIANT</p></body></html>\n", encoding="utf-8")
    (run / "junit.xml").write_text("<testsuites/>\n", encoding="utf-8")
    (run / "capture.pcap").write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000") + bytes(range(256)))
    (run / "extra").mkdir()
    (run / "extra" / "notes.txt").write_text("operator notes\n", encoding="utf-8")
    return run


@pytest.fixture
def key(tmp_path) -> Ed25519PrivateKey:
    return signing.load_private_key(_new_key(tmp_path / "keys" / "lab.pem"))


def _new_key(path: Path) -> Path:
    signing.generate_key(path)
    return path


@pytest.fixture
def signed_run(tmp_path, key) -> Path:
    run = make_run(tmp_path)
    signing.sign_run(run, key, signer="Test Lab")
    return run


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _kinds(verification) -> set[str]:
    return {finding.kind for finding in verification.findings}


def _text(verification) -> str:
    return "\n".join(verification.lines())


# --------------------------------------------------------------------------- keys


def test_default_key_path_env_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv(signing.KEY_ENV, str(tmp_path / "k.pem"))
    assert signing.default_key_path() == tmp_path / "k.pem"
    monkeypatch.delenv(signing.KEY_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert signing.default_key_path() == tmp_path / "xdg" / "protocol-harness" / "signing-key.pem"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert signing.default_key_path() == tmp_path / "home" / ".config" / "protocol-harness" / "signing-key.pem"


def test_generate_key_is_private_and_never_overwritten(tmp_path):
    path = tmp_path / "new" / "dir" / "lab.pem"
    printed = signing.generate_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    pub = signing.public_key_path(path)
    assert pub == tmp_path / "new" / "dir" / "lab.pem.pub"
    assert pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    private = signing.load_private_key(path)
    assert signing.fingerprint(private) == signing.fingerprint(private.public_key()) == printed
    assert signing.fingerprint(signing.load_public_key(pub)) == printed
    assert signing.fingerprint(signing.load_public_key(path)) == printed  # a private key file gives its public half
    assert signing.fingerprint(signing.load_public_key(pub.read_bytes())) == printed
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert printed == "SHA256:" + hashlib.sha256(raw).hexdigest()

    before = path.read_bytes()
    with pytest.raises(signing.SigningError, match="never overwritten"):
        signing.generate_key(path)
    assert path.read_bytes() == before


def test_key_errors_tell_the_fix(tmp_path):
    with pytest.raises(signing.SigningError, match=r"no signing key at .*--new-key.*--key"):
        signing.load_private_key(tmp_path / "absent.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    with pytest.raises(signing.SigningError, match="not a PEM private key"):
        signing.load_private_key(garbage)
    with pytest.raises(signing.SigningError, match="not a PEM public key"):
        signing.load_public_key(garbage)
    with pytest.raises(signing.SigningError, match="--public-key"):
        signing.load_public_key(tmp_path / "absent.pub")
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(signing.SigningError, match="not an Ed25519 key"):
        signing.load_private_key(ec_key)
    with pytest.raises(signing.SigningError, match="not an Ed25519 key"):
        signing.load_public_key(ec_key)


# --------------------------------------------------------------------------- sign and verify


def test_signature_covers_every_file_and_verifies(signed_run, key):
    document = json.loads((signed_run / "signature.json").read_text())
    manifest = document["manifest"]
    assert document["schema"] == "harness.signature/1"
    assert list(manifest["files"]) == ["capture.pcap", "extra/notes.txt", "junit.xml", "report.html", "results.json"]
    assert manifest["files"]["capture.pcap"]["size"] == (signed_run / "capture.pcap").stat().st_size
    results = json.loads((signed_run / "results.json").read_text())
    assert manifest["results_canonical_sha256"] == canonical_sha256(results)
    assert set(manifest["cases"]) == {"MB-FC03-QTY-1", "MB-FC03-QTY-126", HOSTILE_ID}
    assert manifest["run_id"] == "20240101T000000Z-abcd1234"
    assert document["signer"]["name"] == "Test Lab"
    assert document["signer"]["fingerprint"] == signing.fingerprint(key)
    assert document["signed_at"].endswith("+00:00")
    # the signature is a plain Ed25519 signature over the canonical manifest: checkable without the harness
    key.public_key().verify(base64.b64decode(document["signature"]), canonical_json(manifest))

    verification = signing.verify_run(signed_run, trusted_public_key=key.public_key())
    assert verification.ok, _text(verification)
    assert verification.findings == []
    assert verification.signer == "Test Lab"
    assert verification.fingerprint == signing.fingerprint(key)
    assert verification.results_canonical_sha256 == canonical_sha256(results)
    assert verification.files_checked == 5
    assert "VERIFIED" in verification.lines()[-1]


def test_one_byte_in_a_case_message_names_that_case(signed_run):
    results = signed_run / "results.json"
    _flip_byte(results, results.read_bytes().index(b"device answered") + 1)  # 'e' -> 'd'
    verification = signing.verify_run(signed_run)
    assert not verification.ok
    changed = [f for f in verification.findings if f.kind == signing.FILE_CHANGED]
    assert [f.path for f in changed] == ["results.json"]
    assert [f.case_id for f in verification.findings if f.kind == signing.CASE_CHANGED] == ["MB-FC03-QTY-126"]
    assert signing.RESULTS_CONTENT_CHANGED in _kinds(verification)
    text = _text(verification)
    assert "case MB-FC03-QTY-126 changed" in text
    assert "MB-FC03-QTY-1 " not in text and "MB-FC03-QTY-1 changed" not in text


def test_a_changed_summary_names_the_section(signed_run):
    path = signed_run / "results.json"
    path.write_text(path.read_text().replace("NOT_COMPLIANT", "COMPLIANT"))
    verification = signing.verify_run(signed_run)
    assert any(f.kind == signing.SECTION_CHANGED and "'summary'" in f.text for f in verification.findings), _text(verification)
    assert signing.CASE_CHANGED not in _kinds(verification)


@pytest.mark.parametrize("name, offset", [("report.html", 20), ("capture.pcap", 30), ("extra/notes.txt", 0)])
def test_one_byte_in_another_file_names_it(signed_run, name, offset):
    signed = json.loads((signed_run / "signature.json").read_text())["manifest"]["files"][name]["sha256"]
    _flip_byte(signed_run / name, offset)
    verification = signing.verify_run(signed_run)
    assert not verification.ok
    assert [(f.kind, f.path) for f in verification.findings] == [(signing.FILE_CHANGED, name)]
    finding = verification.findings[0]
    assert signed in finding.text and signing._file_digest(signed_run / name)[0] in finding.text


def test_truncated_file_shows_both_sizes(signed_run):
    path = signed_run / "capture.pcap"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:100])
    verification = signing.verify_run(signed_run)
    [finding] = verification.findings
    assert finding.kind == signing.FILE_CHANGED and finding.path == "capture.pcap"
    assert f"({size} bytes)" in finding.text and "(100 bytes)" in finding.text


def test_deleted_file_is_missing(signed_run):
    (signed_run / "junit.xml").unlink()
    verification = signing.verify_run(signed_run)
    assert [(f.kind, f.path) for f in verification.findings] == [(signing.FILE_MISSING, "junit.xml")]
    assert not verification.ok


def test_added_file_fails_verification(signed_run):
    (signed_run / "extra" / "later.html").write_text("<p>a report nobody signed</p>")
    verification = signing.verify_run(signed_run)
    assert not verification.ok
    assert [(f.kind, f.path) for f in verification.findings] == [(signing.FILE_ADDED, "extra/later.html")]
    assert "added after signing" in verification.findings[0].text


def test_symlink_added_after_signing_is_reported_not_followed(signed_run, tmp_path):
    secret = tmp_path / "outside.txt"
    secret.write_text("outside")
    (signed_run / "link.txt").symlink_to(secret)
    verification = signing.verify_run(signed_run)
    [finding] = verification.findings
    assert finding.kind == signing.FILE_ADDED and "outside the run directory" in finding.text


def test_fifo_added_after_signing_is_reported_without_being_opened(signed_run):
    os.mkfifo(signed_run / "pipe")  # opening it for reading would block forever
    verification = signing.verify_run(signed_run)
    [finding] = verification.findings
    assert finding.kind == signing.FILE_ADDED and "not a regular file" in finding.text


def test_reformatted_results_keep_their_content_but_still_fail(signed_run):
    path = signed_run / "results.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4))
    verification = signing.verify_run(signed_run)
    assert not verification.ok
    assert _kinds(verification) == {signing.FILE_CHANGED, signing.RESULTS_REFORMATTED}
    assert "results.json was reformatted; its content is unchanged" in _text(verification)


def test_cases_added_and_removed_are_named(signed_run):
    path = signed_run / "results.json"
    results = json.loads(path.read_text())
    results["cases"] = [c for c in results["cases"] if c["id"] != "MB-FC03-QTY-1"]
    results["cases"].append({"id": "MB-NEW", "verdict": "PASS"})
    path.write_text(json.dumps(results, indent=1))
    verification = signing.verify_run(signed_run)
    named = {(f.kind, f.case_id) for f in verification.findings if f.case_id}
    assert named == {(signing.CASE_REMOVED, "MB-FC03-QTY-1"), (signing.CASE_ADDED, "MB-NEW")}


def test_results_that_are_no_longer_json(signed_run):
    path = signed_run / "results.json"
    path.write_bytes(path.read_bytes()[:-5])
    verification = signing.verify_run(signed_run)
    assert {signing.FILE_CHANGED, signing.RESULTS_UNREADABLE} == _kinds(verification)


def test_edited_manifest_invalidates_the_signature(signed_run):
    # the forger changes a file and updates the manifest to match it
    _flip_byte(signed_run / "report.html", 20)
    sig_path = signed_run / "signature.json"
    document = json.loads(sig_path.read_text())
    sha, size = signing._file_digest(signed_run / "report.html")
    document["manifest"]["files"]["report.html"] = {"sha256": sha, "size": size}
    sig_path.write_text(json.dumps(document, indent=1))
    verification = signing.verify_run(signed_run)
    assert _kinds(verification) == {signing.SIGNATURE_INVALID}
    assert "signature.json or its manifest was edited" in _text(verification)


def test_edited_signer_name_is_caught(signed_run):
    sig_path = signed_run / "signature.json"
    document = json.loads(sig_path.read_text())
    document["signer"]["name"] = "Famous Lab"
    sig_path.write_text(json.dumps(document, indent=1))
    verification = signing.verify_run(signed_run)
    assert _kinds(verification) == {signing.SIGNATURE_INVALID}
    assert "signer name" in _text(verification)
    assert verification.signer == "Test Lab"  # the signed name, not the edited copy


def test_signature_of_another_key_swapped_in(signed_run, tmp_path):
    other = signing.load_private_key(_new_key(tmp_path / "other" / "k.pem"))
    sig_path = signed_run / "signature.json"
    document = json.loads(sig_path.read_text())
    document["signature"] = base64.b64encode(other.sign(canonical_json(document["manifest"]))).decode()
    sig_path.write_text(json.dumps(document, indent=1))
    verification = signing.verify_run(signed_run)
    assert _kinds(verification) == {signing.SIGNATURE_INVALID}


def test_run_resigned_by_another_key_fails_against_the_trusted_key(signed_run, key, tmp_path):
    other = signing.load_private_key(_new_key(tmp_path / "other" / "k.pem"))
    _flip_byte(signed_run / "report.html", 20)
    signing.sign_run(signed_run, other, signer="Test Lab")
    # consistent in itself: only the fingerprint shows it is not the lab's key...
    untrusted = signing.verify_run(signed_run)
    assert untrusted.ok and untrusted.fingerprint == signing.fingerprint(other) != signing.fingerprint(key)
    assert "no trusted public key given" in _text(untrusted)
    # ...and the lab's public key rejects it, showing both fingerprints
    verification = signing.verify_run(signed_run, trusted_public_key=key.public_key())
    assert not verification.ok
    [finding] = verification.findings
    assert finding.kind == signing.UNTRUSTED_KEY
    assert signing.fingerprint(other) in finding.text and signing.fingerprint(key) in finding.text


def test_missing_and_unreadable_signature(tmp_path, signed_run):
    unsigned = make_run(tmp_path, "unsigned")
    verification = signing.verify_run(unsigned)
    assert _kinds(verification) == {signing.SIGNATURE_MISSING} and not verification.ok
    (signed_run / "signature.json").write_text("{not json")
    verification = signing.verify_run(signed_run)
    assert _kinds(verification) == {signing.SIGNATURE_UNREADABLE} and not verification.ok
    with pytest.raises(signing.SigningError, match="not a directory"):
        signing.verify_run(signed_run / "results.json")


def test_sign_refuses_what_is_not_a_finished_harness_run(tmp_path, key):
    running = make_run(tmp_path, "running", status="running")
    with pytest.raises(signing.SigningError, match="still running"):
        signing.sign_run(running, key)
    assert not (running / "signature.json").exists()

    other = tmp_path / "b"
    other.mkdir()
    with pytest.raises(signing.SigningError, match="no results.json"):
        signing.sign_run(other, key)
    (other / "results.json").write_text('{"schema": "something/else"}')
    with pytest.raises(signing.SigningError, match="not a harness results file"):
        signing.sign_run(other, key)


def test_sign_refuses_links_outside_the_run(tmp_path, key):
    run = make_run(tmp_path)
    (tmp_path / "elsewhere.txt").write_text("x")
    (run / "evidence.txt").symlink_to(tmp_path / "elsewhere.txt")
    with pytest.raises(signing.SigningError, match="evidence.txt is a symbolic link pointing outside"):
        signing.sign_run(run, key)
    (run / "evidence.txt").unlink()
    (run / "copy.html").symlink_to("report.html")  # inside the run: signed as that file's content
    signing.sign_run(run, key)
    assert signing.verify_run(run).ok


# --------------------------------------------------------------------------- the commands


@pytest.fixture
def cli():
    app = typer.Typer()
    app.command("sign")(sign_command)
    app.command("verify")(verify_command)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_cli_sign_new_key_then_verify(cli, tmp_path):
    run = make_run(tmp_path)
    key_path = tmp_path / "cli-keys" / "lab.pem"
    result = cli("sign", run, "--key", key_path, "--new-key", "--signer", "Lab [bold]A[/bold]")
    assert result.exit_code == 0, result.output
    fp = signing.fingerprint(signing.load_private_key(key_path))
    assert fp in result.output and f"{key_path}.pub" in result.output
    assert "5 files" in result.output and canonical_sha256(_results()) in result.output

    result = cli("verify", run)
    assert result.exit_code == 0, result.output
    assert "Lab [bold]A[/bold]" in result.output  # printed, not interpreted
    assert "no trusted public key given" in result.output and fp in result.output
    assert cli("verify", run, "--public-key", f"{key_path}.pub").exit_code == 0

    other = _new_key(tmp_path / "other" / "k.pem")
    result = cli("verify", run, "--public-key", f"{other}.pub")
    assert result.exit_code == 1
    assert "signed by a different key" in result.output


def test_cli_names_a_changed_case_literally(cli, tmp_path):
    run = make_run(tmp_path)
    assert cli("sign", run, "--new-key").exit_code == 0  # the key from HARNESS_SIGNING_KEY (in tmp)
    assert (tmp_path / "env-keys" / "signing-key.pem").exists()
    path = run / "results.json"
    results = json.loads(path.read_text())
    results["cases"][2]["verdict"] = "FAIL"
    path.write_text(json.dumps(results, indent=1))
    result = cli("verify", run)
    assert result.exit_code == 1
    assert f"case {HOSTILE_ID} changed" in result.output
    assert "NOT VERIFIED" in result.output


def test_cli_usage_errors_exit_2(cli, tmp_path):
    run = make_run(tmp_path)
    result = cli("sign", run)  # no key at HARNESS_SIGNING_KEY and no --new-key
    assert result.exit_code == 2
    assert "harness: no signing key at" in result.stderr and "--new-key" in result.stderr
    assert not (run / "signature.json").exists()
    assert cli("sign", tmp_path / "absent", "--new-key").exit_code == 2
    assert cli("verify", tmp_path / "absent").exit_code == 2
    assert cli("verify", run / "results.json").exit_code == 2
    result = cli("verify", run, "--public-key", tmp_path / "absent.pub")
    assert result.exit_code == 2 and "no public key at" in result.stderr
    result = cli("verify", run)  # a directory, but never signed: a failed check, not a usage error
    assert result.exit_code == 1 and "signature.json is missing" in result.output
