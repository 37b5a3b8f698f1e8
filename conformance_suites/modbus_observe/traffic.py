"""The requests of recorded Modbus TCP traffic, each with what was outstanding and its answer.

Sans-io: `pair_requests(frames)` takes the frames `harness observe` recorded (direction "tx" is
the client device -> the simulator, "rx" the simulator's answers, `conn` names the connection)
in the order they crossed the wire, and returns one `ObservedRequest` per request frame.

A request is outstanding on its connection from the frame that carries it until the frame that
answers it (the first answer with its transaction id); `outstanding` lists the transaction ids
of the same connection that were outstanding when a request arrived.  A request the simulator
does not answer (another unit id, a protocol id other than 0) stays outstanding, as it does
for the client, which can only time it out.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from harness.codec.modbus.adu import TcpAdu, decode_tcp
from harness.codec.modbus.malformed import Malformed
from harness.codec.modbus.pdu import Request, decode_request
from harness.model import Frame
from harness.observe_modbus import TRAFFIC_SCHEMA


@dataclass
class ObservedRequest:
    conn: str
    frame: Frame
    adu: TcpAdu | Malformed
    request: Request | Malformed | None  # None when the frame itself is malformed
    outstanding: tuple[int, ...]
    response: Frame | None = None


@dataclass
class Traffic:
    """What `harness observe` recorded (the `traffic.json` it writes)."""

    listen: str
    duration_s: float
    frames: list[Frame]
    dropped_frames: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def connections(self) -> list[str]:
        return list(dict.fromkeys(f.conn for f in self.frames))


def load_traffic(path: str | Path) -> Traffic:
    """Read a traffic file; ValueError says what is wrong with it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable traffic file: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != TRAFFIC_SCHEMA:
        raise ValueError(f"{path}: not a traffic file (schema {TRAFFIC_SCHEMA!r}); `harness observe` writes one")
    try:
        frames = [Frame(**f) for f in data["frames"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: a frame lacks a field: {exc}") from None
    return Traffic(listen=data.get("listen", ""), duration_s=float(data.get("duration_s", 0)), frames=frames,
                   dropped_frames=int(data.get("dropped_frames", 0)), notes=list(data.get("notes", [])))


def pair_requests(frames: list[Frame]) -> list[ObservedRequest]:
    requests: list[ObservedRequest] = []
    waiting: dict[str, dict[int, list[ObservedRequest]]] = defaultdict(lambda: defaultdict(list))
    for frame in frames:
        adu = decode_tcp(frame.data)
        pending = waiting[frame.conn]
        if frame.direction == "tx":
            request = decode_request(adu.pdu) if isinstance(adu, TcpAdu) else None
            outstanding = tuple(sorted(tid for tid, queue in pending.items() if queue))
            observed = ObservedRequest(frame.conn, frame, adu, request, outstanding)
            requests.append(observed)
            if isinstance(adu, TcpAdu):
                pending[adu.transaction_id].append(observed)
        elif isinstance(adu, TcpAdu) and pending.get(adu.transaction_id):
            pending[adu.transaction_id].pop(0).response = frame
    return requests
