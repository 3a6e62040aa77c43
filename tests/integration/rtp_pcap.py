"""Caller media that no real phone sends, as pcap files SIPp replays (play_pcap_audio): RTP at
twice the real rate, and garbage (truncated headers, wrong versions, random payload types,
oversized and empty datagrams)."""

from __future__ import annotations

import random
import struct
import subprocess
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


EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}


MAX_DURATION = 0xFFFF
"""The longest duration one telephone-event can carry (8.19 s at 8 kHz)."""


def rfc4733(path: Path, keys: str, *, marker: bool = True, hold_ms: int | dict[str, int] = 100,
            end_repeats: int = 3, gap_ms: int = 300, packet_ms: int = 20, pt: int = 101,
            long_style: str = "segments") -> Path:
    """Key presses as RFC 4733 telephone-events, as phones send them: per key one timestamp,
    a packet every `packet_ms` with the duration so far (the first with the marker bit unless
    `marker` is False), then the end packet (E bit) sent `end_repeats` times. `hold_ms` per key
    (a dict) makes long-held keys. A key held beyond MAX_DURATION goes out as RFC 4733 2.5.1.3
    says (`long_style="segments"`: a packet at MAX_DURATION, then a new segment whose timestamp
    is the old one + MAX_DURATION, no marker) or as some phones do it (`"wrap"`: the same
    timestamp, the duration wrapping around 16 bits)."""
    packets: list[tuple[float, bytes]] = []
    seq, at = 0, 0.2
    ts = 16000

    def send(event: int, stamp: int, duration: int, *, first: bool, end: bool) -> None:
        nonlocal seq
        header = struct.pack("!BBHII", 0x80, (0x80 if first else 0) | pt, seq & 0xFFFF,
                             stamp & 0xFFFFFFFF, 0x4733)
        body = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
        packets.append((at, header + body))
        seq += 1

    for key in keys:
        hold = hold_ms.get(key, 100) if isinstance(hold_ms, dict) else hold_ms
        steps = max(1, hold // packet_ms)
        segment = 0
        for i in range(steps + end_repeats):
            elapsed = min(steps, i + 1) * packet_ms * 8
            if long_style == "wrap":
                stamp, duration = ts, elapsed & MAX_DURATION
            else:
                while elapsed > (segment + 1) * MAX_DURATION:  # this segment is full
                    send(EVENT_CODES[key], ts + segment * MAX_DURATION, MAX_DURATION,
                         first=False, end=False)
                    segment += 1
                stamp, duration = ts + segment * MAX_DURATION, elapsed - segment * MAX_DURATION
            send(EVENT_CODES[key], stamp, duration, first=i == 0 and marker, end=i >= steps)
            at += packet_ms / 1000
        ts += (steps + 1) * packet_ms * 8 + gap_ms * 8
        at += gap_ms / 1000
    return write_pcap(path, packets)


def ulaw_audio(path: Path, wav: Path, *, rate: int = 8000, start: float = 0.2) -> Path:
    """A WAV file as PCMU RTP (20 ms a packet). `rate` other than 8000 sends audio sampled at
    that rate as if it were 8 kHz: a caller at the wrong rate (16000: half speed, an octave
    down)."""
    raw = subprocess.run(["sox", str(wav), "-r", str(rate), "-c", "1", "-t", "raw", "-e", "u-law",
                          "-"], capture_output=True, check=True, timeout=60).stdout
    return write_pcap(path, [(start + i / 50, rtp(i, i * 160, pt=0, payload=raw[i * 160:(i + 1) * 160]))
                             for i in range(len(raw) // 160)])


def comfort_noise(path: Path, seconds: float, *, level: int = 40, start: float = 0.2) -> Path:
    """RFC 3389 comfort noise only: payload type 13, one byte of noise level (-`level` dBov) a
    packet, every 20 ms, as a phone with VAD/DTX sends while its user is silent."""
    n = int(seconds * 50)
    return write_pcap(path, [(start + i / 50, rtp(i, i * 160, pt=13, payload=bytes([level])))
                             for i in range(n)])
