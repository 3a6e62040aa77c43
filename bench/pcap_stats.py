"""Latency, jitter and loss from a loopback capture (classic pcap, Ethernet link type on lo).

Per call (keyed by the caller's RTP port from the INVITE's SDP):
- INVITE->200: the caller's INVITE leaving it to the 200 reaching it (SIP port of the caller);
- ACK->first prompt: the caller's ACK to the first RTP packet to the caller carrying sound
  (A/mu-law payload with a peak over `ENERGY_PEAK`), or any echoed packet for the baseline;
- DTMF->next prompt: the caller's first RFC 4733 packet to the first sounding packet after it;
- jitter (RFC 3550 interarrival, from capture time vs RTP timestamp) and loss (sequence gaps)
  of every RTP stream sent to the caller.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENERGY_PEAK = 600
"""A packet 'sounds' when a sample's magnitude exceeds this (of 32767): well above the A-law
silence code (0xD5 = 8) and comfort noise, well below speech."""


def _alaw_table() -> list[int]:
    out = []
    for a in range(256):
        a ^= 0x55
        t = (a & 0x0F) << 4
        seg = (a & 0x70) >> 4
        t = t + 8 if seg == 0 else (t + 0x108) << (seg - 1)
        out.append(t if a & 0x80 else -t)
    return out


def _ulaw_table() -> list[int]:
    out = []
    for u in range(256):
        u = ~u & 0xFF
        t = ((u & 0x0F) << 3) + 0x84
        t <<= (u & 0x70) >> 4
        out.append(0x84 - t if u & 0x80 else t - 0x84)
    return out


ALAW_PEAK = bytes(min(255, abs(v) // 128) for v in _alaw_table())
ULAW_PEAK = bytes(min(255, abs(v) // 128) for v in _ulaw_table())
_THRESH = ENERGY_PEAK // 128


def sounds(pt: int, payload: bytes) -> bool:
    if pt == 8:
        return max(payload.translate(ALAW_PEAK), default=0) > _THRESH
    if pt == 0:
        return max(payload.translate(ULAW_PEAK), default=0) > _THRESH
    return False


@dataclass
class Stream:
    """RTP packets towards one caller port, (time, seq, ts, pt, sounds)."""

    packets: list[tuple[float, int, int, int, bool]] = field(default_factory=list)


@dataclass
class CallTimes:
    call_id: str = ""
    media_port: int = 0
    invite: float | None = None
    ok: float | None = None
    ack: float | None = None
    bye: float | None = None
    dtmf: float | None = None


def read_pcap(path: Path) -> Any:
    """Yield (time, src_port, dst_port, udp_payload) of IPv4/UDP packets."""
    with path.open("rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic = struct.unpack("<I", head[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
        link = struct.unpack(endian + "I", head[20:24])[0]
        off = {1: 14, 113: 16, 0: 4}.get(link, 14)
        rec = struct.Struct(endian + "IIII")
        scale = 1e-9 if nano else 1e-6
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, _ = rec.unpack(h)
            data = f.read(incl)
            if len(data) < incl:
                return
            ip = data[off:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            ihl = (ip[0] & 0x0F) * 4
            sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
            yield sec + frac * scale, sport, dport, ip[ihl + 8:]


_CALL_ID = re.compile(rb"^(?:Call-ID|i)\s*:\s*(\S+)", re.I | re.M)
_CSEQ = re.compile(rb"^CSeq\s*:\s*\d+\s+(\w+)", re.I | re.M)
_MPORT = re.compile(rb"^m=audio (\d+)", re.M)


def analyse(path: Path, caller_sip_port: int, media_lo: int, media_hi: int,
            echo: bool = False) -> dict[str, Any]:
    """`echo`: the far end is an RTP echo, so its first packet of any kind is its 'prompt'."""
    calls: dict[str, CallTimes] = {}
    streams: dict[int, dict[int, Stream]] = {}  # caller port -> ssrc -> stream
    dtmf: dict[int, float] = {}
    for t, sport, dport, payload in read_pcap(path):
        if sport == caller_sip_port or dport == caller_sip_port:
            _sip(calls, t, sport == caller_sip_port, payload)
        elif media_lo <= dport <= media_hi and len(payload) >= 12 and payload[0] >> 6 == 2:
            pt = payload[1] & 0x7F
            seq, ts, ssrc = struct.unpack("!HII", payload[2:12])
            cc = payload[0] & 0x0F
            body = payload[12 + 4 * cc:]
            snd = pt == 101 or sounds(pt, body)
            streams.setdefault(dport, {}).setdefault(ssrc, Stream()).packets.append(
                (t, seq, ts, pt, snd))
        elif media_lo <= sport <= media_hi and len(payload) >= 12 and payload[1] & 0x7F == 101:
            dtmf.setdefault(sport, t)
    by_port = {c.media_port: c for c in calls.values() if c.media_port}
    for port, t in dtmf.items():
        if port in by_port:
            by_port[port].dtmf = t
    return _figures(list(calls.values()), streams, echo)


def _sip(calls: dict[str, CallTimes], t: float, outgoing: bool, payload: bytes) -> None:
    m = _CALL_ID.search(payload)
    if not m:
        return
    c = calls.setdefault(m.group(1).decode(errors="replace"), CallTimes())
    first = payload.split(b"\r\n", 1)[0]
    cseq = _CSEQ.search(payload)
    method = cseq.group(1) if cseq else b""
    if outgoing and first.startswith(b"INVITE ") and c.invite is None:
        c.invite = t
        mp = _MPORT.search(payload)
        c.media_port = int(mp.group(1)) if mp else 0
    elif not outgoing and first.startswith(b"SIP/2.0 200") and method == b"INVITE" and c.ok is None:
        c.ok = t
    elif outgoing and first.startswith(b"ACK ") and c.ack is None:
        c.ack = t
    elif first.startswith(b"BYE ") and c.bye is None:
        c.bye = t


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, round(q / 100 * (len(v) - 1))))
    return v[k]


def summary(values: list[float], digits: int = 2) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(pct(values, 50) or 0, digits),
            "p99": round(pct(values, 99) or 0, digits), "max": round(max(values), digits)}


def _figures(calls: list[CallTimes], streams: dict[int, dict[int, Stream]],
             echo: bool = False) -> dict[str, Any]:
    setup, first_prompt, next_prompt = [], [], []
    jitter_final, jitter_all, gap_ms = [], [], []
    lost = expected = 0
    no_prompt = dtmf_while_playing = 0
    slow: list[dict[str, Any]] = []
    bye_times = [c.bye for c in calls if c.bye]
    ack_times = [c.ack for c in calls if c.ack]
    for c in calls:
        if c.invite and c.ok:
            setup.append((c.ok - c.invite) * 1000)
        per_ssrc = streams.get(c.media_port, {})
        pkts = sorted(p for s in per_ssrc.values() for p in s.packets)
        if c.ack:
            hit = next((p[0] for p in pkts if p[0] >= c.ack and (p[4] or echo)), None)
            if hit is None:
                no_prompt += 1
            else:
                first_prompt.append((hit - c.ack) * 1000)
        if c.dtmf:
            playing = any(p[4] and p[3] != 101 and c.dtmf - 0.06 <= p[0] < c.dtmf for p in pkts)
            if playing:
                dtmf_while_playing += 1
            else:
                hit = next((p[0] for p in pkts if p[0] >= c.dtmf and p[4]), None)
                if hit is not None:
                    next_prompt.append((hit - c.dtmf) * 1000)
                    # the slowest, to find in the engine's log: call, and what reached the
                    # caller between the key and the prompt (packets, silent or not)
                    between = [p for p in pkts if c.dtmf <= p[0] < hit and p[3] != 101]
                    slow.append({"ms": round((hit - c.dtmf) * 1000, 1), "call_id": c.call_id,
                                 "dtmf_after_ack_s": round(c.dtmf - (c.ack or c.dtmf), 2),
                                 "silent_packets_before": len(between)})
    for per_ssrc in streams.values():
        for s in per_ssrc.values():
            audio = [p for p in s.packets if p[3] in (0, 8)]
            if len(audio) < 3:
                continue
            j = 0.0
            prev = audio[0]
            seqs = [audio[0][1]]
            for p in audio[1:]:
                d = (p[0] - prev[0]) * 8000 - _ts_delta(prev[2], p[2])
                j += (abs(d) - j) / 16
                jitter_all.append(j / 8)
                gap_ms.append((p[0] - prev[0]) * 1000)
                seqs.append(p[1])
                prev = p
            jitter_final.append(j / 8)
            exp = _seq_span(seqs)
            expected += exp
            lost += max(0, exp - len(seqs))
    concurrent = 0
    events = sorted([(t, 1) for t in ack_times] + [(t, -1) for t in bye_times])
    live = 0
    for _, d in events:
        live += d
        concurrent = max(concurrent, live)
    return {
        "calls_seen": len(calls), "max_concurrent_in_capture": concurrent,
        "invite_to_200_ms": summary(setup),
        "ack_to_first_prompt_ms": {**summary(first_prompt, 1), "calls_without_sound": no_prompt},
        "dtmf_to_next_prompt_ms": {**summary(next_prompt, 1),
                                   "dtmf_while_prompt_playing": dtmf_while_playing,
                                   "slowest": sorted(slow, key=lambda x: -x["ms"])[:3]},
        "rtp_streams": len(jitter_final),
        "jitter_ms": {"per_stream_final": summary(jitter_final, 3),
                      "all_packets": summary(jitter_all, 3)},
        "inter_packet_gap_ms": summary(gap_ms, 2),
        "loss": {"expected": expected, "lost": lost,
                 "ratio": round(lost / expected, 6) if expected else None},
    }


def _ts_delta(a: int, b: int) -> int:
    return (b - a + 2**31) % 2**32 - 2**31


def _seq_span(seqs: list[int]) -> int:
    """Packets expected from the extended (wrap-aware) sequence range."""
    ext, cycles, last = [], 0, seqs[0]
    for s in seqs:
        if s < last and last - s > 30000:
            cycles += 65536
        ext.append(s + cycles)
        last = s
    return max(ext) - min(ext) + 1
