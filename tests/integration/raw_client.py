"""A Modbus TCP client made of a socket and struct, for the simulator's wire-level tests.

Deliberately independent of harness.codec and harness.transport, so the simulator is checked
against bytes written by hand, not against the codec it shares.  Every operation has a timeout.
"""

from __future__ import annotations

import socket
import struct

TIMEOUT = 2.0


def frame(pdu: bytes, tid: int = 1, unit: int = 1, protocol: int = 0, length: int | None = None) -> bytes:
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1 if length is None else length, unit) + pdu


class RawClient:
    def __init__(self, host: str, port: int, timeout: float = TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.next_tid = 1

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exact(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(data)} of {count} bytes: {data.hex(' ')}")
            data += chunk
        return data

    def read_adu(self) -> tuple[int, int, int, int, bytes]:
        """(transaction id, protocol id, length, unit id, pdu) of the next response."""
        tid, protocol, length, unit = struct.unpack(">HHHB", self.recv_exact(7))
        return tid, protocol, length, unit, self.recv_exact(length - 1)

    def request(self, pdu: bytes | str, tid: int | None = None, unit: int = 1) -> bytes:
        """Send one request, check the MBAP header of the answer, return the response PDU."""
        if isinstance(pdu, str):
            pdu = bytes.fromhex(pdu)
        if tid is None:
            tid, self.next_tid = self.next_tid, (self.next_tid + 1) & 0xFFFF
        self.send(frame(pdu, tid, unit))
        r_tid, protocol, length, r_unit, r_pdu = self.read_adu()
        assert (r_tid, protocol, r_unit, length) == (tid, 0, unit, len(r_pdu) + 1)
        return r_pdu

    def recv_all_until_quiet(self, quiet: float = 0.3) -> bytes:
        """Everything that arrives until `quiet` seconds pass without data or the stream ends."""
        data = b""
        self.sock.settimeout(quiet)
        try:
            while True:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return data
                data += chunk
        except TimeoutError:
            return data
        finally:
            self.sock.settimeout(TIMEOUT)

    def expect_silence(self, seconds: float = 0.2) -> None:
        data = self.recv_all_until_quiet(seconds)
        assert data == b"", f"expected no answer, got {data.hex(' ')}"

    def is_closed_by_peer(self) -> bool:
        """True when the server closed: end of stream or reset within the timeout."""
        try:
            while True:
                if not self.sock.recv(1024):
                    return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def expect_closed(self) -> None:
        assert self.is_closed_by_peer(), "expected the server to close the connection"

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
