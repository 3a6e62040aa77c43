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


CHUNK = 25
"""Frames (0.5 s) of a prompt matched as one piece."""
DRIFT = 8
"""Frames (160 ms) a piece may sit from where the previous one ended: a loaded media clock
drops or repeats frames, so a long prompt slides out of step with its rendering as it plays
(measured: 7 frames over a 10 s menu on a busy machine, where one rigid window measured 0.85)."""
START = 2.0 * MATCH
"""First-piece distance below which a start is worth following."""
PHASES = 4
"""Offsets within a frame at which the heard audio is analysed (see find_prompts)."""
LONGER = 1.5
"""A match this many times longer than the closer ones it overlaps replaces them."""
CLIPPED = CHUNK // 2
"""Frames a prompt may have lost before the received audio begins (it started with the call)."""


def _starts(h: np.ndarray, c: np.ndarray) -> list[int]:
    """Frames of `h` where the first piece of `c` may begin (local minima below START); negative
    for a prompt whose beginning was clipped by the start of the audio."""
    head = c[:CHUNK]
    n = len(head)
    if len(h) < n:
        return []
    dist = np.abs(np.lib.stride_tricks.sliding_window_view(h, (n, BANDS))[:, 0]
                  - head[None]).mean(axis=(1, 2))
    out = [-m for m in range(CLIPPED, 0, -1)
           if float(np.abs(h[: n - m] - head[m:]).mean()) < START]
    for i in np.nonzero(dist < START)[0]:
        lo, hi = max(0, i - CHUNK // 2), i + CHUNK // 2 + 1
        if dist[i] <= dist[lo:hi].min():
            out.append(int(i))
    return out


def _follow(h: np.ndarray, c: np.ndarray, start: int) -> tuple[float, int]:
    """`c` laid on `h` from frame `start`, piece by piece, each free to slide DRIFT frames from
    where the previous one ended: the mean distance and the frame where it ends."""
    total, frames, shift = 0.0, 0, 0
    for k in range(0, len(c), CHUNK):
        piece = c[k: k + CHUNK]
        if len(piece) < 3:
            break  # a last sliver says nothing
        best, best_shift = np.inf, shift
        for s in range(shift - DRIFT, shift + DRIFT + 1) if k else (0,):
            lo = start + k + s
            part = piece
            if lo < 0:  # before the audio began (a clipped start)
                part, lo = piece[-lo:], 0
            if len(part) < 3 or lo + len(part) > len(h):
                continue
            d = float(np.abs(h[lo: lo + len(part)] - part).mean())
            if d < best:
                best, best_shift = d, s
        if best == np.inf:
            if start + k + shift < 0:
                continue  # this piece lies wholly before the audio
            return np.inf, 0
        total += best * len(piece)
        frames += len(piece)
        shift = best_shift
    return (total / frames if frames else np.inf), start + len(c) + shift


def find_prompts(heard: np.ndarray, candidates: Iterable[tuple[str, np.ndarray]]) -> list[Found]:
    """Non-overlapping best matches of candidate prompt audio (8 kHz int16) in `heard`.

    The heard audio is analysed at PHASES offsets within a frame: a prompt starts anywhere on
    the line, and half a frame out of step measures ~0.5 on clean audio (MATCH is 0.45)."""
    rendered = []
    for text, audio in candidates:
        c = features(audio)
        voiced = np.nonzero(_voiced(c))[0]
        if voiced.size >= 5:  # the rendering's own leading/trailing silence goes
            rendered.append((text, c[voiced[0]: voiced[-1] + 1]))
    scored: list[tuple[float, int, int, str]] = []  # distance, start and end sample, text
    for phase in range(PHASES):
        skip = phase * HOP // PHASES
        h = features(heard[skip:])
        for text, c in rendered:
            if len(c) > len(h) + CLIPPED:
                continue
            for start in _starts(h, c):  # the same prompt may play again
                best, end = _follow(h, c, start)
                if best < MATCH:
                    scored.append((best, skip + max(0, start) * HOP,
                                   skip + min(end, len(h)) * HOP, text))
    found: list[Found] = []
    for best, lo, hi, text in sorted(scored):  # the closest first
        match = Found(lo * 1000 // RATE, hi * 1000 // RATE, text, best)
        clash = [f for f in found if _overlap(f, match)]
        if hi <= lo or any(LONGER * (f.end_ms - f.at_ms) > match.end_ms - match.at_ms
                           for f in clash):
            continue
        # a prompt as played (a case's rendered template) explains more of the line than the
        # static pieces of its template that match inside it: it takes their place
        found = [f for f in found if f not in clash] + [match]
    return sorted(found, key=lambda f: f.at_ms)



def _overlap(a: Found, b: Found) -> bool:
    """Whether two matches claim the same sound: more than half of the shorter one (a long
    prompt's warped end may touch the next prompt's start)."""
    shared = min(a.end_ms, b.end_ms) - max(a.at_ms, b.at_ms)
    return shared > 0.5 * min(a.end_ms - a.at_ms, b.end_ms - b.at_ms)
