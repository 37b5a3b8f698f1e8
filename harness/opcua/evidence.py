"""Evidence for OPC UA connections: every message on the wire becomes a `harness.model.Frame`.

A `FrameLog` belongs to one TCP connection.  It names the connection the way the pcap writer
reads it ("127.0.0.1:40001->127.0.0.1:4840"), stamps each frame with monotonic and wall-clock
time, keeps the frames in `frames` and hands each one to the test's recorder as it happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..codec.opcua import uacp
from ..model import Frame

Recorder = Callable[[Frame], None]


def address_text(address: Any) -> str:
    """"127.0.0.1:4840" or "[::1]:4840" from a socket address tuple; "?" if unknown."""
    if not isinstance(address, tuple) or len(address) < 2:
        return "?"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def conn_name(transport: Any) -> str:
    """client ip:port -> server ip:port of an asyncio transport or stream writer."""
    return f"{address_text(transport.get_extra_info('sockname'))}->{address_text(transport.get_extra_info('peername'))}"


def split_messages(data: bytes) -> list[bytes]:
    """`data` cut into UACP messages by their MessageSize; a part that cannot be cut stays whole."""
    parts, pos = [], 0
    while pos < len(data):
        header = uacp.parse_header(data[pos:])
        if not isinstance(header, uacp.Header) or pos + header.size > len(data):
            parts.append(data[pos:])
            break
        parts.append(data[pos : pos + header.size])
        pos += header.size
    return parts


class FrameLog:
    """The frames of one connection, recorded as they pass."""

    def __init__(self, record: Recorder | None = None, conn: str = ""):
        self.record = record
        self.conn = conn
        self.frames: list[Frame] = []

    def emit(self, direction: str, data: bytes, summary: str | None = None) -> Frame:
        frame = Frame(direction, time.monotonic(), time.time(), bytes(data).hex(), summary or uacp.describe(data), self.conn)
        self.frames.append(frame)
        if self.record is not None:
            self.record(frame)
        return frame

    def tx(self, data: bytes, summary: str | None = None) -> Frame:
        return self.emit("tx", data, summary)

    def rx(self, data: bytes, summary: str | None = None) -> Frame:
        return self.emit("rx", data, summary)
