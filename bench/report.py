"""bench/RESULTS.md from the JSON that bench/run.py writes (also: `python bench/report.py JSON`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGETS = {
    "concurrent_calls": ">= 600 with 0 failures and RTP jitter p99 <= 5 ms; ratio >= 0.75 vs SIPp echo",
    "cps": ">= 100 call setups/s through the front, 0 failures",
    "invite_to_200_p99_ms": "<= 20 at 50 calls/s",
    "ack_to_first_prompt_p99_ms": "<= 150 at 400 calls",
    "dtmf_to_next_prompt_p99_ms": "<= 100 at 400 calls",
    "pss_400_mb": "<= 1024 (1 GB) at 400 calls",
    "idle_cores": "<= 0.05",
    "startup_s": "healthy <= 5 s after start",
    "end_of_speech_to_result_p99_ms": "<= 400 with grammars",
    "simultaneous_recognitions": ">= 60 in real time on 2 cores",
}
ANALYSIS = Path(__file__).with_name("analysis.md")
SPEECH_LOAD = Path(__file__).with_name("speech_load.md")
SPEECH_NOTES = Path(__file__).with_name("speech_notes.md")
"""Hand-written speech sections (turn-taking, real voices): kept across regenerations."""
SITE = Path(__file__).with_name("site.md")  # bench/site.py: the "Several nodes" section
"""bench/speech_load.py's report (speech over SIP at density), kept beside this one."""


def _get(d: Any, *path: Any, default: Any = None) -> Any:
    for p in path:
        if (isinstance(d, dict) and p in d) or \
                (isinstance(d, list) and isinstance(p, int) and -len(d) <= p < len(d)):
            d = d[p]
        else:
            return default
    return d


def _ratio(a: Any, b: Any) -> str:
    try:
        return f"{float(a) / float(b):.2f}" if float(b) else "-"
    except (TypeError, ValueError):
        return "-"


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    return f"{v}{unit}"


def _best_step(side: dict[str, Any]) -> dict[str, Any]:
    steps = _get(side, "capacity", "steps", default=[]) or []
    ok = [s for s in steps if s.get("ok")]
    return ok[-1] if ok else (steps[-1] if steps else {})


def _first_step(side: dict[str, Any]) -> dict[str, Any]:
    steps = _get(side, "capacity", "steps", default=[]) or []
    return steps[0] if steps else {}


def _stream_rows(streams: list[dict[str, Any]], engine: str) -> list[list[str]]:
    """bench/asr_streams.py's steps for one engine: in real time (the feed kept up and every
    turn was answered within asr_streams.GIVE_UP_S), and end of speech -> result p99 per step
    against the 400 ms target (the largest step that meets it)."""
    tried = ", ".join(str(s["streams"]) for s in streams)
    best = max((s["streams"] for s in streams if s.get("realtime") and not s.get("timed_out")),
               default=0)
    rows = [[f"{engine}: simultaneous real-voice grammar recognitions in real time, every turn "
             f"answered (tried: {tried})", TARGETS["simultaneous_recognitions"], str(best), "-",
             "-", _met(best >= 60)]]
    p99 = {s["streams"]: s.get("end_of_speech_to_result_ms_p99") for s in streams}
    fast = max((n for n, v in p99.items() if _le(v, 400)), default=0)
    detail = "; ".join(f"{s['streams']}: p50 {s.get('end_of_speech_to_result_ms_p50')}, "
                       f"{s.get('correct')} right / {s.get('wrong')} wrong of {s.get('results')}"
                       for s in streams)
    rows.append([f"{engine}: end of speech->result p99 (ms) per step ({detail})",
                 TARGETS["end_of_speech_to_result_p99_ms"],
                 " / ".join(f"{n}: {_fmt(v)}" for n, v in p99.items()), "-", "-",
                 f"met up to {fast} streams" if fast else "**missed**"])
    return rows


def _step_at(side: dict[str, Any], calls: int = 400) -> dict[str, Any]:
    """The step of `calls` calls, else the largest below it (quick mode stops at 80)."""
    steps = [s for s in _get(side, "capacity", "steps", default=[]) or [] if s.get("calls", 0) <= calls]
    return steps[-1] if steps else _first_step(side)


def _cps_step(side: dict[str, Any], rate: float = 50.0) -> dict[str, Any]:
    for s in _get(side, "cps", "steps", default=[]) or []:
        if s.get("rate") == rate:
            return dict(s)
    return {}


def _per_call(side: dict[str, Any], step: dict[str, Any]) -> tuple[float | None, float | None]:
    """(millicores per call, MB per call) over idle, at `step`."""
    load, idle, n = step.get("load") or {}, side.get("idle") or {}, step.get("calls") or 0
    if not load or not n:
        return None, None
    mc = (load.get("cores", 0) - idle.get("cores", 0)) * 1000 / n
    mb = (load.get("pss_mb", 0) - idle.get("pss_mb", 0)) / n
    return round(mc, 2), round(mb, 3)


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**missed**")


def _le(v: Any, limit: float) -> bool | None:
    return None if v is None else float(v) <= limit


def _ge(v: Any, limit: float) -> bool | None:
    return None if v is None else float(v) >= limit


def rows(doc: dict[str, Any]) -> list[list[str]]:
    ours, base = doc.get("ivr", {}), doc.get("baseline", {})
    out: list[list[str]] = []
    oc = _get(ours, "capacity", "max_concurrent_ok")
    bc = _get(base, "capacity", "max_concurrent_ok")
    ocj = _get(ours, "capacity", "max_concurrent_ok_jitter_5ms")
    ratio = _ratio(oc, bc)
    out.append(["max concurrent calls in the menu, 0 failed", TARGETS["concurrent_calls"],
                _fmt(oc), _fmt(bc), ratio,
                _met(None if oc is None else (oc >= 600 and ratio != "-" and float(ratio) >= 0.75))])
    out.append(["... of which RTP jitter p99 <= 5 ms", "", _fmt(ocj),
                _fmt(_get(base, "capacity", "max_concurrent_ok_jitter_5ms")),
                _ratio(ocj, _get(base, "capacity", "max_concurrent_ok_jitter_5ms")), ""])
    ocps, bcps = _get(ours, "cps", "max_cps_ok"), _get(base, "cps", "max_cps_ok")
    out.append(["call setups/s, 0 failed (steps tried: " +
                ", ".join(str(s["rate"]) for s in _get(ours, "cps", "steps", default=[]) or []) + ")",
                TARGETS["cps"], _fmt(ocps), _fmt(bcps), _ratio(ocps, bcps), _met(_ge(ocps, 100))])
    o50, b50 = _cps_step(ours), _cps_step(base)
    for q in ("p50", "p99"):
        ov = _get(o50, "figures", "invite_to_200_ms", q)
        bv = _get(b50, "figures", "invite_to_200_ms", q)
        out.append([f"INVITE->200 {q} at 50 calls/s (ms)",
                    TARGETS["invite_to_200_p99_ms"] if q == "p99" else "", _fmt(ov), _fmt(bv),
                    _ratio(ov, bv), _met(_le(ov, 20)) if q == "p99" else ""])
    for label, key, tkey, limit in (
            ("ACK->first prompt packet", "ack_to_first_prompt_ms", "ack_to_first_prompt_p99_ms", 150),
            ("DTMF->next prompt", "dtmf_to_next_prompt_ms", "dtmf_to_next_prompt_p99_ms", 100)):
        for which, pick in (("400 calls", _step_at), ("largest clean step", _best_step)):
            os_, bs = pick(ours), pick(base)
            ov = _get(os_, "figures", key, "p99")
            bv = _get(bs, "figures", key, "p99")
            out.append([f"{label} p99 (ms), {which} ({os_.get('calls', '-')} / {bs.get('calls', '-')})",
                        TARGETS[tkey], _fmt(ov), _fmt(bv), _ratio(ov, bv), _met(_le(ov, limit))])
    os_, bs = _best_step(ours), _best_step(base)
    for label, path in (("RTP jitter p99, all packets (ms)", ("jitter_ms", "all_packets", "p99")),
                        ("RTP jitter p99, per stream (ms)", ("jitter_ms", "per_stream_final", "p99")),
                        ("inter-packet gap p99 (ms; 20 = perfect)", ("inter_packet_gap_ms", "p99")),
                        ("RTP loss (sequence gaps) ratio", ("loss", "ratio"))):
        ov, bv = _get(os_, "figures", *path), _get(bs, "figures", *path)
        target = "<= 5 ms" if "jitter" in label and "all" in label else ""
        out.append([f"{label} at {os_.get('calls', '-')} / {bs.get('calls', '-')} calls", target,
                    _fmt(ov), _fmt(bv), _ratio(ov, bv),
                    _met(_le(ov, 5)) if target else ""])
    omc, omb = _per_call(ours, os_)
    bmc, bmb = _per_call(base, bs)
    out.append([f"CPU per call (millicores) at {os_.get('calls', '-')} / {bs.get('calls', '-')}", "",
                _fmt(omc), _fmt(bmc), _ratio(omc, bmc), ""])
    out.append([f"memory per call (MB PSS) at {os_.get('calls', '-')} / {bs.get('calls', '-')}", "",
                _fmt(omb), _fmt(bmb), _ratio(omb, bmb), ""])
    idle = ours.get("idle") or {}
    nw = len(idle.get("worker_pss_mb") or []) or None
    if nw:
        out.append(["per worker, idle: PSS MB (mean) / millicores (mean)", "",
                    f"{sum(idle['worker_pss_mb']) / nw:.1f} / "
                    f"{1000 * sum(idle['worker_cores']) / nw:.1f}", "-", "-", ""])
        lw = (os_.get("load") or {})
        if lw.get("worker_cores"):
            busy = list(lw["worker_cores"])
            out.append([f"per worker at {os_.get('calls')} calls: PSS MB (mean) / millicores (mean, max)",
                        "", f"{sum(lw['worker_pss_mb']) / len(lw['worker_pss_mb']):.1f} / "
                        f"{1000 * sum(busy) / len(busy):.1f}, {1000 * max(busy):.1f}", "-", "-", ""])
    at400 = _step_at(ours)
    pss = _get(at400, "load", "pss_mb")
    out.append([f"engine PSS (MB) at {at400.get('calls', '-')} calls", TARGETS["pss_400_mb"], _fmt(pss),
                "-", "-", _met(_le(pss, 1024)) if at400.get("calls") == 400 else ""])
    out.append(["idle engine (cores)", TARGETS["idle_cores"], _fmt(idle.get("cores")),
                _fmt(_get(base, "idle", "cores")), _ratio(idle.get("cores"), _get(base, "idle", "cores")),
                _met(_le(idle.get("cores"), 0.05))])
    out.append(["`ivr serve` start to healthy (s)", TARGETS["startup_s"], _fmt(ours.get("startup_s")),
                "-", "-", _met(_le(ours.get("startup_s"), 5))])
    tts = doc.get("tts") or {}
    out.append(["TTS render, fresh text (ms p50 / p99)", "", f"{tts.get('p50')} / {tts.get('p99')}",
                "-", "-", ""])
    for key, engine in (("streams_whisper", "Whisper, the default engine"),
                        ("streams", "PocketSphinx")):
        streams = _get(doc, "speech", key, default=[]) or []
        if isinstance(streams, list) and streams:
            out += _stream_rows(streams, engine)
    ab = _get(doc, "speech", "asr_bench", default={}) or {}
    for eng, d in ab.items() if isinstance(ab, dict) else []:
        if isinstance(d, dict) and "rtf" in d:
            out.append([f"ASR {eng}: RTF / finalize median ms / utterance decode median ms / "
                        "model RSS MB", "",
                        f"{d['rtf']} / {d['finalize_ms_median']} / "
                        f"{_get(d, 'utterance_decode_ms', 'median')} / {d['rss_model_mb']}",
                        "-", "-", ""])
        elif isinstance(d, dict) and "service_rss_mb" in d:
            out.append([f"ASR {eng} (the recognition service): utterance decode median ms incl. "
                        "IPC / service RSS MB / worker RSS MB", "",
                        f"{_get(d, 'utterance_decode_ms', 'median')} / {d['service_rss_mb']} / "
                        f"{d['client_rss_delta_mb']}", "-", "-", ""])
    return out


def step_table(side: dict[str, Any], title: str) -> list[str]:
    lines = [f"#### {title}", "",
             "| calls | ok | success/failed | peak live | INVITE->200 p50/p99 ms | ACK->prompt p50/p99 ms"
             " | DTMF->prompt p50/p99 ms | jitter p99 ms | gap p99 ms | loss | SUT cores | SIPp UAC cores"
             " | SUT PSS MB |", "|" + "---|" * 13]
    steps = (_get(side, "capacity", "steps", default=[]) or []) + \
        (_get(side, "cps", "steps", default=[]) or [])
    for s in steps:
        f = s.get("figures") or {}
        ld = s.get("load") or {}
        label = f"{s['calls']}" + (f" @ {s['rate']:.0f} cps" if s.get("hold_s") == 1.0 else "")
        lines.append(
            f"| {label} | {'yes' if s.get('ok') else 'NO'} | {_get(s, 'sipp', 'successful')}/"
            f"{_get(s, 'sipp', 'failed')} | "
            f"{s.get('peak_calls_health') or f.get('max_concurrent_in_capture')} | "
            f"{_get(f, 'invite_to_200_ms', 'p50')}/{_get(f, 'invite_to_200_ms', 'p99')} | "
            f"{_get(f, 'ack_to_first_prompt_ms', 'p50')}/{_get(f, 'ack_to_first_prompt_ms', 'p99')} | "
            f"{_get(f, 'dtmf_to_next_prompt_ms', 'p50')}/{_get(f, 'dtmf_to_next_prompt_ms', 'p99')} | "
            f"{_get(f, 'jitter_ms', 'all_packets', 'p99')} | {_get(f, 'inter_packet_gap_ms', 'p99')} | "
            f"{_get(f, 'loss', 'ratio')} | {ld.get('cores')} | {ld.get('uac_cores')} | {ld.get('pss_mb')} |")
    failed = [s for s in (_get(side, "capacity", "steps", default=[]) or []) if not s.get("ok")]
    for s in failed:
        tail = str(_get(s, "sipp", "tail", default="")).strip()
        if tail:
            lines += ["", f"Failed step {s['calls']}: SIPp said:", "", "```", tail[-1200:], "```"]
    return lines


def profile_lines(title: str, prof: dict[str, Any] | None) -> list[str]:
    if not prof or "self" not in prof:
        return [f"{title}: {prof.get('error') if prof else 'not taken'}", ""]
    lines = [f"**{title}** ({prof['samples']} samples"
             + (f", worker with {prof['worker_calls']} calls" if prof.get("worker_calls") else "") + ")",
             "", "| % of samples (self) | frame |", "|---|---|"]
    lines += [f"| {p} | `{f}` |" for f, p in prof["self"][:10]]
    lines += ["", "| % of samples (inclusive) | frame |", "|---|---|"]
    lines += [f"| {p} | `{f}` |" for f, p in prof["inclusive"][:10]]
    lines += ["", "Threads: " + ", ".join(f"`{t}` {p}%" for t, p in prof["threads"][:6]), ""]
    return lines


def write(doc: dict[str, Any], path: Path) -> None:
    m = doc.get("machine", {})
    ours, base = doc.get("ivr", {}), doc.get("baseline", {})
    lines = [
        "# Benchmark results", "",
        f"Generated by `bench/run.py` ({doc.get('mode')} mode) on {m.get('date')} in "
        f"{doc.get('wall_s')} s. Engine at git `{m.get('git')}`"
        + (" with uncommitted changes under ivr/ (others were editing)" if m.get("git_dirty") else "")
        + ".", "",
        "## Machine", "", "```", f"$ nproc\n{m.get('nproc')}", f"$ free -m\n{m.get('free_m')}",
        f"$ uname -a\n{m.get('uname')}", f"cpu: {m.get('cpu')}; python {m.get('python')}; {m.get('sipp')}",
        "```", "",
        "## Reproduce", "", "```sh",
        "make bench-quick      # = .venv/bin/python bench/run.py --quick   (under 3 minutes)",
        "make bench            # = .venv/bin/python bench/run.py           (about 20 minutes)",
        "# this file came from:",
        doc.get("command", ""),
        "```", "",
        "Needs what `make test` installs plus `tcpdump` (`apt-get install -y tcpdump`) and, for the "
        "profiles, `py-spy` in the venv (`.venv/bin/pip install py-spy`). Everything runs on "
        "127.0.0.1; every SIPp run is bounded by `-m` calls and `-timeout`.", "",
        "## What runs", "",
        "- **C baseline**: `sipp -sn uas -rtp_echo` (SIPp's built-in UAS echoing every RTP packet). "
        "**Ours**: `ivr serve` with the built-in pool (Kamailio front, one pjsua2 worker per core, "
        "each carrying its share of max_calls; broker, store) with `bench/flows/bench.yaml` "
        "(prompt + DTMF menu; \"1\" plays the next prompt).",
        "- **The same SIPp caller scenario against both** (`harness.menu_scenario`, built with "
        "tests/integration/scenarios.py: record-route aware, `rrs` + `[routes]`): INVITE (PCMA + "
        "telephone-event), ACK, `play_pcap_audio g711a.pcap` (6.4 s of speech, which also "
        "barges into the welcome prompt), hold in the menu until every call of the step is up, "
        "`dtmf_2833_1.pcap`, 3 s listening, BYE. Steps ramp at 50 calls/s and stop at the first "
        "step with a failed call. Call setups per second: short calls (setup, 1 s, BYE) at a "
        "fixed rate.",
        "- **Measured from a tcpdump capture on lo** (bench/pcap_stats.py): INVITE->200 at the "
        "caller; ACK->first RTP packet towards the caller that carries sound (|sample| > 600) - "
        "for the echo baseline that is the first echoed packet; DTMF (first RFC 4733 packet "
        "from the caller)->first sounding packet after it (the echoed DTMF for the baseline); "
        "RFC 3550 interarrival jitter over every packet of the streams to the caller (p99 of "
        "the running J, and of each stream's final J), inter-packet gaps, and loss from "
        "sequence gaps. So the baseline latencies are the floor of the loopback path, and the "
        "ratios say how much the engine adds on top of it.",
        "- **CPU and memory** from /proc over the step's steady window (every call up, none yet "
        "pressed 1): every process under `ivr serve` (workers, Kamailio, Mosquitto, the "
        "supervisor) vs the SIPp UAS process; PSS (smaps_rollup) so shared pages count once; "
        "per call = (load - idle) / calls.", "",
        "## Figures against the targets", "",
        "| figure | target | ivr | SIPp baseline | ratio ivr/baseline | |", "|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows(doc)]
    lines += ["", "## Steps", ""]
    lines += [*step_table(base, "SIPp UAS -rtp_echo (C baseline)"), ""]
    pj = ours.get("pjsua2") or {}
    lines += [*step_table(ours, f"ivr serve ({ours.get('workers')} workers started in "
                                f"{ours.get('startup_s')} s; pjsua2 {pj.get('version')} "
                                f"{pj.get('build')}, up to {pj.get('calls_per_worker')} calls per "
                                f"worker; ASR engine: {ours.get('asr')})"), ""]
    if ours.get("idle_worker_threads"):
        lines += [f"Idle worker CPU by thread (millicores): {ours['idle_worker_threads']}.", ""]
    idle = ours.get("idle") or {}
    lines += [f"Idle engine (no call): {idle.get('cores')} cores, by kind {idle.get('cores_by_kind')}; "
              f"PSS {idle.get('pss_mb')} MB, by kind {idle.get('pss_mb_by_kind')}.", ""]
    lines += ["## Profiles (py-spy, 200 Hz, --nonblocking, all threads)", ""]
    lines += profile_lines("Idle worker", ours.get("profile_idle_worker"))
    for s in _get(ours, "capacity", "steps", default=[]) or []:
        if s.get("profile"):
            lines += profile_lines(f"Busiest worker during the {s['calls']}-call step", s["profile"])
    sp = doc.get("speech") or {}
    if sp:
        lines += ["## Speech", "", "```json", json.dumps(sp, indent=1)[:4000], "```", ""]
    if SPEECH_NOTES.is_file():
        lines += [SPEECH_NOTES.read_text().rstrip(), ""]
    if ANALYSIS.is_file():
        lines += [ANALYSIS.read_text().rstrip(), ""]
    if SPEECH_LOAD.is_file():
        lines += [SPEECH_LOAD.read_text().rstrip(), ""]
    if SITE.is_file():
        lines += [SITE.read_text().rstrip(), ""]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("results.json")
    write(json.loads(src.read_text()), Path(__file__).with_name("RESULTS.md"))
