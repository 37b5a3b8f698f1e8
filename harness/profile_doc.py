"""The profile file as a YAML document that remembers lines, and the field readers on it.

Every section parser (`harness.profile` for the file, the Modbus section and the points;
`harness.profile_opcua` for the OPC UA section) reads plain values through these helpers, so
every error has the same form and names the file, the line and the field:

    example.yaml:31: modbus.tables.coils.count: expected a whole number from 1 to 65536, got 'many'
"""

from __future__ import annotations

import yaml


class ProfileError(ValueError):
    """A profile that cannot be used; the message names file, line and field."""

    def __init__(self, source: str, line: int | None, path: str, message: str):
        self.source, self.line, self.path, self.problem = source, line, path, message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}")


class ProfileDoc:
    """Plain YAML values plus the line of every field, for error messages."""

    def __init__(self, source: str, text: str):
        self.source = source
        self.lines: dict[str, int] = {}
        try:
            node = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else None
            raise ProfileError(source, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
        if node is None:
            raise ProfileError(source, 1, "", "the file is empty; start from simulators/profiles/example-device.yaml")
        self.data = self._convert(node, "")

    def _convert(self, node, path: str):
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out = {}
            for key_node, value_node in node.value:
                key = key_node.value
                if key_node.tag == "tag:yaml.org,2002:int":
                    key = int(key, 0)  # e.g. extended device identification object ids
                child = f"{path}.{key}" if path else str(key)
                if key in out:
                    raise ProfileError(self.source, key_node.start_mark.line + 1, child, "appears twice")
                out[key] = self._convert(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(v, f"{path}[{i}]") for i, v in enumerate(node.value)]
        return yaml.safe_load(yaml.serialize(node))

    def error(self, path: str, message: str) -> ProfileError:
        line = self.lines.get(path)
        probe = path
        while line is None and probe:
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
            line = self.lines.get(probe)
        return ProfileError(self.source, line, path, message)


def read_mapping(doc: ProfileDoc, value, path: str, allowed: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise doc.error(path, f"expected a mapping of fields, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise doc.error(f"{path}.{key}" if path else key, f"unknown field; allowed here: {', '.join(allowed)}")
    return value


def read_int(doc: ProfileDoc, value, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise doc.error(path, f"expected a whole number from {lo} to {hi}, got {value!r}")
    return value


def read_str(doc: ProfileDoc, value, path: str) -> str:
    if value is None or isinstance(value, (dict, list)):
        raise doc.error(path, f"expected text, got {value!r}")
    return str(value)


def read_choice(doc: ProfileDoc, value, path: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise doc.error(path, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def read_list(doc: ProfileDoc, value, path: str, example: str) -> list:
    if not isinstance(value, list):
        raise doc.error(path, f"expected a list, e.g. {example}")
    return value
