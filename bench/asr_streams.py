"""Simultaneous grammar recognitions in real time: P processes (one per core) x K streams each.

    .venv/bin/python bench/asr_streams.py --streams 60 [--procs 2] [--seconds 12]

Each process owns K PocketSphinx recognizers (JSGF from a phrase grammar, as a menu uses) and
feeds every stream one 20 ms frame of 8 kHz speech per 20 ms tick, through the VAD endpointer,
exactly as a worker's media path does. Real time holds when the process keeps up with the tick
clock (lag at the end < 200 ms). At each end of utterance the result is finalized; end of speech
-> result = the endpointer's trailing silence (0.7 s, configured) + that finalize time, measured
under the full load. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PHRASES = ["balance", "account balance", "cards", "lost card", "agent", "report a fault",
           "my bill", "operator"]
TRAILING_SILENCE = 0.7
FRAME = 320  # 20 ms of 16-bit 8 kHz


def clips(n: int) -> list[bytes]:
    from ivr.speech.asr.service import read_any_wav

    out = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for i in range(n):
            raw, wav = tmp / f"r{i}.wav", tmp / f"o{i}.wav"
            subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), "--", PHRASES[i % len(PHRASES)]],
                           check=True, timeout=30)
            subprocess.run(["sox", str(raw), "-r", "8000", "-e", "u-law", str(wav), "pad", "0.3", "1.2"],
                           check=True, timeout=30)
            samples, _ = read_any_wav(wav)
            out.append(samples.astype("<i2").tobytes())
    return out


def worker(k: int, seconds: float, audio: list[bytes], start_at: float, q: Any) -> None:
    from ivr.speech.asr.base import Grammar
    from ivr.speech.asr.pocketsphinx import PocketSphinxEngine
    from ivr.speech.asr.vad import COMPLETE_CONFIDENCE, COMPLETE_SILENCE, Endpointer

    engine = PocketSphinxEngine()
    grammar = Grammar(tuple(PHRASES))
    recs = [engine.new_recognizer(grammar, 8000) for _ in range(k)]
    eps = [Endpointer(8000, timeout=None, trailing_silence=TRAILING_SILENCE,
                      complete_silence=COMPLETE_SILENCE) for _ in range(k)]
    utts = [bytearray() for _ in range(k)]
    pos = [(i * 7 * FRAME) % len(audio[i % len(audio)]) // FRAME * FRAME for i in range(k)]
    which = [i % len(audio) for i in range(k)]
    finals: list[float] = []
    eos: list[float] = []  # end of speech -> result, as a worker's Turn answers
    correct = total = 0
    ticks = int(seconds / 0.02)
    late_ticks = 0
    lateness: list[float] = []
    while time.time() < start_at:
        time.sleep(0.005)
    t0 = time.perf_counter()
    busy = 0.0
    for n in range(ticks):
        due = t0 + n * 0.02
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        elif now - due > 0.02:
            late_ticks += 1
        lateness.append(max(0.0, now - due) * 1000)
        b0 = time.perf_counter()
        for i in range(k):
            pcm = audio[which[i]]
            frame = pcm[pos[i]:pos[i] + FRAME]
            pos[i] += FRAME
            events = eps[i].feed(frame)
            fresh = eps[i].take_audio()
            utts[i] += fresh
            recs[i].accept(fresh)
            result = None
            if any(e.kind == "pause" for e in events):  # a complete grammar match answers now
                f0 = time.perf_counter()
                trial = engine.new_recognizer(grammar, 8000)
                trial.accept(bytes(utts[i]))
                early = trial.finalize()
                trial.close()
                if early is not None and early.confidence >= COMPLETE_CONFIDENCE:
                    result = early
                    eos.append(COMPLETE_SILENCE * 1000 + (time.perf_counter() - f0) * 1000)
            if result is None and any(e.kind in ("end", "max_speech") for e in events):
                f0 = time.perf_counter()
                result = recs[i].finalize()
                finals.append((time.perf_counter() - f0) * 1000)
                eos.append(TRAILING_SILENCE * 1000 + finals[-1])
            if result is not None or any(e.kind in ("end", "max_speech") for e in events):
                total += 1
                utts[i].clear()
                text = getattr(result, "text", "") or ""
                correct += int(text == PHRASES[which[i] % len(PHRASES)])
                recs[i].reset()
                eps[i].reset()
            if pos[i] + FRAME > len(pcm):
                pos[i] = 0
                which[i] = (which[i] + 1) % len(audio)
                eps[i].reset()
                recs[i].reset()
                utts[i].clear()
        busy += time.perf_counter() - b0
    lag = time.perf_counter() - (t0 + ticks * 0.02)
    for r in recs:
        r.close()
    q.put({"lag_s": round(max(0.0, lag), 3), "late_ticks": late_ticks, "ticks": ticks,
           "busy": round(busy / (ticks * 0.02), 3), "finalize_ms": finals, "eos_ms": eos,
           "late_ms_p99": round(sorted(lateness)[int(0.99 * (len(lateness) - 1))], 1),
           "results": total, "correct": correct})


def run(streams: int, procs: int, seconds: float, audio: list[bytes]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    per = [streams // procs + (1 if i < streams % procs else 0) for i in range(procs)]
    start_at = time.time() + 6.0  # every process loads its model first
    ps = [ctx.Process(target=worker, args=(k, seconds, audio, start_at, q)) for k in per]
    for p in ps:
        p.start()
    docs = []
    try:
        for _ in ps:
            docs.append(q.get(timeout=seconds * 4 + 60))
    finally:
        for p in ps:
            p.join(10)
            if p.is_alive():
                p.kill()
    finals = sorted(f for d in docs for f in d["finalize_ms"])
    eos = sorted(f for d in docs for f in d["eos_ms"])
    realtime = all(d["lag_s"] < 0.2 for d in docs)
    p99 = finals[min(len(finals) - 1, int(0.99 * (len(finals) - 1)))] if finals else None
    return {"streams": streams, "procs": procs, "seconds": seconds, "realtime": realtime,
            "lag_s_max": max(d["lag_s"] for d in docs),
            "core_busy": [d["busy"] for d in docs],
            "late_ticks": sum(d["late_ticks"] for d in docs),
            "tick_late_ms_p99": max(d["late_ms_p99"] for d in docs),
            "results": sum(d["results"] for d in docs), "correct": sum(d["correct"] for d in docs),
            "finalize_ms_p50": round(statistics.median(finals), 1) if finals else None,
            "finalize_ms_p99": round(p99, 1) if p99 is not None else None,
            "early_results": len(eos) - len(finals),
            "end_of_speech_to_result_ms_p50": round(statistics.median(eos), 1) if eos else None,
            "end_of_speech_to_result_ms_p99":
                round(eos[min(len(eos) - 1, int(0.99 * (len(eos) - 1)))], 1) if eos else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", default="60", help="comma list of totals to try, in order")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=12.0)
    args = ap.parse_args()
    audio = clips(8)
    out = [run(int(s), args.procs, args.seconds, audio) for s in args.streams.split(",")]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
