"""A pause decode of a digits collect is scored only once it could end the turn: PocketSphinx
answers a string short of the collect's min digits from its search's backtrace, unscored (the
lattice and posterior were most of such a decode), and a string that reaches it exactly as
`finalize()` does; in-process and through a decoder process alike."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import real_voice

from ivr.lang.grammars import Grammar
from ivr.lang.numbers import parse_digits
from ivr.speech.asr.base import Engine, Result
from ivr.speech.asr.pocketsphinx import PocketSphinxEngine
from ivr.speech.asr.procs import ProcessEngine
from ivr.speech.asr.service import read_any_wav
from ivr.speech.audio import resample

PAUSE_GRAMMAR = Grammar(builtin="digits", min_words=1, max_words=4)
"""What a 4-digit collect decodes at a pause (ivr.speech.asr.expect.partial_grammar)."""


def _pcm(u: real_voice.Utterance) -> bytes:
    samples, rate = read_any_wav(Path(u.path))
    return bytes(resample(samples, rate, 8000).astype("<i2").tobytes())


def _run(engine: Engine, pcm: bytes, min_digits: int) -> Result | None:
    rec = engine.new_recognizer(PAUSE_GRAMMAR, 8000)
    try:
        rec.accept(pcm)
        return rec.finalize_partial(min_digits) if min_digits else rec.finalize()
    finally:
        rec.close()


@pytest.fixture(scope="module")
def clips() -> dict[str, list[bytes]]:
    items = real_voice.build()
    return {s: [_pcm(u) for u in real_voice.subset(items, sets=(s,), channels=("pcm8",))[:4]]
            for s in ("digit", "digits4")}


@pytest.mark.parametrize("in_processes", [False, True])
def test_short_strings_come_back_unscored_and_whole_ones_as_finalize_gives_them(
        clips: dict[str, list[bytes]], in_processes: bool) -> None:
    engine: Engine = ProcessEngine("pocketsphinx", None, 1) if in_processes \
        else PocketSphinxEngine()
    try:
        for pcm in clips["digit"]:  # one digit said: short of a 4-digit collect's min
            got = _run(engine, pcm, 4)
            assert got is not None and got.confidence == 0.0
            assert len(parse_digits(got.text) or "") < 4
        whole = 0
        for pcm in clips["digits4"]:
            scored = _run(engine, pcm, 0)
            partial = _run(engine, pcm, 4)
            assert scored is not None and partial is not None
            if len(parse_digits(partial.text) or "") >= 4:  # could end the turn: scored
                whole += 1
                assert (partial.text, partial.confidence, partial.alternatives) == \
                    (scored.text, scored.confidence, scored.alternatives)
            else:
                assert partial.confidence == 0.0
        assert whole >= 3  # the backtrace counts whole codes' digits
    finally:
        engine.close()


def test_an_unscored_pause_decode_skips_the_costly_part(clips: dict[str, list[bytes]]) -> None:
    engine = PocketSphinxEngine()
    pcm = clips["digits4"][0]
    _run(engine, pcm, 0)  # warm
    scored = min(_timed(engine, pcm, 0) for _ in range(3))
    # the same audio asked for more digits than it holds: answered from the backtrace
    unscored = min(_timed(engine, pcm, 9) for _ in range(3))
    assert unscored < scored


def _timed(engine: Engine, pcm: bytes, min_digits: int) -> float:
    started = time.perf_counter()
    _run(engine, pcm, min_digits)
    return time.perf_counter() - started
