"""`harness observe`: serve a real Modbus TCP client device and record everything it sends.

The bundled simulator, loaded with the device profile, runs as a subprocess on a loopback port;
a recording relay listens where the user asked (e.g. 0.0.0.0:5020, the address an HMI or a
SCADA master is configured to poll) and forwards each connection to it, keeping every frame
both ways with its connection and timestamps.  When the duration is over (or on Ctrl-C), the
frames go to `traffic.json`, which the `modbus_observe` suite judges request by request.

The simulator answers exactly as the certified reference device does, so the client sees a
conforming server; the relay costs one loopback hop per request.  At most MAX_FRAMES frames are
kept: a client flooding for hours cannot exhaust memory, and the traffic file says how many
frames were not kept.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .model import Frame

TRAFFIC_SCHEMA = "harness.traffic/1"
MAX_FRAMES = 200_000


@dataclass
class Recording:
    """The frames of an observation, bounded; safe to append to from the relay's thread."""

    limit: int = MAX_FRAMES
    frames: list[Frame] = field(default_factory=list)
    dropped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, frame: Frame) -> None:
        with self._lock:
            if len(self.frames) < self.limit:
                self.frames.append(frame)
            else:
                self.dropped += 1

    def counts(self) -> tuple[int, int]:
        """(connections seen, requests received) so far."""
        with self._lock:
            frames = list(self.frames)
        return len({f.conn for f in frames}), sum(1 for f in frames if f.direction == "tx") + self.dropped


@dataclass
class Observation:
    listen_url: str
    simulator: str
    start: str
    end: str
    duration_s: float
    recording: Recording
    interrupted: bool

    def write(self, path: Path) -> None:
        from dataclasses import asdict

        data = {
            "schema": TRAFFIC_SCHEMA,
            "listen": self.listen_url,
            "simulator": self.simulator,
            "start": self.start,
            "end": self.end,
            "duration_s": round(self.duration_s, 3),
            "interrupted": self.interrupted,
            "dropped_frames": self.recording.dropped,
            "frames": [asdict(f) for f in self.recording.frames],
        }
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def observe_modbus(host: str, port: int, profile_path: Path, duration_s: float, *, progress=print,
                   report_every_s: float = 10.0, on_listening=None) -> Observation:
    """Serve `profile_path` on host:port for `duration_s` seconds and record the traffic.

    `progress(text)` gets the listening address and a line every `report_every_s` seconds;
    `on_listening(url)` is called once the port is bound (tests use it with port 0).  Raises
    OSError when the address cannot be bound, PeerError when the simulator does not start."""
    from .peers.simulator_peer import start_simulator_server
    from .transport.relay import RecordingRelay

    recording = Recording()
    simulator = start_simulator_server(profile_path, protocol="modbus")
    try:
        relay = RecordingRelay(simulator.host, simulator.port, recording, listen_host=host, listen_port=port)
        try:
            shown_host = f"[{host}]" if ":" in host else host
            url = f"modbus+tcp://{shown_host}:{relay.port}"
            progress(f"listening on {url} for {duration_s:g} s, serving {profile_path} "
                     f"(simulator {simulator.version}); Ctrl-C ends early")
            if on_listening is not None:
                on_listening(url)
            start_wall, start = _now(), time.monotonic()
            deadline = start + duration_s
            next_report = start + report_every_s
            interrupted = False
            try:
                while (now := time.monotonic()) < deadline:
                    time.sleep(min(0.2, deadline - now))
                    if time.monotonic() >= next_report:
                        connections, requests = recording.counts()
                        left = max(0.0, deadline - time.monotonic())
                        progress(f"  {time.monotonic() - start:5.0f} s: {connections} connection(s), {requests} request(s); {left:.0f} s left")
                        next_report += report_every_s
            except KeyboardInterrupt:
                interrupted = True
                progress("  interrupted: judging what was recorded so far")
        finally:
            relay.close()
    finally:
        simulator.close()
    return Observation(listen_url=url, simulator=f"{simulator.name} {simulator.version}", start=start_wall, end=_now(),
                       duration_s=time.monotonic() - start, recording=recording, interrupted=interrupted)
