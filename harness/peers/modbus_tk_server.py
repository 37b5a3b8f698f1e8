"""The modbus-tk TCP server as a third-party peer, loaded with a device profile's data.

`start_modbus_tk_server(profile)` runs ``python -m harness.peers.run_modbus_tk_server PROFILE``
in its own process group and returns the ready `PeerProcess`.  `build_server(profile, host,
port)` is the part that turns a profile into modbus-tk objects; it runs inside the peer process.

How the profile maps onto modbus-tk 1.1.5 (checked against the installed sources):

* Server: `modbus_tk.modbus_tcp.TcpServer(port, address=host)`, modbus-tk's single-threaded
  select() server.  It binds in its own server thread (`_do_init`), so port 0 works: the runner
  waits (bounded) for the listening socket and reads the port back with getsockname().
* Unit ids: one `Slave` per profile unit id (`add_slave(unit)`, values unsigned).  A request for
  another unit id gets NO reply (modbus-tk drops it; with error_on_missing_slave=True, the
  default, as well as False).  Unit id 0 is a broadcast: writes are applied to every slave and
  nothing is answered.  modbus-tk refuses slave id 0, so a profile that lists unit 0 cannot be
  expressed: that unit id is skipped (and then only gets the broadcast behaviour).
* Tables: one block per declared table, exactly at the profile's extent (`add_block(name,
  COILS | DISCRETE_INPUTS | HOLDING_REGISTERS | ANALOG_INPUTS, start, count)`), filled from
  `table_images`.  An address outside a block gets exception 02, as the profile wants; a table
  the profile does not declare has no block, so every address of it gets exception 02.
* Function codes are modbus-tk's own set: 1, 2, 3, 4, 5, 6, 7 (always answers 0), 15, 16, 22,
  23.  Anything else, Read Device Identification (FC43) included, gets exception 01: modbus-tk
  has no device identification, so the profile's identity objects cannot be served.
  modbus-tk's FC23 reads before it writes (the spec says write first).
* modbus-tk's behaviour is not altered (no hooks are installed); its logging goes to stderr.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..installed import installed_version
from .base import DEFAULT_STARTUP_TIMEOUT_S, PeerError, PeerProcess, python_argv, python_peer_env, table_images

RUNNER = "harness.peers.run_modbus_tk_server"
INSTALL_HINT = "pip install 'protocol-harness[peers]' (or `pip install modbus-tk`)"


def modbus_tk_version() -> str:
    """The installed modbus-tk version, or "unknown" when it is not installed (the starter says so)."""
    return installed_version("modbus-tk")


def build_server(profile, host: str = "127.0.0.1", port: int = 0):
    """Profile -> an unstarted `modbus_tk.modbus_tcp.TcpServer` holding the profile's data."""
    from modbus_tk import defines
    from modbus_tk.modbus_tcp import TcpServer

    from ..codec.modbus.constants import Table

    block_type = {
        Table.COILS: defines.COILS,
        Table.DISCRETE_INPUTS: defines.DISCRETE_INPUTS,
        Table.HOLDING_REGISTERS: defines.HOLDING_REGISTERS,
        Table.INPUT_REGISTERS: defines.ANALOG_INPUTS,
    }
    server = TcpServer(port=port, address=host)
    images = table_images(profile)
    unit_ids = list(profile.modbus.unit_ids) if profile.modbus else [1]
    for unit in unit_ids:
        if not 1 <= unit <= 255:  # modbus-tk: "Invalid slave id" (0 is its broadcast address)
            continue
        slave = server.add_slave(unit)
        for table, (start, values) in images.items():
            slave.add_block(table.value, block_type[table], start, len(values))
            slave.set_values(table.value, start, list(values))
    return server


def start_modbus_tk_server(
    profile_path: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> PeerProcess:
    """Start the modbus-tk TCP server for `profile_path` (default: the example profile), ready.

    Raises PeerError when modbus-tk is not installed (the message says how to install it), when
    the profile has no modbus section, or when the server does not come up.
    """
    from ..profile import example_profile_path, load_profile

    if importlib.util.find_spec("modbus_tk") is None:
        raise PeerError(f"peer 'modbus-tk': modbus-tk is not installed; {INSTALL_HINT}")
    profile_path = Path(profile_path) if profile_path else example_profile_path()
    profile = load_profile(profile_path)  # fail here, in the caller, on a bad profile
    if profile.modbus is None:
        raise PeerError(f"peer 'modbus-tk': {profile.source} has no modbus section")
    peer = PeerProcess(
        "modbus-tk",
        python_argv(RUNNER, str(profile_path.resolve()), "--host", host, "--port", "0"),
        version=modbus_tk_version(),
        host=host,
        unit=profile.modbus.unit_id,
        startup_timeout=startup_timeout,
        env=python_peer_env(),
    )
    return peer.start()
