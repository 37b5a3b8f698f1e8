"""The pyModbusTCP server as a third-party peer, loaded with a device profile's data.

`start_pymodbustcp_server(profile)` runs ``python -m harness.peers.run_pymodbustcp_server
PROFILE`` in its own process group and returns the ready `PeerProcess`.  `build_server(profile,
host, port)` is the part that turns a profile into pyModbusTCP objects; it runs inside the peer.

How the profile maps onto pyModbusTCP 0.3.1 (checked against the installed sources):

* Server: ``pyModbusTCP.server.ModbusServer(host, port, no_block=True, data_bank=...,
  device_id=...)``, a socketserver.ThreadingTCPServer (one thread per connection).  It binds in
  start(), so port 0 works; the port is read back from the socketserver's ``server_address``.
* Address space: a `DataBank` is four flat lists that always start at address 0, one list per
  table, sized here ``start + count`` of the profile's extent (an undeclared table: size 0, so
  every address of it gets exception 02).  Addresses past the extent get exception 02 as the
  profile wants; addresses BELOW a table's start cannot be refused: they exist and read 0.
  (The example profile starts every table at 0, so it is expressed exactly.)
* Unit ids: pyModbusTCP ignores the MBAP unit id: it answers every unit id, 0 included, with
  the same data.  The profile's unit id list cannot be expressed.
* Function codes: pyModbusTCP's own set: 1, 2, 3, 4, 5, 6, 15, 16, 23 and 43/14 (Read Device
  Identification); anything else gets exception 01.  The device identification objects come
  from the profile (`DeviceIdentification`, object ids 0..6 plus the profile's extra objects).
* pyModbusTCP closes the connection on an MBAP header it dislikes (protocol id other than 0,
  length field below 3, i.e. a PDU of a bare function code): the request is not answered and any
  request pipelined behind it on that connection is lost.
* pyModbusTCP's behaviour is not altered: the stock DataHandler and DataBank are used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..installed import installed_version
from .base import DEFAULT_STARTUP_TIMEOUT_S, PeerError, PeerProcess, python_argv, python_peer_env, table_images

RUNNER = "harness.peers.run_pymodbustcp_server"
INSTALL_HINT = "pip install 'protocol-harness[peers]' (or `pip install pyModbusTCP`)"


def pymodbustcp_version() -> str:
    """The installed pyModbusTCP version, or "unknown" when it is not installed (the starter says so)."""
    return installed_version("pyModbusTCP")


def build_server(profile, host: str = "127.0.0.1", port: int = 0):
    """Profile -> an unstarted ``ModbusServer(no_block=True)`` holding the profile's data."""
    from pyModbusTCP.server import DataBank, DeviceIdentification, ModbusServer

    from ..codec.modbus.constants import Table

    images = table_images(profile)

    def size(table: Table) -> int:
        if table not in images:
            return 0
        start, values = images[table]
        return start + len(values)

    bank = DataBank(
        coils_size=size(Table.COILS),
        d_inputs_size=size(Table.DISCRETE_INPUTS),
        h_regs_size=size(Table.HOLDING_REGISTERS),
        i_regs_size=size(Table.INPUT_REGISTERS),
    )
    setters = {
        Table.COILS: lambda a, v: bank.set_coils(a, [bool(x) for x in v]),
        Table.DISCRETE_INPUTS: lambda a, v: bank.set_discrete_inputs(a, [bool(x) for x in v]),
        Table.HOLDING_REGISTERS: bank.set_holding_registers,
        Table.INPUT_REGISTERS: bank.set_input_registers,
    }
    for table, (start, values) in images.items():
        if values and not setters[table](start, list(values)):
            raise ValueError(f"pyModbusTCP DataBank refused {table.value} at {start} (+{len(values)})")
    device_id = DeviceIdentification(
        objects_id={oid: text.encode("utf-8") for oid, text in profile.device_id_objects().items()}
    )
    return ModbusServer(host=host, port=port, no_block=True, data_bank=bank, device_id=device_id)


def start_pymodbustcp_server(
    profile_path: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> PeerProcess:
    """Start the pyModbusTCP server for `profile_path` (default: the example profile), ready.

    Raises PeerError when pyModbusTCP is not installed (the message says how to install it),
    when the profile has no modbus section, or when the server does not come up.
    """
    from ..profile import example_profile_path, load_profile

    if importlib.util.find_spec("pyModbusTCP") is None:
        raise PeerError(f"peer 'pymodbustcp': pyModbusTCP is not installed; {INSTALL_HINT}")
    profile_path = Path(profile_path) if profile_path else example_profile_path()
    profile = load_profile(profile_path)  # fail here, in the caller, on a bad profile
    if profile.modbus is None:
        raise PeerError(f"peer 'pymodbustcp': {profile.source} has no modbus section")
    peer = PeerProcess(
        "pymodbustcp",
        python_argv(RUNNER, str(profile_path.resolve()), "--host", host, "--port", "0"),
        version=pymodbustcp_version(),
        host=host,
        unit=profile.modbus.unit_id,
        startup_timeout=startup_timeout,
        env=python_peer_env(),
    )
    return peer.start()
