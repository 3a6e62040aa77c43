"""What `ivr call` makes of the IVR's audio: catalogue prompts by sound, the rest transcribed."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ivr.speech.audio import read_wav, write_wav
from ivr.speech.hear import hear, utterances
from ivr.speech.transcribe import (
    SphinxTranscriber,
    Transcriber,
    TranscriberError,
    Transcript,
    WhisperTranscriber,
    open_transcriber,
)
from ivr.speech.tts import PromptCache, Voice

RATE = 8000


def _line(tmp: Path, texts: list[str], gap_s: float = 0.35) -> tuple[np.ndarray, PromptCache]:
    """The prompts rendered by the IVR's voice, back to back, through 8 kHz mu-law (sox)."""
    cache = PromptCache(tmp / "cache", Voice(), RATE)
    gap = np.zeros(int(RATE * gap_s), dtype=np.int16)
    audio = np.concatenate([np.concatenate([read_wav(cache.render_sync(t))[0], gap]) for t in texts])
    raw, ulaw, back = tmp / "line.wav", tmp / "line.ul.wav", tmp / "back.wav"
    write_wav(raw, audio, RATE)
    subprocess.run(["sox", str(raw), "-r", "8000", "-e", "u-law", str(ulaw)], check=True)
    subprocess.run(["sox", str(ulaw), "-e", "signed", "-b", "16", str(back)], check=True)
    return read_wav(back)[0], cache


class _Deaf(Transcriber):
    name = "deaf"

    def transcribe(self, samples: np.ndarray, rate: int) -> Transcript | None:
        return None


def test_each_sentence_is_its_own_utterance(tmp_path: Path) -> None:
    audio, _ = _line(tmp_path, ["Welcome to the garden center.", "Press 1.", "Goodbye."])
    segs = utterances(audio, RATE)
    assert len(segs) == 3, [(s.start, s.end) for s in segs]
    assert all(a.end <= b.start for a, b in itertools.pairwise(segs))


def test_catalogue_prompts_by_sound_and_the_rest_by_whisper(tmp_path: Path) -> None:
    said = ["Welcome to the garden center.", "Thank you for calling.", "Goodbye."]
    audio, cache = _line(tmp_path, said)
    static = [(t, read_wav(cache.render_sync(t))[0]) for t in ["Welcome to the garden center."]]
    got = hear(audio, RATE, static, [], WhisperTranscriber())
    assert [p.heard_by for p in got.prompts] == ["catalogue", "asr", "asr"], got.prompts
    assert got.prompts[0].text == "Welcome to the garden center."
    assert got.prompts[0].confidence is not None and got.prompts[0].confidence > 0.5
    assert "thank you for calling" in got.prompts[1].text.lower()
    assert "goodbye" in got.prompts[2].text.lower()
    assert all(p.confidence is not None and 0 < p.confidence <= 1 for p in got.prompts)
    assert [p.at_ms for p in got.prompts] == sorted(p.at_ms for p in got.prompts)
    assert not got.unrecognised and not got.nothing_recognised


def test_pocketsphinx_transcribes_without_whisper_and_is_honest_about_it(tmp_path: Path) -> None:
    audio, _ = _line(tmp_path, ["For opening hours press 1.", "For directions press 2."])
    got = hear(audio, RATE, [], [], SphinxTranscriber())
    assert len(got.prompts) == 2 and all(p.heard_by == "asr" for p in got.prompts), got.prompts
    assert all(p.text and p.confidence is not None for p in got.prompts)
    # its open language model is poor on synthetic speech: it says so with a low confidence
    assert all(p.confidence is not None and p.confidence < 0.5 for p in got.prompts)


def test_audio_that_nobody_recognises_is_reported_not_dropped(tmp_path: Path) -> None:
    audio, _ = _line(tmp_path, ["Your parcel is on its way.", "Goodbye."])
    got = hear(audio, RATE, [], [], _Deaf())
    assert got.prompts == [] and got.nothing_recognised
    assert len(got.unrecognised) == 2 and got.speech_ms > 1000
    silent = hear(np.zeros(RATE * 3, dtype=np.int16), RATE, [], [], _Deaf())
    assert not silent.nothing_recognised and silent.unrecognised == []


def test_an_unknown_transcriber_is_a_clear_error() -> None:
    with pytest.raises(TranscriberError, match="unknown transcriber 'kaldi'"):
        open_transcriber("kaldi")
    assert isinstance(open_transcriber("pocketsphinx"), SphinxTranscriber)
    assert open_transcriber("none") is None
    assert isinstance(open_transcriber("auto"), WhisperTranscriber)  # installed by the dev extra
