"""The pymodbus TCP server as a third-party peer, loaded with a device profile's data.

`start_pymodbus_server(profile)` runs ``python -m harness.peers.run_pymodbus_server PROFILE``
in its own process and returns the ready `PeerProcess`.  `build_server_config(profile)` is the
part that turns a profile into pymodbus objects; it runs inside the peer process.

How the profile maps onto pymodbus 3.16 (checked against the installed sources):

* pymodbus >= 3.12 keeps its data in `pymodbus.simulator.SimDevice` / `SimData`.  The older
  `ModbusDeviceContext` + `ModbusServerContext` + `ModbusSequentialDataBlock` still exist but
  are deprecated wrappers (they log a warning and convert to SimDevice).  We build SimDevice
  directly, with the "non-shared" 4-tuple (coils, discrete inputs, holding, input registers),
  where bits are addressed one by one.
* Address convention: `SimData(address=A)` is read at PDU address A (no offset).  The legacy
  `ModbusSequentialDataBlock(address, ...)` still carries the historical off-by-one: it becomes
  `SimData(address - 1)`, so a block meant for PDU address A must be created with A + 1 (and
  address 0 is impossible: `SimData(-1)` raises).  The fallback path for old pymodbus applies
  that +1; both paths were verified with a real FC3 read.
* Unit ids: one SimDevice per unit id in the profile (each with its own copy of the data).
* Tables: each declared table is one block covering the profile's extent.  pymodbus stores bits
  in 16-bit words, so a bit table's extent is effectively rounded out to multiples of 16, and a
  bit table the profile does not declare cannot be made absent: it becomes 16 zero bits at
  address 0.  An undeclared register table is a single invalid register.
* Device identification: `ModbusDeviceIdentification(info=profile.device_id_objects())` passed
  as the server's identity (FC43/14).
* pymodbus's strictness is left at its defaults (we observe its behaviour, we do not fix it).
"""

from __future__ import annotations

from pathlib import Path

from ..installed import installed_version
from .base import DEFAULT_STARTUP_TIMEOUT_S, PeerProcess, python_argv, python_peer_env, table_images

RUNNER = "harness.peers.run_pymodbus_server"


def pymodbus_version() -> str:
    """The installed pymodbus version, or "unknown" when it is not installed (the starter says so)."""
    return installed_version("pymodbus")


def build_server_config(profile) -> dict:
    """Profile -> keyword arguments for `pymodbus.server.ModbusTcpServer` (context, identity)."""
    from pymodbus import ModbusDeviceIdentification

    from ..codec.modbus.constants import Table

    images = table_images(profile)
    identity = ModbusDeviceIdentification(info=dict(profile.device_id_objects()))
    unit_ids = list(profile.modbus.unit_ids) if profile.modbus else [1]
    try:
        from pymodbus.simulator import DataType, SimData, SimDevice
    except ImportError:  # pymodbus < 3.12: the legacy datastore
        return {"context": _legacy_context(images, unit_ids), "identity": identity}

    def block(table: Table) -> list:
        if table not in images:
            if table.is_bit:
                return [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
            return [SimData(0, count=1, datatype=DataType.INVALID)]
        start, values = images[table]
        if table.is_bit:
            return [SimData(start, values=[bool(v) for v in values], datatype=DataType.BITS)]
        return [SimData(start, values=list(values), datatype=DataType.REGISTERS)]

    devices = [
        SimDevice(
            id=unit,
            simdata=(
                block(Table.COILS),
                block(Table.DISCRETE_INPUTS),
                block(Table.HOLDING_REGISTERS),
                block(Table.INPUT_REGISTERS),
            ),
        )
        for unit in unit_ids
    ]
    return {"context": devices, "identity": identity}


def _legacy_context(images: dict, unit_ids: list[int]):
    """ModbusServerContext for old pymodbus: blocks created at address + 1 (see module doc)."""
    from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext

    from ..codec.modbus.constants import Table

    try:
        from pymodbus.datastore import ModbusDeviceContext as DeviceContext
    except ImportError:  # pymodbus < 3.10
        from pymodbus.datastore import ModbusSlaveContext as DeviceContext  # type: ignore[no-redef]

    def block(table: Table):
        start, values = images.get(table, (0, [0]))
        if table.is_bit:
            values = [bool(v) for v in values]
        return ModbusSequentialDataBlock(start + 1, values)

    def device():
        return DeviceContext(
            co=block(Table.COILS), di=block(Table.DISCRETE_INPUTS),
            hr=block(Table.HOLDING_REGISTERS), ir=block(Table.INPUT_REGISTERS),
        )

    return ModbusServerContext(devices={unit: device() for unit in unit_ids}, single=False)


def start_pymodbus_server(
    profile_path: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> PeerProcess:
    """Start the pymodbus TCP server for `profile_path` (default: the example profile), ready."""
    from ..profile import example_profile_path, load_profile

    profile_path = Path(profile_path) if profile_path else example_profile_path()
    profile = load_profile(profile_path)  # fail here, in the caller, on a bad profile
    unit = profile.modbus.unit_id if profile.modbus else 1
    peer = PeerProcess(
        "pymodbus",
        python_argv(RUNNER, str(Path(profile_path).resolve()), "--host", host, "--port", "0"),
        version=pymodbus_version(),
        host=host,
        unit=unit,
        startup_timeout=startup_timeout,
        env=python_peer_env(),
    )
    return peer.start()
