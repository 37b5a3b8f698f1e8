"""The installed version of a Python distribution, for naming a stack in results (stdlib only)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def installed_version(distribution: str) -> str:
    """`distribution`'s version as pip installed it, or "unknown" when it is not installed."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
