"""The Modbus client interface every Modbus adapter implements (synchronous, one request at a time).

Addresses are PDU addresses (0-based, Application Protocol V1.1b3 §4.4).  Results are plain
Python values: lists of bool for bit tables, lists of int (0..65535) for registers.  Every call
has the timeout given to `connect`; a Modbus exception response raises `ModbusException` with
its code, everything else one of the other `harness.adapters.errors` types.

    client = make_client("pymodbus")        # harness.adapters.registry
    client.connect("127.0.0.1", 5020, unit=1, timeout=2.0)
    try:
        client.read_holding_registers(0, 10)
    finally:
        client.close()
"""

from __future__ import annotations

from typing import Protocol


class ModbusClient(Protocol):
    name: str  # the stack, e.g. "pymodbus"
    version: str  # its version, as installed

    def connect(self, host: str, port: int, unit: int = 1, timeout: float = 2.0) -> None: ...

    def close(self) -> None: ...

    def read_coils(self, address: int, count: int) -> list[bool]: ...

    def read_discrete_inputs(self, address: int, count: int) -> list[bool]: ...

    def read_holding_registers(self, address: int, count: int) -> list[int]: ...

    def read_input_registers(self, address: int, count: int) -> list[int]: ...

    def write_coil(self, address: int, value: bool) -> None: ...

    def write_register(self, address: int, value: int) -> None: ...

    def write_coils(self, address: int, values: list[bool]) -> None: ...

    def write_registers(self, address: int, values: list[int]) -> None: ...

    def mask_write_register(self, address: int, and_mask: int, or_mask: int) -> None: ...

    def read_write_registers(self, read_address: int, read_count: int, write_address: int, values: list[int]) -> list[int]: ...

    def read_device_identification(self, read_code: int = 1, object_id: int = 0) -> dict[int, bytes]:
        """FC43/14: the objects the device returns, following 'more follows' for stream access."""
        ...
