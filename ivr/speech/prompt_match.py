"""Finding known prompts in a call's audio by sound, not by speech recognition.

`ivr call` runs on the same machine as the TTS that rendered the IVR's prompts, so it can render
each prompt text itself and look for that audio in what it heard: log-mel frames compared over a
sliding window. Through G.711 the match is near exact, which speech recognition of synthetic
speech is not (measured: PocketSphinx heard nothing in "Hello. Press 1." on such audio). Prompts
with template parts cannot be rendered ahead; `ivr call` leaves those to the recogniser.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

RATE = 8000
HOP = 160  # 20 ms
WIN = 256
BANDS = 20
MATCH = 0.45
"""Mean absolute log-mel distance below which a window is the prompt (same audio through G.711
measures ~0.1-0.25; different prompts > 0.8)."""
SUB_HOPS = 4
"""Offsets within a hop at which each prompt is compared: the call's audio need not start on our
hop grid, and half a hop off costs as much as G.711 (espeak-ng's Mandarin voice: from 0.1 to
0.4 and more, then no match at all)."""


def _mel_filters() -> np.ndarray:
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    mels = np.linspace(hz_to_mel(np.array(100.0)), hz_to_mel(np.array(3800.0)), BANDS + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = np.floor((WIN + 1) * hz / RATE).astype(int)
    fb = np.zeros((BANDS, WIN // 2 + 1))
    for i in range(BANDS):
        a, b, c = bins[i], bins[i + 1], bins[i + 2]
        fb[i, a:b] = (np.arange(a, b) - a) / max(b - a, 1)
        fb[i, b:c] = (c - np.arange(b, c)) / max(c - b, 1)
    return fb


_FB = _mel_filters()


def features(samples: np.ndarray) -> np.ndarray:
    """Log-mel frames (n, BANDS) of 8 kHz int16 audio; silence floored so it compares equal."""
    x = samples.astype(np.float32)
    if x.size < WIN:
        return np.zeros((0, BANDS), dtype=np.float32)
    n = 1 + (x.size - WIN) // HOP
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    frames = x[idx] * np.hanning(WIN).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return np.asarray(np.log10(np.maximum(power @ _FB.T, 1e4)), dtype=np.float32)


@dataclass(frozen=True)
class Found:
    at_ms: int
    end_ms: int
    text: str
    distance: float


def _voiced(f: np.ndarray) -> np.ndarray:
    return np.asarray(f.max(axis=1) > 4.5)


def _slack(per_frame: np.ndarray) -> np.ndarray:
    """Window distances from per-frame ones (window, frame), each prompt frame compared also with
    the heard frame before and after its place: a frame the call's audio path dropped or
    repeated (a loaded machine's sound clock) shifts the rest of the prompt by one."""
    d = per_frame
    if len(d) < 3:
        return np.asarray(d.mean(axis=1))
    best = d.copy()
    best[1:] = np.minimum(best[1:], d[:-1])  # window i, frame j vs heard frame i-1+j
    best[:-1] = np.minimum(best[:-1], d[1:])  # ... vs heard frame i+1+j
    return np.asarray(best.mean(axis=1))


def _shifted_features(audio: np.ndarray) -> list[np.ndarray]:
    """The prompt's voiced frames at SUB_HOPS offsets within a hop (trimmed to one length), or
    none when it is too short to match."""
    first = features(audio)
    voiced = np.nonzero(_voiced(first))[0]
    if voiced.size < 5:
        return []
    lo, hi = voiced[0], voiced[-1] + 1  # the rendering's own leading/trailing silence
    out = [features(audio[k * HOP // SUB_HOPS:])[lo:hi] for k in range(SUB_HOPS)]
    n = min(len(c) for c in out)
    return [c[:n] for c in out]


def find_prompts(heard: np.ndarray, candidates: Iterable[tuple[str, np.ndarray]]) -> list[Found]:
    """Non-overlapping best matches of candidate prompt audio (8 kHz int16) in `heard`."""
    h = features(heard)
    found: list[Found] = []
    taken = np.zeros(len(h), dtype=bool)
    scored: list[tuple[float, int, int, str]] = []
    for text, audio in candidates:
        shifted = _shifted_features(audio)
        if not shifted:
            continue
        n = len(shifted[0])
        if n > len(h):
            continue
        windows = np.lib.stride_tricks.sliding_window_view(h, (n, BANDS))[:, 0]
        dist = np.min([_slack(np.abs(windows - c[None]).mean(axis=2)) for c in shifted], axis=0)
        i = int(np.argmin(dist))
        best = float(dist[i])
        while best < MATCH:
            scored.append((best, i, n, text))
            dist[max(0, i - n // 2): i + n // 2 + 1] = np.inf  # the same prompt may play again
            i = int(np.argmin(dist))
            best = float(dist[i])
    for best, i, n, text in sorted(scored):
        if taken[i: i + n].any():
            continue
        taken[i: i + n] = True
        found.append(Found(i * HOP * 1000 // RATE, (i + n) * HOP * 1000 // RATE, text, best))
    return sorted(found, key=lambda f: f.at_ms)
