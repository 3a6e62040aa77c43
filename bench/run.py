"""The benchmark: `ivr serve` against SIPp's own UAS (the C baseline), side by side, on loopback.

    .venv/bin/python bench/run.py [--quick] [--out bench/results.json]   (or: make bench / bench-quick)

1. The baseline: `sipp -sn uas -rtp_echo`. The ivr: `ivr serve` with bench/flows/bench.yaml (a
   prompt + DTMF menu) and a pool pre-started for the largest step.
2. The same SIPp caller scenario (record-route aware; G.711 A-law speech from g711a.pcap, then
   RFC 4733 "1" from dtmf_2833_1.pcap) against each, in steps of concurrent calls (stop at the
   first step with a failed call), then short calls at a fixed rate (call setups per second).
3. tcpdump on lo during every step: INVITE->200, ACK->first prompt packet, DTMF->next prompt,
   RTP jitter/loss of the streams towards the caller (bench/pcap_stats.py). /proc sampling of
   every process below `ivr serve` (workers from /health) and of the SIPp UAS: CPU and PSS.
4. py-spy profiles of a loaded worker and of an idle one; TTS render time; ASR (bench/asr_bench.py
   and bench/asr_streams.py). Writes the JSON and bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import harness as h
import pcap_stats
import report

RATE = 50.0  # call attempts per second while ramping a step (and the cps target)
MEDIA_BASE = 10000  # SIPp [auto_media_port] = base + 4 * (call - 1), modulo 10000
DTMF_AFTER_MS = 3000
HARD_DEADLINE_S = {"quick": 170.0, "full": 25 * 60.0}


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def log(msg: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def machine() -> dict[str, Any]:
    def sh(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "nproc": sh(["nproc"]), "free_m": sh(["free", "-m"]), "uname": sh(["uname", "-a"]),
            "cpu": cpu, "python": platform.python_version(),
            "sipp": sh(["sipp", "-v"]).splitlines()[1].strip() if sh(["sipp", "-v"]) else "",
            "git": sh(["git", "-C", str(h.REPO), "rev-parse", "--short", "HEAD"]),
            "git_dirty": bool(sh(["git", "-C", str(h.REPO), "status", "--porcelain", "--", "ivr"]))}


# -- one step ------------------------------------------------------------------------------------
class Sampler:
    """CPU and memory of the system under test during a step's steady window."""

    def __init__(self, pids: Any) -> None:
        self.pids = pids  # callable -> list of pids

    def window(self, start_in: float, length: float, uac: int = 0) -> dict[str, Any]:
        time.sleep(max(0.0, start_in))
        pids = self.pids()
        a = h.CpuSample.take(pids + ([uac] if uac else []))
        time.sleep(max(0.5, length))
        b = h.CpuSample.take(pids + ([uac] if uac else []))
        uac_cores = h.cores_used(a, b, [uac]) if uac else None
        by_kind: dict[str, float] = {}
        per_pid_cores = {}
        pss: dict[int, int] = {}
        names = {p: h.proc_name(p) for p in pids}
        for p in pids:
            c = h.cores_used(a, b, [p])
            per_pid_cores[p] = c
            by_kind[names[p]] = by_kind.get(names[p], 0.0) + c
            pss[p] = h.pss_kb(p)
        return {"cores": round(sum(per_pid_cores.values()), 3),
                "cores_by_kind": {k: round(v, 3) for k, v in by_kind.items()},
                "pss_mb": round(sum(pss.values()) / 1024, 1),
                "pss_mb_by_kind": {k: round(sum(v for p, v in pss.items() if names[p] == k) / 1024, 1)
                                   for k in set(names.values())},
                "worker_cores": sorted(round(c, 4) for p, c in per_pid_cores.items()
                                       if names[p] == "worker"),
                "worker_pss_mb": sorted(round(v / 1024, 1) for p, v in pss.items()
                                        if names[p] == "worker"),
                "uac_cores": round(uac_cores, 3) if uac_cores is not None else None,
                "window_s": round(b.at - a.at, 2)}


def run_step(name: str, target: str, work: Path, calls: int, *, scenario: Path, rate: float,
             hold_s: float, sampler: Sampler, window: tuple[float, float] | None,
             server: h.IvrServer | None, profile: bool = False) -> dict[str, Any]:
    """Place `calls` calls (all concurrent by design) and measure them."""
    tag = f"{name}-{calls}-{int(rate)}"
    pcap = work / f"{tag}.pcap"
    timeout = calls / rate + hold_s + 40
    uac_media_hi = MEDIA_BASE + min(9999, 4 * calls + 8)
    run = None
    cap = None
    sample: dict[str, Any] = {}
    peak = {"calls": 0}
    stop = threading.Event()

    def watch_peak() -> None:
        while server is not None and not stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                peak["calls"] = max(peak["calls"], int(server.health().get("calls", 0)))
            stop.wait(0.5)

    watcher = threading.Thread(target=watch_peak, daemon=True)
    prof: dict[str, Any] = {}
    try:
        sip_port = h.free_udp_tcp_port()  # known before SIPp starts, so the capture sees it all
        cap = h.start_capture(pcap, sip_port, MEDIA_BASE, uac_media_hi)
        run = h.start_uac(target, scenario, work / f"{tag}.sipp.txt", calls=calls, rate=rate,
                          limit=calls, timeout=timeout, media_port=MEDIA_BASE, sip_port=sip_port)
        watcher.start()
        if profile and server is not None:
            threading.Thread(target=lambda: prof.update(profile_busiest(server, work, tag,
                                                                          calls / rate + 1.0)),
                             daemon=True).start()
        if window is not None:
            sample = sampler.window(*window, uac=run.proc.pid)
        result = run.wait()
    finally:
        stop.set()
        if run is not None and run.proc.poll() is None:
            h.kill_group(run.proc)
        cap_stats = cap.stop() if cap is not None else {}
    log(f"{tag}: sipp {result}")
    figures: dict[str, Any] = {}
    if pcap.is_file():
        figures = pcap_stats.analyse(pcap, run.sip_port, MEDIA_BASE, uac_media_hi,
                                     echo=server is None)
        pcap.unlink()
    ok = result.get("failed") == 0 and result.get("successful") == calls and result.get("returncode") == 0
    out = {"calls": calls, "rate": rate, "hold_s": hold_s, "ok": ok, "sipp": result,
           "capture": cap_stats, "figures": figures, "load": sample, "peak_calls_health": peak["calls"]}
    if prof:
        out["profile"] = prof
    if server is not None:
        with contextlib.suppress(OSError, ValueError):
            out["worker_restarts_total"] = sum(int(w.get("restarts", 0))
                                               for w in server.health().get("workers", []))
    return out


# -- profiling -----------------------------------------------------------------------------------
PY_SPY = Path(sys.executable).parent / "py-spy"


def py_spy_record(pid: int, seconds: float, out: Path) -> dict[str, Any]:
    """Sample one process (Python frames + native) and summarise self and inclusive time."""
    if not PY_SPY.exists():
        return {"error": "py-spy not installed (pip install py-spy)"}
    cmd = [str(PY_SPY), "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "200",
           "--nonblocking", "-f", "raw", "-o", str(out), "--threads"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        return {"error": "py-spy timed out"}
    if not out.is_file():
        return {"error": proc.stderr[-500:]}
    return summarise_collapsed(out.read_text())


def summarise_collapsed(text: str, top: int = 12) -> dict[str, Any]:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    threads: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        own[frames[-1]] += count
        for f in set(frames[1:]):
            incl[f] += count
    def pct_of(c: Counter[str]) -> list[tuple[str, float]]:
        return [(k[:140], round(100 * v / max(total, 1), 1)) for k, v in c.most_common(top)]
    return {"samples": total, "threads": pct_of(threads), "self": pct_of(own),
            "inclusive": pct_of(incl)}


def profile_busiest(server: h.IvrServer, work: Path, tag: str, delay: float) -> dict[str, Any]:
    time.sleep(delay)
    workers = [w for w in server.health().get("workers", []) if w.get("alive") and w.get("calls")]
    if not workers:
        return {"error": "no busy worker"}
    w = max(workers, key=lambda x: x["calls"])
    doc = py_spy_record(int(w["pid"]), 4, work / f"{tag}.pyspy.txt")
    doc["worker_calls"] = w["calls"]
    return doc


# -- phases --------------------------------------------------------------------------------------
def hold_for(calls: int) -> float:
    """Hold in the menu until every call of the step is up, and past the caller's 6.4 s speech."""
    return max(8.0, calls / RATE + 3.0)


def capacity(name: str, target: str, work: Path, steps: list[int], sampler: Sampler,
             server: h.IvrServer | None, budget: Budget, profile_at: int | None) -> dict[str, Any]:
    results = []
    for n in steps:
        hold = hold_for(n)
        need = n / RATE + hold + DTMF_AFTER_MS / 1000 + 8
        if budget.left() < need:
            log(f"{name}: no time left for {n} calls ({budget.left():.0f}s < {need:.0f}s)")
            break
        scen = h.menu_scenario(work / f"menu-{n}.xml", int(hold * 1000), DTMF_AFTER_MS)
        ramp = n / RATE
        window = (ramp + 0.5, max(1.0, hold - 1.5))  # every call up, none yet pressed 1
        step = run_step(name, target, work, n, scenario=scen, rate=RATE, hold_s=hold,
                        sampler=sampler, window=window, server=server,
                        profile=(profile_at is not None and n == profile_at))
        results.append(step)
        if server is not None and not server.wait_idle(60):
            log(f"{name}: calls still up 60 s after the {n} step")
            step["ok"] = False
            step["note"] = "calls still up 60 s after the step"
        if not step["ok"]:
            break
    passed = [s["calls"] for s in results if s["ok"]]
    clean = [s["calls"] for s in results if s["ok"] and
             (s["figures"].get("jitter_ms", {}).get("all_packets", {}).get("p99", 99) <= 5.0)]
    return {"steps": results, "max_concurrent_ok": max(passed, default=0),
            "max_concurrent_ok_jitter_5ms": max(clean, default=0)}


def cps(name: str, target: str, work: Path, rates: list[float], seconds: float, sampler: Sampler,
        server: h.IvrServer | None, budget: Budget) -> dict[str, Any]:
    results = []
    scen = h.short_scenario(work / "short.xml", 1000)
    for r in rates:
        n = int(r * seconds)
        if budget.left() < seconds + 40:
            break
        step = run_step(f"{name}-cps", target, work, n, scenario=scen, rate=r, hold_s=1.0,
                        sampler=sampler, window=(2.0, max(1.0, seconds - 3.0)), server=server)
        # short calls: SIPp's -l equals the call count, so the rate alone paces them
        results.append(step)
        if server is not None:
            server.wait_idle(60)
        if not step["ok"]:
            break
    return {"steps": results, "max_cps_ok": max((s["rate"] for s in results if s["ok"]), default=0)}


def idle_load(sampler: Sampler, seconds: float) -> dict[str, Any]:
    return sampler.window(0.0, seconds)


def tts_times(n: int) -> dict[str, Any]:
    sys.path.insert(0, str(h.REPO))
    from ivr.speech.tts import PromptCache, Voice

    stamp = f"{os.getpid()}-{time.time():.0f}"
    texts = [f"Your reference number is {i * 7919 % 10000}, run {stamp}. Thank you for calling."
             for i in range(n)]
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = PromptCache(Path(tmp), Voice("espeak-ng", "en-us", 165), 8000,
                            key_file=Path(tmp) / "cache.key")
        cache.render_sync("warm up the disk cache")
        for t in texts:
            t0 = time.perf_counter()
            cache.render_sync(t)
            times.append((time.perf_counter() - t0) * 1000)
    return {"texts": n, "chars_mean": round(statistics.mean(len(t) for t in texts)),
            **pcap_stats.summary(times, 1)}


def asr(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    engines = "pocketsphinx" if quick else "pocketsphinx,vosk-ko"
    cmd = [sys.executable, str(h.BENCH / "asr_bench.py"), "--engines", engines,
           "--n", "4" if quick else "8"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=h.REPO)
        out["asr_bench"] = json.loads(proc.stdout) if proc.returncode == 0 else {
            "error": proc.stderr[-800:]}
    except (subprocess.TimeoutExpired, ValueError) as exc:
        out["asr_bench"] = {"error": str(exc)}
    # callers also hear prompts; PocketSphinx decodes in child processes, one per core per
    # worker process, as `speech.asr.decoder_processes` does by default; Whisper (the default
    # engine) in the recognition service, as `ivr serve` runs it
    runs = {"streams": ["--engine", "pocketsphinx", "--streams", "60" if quick else "40,60,80",
                        "--decoder-procs", str(os.cpu_count() or 2)],
            "streams_whisper": ["--engine", "whisper",
                                "--streams", "40" if quick else "20,40,60"]}
    for key, extra in runs.items():
        cmd = [sys.executable, str(h.BENCH / "asr_streams.py"), *extra,
               "--seconds", "8" if quick else "20", "--listen", "2"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=h.REPO)
            out[key] = json.loads(proc.stdout) if proc.returncode == 0 else {
                "error": proc.stderr[-800:]}
        except (subprocess.TimeoutExpired, ValueError) as exc:
            out[key] = {"error": str(exc)}
    return out


# -- main ----------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small steps, under 3 minutes")
    ap.add_argument("--out", type=Path, default=h.BENCH / "results.json")
    ap.add_argument("--md", type=Path, default=h.BENCH / "RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, profiles)")
    ap.add_argument("--skip-speech", action="store_true")
    ap.add_argument("--asr", default="none", choices=["none", "pocketsphinx"],
                    help="the workers' ASR engine (the bench flow is DTMF-only; see RESULTS.md)")
    args = ap.parse_args()
    for tool in ("sipp", "tcpdump"):
        if shutil.which(tool) is None:
            log(f"{tool} is missing: apt-get install -y {'sip-tester' if tool == 'sipp' else tool}")
            return 2
    mode = "quick" if args.quick else "full"
    budget = Budget(HARD_DEADLINE_S[mode])
    started = time.monotonic()
    if args.quick:
        ours_steps, base_steps = [20, 40, 80], [20, 40, 80]
        cps_rates, cps_seconds = [RATE], 8.0
    else:
        ours_steps = [20, 40, 80, 160, 240, 320, 400, 480, 600]
        base_steps = [20, 40, 80, 160, 240, 320, 400, 480, 640, 800]
        cps_rates, cps_seconds = [RATE, 100.0], 20.0
    work = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    log(f"mode {mode}; work dir {work}")
    doc: dict[str, Any] = {"mode": mode, "machine": machine(),
                           "command": " ".join([".venv/bin/python", "bench/run.py", *sys.argv[1:]]),
                           "targets": report.TARGETS, "scenario": {
                               "ramp_cps": RATE, "dtmf_after_s": "hold (max(8, calls/50 + 3))",
                               "after_dtmf_ms": DTMF_AFTER_MS,
                               "caller_audio": "g711a.pcap (6.4 s PCMA) from ACK; dtmf_2833_1.pcap"}}
    uas = None
    server = None
    try:
        # -- the C baseline first, with nothing else running --------------------------------
        uas, uas_port = h.start_uas(work / "uas.txt")
        uas_pid = uas.pid
        sampler = Sampler(lambda: [uas_pid])
        target = f"{h.LOOPBACK}:{uas_port}"
        base: dict[str, Any] = {"idle": idle_load(sampler, 2.0)}
        base_budget = Budget(budget.left() * (0.4 if args.quick else 0.3))
        base["capacity"] = capacity("sipp", target, work, base_steps, sampler, None, base_budget, None)
        base["cps"] = cps("sipp", target, work, cps_rates, cps_seconds, sampler, None, budget)
        doc["baseline"] = base
        h.kill_group(uas)
        uas = None
        # -- ivr serve, pool warm for the largest step --------------------------------------
        max_calls = max(ours_steps)
        log(f"starting ivr serve with the built-in pool for {max_calls} calls")
        t0 = time.monotonic()
        server = h.start_ivr(work / "ivr", max_calls=max_calls + 8,
                             flow=h.BENCH / "flows" / "bench.yaml", asr=args.asr,
                             timeout=min(400.0, max(60.0, budget.left() - 60)))
        srv = server
        ready = srv.health()
        ours: dict[str, Any] = {"workers": len(ready["workers"]), "max_calls": max_calls + 8,
                                "pjsua2": ready.get("pjsua2", {}),
                                "startup_s": round(time.monotonic() - t0, 1), "asr": args.asr}
        log(f"ivr ready in {ours['startup_s']}s")
        time.sleep(3.0)
        sampler = Sampler(srv.all_pids)
        idle_worker = srv.worker_pids()[0]
        threads_before = h.thread_cpu(idle_worker)
        ours["idle"] = idle_load(sampler, 3.0)
        threads_after = h.thread_cpu(idle_worker)
        ours["idle_worker_threads"] = {
            k: round(1000 * (v - threads_before.get(k, 0.0)) / ours["idle"]["window_s"], 1)
            for k, v in threads_after.items() if v - threads_before.get(k, 0.0) > 0}
        ours["profile_idle_worker"] = py_spy_record(idle_worker, 3, work / "idle.pyspy.txt")
        profile_at = ours_steps[-1] if args.quick else 320
        ours["capacity"] = capacity("ivr", srv.target, work, ours_steps, sampler, srv, budget,
                                    profile_at)
        ours["cps"] = cps("ivr", srv.target, work, cps_rates, cps_seconds, sampler, srv, budget)
        doc["ivr"] = ours
        server.stop()
        server = None
        # -- speech and TTS ---------------------------------------------------------------
        doc["tts"] = tts_times(4 if args.quick else 12)
        if not args.skip_speech and budget.left() > 30:
            doc["speech"] = asr(args.quick)
    except KeyboardInterrupt:
        doc["interrupted"] = True
        log("interrupted")
    finally:
        if uas is not None:
            h.kill_group(uas)
        if server is not None:
            server.stop()
        doc["wall_s"] = round(time.monotonic() - started, 1)
        doc["work_dir"] = str(work) if args.keep else None
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2, default=str))
        with contextlib.suppress(Exception):
            report.write(doc, args.md)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {args.out} and {args.md} in {doc['wall_s']}s")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.exit(main())
