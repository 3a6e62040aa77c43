"""Endpointing over generated call audio: noinput, onset latency (barge-in), end, max_speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from asr_audio import LEAD_S, render

from ivr.speech.asr.service import read_any_wav
from ivr.speech.asr.vad import Endpointer


@pytest.fixture(scope="session")
def audio_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asr-vad-audio")


def _pcm(path: Path) -> bytes:
    samples, rate = read_any_wav(path)
    assert rate == 8000
    return samples.astype("<i2").tobytes()


def _speech_onset_ms(path: Path) -> int:
    """First 10 ms frame over -40 dBFS: where the speech really starts in the file."""
    samples, rate = read_any_wav(path)
    n = rate // 100
    frames = samples[: len(samples) // n * n].astype(np.float64).reshape(-1, n)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    return int(np.flatnonzero(rms > 327)[0]) * 10


def _feed_in_frames(ep: Endpointer, pcm: bytes, frame_ms: int = 20) -> list[tuple[int, str, int]]:
    out = []
    step = ep.sample_rate * frame_ms // 1000 * 2
    for i in range(0, len(pcm), step):
        for ev in ep.feed(pcm[i:i + step]):
            out.append((i * 1000 // (ep.sample_rate * 2) + frame_ms, ev.kind, ev.at_ms))
    return out


def test_silence_is_noinput() -> None:
    ep = Endpointer(8000, timeout=2.0)
    rng = np.random.default_rng(1)
    noise = (rng.normal(0, 4, 8000 * 3)).astype("<i2").tobytes()  # quiet line hiss, 3 s
    events = _feed_in_frames(ep, noise)
    assert [k for _, k, _ in events] == ["noinput"]
    assert events[0][2] == 2000
    assert ep.started_ms is None and ep.take_audio() == b""


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_onset_reported_within_300ms_and_end_after_trailing_silence(
        audio_cache: Path, frame_ms: int) -> None:
    wav = render(audio_cache, "I would like to check my balance please", tail=1.5)
    pcm = _pcm(wav)
    onset = _speech_onset_ms(wav)
    assert abs(onset - LEAD_S * 1000) <= 60
    ep = Endpointer(8000, frame_ms=frame_ms, timeout=5.0, trailing_silence=0.7)
    events = _feed_in_frames(ep, pcm, frame_ms)
    kinds = [k for _, k, _ in events]
    assert kinds == ["start", "end"]
    (fed_at, _, start_at), (end_fed, _, end_at) = events
    latency = fed_at - onset
    print(f"\nframe {frame_ms} ms: onset {onset} ms, start reported after {latency} ms of audio,"
          f" VAD onset estimate {start_at} ms; end of speech {end_at} ms reported at {end_fed}")
    assert 0 <= latency < 300
    assert abs(start_at - onset) <= 100
    assert 650 <= end_fed - end_at <= 700 + frame_ms
    audio = ep.take_audio()
    assert len(audio) // 16 >= (end_fed - start_at)  # pre-roll + speech reach the decoder


def test_max_speech_caps_the_utterance(audio_cache: Path) -> None:
    text = "one two three four five six seven eight nine ten " * 3
    pcm = _pcm(render(audio_cache, text, speed=140))
    ep = Endpointer(8000, timeout=5.0, trailing_silence=0.7, max_speech=3.0, preroll_ms=300)
    events = _feed_in_frames(ep, pcm)
    assert [k for _, k, _ in events] == ["start", "max_speech"]
    assert ep.done
    audio = ep.take_audio()
    assert len(audio) <= (3.0 + 0.3 + 0.1) * 8000 * 2  # never more than max_speech + pre-roll
    assert ep.feed(pcm) == []  # done: further audio is ignored


def test_timeout_is_armed_after_the_prompt() -> None:
    ep = Endpointer(16000, timeout=1.0)
    silence = bytes(16000 * 2)
    assert ep.feed(silence[: 16000]) == []  # 0.5 s while the prompt plays
    ep.arm_timeout()
    events = ep.feed(silence * 2)
    assert [(e.kind, e.at_ms) for e in events] == [("noinput", 1500)]


def test_pause_comes_at_the_complete_silence_and_end_at_the_trailing_silence(
        audio_cache: Path) -> None:
    """`pause` lets a complete grammar match answer after 0.35 s of quiet; `end` still waits
    the full trailing silence for everything else."""
    pcm = _pcm(render(audio_cache, "balance", tail=1.5))
    ep = Endpointer(8000, timeout=5.0, trailing_silence=0.7, complete_silence=0.35)
    events = _feed_in_frames(ep, pcm)
    assert [k for _, k, _ in events] == ["start", "pause", "end"]
    (_, _, _), (pause_fed, _, pause_at), (end_fed, _, end_at) = events
    assert pause_at == end_at  # both mark the end of the last voiced frame
    assert 350 <= pause_fed - pause_at <= 370
    assert 700 <= end_fed - end_at <= 720
    assert ep.take_audio()  # peeking at the pause left the audio for the final decode


def test_no_pause_event_without_a_complete_silence(audio_cache: Path) -> None:
    pcm = _pcm(render(audio_cache, "balance", tail=1.5))
    events = _feed_in_frames(Endpointer(8000, timeout=5.0), pcm)
    assert [k for _, k, _ in events] == ["start", "end"]
