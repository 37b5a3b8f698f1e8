"""Where Node.js and the project's npm packages are, for the node peers and the node bridge.

`HARNESS_NODE` overrides the node executable (default: `node` on PATH) and
`HARNESS_NODE_MODULES` the package directory (default: <project>/node_modules, filled by
`scripts/install-node-packages.sh` from package-lock.json).  Problems raise `NodeMissing` with
the fix in the message; callers turn it into their own error type.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

INSTALL_HINT = "run scripts/install-node-packages.sh (or `make setup`) in the project directory"
MIN_NODE_MAJOR = 18


class NodeMissing(RuntimeError):
    pass


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def node_binary(min_major: int = MIN_NODE_MAJOR) -> str:
    """The node executable, checked to run and to be at least `min_major`."""
    env = os.environ.get("HARNESS_NODE")
    node = env or shutil.which("node")
    if not node or not (os.path.isfile(node) and os.access(node, os.X_OK)):
        where = f"HARNESS_NODE={env} is not an executable" if env else "`node` is not on PATH"
        raise NodeMissing(f"Node.js is not installed ({where}); {INSTALL_HINT}")
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise NodeMissing(f"`{node} --version` failed ({exc}); {INSTALL_HINT}") from None
    major = out.lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < min_major:
        raise NodeMissing(f"Node.js >= {min_major} is needed, found {out}; {INSTALL_HINT}")
    return node


def node_modules_dir(override: str | Path | None = None) -> Path:
    """The argument, ``HARNESS_NODE_MODULES``, or <project>/node_modules."""
    if override is not None:
        return Path(override)
    env = os.environ.get("HARNESS_NODE_MODULES")
    return Path(env) if env else project_root() / "node_modules"


def npm_package_version(package: str, node_modules: str | Path | None = None) -> str:
    """The installed version of an npm package (from its package.json)."""
    directory = node_modules_dir(node_modules)
    manifest = directory / package / "package.json"
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    except FileNotFoundError:
        raise NodeMissing(f"the npm package {package} is not installed in {directory}; {INSTALL_HINT}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise NodeMissing(f"cannot read {manifest} ({exc}); {INSTALL_HINT}") from None
