"""Fast start: asyncua's standard address space from a cache instead of rebuilding it.

`asyncua.Server.init()` builds the ~6,000 nodes of the standard address space by running
generated code, about 2 s on this kind of machine.  asyncua can load them lazily from a
`shelve` file instead (`AddressSpace.load_aspace_shelf`), but that does not help here:

- its switch looks for `PATH` or `PATH.db`, while Python's fallback `dbm.dumb` (the only dbm
  module when CPython is built without gdbm/ndbm, as here) writes `PATH.dat` and `PATH.dir`,
  so every start rebuilds the space and rewrites the shelf;
- even when pointed at the right files, opening a dumb-dbm shelf parses its index with one
  `ast.literal_eval` per node: 0.2 s, most of the start-up budget.

So the cache is ours: `nodes.dat` holds each node pickled on its own, `nodes.idx` a pickled
{node id string: (offset, length)} index that loads in milliseconds, and `LazyNodes` unpickles
a node the first time it is touched (as asyncua's shelf loader does).  The cache lives in a
per-user directory keyed by the asyncua and Python versions, and is built once, in a temporary
directory renamed into place, so simulators starting at the same moment neither see half a
cache nor corrupt each other's.
"""

from __future__ import annotations

import collections.abc
import os
import pickle
import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from asyncua import ua
from asyncua.server.internal_server import InternalServer

INDEX, DATA = "nodes.idx", "nodes.dat"
FORMAT = 2  # of the files above; part of the directory name, so an old cache is never misread


def cache_dir() -> Path:
    """`$HARNESS_CACHE_DIR` or ~/.cache/protocol-harness, then opcua-aspace/<versions>."""
    base = Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "protocol-harness")
    return base / "opcua-aspace" / f"v{FORMAT}-asyncua-{version('asyncua')}-py{sys.version_info[0]}.{sys.version_info[1]}"


class LazyNodes(collections.abc.MutableMapping):
    """asyncua's node dict, filled from the cache as nodes are used.

    Like asyncua's own shelf loader, iteration covers the nodes touched or added so far (the
    server iterates only to number new nodes of its own namespaces, which are never cached).
    """

    def __init__(self, index: dict[str, tuple[int, int]], data: bytes):
        self._index = index
        self._data = data
        self._nodes: dict = {}
        self._deleted: set[str] = set()

    def __getitem__(self, key):
        try:
            return self._nodes[key]
        except KeyError:
            pass
        text = key.to_string() if isinstance(key, ua.NodeId) else None
        where = self._index.get(text) if text not in self._deleted else None
        if where is None:
            raise KeyError(key)
        offset, length = where
        node = self._nodes[key] = pickle.loads(self._data[offset : offset + length])
        return node

    def __setitem__(self, key, value) -> None:
        self._nodes[key] = value

    def __delitem__(self, key) -> None:
        found = self._nodes.pop(key, None) is not None
        if isinstance(key, ua.NodeId) and key.to_string() in self._index:
            self._deleted.add(key.to_string())
            found = True
        if not found:
            raise KeyError(key)

    def __contains__(self, key) -> bool:
        if key in self._nodes:
            return True
        return isinstance(key, ua.NodeId) and (text := key.to_string()) in self._index and text not in self._deleted

    def __iter__(self):
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)


async def load_standard_address_space(iserver: InternalServer) -> bool:
    """Fill `iserver`'s address space from the cache, building the cache when missing.

    Returns True when the cache was used.  Call it instead of the standard-space step of
    `InternalServer.init` (see `simulators.opcua.server`).
    """
    directory = cache_dir()
    try:
        index = pickle.loads((directory / INDEX).read_bytes())
        data = (directory / DATA).read_bytes()
    except (OSError, pickle.UnpicklingError, EOFError):
        await InternalServer.load_standard_address_space(iserver, None)  # the slow path, this once
        _write_cache(iserver.aspace._nodes, directory)
        return False
    iserver.aspace._nodes = LazyNodes(index, data)
    return True


def _write_cache(nodes: dict, directory: Path) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=directory.parent))
    try:
        index: dict[str, tuple[int, int]] = {}
        with open(staging / DATA, "wb") as out:
            offset = 0
            for nodeid, node in nodes.items():
                blob = pickle.dumps(node, pickle.HIGHEST_PROTOCOL)
                out.write(blob)
                index[nodeid.to_string()] = (offset, len(blob))
                offset += len(blob)
        (staging / INDEX).write_bytes(pickle.dumps(index, pickle.HIGHEST_PROTOCOL))
        try:
            os.rename(staging, directory)  # atomic; fails if another process won the race
        except OSError:
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
