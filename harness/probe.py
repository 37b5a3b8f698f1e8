"""Drafts a device profile by probing an unknown Modbus/TCP device (`harness probe`).

What it finds: the unit id that answers, which function codes are supported (judged by
exception 01 versus anything else), the extent of each readable table by bisection, the
device identification objects, and a response timeout with headroom over what it measured.
Probing never changes the device: write function codes are detected with requests the spec
obliges a server to refuse (a coil value that is not 0xFF00/0x0000, byte counts that do not
match), so a supporting device answers exception 03 and writes nothing.  The result is a
draft: table extents assume the addresses are contiguous from the first one found.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import yaml

from .codec.modbus import pdu as P
from .codec.modbus.constants import DEVICE_ID_OBJECT_NAMES, FunctionCode, Table
from .codec.modbus.malformed import Malformed
from .identify import read_device_id_objects
from .profile import DEVICE_FIELDS, SCHEMA
from .target import Target
from .transport.modbus_tcp import ModbusTcpConnection, TransportError

FC = FunctionCode
READS = {
    Table.COILS: (FC.READ_COILS, P.ReadCoilsRequest),
    Table.DISCRETE_INPUTS: (FC.READ_DISCRETE_INPUTS, P.ReadDiscreteInputsRequest),
    Table.HOLDING_REGISTERS: (FC.READ_HOLDING_REGISTERS, P.ReadHoldingRegistersRequest),
    Table.INPUT_REGISTERS: (FC.READ_INPUT_REGISTERS, P.ReadInputRegistersRequest),
}
# Requests a supporting server must refuse with 03 (or 02), so probing writes nothing.
HARMLESS_WRITES = {
    FC.WRITE_SINGLE_COIL: P.WriteSingleCoilRequest(0, 0x1234),
    FC.WRITE_MULTIPLE_COILS: P.WriteMultipleCoilsRequest(0, 10, 1, b"\x00"),
    FC.WRITE_MULTIPLE_REGISTERS: P.WriteMultipleRegistersRequest(0, 2, 2, (0,)),
    FC.READ_WRITE_MULTIPLE_REGISTERS: P.ReadWriteMultipleRegistersRequest(0, 0, 0, 1, 2, (0,)),
}
# No value of FC06 or FC22 is invalid, so these are probed with a PDU one byte short,
# which a supporting server refuses (03) and an unsupporting one answers with 01.
SHORT_WRITES = {FC.WRITE_SINGLE_REGISTER: b"\x06\x00\x00\x00", FC.MASK_WRITE_REGISTER: b"\x16\x00\x00\x00\x00\x00"}


class _Prober:
    def __init__(self, target: Target, unit: int, timeout: float):
        self.target, self.unit, self.timeout = target, unit, timeout
        self.latencies: list[float] = []
        self.conn = self._connect()

    def _connect(self):
        return ModbusTcpConnection(self.target.host, self.target.port, unit=self.unit, timeout=self.timeout)

    def ask(self, request) -> object | None:
        """The decoded answer, or None when nothing (usable) came back."""
        pdu = request if isinstance(request, bytes) else P.encode_pdu(request)
        try:
            reply = self.conn.request(pdu)
        except TransportError:
            self.conn.close()
            self.conn = self._connect()
            return None
        self.latencies.append(reply.elapsed_s)
        if isinstance(reply.adu, Malformed):
            return None
        answer = P.decode_response(reply.adu.pdu)
        return None if isinstance(answer, Malformed) else answer

    def supported(self, request) -> bool:
        answer = self.ask(request)
        return answer is not None and not (isinstance(answer, P.ExceptionResponse) and answer.exception_code == 0x01)

    def readable(self, table: Table, address: int) -> bool:
        _, kind = READS[table]
        answer = self.ask(kind(address, 1))
        return answer is not None and not isinstance(answer, P.ExceptionResponse)

    def last_address(self, table: Table, first: int) -> int:
        lo, hi = first, 0xFFFF  # invariant: lo readable
        if self.readable(table, hi):
            return hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.readable(table, mid):
                lo = mid
            else:
                hi = mid
        return lo


def _find_unit(target: Target, timeout: float) -> int:
    candidates = [target.unit] if target.unit is not None else [1, 255, 0]
    for unit in candidates:
        prober = _Prober(target, unit, timeout)
        try:
            if prober.ask(P.ReadHoldingRegistersRequest(0, 1)) is not None or prober.ask(P.ReadCoilsRequest(0, 1)) is not None:
                return unit
        finally:
            prober.conn.close()
    raise TransportError(f"no answer from unit ids {candidates}; give the unit id in the target, e.g. ?unit=1")


def probe(target: Target, timeout: float = 1.0, progress: Callable[[str], None] = lambda m: None) -> dict:
    """A profile document (plain dict) drafted from what the device answers."""
    unit = _find_unit(target, timeout)
    progress(f"unit id {unit} answers")
    p = _Prober(target, unit, timeout)
    try:
        fcs: list[int] = []
        tables: dict[str, dict] = {}
        for table, (fc, kind) in READS.items():
            if not p.supported(kind(0, 1)):
                continue
            fcs.append(int(fc))
            first = 0 if p.readable(table, 0) else None
            if first is None:
                progress(f"FC{fc:02d} supported; address 0 of {table.value} does not exist, extent left to you")
                continue
            last = p.last_address(table, first)
            tables[table.value] = {"start": first, "count": last - first + 1}
            progress(f"FC{fc:02d} supported; {table.value} {first}..{last}")
        for fc, request in HARMLESS_WRITES.items():
            if p.supported(request):
                fcs.append(int(fc))
        for fc, raw in SHORT_WRITES.items():
            if p.supported(raw):
                fcs.append(int(fc))
        device: dict[str, str] = {}
        device_id = None
        objects = read_device_id_objects(p.conn)
        if isinstance(objects, dict) and objects:
            fcs.append(int(FC.ENCAPSULATED_INTERFACE))
            for oid, value in objects.items():
                if oid < len(DEVICE_FIELDS):
                    device[DEVICE_FIELDS[oid]] = value.decode("utf-8", "replace")
            level = "extended" if any(o >= 0x80 for o in objects) else "regular" if any(o >= 3 for o in objects) else "basic"
            individual = p.ask(P.ReadDeviceIdRequest(4, 0))
            device_id = {"level": level, "individual_access": isinstance(individual, P.ReadDeviceIdResponse)}
            progress(f"device identification: {', '.join(f'{DEVICE_ID_OBJECT_NAMES.get(k, hex(k))}={v!r}' for k, v in sorted(objects.items()))}")
        worst_ms = max(p.latencies, default=0.1) * 1000
    finally:
        p.conn.close()
    modbus: dict = {
        "function_codes": sorted(set(fcs)),
        "max_outstanding": 1,
        "unit_ids": [unit],
        "response_timeout_ms": int(max(500, 4 * worst_ms)),
        "tables": tables,
    }
    if device_id:
        modbus["device_identification"] = device_id
    return {"profile": SCHEMA, "device": device or {"vendor_name": "unknown", "product_code": "unknown"}, "modbus": modbus, "points": []}


HEADER = """\
# Drafted by `harness probe {url}` on {date}.
# This is a DRAFT: check every claim against the device's documentation.
# - table extents were found by bisection and assume contiguous addresses;
# - max_outstanding is 1 until you know better (TCP guide V1.0b section 4.4.2.1);
# - add `writable:` ranges the harness may overwrite while testing, and `points:` with their
#   expected values, to enable the write and value cases (see README, "Device profile").
"""


def probe_to_file(target: Target, path: Path, progress: Callable[[str], None] = lambda m: None) -> str:
    doc = probe(target, progress=progress)
    text = HEADER.format(url=target.url, date=time.strftime("%Y-%m-%d")) + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    Path(path).write_text(text, encoding="utf-8")
    mb = doc["modbus"]
    return f"unit {mb['unit_ids'][0]}, function codes {mb['function_codes']}, tables {', '.join(mb['tables']) or 'none found'}"
