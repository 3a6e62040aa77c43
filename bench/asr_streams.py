"""Simultaneous grammar recognitions in real time, through a call's own turn-taking.

    .venv/bin/python bench/asr_streams.py --streams 80 [--procs 2] [--seconds 15]

P processes (one per core, as the pool's workers) x K streams each. Each process runs what a
worker runs for speech: one `ivr.sip.speech.SpeechHub` (the built-in `speech.turn` timing, two
decode threads) and a `Turn` per utterance, fed one 20 ms frame per stream per 20 ms tick (the
media clock's job), PocketSphinx under the node's grammar. The audio is the real-voice corpus
(tests/real_voice.py: Allison's recordings of menu phrases, yes/no answers, single digits and
4-digit codes with natural gaps or run together; 8 kHz, as recorded, through mu-law, and with
line noise), each stream taking the next utterance as soon as its turn answered.

- real time: every process keeps up with the tick clock (lag at the end < 200 ms);
- end of speech -> result: from the tick that fed the last frame of the words (the corpus puts
  `real_voice.TAIL_S` of quiet after them) to the turn's result reaching the event loop;
- `ended_by`: how the turns ended (ivr.sip.speech.Turn.ended_by): `final` at the short pause
  on a whole match nothing extends, `pause` after the hold the grammar chose, `decode` after the
  whole utterance was decoded at the end;
- right: the node's value (real_voice.value_of) is the truth, at the grammar's default threshold.

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

FRAME = 320  # 20 ms of 16-bit 8 kHz
TICK = 0.02
GIVE_UP_S = 4.0
"""Quiet fed after the words before a turn counts as no answer."""


def corpus() -> list[tuple[str, str, str | None, str | None, bytes, float]]:
    """(id, set, truth, builtin, pcm, end of words in s) for every 8 kHz in-grammar utterance,
    interleaved by set so that every stream hears every kind."""
    import real_voice

    from ivr.speech.asr.service import read_any_wav
    from ivr.speech.audio import resample

    items = [u for u in real_voice.build() if u.rate == 8000]
    by_set: dict[str, list[Any]] = {}
    for t in real_voice.trials(items):
        if t.truth is not None:
            by_set.setdefault(t.set, []).append(t)
    out = []
    lists = [by_set[k] for k in sorted(by_set)]
    for i in range(max(len(v) for v in lists)):
        for v in lists:
            if i < len(v):
                t = v[i]
                samples, rate = read_any_wav(Path(t.utterance.path))
                pcm = resample(samples, rate, 8000).astype("<i2").tobytes()
                out.append((t.utterance.id, t.set, t.truth, t.builtin, pcm,
                            len(pcm) / 16000 - real_voice.TAIL_S))
    return out


def spec_of(set_: str) -> Any:
    import real_voice

    from ivr.flow.channel import ListenSpec
    if set_ == "digits4":
        return ListenSpec(timeout=5.0, builtin="digits", min_digits=4, max_digits=4)
    if set_ == "digit":
        # as a collect with `digits: {min: 1, max: 1}` listens (ivr.flow.nodes.collect)
        return ListenSpec(timeout=5.0, builtin="digits", min_digits=1, max_digits=1,
                          digits_counted=True)
    if set_ == "yes_no":
        return ListenSpec(timeout=5.0, builtin="yes_no")
    return ListenSpec(timeout=5.0, phrases=tuple(real_voice.MENU))


def worker(index: int, k: int, seconds: float, listen: float, start_at: float, q: Any,
           decoder_procs: int = 0, service: str | None = None) -> None:
    asyncio.run(_worker(index, k, seconds, listen, start_at, q, decoder_procs, service))


async def _worker(index: int, k: int, seconds: float, listen: float, start_at: float,
                  q: Any, decoder_procs: int = 0, service: str | None = None) -> None:
    """`listen`: seconds of quiet between a stream's answer and its next utterance (the IVR's
    next prompt); streams start spread over one listen."""
    import real_voice

    from ivr.lang.grammars import default_confidence
    from ivr.sip.speech import SpeechHub, Turn
    from ivr.speech.asr.base import Engine
    from ivr.speech.asr.pocketsphinx import PocketSphinxEngine
    from ivr.speech.asr.procs import ProcessEngine

    items = corpus()
    engine: Engine
    if service is not None:  # Whisper in the recognition service, as `ivr serve` runs it
        from ivr.speech.asr.remote import RemoteEngine
        engine = RemoteEngine(Path(service), "whisper", None)
    elif decoder_procs:
        engine = ProcessEngine("pocketsphinx", None, decoder_procs)
    else:
        engine = PocketSphinxEngine()
    hub = SpeechHub(decoder_procs or 2)  # as a worker: a decode thread per decoder process
    loop = asyncio.get_running_loop()
    quiet = bytes(FRAME)
    records: list[dict[str, Any]] = []
    busy: list[float] = []
    busy_by: dict[str, float] = {}

    class Stream:
        def __init__(self, n: int) -> None:
            self.next = (n * 7 + index * 3) % len(items)
            self.start()
            self.listening = int(listen / TICK * n / max(1, k))

        def start(self) -> None:
            self.listening = int(listen / TICK)
            self.item = items[self.next]
            self.next = (self.next + 1) % len(items)
            self.pos = 0
            self.words_end_frame = int(self.item[5] / TICK + 0.999)
            self.words_end_at: float | None = None
            self.answered_at: float | None = None
            self.turn: Turn | None = None
            self.cut = False

        def begin(self) -> Turn:
            turn = self.turn = Turn(engine, loop, lambda: None, hub)
            turn.listen(spec_of(self.item[1]))
            turn.result.add_done_callback(self._answered)
            return turn

        def _answered(self, fut: Any) -> None:
            if self.turn is None or fut is not self.turn.result:
                return  # a turn given up on
            self.answered_at = time.monotonic()
            self.cut = self.words_end_at is None  # before the words were over

        def tick(self, now: float) -> None:
            if self.answered_at is not None:
                self.record()
                self.start()
            if self.listening > 0:  # the IVR speaks: the turn has not begun
                self.listening -= 1
                return
            turn = self.turn or self.begin()
            pcm = self.item[4]
            if self.pos >= GIVE_UP_S / TICK + len(pcm) // FRAME:
                turn.cancel()
                self.record()
                self.start()
                return
            frame = pcm[self.pos * FRAME:(self.pos + 1) * FRAME]
            turn.push(frame if len(frame) == FRAME else quiet)
            self.pos += 1
            if self.pos == self.words_end_frame:
                self.words_end_at = now

        def record(self) -> None:
            uid, set_, truth, builtin, _, _ = self.item
            turn = self.turn
            assert turn is not None
            got = turn.result.result() if turn.result.done() else None
            value = real_voice.value_of(builtin, got.value) if got is not None else None
            sure = got is not None and got.confidence >= default_confidence(builtin)
            eos = None
            wait_ms = run_ms = 0.0
            if self.answered_at is not None and self.words_end_at is not None:
                eos = (self.answered_at - self.words_end_at) * 1000
                lo, hi = self.words_end_at, self.answered_at
                for _, sub, start, fin in turn.decodes:  # the part after the words ended
                    wait_ms += max(0.0, min(start, hi) - max(sub, lo)) * 1000
                    run_ms += max(0.0, min(fin, hi) - max(start, lo)) * 1000
            busy.extend(fin - start for _, _, start, fin in turn.decodes)
            for partial, _, start, fin in turn.decodes:
                key = f"{set_} {'pause' if partial else 'final'}"
                busy_by[key] = busy_by.get(key, 0.0) + fin - start
            pauses = sum(1 for d in turn.decodes if d[0])
            records.append({"id": uid, "set": set_, "ended_by": getattr(turn, "ended_by", "") or "none",
                            "cut": self.cut, "timed_out": self.answered_at is None,
                            "verdict": getattr(turn, "verdict", ""), "text": got.value if got else None,
                            "confidence": got.confidence if got else None,
                            "right": bool(sure and value == truth),
                            "wrong": bool(sure and value != truth),
                            "eos_ms": None if eos is None else round(eos, 1),
                            "wait_ms": round(wait_ms, 1), "decode_ms": round(run_ms, 1),
                            "pause_decodes": pauses,
                            "final_decodes": len(turn.decodes) - pauses})

    await asyncio.sleep(max(0.0, start_at - time.time()))
    streams = [Stream(n) for n in range(k)]
    cpu0 = time.process_time()
    kids0 = sum(_cpu_s(pid) for pid in getattr(engine, "pids", list)())
    ticks = int(seconds / TICK)
    late_ticks = 0
    lateness: list[float] = []
    t0 = time.perf_counter()
    for n in range(ticks):
        due = t0 + n * TICK
        now = time.perf_counter()
        if now < due:
            await asyncio.sleep(due - now)
        else:
            await asyncio.sleep(0)
        now = time.perf_counter()
        if now - due > TICK:
            late_ticks += 1
        lateness.append(max(0.0, now - due) * 1000)
        mono = time.monotonic()
        for s in streams:
            s.tick(mono)
    lag = time.perf_counter() - (t0 + ticks * TICK)
    for s in streams:
        if s.turn is not None:
            s.turn.cancel()
    hub.stop()
    # decoder processes (a child started on demand counts its model load, ~0.3 s)
    kids = sum(_cpu_s(pid) for pid in getattr(engine, "pids", list)()) - kids0
    engine.close()
    cpu = time.process_time() - cpu0
    q.put({"lag_s": round(max(0.0, lag), 3), "late_ticks": late_ticks, "ticks": ticks,
           "late_ms_p99": round(sorted(lateness)[int(0.99 * (len(lateness) - 1))], 1),
           "records": records, "decode_busy_s": round(sum(busy), 2),
           "busy_by": busy_by, "cpu_s": round(cpu, 1),
           "decoder_cpu_s": round(kids, 1),
           "skipped": hub.decode_pool.skipped})


def _cpu_s(pid: int) -> float:
    """CPU seconds a process has used so far (user + system, from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * (len(v) - 1)))], 1)


@contextlib.contextmanager
def recognition_service(engine: str) -> Iterator[tuple[str, int] | None]:
    """The recognition service (`ivr.speech.asr.server`) serving `engine`'s default model, as
    `ivr serve` starts it: (socket path, pid); None for PocketSphinx, which decodes in the
    bench processes (or their decoder processes) as in a worker."""
    if engine == "pocketsphinx":
        yield None
        return
    from ivr.speech.asr.remote import RemoteEngine

    with tempfile.TemporaryDirectory(prefix="asr-streams-") as tmp:
        cfg = Path(tmp) / "ivr.yaml"
        cfg.write_text(f"speech:\n  asr:\n    engine: {engine}\n")
        sock = Path(tmp) / "asr.sock"
        proc = subprocess.Popen([sys.executable, "-m", "ivr.speech.asr.server", "--socket",
                                 str(sock), "--config", str(cfg), "--log-level", "WARNING"],
                                cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            remote = RemoteEngine(sock, engine, None)
            deadline = time.monotonic() + 60
            while True:
                try:
                    if remote.status()["ready"]:
                        break
                except Exception:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the recognition service for {engine} did not start")
                time.sleep(0.2)
            yield str(sock), proc.pid
        finally:
            proc.terminate()
            proc.wait(10)


def run(streams: int, procs: int, seconds: float, listen: float = 0.0,
        decoder_procs: int = 0, service: tuple[str, int] | None = None) -> dict[str, Any]:
    load = round(os.getloadavg()[0], 2)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    per = [streams // procs + (1 if i < streams % procs else 0) for i in range(procs)]
    start_at = time.time() + 8.0  # every process loads its model and the corpus first
    ps = [ctx.Process(target=worker, args=(i, k, seconds, listen, start_at, q, decoder_procs,
                                           service[0] if service else None))
          for i, k in enumerate(per)]
    for p in ps:
        p.start()
    time.sleep(max(0.0, start_at - time.time()))
    service_cpu0 = _cpu_s(service[1]) if service else 0.0
    docs = []
    try:
        for _ in ps:
            docs.append(q.get(timeout=seconds * 4 + 90))
    finally:
        for p in ps:
            p.join(10)
            if p.is_alive():
                p.kill()
    service_cpu = (_cpu_s(service[1]) - service_cpu0) if service else 0.0
    recs = [r for d in docs for r in d["records"]]
    answered = [r for r in recs if r["eos_ms"] is not None]
    eos = [r["eos_ms"] for r in answered]
    by: dict[str, list[float]] = {}
    for r in answered:
        by.setdefault(r["ended_by"], []).append(r["eos_ms"])
    sets: dict[str, dict[str, Any]] = {}
    for r in recs:
        d = sets.setdefault(r["set"], {"n": 0, "right": 0, "wrong": 0, "eos": [], "by": {}})
        d["by"][r["ended_by"]] = d["by"].get(r["ended_by"], 0) + 1
        d["n"] += 1
        d["right"] += r["right"]
        d["wrong"] += r["wrong"]
        d["timed_out"] = d.get("timed_out", 0) + r["timed_out"]
        if r["eos_ms"] is not None:
            d["eos"].append(r["eos_ms"])
    return {"streams": streams, "procs": procs, "decoder_procs": decoder_procs,
            "engine": "whisper (recognition service)" if service else "pocketsphinx",
            "seconds": seconds, "listen_s": listen,
            "load_avg_at_start": load,
            "realtime": all(d["lag_s"] < 0.2 for d in docs),
            "lag_s_max": max(d["lag_s"] for d in docs),
            "late_ticks": sum(d["late_ticks"] for d in docs),
            "tick_late_ms_p99": max(d["late_ms_p99"] for d in docs),
            "results": len(recs), "correct": sum(r["right"] for r in recs),
            "wrong": sum(r["wrong"] for r in recs),
            "cut_off": sum(r["cut"] for r in recs),
            "timed_out": sum(r["timed_out"] for r in recs),
            "early_results": sum(len(v) for k, v in by.items() if k != "decode"),
            "ended_by": {k: {"n": len(v), "p50": pct(v, 0.5), "p99": pct(v, 0.99)}
                         for k, v in sorted(by.items())},
            "by_set": {k: {"n": d["n"], "right": d["right"], "wrong": d["wrong"], "ended_by": d["by"],
                           "timed_out": d["timed_out"],
                           "eos_p50": pct(d["eos"], 0.5), "eos_p99": pct(d["eos"], 0.99)}
                       for k, d in sorted(sets.items())},
            "end_of_speech_to_result_ms_p50": pct(eos, 0.5),
            "end_of_speech_to_result_ms_p99": pct(eos, 0.99),
            "decode_busy_s_per_s": round(sum(d["decode_busy_s"] for d in docs) / seconds, 2),
            "cpu_cores": {"bench processes": round(sum(d["cpu_s"] for d in docs) / seconds, 2),
                          "decoder processes": round(sum(d["decoder_cpu_s"] for d in docs)
                                                     / seconds, 2),
                          "recognition service": round(service_cpu / seconds, 2)},
            "decode_busy_s_by": {k: round(sum(d["busy_by"].get(k, 0.0) for d in docs), 1)
                                 for k in sorted({k for d in docs for k in d["busy_by"]})},
            "decodes_skipped": sum(d["skipped"] for d in docs),
            "decodes_per_turn": {"pause": round(sum(r["pause_decodes"] for r in recs)
                                                / max(1, len(recs)), 2),
                                 "final": round(sum(r["final_decodes"] for r in recs)
                                                / max(1, len(recs)), 2)},
            "after_words_ms": {"queue_wait_p50/p99": [pct([r["wait_ms"] for r in answered], q)
                                                      for q in (0.5, 0.99)],
                               "decode_p50/p99": [pct([r["decode_ms"] for r in answered], q)
                                                  for q in (0.5, 0.99)],
                               "endpointer_and_rest_p50/p99": [
                                   pct([r["eos_ms"] - r["wait_ms"] - r["decode_ms"]
                                        for r in answered], q) for q in (0.5, 0.99)]},
            "slowest": sorted(answered, key=lambda r: -r["eos_ms"])[:8],
            "cut": [r for r in recs if r["cut"]][:8]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", default="60", help="comma list of totals to try, in order")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--listen", type=float, default=0.0,
                    help="seconds each caller listens between utterances (default 0: talk on)")
    ap.add_argument("--decoder-procs", type=int, default=0,
                    help="decoder processes per process (ivr.speech.asr.procs; the workers' "
                    "default is one per core); 0: decode in the process's own threads")
    ap.add_argument("--engine", default="pocketsphinx", choices=["pocketsphinx", "whisper"],
                    help="whisper: the engine's default, decoded in a recognition service")
    args = ap.parse_args()
    with recognition_service(args.engine) as service:
        out = [run(int(s), args.procs, args.seconds, args.listen, args.decoder_procs, service)
               for s in args.streams.split(",")]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
