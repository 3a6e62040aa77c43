"""Bad input on a call's turn with the real decoder: music, a corrupt model directory, audio at
a rate the endpointer cannot take. Each ends in a clear outcome (noinput, nomatch, speech not
ready), never a false recognition or a hung turn."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_speech_turns import MENU, new_turn, quiet, speak

from ivr.config import AsrSettings
from ivr.flow.channel import ListenSpec
from ivr.sip.speech import SpeechHub
from ivr.speech.asr.base import EngineError
from ivr.speech.asr.pocketsphinx import PocketSphinxEngine
from ivr.speech.asr.probe import probe_pocketsphinx
from ivr.speech.asr.service import load_engine
from ivr.speech.asr.vad import Endpointer


@pytest.fixture(scope="module")
def engine() -> PocketSphinxEngine:
    return PocketSphinxEngine()


@pytest.fixture
def hub() -> Iterator[SpeechHub]:
    hub = SpeechHub()
    yield hub
    hub.stop()


def music(seconds: float) -> np.ndarray:
    """Hold-music-like: chords of harmonic tones changing every 400 ms, at -20 dBFS."""
    t = np.arange(int(0.4 * 8000)) / 8000
    rng = np.random.default_rng(11)
    out = []
    for _ in range(int(seconds / 0.4)):
        root = rng.choice([220.0, 247.0, 262.0, 294.0, 330.0])
        chord = sum(np.sin(2 * np.pi * root * r * t) / (1 + k)
                    for k, r in enumerate((1.0, 1.26, 1.5, 2.0)))
        out.append(chord / np.abs(chord).max() * 3000)
    return np.concatenate(out).astype(np.int16)


async def test_music_on_the_line_is_never_a_confident_option(engine: PocketSphinxEngine,
                                                             hub: SpeechHub) -> None:
    turn = new_turn(engine, hub, ListenSpec(timeout=3.0, phrases=MENU))
    await speak(turn, np.concatenate([music(4.0), quiet(1.0)]))
    got = await asyncio.wait_for(turn.result, 10)
    # music may start an utterance; what it decodes to must not pass a node's default threshold
    assert got is None or got.value == "" or got.confidence < 0.5, got


def test_a_corrupt_model_directory_is_speech_not_ready(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "mdef").write_text("this is not a model definition\n")
    (model / "means").write_bytes(b"\x00" * 64)
    # PocketSphinx itself would exit the process on this model: the worker probes it apart
    with pytest.raises(EngineError, match=r"broken.*Version error"):
        probe_pocketsphinx(str(model))
    status = load_engine(AsrSettings(engine="pocketsphinx", model=str(model)))
    assert status.ready is False and status.engine is None
    assert "speech not ready" in status.message and "DTMF" in status.message


def test_audio_at_a_rate_the_endpointer_cannot_take_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="8/16/32/48 kHz"):
        Endpointer(11025)


async def test_a_caller_at_the_wrong_rate_is_not_a_false_recognition(
        engine: PocketSphinxEngine, hub: SpeechHub) -> None:
    """16 kHz speech sent as 8 kHz (half speed, an octave down): heard as speech, never as a
    confident menu option."""
    from test_speech_turns import recording

    words = recording("vm-goodbye")
    slow = np.repeat(words, 2)  # every sample twice: the same words at half speed
    turn = new_turn(engine, hub, ListenSpec(timeout=3.0, phrases=MENU))
    await speak(turn, np.concatenate([quiet(0.3), slow, quiet(1.5)]))
    got = await asyncio.wait_for(turn.result, 10)
    assert got is None or got.value in ("", "goodbye") or got.confidence < 0.5, got
