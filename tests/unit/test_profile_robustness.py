"""The robustness section of a device profile: defaults, values, and errors naming the line."""

from __future__ import annotations

import pytest

from harness.profile import ProfileError, load_profile, example_profile_path, parse_profile, profile_summary
from harness.profile_robustness import RobustnessSection

BASE = example_profile_path().read_text(encoding="utf-8")


def test_defaults_when_the_profile_has_no_robustness_section():
    profile = load_profile(example_profile_path())
    assert profile.robustness == RobustnessSection()
    assert profile_summary(profile)["parameters"]["robustness"]["recovery_time_ms"] == 2000


def test_values_are_read():
    profile = parse_profile(BASE + "robustness:\n  recovery_time_ms: 500\n  flood_rate: 2000\n  degraded_ok: true\n")
    assert (profile.robustness.recovery_time_ms, profile.robustness.flood_rate, profile.robustness.degraded_ok) == (500, 2000, True)
    assert profile.robustness.storm_connections == RobustnessSection().storm_connections


@pytest.mark.parametrize("text, field, problem", [
    ("robustness:\n  flood_rate: 0\n", "robustness.flood_rate", "from 1 to"),
    ("robustness:\n  recovery_time: 5\n", "robustness.recovery_time", "unknown field"),
    ("robustness:\n  degraded_ok: maybe\n", "robustness.degraded_ok", "true or false"),
])
def test_errors_name_line_field_and_fix(text, field, problem):
    with pytest.raises(ProfileError) as info:
        parse_profile(BASE + text, "device.yaml")
    message = str(info.value)
    assert field in message and problem in message
    assert f"device.yaml:{BASE.count(chr(10)) + 2}" in message  # the line of the bad field


def test_a_restart_command_is_an_argument_list_with_the_targets_placeholders():
    profile = parse_profile(BASE + 'robustness:\n  restart_command: [./restart.sh, "{host}", "--port={port}", 7]\n')
    assert profile.robustness.restart_command == ("./restart.sh", "{host}", "--port={port}", "7")
    assert profile_summary(profile)["parameters"]["robustness"]["restart_command"] == ["./restart.sh", "{host}", "--port={port}", "7"]
    assert parse_profile(BASE + "robustness:\n  restart_command: []\n").robustness.restart_command == ()


@pytest.mark.parametrize("value, problem", [
    ('"./restart.sh {host}"', "expected a list, e.g. [systemctl, restart, my-plc]"),
    ('[restart, "{unit}"]', "names {unit}; the placeholders are {host}, {port}"),
    ('[restart, "{"]', "write a literal brace as {{ or }}"),
    ("[restart, [a]]", "argument 2: expected text"),
])
def test_a_bad_restart_command_names_the_fix(value, problem):
    with pytest.raises(ProfileError) as info:
        parse_profile(BASE + f"robustness:\n  restart_command: {value}\n", "device.yaml")
    assert "robustness.restart_command" in str(info.value) and problem in str(info.value)
