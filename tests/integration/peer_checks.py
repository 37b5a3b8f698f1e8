"""What the peer tests check on any Modbus server peer: a table read over the raw client, and
that a stopped peer left no process behind."""

from __future__ import annotations

import os
import struct

from raw_client import RawClient

from harness.codec.modbus.constants import Table

READ_FC = {Table.COILS: 1, Table.DISCRETE_INPUTS: 2, Table.HOLDING_REGISTERS: 3, Table.INPUT_REGISTERS: 4}


def transact(host: str, port: int, pdu: bytes, unit: int = 1, tid: int = 0x1234, timeout: float = 3.0) -> bytes:
    """Send one request ADU, return the reply PDU after checking the MBAP header."""
    with RawClient(host, port, timeout) as client:
        return client.request(pdu, tid=tid, unit=unit)


def read_table(host: str, port: int, table: Table, address: int, count: int, unit: int = 1) -> list[int]:
    """Bits as 0/1, registers as words; asserts a normal, consistent reply."""
    fc = READ_FC[table]
    reply = transact(host, port, struct.pack(">BHH", fc, address, count), unit=unit)
    assert reply[0] == fc, f"{table.value}@{address}: exception reply {reply.hex()}"
    body = reply[2:]
    assert reply[1] == len(body)
    if table.is_bit:
        return [(body[i // 8] >> (i % 8)) & 1 for i in range(count)]
    return list(struct.unpack(f">{len(body) // 2}H", body))


def process_gone(pid: int) -> bool:
    """Neither the process nor its process group exists any more."""
    for probe in (os.kill, os.killpg):
        try:
            probe(pid, 0)
            return False
        except ProcessLookupError:
            continue
        except PermissionError:
            return False
    return True
