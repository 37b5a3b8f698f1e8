"""Write evidence frames as a classic libpcap file that Wireshark/tshark decodes (stdlib only).

The harness records application payloads (a Modbus ADU, an MQTT packet, ...), not raw packets,
so this module synthesises the IP and TCP headers around them:

- link type LINKTYPE_RAW (101): each record is a bare IPv4 or IPv6 packet, no Ethernet header;
- one TCP connection per `CaptureConnection`, opened with SYN / SYN-ACK / ACK and, when the
  connection was closed, ended with FIN / FIN-ACK / ACK, so each one is a single `tcp.stream`;
- sequence and acknowledgement numbers advance with the payload, IP and TCP checksums are
  correct, payloads longer than one MSS (1460 bytes) are split into segments, and a pure ACK
  is inserted when one side has sent a lot without an answer, so Wireshark's TCP analysis has
  nothing to flag (no lost segments, retransmissions, dup ACKs or full windows).

`write_pcap` returns, per case id, the pcap frame numbers (1-based, as Wireshark counts them)
of the packets that belong to the case, so a report can cite "capture.pcap frames 12-18".

Frames are duck-typed: a `harness.model.Frame` or its dict form (`direction`, `t_wall`,
`t_mono`, `hex`, `conn`).  "tx" travels client -> server and "rx" server -> client.  This module
does not import `harness.model`, so the transport layer keeps to its allowed imports.
"""

from __future__ import annotations

import ipaddress
import re
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LINKTYPE_RAW = 101
PCAP_MAGIC_US = 0xA1B2C3D4
SNAPLEN = 65535
MSS = 1460
WINDOW = 65535
# Ack the peer's data before it has this much outstanding, well under WINDOW, so Wireshark never
# sees a full window even when a case floods the device with requests and gets no answers.
_ACK_EVERY = 32768
_SYNTHETIC_CLIENT_PORT = 60000
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?")

_FIN, _SYN, _PSH, _ACK = 0x01, 0x02, 0x08, 0x10

Address = tuple[str, int]


@dataclass
class CaptureConnection:
    """One TCP connection and the payloads it carried, in order.

    `case_id` tags every frame with the case it belongs to; `frame_case_ids`, when given,
    tags frame by frame instead (same length as `frames`), for connections shared by cases.
    """

    client: Address
    server: Address
    frames: list[Any] = field(default_factory=list)
    closed: bool = True
    case_id: str = ""
    frame_case_ids: list[str] | None = None

    def case_of(self, index: int) -> str:
        if self.frame_case_ids is not None and index < len(self.frame_case_ids):
            return self.frame_case_ids[index] or self.case_id
        return self.case_id


def _get(frame: Any, name: str, default: Any = None) -> Any:
    if isinstance(frame, Mapping):
        return frame.get(name, default)
    return getattr(frame, name, default)


def _payload(frame: Any) -> bytes:
    text = _get(frame, "hex", "") or ""
    try:
        return bytes.fromhex(text)
    except ValueError:
        # Evidence is what the harness saw; a corrupt hex string should not cost the capture.
        return b""


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def parse_conn(text: str) -> tuple[Address, Address] | None:
    """Parse "127.0.0.1:40001->127.0.0.1:5020" (IPv6 as "[::1]:40001"); None if it is not that.

    A host name instead of an address maps to a stable stand-in in 192.0.2.0/24."""

    def endpoint(part: str) -> Address:
        host, sep, port = part.strip().rpartition(":")
        if not sep:
            raise ValueError(part)
        host = host.strip("[]")
        if host == "localhost":
            host = "127.0.0.1"
        try:
            return str(ipaddress.ip_address(host)), int(port)
        except ValueError:
            if not _HOSTNAME.fullmatch(host):
                raise
        # A DNS name (the target as the user wrote it): keep the connection, and stand in a
        # documentation address (RFC 5737) that is stable for the name.
        return f"192.0.2.{zlib.crc32(host.lower().encode()) % 254 + 1}", int(port)

    left, sep, right = (text or "").partition("->")
    if not sep:
        return None
    try:
        client, server = endpoint(left), endpoint(right)
    except ValueError:
        return None
    if not (0 <= client[1] <= 0xFFFF and 0 <= server[1] <= 0xFFFF):
        return None
    return client, server


class _Packets:
    """Builds the packets of one connection: (time in µs, order, bytes, case id)."""

    def __init__(self, conn: CaptureConnection, client: Address, server: Address):
        self.conn = conn
        self.addr = {True: client, False: server}  # keyed by "sent by the client"
        self.ip = {k: ipaddress.ip_address(v[0]) for k, v in self.addr.items()}
        seed = f"{client}{server}".encode()
        self.seq = {True: zlib.crc32(seed) & 0x7FFFFFFF, False: zlib.crc32(seed[::-1]) & 0x7FFFFFFF}
        self.unacked = {True: 0, False: 0}
        self.ip_id = {True: 1, False: 1}
        self.out: list[tuple[int, bytes, str]] = []

    def _emit(self, us: int, from_client: bool, flags: int, payload: bytes, case_id: str, options: bytes = b"") -> None:
        src, dst = self.addr[from_client], self.addr[not from_client]
        src_ip, dst_ip = self.ip[from_client], self.ip[not from_client]
        ack = self.seq[not from_client] if flags & _ACK else 0
        offset = (20 + len(options)) // 4
        tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], self.seq[from_client], ack, offset << 4, flags, WINDOW, 0, 0)
        segment = tcp + options + payload
        if src_ip.version == 4:
            pseudo = struct.pack("!4s4sBBH", src_ip.packed, dst_ip.packed, 0, 6, len(segment))
        else:
            pseudo = struct.pack("!16s16sI3xB", src_ip.packed, dst_ip.packed, len(segment), 6)
        csum = _checksum(pseudo + segment)
        segment = segment[:16] + struct.pack("!H", csum) + segment[18:]
        if src_ip.version == 4:
            header = struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), self.ip_id[from_client] & 0xFFFF,
                0x4000, 64, 6, 0, src_ip.packed, dst_ip.packed,
            )
            header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        else:
            header = struct.pack("!IHBB16s16s", 0x60000000, len(segment), 6, 64, src_ip.packed, dst_ip.packed)
        self.ip_id[from_client] += 1
        self.out.append((us, header + segment, case_id))
        advance = len(payload) + (1 if flags & (_SYN | _FIN) else 0)
        self.seq[from_client] = (self.seq[from_client] + advance) & 0xFFFFFFFF
        self.unacked[from_client] += len(payload)
        if flags & _ACK:
            self.unacked[not from_client] = 0

    def build(self) -> list[tuple[int, bytes, str]]:
        frames = [(i, f, _payload(f)) for i, f in enumerate(self.conn.frames)]
        frames = [(i, f, data) for i, f, data in frames if data]
        if not frames:
            return []
        mss = struct.pack("!BBH", 2, 4, MSS)
        first_case = self.conn.case_of(frames[0][0])
        t0 = _micros(frames[0][1])
        self._emit(t0 - 3, True, _SYN, b"", first_case, mss)
        self._emit(t0 - 2, False, _SYN | _ACK, b"", first_case, mss)
        self._emit(t0 - 1, True, _ACK, b"", first_case)
        last_us = t0
        for index, frame, data in frames:
            from_client = (_get(frame, "direction", "tx") or "tx") != "rx"
            case_id = self.conn.case_of(index)
            us = max(_micros(frame), last_us)  # a clock step backwards must not reorder a stream
            for start in range(0, len(data), MSS):
                chunk = data[start : start + MSS]
                if self.unacked[from_client] + len(chunk) > _ACK_EVERY:
                    self._emit(us, not from_client, _ACK, b"", case_id)
                last = start + MSS >= len(data)
                self._emit(us, from_client, _ACK | (_PSH if last else 0), chunk, case_id)
            last_us = us
        if self.conn.closed:
            last_case = self.conn.case_of(frames[-1][0])
            self._emit(last_us + 1, True, _FIN | _ACK, b"", last_case)
            self._emit(last_us + 2, False, _FIN | _ACK, b"", last_case)
            self._emit(last_us + 3, True, _ACK, b"", last_case)
        return self.out


def _micros(frame: Any) -> int:
    t = _get(frame, "t_wall", None)
    if not t:
        t = _get(frame, "t_mono", 0.0) or 0.0
    return max(3, int(round(float(t) * 1_000_000)))


def _assign_addresses(
    connections: list[CaptureConnection], server_port_override: int | None
) -> list[tuple[Address, Address]]:
    """Final (client, server) per connection: port override applied, families matched, and no
    4-tuple used twice (Wireshark flags reused ports), by moving a duplicate's client port."""
    used: set[tuple[Address, Address]] = set()
    result = []
    next_port = _SYNTHETIC_CLIENT_PORT
    for conn in connections:
        client, server = (str(conn.client[0]), int(conn.client[1])), (str(conn.server[0]), int(conn.server[1]))
        if server_port_override is not None:
            server = (server[0], int(server_port_override))
        try:
            same_family = ipaddress.ip_address(client[0]).version == ipaddress.ip_address(server[0]).version
        except ValueError:
            same_family = False
        if not same_family:
            client, server = ("127.0.0.1", client[1]), ("127.0.0.1", server[1])
        while (client, server) in used or client == server:
            client = (client[0], next_port)
            next_port = next_port + 1 if next_port < 0xFFFF else 1024
        used.add((client, server))
        result.append((client, server))
    return result


def build_pcap(
    connections: Iterable[CaptureConnection], *, server_port_override: int | None = None
) -> tuple[bytes, dict[str, list[int]]]:
    """The pcap file as bytes, and the pcap frame numbers per case id (see `write_pcap`)."""
    connections = list(connections)
    packets: list[tuple[int, int, int, bytes, str]] = []
    for conn_index, (conn, (client, server)) in enumerate(
        zip(connections, _assign_addresses(connections, server_port_override))
    ):
        for order, (us, data, case_id) in enumerate(_Packets(conn, client, server).build()):
            packets.append((us, conn_index, order, data, case_id))
    packets.sort(key=lambda p: (p[0], p[1], p[2]))

    out = [struct.pack("<IHHiIII", PCAP_MAGIC_US, 2, 4, 0, 0, SNAPLEN, LINKTYPE_RAW)]
    numbers: dict[str, list[int]] = {}
    for number, (us, _, _, data, case_id) in enumerate(packets, start=1):
        out.append(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(data), len(data)))
        out.append(data)
        if case_id:
            numbers.setdefault(case_id, []).append(number)
    return b"".join(out), numbers


def write_pcap(
    path: str | Path, connections: Iterable[CaptureConnection], *, server_port_override: int | None = None
) -> dict[str, list[int]]:
    """Write `connections` to `path` as a libpcap file (LINKTYPE_RAW).

    Returns {case id: [pcap frame numbers]} for the connections' tagged frames, handshake and
    teardown included (they count towards the first and the last case on the connection).
    `server_port_override` rewrites every server port, e.g. to 502 so that tshark decodes
    Modbus/TCP without a "decode as" option.
    """
    data, numbers = build_pcap(connections, server_port_override=server_port_override)
    Path(path).write_bytes(data)
    return numbers


def pcap_connections_from_cases(
    cases: Iterable[Any],
    *,
    server_port_override: int | None = None,
    default_server: Address = ("127.0.0.1", 502),
) -> list[CaptureConnection]:
    """Group the evidence frames of `cases` (results.json case dicts) into TCP connections.

    Frames are grouped by their `conn` field across cases, so a connection reused by several
    cases stays one TCP stream whose frames are tagged case by case.  Frames without a usable
    `conn` go to one synthetic connection per case, from a synthetic client port to
    `default_server`.  `server_port_override` rewrites every server port.
    """
    groups: dict[Any, CaptureConnection] = {}
    order_keys: dict[Any, list[float]] = {}
    for case in cases:
        if not isinstance(case, Mapping) and hasattr(case, "to_dict"):
            case = case.to_dict()
        case_id = str(case.get("id", ""))
        frames = (case.get("evidence") or {}).get("frames") or []
        for frame in frames:
            endpoints = parse_conn(_get(frame, "conn", "") or "")
            key: Any = endpoints if endpoints else ("synthetic", case_id)
            conn = groups.get(key)
            if conn is None:
                client, server = endpoints if endpoints else (("127.0.0.1", 0), default_server)
                conn = groups[key] = CaptureConnection(client=client, server=server, frames=[], frame_case_ids=[])
                order_keys[key] = []
            conn.frames.append(frame)
            conn.frame_case_ids.append(case_id)
            t = _get(frame, "t_mono", None)
            order_keys[key].append(float(t) if t is not None else float(_get(frame, "t_wall", 0.0) or 0.0))

    result = []
    used_clients = {(c.client, c.server) for k, c in groups.items() if k[0] != "synthetic"}
    next_port = _SYNTHETIC_CLIENT_PORT
    for key, conn in groups.items():
        # Frames of a shared connection come from several cases; order them by monotonic time
        # (stable, so frames recorded with equal times keep their recorded order).
        order = sorted(range(len(conn.frames)), key=order_keys[key].__getitem__)
        conn.frames = [conn.frames[i] for i in order]
        conn.frame_case_ids = [conn.frame_case_ids[i] for i in order]
        if key[0] == "synthetic":
            conn.case_id = key[1]
            while ((conn.client[0], next_port), conn.server) in used_clients:
                next_port += 1
            conn.client = (conn.client[0], next_port)
            next_port += 1
        if server_port_override is not None:
            conn.server = (conn.server[0], int(server_port_override))
        result.append(conn)
    return result


def frame_ranges(numbers: Iterable[int]) -> str:
    """Compact pcap frame numbers for a report: [12, 13, 14, 18] -> "12-14, 18"."""
    nums = sorted(set(numbers))
    parts: list[str] = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ", ".join(parts)
