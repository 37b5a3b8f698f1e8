"""The client stacks the harness can drive, by name, each made lazily (importing nothing until used).

    make_client("modbus-tk")  ->  a ModbusClient (harness.adapters.modbus)

A stack that is not installed raises `NotInstalled` saying how to install it, so a matrix shows
it as an ERROR cell with the reason rather than leaving a gap.
"""

from __future__ import annotations

import importlib

from .errors import NotInstalled

# name -> "module:Class"; the module imports its stack only when the class is instantiated
MODBUS_CLIENTS: dict[str, str] = {
    "pymodbus": "harness.adapters.pymodbus_client:PymodbusClient",
    "libmodbus": "harness.adapters.libmodbus_client:LibmodbusClient",
    "modbus-tk": "harness.adapters.modbus_tk_client:ModbusTkClient",
    "umodbus": "harness.adapters.umodbus_client:UmodbusClient",
    "pyModbusTCP": "harness.adapters.pymodbustcp_client:PyModbusTcpClient",
    "modbus-serial": "harness.adapters.node_clients:ModbusSerialClient",
    "jsmodbus": "harness.adapters.node_clients:JsmodbusClient",
}


OPCUA_CLIENTS: dict[str, str] = {
    "asyncua": "harness.adapters.asyncua_client:AsyncuaClient",
    "node-opcua": "harness.adapters.node_opcua_client:NodeOpcuaClient",
}


def _load(spec: str):
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise NotInstalled(f"the adapter module {module_name} is missing: {exc}") from None
    return getattr(module, class_name)


def make_client(name: str):
    """A new, unconnected client of the named stack; `NotInstalled` if the stack is missing."""
    if name in MODBUS_CLIENTS:
        return _load(MODBUS_CLIENTS[name])()
    if name in OPCUA_CLIENTS:
        return _load(OPCUA_CLIENTS[name])()
    known = ", ".join([*MODBUS_CLIENTS, *OPCUA_CLIENTS])
    raise KeyError(f"no client adapter named {name!r}; known: {known}")
