"""The pcap writer: file format, IP/TCP headers and checksums, sequence numbers, handshakes,
segmentation, grouping of case frames into connections, and (when installed) tshark's view."""

from __future__ import annotations

import ipaddress
import shutil
import struct
import subprocess

import pytest

from harness.model import Frame
from harness.transport.pcap import (
    LINKTYPE_RAW,
    MSS,
    CaptureConnection,
    build_pcap,
    frame_ranges,
    parse_conn,
    pcap_connections_from_cases,
    write_pcap,
)

CONN = "127.0.0.1:40001->127.0.0.1:5020"
T0 = 1_700_000_000.0
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10


def read_request(tid: int, address: int = 0, qty: int = 1, unit: int = 1) -> str:
    return struct.pack(">HHHBBHH", tid, 0, 6, unit, 3, address, qty).hex()


def read_response(tid: int, values: list[int], unit: int = 1) -> str:
    pdu = struct.pack(">BB", 3, 2 * len(values)) + b"".join(struct.pack(">H", v) for v in values)
    return (struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu).hex()


def exchange(tid: int, t: float, conn: str = CONN) -> list[Frame]:
    return [
        Frame("tx", 10.0 + t, T0 + t, read_request(tid), f"req {tid}", conn),
        Frame("rx", 10.0 + t + 0.002, T0 + t + 0.002, read_response(tid, [tid]), f"resp {tid}", conn),
    ]


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def read_pcap(data: bytes) -> tuple[tuple, list[dict]]:
    """Parse the file independently of the writer; verify every checksum on the way."""
    header = struct.unpack("<IHHiIII", data[:24])
    packets, pos = [], 24
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[pos : pos + 16])
        raw = data[pos + 16 : pos + 16 + incl]
        assert incl == orig == len(raw)
        pos += 16 + incl
        version = raw[0] >> 4
        if version == 4:
            ihl = (raw[0] & 0x0F) * 4
            total_len, proto = struct.unpack("!H", raw[2:4])[0], raw[9]
            assert total_len == len(raw) and proto == 6
            assert checksum(raw[:ihl]) == 0, "bad IPv4 header checksum"
            src, dst, seg = raw[12:16], raw[16:20], raw[ihl:]
            pseudo = src + dst + struct.pack("!BBH", 0, 6, len(seg))
        else:
            assert version == 6
            payload_len, next_header = struct.unpack("!HB", raw[4:7])
            assert payload_len == len(raw) - 40 and next_header == 6
            src, dst, seg = raw[8:24], raw[24:40], raw[40:]
            pseudo = src + dst + struct.pack("!I3xB", len(seg), 6)
        assert checksum(pseudo + seg) == 0, "bad TCP checksum"
        sport, dport, seq, ack, off, flags, win = struct.unpack("!HHIIBBH", seg[:16])
        packets.append(
            {
                "t": sec + usec / 1e6,
                "src": (str(ipaddress.ip_address(src)), sport),
                "dst": (str(ipaddress.ip_address(dst)), dport),
                "seq": seq,
                "ack": ack,
                "flags": flags,
                "payload": seg[(off >> 4) * 4 :],
            }
        )
    return header, packets


def check_tcp_consistency(packets: list[dict]) -> dict:
    """Per 4-tuple: handshake first, contiguous sequence numbers, acks never ahead of data."""
    streams: dict = {}
    for p in packets:
        key = frozenset([p["src"], p["dst"]])
        streams.setdefault(key, []).append(p)
    for stream in streams.values():
        assert stream[0]["flags"] == SYN and stream[1]["flags"] == SYN | ACK and stream[2]["flags"] == ACK
        nxt = {stream[0]["src"]: stream[0]["seq"], stream[1]["src"]: stream[1]["seq"]}
        for p in stream:
            me = p["src"]
            peer = p["dst"]
            assert p["seq"] == nxt[me], "sequence gap or overlap"
            if p["flags"] & ACK:
                assert p["ack"] == nxt[peer], "ack does not cover exactly the peer's data"
            nxt[me] = (nxt[me] + len(p["payload"]) + (1 if p["flags"] & (SYN | FIN) else 0)) & 0xFFFFFFFF
    return streams


def test_file_header_and_packets(tmp_path):
    conn = CaptureConnection(("127.0.0.1", 40001), ("127.0.0.1", 502), exchange(1, 0.0) + exchange(2, 0.01), case_id="A")
    numbers = write_pcap(tmp_path / "c.pcap", [conn])
    header, packets = read_pcap((tmp_path / "c.pcap").read_bytes())
    assert header == (0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW)
    flags = [p["flags"] for p in packets]
    assert flags == [SYN, SYN | ACK, ACK] + [ACK | PSH] * 4 + [FIN | ACK, FIN | ACK, ACK]
    assert [p["payload"].hex() for p in packets[3:7]] == [f.hex for f in conn.frames]
    assert [p["src"][1] for p in packets[3:7]] == [40001, 502, 40001, 502]
    check_tcp_consistency(packets)
    assert packets[3]["t"] == pytest.approx(T0, abs=1e-6)
    assert all(a["t"] <= b["t"] for a, b in zip(packets, packets[1:]))
    assert numbers == {"A": list(range(1, 11))}


def test_open_connection_has_no_fin_and_frames_accept_dicts():
    frames = [f.__dict__ for f in exchange(1, 0.0)]
    data, _ = build_pcap([CaptureConnection(("127.0.0.1", 1), ("127.0.0.1", 502), frames, closed=False)])
    _, packets = read_pcap(data)
    assert len(packets) == 5 and not any(p["flags"] & FIN for p in packets)


def test_large_payload_is_split_into_segments():
    big = "ab" * 4000
    conn = CaptureConnection(("127.0.0.1", 1), ("127.0.0.1", 502), [Frame("tx", 0, T0, big, "big")])
    _, packets = read_pcap(build_pcap([conn])[0])
    data = [p for p in packets if p["payload"]]
    assert [len(p["payload"]) for p in data] == [MSS, MSS, 4000 - 2 * MSS]
    assert b"".join(p["payload"] for p in data).hex() == big
    assert [bool(p["flags"] & PSH) for p in data] == [False, False, True]
    check_tcp_consistency(packets)


def test_flood_without_answers_gets_acked_before_the_window_fills():
    frames = [Frame("tx", i * 1e-3, T0 + i * 1e-3, "00" * 260, "flood") for i in range(400)]
    _, packets = read_pcap(build_pcap([CaptureConnection(("127.0.0.1", 1), ("127.0.0.1", 502), frames)])[0])
    check_tcp_consistency(packets)
    in_flight = 0
    for p in packets:
        if p["src"][1] == 1:
            in_flight += len(p["payload"])
            assert in_flight < 65535
        elif p["flags"] & ACK:
            in_flight = 0


def test_empty_and_bad_payloads_are_skipped():
    frames = [Frame("tx", 0, T0, "", "nothing"), Frame("tx", 0, T0, "zz", "bad hex")]
    data, numbers = build_pcap([CaptureConnection(("127.0.0.1", 1), ("127.0.0.1", 502), frames, case_id="A")])
    assert len(data) == 24 and numbers == {}


def test_ipv6_connection():
    frames = exchange(1, 0.0, conn="[::1]:40001->[::1]:5020")
    conns = pcap_connections_from_cases([{"id": "V6", "evidence": {"frames": [f.__dict__ for f in frames]}}])
    _, packets = read_pcap(build_pcap(conns)[0])
    assert packets[0]["src"] == ("::1", 40001) and packets[0]["dst"] == ("::1", 5020)
    check_tcp_consistency(packets)


def test_parse_conn():
    assert parse_conn(CONN) == (("127.0.0.1", 40001), ("127.0.0.1", 5020))
    assert parse_conn("[::1]:5->[::1]:6") == (("::1", 5), ("::1", 6))
    assert parse_conn("localhost:5->127.0.0.1:6") == (("127.0.0.1", 5), ("127.0.0.1", 6))
    (client, server) = parse_conn("10.0.0.7:40001->plc-7.example:502")
    assert client == ("10.0.0.7", 40001) and server[1] == 502
    assert ipaddress.ip_address(server[0]) in ipaddress.ip_network("192.0.2.0/24")
    assert parse_conn("10.0.0.8:1->PLC-7.example:502")[1] == server  # stable per name
    for bad in ("", "127.0.0.1:1", "1.2.3.4:99999->1.2.3.4:1", "a->b", "a b:1->c:2", "1.2.3.4:x->1.2.3.4:1"):
        assert parse_conn(bad) is None


def cases_dicts() -> list[dict]:
    shared_a = exchange(1, 0.0) + exchange(2, 0.01)
    shared_b = exchange(3, 0.02)
    other = exchange(1, 0.03, conn="127.0.0.1:40002->127.0.0.1:5020")
    loose = [Frame(f.direction, f.t_mono, f.t_wall, f.hex, f.summary, "") for f in exchange(9, 0.05)]
    return [
        {"id": "A", "evidence": {"frames": [f.__dict__ for f in shared_a]}},
        {"id": "B", "evidence": {"frames": [f.__dict__ for f in shared_b + other]}},
        {"id": "C", "evidence": {"frames": [f.__dict__ for f in loose]}},
        {"id": "D", "evidence": {"frames": []}},
        {"id": "E", "evidence": None},
    ]


def test_connections_grouped_by_conn_across_cases():
    conns = pcap_connections_from_cases(cases_dicts(), server_port_override=502)
    assert [(c.client, c.server) for c in conns] == [
        (("127.0.0.1", 40001), ("127.0.0.1", 502)),
        (("127.0.0.1", 40002), ("127.0.0.1", 502)),
        (("127.0.0.1", 60000), ("127.0.0.1", 502)),  # synthetic, for case C's frames without conn
    ]
    assert conns[0].frame_case_ids == ["A"] * 4 + ["B"] * 2
    assert conns[1].frame_case_ids == ["B", "B"]
    assert conns[2].case_id == "C"


def test_frame_numbers_per_case():
    data, numbers = build_pcap(pcap_connections_from_cases(cases_dicts(), server_port_override=502))
    _, packets = read_pcap(data)
    streams = check_tcp_consistency(packets)
    assert len(streams) == 3
    assert set(numbers) == {"A", "B", "C"}
    # A: handshake and its two exchanges; B: its exchange and the teardown of the shared
    # connection, then the whole of its second connection; C: its synthetic connection
    assert frame_ranges(numbers["A"]) == "1-7"
    assert frame_ranges(numbers["B"]) == "8-20"
    assert frame_ranges(numbers["C"]) == "21-28"
    assert sum(len(v) for v in numbers.values()) == len(packets)


def test_server_port_override_never_merges_two_connections():
    frames_a = exchange(1, 0.0, conn="127.0.0.1:40001->127.0.0.1:5020")
    frames_b = exchange(1, 0.1, conn="127.0.0.1:40001->127.0.0.1:5021")
    cases = [{"id": "A", "evidence": {"frames": [f.__dict__ for f in frames_a + frames_b]}}]
    conns = pcap_connections_from_cases(cases)
    _, packets = read_pcap(build_pcap(conns, server_port_override=502)[0])
    streams = check_tcp_consistency(packets)
    assert len(streams) == 2
    assert all(p["dst"][1] == 502 or p["src"][1] == 502 for p in packets)


def test_frame_ranges():
    assert frame_ranges([]) == ""
    assert frame_ranges([5]) == "5"
    assert frame_ranges([14, 12, 13, 18, 18, 20, 21]) == "12-14, 18, 20-21"


def tshark(*args: str) -> str:
    proc = subprocess.run([TSHARK, "-n", *args], capture_output=True, text=True, timeout=60, check=True)
    return proc.stdout


@needs_tshark
def test_tshark_decodes_modbus_tcp(tmp_path):
    path = tmp_path / "capture.pcap"
    write_pcap(path, pcap_connections_from_cases(cases_dicts(), server_port_override=502))
    out = tshark("-r", str(path), "-Y", "mbtcp", "-T", "fields", "-e", "mbtcp.trans_id", "-e", "modbus.func_code")
    rows = [tuple(line.split("\t")) for line in out.splitlines()]
    assert rows == [
        ("1", "3"), ("1", "3"), ("2", "3"), ("2", "3"), ("3", "3"), ("3", "3"),
        ("1", "3"), ("1", "3"), ("9", "3"), ("9", "3"),
    ]


@needs_tshark
def test_tshark_reports_no_malformed_packets_or_tcp_warnings(tmp_path):
    path = tmp_path / "capture.pcap"
    unanswered = Frame("tx", 20.0, T0 + 1, read_request(77), "req 77, no answer", "")
    cases = cases_dicts() + [
        {"id": "F", "evidence": {"frames": [Frame("tx", 30 + i * 1e-3, T0 + 2 + i * 1e-3, read_request(i), "", "127.0.0.1:40009->127.0.0.1:5020").__dict__ for i in range(3000)]}},
        {"id": "G", "evidence": {"frames": [unanswered.__dict__]}},
        {"id": "V6", "evidence": {"frames": [f.__dict__ for f in exchange(5, 3.0, conn="[::1]:40001->[::1]:5020")]}},
    ]
    write_pcap(path, pcap_connections_from_cases(cases, server_port_override=502))
    flagged = tshark(
        "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
        "-Y", "_ws.malformed or tcp.analysis.flags or _ws.expert.severity >= 6291456 or tcp.checksum.status != 1",
    )
    assert flagged == ""
    streams = tshark("-r", str(path), "-T", "fields", "-e", "tcp.stream")
    assert len(set(streams.split())) == 6


@needs_tshark
def test_tshark_reassembles_a_split_pdu(tmp_path):
    # Write Multiple Registers with 123 registers is the longest legal PDU; send it in 3 TCP
    # segments by giving it a payload larger than one MSS (two requests back to back).
    pdu = struct.pack(">BHHB", 16, 0, 123, 246) + b"\x00" * 246
    adu = lambda tid: struct.pack(">HHHB", tid, 0, len(pdu) + 1, 1) + pdu  # noqa: E731
    payload = b"".join(adu(t) for t in range(1, 7)).hex()  # 6 * 260 bytes = 1560 > MSS
    conn = CaptureConnection(("127.0.0.1", 40001), ("127.0.0.1", 502), [Frame("tx", 0, T0, payload, "")])
    path = tmp_path / "split.pcap"
    write_pcap(path, [conn])
    out = tshark("-r", str(path), "-Y", "mbtcp", "-T", "fields", "-e", "mbtcp.trans_id")
    assert [int(x) for line in out.split() for x in line.split(",")] == [1, 2, 3, 4, 5, 6]
    assert tshark("-r", str(path), "-Y", "_ws.malformed or tcp.analysis.flags") == ""
