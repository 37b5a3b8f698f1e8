"""Signing a run directory with an Ed25519 key, and verifying it offline.

`sign_run` writes `signature.json` beside results.json: a manifest of every file in the run
directory (SHA-256 and size), the canonical SHA-256 of results.json's content, one digest per case
and per top-level section of results.json (so that verification can name *which* case changed),
and an Ed25519 signature over the canonical JSON of that manifest.

`verify_run` needs nothing but the run directory (and, optionally, the public key to trust). It
names every difference it finds. A run directory is evidence, so *any* difference fails
verification, including:

- a file added after signing (there is no "warning that passes": an extra file in a signed run
  dir may be what a reader is shown, so it is reported as a failed check);
- results.json rewritten with different indentation: its content is unchanged (and the report
  says so), but the signed bytes are not, so the file check still fails.

Who signed, when, and with which key are inside the signed manifest; the copies at the top of
signature.json are for people reading the file and are checked against the signed ones.

Without a trusted public key, the signature is checked against the key embedded in
signature.json: that proves the files are unchanged since *somebody* signed them. That the
somebody is the lab is shown by comparing the printed fingerprint with the lab's published one,
or by passing the lab's public key (`trusted_public_key`).

Imports: the standard library, `cryptography` and `harness.canonical` only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from harness.canonical import canonical_json, canonical_sha256

SIGNATURE_FILE = "signature.json"
SIGNATURE_SCHEMA = "harness.signature/1"
RESULTS_FILE = "results.json"
RESULTS_SCHEMA = "harness.results/1"  # harness.model.RESULTS_SCHEMA (not importable from here)
KEY_ENV = "HARNESS_SIGNING_KEY"
PUBLIC_SUFFIX = ".pub"
_CHUNK = 1 << 20

# Finding kinds: what `harness verify` found wrong.  Every finding fails verification.
SIGNATURE_MISSING = "signature-missing"
SIGNATURE_UNREADABLE = "signature-unreadable"
SIGNATURE_INVALID = "signature-invalid"
UNTRUSTED_KEY = "untrusted-key"
FILE_CHANGED = "file-changed"
FILE_MISSING = "file-missing"
FILE_ADDED = "file-added"
RESULTS_REFORMATTED = "results-reformatted"
RESULTS_UNREADABLE = "results-unreadable"
RESULTS_CONTENT_CHANGED = "results-content-changed"
SECTION_CHANGED = "results-section-changed"
CASE_CHANGED = "case-changed"
CASE_ADDED = "case-added"
CASE_REMOVED = "case-removed"


class SigningError(Exception):
    """A run cannot be signed or a key cannot be used; the message says how to fix it."""


# --------------------------------------------------------------------------- keys


def default_key_path() -> Path:
    """$HARNESS_SIGNING_KEY, else $XDG_CONFIG_HOME/protocol-harness/signing-key.pem (XDG_CONFIG_HOME
    defaulting to ~/.config)."""
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        return Path(from_env).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "protocol-harness" / "signing-key.pem"


def public_key_path(private_key_path: Union[str, Path]) -> Path:
    """Where `generate_key` writes the public half: `<path>.pub`."""
    path = Path(private_key_path)
    return path.with_name(path.name + PUBLIC_SUFFIX)


def _make_private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents as 0700; existing ones are left as they are."""
    missing = []
    for parent in [directory, *directory.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for path in reversed(missing):
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


def generate_key(path: Union[str, Path]) -> str:
    """Write a new Ed25519 private key to `path` (PKCS8 PEM, unencrypted, mode 0600) and its public
    key to `<path>.pub`; returns the public key's fingerprint.  Never overwrites a key."""
    path = Path(path).expanduser()
    pub_path = public_key_path(path)
    for existing in (path, pub_path):
        if existing.exists() or existing.is_symlink():
            raise SigningError(
                f"{existing} already exists; a signing key is never overwritten: use it as it is "
                f"(harness sign RUN --key {path}), or pass --key with a new path"
            )
    _make_private_dirs(path.parent)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    # O_EXCL: even a key created by someone else between the check above and now is not overwritten
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningError(f"{path} already exists; a signing key is never overwritten: pass --key with a new path") from None
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(private_pem)
    pub_path.write_bytes(public_pem)
    return fingerprint(key.public_key())


def load_private_key(path: Union[str, Path]) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file `path`."""
    path = Path(path).expanduser()
    if not path.exists():
        raise SigningError(f"no signing key at {path}: create one with `harness sign RUN --new-key` or pass --key")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read the signing key {path}: {exc.strerror or exc}; check its permissions") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SigningError(f"the signing key {path} is encrypted; harness sign needs an unencrypted PKCS8 PEM key "
                           "(create one with `harness sign RUN --new-key --key NEW_PATH`)") from None
    except ValueError:
        raise SigningError(f"{path} is not a PEM private key; pass the private key file with --key "
                           "(the .pub file is for `harness verify --public-key`)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path} holds a {type(key).__name__.lstrip('_')}, not an Ed25519 key; "
                           "create an Ed25519 key with `harness sign RUN --new-key --key NEW_PATH`")
    return key


def load_public_key(path_or_pem: Union[str, Path, bytes]) -> Ed25519PublicKey:
    """The Ed25519 public key in a PEM text (bytes, or a str starting with -----BEGIN) or a file.

    A private key file is accepted too: its public half is used."""
    if isinstance(path_or_pem, bytes):
        data, source = path_or_pem, "the given PEM text"
    elif isinstance(path_or_pem, str) and path_or_pem.lstrip().startswith("-----BEGIN"):
        data, source = path_or_pem.encode("ascii", "replace"), "the given PEM text"
    else:
        path = Path(path_or_pem).expanduser()
        source = str(path)
        if not path.is_file():
            raise SigningError(f"no public key at {path}: pass the lab's public key file (the .pub written beside "
                               "the signing key) with --public-key")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SigningError(f"cannot read the public key {path}: {exc.strerror or exc}; check its permissions") from None
    key: Any
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError):
            raise SigningError(f"{source} is not a PEM public key; pass the .pub file written beside the signing key "
                               "(-----BEGIN PUBLIC KEY-----)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{source} holds a {type(key).__name__.lstrip('_')}, not an Ed25519 key; "
                           "harness signatures are Ed25519: pass the .pub file written beside the signing key")
    return key


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: Union[Ed25519PublicKey, Ed25519PrivateKey]) -> str:
    """"SHA256:" + hex SHA-256 of the raw 32-byte public key (of a private key: of its public half)."""
    if isinstance(public_key, Ed25519PrivateKey):
        public_key = public_key.public_key()
    return "SHA256:" + hashlib.sha256(_raw_public(public_key)).hexdigest()


# --------------------------------------------------------------------------- the run directory


@dataclass(frozen=True)
class _Entry:
    """One path of the run directory: its digest, or why it has none."""

    sha256: Optional[str] = None
    size: Optional[int] = None
    problem: Optional[str] = None  # e.g. a symbolic link pointing outside the run directory


def _file_digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _walk(run_dir: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) of every entry below run_dir that is not a directory; symbolic
    links to directories are yielded (never followed), so a link cannot make the walk loop."""
    for top, dirs, files in os.walk(run_dir, followlinks=False):
        base = Path(top)
        for name in sorted(files):
            yield (base / name).relative_to(run_dir).as_posix(), base / name
        for name in sorted(dirs):
            if (base / name).is_symlink():
                yield (base / name).relative_to(run_dir).as_posix(), base / name


def _scan(run_dir: Path) -> dict[str, _Entry]:
    """Every file of the run directory except the top-level signature.json.

    A symbolic link to a regular file inside the run directory counts as that file's content;
    any other link, and anything that is not a regular file (a FIFO would block a reader), gets
    a `problem` instead of a digest."""
    root = run_dir.resolve()
    entries: dict[str, _Entry] = {}
    for rel, path in _walk(run_dir):
        if rel == SIGNATURE_FILE:
            continue
        if path.is_symlink():
            target = Path(os.path.realpath(path))
            if not target.is_relative_to(root):
                entries[rel] = _Entry(problem=f"is a symbolic link pointing outside the run directory (to {os.readlink(path)})")
                continue
            if not target.is_file():
                entries[rel] = _Entry(problem=f"is a symbolic link to {os.readlink(path)}, which is not a regular file")
                continue
        elif not stat.S_ISREG(path.lstat().st_mode):
            entries[rel] = _Entry(problem="is not a regular file (a device, socket or FIFO)")
            continue
        try:
            sha, size = _file_digest(path)
        except OSError as exc:
            entries[rel] = _Entry(problem=f"cannot be read ({exc.strerror or exc})")
            continue
        entries[rel] = _Entry(sha, size)
    return dict(sorted(entries.items()))


def _case_keys(cases: list) -> list[str]:
    """A name for each case: its id; a repeated id gets `#2`, `#3`... so that no case hides another."""
    seen: dict[str, int] = {}
    keys = []
    for case in cases:
        cid = str(case.get("id")) if isinstance(case, dict) and case.get("id") is not None else "(case without id)"
        seen[cid] = seen.get(cid, 0) + 1
        keys.append(cid if seen[cid] == 1 else f"{cid}#{seen[cid]}")
    return keys


def _case_digests(results: dict) -> dict[str, str]:
    cases = results.get("cases")
    if not isinstance(cases, list):
        return {}
    return {key: hashlib.sha256(canonical_json(case)).hexdigest() for key, case in zip(_case_keys(cases), cases)}


def _section_digests(results: dict) -> dict[str, str]:
    """One digest per top-level key of results.json except `cases` (those have their own)."""
    return {key: canonical_sha256(value) for key, value in sorted(results.items()) if key != "cases"}


def _load_results_for_signing(run_dir: Path) -> dict:
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        raise SigningError(f"no {RESULTS_FILE} in {run_dir}: sign the directory that `harness certify --out DIR` wrote")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SigningError(f"{path} is not valid JSON ({exc}); sign only a complete run: re-run `harness certify`") from None
    if not isinstance(results, dict) or results.get("schema") != RESULTS_SCHEMA:
        raise SigningError(f"{path} is not a harness results file (its schema is not {RESULTS_SCHEMA!r}); "
                           "sign the directory that `harness certify --out DIR` wrote")
    run = results.get("run") if isinstance(results.get("run"), dict) else {}
    if run.get("status") == "running":
        raise SigningError(f"the run in {run_dir} is still running (run.status is \"running\"): a run still being written "
                           "must not be signed; wait for it to finish, then sign it")
    return results


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sign_run(run_dir: Union[str, Path], private_key: Ed25519PrivateKey, *, signer: Optional[str] = None) -> Path:
    """Sign the run in `run_dir`: writes and returns `run_dir/signature.json`.  Signing again
    replaces the previous signature."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SigningError(f"{run_dir} is not a directory: pass the run directory (the --out DIR of `harness certify`)")
    results = _load_results_for_signing(run_dir)
    entries = _scan(run_dir)
    refused = {rel: entry.problem for rel, entry in entries.items() if entry.problem}
    if refused:
        listed = "; ".join(f"{rel} {problem}" for rel, problem in refused.items())
        raise SigningError(f"cannot sign {run_dir}: {listed}. A signed run must be self-contained: "
                           "replace each link by a copy of the file, or remove it")
    public = private_key.public_key()
    key_fingerprint = fingerprint(public)
    signed_at = _utc_now()
    run = results.get("run") if isinstance(results.get("run"), dict) else {}
    manifest = {
        "files": {rel: {"sha256": entry.sha256, "size": entry.size} for rel, entry in entries.items()},
        "results_canonical_sha256": canonical_sha256(results),
        "cases": _case_digests(results),
        "sections": _section_digests(results),
        "run_id": run.get("id"),
        # who and when are signed too; the copies at the top of signature.json are for reading
        "signed_at": signed_at,
        "signer": {"name": signer, "fingerprint": key_fingerprint},
    }
    document = {
        "schema": SIGNATURE_SCHEMA,
        "signed_at": signed_at,
        "signer": {"name": signer, "public_key": _b64(_raw_public(public)), "fingerprint": key_fingerprint},
        "manifest": manifest,
        "signature": _b64(private_key.sign(canonical_json(manifest))),
    }
    target = run_dir / SIGNATURE_FILE
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".signature-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Finding:
    """One thing that does not match the signature.  `kind` is one of the constants above."""

    kind: str
    text: str
    path: Optional[str] = None
    case_id: Optional[str] = None

    def __str__(self) -> str:
        return self.text


@dataclass
class Verification:
    """What `verify_run` found.  `ok` only when the signature is valid (by the trusted key, if one
    was given) and every file is exactly as signed."""

    run_dir: Path
    findings: list[Finding] = field(default_factory=list)
    signer: Optional[str] = None
    fingerprint: Optional[str] = None
    signed_at: Optional[str] = None
    results_canonical_sha256: Optional[str] = None
    run_id: Optional[str] = None
    trusted_fingerprint: Optional[str] = None  # the key the caller trusts, when one was given
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def kinds(self) -> list[str]:
        return [f.kind for f in self.findings]

    def lines(self) -> list[str]:
        """The report for a person, one line each."""
        out = []
        if self.fingerprint:
            who = f"signed by {self.signer}" if self.signer else "signed (no signer name)"
            out.append(f"{who} with key {self.fingerprint}" + (f" at {self.signed_at}" if self.signed_at else ""))
        if self.run_id:
            out.append(f"run {self.run_id}")
        if self.results_canonical_sha256:
            out.append(f"results.json canonical SHA-256 (as signed): {self.results_canonical_sha256}")
        if self.fingerprint and not self.trusted_fingerprint:
            out.append(f"no trusted public key given (--public-key): checked against the key embedded in {SIGNATURE_FILE}, "
                       f"fingerprint {self.fingerprint}; compare it with the fingerprint the lab publishes")
        elif self.fingerprint and self.trusted_fingerprint == self.fingerprint:
            out.append(f"the signing key is the trusted key {self.trusted_fingerprint}")
        out.extend(f"- {finding.text}" for finding in self.findings)
        if self.ok:
            out.append(f"VERIFIED: {self.files_checked} files are exactly as signed")
        else:
            n = len(self.findings)
            out.append(f"NOT VERIFIED: {n} problem{'s' if n != 1 else ''} found in {self.run_dir}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _parse_signature(path: Path) -> tuple[dict, Ed25519PublicKey, bytes, list[str]]:
    """signature.json's manifest, embedded public key, signature, and the names of the unsigned
    copies (signer, signed_at) that differ from the signed ones; ValueError saying what is wrong."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"is not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != SIGNATURE_SCHEMA:
        raise ValueError(f"is not a harness signature (its schema is not {SIGNATURE_SCHEMA!r})")
    manifest, signer = document.get("manifest"), document.get("signer")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ValueError("has no manifest of files")
    if not isinstance(signer, dict) or not isinstance(signer.get("public_key"), str):
        raise ValueError("has no signer public key")
    if not isinstance(document.get("signature"), str):
        raise ValueError("has no signature")
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(signer["public_key"], validate=True))
    except (binascii.Error, ValueError):
        raise ValueError("has a signer public_key that is not a base64 raw Ed25519 key (32 bytes)") from None
    try:
        signature = base64.b64decode(document["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("has a signature that is not base64") from None
    # the unsigned copies for readers must say what the signed manifest says
    unsigned = {"signed_at": document.get("signed_at"), "signer name": signer.get("name"), "signer fingerprint": signer.get("fingerprint")}
    signed_signer = manifest.get("signer") if isinstance(manifest.get("signer"), dict) else {}
    signed = {"signed_at": manifest.get("signed_at"), "signer name": signed_signer.get("name"),
              "signer fingerprint": signed_signer.get("fingerprint")}
    mismatched = [name for name in unsigned if unsigned[name] != signed[name]]
    return manifest, public, signature, mismatched


def _size(n: Any) -> str:
    return "1 byte" if n == 1 else f"{n} bytes"


def _describe(entry: Any) -> str:
    if not isinstance(entry, dict):
        return f"an entry that is not a file digest ({entry!r})"
    return f"sha256 {entry.get('sha256')} ({_size(entry.get('size'))})"


def _compare_files(expected: dict, actual: dict[str, _Entry]) -> list[Finding]:
    findings = []
    for rel in sorted(set(expected) | set(actual)):
        want, got = expected.get(rel), actual.get(rel)
        if got is None:
            findings.append(Finding(FILE_MISSING, f"{rel} is missing: it was signed as {_describe(want)}", path=rel))
        elif want is None:
            if got.problem:
                text = f"{rel} was added after signing and {got.problem}"
            else:
                text = f"{rel} was added after signing: sha256 {got.sha256} ({_size(got.size)})"
            findings.append(Finding(FILE_ADDED, text, path=rel))
        elif got.problem:
            findings.append(Finding(FILE_CHANGED, f"{rel} changed: it {got.problem}; it was signed as {_describe(want)}", path=rel))
        elif not isinstance(want, dict) or (want.get("sha256"), want.get("size")) != (got.sha256, got.size):
            findings.append(Finding(FILE_CHANGED, f"{rel} changed: signed as {_describe(want)}, "
                                                  f"now sha256 {got.sha256} ({_size(got.size)})", path=rel))
    return findings


def _compare_results(run_dir: Path, manifest: dict) -> list[Finding]:
    """What changed inside results.json, by its canonical hash and the per-case digests."""
    try:
        results = json.loads((run_dir / RESULTS_FILE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [Finding(RESULTS_UNREADABLE, f"results.json is no longer valid JSON ({exc})", path=RESULTS_FILE)]
    signed_hash = manifest.get("results_canonical_sha256")
    now_hash = canonical_sha256(results)
    if now_hash == signed_hash:
        return [Finding(RESULTS_REFORMATTED, "results.json was reformatted; its content is unchanged "
                                             f"(canonical SHA-256 {now_hash} as signed), but its bytes are not the signed ones",
                        path=RESULTS_FILE)]
    findings = [Finding(RESULTS_CONTENT_CHANGED, f"results.json content changed: canonical SHA-256 signed as {signed_hash}, "
                                                 f"now {now_hash}", path=RESULTS_FILE)]
    if not isinstance(results, dict):
        return findings
    signed_sections = manifest.get("sections") if isinstance(manifest.get("sections"), dict) else {}
    for name, digest in _section_digests(results).items():
        if name in signed_sections and signed_sections[name] != digest:
            findings.append(Finding(SECTION_CHANGED, f"results.json: the {name!r} section changed", path=RESULTS_FILE))
        elif signed_sections and name not in signed_sections:
            findings.append(Finding(SECTION_CHANGED, f"results.json: a {name!r} section was added", path=RESULTS_FILE))
    for name in signed_sections:
        if name not in results:
            findings.append(Finding(SECTION_CHANGED, f"results.json: the {name!r} section was removed", path=RESULTS_FILE))
    signed_cases = manifest.get("cases") if isinstance(manifest.get("cases"), dict) else {}
    cases_now = _case_digests(results)
    for cid, digest in cases_now.items():
        if cid not in signed_cases:
            findings.append(Finding(CASE_ADDED, f"results.json: case {cid} was added after signing", path=RESULTS_FILE, case_id=cid))
        elif signed_cases[cid] != digest:
            findings.append(Finding(CASE_CHANGED, f"results.json: case {cid} changed", path=RESULTS_FILE, case_id=cid))
    for cid in signed_cases:
        if cid not in cases_now:
            findings.append(Finding(CASE_REMOVED, f"results.json: case {cid} was removed after signing", path=RESULTS_FILE, case_id=cid))
    if len(findings) == 1 and list(signed_cases) != list(cases_now):
        findings.append(Finding(RESULTS_CONTENT_CHANGED, "results.json: the cases are the same but in a different order", path=RESULTS_FILE))
    return findings


def verify_run(run_dir: Union[str, Path], *, trusted_public_key: Optional[Ed25519PublicKey] = None) -> Verification:
    """Check the run in `run_dir` against its signature.json, offline.  Raises SigningError only
    when `run_dir` is not a directory; everything else is a finding."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SigningError(f"{run_dir} is not a directory: pass the run directory that holds signature.json")
    report = Verification(run_dir=run_dir)
    if trusted_public_key is not None:
        report.trusted_fingerprint = fingerprint(trusted_public_key)
    sig_path = run_dir / SIGNATURE_FILE
    if not sig_path.is_file():
        report.findings.append(Finding(SIGNATURE_MISSING, f"{SIGNATURE_FILE} is missing: this run was never signed "
                                                          f"(sign it with `harness sign {run_dir}`) or its signature was deleted",
                                       path=SIGNATURE_FILE))
        return report
    try:
        manifest, public, signature, mismatched = _parse_signature(sig_path)
    except ValueError as exc:
        report.findings.append(Finding(SIGNATURE_UNREADABLE, f"{SIGNATURE_FILE} {exc}; nothing can be verified", path=SIGNATURE_FILE))
        return report
    except OSError as exc:
        report.findings.append(Finding(SIGNATURE_UNREADABLE, f"{SIGNATURE_FILE} cannot be read ({exc.strerror or exc})", path=SIGNATURE_FILE))
        return report
    report.fingerprint = fingerprint(public)
    signed_signer = manifest.get("signer") if isinstance(manifest.get("signer"), dict) else {}
    report.signer = signed_signer.get("name")
    report.signed_at = manifest.get("signed_at")
    report.run_id = manifest.get("run_id")
    report.results_canonical_sha256 = manifest.get("results_canonical_sha256")

    try:
        public.verify(signature, canonical_json(manifest))
        valid = True
    except InvalidSignature:
        valid = False
        report.findings.append(Finding(SIGNATURE_INVALID, f"the signature does not match: {SIGNATURE_FILE} or its manifest was "
                                                          "edited after signing, so the file checks below compare against a "
                                                          "manifest that cannot be trusted", path=SIGNATURE_FILE))
    if valid and signed_signer.get("fingerprint") != report.fingerprint:
        report.findings.append(Finding(SIGNATURE_INVALID, f"{SIGNATURE_FILE}'s embedded public key ({report.fingerprint}) is not "
                                                          f"the one its manifest names ({signed_signer.get('fingerprint')})",
                                       path=SIGNATURE_FILE))
    if mismatched:
        report.findings.append(Finding(SIGNATURE_INVALID, f"{SIGNATURE_FILE} was edited: its {', '.join(mismatched)} differ "
                                                          "from the signed manifest's", path=SIGNATURE_FILE))
    if report.trusted_fingerprint and report.trusted_fingerprint != report.fingerprint:
        report.findings.append(Finding(UNTRUSTED_KEY, f"signed by a different key: {report.fingerprint}, not the trusted key "
                                                      f"{report.trusted_fingerprint}", path=SIGNATURE_FILE))

    actual = _scan(run_dir)
    report.files_checked = len(actual)
    for finding in _compare_files(manifest["files"], actual):
        report.findings.append(finding)
        if finding.path == RESULTS_FILE and finding.kind == FILE_CHANGED and actual[RESULTS_FILE].problem is None:
            report.findings.extend(_compare_results(run_dir, manifest))
    return report
