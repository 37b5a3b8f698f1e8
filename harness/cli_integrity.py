"""`harness sign RUN` and `harness verify RUN`: the command-line side of harness.signing.

Two plain functions, registered on the `harness` app by harness/cli.py:

    harness sign RUN_DIR [--key FILE] [--new-key] [--signer NAME]
        exit 0 signed, 2 usage error (no key, not a finished run, ...)
    harness verify RUN_DIR [--public-key FILE]
        exit 0 verified, 1 a check failed (each finding is printed), 2 usage error

File names and case ids are data: they are printed as text, never as rich markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from . import signing

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# soft_wrap: hashes and paths stay on one line, so that a log can be searched for them
console = Console(highlight=False, markup=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def _usage_error(message: str) -> typer.Exit:
    err.print(Text.assemble(("harness: ", "red"), message))
    return typer.Exit(EXIT_USAGE)


def sign_command(
    run_dir: Path = typer.Argument(..., help="run directory to sign (the --out DIR of `harness certify`)"),
    key: Optional[Path] = typer.Option(None, "--key", help=f"Ed25519 private key (PEM); default: ${signing.KEY_ENV}, "
                                                          "else ~/.config/protocol-harness/signing-key.pem"),
    new_key: bool = typer.Option(False, "--new-key", help="create the key at the --key path first if it does not exist"),
    signer: Optional[str] = typer.Option(None, "--signer", metavar="NAME", help="who signs (a person or lab), recorded in the signature"),
):
    """Sign a finished run: writes RUN_DIR/signature.json covering every file of the run."""
    if not run_dir.is_dir():
        raise _usage_error(f"{run_dir} is not a directory: pass the run directory (the --out DIR of `harness certify`)")
    key_path = key if key is not None else signing.default_key_path()
    try:
        if new_key and not key_path.exists():
            created = signing.generate_key(key_path)
            console.print(f"created signing key {key_path} ({created})")
            console.print(f"its public key, for `harness verify --public-key`: {signing.public_key_path(key_path)}")
        elif new_key:
            console.print(f"--new-key: {key_path} already exists; signing with it")
        private_key = signing.load_private_key(key_path)
        signature_path = signing.sign_run(run_dir, private_key, signer=signer)
    except signing.SigningError as exc:
        raise _usage_error(str(exc)) from None
    verification = signing.verify_run(run_dir, trusted_public_key=private_key.public_key())
    console.print(f"signed {run_dir}: {verification.files_checked} files")
    console.print(f"results.json canonical SHA-256: {verification.results_canonical_sha256}")
    console.print(f"key: {signing.fingerprint(private_key)}" + (f" (signer: {signer})" if signer else ""))
    console.print(f"signature: {signature_path}")
    if not verification.ok:  # only if the directory changed while it was being signed
        for finding in verification.findings:
            err.print(f"harness: {finding.text}")
        raise _usage_error(f"{run_dir} changed while it was being signed; sign it again when nothing writes to it")


def verify_command(
    run_dir: Path = typer.Argument(..., help="signed run directory (holding signature.json)"),
    public_key: Optional[Path] = typer.Option(None, "--public-key", metavar="FILE",
                                              help="trust only this public key (PEM, the .pub beside the signing key)"),
):
    """Check a signed run offline: exit 0 when every file is exactly as signed, 1 naming what changed."""
    if not run_dir.is_dir():
        raise _usage_error(f"{run_dir} is not a directory: pass the run directory that holds signature.json")
    trusted = None
    if public_key is not None:
        try:
            trusted = signing.load_public_key(public_key)
        except signing.SigningError as exc:
            raise _usage_error(str(exc)) from None
    result = signing.verify_run(run_dir, trusted_public_key=trusted)
    *details, verdict = result.lines()
    for line in details:
        console.print(line)
    console.print(Text(verdict, style="bold green" if result.ok else "bold red"))
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)
