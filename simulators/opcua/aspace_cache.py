"""Fast start: asyncua's standard address space from a shelf cache instead of rebuilding it.

`asyncua.Server.init()` builds the ~6,000 nodes of the standard address space by running
generated code, about 2 s on this kind of machine.  asyncua can load them lazily from a
`shelve` file instead (`AddressSpace.load_aspace_shelf`), but its own switch does not work
here: it looks for `PATH` or `PATH.db`, while Python's fallback `dbm.dumb` (the only dbm
module when CPython is built without gdbm/ndbm) writes `PATH.dat` and `PATH.dir`, so every
start rebuilds the space and rewrites the shelf.  We manage the cache ourselves:

- the shelf lives in a per-user directory keyed by the asyncua and Python versions;
- it is built once, in a temporary directory renamed into place, so two simulators starting at
  the same moment neither see a half-written shelf nor corrupt each other's;
- a start with the cache loads nodes lazily, as they are first touched (~0.1 s to ready).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

import asyncua
from asyncua.server.internal_server import InternalServer

SHELF_NAME = "standard-address-space"


def cache_dir() -> Path:
    """`$HARNESS_CACHE_DIR` or ~/.cache/protocol-harness, then opcua-aspace/<versions>."""
    base = Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "protocol-harness")
    version = f"asyncua-{asyncua.__version__ if hasattr(asyncua, '__version__') else _asyncua_version()}-py{sys.version_info[0]}.{sys.version_info[1]}"
    return base / "opcua-aspace" / version


def _asyncua_version() -> str:
    from importlib.metadata import version

    return version("asyncua")


def _shelf_exists(directory: Path) -> bool:
    return any((directory / (SHELF_NAME + suffix)).is_file() for suffix in ("", ".db", ".dat"))


async def load_standard_address_space(iserver: InternalServer) -> bool:
    """Fill `iserver`'s address space from the cache, building the cache when missing.

    Returns True when the cache was used.  Call it instead of the standard-space step of
    `InternalServer.init` (see `simulators.opcua.server`).
    """
    directory = cache_dir()
    if _shelf_exists(directory):
        iserver.aspace.load_aspace_shelf(directory / SHELF_NAME)
        return True
    await InternalServer.load_standard_address_space(iserver, None)  # the slow path, this once
    await asyncio.to_thread(_write_cache, iserver, directory)
    return False


def _write_cache(iserver: InternalServer, directory: Path) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=directory.parent))
    try:
        iserver.aspace.make_aspace_shelf(staging / SHELF_NAME)
        try:
            os.rename(staging, directory)  # atomic; fails if another process won the race
        except OSError:
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
