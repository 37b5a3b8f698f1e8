"""A default asyncua OPC UA server as a third-party peer, loaded with a device image.

`start_asyncua_server(image)` writes the image (the dict format described in
`harness.peers.node_opcua_server`) to a temporary JSON file, runs
``python -m harness.peers.run_asyncua_server IMAGE.json --host H --port 0 --cert-dir DIR`` in its
own process group and returns the ready `PeerProcess` (``peer.url`` is
``opc.tcp://127.0.0.1:PORT/PATH``).  Stopping it kills the process group and removes the
temporary directory (image + generated server certificate).

The server is asyncua as shipped (this peer stands for "asyncua as a third-party stack"): its
defaults are kept, including those a conformance judge may well flag, e.g. it accepts every
client certificate (no trust list) and offers the X509 user token.  asyncua's `Server.init()`
takes about 2 s, so this peer starts in roughly 3 s.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .base import PeerError, PeerProcess, python_argv, python_peer_env

RUNNER = "harness.peers.run_asyncua_server"
DEFAULT_STARTUP_TIMEOUT_S = 30.0


def asyncua_version() -> str:
    """The installed asyncua version, or PeerError naming the fix."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("asyncua")
    except PackageNotFoundError:
        raise PeerError("asyncua peer: asyncua is not installed; pip install asyncua (into the harness's venv)") from None


def start_asyncua_server(
    image: dict,
    *,
    host: str = "127.0.0.1",
    cert_dir: str | Path | None = None,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> PeerProcess:
    """Start a default asyncua.Server serving `image` on `host`, port chosen by the OS; return it ready.

    `cert_dir`: where the server certificate (server-cert.der, server-key.pem) is written when
    the image lists a secured policy; default: inside the peer's temporary directory.
    """
    version = asyncua_version()
    workdir = Path(tempfile.mkdtemp(prefix="asyncua-peer-"))
    image_path = workdir / "image.json"
    image_path.write_text(json.dumps(image), encoding="utf-8")
    certs = Path(cert_dir) if cert_dir is not None else workdir / "certs"
    peer = PeerProcess(
        "asyncua",
        python_argv(RUNNER, str(image_path), "--host", host, "--port", "0", "--cert-dir", str(certs)),
        version=version,
        host=host,
        startup_timeout=startup_timeout,
        env=python_peer_env(),
        scheme="opc.tcp",
        path=image.get("endpoint_path") or "",
        on_stop=[lambda: shutil.rmtree(workdir, ignore_errors=True)],
    )
    try:
        return peer.start()
    except BaseException:
        peer.close()
        raise
