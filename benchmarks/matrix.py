"""Matrix benchmark: wall time of the full Modbus matrix, and each client adapter's overhead.

    .venv/bin/python benchmarks/matrix.py [--reads 2000] [--skip-matrix]

1. Runs `harness matrix --protocol modbus` (every client x every server, plus client-side
   conformance) as a user would and prints its wall time.
2. For every Modbus client stack, reads 10 holding registers from the bundled simulator
   `--reads` times through the adapter and the same number of times calling the stack directly
   (for the node stacks: a loop timed inside node, so the difference is the bridge), in the same
   run, and prints the per-call times and the overhead ratio adapter / direct.
"""

from __future__ import annotations

import argparse
import ctypes
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.adapters.registry import MODBUS_CLIENTS, make_client  # noqa: E402
from harness.peers.simulator_peer import start_simulator_server  # noqa: E402

ADDRESS, COUNT = 0, 10


def per_call_us(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def direct_caller(name: str, host: str, port: int, adapter):
    """A zero-argument function reading the registers with the stack itself; and a closer."""
    if name == "pymodbus":
        from pymodbus.client import ModbusTcpClient

        client = ModbusTcpClient(host, port=port, timeout=2, retries=0)
        client.connect()
        return (lambda: client.read_holding_registers(ADDRESS, count=COUNT, device_id=1)), client.close
    if name == "modbus-tk":
        import modbus_tk.defines as cst
        from modbus_tk.modbus_tcp import TcpMaster

        master = TcpMaster(host, port, timeout_in_sec=2)
        return (lambda: master.execute(1, cst.READ_HOLDING_REGISTERS, ADDRESS, COUNT)), master.close
    if name == "umodbus":
        from umodbus.client import tcp

        sock = socket.create_connection((host, port), timeout=2)
        return (lambda: tcp.send_message(tcp.read_holding_registers(slave_id=1, starting_address=ADDRESS, quantity=COUNT), sock)), sock.close
    if name == "pyModbusTCP":
        from pyModbusTCP.client import ModbusClient

        client = ModbusClient(host=host, port=port, auto_open=True, timeout=2)
        return (lambda: client.read_holding_registers(ADDRESS, COUNT)), client.close
    if name == "libmodbus":
        # the same library through ctypes, without the adapter's checks and error mapping
        buffer = (ctypes.c_uint16 * COUNT)()
        lib, ctx = adapter._lib, adapter._context()
        return (lambda: lib.modbus_read_registers(ctx, ADDRESS, COUNT, buffer)), (lambda: None)
    return None, None


def measure_stacks(reads: int) -> None:
    with start_simulator_server() as sim:
        rounds = 15
        batch = max(100, reads // rounds)
        print(f"Adapter overhead, {rounds} alternating rounds of {batch} reads of {COUNT} holding registers from the "
              f"simulator; the best round of each (the least disturbed by other work on the machine):")
        print(f"  {'stack':14s} {'direct us':>10s} {'adapter us':>11s} {'ratio':>7s}")
        for name in MODBUS_CLIENTS:
            try:
                adapter = make_client(name)
                adapter.connect(sim.host, sim.port, unit=1, timeout=2.0)
            except Exception as exc:  # noqa: BLE001 - a missing stack is reported, the rest still runs
                print(f"  {name:14s} not measured: {exc}")
                continue
            try:
                via_adapter = lambda: adapter.read_holding_registers(ADDRESS, COUNT)  # noqa: E731
                direct, close = direct_caller(name, sim.host, sim.port, adapter)
                adapter_times, direct_times = [], []
                for _ in range(rounds):
                    adapter_times.append(per_call_us(via_adapter, batch))
                    if direct is not None:
                        direct_times.append(per_call_us(direct, batch))
                    else:  # node stacks: the loop runs inside node
                        direct_times.append(adapter.time_direct("read_holding_registers", {"address": ADDRESS, "count": COUNT}, batch)["per_call_us"])
                if close is not None:
                    close()
                a, d = min(adapter_times), min(direct_times)
                print(f"  {name:14s} {d:10.1f} {a:11.1f} {a / d:6.2f}x")
            finally:
                adapter.close()


def measure_matrix() -> None:
    out = Path(tempfile.mkdtemp(prefix="matrix-bench-"))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "matrix", "--protocol", "modbus", "--out", str(out)],
                          capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - t0
    summary = next((line for line in proc.stdout.splitlines() if " passed" in line or " failed" in line), "")
    print(f"Full Modbus matrix (7 clients x 8 servers, 9 scenarios, plus client-side conformance, -n 2): "
          f"{elapsed:.1f} s wall, exit code {proc.returncode}; {summary.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--skip-matrix", action="store_true", help="only the adapter overhead")
    args = parser.parse_args()
    if not args.skip_matrix:
        measure_matrix()
    measure_stacks(args.reads)


if __name__ == "__main__":
    main()
