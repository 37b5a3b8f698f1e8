"""The OPC UA section of a device profile and the points' OPC UA mapping."""

import pytest

from harness.profile import ProfileError, decode_point, encode_point, parse_profile, profile_summary
from harness.profile_opcua import point_ua_type

BASE = """\
profile: harness.profile/1
device: {vendor_name: V, product_code: P, revision: "1"}
modbus:
  function_codes: [3, 16]
  tables:
    holding_registers: {start: 0, count: 10}
opcua:
  profile: micro
  application_uri: urn:test:server
  security:
    - {policy: None, modes: [None]}
    - {policy: Basic256Sha256, modes: [Sign, SignAndEncrypt]}
  user_tokens: [anonymous, username]
  namespace: urn:test:data
  object: {name: Meter}
  users: [{name: op, password: pw}]
  methods:
    - {name: Add, inputs: [{name: a, type: Double}], outputs: [{name: s, type: Double}], action: sum}
points:
  - {name: a, table: holding_registers, address: 0, type: uint16, value: 5000, scale: 0.01, unit: Hz}
  - {name: arr, table: holding_registers, address: 1, type: int16, array: 3, value: [1, -2, 3], writable: true}
  - {name: only_ua, type: float64, value: 2.5, node_id: "i=1001"}
"""


def test_section_and_points_parse():
    p = parse_profile(BASE, "dev.yaml")
    ua = p.opcua
    assert ua.server_profile == "micro"
    assert ua.claims_policy("Basic256Sha256", "Sign") and not ua.claims_policy("Aes256_Sha256_RsaPss")
    assert ua.secure_claims() == [("Basic256Sha256", "Sign"), ("Basic256Sha256", "SignAndEncrypt")]
    assert ua.methods[0].node_id == "s=Meter.Add"
    a, arr, only = p.points
    assert a.node_id == "s=Meter.a" and point_ua_type(a) == "Double" and a.unit == "Hz"
    assert point_ua_type(arr) == "Int16" and arr.size == 3
    assert decode_point(arr, encode_point(arr, [1, -2, 3])) == [1, -2, 3]
    assert only.table is None and only.node_id == "i=1001"


def test_summary_has_claims_and_no_password():
    block = profile_summary(parse_profile(BASE, "dev.yaml"))
    assert block["claims"]["opcua"]["profile"] == "micro"
    assert block["parameters"]["opcua"]["users"] == ["op"]
    assert "pw" not in repr(block)


def test_example_profile_has_an_opcua_face(example_profile):
    assert example_profile.opcua.server_profile == "embedded"
    assert all(p.node_id for p in example_profile.points)


@pytest.mark.parametrize(
    "replace, field, words",
    [
        (("policy: Basic256Sha256", "policy: Basic128Rsa15"), "opcua.security[1].policy", "expected one of"),
        (("modes: [None]", "modes: [Sign]"), "opcua.security[0].modes", "policy None goes with mode None"),
        (("  users: [{name: op, password: pw}]\n", ""), "opcua.users", "claims username tokens"),
        (("password: pw", "password_env: HARNESS_TEST_UNSET_VARIABLE"), "opcua.users[0].password_env", "is not set"),
        (("value: [1, -2, 3]", "value: [1, 2]"), "points[1].value", "needs a list of 3 values"),
        (("profile: micro", "profile: standard"), "opcua.profile", "nano, micro, embedded"),
        (("node_id: \"i=1001\"", "node_id: \"ns=2;i=1001\""), "points[2].node_id", "without namespace"),
        (("action: sum}", "action: sum, example: {inputs: [1], outputs: []}}"), "opcua.methods[0].example", "needs 1 inputs and 1 outputs"),
        (("scale: 0.01", "scale: 0"), "points[0].scale", "non-zero number"),
    ],
)
def test_errors_name_the_field(replace, field, words, monkeypatch):
    monkeypatch.delenv("HARNESS_TEST_UNSET_VARIABLE", raising=False)
    text = BASE.replace(*replace)
    assert text != BASE
    with pytest.raises(ProfileError) as info:
        parse_profile(text, "dev.yaml")
    assert info.value.path == field, str(info.value)
    assert words in str(info.value)
    assert info.value.line is not None


def test_point_without_place_needs_opcua():
    text = BASE.split("opcua:")[0] + "points:\n  - {name: x, type: float64, node_id: \"i=5\"}\n"
    with pytest.raises(ProfileError, match="needs the device to have an opcua section"):
        parse_profile(text, "dev.yaml")


def test_password_from_environment(monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_PW", "from-env")
    p = parse_profile(BASE.replace("password: pw", "password_env: HARNESS_TEST_PW"), "dev.yaml")
    assert p.opcua.users[0].password == "from-env"
