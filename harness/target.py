"""Target URLs (DESIGN section 4, a contract).

    modbus+tcp://HOST:PORT[?unit=1]
    modbus+rtu:///dev/ttyUSB0?baud=19200&parity=E&stop=1&unit=1
    modbus+rtu+tcp://HOST:PORT[?unit=1]
    opc.tcp://HOST:PORT[/PATH][?policy=Basic256Sha256&mode=SignAndEncrypt&user=NAME]
    mqtt://HOST:PORT  mqtts://HOST:PORT

Passwords never appear in a target: they come from HARNESS_PASSWORD or the profile, and
`redact` removes any that a user put in a URL anyway before it is written anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

DEFAULT_PORTS = {"modbus+tcp": 502, "modbus+rtu+tcp": 502, "opc.tcp": 4840, "mqtt": 1883, "mqtts": 8883}
PROTOCOLS = {
    "modbus+tcp": "modbus",
    "modbus+rtu": "modbus",
    "modbus+rtu+tcp": "modbus",
    "opc.tcp": "opcua",
    "mqtt": "mqtt",
    "mqtts": "mqtt",
}
EXAMPLES = "modbus+tcp://192.0.2.10:502?unit=1, modbus+rtu:///dev/ttyUSB0?baud=19200, opc.tcp://host:4840"


class TargetError(ValueError):
    """A target URL that cannot be used; the message says what a valid one looks like."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        return PROTOCOLS[self.scheme]

    @property
    def unit(self) -> int | None:
        return int(self.params["unit"]) if "unit" in self.params else None

    @property
    def url(self) -> str:
        """The canonical URL, never with a password."""
        if self.scheme == "modbus+rtu":
            base = f"{self.scheme}://{self.path}"
        else:
            host = f"[{self.host}]" if ":" in self.host else self.host
            base = f"{self.scheme}://{host}:{self.port}{self.path}"
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{base}?{query}" if query else base

    def __str__(self) -> str:
        return self.url


def parse_target(text: str) -> Target:
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in PROTOCOLS:
        raise TargetError(f"unknown target scheme {parts.scheme or '(none)'!r} in {redact(text)!r}; expected one of: {EXAMPLES}")
    if parts.password:
        raise TargetError("a password in a target URL would end up in reports; set HARNESS_PASSWORD instead")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "unit" in params:
        if not params["unit"].isdigit() or not 0 <= int(params["unit"]) <= 255:
            raise TargetError(f"unit={params['unit']!r} in {text!r}: expected a unit id from 0 to 255")
    if scheme == "modbus+rtu":
        if not parts.path:
            raise TargetError(f"{text!r}: an RTU target names a serial device, e.g. modbus+rtu:///dev/ttyUSB0?baud=19200")
        return Target(scheme, "", 0, parts.path, params)
    if not parts.hostname:
        raise TargetError(f"{text!r} names no host; e.g. {scheme}://127.0.0.1:{DEFAULT_PORTS[scheme]}")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise TargetError(f"{text!r}: the port must be a number from 1 to 65535") from None
    return Target(scheme, parts.hostname, port, parts.path if scheme == "opc.tcp" else "", params)


_PASSWORD_IN_URL = re.compile(r"(//[^/@:\s]*:)[^/@\s]*@")


def redact(text: str) -> str:
    """Remove a password from anything URL-like in `text`."""
    return _PASSWORD_IN_URL.sub(r"\1***@", text)
