"""The Node.js Modbus TCP servers (modbus-serial, jsmodbus) as third-party peers.

`start_modbus_serial_server(profile)` and `start_jsmodbus_server(profile)` write the profile's
image (`table_images`, unit ids, device identification objects) to a temporary JSON file, run
``node harness/peers/node_modbus_servers.js STACK IMAGE.json --host H --port P --node-modules DIR``
in its own process group and return the ready `PeerProcess`.  Stopping it kills the process
group and removes the temporary directory.  `node_modbus_image(profile)` builds the image.

Installation: both packages are pinned in the project's package.json / package-lock.json and
installed into ``<project>/node_modules`` by ``scripts/install-node-packages.sh`` (``make
setup``); ``HARNESS_NODE_MODULES`` points elsewhere and ``HARNESS_NODE`` names the node binary
(as for the node-opcua peer).  A missing node or package gives a `PeerError` naming that script.

How the profile maps onto each stack, and what it cannot express (these are the stacks' real
behaviours, reported by the conformance suite, not hidden):

modbus-serial 8.0.25 (`ServerTCP(vector, {host, port, unitID})`):

* ServerTCP listens on ``options.port || 502``: port 0 is impossible, so the starter passes
  `free_port()` (a small race: if another process takes the port first, the start fails with
  EADDRINUSE and is retried on a new port, at most 3 times).
* The vector holds the image: each table exactly at the profile's extent; an address outside it
  throws ``{modbusErrorCode: 2}``, which modbus-serial answers with exception 02.  It calls the
  vector once per address, so a FC15/FC16 that runs past the extent has already written the
  addresses before the first bad one; and for FC16 it sends the normal reply as soon as the
  first register is written, so a FC16 that crosses the end of the extent is answered as a
  success (modbus-serial 8.0.25, `_handleWriteMultipleRegisters`).  The vector's
  readDeviceIdentification returns the profile's identity objects (modbus-serial builds the
  FC43/14 reply itself).
* modbus-serial silently drops a request whose PDU is shorter than it expects (a bare function
  code such as FC07, a FC15/FC16 whose byte count does not match): no reply.
* Unit ids: modbus-serial serves one unit id, or all of them (unitID 255).  A profile with one
  unit id in 1..254 gets exactly that (other unit ids get no reply, modbus-serial drops them);
  with several unit ids, or unit 0, every unit id is answered with the same data.

jsmodbus 5.0.0 (`new Modbus.server.TCP(netServer, {coils, discrete, holding, input})`):

* The net.Server binds port 0; the port is read back with ``server.address().port``.
* The tables are Buffers that always start at address 0 (2 bytes per register, 1 bit per coil),
  sized to the end of the profile's extent: addresses below a table's start exist (and read 0),
  coils and discrete inputs exist up to the next multiple of 8, and jsmodbus does not refuse
  reads past the end of a buffer: it answers with the part that exists (a short reply).  A
  table the profile does not declare is an empty buffer.
  Writes past the end are not refused either: FC15 answers a normal reply and writes what fits;
  FC05/FC06 one address past the end throw a RangeError inside jsmodbus (see below).
* jsmodbus ignores the unit id: every unit id gets an answer (with its unit id echoed) and the
  same data.  It has no data for Read Device Identification: FC43/14 gets exception 01 (with a
  stray MEI-type byte after it) unless the application builds the reply itself, which this peer
  does not.
* A request jsmodbus's parser does not know (FC07, FC22, FC23, an undefined function code, a
  quantity out of range) is never consumed: no reply, and every later request on that
  connection waits behind it.  Pipelined requests are answered last-in first-out.

Both: an exception thrown inside the library while it handles a request would end node (stock
jsmodbus 5.0.0 does this on a FC05 or FC06 one address past the end of its buffer); the script
logs it on stderr ("uncaught exception in STACK") and keeps serving, so the client sees no reply
to that request instead of a dead server for the rest of a run (see node_modbus_servers.js).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .. import node_runtime
from .base import DEFAULT_STARTUP_TIMEOUT_S, PeerError, PeerProcess, free_port, table_images

SCRIPT = Path(__file__).with_name("node_modbus_servers.js")
INSTALL_HINT = node_runtime.INSTALL_HINT
MIN_NODE_MAJOR = 18
PORT_ATTEMPTS = 3  # modbus-serial only: retries when the free port was taken before node bound it


def node_binary(peer: str) -> str:
    """The node executable (``HARNESS_NODE`` or ``node`` on PATH, Node >= 18); PeerError otherwise."""
    try:
        return node_runtime.node_binary(MIN_NODE_MAJOR)
    except node_runtime.NodeMissing as exc:
        raise PeerError(f"peer {peer!r}: {exc}") from None


def node_modules_dir(node_modules: str | Path | None = None) -> Path:
    """The argument, ``HARNESS_NODE_MODULES``, or <project>/node_modules."""
    return node_runtime.node_modules_dir(node_modules)


def _package_version(package: str, node_modules: str | Path | None) -> str:
    try:
        return node_runtime.npm_package_version(package, node_modules)
    except node_runtime.NodeMissing as exc:
        raise PeerError(f"peer {package!r}: {exc}") from None


def modbus_serial_version(node_modules: str | Path | None = None) -> str:
    """The installed modbus-serial version (its package.json), or PeerError naming the fix."""
    return _package_version("modbus-serial", node_modules)


def jsmodbus_version(node_modules: str | Path | None = None) -> str:
    """The installed jsmodbus version (its package.json), or PeerError naming the fix."""
    return _package_version("jsmodbus", node_modules)


def node_modbus_image(profile) -> dict:
    """The JSON image node_modbus_servers.js loads: unit ids, tables, device identification."""
    tables = {
        table.value: {"start": start, "count": len(values), "values": list(values)}
        for table, (start, values) in table_images(profile).items()
    }
    return {
        "unit_ids": list(profile.modbus.unit_ids) if profile.modbus else [1],
        "tables": tables,
        "device_id": {str(oid): text for oid, text in profile.device_id_objects().items()},
    }


def _start(
    stack: str,
    version: str,
    profile_path,
    host: str,
    startup_timeout: float,
    node_modules,
    fixed_port: bool,
    stock: bool = False,
) -> PeerProcess:
    from ..profile import example_profile_path, load_profile

    node = node_binary(stack)
    profile = load_profile(Path(profile_path) if profile_path else example_profile_path())
    if profile.modbus is None:
        raise PeerError(f"peer {stack!r}: {profile.source} has no modbus section")
    workdir = Path(tempfile.mkdtemp(prefix=f"{stack}-peer-"))
    image_path = workdir / "image.json"
    image_path.write_text(json.dumps(node_modbus_image(profile)), encoding="utf-8")
    modules = str(node_modules_dir(node_modules).resolve())
    attempts = PORT_ATTEMPTS if fixed_port else 1
    for attempt in range(1, attempts + 1):
        port = free_port(host) if fixed_port else 0
        argv = [node, str(SCRIPT), stack, str(image_path), "--host", host, "--port", str(port), "--node-modules", modules]
        if stock:
            argv.append("--stock")
        last = attempt == attempts
        peer = PeerProcess(
            stack,
            argv,
            version=version,
            host=host,
            unit=profile.modbus.unit_id,
            startup_timeout=startup_timeout,
            on_stop=[lambda: shutil.rmtree(workdir, ignore_errors=True)] if last else [],
        )
        try:
            return peer.start()
        except PeerError as exc:
            if last or "EADDRINUSE" not in str(exc):
                shutil.rmtree(workdir, ignore_errors=True)
                raise
        except BaseException:
            peer.close()
            shutil.rmtree(workdir, ignore_errors=True)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def start_modbus_serial_server(
    profile_path: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
    node_modules: str | Path | None = None,
) -> PeerProcess:
    """Start modbus-serial's ServerTCP for `profile_path` (default: the example profile), ready."""
    version = modbus_serial_version(node_modules)
    return _start("modbus-serial", version, profile_path, host, startup_timeout, node_modules, fixed_port=True)


def start_jsmodbus_server(
    profile_path: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
    node_modules: str | Path | None = None,
    stock: bool = False,
) -> PeerProcess:
    """Start jsmodbus's TCP server for `profile_path` (default: the example profile), ready.
    `stock`: without the peer script's catch of uncaught exceptions, so a request that throws
    inside jsmodbus ends the server as it would in a deployment (for robustness runs)."""
    version = jsmodbus_version(node_modules)
    return _start("jsmodbus", version, profile_path, host, startup_timeout, node_modules, fixed_port=False, stock=stock)
