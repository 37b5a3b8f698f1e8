"""The node-opcua OPC UA server as a third-party peer, loaded with a device image.

`start_node_opcua_server(image)` writes the image to a temporary JSON file, runs
``node harness/peers/node_opcua_server.js IMAGE.json --pki DIR --node-modules DIR [--trust DIR]`` in its own
process group and returns the ready `PeerProcess` (``peer.url`` is
``opc.tcp://127.0.0.1:PORT/PATH``).  Stopping it kills the process group and removes the
temporary directory (image + the server's PKI store).

A device image is a dict (JSON for node)::

    endpoint_path, namespace_uri, application_uri, product_uri,
    build_info {manufacturer_name, product_name, software_version, build_number, build_date},
    object {browse_name, node_id},
    variables [{browse_name, node_id, data_type, value, array_length, writable, unit}],
    methods [{browse_name, node_id, inputs [{name, data_type}], outputs [...], action: sum|echo}],
    users [{name, password}],
    security [{policy: None|Basic256Sha256|..., modes: [None|Sign|SignAndEncrypt]}]

Node ids are given without a namespace index (``s=PowerMeter.voltage_l1``, ``i=1001``) and land
in the image's namespace.  data_type is one of Boolean, Int16, UInt16, Int32, UInt32, Int64,
UInt64, Float, Double, String, Byte, SByte.

Installation: node-opcua is pinned in the project's package.json / package-lock.json and
installed into ``<project>/node_modules`` by ``scripts/install-node-packages.sh`` (``make
setup``).  ``HARNESS_NODE_MODULES`` (or the `node_modules` argument) points elsewhere; ``HARNESS_NODE``
names the node binary.  What node-opcua 2.182 does by default and what the peer changes:

* maxConnectionsPerEndpoint and serverCapabilities.maxSessions default to 10; raised to 100.
* node-opcua offers every (policy x mode) combination of the policies and modes it is given;
  the peer keeps exactly the pairs the image lists.
* automaticallyAcceptUnknownCertificate stays off: only certificates copied from `trust_dir`
  (DER/PEM files) are trusted.  The PKI store is a fresh temporary directory per peer; the
  server certificate node-opcua generates (RSA 2048, self-signed, SAN = application URI +
  host names + IPs) is kept in ``~/.cache/protocol-harness/node-opcua-pki/<hash>`` and seeded
  into the next store for the same identity, which saves 0.5-2 s of key generation per start.
* node-opcua logs with console.log; the script sends that to stderr, stdout carries only the
  ``version:`` and ``listening on`` lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .. import node_runtime
from .base import PeerError, PeerProcess, cache_dir

SCRIPT = Path(__file__).with_name("node_opcua_server.js")
DEFAULT_STARTUP_TIMEOUT_S = 60.0
MIN_NODE_MAJOR = 18
INSTALL_HINT = node_runtime.INSTALL_HINT


def node_binary() -> str:
    """The node executable (``HARNESS_NODE`` or ``node`` on PATH, Node >= 18), or PeerError."""
    try:
        return node_runtime.node_binary(MIN_NODE_MAJOR)
    except node_runtime.NodeMissing as exc:
        raise PeerError(f"node-opcua peer: {exc}") from None


def node_modules_dir(node_modules: str | Path | None = None) -> Path:
    """Where node-opcua is installed: the argument, ``HARNESS_NODE_MODULES``, or <project>/node_modules."""
    return node_runtime.node_modules_dir(node_modules)


def node_opcua_version(node_modules: str | Path | None = None) -> str:
    """The installed node-opcua version (from its package.json), or PeerError naming the fix."""
    try:
        return node_runtime.npm_package_version("node-opcua", node_modules)
    except node_runtime.NodeMissing as exc:
        raise PeerError(f"node-opcua peer: {exc}") from None


# node-opcua keeps its own certificate and key at these places under the server's PKI root
OWN_CERT = Path("own/certs/certificate.pem")
OWN_KEY = Path("own/private/private_key.pem")


def _certificate_cache(image: dict, host: str, version: str) -> Path:
    """Per-user cache of the server certificate node-opcua generated for this identity."""
    bi = image.get("build_info") or {}
    key = "\0".join([version, host, image.get("application_uri") or "", bi.get("product_name") or ""])
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return cache_dir().parent / "node-opcua-pki" / digest


def _seed_pki(server_pki: Path, cache: Path) -> bool:
    """Copy a cached certificate + key into a fresh PKI root; False when there is none yet."""
    if not ((cache / "certificate.pem").is_file() and (cache / "private_key.pem").is_file()):
        return False
    for name, rel in (("certificate.pem", OWN_CERT), ("private_key.pem", OWN_KEY)):
        (server_pki / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache / name, server_pki / rel)
    return True


def _fill_cache(server_pki: Path, cache: Path) -> None:
    """Keep the certificate node-opcua just made for the next start (atomic, best effort)."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for name, rel in (("private_key.pem", OWN_KEY), ("certificate.pem", OWN_CERT)):
            tmp = cache / f".{name}.{os.getpid()}.tmp"
            shutil.copyfile(server_pki / rel, tmp)
            os.replace(tmp, cache / name)
    except OSError:
        pass


def start_node_opcua_server(
    image: dict,
    *,
    host: str = "127.0.0.1",
    trust_dir: str | Path | None = None,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
    node_modules: str | Path | None = None,
) -> PeerProcess:
    """Start node-opcua serving `image` on `host`, port chosen by the OS; return it ready.

    `trust_dir`: a directory of client certificates (DER or PEM) the server trusts; every other
    client certificate is rejected.  Raises PeerError when node or node-opcua is missing (the
    message says to run scripts/install-node-packages.sh) or when the server does not come up.
    """
    version = node_opcua_version(node_modules)
    node = node_binary()
    if trust_dir is not None and not Path(trust_dir).is_dir():
        raise PeerError(f"node-opcua peer: trust_dir {trust_dir} is not a directory")

    workdir = Path(tempfile.mkdtemp(prefix="node-opcua-peer-"))
    image_path = workdir / "image.json"
    image_path.write_text(json.dumps(image), encoding="utf-8")
    pki = workdir / "pki"
    cache = _certificate_cache(image, host, version)
    cached = _seed_pki(pki / "server", cache)
    argv = [node, str(SCRIPT), str(image_path), "--host", host, "--port", "0", "--pki", str(pki),
            "--node-modules", str(node_modules_dir(node_modules).resolve())]
    if trust_dir is not None:
        argv += ["--trust", str(Path(trust_dir).resolve())]
    peer = PeerProcess(
        "node-opcua",
        argv,
        version=version,
        host=host,
        startup_timeout=startup_timeout,
        scheme="opc.tcp",
        path=image.get("endpoint_path") or "",
        on_stop=[lambda: shutil.rmtree(workdir, ignore_errors=True)],
    )
    try:
        peer.start()
    except BaseException:
        peer.close()  # runs on_stop: the temporary directory goes too
        raise
    if not cached:
        _fill_cache(pki / "server", cache)
    return peer
