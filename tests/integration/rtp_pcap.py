"""Caller media that no real phone sends, as pcap files SIPp replays (play_pcap_audio): RTP at
twice the real rate, and garbage (truncated headers, wrong versions, random payload types,
oversized and empty datagrams)."""

from __future__ import annotations

import random
import struct
from pathlib import Path


def _udp_frame(payload: bytes, sport: int = 4000, dport: int = 5000) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    return b"\x00" * 12 + b"\x08\x00" + ip + udp


def write_pcap(path: Path, packets: list[tuple[float, bytes]]) -> Path:
    """(seconds from start, UDP payload) -> a libpcap file of Ethernet/IPv4/UDP frames."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    base = 1_700_000_000.0
    for at, payload in packets:
        frame = _udp_frame(payload)
        t = base + at
        out.append(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))
    return path


def rtp(seq: int, ts: int, pt: int = 8, ssrc: int = 0x1234, payload: bytes = b"\xd5" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def double_rate(path: Path, seconds: float = 3.0) -> Path:
    """PCMA 20 ms frames sent every 10 ms: twice the audio the clock can play."""
    n = int(seconds / 0.01)
    return write_pcap(path, [(i * 0.01, rtp(i, i * 160)) for i in range(n)])


def garbage(path: Path, seconds: float = 3.0, seed: int = 7) -> Path:
    """Every 5 ms something a decoder must survive."""
    rnd = random.Random(seed)
    makers = [
        lambda i: b"",                                              # empty datagram
        lambda i: bytes([0x80]),                                    # truncated header
        lambda i: rnd.randbytes(11),                                # header cut short
        lambda i: bytes([0x40]) + rnd.randbytes(171),               # RTP version 1
        # any payload type but the telephone-event one (101): random "digits" would steer the flow
        lambda i: rtp(rnd.randrange(65536), rnd.randrange(2**32),
                      pt=rnd.choice([0, 3, 9, 18, 96, 100, 127]), ssrc=rnd.randrange(2**32),
                      payload=rnd.randbytes(rnd.randrange(0, 400))),
        lambda i: rtp(i, i * 160, pt=101, payload=rnd.randbytes(3)),  # a short RFC 4733 event
        lambda i: bytes([0x90]) + rnd.randbytes(30),                # extension bit, bogus length
        lambda i: bytes([0xBF]) + rnd.randbytes(20),                # 15 CSRCs in 21 bytes
        lambda i: rnd.randbytes(1400),                              # a big random datagram
    ]
    n = int(seconds / 0.005)
    return write_pcap(path, [(i * 0.005, makers[i % len(makers)](i)) for i in range(n)])
