"""ASR on real human voices: accuracy, false accepts, reliability, RTF, latency, memory, streams.

    .venv/bin/python bench/asr_real.py [--engines pocketsphinx,whisper] [--every 1]
        [--records bench/asr_real.json] [--fit] [--markdown]

The corpus is tests/real_voice.py (Debian's asterisk core sounds: isolated digits, 4-digit codes
with and without gaps, yes/no, menu phrases; through 8 kHz PCM, mu-law, line noise + mu-law, and
16 kHz G.722), built into ~/.cache/ivr/corpus. Every utterance goes through what a call does
(ivr.speech.asr.service.decode: the VAD cuts it, the engine decodes it under the node's grammar),
one decode at a time on one core (`taskset` it for a clean figure):

- accuracy: results that are right and at or above the grammar's default threshold
  (ivr.lang.grammars.default_confidence), out of all utterances; `top1`: right at any confidence;
- false accepts: wrong value at or above the threshold, out of all utterances;
- reliability: results per confidence bucket and the share of them that were right;
- decode latency: the recognizer's finalize() (what is left after the VAD's end of speech; the
  caller also waits the trailing silence, part B's subject), p50 / p99 in ms;
- RTF: decode CPU time / audio time; streams on 2 cores: 2 / RTF, the number of callers talking
  without pause that two cores keep up with (callers who also listen to prompts: several times
  that);
- memory: RSS after loading the engine and after decoding everything (MB).

`--fit` fits the calibration (ivr.speech.asr.calibration) on the "fit" half of the corpus (by
content: a code's every channel falls in the same half) and prints the MODELS table; the report
is made on the other half ("eval") unless `--all`.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import real_voice  # noqa: E402

from ivr.lang.grammars import default_confidence  # noqa: E402
from ivr.speech.asr.base import Engine, grammar_kind  # noqa: E402
from ivr.speech.asr.calibration import calibrate, transform  # noqa: E402
from ivr.speech.asr.service import load_pcm  # noqa: E402

BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0001)
MIN_WRONG = 3
"""A grammar kind with fewer wrong results than this in the fit half borrows the model fitted
on every kind (no logistic fit can place a boundary without failures)."""
FEATURES = {
    "pocketsphinx": ("word_posterior", "agreement", "fallback"),
    "whisper": ("match", "agreement", "token_prob", "margin", "no_speech"),
}


def half(u: real_voice.Utterance) -> str:
    content = u.id.rsplit(".", 1)[0].replace("-gaps", "").replace("-run", "")
    return "fit" if int(hashlib.sha1(content.encode()).hexdigest(), 16) % 2 == 0 else "eval"


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def make_engine(name: str) -> Engine:
    if name == "pocketsphinx":
        from ivr.speech.asr.pocketsphinx import PocketSphinxEngine
        return PocketSphinxEngine()
    if name.startswith("whisper"):
        from ivr.speech.asr.whisper import WhisperEngine
        beam = int(name.split("-b")[1][0]) if "-b" in name else 3
        engine = WhisperEngine(threads=1, workers=1, beam_size=beam)
        engine.hot_words = "plain" not in name
        if "-pp" in name:  # quiet after a phrase, in seconds: whisper-pp2
            engine.phrase_pad_s = float(name.split("-pp")[1].split("-")[0])
        return engine
    raise SystemExit(f"unknown engine {name}")


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_engine(name: str, trials: list[real_voice.Trial]) -> dict[str, Any]:
    before = rss_mb()
    t0 = time.perf_counter()
    engine = make_engine(name)
    load_s = time.perf_counter() - t0
    loaded = rss_mb()
    records = []
    pcm_cache: dict[str, bytes] = {}
    for t in trials:
        u = t.utterance
        pcm = pcm_cache.get(u.path) or pcm_cache.setdefault(u.path, load_pcm(u.path))
        c0 = cpu_s()
        o = real_voice.run_trial(engine, t, pcm)
        cpu = cpu_s() - c0
        records.append({
            "id": u.id, "set": t.set, "channel": u.channel, "truth": t.truth, "half": half(u),
            "kind": grammar_kind(t.grammar), "builtin": t.builtin, "text": o.text,
            "value": o.value, "right": o.right, "confidence": o.confidence,
            "features": o.features, "alternatives": list(o.alternatives),
            "decode_ms": round(o.decode_s * 1000, 2), "cpu_s": cpu, "audio_s": len(pcm) / 32000,
        })
    return {"engine": name, "load_s": round(load_s, 2), "rss_model_mb": round(loaded - before, 1),
            "rss_after_mb": round(rss_mb(), 1), "records": records}


def fit(records: list[dict[str, Any]], names: tuple[str, ...]) -> tuple[float, dict[str, float]]:
    """Logistic regression (L2, Newton's method) of `right` on the transformed features."""
    x = np.array([[transform(n, r["features"].get(n, 0.0)) for n in names] for r in records])
    y = np.array([1.0 if r["right"] else 0.0 for r in records])
    x = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(x.shape[1])
    lam = 1.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        grad = x.T @ (p - y) + lam * np.r_[0, w[1:]]
        hess = (x.T * (p * (1 - p))) @ x + lam * np.diag(np.r_[0, np.ones(len(w) - 1)])
        w -= np.linalg.solve(hess + 1e-9 * np.eye(len(w)), grad)
    return round(float(w[0]), 3), {n: round(float(v), 3) for n, v in zip(names, w[1:], strict=True)}


def recalibrate(engine: str, records: list[dict[str, Any]]) -> None:
    for r in records:
        if r["features"]:
            r["confidence"] = calibrate(engine.split("-")[0], r["kind"], r["features"])


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else 0.0


def summarize(run: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sets = sorted({r["set"] for r in records})
    for s in [*sets, "all"]:
        rs = [r for r in records if s == r["set"] or (s == "all" and r["truth"] is not None)]
        if not rs:
            continue
        thr = [default_confidence(r["builtin"]) for r in rs]
        accepted = [r["value"] is not None and r["confidence"] >= t
                    for r, t in zip(rs, thr, strict=True)]
        acc = sum(a and r["right"] for r, a in zip(rs, accepted, strict=True))
        fa = sum(a and not r["right"] for r, a in zip(rs, accepted, strict=True))
        audio = sum(r["audio_s"] for r in rs)
        cpu = sum(r["cpu_s"] for r in rs)
        rtf = cpu / audio if audio else 0.0
        out[s] = {
            "n": len(rs), "threshold": sorted(set(thr)),
            "accuracy": round(acc / len(rs), 3), "top1": round(sum(r["right"] for r in rs) / len(rs), 3),
            "false_accepts": round(fa / len(rs), 3),
            "rtf": round(rtf, 4), "streams_2_cores": int(2 / rtf) if rtf else None,
            "decode_ms_p50": pct([r["decode_ms"] for r in rs], 50),
            "decode_ms_p99": pct([r["decode_ms"] for r in rs], 99),
        }
        by_channel = {}
        for ch in real_voice.CHANNELS:
            c = [a and r["right"] for r, a in zip(rs, accepted, strict=True)
                 if r["channel"] == ch]
            if c:
                by_channel[ch] = round(sum(c) / len(c), 3)
        out[s]["accuracy_by_channel"] = by_channel
    return {"engine": run["engine"], "load_s": run["load_s"], "rss_model_mb": run["rss_model_mb"],
            "rss_after_mb": run["rss_after_mb"], "sets": out, "reliability": reliability(records)}


def reliability(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results (in-grammar and out-of-grammar trials alike) per confidence bucket, and the
    share of them that were right: what the confidence promises, measured."""
    table = []
    for lo, hi in itertools.pairwise(BINS):
        b = [r for r in records if lo <= r["confidence"] < hi and r["value"] is not None]
        table.append({"bucket": f"{lo:.1f}-{min(hi, 1.0):.1f}", "n": len(b),
                      "right": round(sum(r["right"] for r in b) / len(b), 3) if b else None})
    return table


def markdown(summaries: list[dict[str, Any]]) -> str:
    lines = ["| engine | set | n | threshold | accuracy | top-1 | false accepts | decode p50/p99 ms "
             "| RTF | streams/2 cores |", "|---|---|---|---|---|---|---|---|---|---|"]
    for sm in summaries:
        for s, v in sm["sets"].items():
            lines.append(f"| {sm['engine']} | {s} | {v['n']} | {v['threshold']} | "
                         f"{v['accuracy']:.1%} | {v['top1']:.1%} | {v['false_accepts']:.1%} | "
                         f"{v['decode_ms_p50']} / {v['decode_ms_p99']} | {v['rtf']} | "
                         f"{v['streams_2_cores']} |")
    lines += ["", "Reliability: of the results in each confidence bucket, the share that was "
              "right (n results); every set, out-of-grammar ones included", "",
              "| engine | " + " | ".join(b["bucket"] for b in summaries[0]["reliability"]) + " |",
              "|---|" + "---|" * (len(BINS) - 1)]
    for sm in summaries:
        cells = [f"{b['right']:.0%} ({b['n']})" if b["right"] is not None else "- (0)"
                 for b in sm["reliability"]]
        lines.append(f"| {sm['engine']} | " + " | ".join(cells) + " |")
    lines += ["", "| engine | load s | model RSS MB | RSS after MB |", "|---|---|---|---|"]
    for sm in summaries:
        lines.append(f"| {sm['engine']} | {sm['load_s']} | {sm['rss_model_mb']} | "
                     f"{sm['rss_after_mb']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", default="pocketsphinx,whisper")
    ap.add_argument("--every", type=int, default=1, help="every n-th utterance (a quick run)")
    ap.add_argument("--records", type=Path, default=None,
                    help="reuse (or write) decoded records here instead of decoding again")
    ap.add_argument("--fit", action="store_true", help="fit and print calibration models")
    ap.add_argument("--all", action="store_true", help="report on both halves")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    runs: list[dict[str, Any]]
    if args.records and args.records.is_file():
        runs = json.loads(args.records.read_text())
    else:
        trials = real_voice.trials(real_voice.subset(real_voice.build(), every=args.every))
        runs = []
        for name in args.engines.split(","):
            runs.append(run_engine(name, trials))
            print(f"{name}: {len(trials)} trials decoded", file=sys.stderr)
        if args.records:
            args.records.write_text(json.dumps(runs))
    if args.fit:
        for run in runs:
            eng = run["engine"].split("-")[0]
            fitted = [r for r in run["records"] if r["half"] == "fit" and r["value"] is not None]
            for kind in ("digits", "yes_no", "phrases"):
                # phrase grammars are read the same way as yes_no's phrase list: fitted on both
                kinds = ("phrases", "yes_no") if kind == "phrases" else (kind,)
                rs = [r for r in fitted if r["kind"] in kinds]
                note = ""
                if sum(not r["right"] for r in rs) < MIN_WRONG:
                    rs, note = fitted, "  # too few wrong results of its own: fitted on all kinds"
                print(f'    ("{eng}", "{kind}"): {fit(rs, FEATURES[eng])},{note}')
        return
    summaries = []
    for run in runs:
        recalibrate(run["engine"], run["records"])
        rs = [r for r in run["records"] if args.all or r["half"] == "eval"]
        summaries.append(summarize(run, rs))
    print(markdown(summaries) if args.markdown else json.dumps(summaries, indent=1))


if __name__ == "__main__":
    main()
