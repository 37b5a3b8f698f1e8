"""One simulated device with several protocol faces over one data model, on one event loop.

    with start_device_in_thread(profile, protocols=("modbus", "opcua")) as device:
        device.urls["modbus"]   # modbus+tcp://127.0.0.1:PORT
        device.urls["opcua"]    # opc.tcp://127.0.0.1:PORT/PATH

The faces share the Modbus tables through a `DeviceModel`: a value written through Modbus is
the value OPC UA reads and reports in subscriptions, with the profile's scale and types, and
the reverse for writable points.  `harness simulate --protocol all` serves this.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

from harness.profile import Profile, load_profile

from .device_model import DeviceModel
from .modbus.datastore import DataStore
from .modbus.faults import Fault
from .loop_thread import serve_in_thread, stop_thread
from .modbus.server import ModbusSimulator

PROTOCOLS = ("modbus", "opcua")


class DeviceSimulator:
    def __init__(self, profile: Profile | str | Path, protocols: Sequence[str] = PROTOCOLS, *,
                 host: str = "127.0.0.1", modbus_port: int = 0, opcua_port: int = 0,
                 faults: Sequence[Fault | str] = (), cert_dir: Path | None = None):
        if not isinstance(profile, Profile):
            profile = load_profile(profile)
        unknown = set(protocols) - set(PROTOCOLS)
        if unknown:
            raise ValueError(f"unknown protocol(s) {', '.join(sorted(unknown))}; this device speaks {', '.join(PROTOCOLS)}")
        for protocol in protocols:
            if getattr(profile, protocol) is None:
                raise ValueError(f"{profile.source}: the profile has no {protocol} section to simulate")
        self.profile = profile
        self.protocols = tuple(protocols)
        self.store = DataStore.from_profile(profile)
        self.model = DeviceModel(profile, self.store)
        self.modbus: ModbusSimulator | None = None
        self.opcua = None
        ua_faults = [f for f in faults if isinstance(f, str) and f.startswith("ua-")]
        modbus_faults = [f for f in faults if f not in ua_faults]
        if "modbus" in protocols:
            self.modbus = ModbusSimulator(profile, modbus_faults, host, modbus_port, store=self.store)
        if "opcua" in protocols:
            from .opcua.server import OpcuaSimulator  # asyncua is a heavy import: only when served

            self.opcua = OpcuaSimulator(profile, self.model, host, opcua_port, cert_dir=cert_dir, faults=ua_faults)

    @property
    def urls(self) -> dict[str, str]:
        urls = {}
        if self.modbus is not None:
            urls["modbus"] = self.modbus.url
        if self.opcua is not None:
            urls["opcua"] = self.opcua.url
        return urls

    async def start(self) -> None:
        if self.modbus is not None:
            await self.modbus.start()
        if self.opcua is not None:
            try:
                await self.opcua.start()
            except BaseException:
                if self.modbus is not None:
                    await self.modbus.stop()
                raise

    async def stop(self) -> None:
        if self.opcua is not None:
            await self.opcua.stop()
        if self.modbus is not None:
            await self.modbus.stop()


class DeviceThread:
    """A device simulator serving from its own thread and loop; `stop()` ends and joins it."""

    def __init__(self, device: DeviceSimulator, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        self.device = device
        self.loop = loop
        self.thread = thread

    @property
    def urls(self) -> dict[str, str]:
        return self.device.urls

    @property
    def model(self) -> DeviceModel:
        return self.device.model

    def stop(self, timeout: float = 10.0) -> None:
        stop_thread(self.loop, self.thread, timeout)

    def __enter__(self) -> DeviceThread:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_device_in_thread(profile: Profile | str | Path, protocols: Sequence[str] = PROTOCOLS, *,
                           timeout: float = 30.0, **options) -> DeviceThread:
    """Start a device simulator in a daemon thread; returns once every face listens."""
    device = DeviceSimulator(profile, protocols, **options)
    loop, thread = serve_in_thread(device, "device-simulator", timeout)
    return DeviceThread(device, loop, thread)
