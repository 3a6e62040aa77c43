"""Speech at density: N concurrent SIP calls in which every caller speaks once, over real SIP.

    .venv/bin/python bench/speech_load.py --calls 200 [--rate 50] [--out FILE] [--md FILE]
    .venv/bin/python bench/speech_load.py --steps 50,100,200 --repeat 2 --profile --md bench/speech_load.md

1. Phrases: espeak-ng renders of the menu's words (two voices) and real human recordings
   (Allison, Debian `asterisk-core-sounds-en-wav`), as 8 kHz A-law, 0.4 s of A-law silence, the
   words, 1.5 s of silence (a phone keeps sending RTP), written as PCMA RTP pcaps (20 ms frames of
   160 bytes, payload type 8). Each is first decoded offline by the same engine and endpointer
   logic as a call's turn (ivr.sip.speech.Turn): the engine's own verdict with no SIP and no load.
   Phrases the engine gets wrong even offline (or right, below the flow's confidence: the call's
   nomatch) are reported and left out of the calls (--all keeps them), so that a wrong branch or
   a nomatch under load is a density problem, not a vocabulary one.
2. `ivr serve` (built-in pool: one worker per core, calls_per_worker auto, asr pocketsphinx) on
   bench/flows/speech_menu.yaml: one spoken menu of six options, each to its own prompt.
3. SIPp places N calls at --rate calls/s (-l N, -m N): each caller answers the menu's prompt with
   one phrase (round robin, picked per call from an injection file), once every call of the step
   is up, then waits for the IVR's BYE. tcpdump captures SIP and both RTP directions.
4. Per call, from the capture: end of speech (the caller's last RTP packet with |sample| > 600)
   -> the first sounding RTP packet to the caller after it (the option's prompt): "end of speech
   -> result", endpointing silence included. Branches from the CDRs (`GET /calls`: path) against
   what each caller said. CPU and PSS of everything below `ivr serve` over the speaking window,
   CPU per worker and per worker thread name; with --profile, py-spy on the busiest worker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness as h
import numpy as np
import pcap_stats
import run
import yaml

sys.path.insert(0, str(h.REPO))
import rtp_pcap  # tests/integration, on the path through harness

FLOW = h.BENCH / "flows" / "speech_menu.yaml"
SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
MEDIA_BASE = 20000
"""SIPp's media ports: apart from the workers' (30000-40000, harness.start_ivr) and from
bench/run.py's (10000-19999), which may run on the same box at the same time."""
LEAD_S, TAIL_S = 0.4, 4.0
FRAME = 160  # 20 ms of 8 kHz A-law
ALAW_SILENCE = b"\xd5"
TARGET_P99_MS = 400.0


def log(msg: str) -> None:
    sys.stderr.write(f"[speech {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


# -- phrases -------------------------------------------------------------------------------------
@dataclass
class Phrase:
    name: str
    text: str  # what is said
    option: str  # the menu node it must reach
    source: str  # espeak-ng voice, or the recording's file
    words: bytes = b""  # A-law, whole frames
    alaw: bytes = b""  # LEAD_S of silence, the words, TAIL_S of silence (the offline check's input)
    pcap: Path | None = None  # the step's: silence from the ACK until the caller speaks, words, tail
    speech_end_s: float = 0.0  # end of the last sounding frame, from the start of `alaw`
    offline: dict[str, Any] = field(default_factory=dict)


def catalogue() -> list[Phrase]:
    """Every phrase the callers may say: espeak-ng in two voices, and Allison's recordings."""
    es = [("balance", "balance"), ("cards", "cards"), ("agent", "agent"),
          ("opening hours", "hours"), ("message", "message"), ("goodbye", "goodbye")]
    ef = [("account balance", "balance"), ("card", "cards"), ("operator", "agent"),
          ("opening hours", "hours"), ("hours", "hours"), ("leave a message", "message")]
    out = [Phrase(f"es:{t}", t, o, "espeak-ng en-us 150 wpm") for t, o in es]
    out += [Phrase(f"ef:{t}", t, o, "espeak-ng en-us+f3 170 wpm") for t, o in ef]
    human = [("hours", "hours", "hours.wav"), ("goodbye", "goodbye", "goodbye.wav"),
             ("goodbye", "goodbye", "vm-goodbye.wav"), ("message", "message", "vm-message.wav")]
    out += [Phrase(f"human:{f}", t, o, str(SOUNDS / f)) for t, o, f in human]
    return out


def to_alaw(src: Path) -> bytes:
    return subprocess.run(["sox", str(src), "-r", "8000", "-c", "1", "-e", "a-law", "-t", "raw", "-"],
                          capture_output=True, check=True, timeout=30).stdout


def render(p: Phrase, work: Path) -> None:
    wav = work / (re.sub(r"\W+", "_", p.name) + ".wav")
    if p.source.startswith("espeak-ng"):
        _, voice, rate, _ = p.source.split()
        subprocess.run(["espeak-ng", "-v", voice, "-s", rate, "-w", str(wav), "--", p.text],
                       check=True, timeout=30)
    else:
        shutil.copy(p.source, wav)
    words = to_alaw(wav)
    p.words = words[: len(words) // FRAME * FRAME]
    p.alaw = ALAW_SILENCE * int(LEAD_S * 8000) + p.words + ALAW_SILENCE * int(TAIL_S * 8000)
    frames = [p.alaw[i:i + FRAME] for i in range(0, len(p.alaw), FRAME)]
    sounding = [i for i, f in enumerate(frames) if pcap_stats.sounds(8, f)]
    p.speech_end_s = (sounding[-1] + 1) * 0.02 if sounding else 0.0


def write_pcaps(phrases: list[Phrase], work: Path, tag: str, speak_after: float) -> None:
    """The caller's RTP from the ACK on, as a phone sends it: A-law silence for `speak_after`
    seconds, the words, TAIL_S of silence (past the option's prompt, until the IVR's BYE)."""
    for i, p in enumerate(phrases):
        audio = ALAW_SILENCE * int(speak_after * 8000) + p.words + ALAW_SILENCE * int(TAIL_S * 8000)
        frames = [audio[j:j + FRAME] for j in range(0, len(audio), FRAME)]
        p.pcap = rtp_pcap.write_pcap(work / f"{tag}-p{i}.pcap", [
            (j * 0.02, rtp_pcap.rtp(j, j * FRAME, pt=8, ssrc=0x5EEC, payload=f))
            for j, f in enumerate(frames)])


ALAW_PCM = np.array(pcap_stats._alaw_table(), dtype="<i2")


def flow_options() -> dict[str, list[str]]:
    doc = yaml.safe_load(FLOW.read_text())
    return {o["goto"]: list(o["speech"]) for o in doc["nodes"]["menu"]["menu"]["options"]}


def flow_confidence() -> float:
    """The menu's confidence threshold (the flow's defaults): below it the call hears a nomatch."""
    doc = yaml.safe_load(FLOW.read_text())
    return float(doc["nodes"]["menu"]["menu"].get("confidence",
                                                  doc.get("defaults", {}).get("confidence", 0.0)))


def offline_check(phrases: list[Phrase], asr: str = "pocketsphinx") -> None:
    """Each phrase through a call's turn (ivr.sip.speech.Turn on a SpeechHub, the default
    `speech.turn` timing), fed in real time, all phrases at once: the engine's verdict and the
    endpoint with no SIP and no load."""
    import asyncio

    from ivr.flow.channel import ListenSpec
    from ivr.lang.normalize import best_phrase
    from ivr.sip.speech import SpeechHub, Turn
    from ivr.speech.asr.base import Engine
    from ivr.speech.asr.pocketsphinx import PocketSphinxEngine
    from ivr.speech.asr.whisper import WhisperEngine

    options = flow_options()
    all_phrases = [p for ps in options.values() for p in ps]
    spec = ListenSpec(timeout=60.0, phrases=tuple(all_phrases))
    engine: Engine = WhisperEngine() if asr == "whisper" else PocketSphinxEngine()

    async def one(hub: SpeechHub, p: Phrase) -> tuple[Any, float]:
        pcm = ALAW_PCM[np.frombuffer(p.alaw, dtype=np.uint8)].tobytes()
        turn = Turn(engine, asyncio.get_running_loop(), lambda: None, hub)
        turn.listen(spec)
        t0, answered = time.monotonic(), None
        for i in range(0, len(pcm) - 319, 320):
            wait = t0 + i / 16000 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            turn.push(pcm[i:i + 320])
            if answered is None and turn.result.done():
                answered = time.monotonic() - t0
        got = await asyncio.wait_for(turn.result, 10)
        return got, (answered if answered is not None else time.monotonic() - t0) * 1000

    async def all_of() -> list[tuple[Any, float]]:
        hub = SpeechHub()
        try:
            return list(await asyncio.gather(*(one(hub, p) for p in phrases)))
        finally:
            hub.stop()

    threshold = flow_confidence()  # a right word under it is the flow's nomatch, offline too
    for p, (got, at_ms) in zip(phrases, asyncio.run(all_of()), strict=True):
        text = got.value if got is not None else ""
        phrase = best_phrase(text, all_phrases) if text else None
        option = next((o for o, ps in options.items() if phrase in ps), None) if phrase else None
        sure = got is not None and got.confidence >= threshold
        p.offline = {"heard": text, "confidence": round(got.confidence, 3) if got else None,
                     "option": option, "right": option == p.option and sure,
                     "endpoint_ms": round(at_ms - p.speech_end_s * 1000)}


def prompt_seconds(text: str) -> float:
    """How long the engine's TTS (espeak-ng en-us 165 wpm, its defaults) takes to say `text`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "p.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(out), "--", text],
                       check=True, timeout=30)
        return float(subprocess.run(["soxi", "-D", str(out)], capture_output=True, text=True,
                                    check=True).stdout)


# -- the caller ----------------------------------------------------------------------------------
def caller_scenario(path: Path, phrases: list[Phrase]) -> Path:
    """INVITE/200/ACK, then the RTP of this call's phrase (field0 of the injection file: its
    index; silence first, see write_pcaps), then wait for the IVR's BYE and answer it."""
    sc = h.sc
    acts = ['    <assignstr assign_to="ph" value="[field0]"/>\n',
            '    <todouble assign_to="phn" variable="ph"/>\n']
    acts += [f'    <test assign_to="is{i}" variable="phn" compare="equal" value="{i}"/>\n'
             for i in range(len(phrases))]
    branch = "  <nop>\n   <action>\n" + "".join(acts) + "   </action>\n  </nop>\n"
    branch += "".join(f'  <nop test="is{i}" next="say{i}"/>\n' for i in range(len(phrases)))
    branch += '  <nop next="said"/>\n'
    for i, p in enumerate(phrases):
        branch += (f'  <label id="say{i}"/>\n  <nop><action><exec play_pcap_audio="{p.pcap}"/>'
                   f'</action></nop>\n  <nop next="said"/>\n')
    branch += '  <label id="said"/>\n'
    setup = sc.call_setup().replace("+15550001111", "[field1]")
    text = sc.scenario("bench speech caller", setup, branch,
                       sc.recv("BYE", timeout_ms=90000), sc.answer_200())
    path.write_text(text)
    return path


def injection(path: Path, calls: int, n_phrases: int, step: int) -> dict[str, int]:
    """SEQUENTIAL lines `phrase index;caller number`; the caller number names the call's phrase
    in the CDR."""
    lines, who = ["SEQUENTIAL"], {}
    for i in range(calls):
        number = f"77{step:02d}{i:05d}"
        lines.append(f"{i % n_phrases};{number}")
        who[number] = i % n_phrases
    path.write_text("\n".join(lines) + "\n")
    return who


def start_sipp(target: str, scenario: Path, inf: Path, out_path: Path, *, calls: int, rate: float,
               timeout: float, sip_port: int) -> h.SippRun:
    cmd = ["sipp", target, "-sf", str(scenario), "-inf", str(inf), "-s", "3000", "-i", h.LOOPBACK,
           "-p", str(sip_port), "-mi", h.LOOPBACK, "-mp", str(MEDIA_BASE), "-m", str(calls),
           "-r", str(rate), "-l", str(calls), "-nostdin", "-timeout", f"{int(timeout)}s",
           "-timeout_error", "-max_recv_loops", "2000", "-recv_timeout", "90000"]
    with out_path.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, start_new_session=True, cwd=out_path.parent)
    return h.SippRun(proc, out_path, time.monotonic(), timeout + 20, sip_port, MEDIA_BASE)


def start_capture(path: Path, sip_port: int, media_hi: int) -> h.Capture:
    return h.start_tcpdump(path, f"udp and (port {sip_port} or portrange {MEDIA_BASE}-{media_hi})")


# -- the capture ---------------------------------------------------------------------------------
_FROM_USER = re.compile(rb"^(?:From|f)\s*:[^\r\n]*?sip:([^@;>\s]+)@", re.I | re.M)


@dataclass
class CallMedia:
    number: str = ""
    media_port: int = 0
    ack: float | None = None
    to_caller: list[tuple[float, bool]] = field(default_factory=list)
    from_caller: list[tuple[float, bool]] = field(default_factory=list)


def analyse(pcap: Path, sip_port: int, media_hi: int) -> dict[str, CallMedia]:
    """Per caller number: the ACK, and (time, sounds) of RTP each way on its media port."""
    calls: dict[str, CallMedia] = {}
    to_port: dict[int, list[tuple[float, bool]]] = {}
    from_port: dict[int, list[tuple[float, bool]]] = {}
    for t, sport, dport, payload in pcap_stats.read_pcap(pcap):
        if sport == sip_port or dport == sip_port:
            cid = pcap_stats._CALL_ID.search(payload)
            if not cid:
                continue
            c = calls.setdefault(cid.group(1).decode(errors="replace"), CallMedia())
            first = payload.split(b"\r\n", 1)[0]
            if sport == sip_port and first.startswith(b"INVITE ") and not c.number:
                m, mp = _FROM_USER.search(payload), pcap_stats._MPORT.search(payload)
                c.number = m.group(1).decode() if m else ""
                c.media_port = int(mp.group(1)) if mp else 0
            elif sport == sip_port and first.startswith(b"ACK ") and c.ack is None:
                c.ack = t
            continue
        if len(payload) < 12 or payload[0] >> 6 != 2 or payload[1] & 0x7F != 8:
            continue
        body = payload[12 + 4 * (payload[0] & 0x0F):]
        if MEDIA_BASE <= dport <= media_hi:
            to_port.setdefault(dport, []).append((t, pcap_stats.sounds(8, body)))
        elif MEDIA_BASE <= sport <= media_hi:
            from_port.setdefault(sport, []).append((t, pcap_stats.sounds(8, body)))
    out = {}
    for c in calls.values():
        if c.number and c.media_port:
            c.to_caller = to_port.get(c.media_port, [])
            c.from_caller = from_port.get(c.media_port, [])
            out[c.number] = c
    return out


def latencies(media: dict[str, CallMedia]) -> dict[str, dict[str, Any]]:
    """Per caller number: end of speech -> first sounding packet to the caller after it."""
    out: dict[str, dict[str, Any]] = {}
    for number, c in media.items():
        said = [t for t, s in c.from_caller if s]
        if not said:
            out[number] = {"spoke": False}
            continue
        start, end = said[0], said[-1]
        reply = next((t for t, s in c.to_caller if s and t > end), None)
        prompt_end = max((t for t, s in c.to_caller if s and t < start), default=None)
        out[number] = {"spoke": True, "speech_s": round(end - start, 3),
                       "ms": round((reply - end) * 1000, 1) if reply is not None else None,
                       "prompt_playing_at_speech": bool(prompt_end and start - prompt_end < 0.1),
                       "speech_start": start, "speech_end": end}
    return out


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    live = best = 0
    for _, d in sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals]):
        live += d
        best = max(best, live)
    return best


def py_spy_gil(pid: int, seconds: int, out: Path) -> dict[str, Any]:
    """py-spy of the samples in which a thread holds the GIL (`--gil`): with a hundred threads
    per worker, who holds the interpreter is the question; a thread waiting for it is idle."""
    cmd = [str(run.PY_SPY), "record", "-p", str(pid), "-d", str(seconds), "-r", "200", "--gil",
           "--nonblocking", "-f", "raw", "-o", str(out), "--threads"]
    try:
        subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        return {"error": "py-spy timed out"}
    if not out.is_file():
        return {"error": "no profile"}
    doc = run.summarise_collapsed(out.read_text())
    doc["intervals"] = seconds * 200
    return doc


def machine_busy() -> tuple[float, float]:
    """(monotonic time, CPU seconds the whole machine has been busy), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return time.monotonic(), (sum(fields[:8]) - idle) / h.CLK_TCK


def tasks(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (kind, CPU seconds) of one process's threads: the event loop (the main thread),
    pjmedia's clock and media threads, and the Python threads it started (the turns)."""
    out = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                tid = int(task.name)
                comm = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rpartition(")")[2].split()
                kind = "loop" if tid == pid else comm if comm in ("clock", "media") else \
                    "turns" if comm.startswith("python") else "other"
                out[tid] = (kind, (int(fields[11]) + int(fields[12])) / h.CLK_TCK)
    return out


def thread_kinds(a: dict[int, tuple[str, float]], b: dict[int, tuple[str, float]],
                 seconds: float) -> dict[str, Any]:
    """Cores per thread kind between two `tasks` readings (threads alive in both)."""
    cores: dict[str, float] = {}
    for tid, (kind, cpu) in b.items():
        if tid in a:
            cores[kind] = cores.get(kind, 0.0) + (cpu - a[tid][1]) / seconds
    return {"threads": len(b), **{k: round(v, 3) for k, v in sorted(cores.items())}}


# -- one step ------------------------------------------------------------------------------------
def cdrs(server: h.IvrServer, since: float) -> list[dict[str, Any]]:
    return list(server.api(f"/calls?since={since}", timeout=30)["calls"])


def branch_of(cdr: dict[str, Any], options: list[str]) -> str:
    path = cdr.get("path") or []
    if isinstance(path, str):
        path = json.loads(path)
    names = [p if isinstance(p, str) else p.get("node", "") for p in path]
    for n in names:
        if n in options or n == "failed":
            return n
    return "none"


def step(server: h.IvrServer, work: Path, phrases: list[Phrase], calls: int, rate: float,
         prompt_s: float, index: int, profile: bool, listen_s: float = 3.0) -> dict[str, Any]:
    tag = f"speech-{calls}-{index}"
    ramp = calls / rate
    speak_after = max(prompt_s + 1.0, ramp + listen_s)  # the prompt is over, every call is up
    longest = max(p.speech_end_s for p in phrases) - LEAD_S
    timeout = ramp + speak_after + longest + 60
    media_hi = MEDIA_BASE + min(9999, 4 * calls + 8)
    write_pcaps(phrases, work, tag, speak_after)
    scen = caller_scenario(work / f"{tag}.xml", phrases)
    inf = work / f"{tag}.csv"
    who = injection(inf, calls, len(phrases), index)
    sip_port = h.free_udp_tcp_port()
    pcap = work / f"{tag}.pcap"
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    since = time.time() - 1
    sampler = run.Sampler(server.all_pids)
    sample: dict[str, Any] = {}
    listening: dict[str, Any] = {}
    threads: dict[str, Any] = {}
    ctx: dict[str, Any] = {}
    prof: dict[str, Any] = {}
    peak = {"calls": 0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                peak["calls"] = max(peak["calls"], int(server.health().get("calls", 0)))
            stop.wait(0.5)

    def profile_busiest() -> None:
        workers = [w for w in server.health().get("workers", []) if w.get("alive")]
        pid = int(max(workers, key=lambda w: w.get("calls", 0))["pid"])
        time.sleep(max(0.0, ramp + 0.3 - (time.monotonic() - sipp.started)))
        prof["listening"] = py_spy_gil(pid, 2, work / f"{tag}.listening.pyspy.txt")
        time.sleep(max(0.0, speak_after + 0.5 - (time.monotonic() - sipp.started)))
        prof["speaking"] = py_spy_gil(pid, 4, work / f"{tag}.speaking.pyspy.txt")
        prof["pid"] = pid

    cap = start_capture(pcap, sip_port, media_hi)
    sipp = None
    try:
        sipp = start_sipp(server.target, scen, inf, work / f"{tag}.sipp.txt", calls=calls, rate=rate,
                          timeout=timeout, sip_port=sip_port)
        threading.Thread(target=watch, daemon=True).start()
        if profile:
            time.sleep(ramp / 2)  # the busiest worker is known once calls arrive
            threading.Thread(target=profile_busiest, daemon=True).start()
        # the speaking window: from the first caller's words to the last caller's
        window_start, window_len = speak_after, ramp + longest + 0.5
        # before it, every call up and listening to the prompt (the callers' RTP is silence)
        time.sleep(max(0.0, ramp + 0.3 - (time.monotonic() - sipp.started)))
        workers = server.worker_pids()
        ta = {p: tasks(p) for p in workers}
        listening = sampler.window(0.0, max(0.5, window_start - ramp - 0.5))
        listening["threads"] = {str(p): thread_kinds(ta[p], tasks(p), listening["window_s"])
                                for p in workers}
        time.sleep(max(0.0, window_start - (time.monotonic() - sipp.started)))
        workers = server.worker_pids()
        t_before = {p: h.thread_cpu(p) for p in workers}
        busy_a = machine_busy()
        sample = sampler.window(0.0, window_len, uac=sipp.proc.pid)
        busy_b = machine_busy()
        machine = (busy_b[1] - busy_a[1]) / (busy_b[0] - busy_a[0])
        sample["machine_cores"] = round(machine, 2)
        sample["others_cores"] = round(machine - sample["cores"] - (sample["uac_cores"] or 0), 2)
        for p in workers:
            ctx[str(p)] = len(tasks(p))
            after = h.thread_cpu(p)
            threads[str(p)] = {k: round((v - t_before[p].get(k, 0.0)) / sample["window_s"], 3)
                               for k, v in after.items() if v - t_before[p].get(k, 0.0) > 0.005}
        result = sipp.wait()
    finally:
        stop.set()
        if sipp is not None and sipp.proc.poll() is None:
            h.kill_group(sipp.proc)
        cap_stats = cap.stop()
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    idle = server.wait_idle(60)
    time.sleep(1.0)
    records = {str(c.get("caller", "")): c for c in cdrs(server, since)}
    media = analyse(pcap, sip_port, media_hi)
    lat = latencies(media)
    options = list(flow_options())
    per_phrase: dict[str, dict[str, Any]] = {}
    counts: Counter[str] = Counter()
    wrong: list[dict[str, Any]] = []
    ms_all, ms_right = [], []
    for number, idx in who.items():
        p = phrases[idx]
        rec = next((c for k, c in records.items() if k.endswith(number)), None)
        got = branch_of(rec, options) if rec else "no cdr"
        verdict = ("right" if got == p.option else "nomatch" if got == "failed"
                   else "no cdr" if got == "no cdr" else "none" if got == "none" else "wrong")
        counts[verdict] += 1
        lt = lat.get(number, {})
        ms = lt.get("ms")
        pp = per_phrase.setdefault(p.name, {"n": 0, "right": 0, "ms": []})
        pp["n"] += 1
        pp["right"] += verdict == "right"
        if ms is not None:
            ms_all.append(ms)
            pp["ms"].append(ms)
            if verdict == "right":
                ms_right.append(ms)
        if verdict != "right":
            heard = [t.get("text") for t in (json.loads(rec["transcript"])
                                             if rec and isinstance(rec.get("transcript"), str)
                                             else (rec or {}).get("transcript") or [])
                     if isinstance(t, dict) and t.get("who") == "caller"]
            wrong.append({"caller": number, "said": p.name, "expected": p.option, "got": got,
                          "heard": heard, "ms": ms})
    spoke = [v for v in lat.values() if v.get("spoke")]
    out = {
        "calls": calls, "rate": rate, "speak_after_s": round(speak_after, 2), "sipp": result,
        "capture": cap_stats, "peak_calls_health": peak["calls"], "idle_after": idle,
        "loadavg_before": load_before, "loadavg_after": load_after,
        "calls_in_capture": len(media), "callers_spoke": len(spoke),
        "max_simultaneous_speakers": max_overlap([(v["speech_start"], v["speech_end"]) for v in spoke]),
        "spoke_over_prompt": sum(1 for v in spoke if v["prompt_playing_at_speech"]),
        "branches": dict(counts), "wrong": wrong[:20],
        "end_reasons": dict(Counter(f"{c.get('end_reason')} at {c.get('end_node')}"
                                    for c in records.values() if c.get("end_reason") != "ivr hangup")),
        "end_of_speech_to_result_ms": pcap_stats.summary(ms_all, 1),
        "end_of_speech_to_result_ms_right": pcap_stats.summary(ms_right, 1),
        "per_phrase": {k: {"n": v["n"], "right": v["right"], **pcap_stats.summary(v["ms"], 1)}
                       for k, v in per_phrase.items()},
        "load": sample, "load_listening": listening, "worker_threads_cores": threads,
        "worker_threads": ctx,
        "workers_health": [{k: w.get(k) for k in ("pid", "calls", "restarts", "alive")}
                           for w in server.health().get("workers", [])],
    }
    if prof:
        out["profile"] = prof
    ok_calls = result.get("successful") == calls and result.get("failed") == 0
    p99 = out["end_of_speech_to_result_ms"].get("p99")
    out["ok"] = bool(ok_calls and counts["right"] == calls and p99 is not None
                     and p99 <= TARGET_P99_MS)
    with contextlib.suppress(OSError):
        pcap.unlink()
    return out


# -- report --------------------------------------------------------------------------------------
ASR_WHERE = {
    "pocketsphinx": "`asr: pocketsphinx` in each worker (its decoder processes)",
    "whisper": "`asr: whisper` (the default engine: tiny.en in the recognition service)",
}


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "## Speech at density", "",
        f"{m['date']}, git {m['git']}, {m['nproc']} cores ({m['cpu']}), shared with other work: "
        "the load average is given per run.", "",
        f"Command: `{doc['command']}`", "",
        "Target (issues 11, 12): >= 200 concurrent calls, every caller speaks once, 0 wrong branches, "
        f"end of speech -> result p99 <= {TARGET_P99_MS:.0f} ms.", "",
        f"`ivr serve`, built-in pool ({doc['workers']} workers, calls_per_worker auto), "
        + ASR_WHERE.get(doc.get("asr", "pocketsphinx"), "`asr: none`")
        + ", flow bench/flows/speech_menu.yaml (six spoken options). "
        f"Callers (SIPp, {doc['rate']:.0f} calls/s) answer the menu with one phrase each once every "
        "call of the step is up, so all N calls are live while they speak; phrases round robin. "
        "End of speech -> result: the caller's last RTP packet with |sample| > 600 to the first "
        "sounding RTP packet back (the option's prompt), from a tcpdump capture; it includes the "
        "endpointer's silence (`speech.turn`: 0.15 s for a confident match nothing in the grammar "
        "extends, 0.3 s for one the decoder is unsure of, else 0.7 s). Branches from "
        "the CDRs' paths. Steps run in order on one server. "
        "`stuck`: calls the IVR ended only by its 30 s media timeout (the flow stopped "
        "advancing).", "",
        "| calls | load avg before | other work, cores | SIPp ok/failed | right / wrong / nomatch / "
        "other | EoS->result p50 / p99 / max ms | speakers at once | engine cores speaking "
        "(per worker) | listening | PSS MB | threads per worker | stuck | ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in doc["steps"]:
        b = s["branches"]
        other = s["calls"] - b.get("right", 0) - b.get("wrong", 0) - b.get("nomatch", 0)
        lat = s["end_of_speech_to_result_ms"]
        load = s.get("load") or {}
        lines.append(
            f"| {s['calls']} | {' '.join(s['loadavg_before'])} | {load.get('others_cores')} | "
            f"{s['sipp'].get('successful')}/"
            f"{s['sipp'].get('failed')} | {b.get('right', 0)} / {b.get('wrong', 0)} / "
            f"{b.get('nomatch', 0)} / {other} | {lat.get('p50')} / {lat.get('p99')} / {lat.get('max')} | "
            f"{s['max_simultaneous_speakers']} | {load.get('cores')} "
            f"({', '.join(str(c) for c in load.get('worker_cores', []))}) | "
            f"{(s.get('load_listening') or {}).get('cores')} | {load.get('pss_mb')} | "
            + ", ".join(str(v) for v in s.get("worker_threads", {}).values())
            + f" | {sum(v for k, v in s.get('end_reasons', {}).items() if 'media timeout' in k)}"
            f" | {'yes' if s['ok'] else 'no'} |")
    lines += ["", "Offline (a call's turn on a speech hub, fed in real time, no SIP, no load), per "
              "phrase:", "", "| phrase | source | heard | conf | result, ms after the words | used |",
              "|---|---|---|---|---|---|"]
    for p in doc["phrases"]:
        o = p["offline"]
        lines.append(f"| {p['name']} | {Path(p['source']).name} | {o['heard']} | {o['confidence']} | "
                     f"{o['endpoint_ms']} | {'yes' if p['used'] else 'no (wrong or unsure offline)'} |")
    last = doc["steps"][-1] if doc["steps"] else None
    if last:
        lines += ["", f"Per phrase at {last['calls']} calls (EoS->result ms):", "",
                  "| phrase | calls | right | p50 | p99 | max |", "|---|---|---|---|---|---|"]
        for k, v in last["per_phrase"].items():
            lines.append(f"| {k} | {v['n']} | {v['right']} | {v.get('p50')} | {v.get('p99')} | "
                         f"{v.get('max')} |")
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200, help="concurrent calls (one step)")
    ap.add_argument("--steps", default="", help="comma list of steps, e.g. 50,100,200 (overrides --calls)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of the largest step")
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--profile", action="store_true", help="py-spy the busiest worker in the last step")
    ap.add_argument("--all", action="store_true", help="also phrases the engine gets wrong offline")
    ap.add_argument("--out", type=Path, default=None, help="JSON results")
    ap.add_argument("--md", type=Path, default=None, help="write the markdown section here")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--asr-shared", action="store_true",
                    help="speech.asr.shared: decode in the recognition service, not in the workers")
    ap.add_argument("--decoder-procs", type=int, default=None,
                    help="speech.asr.decoder_processes: PocketSphinx in N child processes per "
                         "worker (default: the engine's, one per core; 0: in the worker's own "
                         "threads)")
    ap.add_argument("--asr", default="pocketsphinx", choices=["pocketsphinx", "whisper", "none"],
                    help="whisper: the default engine, in the recognition service; none: the same calls "
                         "with speech off, for the cost of listening")
    ap.add_argument("--calls-per-worker", default="auto", type=lambda v: v if v == "auto" else int(v),
                    help="sip.calls_per_worker (default auto: one worker per core)")
    ap.add_argument("--allow-wheel", action="store_true", help="run on the pjsua2 wheel fallback too")
    args = ap.parse_args()
    for tool in ("sipp", "tcpdump", "sox", "espeak-ng"):
        if shutil.which(tool) is None:
            log(f"{tool} is missing")
            return 2
    steps = [int(s) for s in args.steps.split(",") if s] or [args.calls]
    steps += [steps[-1]] * (args.repeat - 1)
    work = Path(tempfile.mkdtemp(prefix="ivr-speech-"))
    log(f"work dir {work}")
    phrases = catalogue()
    if not SOUNDS.is_dir():
        log(f"{SOUNDS} is missing (scripts/install-deps.sh asterisk-core-sounds-en-wav): espeak only")
        phrases = [p for p in phrases if not p.name.startswith("human:")]
    for p in phrases:
        render(p, work)
    offline_check(phrases, args.asr)
    used = [p for p in phrases if args.all or p.offline["right"]]
    for p in phrases:
        log(f"{p.name:26} offline: {p.offline}{'' if p in used else '  (left out)'}")
    prompt = yaml.safe_load(FLOW.read_text())["nodes"]["menu"]["menu"]["prompt"]
    prompt_s = prompt_seconds(prompt)
    doc: dict[str, Any] = {
        "machine": run.machine(), "rate": args.rate, "prompt_s": round(prompt_s, 2),
        "command": " ".join([".venv/bin/python", "bench/speech_load.py", *sys.argv[1:]]),
        "phrases": [{"name": p.name, "text": p.text, "option": p.option, "source": p.source,
                     "speech_end_s": p.speech_end_s, "offline": p.offline, "used": p in used}
                    for p in phrases],
        "steps": []}
    server = None
    try:
        server = h.start_ivr(work / "ivr", max_calls=max(steps) + 8, flow=FLOW, asr=args.asr,
                             calls_per_worker=args.calls_per_worker,
                             asr_options={**({"shared": True} if args.asr_shared else {}),
                                          **({} if args.decoder_procs is None else
                                             {"decoder_processes": args.decoder_procs})})
        doc["workers"] = len(server.health()["workers"])
        doc["asr"] = args.asr
        doc["asr_shared"] = args.asr_shared
        doc["decoder_processes"] = args.decoder_procs
        doc["calls_per_worker"] = args.calls_per_worker
        doc["pjsua2"] = server.health().get("pjsua2", {})
        if doc["pjsua2"].get("build") != "source" and not args.allow_wheel:
            log(f"pjsua2 is {doc['pjsua2']}: not the source build (4 calls per worker); "
                "run scripts/build-pjsua2.sh .venv/bin/python, or pass --allow-wheel")
            return 3
        log(f"ivr ready, {doc['workers']} workers")
        time.sleep(2.0)
        for i, n in enumerate(steps):
            log(f"step {n} calls (loadavg {Path('/proc/loadavg').read_text().split()[:3]})")
            s = step(server, work, used, n, args.rate, prompt_s, i,
                     profile=args.profile and i == len(steps) - 1)
            doc["steps"].append(s)
            log(f"{n}: ok={s['ok']} sipp={s['sipp']} branches={s['branches']} "
                f"eos->result={s['end_of_speech_to_result_ms']} cores={s['load'].get('cores')} "
                f"workers={s['load'].get('worker_cores')} pss={s['load'].get('pss_mb')}")
    except KeyboardInterrupt:
        doc["interrupted"] = True
    finally:
        if server is not None:
            server.stop()
        if args.out:
            args.out.write_text(json.dumps(doc, indent=2, default=str))
        if args.md and doc["steps"]:
            args.md.write_text(markdown(doc))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if doc["steps"] and all(s["ok"] for s in doc["steps"]) else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.exit(main())
