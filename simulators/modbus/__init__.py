"""Reference Modbus TCP device: the device a profile describes, with exact specification behaviour.

    from simulators.modbus import start_in_thread
    with start_in_thread(load_profile("device.yaml"), faults=["delay=100:fc=3"]) as sim:
        ...  # talk to modbus+tcp://127.0.0.1:{sim.port}

Layers: `datastore` (the four tables), `engine` (sans-io PDU in -> PDU out), `faults`
(deliberate misbehaviour), `server` (asyncio Protocol, MBAP framing).  Run it from the command
line with `python -m simulators.modbus PROFILE [--port N] [--fault NAME]...`.
"""

from .datastore import DataStore
from .engine import ModbusEngine
from .faults import Fault, FaultSyntaxError, parse_fault
from .server import ModbusSimulator, SimulatorThread, new_event_loop, start_in_thread

__all__ = [
    "DataStore",
    "Fault",
    "FaultSyntaxError",
    "ModbusEngine",
    "ModbusSimulator",
    "SimulatorThread",
    "new_event_loop",
    "parse_fault",
    "start_in_thread",
]
