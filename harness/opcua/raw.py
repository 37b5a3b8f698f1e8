"""A raw OPC UA TCP connection for transport-level test cases (Part 6 v1.04 §7.1).

`RawUacpConnection` sends exactly the bytes a test gives it (a Hello with odd buffer sizes, an
unknown message type, a wrong MessageSize, half a message) and frames what comes back with the
UACP codec.  `read_message` never raises: it returns a `Received` whose `kind` says whether a
whole message arrived, the server closed the connection, the time ran out, or the bytes were
malformed.  Every frame sent and received goes to the recorder as evidence.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ..codec.opcua import uacp
from .errors import ChannelClosed, NoResponse, Unreachable
from .evidence import FrameLog, Recorder, conn_name

# Guards memory against a MessageSize that claims gigabytes; tests judge sizes themselves.
DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024


@dataclass
class Received:
    """What `read_message` got.

    kind      "message" (a whole message: `header`, `body`, `decoded`), "closed" (the server
              closed or reset the connection), "timeout", or "malformed" (`malformed` says why)
    data      the bytes of the message, or the bytes left over at close/timeout/malformed
    decoded   the HEL/ACK/ERR/RHE body (or a Malformed one); None for OPN/MSG/CLO
    """

    kind: str
    data: bytes = b""
    header: uacp.Header | None = None
    decoded: uacp.UacpBody | uacp.Malformed | None = None
    malformed: uacp.Malformed | None = None
    elapsed_s: float = 0.0

    @property
    def body(self) -> bytes:
        return self.data[uacp.HEADER_SIZE :] if self.kind == "message" else b""


class RawUacpConnection:
    """One TCP connection speaking UACP byte by byte.  Create with `await RawUacpConnection.open(...)`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        record: Recorder | None = None,
        timeout: float = 2.0,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ):
        self._reader, self._writer = reader, writer
        self.timeout = timeout
        self.max_message = max_message
        self.log = FrameLog(record, conn_name(writer))
        self._buffer = bytearray()
        self.closed_by_peer = False
        self.last: Received | None = None  # the reply `hello` looked at
        self.drained: list[Received] = []  # messages that arrived during `wait_closed`

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        record: Recorder | None = None,
        timeout: float = 2.0,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> "RawUacpConnection":
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except asyncio.TimeoutError:
            raise Unreachable(f"no TCP connection to {host}:{port} within {timeout * 1000:.0f} ms") from None
        except OSError as exc:
            raise Unreachable(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        return cls(reader, writer, record=record, timeout=timeout, max_message=max_message)

    @property
    def frames(self):
        return self.log.frames

    # ------------------------------------------------------------------ sending

    async def send(self, data: bytes, summary: str | None = None, timeout: float | None = None) -> None:
        """Send `data` as it is; raises ChannelClosed if the connection is gone, NoResponse if
        the server does not take the bytes within the timeout."""
        self.log.tx(data, summary)
        timeout = self.timeout if timeout is None else timeout
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), timeout)
        except asyncio.TimeoutError:
            raise NoResponse(f"the server did not take {len(data)} bytes within {timeout * 1000:.0f} ms") from None
        except (ConnectionError, OSError) as exc:
            self.closed_by_peer = True
            raise ChannelClosed(f"sending failed: {exc.strerror or exc}") from None

    async def hello(
        self,
        endpoint_url: str | bytes | None,
        receive_buffer: int = 65536,
        send_buffer: int = 65536,
        max_message: int = 0,
        max_chunks: int = 0,
        protocol_version: int = 0,
        timeout: float | None = None,
    ) -> uacp.Acknowledge | uacp.ErrorMessage | None:
        """Send a Hello; the Acknowledge or Error that answers it, else None (closed, timeout,
        malformed, another message type: see `last`)."""
        hello = uacp.Hello(protocol_version, receive_buffer, send_buffer, max_message, max_chunks, endpoint_url)
        await self.send(uacp.encode(hello))
        self.last = await self.read_message(timeout)
        if isinstance(self.last.decoded, (uacp.Acknowledge, uacp.ErrorMessage)):
            return self.last.decoded
        return None

    # ------------------------------------------------------------------ receiving

    async def read_message(self, timeout: float | None = None) -> Received:
        """The next whole message, or why there is none.  Never raises."""
        timeout = self.timeout if timeout is None else timeout
        start = time.monotonic()
        deadline = start + timeout
        while True:
            header = uacp.parse_header(self._buffer, self.max_message)
            if isinstance(header, uacp.Malformed):
                # A bad header means the stream cannot be framed any further: hand over all of it.
                data = bytes(self._buffer)
                self._buffer.clear()
                self.log.rx(data, f"malformed: {header}")
                return Received("malformed", data, malformed=header, elapsed_s=time.monotonic() - start)
            if header is not None and len(self._buffer) >= header.size:
                data = bytes(self._buffer[: header.size])
                del self._buffer[: header.size]
                self.log.rx(data)
                decoded = None if header.is_secure else uacp.decode(data)
                return Received("message", data, header, decoded, elapsed_s=time.monotonic() - start)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Received("timeout", bytes(self._buffer), elapsed_s=time.monotonic() - start)
            try:
                chunk = await asyncio.wait_for(self._reader.read(65536), remaining)
            except asyncio.TimeoutError:
                return Received("timeout", bytes(self._buffer), elapsed_s=time.monotonic() - start)
            except (ConnectionError, OSError):
                chunk = b""
            if not chunk:
                self.closed_by_peer = True
                data = bytes(self._buffer)
                self._buffer.clear()
                if data:
                    self.log.rx(data, f"{uacp.describe(data)}, then the connection closed")
                return Received("closed", data, elapsed_s=time.monotonic() - start)
            self._buffer += chunk

    async def wait_closed(self, timeout: float | None = None) -> bool:
        """True when the server closes the connection within `timeout`.  Messages that arrive
        meanwhile are recorded and kept in `drained`."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            got = await self.read_message(remaining)
            if got.kind == "closed":
                return True
            if got.kind == "timeout":
                return False
            self.drained.append(got)
        return False

    # ------------------------------------------------------------------ housekeeping

    def close(self) -> None:
        """Close the connection; bytes that arrived but never formed a message become evidence."""
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            self.log.rx(data, f"{uacp.describe(data)}, left unread")
        try:
            self._writer.close()
        except (ConnectionError, OSError, RuntimeError):
            pass

    async def __aenter__(self) -> "RawUacpConnection":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()
