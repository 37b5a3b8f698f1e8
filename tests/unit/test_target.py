import pytest

from harness.target import TargetError, parse_target, redact


def test_modbus_tcp_with_unit():
    t = parse_target("modbus+tcp://192.0.2.10:1502?unit=7")
    assert (t.protocol, t.host, t.port, t.unit) == ("modbus", "192.0.2.10", 1502, 7)
    assert t.url == "modbus+tcp://192.0.2.10:1502?unit=7"


def test_default_ports_and_rtu():
    assert parse_target("modbus+tcp://host").port == 502
    assert parse_target("opc.tcp://host/path").port == 4840
    rtu = parse_target("modbus+rtu:///dev/ttyUSB0?baud=19200&parity=E&stop=1&unit=1")
    assert rtu.path == "/dev/ttyUSB0" and rtu.params["baud"] == "19200" and rtu.unit == 1


@pytest.mark.parametrize(
    "text, words",
    [
        ("http://host:502", "unknown target scheme"),
        ("modbus+tcp://:502", "names no host"),
        ("modbus+tcp://host:502?unit=300", "unit id from 0 to 255"),
        ("modbus+tcp://host:99999", "port must be a number"),
        ("opc.tcp://user:secret@host:4840", "HARNESS_PASSWORD"),
        ("modbus+rtu://", "serial device"),
    ],
)
def test_bad_targets_say_what_is_wrong(text, words):
    with pytest.raises(TargetError, match=words):
        parse_target(text)


def test_redact_removes_passwords():
    assert redact("opc.tcp://bob:hunter2@host:4840") == "opc.tcp://bob:***@host:4840"
    assert "hunter2" not in redact("see mqtt://a:hunter2@h and more")
