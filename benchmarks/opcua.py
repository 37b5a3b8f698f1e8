"""OPC UA simulator benchmark: start-up time and reads/s beside a default asyncua server and node-opcua.

    .venv/bin/python benchmarks/opcua.py [--seconds 3]

Start-up (in this process, from the start call to a Hello acknowledged on the endpoint):
- the simulator with an empty address-space cache (first start: builds the cache),
- the simulator with the cache (every later start; the goal is under 300 ms),
- a default `asyncua.Server` (init + start, what a plain asyncua server costs every time).
node-opcua starts as a subprocess, so its figure (process start to an acknowledged Hello)
includes Node's own start-up; the simulator's subprocess figure is printed beside it.

Reads/s: every server runs as a subprocess serving the example device; one asyncua client in
this process sends Read requests back to back for `--seconds`, one node per Read and 100 nodes
per Read.  Ratios against the default asyncua server are printed; absolute numbers depend on
the machine, the ratios much less.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asyncua import Client, Server, ua  # noqa: E402

from harness.peers.asyncua_server import start_asyncua_server  # noqa: E402
from harness.peers.base import PeerProcess, opcua_probe, python_argv, python_peer_env  # noqa: E402
from harness.peers.node_opcua_server import start_node_opcua_server  # noqa: E402
from harness.peers.opcua_image import image_from_profile  # noqa: E402
from harness.profile import example_profile_path, load_profile  # noqa: E402

PROFILE = load_profile(example_profile_path())
NAMESPACE = PROFILE.opcua.namespace


def hello_acknowledged(host: str, port: int, url: str) -> None:
    opcua_probe(host, port, timeout=2.0, endpoint_url=url)


async def simulator_start_s(cache_dir: str) -> float:
    os.environ["HARNESS_CACHE_DIR"] = cache_dir
    from simulators.device import DeviceSimulator

    t0 = time.perf_counter()
    device = DeviceSimulator(PROFILE, ("opcua",))
    await device.start()
    url = device.urls["opcua"]
    await asyncio.to_thread(hello_acknowledged, "127.0.0.1", device.opcua.port, url)
    elapsed = time.perf_counter() - t0
    await device.stop()
    return elapsed


async def default_asyncua_start_s() -> float:
    t0 = time.perf_counter()
    server = Server()
    await server.init()
    server.set_endpoint("opc.tcp://127.0.0.1:0/bench")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    await server.start()
    port = server.bserver.port
    await asyncio.to_thread(hello_acknowledged, "127.0.0.1", port, f"opc.tcp://127.0.0.1:{port}/bench")
    elapsed = time.perf_counter() - t0
    await server.stop()
    return elapsed


def start_simulator_process() -> PeerProcess:
    argv = [sys.executable, "-m", "harness.cli", "simulate", str(example_profile_path()), "--protocol", "opcua"]
    peer = PeerProcess("simulator", argv, scheme="opc.tcp", env=python_peer_env(), startup_timeout=60)
    return peer.start()


async def reads_per_second(url: str, nodes_per_read: int, seconds: float) -> float:
    async with Client(url, timeout=10) as client:
        ns = await client.get_namespace_index(NAMESPACE)
        ids = [ua.NodeId.from_string(f"ns={ns};{p.node_id}") for p in PROFILE.points]
        params = ua.ReadParameters()
        for i in range(nodes_per_read):
            item = ua.ReadValueId()
            item.NodeId = ids[i % len(ids)]
            item.AttributeId = ua.AttributeIds.Value
            params.NodesToRead.append(item)
        for _ in range(20):  # warm-up
            await client.uaclient.read(params)
        count, deadline = 0, time.perf_counter() + seconds
        t0 = time.perf_counter()
        while time.perf_counter() < deadline:
            results = await client.uaclient.read(params)
            count += 1
        if not all(r.StatusCode.is_good() for r in results):
            raise RuntimeError(f"{url}: reads did not all succeed: {[r.StatusCode for r in results][:5]}")
        return count / (time.perf_counter() - t0)


def subprocess_start_s(start) -> tuple[float, PeerProcess]:
    t0 = time.perf_counter()
    peer = start()
    return time.perf_counter() - t0, peer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each reads/s measurement")
    parser.add_argument("--starts", type=int, default=5, help="warm simulator starts to take the median of")
    args = parser.parse_args()

    print("Start-up to an acknowledged Hello (in process):")
    cold_dir = tempfile.mkdtemp(prefix="aspace-cold-")
    cold = asyncio.run(simulator_start_s(cold_dir))
    warm = statistics.median(asyncio.run(simulator_start_s(cold_dir)) for _ in range(args.starts))
    default = statistics.median(asyncio.run(default_asyncua_start_s()) for _ in range(3))
    print(f"  simulator, first start (builds cache)  {cold * 1000:8.0f} ms")
    print(f"  simulator, with cache (median of {args.starts})    {warm * 1000:8.0f} ms   (goal: < 300 ms)")
    print(f"  default asyncua Server                 {default * 1000:8.0f} ms   simulator/asyncua = {warm / default:.2f}x the time")

    image = image_from_profile(PROFILE)
    servers = {}
    print("Start-up as a subprocess (process start to an acknowledged Hello):")
    for name, start in (("simulator", start_simulator_process), ("asyncua", lambda: start_asyncua_server(image)),
                        ("node-opcua", lambda: start_node_opcua_server(image))):
        try:
            elapsed, peer = subprocess_start_s(start)
        except Exception as exc:  # noqa: BLE001 - a missing peer is reported, the rest still runs
            print(f"  {name:12s} not started: {exc}".splitlines()[0])
            continue
        servers[name] = peer
        print(f"  {name:12s} {elapsed * 1000:8.0f} ms")

    try:
        print(f"Reads/s, {args.seconds:g} s each, one asyncua client:")
        rates: dict[tuple[str, int], float] = {}
        for n in (1, 100):
            for name, peer in servers.items():
                rates[(name, n)] = asyncio.run(reads_per_second(peer.url, n, args.seconds))
            base = rates.get(("asyncua", n))
            line = "  ".join(f"{name} {rates[(name, n)]:7.0f}/s" for name in servers)
            ratio = f"   simulator/asyncua = {rates[('simulator', n)] / base:.2f}x" if base and ("simulator", n) in rates else ""
            print(f"  {n:3d} node(s) per Read:  {line}{ratio}")
    finally:
        for peer in servers.values():
            peer.close()


if __name__ == "__main__":
    main()
