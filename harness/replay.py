"""`harness replay RUN CASE`: send the input that broke a device once more, to show a vendor.

A robustness case that FAILs records, in its evidence's `replay` block, exactly the bytes that
broke the device (minimised), the seed, how long the device may take to recover and the known
points the liveness check reads. Replay sends those bytes, as they were, to the run's target or
another one (a restarted device, a fixed firmware), shows what came back, and checks whether the
device still answers: "reproduced" when it does not, or, for a failure that was a missing
answer (the block's `cause` is "answer"), when the input gets no answer again.  With `with_preceding`, the few inputs the
fuzzer sent before the first one that broke the device go first, each on its own connection as
in the run: for a failure that needs the state they leave behind.

The run is a run directory, a results.json, or a run of the archive (id, prefix, latest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .attacks import modbus_tcp_reply_length, send_each, uacp_reply_length
from .codec.modbus.describe import describe_tcp
from .liveness_modbus import replay_alive
from .target import parse_target


class ReplayError(ValueError):
    """The replay cannot start; the message says why and what to do."""


@dataclass
class ReplayStep:
    sent: bytes
    reply: bytes | None
    closed: bool
    error: str
    described_sent: str
    described_reply: str
    preceding: bool = False  # one of the inputs sent before the one that broke the device


@dataclass
class ReplayReport:
    target: str
    case_id: str
    problem: str  # what the recorded failure was
    alive_before: bool
    alive_after: bool | None  # None: no known points to check
    steps: list[ReplayStep] = field(default_factory=list)
    answer_required: bool = False  # the recorded failure was the input's missing answer

    @property
    def unanswered(self) -> bool:
        """The input whose answer the spec requires got none again."""
        return self.answer_required and bool(self.steps) and self.steps[-1].reply is None

    @property
    def reproduced(self) -> bool:
        return self.alive_before and (self.alive_after is False or self.unanswered)


def load_results(run: str, archive: Path | None = None) -> dict:
    """The results document of `run`: a directory with results.json, a results.json, or a run
    id of the archive."""
    path = Path(run)
    if path.is_dir():
        path = path / "results.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReplayError(f"cannot read {path}: {exc}") from None
    from .store import ArchiveError, RunArchive

    try:
        with RunArchive.open(archive, create=False) as store:
            return store.results(run)
    except ArchiveError as exc:
        raise ReplayError(f"{run!r} is not a run directory, a results.json or an archived run: {exc}") from None


def replay_block(results: dict, case_id: str) -> dict:
    cases = [c for c in results.get("cases") or [] if c.get("id") == case_id]
    if not cases:
        ids = sorted(c.get("id", "") for c in results.get("cases") or [] if (c.get("evidence") or {}).get("replay"))
        hint = f"cases with a replay input: {', '.join(ids)}" if ids else "this run has no case with a replay input"
        raise ReplayError(f"no case {case_id!r} in the run; {hint}")
    block = (cases[0].get("evidence") or {}).get("replay")
    if not block:
        raise ReplayError(f"case {case_id} has no replay input (its verdict here: {cases[0].get('verdict')}): only a robustness "
                          "case that FAILed on input that can be sent again as recorded keeps one; for a sequence bound to "
                          "a session, its evidence notes list the steps and the seed that generates them again")
    return block


def _alive(target, block: dict, timeout_s: float, within_s: float) -> bool | None:
    return replay_alive(target.host, target.port, target.unit or block.get("unit") or 1, block, timeout_s, within_s)


def _alive_opcua(target, block: dict, timeout_s: float, within_s: float) -> bool | None:
    from .liveness_opcua import replay_alive as opcua_replay_alive  # asyncua: loaded only for an OPC UA replay

    return opcua_replay_alive(target.url, block, timeout_s, within_s)


def replay(results: dict, case_id: str, target_url: str | None = None, with_preceding: bool = False) -> ReplayReport:
    block = replay_block(results, case_id)
    url = target_url or (results.get("target") or {}).get("url")
    if not url:
        raise ReplayError("the run names no target: pass --target URL")
    target = parse_target(url)
    protocol = block.get("protocol", target.protocol)
    if protocol != target.protocol:
        raise ReplayError(f"the recorded input is {protocol}, the target {url} is {target.protocol}")
    frames = [bytes.fromhex(h) for h in block.get("frames") or []]
    if not frames:
        raise ReplayError(f"case {case_id}'s replay block has no frames")
    connections = [(False, frames)]
    if with_preceding:
        earlier = [[bytes.fromhex(h) for h in connection] for connection in block.get("preceding") or []]
        if not earlier:
            raise ReplayError(f"case {case_id} recorded no inputs before the one that broke the device: replay it "
                              "without --with-preceding")
        connections = [(True, connection) for connection in earlier] + connections
    reply_length = modbus_tcp_reply_length if protocol == "modbus" else uacp_reply_length
    timeout_s = float(block.get("reply_timeout_s", 1.0))
    recovery_s = float(block.get("recovery_s", 2.0))
    report = ReplayReport(url, case_id, str(block.get("problem", "")), alive_before=True, alive_after=None,
                          answer_required=block.get("cause") == "answer")
    alive = _alive if protocol == "modbus" else _alive_opcua
    before = alive(target, block, timeout_s, recovery_s)
    report.alive_before = before is not False
    if before is False:
        return report
    for preceding, sent in connections:
        outcomes = send_each(target.host, target.port, sent, reply_length=reply_length, reply_timeout_s=timeout_s,
                             reconnect=False)
        for frame, outcome in zip(sent, outcomes):
            report.steps.append(ReplayStep(
                frame, outcome.reply, outcome.closed, outcome.error,
                describe_tcp(frame, is_response=False) if protocol == "modbus" else f"{len(frame)} bytes",
                (describe_tcp(outcome.reply, is_response=True) if protocol == "modbus" else f"{len(outcome.reply)} bytes")
                if outcome.reply else "", preceding))
    # the case's criterion: an answer within the monitor's timeout after the input
    report.alive_after = alive(target, block, timeout_s, float(block.get("answer_within_s", recovery_s)))
    return report
