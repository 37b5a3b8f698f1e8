"""Deliberate misbehaviour of the simulator, so client stacks and the conformance suite can be tested.

A fault is written `NAME[=VALUE][:fc=N][:every=N]`:

    delay=MS           answer MS milliseconds late
    no-reply           never answer
    wrong-tid          transaction id of the response + 1
    wrong-unit         unit id of the response + 1
    wrong-length       MBAP length field of the response + 1
    exception=CODE     answer with that exception code instead (the request is not executed)
    truncate           send the response minus its last byte
    close-mid-reply    send the first half of the response, then close the connection
    lose-writes        answer a write (FC05, 06, 15, 16) as if it were stored, illegal ones with
                       their exception as usual, but do not store it: data loss
    hang-on-bad-length=MS
                       a frame whose MBAP length is out of range (below 2 or above 254) makes
                       the whole simulator silent, on every connection, for MS milliseconds
                       (0: for good) -- a firmware with a framing bug, for the robustness suite

    :fc=N              only requests with function code N
    :every=N           only every Nth matching request (the Nth, 2Nth, ...), counted over the
                       whole simulator, all connections together

Several faults may be active at once; each one decides for itself whether it applies to a
request (`Fault.applies`).  The server checks once whether any fault is configured and runs
its fault-free fast path otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.codec.modbus.constants import MBAP_HEADER_SIZE, MBAP_MAX_LENGTH, MBAP_MIN_LENGTH

SYNTAX = "NAME[=VALUE][:fc=N][:every=N], e.g. delay=200, exception=6:fc=3, no-reply:every=5"

# name -> (what its value is, or None when it takes none; lowest value; highest value)
FAULT_KINDS: dict[str, tuple[str | None, int, int]] = {
    "delay": ("milliseconds", 0, 3_600_000),
    "no-reply": (None, 0, 0),
    "wrong-tid": (None, 0, 0),
    "wrong-unit": (None, 0, 0),
    "wrong-length": (None, 0, 0),
    "exception": ("exception code", 1, 255),
    "truncate": (None, 0, 0),
    "close-mid-reply": (None, 0, 0),
    "lose-writes": (None, 0, 0),
    "hang-on-bad-length": ("milliseconds", 0, 3_600_000),
}
WRITE_FUNCTION_CODES = frozenset((0x05, 0x06, 0x0F, 0x10))


class FaultSyntaxError(ValueError):
    """A --fault text that cannot be understood; the message says the right syntax."""


@dataclass
class Fault:
    """One active fault: what it does (`kind`, `value`) and to which requests (`fc`, `every`)."""

    kind: str
    value: int | None = None
    fc: int | None = None
    every: int | None = None
    matched: int = field(default=0, compare=False)  # matching requests seen, for `every`

    def applies(self, function_code: int) -> bool:
        """Whether this fault hits the next request with this function code (counts it)."""
        if self.fc is not None and function_code != self.fc:
            return False
        if self.every is None:
            return True
        self.matched += 1
        return self.matched % self.every == 0

    def __str__(self) -> str:
        text = self.kind if self.value is None else f"{self.kind}={self.value}"
        if self.fc is not None:
            text += f":fc={self.fc}"
        if self.every is not None:
            text += f":every={self.every}"
        return text


def _number(text: str, what: str, low: int, high: int, whole: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise FaultSyntaxError(f"fault {whole!r}: {what} must be a whole number from {low} to {high}, got {text!r}") from None
    if not low <= value <= high:
        raise FaultSyntaxError(f"fault {whole!r}: {what} must be from {low} to {high}, got {value}")
    return value


def parse_fault(text: str) -> Fault:
    """`delay=200:fc=3` -> Fault('delay', 200, fc=3); FaultSyntaxError (a ValueError) if malformed."""
    whole = text
    text = text.strip()
    if not text:
        raise FaultSyntaxError(f"empty fault; expected {SYNTAX}")
    head, *filters = text.split(":")
    name, has_value, raw_value = head.partition("=")
    name = name.strip().lower()
    if name not in FAULT_KINDS:
        raise FaultSyntaxError(
            f"unknown fault {name!r} in {whole!r}; known faults: {', '.join(FAULT_KINDS)}; syntax: {SYNTAX}"
        )
    what, low, high = FAULT_KINDS[name]
    value = None
    if what is None:
        if has_value:
            raise FaultSyntaxError(f"fault {whole!r}: {name} takes no value; write just {name!r} (syntax: {SYNTAX})")
    else:
        if not has_value or not raw_value.strip():
            example = "delay=200" if name == "delay" else "exception=4"
            raise FaultSyntaxError(f"fault {whole!r}: {name} needs a {what}, e.g. {example!r}")
        value = _number(raw_value.strip(), what, low, high, whole)
    fault = Fault(name, value)
    for item in filters:
        key, has_eq, raw = item.partition("=")
        key = key.strip().lower()
        if key not in ("fc", "every") or not has_eq:
            raise FaultSyntaxError(
                f"fault {whole!r}: unknown filter {item!r}; filters are ':fc=N' (function code 1..127) "
                f"and ':every=N' (every Nth request); syntax: {SYNTAX}"
            )
        if key == "fc":
            if fault.fc is not None:
                raise FaultSyntaxError(f"fault {whole!r}: ':fc=' appears twice")
            fault.fc = _number(raw.strip(), "fc", 1, 127, whole)
        else:
            if fault.every is not None:
                raise FaultSyntaxError(f"fault {whole!r}: ':every=' appears twice")
            fault.every = _number(raw.strip(), "every", 1, 1_000_000, whole)
    return fault


def parse_faults(texts: list[str] | tuple[str, ...]) -> list[Fault]:
    return [parse_fault(t) for t in texts]


def stream_has_bad_length(stream: bytes) -> bool:
    """Whether `stream`, sent on one connection, reaches an MBAP header whose length field is out
    of range: what `hang-on-bad-length` reacts to.  The simulator walks the stream frame by
    frame, so a bad header may follow a good short frame in the same bytes.  For the tests of
    the robustness suite, which must find such a stream without being told."""
    pos = 0
    while len(stream) - pos >= MBAP_HEADER_SIZE:
        length = int.from_bytes(stream[pos + 4:pos + 6], "big")
        if not MBAP_MIN_LENGTH <= length <= MBAP_MAX_LENGTH:
            return True
        pos += 6 + length
    return False
