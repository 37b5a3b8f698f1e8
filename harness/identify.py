"""Reads the identity a device reports about itself, for the report's DUT block.

Modbus: Read Device Identification (FC43/14), basic then regular stream access.  A device
that does not answer is recorded as such; identification never fails a run.
"""

from __future__ import annotations

from .codec.modbus.constants import DEVICE_ID_OBJECT_NAMES, ReadDeviceIdCode
from .codec.modbus.pdu import ExceptionResponse, ReadDeviceIdRequest, ReadDeviceIdResponse, decode_response, encode_pdu
from .codec.modbus.malformed import Malformed
from .transport.modbus_tcp import ModbusTcpConnection, TransportError


def read_device_id_objects(conn: ModbusTcpConnection, max_rounds: int = 8) -> dict[int, bytes] | str:
    """Objects by id, or a sentence saying why they could not be read."""
    objects: dict[int, bytes] = {}
    for code in (ReadDeviceIdCode.BASIC, ReadDeviceIdCode.REGULAR):
        next_id = 0
        for _ in range(max_rounds):
            reply = conn.request(encode_pdu(ReadDeviceIdRequest(int(code), next_id)))
            if isinstance(reply.adu, Malformed):
                return f"malformed reply: {reply.adu}"
            answer = decode_response(reply.adu.pdu)
            if isinstance(answer, ExceptionResponse):
                if code is ReadDeviceIdCode.BASIC:
                    return f"exception {answer.exception_code:02X}"
                break
            if not isinstance(answer, ReadDeviceIdResponse):
                return f"unexpected reply: {answer}"
            objects.update(dict(answer.objects))
            if answer.more_follows != 0xFF:
                break
            next_id = answer.next_object_id
    return objects


def read_modbus_identity(target_text: str, profile_path: str | None = None) -> dict:
    from .profile import ProfileError, load_profile
    from .target import parse_target

    target = parse_target(target_text)
    unit, timeout = (target.unit if target.unit is not None else 1), 1.0
    if profile_path:
        try:
            prof = load_profile(profile_path)
        except ProfileError:
            prof = None  # the run itself reports the profile's error
        if prof is not None and prof.modbus:
            unit = target.unit if target.unit is not None else prof.modbus.unit_id
            timeout = prof.modbus.response_timeout_s
            if 43 not in prof.modbus.function_codes:
                return {"source": "Modbus FC43/14", "objects": {}, "note": "the profile does not claim FC43"}
    try:
        with ModbusTcpConnection(target.host, target.port, unit=unit, timeout=timeout) as conn:
            objects = read_device_id_objects(conn)
    except TransportError as exc:
        return {"source": "Modbus FC43/14", "objects": {}, "note": f"not read: {exc}"}
    if isinstance(objects, str):
        return {"source": "Modbus FC43/14", "objects": {}, "note": f"not read: {objects}"}
    named = {DEVICE_ID_OBJECT_NAMES.get(k, f"0x{k:02X}"): v.decode("utf-8", "replace") for k, v in sorted(objects.items())}
    return {"source": "Modbus FC43/14", "objects": named}
