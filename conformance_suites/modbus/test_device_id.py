"""Read Device Identification, FC43 / MEI type 14 (Application Protocol V1.1b3 §6.19, §6.21)."""

from __future__ import annotations

from harness.codec.modbus import pdu as P
from harness.codec.modbus.constants import DEVICE_ID_MANDATORY, DEVICE_ID_OBJECT_NAMES, FunctionCode
from harness.conformance import case, fail, not_applicable
from harness.profile import ID_LEVELS

from .support import AP

FC43 = FunctionCode.ENCAPSULATED_INTERFACE
LEVEL_CODE = {name: code for code, name in enumerate(ID_LEVELS, start=1)}  # read device id codes 01..03
CATEGORY = {1: range(0x00, 0x03), 2: range(0x00, 0x80), 3: range(0x00, 0x100)}


def _claim(dut):
    dut.require(FC43)
    claim = dut.mb.device_identification
    if claim is None:
        not_applicable("the profile claims no device identification")
    return claim


def _stream(dut, code: int, conn, first: int = 0) -> tuple[dict[int, bytes], list]:
    """All objects of a stream access, following more_follows; and the responses."""
    objects, answers, next_id = {}, [], first
    for _ in range(16):
        answer = dut.expect_normal(dut.transact(P.ReadDeviceIdRequest(code, next_id), conn), P.ReadDeviceIdResponse,
                                   f"read device id code {code:02X} is claimed")
        answers.append(answer)
        objects.update(dict(answer.objects))
        if answer.more_follows != 0xFF:
            break
        next_id = answer.next_object_id
    return objects, answers


@case("MB-FC43-BASIC", "Basic stream access returns VendorName, ProductCode and MajorMinorRevision",
      requirements=["MB-AP-6.21-MANDATORY", "MB-AP-6.21-RESPONSE"], level="MUST", clause=f"{AP} §6.21")
def test_basic_objects(dut):
    claim = _claim(dut)
    objects, answers = _stream(dut, 1, dut.connect())
    missing = [DEVICE_ID_OBJECT_NAMES[i] for i in DEVICE_ID_MANDATORY if i not in objects]
    if missing:
        fail(f"mandatory objects missing: {', '.join(missing)}", expected="objects 0x00, 0x01, 0x02",
             observed=f"objects {sorted(objects)}")
    for answer in answers:
        if answer.read_code != 1:
            fail(f"the response's read device id code is {answer.read_code:02X}, not the request's 01")
        if answer.conformity_level != claim.conformity_level:
            fail("the conformity level differs from the claimed identification level",
                 expected=f"0x{claim.conformity_level:02X} ({claim.level}{', individual access' if claim.individual_access else ''})",
                 observed=f"0x{answer.conformity_level:02X}")
    stray = [i for i in objects if i not in CATEGORY[1]]
    if stray:
        fail(f"basic access returned objects outside 0x00..0x02: {stray}")


@case("MB-FC43-LEVEL", "Stream access at the claimed level returns every object the device declares",
      requirements=["MB-AP-6.21-RESPONSE"], level="MUST", clause=f"{AP} §6.21")
def test_claimed_level_objects(dut):
    claim = _claim(dut)
    code = LEVEL_CODE[claim.level]
    objects, _ = _stream(dut, code, dut.connect())
    declared = {i for i in dut.profile.device_id_objects() if i in CATEGORY[code]}
    if not declared <= set(objects):
        fail(f"objects declared in the profile are missing: {sorted(declared - set(objects))}",
             expected=f"objects {sorted(declared)}", observed=f"objects {sorted(objects)}")
    stray = [i for i in objects if i not in CATEGORY[code]]
    if stray:
        fail(f"{claim.level} access returned objects outside its category: {stray}")


@case("PICS-IDENTITY", "The identification read from the device matches the identity its profile declares",
      requirements=["PICS-IDENTITY"], level="SHOULD", clause="Device profile (PICS) V1 §device")
def test_identity_matches_profile(dut):
    claim = _claim(dut)
    objects, _ = _stream(dut, LEVEL_CODE[claim.level], dut.connect())
    differences = []
    for oid, declared in dut.profile.device_id_objects().items():
        if oid in objects and objects[oid].decode("utf-8", "replace") != declared:
            differences.append(f"{DEVICE_ID_OBJECT_NAMES.get(oid, hex(oid))}: declared {declared!r}, "
                               f"device says {objects[oid].decode('utf-8', 'replace')!r}")
    if differences:
        fail("; ".join(differences), expected="the profile's identity", observed="see message")


@case("MB-FC43-STREAM-RESTART", "Stream access from an object id the device lacks restarts at object 0",
      requirements=["MB-AP-6.21-STREAM-RESTART"], level="MUST", clause=f"{AP} §6.21")
def test_stream_restart(dut):
    _claim(dut)
    absent = next(i for i in range(0x7F, 0x02, -1) if i not in dut.profile.device_id_objects())
    answer = dut.expect_normal(dut.transact(P.ReadDeviceIdRequest(1, absent)), P.ReadDeviceIdResponse,
                               "an unknown object id in stream access is not an error")
    first = answer.objects[0][0] if answer.objects else None
    if first != 0:
        fail(f"the stream started at object {first!r}", expected="object 0x00 first", observed=f"objects {[o for o, _ in answer.objects]}")


@case("MB-FC43-INDIVIDUAL", "Individual access (code 04) to ProductCode returns just that object",
      requirements=["MB-AP-6.21-INDIVIDUAL"], level="MUST", clause=f"{AP} §6.21")
def test_individual_access(dut):
    claim = _claim(dut)
    if not claim.individual_access:
        not_applicable("the profile claims no individual access")
    answer = dut.expect_normal(dut.transact(P.ReadDeviceIdRequest(4, 0x01)), P.ReadDeviceIdResponse, "individual access is claimed")
    ids = [oid for oid, _ in answer.objects]
    if ids != [0x01]:
        fail(f"objects {ids} returned", expected="exactly object 0x01", observed=str(ids))
    if answer.conformity_level & 0x80 == 0:
        fail("the conformity level does not announce individual access (0x80)", observed=f"0x{answer.conformity_level:02X}")


@case("MB-FC43-INDIVIDUAL-UNKNOWN", "Individual access to an object the device lacks is refused with exception 02",
      requirements=["MB-AP-6.21-INDIVIDUAL-UNKNOWN"], level="MUST", clause=f"{AP} §6.21")
def test_individual_unknown_object(dut):
    claim = _claim(dut)
    if not claim.individual_access:
        not_applicable("the profile claims no individual access")
    absent = next(i for i in range(0x7F, 0x02, -1) if i not in dut.profile.device_id_objects())
    dut.expect_exception(dut.transact(P.ReadDeviceIdRequest(4, absent)), 0x02, f"object 0x{absent:02X} does not exist")


@case("MB-FC43-READ-CODE", "Read Device ID code 05 is refused with exception 03",
      requirements=["MB-AP-6.21-READ-CODE"], level="MUST", clause=f"{AP} §6.21")
def test_invalid_read_code(dut):
    _claim(dut)
    dut.expect_exception(dut.transact(P.ReadDeviceIdRequest(5, 0)), 0x03, "read device id codes are 01..04")


@case("MB-FC43-MEI-TYPE", "FC43 with a reserved MEI type (0x0F) is refused with exception 01",
      requirements=["MB-AP-6.19-MEI-TYPE"], level="SHOULD", clause=f"{AP} §6.19")
def test_reserved_mei_type(dut):
    dut.require(FC43)
    dut.expect_exception(dut.transact(P.MeiRequest(0x0F, b"\x01\x00")), 0x01, "MEI type 0x0F is reserved")

