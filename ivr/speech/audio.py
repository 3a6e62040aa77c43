"""Audio file helpers: read any WAV, convert to mono 16-bit at a target rate, write WAV.

Prompts come from espeak-ng at 22.05 kHz and from ops staff at whatever rate they recorded; calls
run at 8 or 16 kHz. soxr does the resampling (audioop is deprecated and gone in 3.13).
"""

from __future__ import annotations

import os
import threading
import wave
from pathlib import Path

import numpy as np
import soxr


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono int16 samples and the file's rate; stereo is averaged, 8/24/32-bit converted."""
    with wave.open(str(path), "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) * 256
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        data = ((b[:, 2].astype(np.int32) << 24 | b[:, 1].astype(np.int32) << 16
                 | b[:, 0].astype(np.int32) << 8) >> 16).astype(np.int16)
    elif width == 4:
        data = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    else:
        raise ValueError(f"{path}: unsupported sample width {width}")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return data, rate


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return samples.astype(np.int16)
    out = soxr.resample(samples.astype(np.float32) / 32768.0, rate_in, rate_out, quality="HQ")
    return np.asarray(np.clip(out * 32768.0, -32768, 32767), dtype=np.int16)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """Write atomically (tmp + rename): other workers read the cache concurrently."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per process and thread: two processes (a worker and `ivr call`, two test calls) may
    # render the same prompt at once, and an object's id() repeats across processes
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    tmp.replace(path)


def convert(src: Path, dst: Path, rate: int) -> Path:
    samples, rate_in = read_wav(src)
    write_wav(dst, resample(samples, rate_in, rate), rate)
    return dst


def duration(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())
