"""Nothing written is lost: random sequences of writes and reads over the device's writable
points, checked against a model of what the device must hold (a Hypothesis
RuleBasedStateMachine). Writes go one at a time and, where the device claims more than one
outstanding transaction, several at once on one connection, so that a lost or reordered write
shows. The addresses are the first eight and the last eight of the writable range (16 in a row
when the range is shorter than 32), so that a device that keeps only part of its range is seen.
A failure is shrunk to the shortest sequence that still shows it, for at most the profile's
`robustness.shrink_time_ms`; that sequence is the evidence, and `harness replay RUN CASE` sends it
again."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, Phase, assume, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from harness.codec.modbus import pdu as P
from harness.codec.modbus.bits import pack_bits
from harness.codec.modbus.constants import FunctionCode, Table
from harness.conformance import DeviceFailure, case, fail, not_applicable
from harness.transport.modbus_tcp import ModbusTcpConnection, TransportError

from .support import AP

WINDOW = 16  # writable addresses exercised: small, so that reads and writes overlap often
BLOCK = 8  # ... as two blocks of this many, at both ends of a writable range of 2 * WINDOW or more
STEPS = 25  # steps per sequence
SEQUENCES = 25  # sequences tried (before shrinking)


def window_blocks(start: int, count: int) -> list[tuple[int, int]]:
    """The (first address, length) blocks exercised in a writable range: both ends of it."""
    if count >= 2 * WINDOW:
        return [(start, BLOCK), (start + count - BLOCK, BLOCK)]
    return [(start, WINDOW)]


def _machine(dut, table: Table, blocks: list[tuple[int, int]], shrink_time_s: float):
    """A state machine class bound to this device and its writable blocks."""
    addresses = [first + n for first, length in blocks for n in range(length)]  # model index -> address
    registers = table is Table.HOLDING_REGISTERS
    fc_one, fc_many = ((FunctionCode.WRITE_SINGLE_REGISTER, FunctionCode.WRITE_MULTIPLE_REGISTERS) if registers
                       else (FunctionCode.WRITE_SINGLE_COIL, FunctionCode.WRITE_MULTIPLE_COILS))
    can_one, can_many = dut.mb.claims(fc_one), dut.mb.claims(fc_many)
    pipelined = dut.mb.max_outstanding > 1
    value = st.integers(0, 0xFFFF) if registers else st.booleans()
    offset = st.integers(0, len(addresses) - 1)

    def one(address: int, v) -> bytes:
        if registers:
            return P.encode_pdu(P.WriteSingleRegisterRequest(address, v))
        return P.encode_pdu(P.WriteSingleCoilRequest(address, 0xFF00 if v else 0x0000))

    def many(address: int, values: list) -> bytes:
        if registers:
            return P.encode_pdu(P.WriteMultipleRegistersRequest(address, len(values), 2 * len(values), tuple(values)))
        data = pack_bits(values)
        return P.encode_pdu(P.WriteMultipleCoilsRequest(address, len(values), len(data), data))

    class WritesHeld(RuleBasedStateMachine):
        failure: dict = {}  # the last (so, after shrinking, the shortest) failing sequence
        first_failure_at: float | None = None

        def __init__(self):
            super().__init__()
            self.frames: list = []
            self.steps: list[str] = []
            self.conn = ModbusTcpConnection(dut.target.host, dut.target.port, unit=dut.unit, timeout=dut.timeout,
                                            recorder=self.frames.append)
            self.model: list = []

        def teardown(self):
            self.conn.close()

        def _transact(self, pdu: bytes):
            try:
                return dut.transact(pdu, self.conn)
            except (DeviceFailure, TransportError) as exc:
                self._failed(f"{self.steps[-1]}: {exc}")
                raise

        def _read_window(self) -> list:
            held: list = []
            for first, length in blocks:
                if registers:
                    held += dut.read_words(table, first, length, self.conn)
                else:
                    held += dut.read_bits(table, first, length, self.conn)
            return held

        def _check(self, what: str) -> None:
            try:
                held = self._read_window()
            except DeviceFailure as exc:
                self._failed(f"{what}: {exc}")
                raise
            if held != self.model:
                diff = [f"{addresses[i]}: holds {h!r}, last written {m!r}" for i, (h, m) in enumerate(zip(held, self.model))
                        if h != m]
                message = f"{what}: {len(diff)} address(es) do not hold what was last written ({'; '.join(diff[:4])})"
                self._failed(message)
                raise AssertionError(message)

        def _failed(self, message: str) -> None:
            if type(self).first_failure_at is None:
                type(self).first_failure_at = time.monotonic()
            type(self).failure = {"message": message, "steps": list(self.steps),
                                  "frames": [f for f in self.frames if f.direction == "tx"]}

        @initialize()
        def read_initial_values(self):
            since = type(self).first_failure_at
            # out of shrinking time: no more sequences are sent; the shortest so far is the evidence
            assume(since is None or time.monotonic() - since <= shrink_time_s)
            self.model = self._read_window()
            self.steps.append(f"read {table.value} {_blocks_text(blocks)}: the starting values")

        @precondition(lambda self: can_one)
        @rule(i=offset, v=value)
        def write_one(self, i, v):
            self.steps.append(f"FC{int(fc_one):02d} write {addresses[i]} = {v!r}")
            self._transact(one(addresses[i], v))
            self.model[i] = v

        @precondition(lambda self: can_many)
        @rule(i=offset, values=st.lists(value, min_size=1, max_size=WINDOW))
        def write_many(self, i, values):
            # within the block that holds address i: the blocks need not be contiguous
            block_end = next(end for end in _block_ends(blocks) if i < end)
            values = values[: block_end - i]
            self.steps.append(f"FC{int(fc_many):02d} write {addresses[i]}..{addresses[i] + len(values) - 1} = {values!r}")
            self._transact(many(addresses[i], values))
            self.model[i:i + len(values)] = values

        @precondition(lambda self: can_one and pipelined)
        @rule(writes=st.lists(st.tuples(offset, value), min_size=2, max_size=min(8, dut.mb.max_outstanding)))
        def write_pipelined(self, writes):
            """Several writes in flight on one connection: each applied, in order."""
            self.steps.append("pipelined, in this order: " + ", ".join(f"{addresses[i]} = {v!r}" for i, v in writes))
            try:
                tids = [self.conn.send_pdu(one(addresses[i], v)) for i, v in writes]
                answered = {getattr(self.conn.receive().adu, "transaction_id", None) for _tid in tids}
            except TransportError as exc:
                self._failed(f"{self.steps[-1]}: {exc}")
                raise
            if answered != set(tids):
                message = f"pipelined writes: answers for transactions {sorted(answered, key=str)}, sent {tids}"
                self._failed(message)
                raise AssertionError(message)
            for i, v in writes:
                self.model[i] = v

        @rule()
        def read_back(self):
            self.steps.append(f"read back {_blocks_text(blocks)}")
            self._check("read back")

    return WritesHeld


def _block_ends(blocks: list[tuple[int, int]]) -> list[int]:
    """The model index just past each block."""
    ends, total = [], 0
    for _first, length in blocks:
        total += length
        ends.append(total)
    return ends


def _blocks_text(blocks: list[tuple[int, int]]) -> str:
    return " and ".join(f"{first}..{first + length - 1}" for first, length in blocks)


def _run(dut, evidence, rob, harness_seed, table: Table) -> None:
    area = dut.mb.writable.get(table)
    if area is None or area.count < 1:
        not_applicable(f"the profile gives no writable {table.value} range")
    fcs = ((FunctionCode.WRITE_SINGLE_REGISTER, FunctionCode.WRITE_MULTIPLE_REGISTERS) if table is Table.HOLDING_REGISTERS
           else (FunctionCode.WRITE_SINGLE_COIL, FunctionCode.WRITE_MULTIPLE_COILS))
    if not any(dut.mb.claims(fc) for fc in fcs):
        not_applicable(f"the profile claims no function code writing {table.value}")
    read_fc = FunctionCode.READ_HOLDING_REGISTERS if table is Table.HOLDING_REGISTERS else FunctionCode.READ_COILS
    dut.require(read_fc)
    if area.count < WINDOW:
        not_applicable(f"the writable {table.value} range has fewer than {WINDOW} addresses")
    blocks = window_blocks(area.start, area.count)
    machine = _machine(dut, table, blocks, rob.shrink_time_ms / 1000)
    config = settings(max_examples=SEQUENCES, stateful_step_count=STEPS, database=None, deadline=None,
                      # no explain phase: it re-runs the failing sequence's variants against the device,
                      # which costs more than the shrinking itself and adds nothing to the evidence
                      phases=(Phase.generate, Phase.shrink),
                      suppress_health_check=list(HealthCheck), print_blob=False)
    try:
        run_state_machine_as_test(seed(harness_seed)(machine), settings=config)
    except Exception as exc:
        failure = machine.failure or {"message": str(exc).splitlines()[0], "steps": [], "frames": []}
        evidence.notes.append("the shortest sequence that shows it, after shrinking (seed "
                              f"{harness_seed}):")
        evidence.notes += [f"{n}. {step}" for n, step in enumerate(failure["steps"], 1)]
        evidence.frames += failure["frames"]
        evidence.replay = {"protocol": "modbus", "frames": [f.hex for f in failure["frames"]], "sequence": True,
                           "seed": harness_seed, "reply_timeout_s": dut.timeout, "recovery_s": 0,
                           "problem": failure["message"]}
        fail(failure["message"], expected="every address holds the value last written to it",
             observed=failure["message"])
    evidence.notes.append(f"{SEQUENCES} sequences of up to {STEPS} steps over {table.value} "
                          f"{_blocks_text(blocks)} held every write (seed {harness_seed})")


@case("ROB-MB-STATEFUL-REGISTERS", "Random sequences of register writes and reads hold every write, in order",
      requirements=["ROB-MBAP-6-WRITES-HELD"], level="MUST", clause=f"{AP} §6.6, §6.12")
def test_register_writes_are_held(dut, evidence, rob, harness_seed):
    _run(dut, evidence, rob, harness_seed, Table.HOLDING_REGISTERS)


@case("ROB-MB-STATEFUL-COILS", "Random sequences of coil writes and reads hold every write, in order",
      requirements=["ROB-MBAP-6-WRITES-HELD"], level="MUST", clause=f"{AP} §6.5, §6.11")
def test_coil_writes_are_held(dut, evidence, rob, harness_seed):
    _run(dut, evidence, rob, harness_seed, Table.COILS)
