"""Turn-taking on a call's turn with the real decoder, fed in real time: answers soon after the
words, never between digits, never on the prompt's own echo, a cough or line noise; a stalled
decoder is a nomatch in bounded time; results do not depend on which call spoke first."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from asr_audio import render

from ivr.config import TurnSettings
from ivr.flow.channel import Input, ListenSpec
from ivr.sip.speech import SpeechHub, Turn
from ivr.speech.asr.base import Engine, Grammar, Recognizer, Result
from ivr.speech.asr.pocketsphinx import PocketSphinxEngine
from ivr.speech.asr.service import read_any_wav
from ivr.speech.asr.vad import level_envelope

FRAME = 320  # 20 ms at 8 kHz
SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
MENU = ("balance", "account balance", "cards", "card", "agent", "operator", "opening hours",
        "hours", "message", "leave a message", "goodbye")


@pytest.fixture(scope="module")
def engine() -> PocketSphinxEngine:
    return PocketSphinxEngine()


@pytest.fixture
def hub() -> Iterator[SpeechHub]:
    hub = SpeechHub()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("turn-audio")


def recording(name: str) -> np.ndarray:
    """A real human recording (Debian asterisk-core-sounds-en-wav, 8 kHz)."""
    samples, rate = read_any_wav(SOUNDS / f"{name}.wav")
    assert rate == 8000
    return samples.astype(np.int16)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 8000), dtype=np.int16)


def last_loud_s(x: np.ndarray) -> float:
    return float(np.flatnonzero(np.abs(x.astype(np.int32)) > 600)[-1]) / 8000


async def speak(turn: Turn, x: np.ndarray) -> float | None:
    """Feed `x` in real time (20 ms frames, as the media clock does); when the turn answered,
    seconds from the start of `x` (None: still waiting at the end)."""
    pcm = x.astype("<i2").tobytes()
    t0 = time.monotonic()
    for i in range(0, len(pcm) - FRAME + 1, FRAME):
        wait = t0 + i / 16000 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if turn.result.done():
            return time.monotonic() - t0
        turn.push(pcm[i:i + FRAME])
    return None


def new_turn(engine: Engine, hub: SpeechHub, spec: ListenSpec | None,
             started: list[float] | None = None) -> Turn:
    turn = Turn(engine, asyncio.get_running_loop(),
                lambda: started.append(time.monotonic()) if started is not None else None, hub)
    if spec is not None:
        turn.listen(spec)
    return turn


# -- turn-taking ------------------------------------------------------------------------------
async def test_menu_answers_soon_after_the_words(engine: PocketSphinxEngine, hub: SpeechHub,
                                                      cache: Path) -> None:
    clips = [("goodbye", recording("goodbye")), ("hours", recording("hours")),
             ("message", recording("vm-message"))]
    for text in ("agent", "opening hours", "account balance", "operator"):
        samples, _ = read_any_wav(render(cache, text, tail=0.1))
        clips.append((text, samples.astype(np.int16)))
    spec = ListenSpec(timeout=5.0, phrases=MENU)

    async def one(text: str, words: np.ndarray) -> tuple[str, Input | None, float]:
        x = np.concatenate([quiet(0.3), words, quiet(2.0)])
        turn = new_turn(engine, hub, spec)
        at = await speak(turn, x)
        got = await asyncio.wait_for(turn.result, 5)
        assert at is not None, f"{text}: no answer within 2 s of the words"
        return text, got, (at - last_loud_s(x)) * 1000

    results = await asyncio.gather(*(one(t, w) for t, w in clips))
    for text, got, ms in results:
        print(f"{text}: {got} {ms:.0f} ms after the words")
        assert got is not None and got.value == text, (text, got)
        # a whole match ends the turn on a short pause, well before the quiet that ends a turn
        # without one; the figure itself (p50/p99 against the 400 ms goal) is measured in
        # bench/asr_real.py, not here, where another process's load would decide the result
        assert ms < TurnSettings().incomplete_silence * 1000, (text, ms)


def digit_string(digits: str, gap: float) -> np.ndarray:
    parts = [quiet(0.3)]
    for d in digits:
        parts += [recording(f"digits/{d}"), quiet(gap)]
    parts[-1] = quiet(3.0)
    return np.concatenate(parts)


@pytest.mark.parametrize("gap", [0.4, 1.0])
async def test_a_pause_between_digits_does_not_end_the_turn(engine: PocketSphinxEngine,
                                                            hub: SpeechHub, gap: float) -> None:
    """4 real-voice digits with pauses longer than the pause decode (and, at 1 s, longer than
    the incomplete silence): the turn waits for the 4th digit and hears all of them."""
    x = digit_string("4719", gap)
    turn = new_turn(engine, hub, ListenSpec(timeout=5.0, min_digits=4, max_digits=4,
                                            builtin="digits"))
    at = await speak(turn, x)
    got = await asyncio.wait_for(turn.result, 5)
    assert at is None or at > last_loud_s(x), "answered before the last digit was said"
    assert got is not None and got.value == "four seven one nine", got


def test_a_digits_collect_waits_longer_while_short_of_its_min() -> None:
    from ivr.speech.asr.expect import expectation, needs_more_digits, partial_grammar

    g = Grammar((), "digits", "en-US", 4, 6)
    assert partial_grammar(g) == Grammar((), "digits", "en-US", 1, 6)
    assert partial_grammar(Grammar((), "digits", "en-US", 4, 0)) == Grammar((), "digits", "en-US", 1, 0)
    assert expectation(g, "four seven") == "incomplete" and needs_more_digits(g, "four seven")
    assert expectation(g, "four seven one nine") == "complete"
    assert expectation(g, "four seven one nine two two") == "final"
    assert needs_more_digits(g, None) and not needs_more_digits(g, "one two three four")
    menu = Grammar(MENU)
    assert expectation(menu, "balance") == "final"
    assert expectation(menu, "hours") == "final"
    assert expectation(Grammar(("opening", "opening hours")), "opening") == "complete"
    assert expectation(menu, "") == "incomplete"


async def test_all_of_a_collects_digits_at_a_short_pause_still_wait(engine: PocketSphinxEngine,
                                                                    hub: SpeechHub) -> None:
    """A pause decode that hears all four digits does not end the turn at the short pause: it
    waits the complete silence (the incomplete one when "double" made up the count: at a pause
    mid-string PocketSphinx read "four one seven" as "double one one seven"); an unsure count
    of four from the bounded 1..4 decode is not a caller short of the min (no digit gap)."""
    from ivr.speech.asr.expect import said_double

    t = TurnSettings()
    turn = new_turn(engine, hub, ListenSpec(timeout=5.0, min_digits=4, max_digits=4,
                                            builtin="digits"))
    try:
        assert turn._verdict(Input("speech", "four one seven two", 0.9)) == "final"
        assert turn._hold(Input("speech", "four one seven two", 0.9), "final") \
            == t.complete_silence
        assert turn._hold(Input("speech", "double one one seven", 0.9), "final") \
            == t.incomplete_silence
        assert turn._hold(Input("speech", "four one seven two", 0.4), "complete") \
            == t.incomplete_silence
        assert turn._hold(Input("speech", "four one", 0.9), "incomplete") == t.digit_gap
        assert said_double("double four two") and not said_double("four four two")
    finally:
        turn.cancel()


class SureEngine(Engine):
    """Hears `text` surely in anything, at every decode."""

    name = "sure"

    def __init__(self, text: str) -> None:
        self.text = text

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        text = self.text

        class Scripted(Recognizer):
            def accept(self, pcm: bytes) -> None:
                pass

            def finalize(self) -> Result | None:
                return Result(text, 0.95)

            def reset(self) -> None:
                pass

        return Scripted()


@pytest.mark.parametrize(("max_digits", "ended_by"), [(1, "final"), (2, "pause")])
async def test_a_one_digit_collect_ends_at_the_pause_on_a_sure_digit(
        max_digits: int, ended_by: str) -> None:
    """The one digit of a `digits: {min: 1, max: 1}` collect, surely heard, ends the turn at
    the short pause like a menu word (nothing can follow it); one digit of a collect that
    takes two waits the complete silence for the next one."""
    hub = SpeechHub(timing=TurnSettings())
    spec = ListenSpec(timeout=5.0, min_digits=1, max_digits=max_digits, builtin="digits",
                      digits_counted=True)
    try:
        turn = new_turn(SureEngine("seven"), hub, spec)
        await speak(turn, np.concatenate([quiet(0.3), recording("digits/7"), quiet(1.5)]))
        got = await asyncio.wait_for(turn.result, 5)
        assert got is not None and got.value == "seven"
        assert turn.ended_by == ended_by
    finally:
        hub.stop()


class CountingEngine(Engine):
    """PocketSphinx, counting the decodes made at a pause (under the partial grammar)."""

    name = "counting"

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.partial = 0

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        if grammar.builtin == "digits" and grammar.min_words == 1:
            self.partial += 1
        return self.inner.new_recognizer(grammar, sample_rate)


async def test_no_decode_at_a_pause_too_early_for_the_min_digits(engine: PocketSphinxEngine,
                                                                  hub: SpeechHub) -> None:
    """One digit and a long pause at an 8-digit collect: the pause is a caller between digits
    whatever a decode would say, so none is made (each costs the worker's GIL); the turn waits
    the digit gap. Two digits at a 2-digit collect are decoded at the pause as before."""
    counting = CountingEngine(engine)
    x = np.concatenate([quiet(0.3), recording("digits/4"), quiet(2.5)])
    turn = new_turn(counting, hub, ListenSpec(timeout=5.0, min_digits=8, max_digits=8,
                                              builtin="digits"))
    await speak(turn, x)
    await asyncio.wait_for(turn.result, 5)
    assert counting.partial == 0
    y = np.concatenate([quiet(0.3), recording("digits/4"), quiet(0.1), recording("digits/7"),
                        quiet(2.0)])
    turn = new_turn(counting, hub, ListenSpec(timeout=5.0, min_digits=2, max_digits=4,
                                              builtin="digits"))
    await speak(turn, y)
    got = await asyncio.wait_for(turn.result, 5)
    assert counting.partial >= 1, got


class UnsureDigitsEngine(Engine):
    """Hears "four seven one nine" in anything: unsure at a pause (its 1..max grammar); a whole
    decode is sure, its confidence telling how much audio it had (0.5 + seconds / 10)."""

    name = "unsure-digits"

    def __init__(self) -> None:
        self.decodes: list[tuple[bool, float, float]] = []
        """(whole?, confidence, when) per decode"""

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        engine, whole = self, grammar.min_words > 1

        class Scripted(Recognizer):
            audio = 0

            def accept(self, pcm: bytes) -> None:
                self.audio += len(pcm)

            def finalize(self) -> Result | None:
                confidence = round(0.5 + self.audio / 16000 / 10, 3) if whole else 0.5
                engine.decodes.append((whole, confidence, time.monotonic()))
                return Result("four seven one nine", confidence)

            def reset(self) -> None:
                self.audio = 0

        return Scripted()


async def test_an_unsure_full_count_is_decoded_whole_while_the_turn_waits() -> None:
    """All four digits heard unsure at a pause: the turn waits `incomplete_silence` and then
    answers from the whole decode under the node's grammar, which started at the pause (not
    after the wait); a caller who goes on after that pause gets a whole decode of it all."""
    scripted = UnsureDigitsEngine()
    hub = SpeechHub(timing=TurnSettings())
    spec = ListenSpec(timeout=5.0, min_digits=4, max_digits=4, builtin="digits")
    try:
        words = digit_string("4719", 0.1)[: int(2.5 * 8000)]
        x = np.concatenate([words[: np.flatnonzero(np.abs(words) > 600)[-1] + 1], quiet(1.5)])
        turn = new_turn(scripted, hub, spec)
        t0 = time.monotonic()
        await speak(turn, x)
        got = await asyncio.wait_for(turn.result, 5)
        end = t0 + last_loud_s(x)
        (answer,) = [d for d in scripted.decodes if d[0] and got and d[1] == got.confidence]
        assert got is not None and got.value == "four seven one nine"
        # made at the pause after the words (the script hears four digits at every pause, so
        # earlier pauses got one too), not after the wait, and no other whole decode after it
        assert end < answer[2] < end + TurnSettings().incomplete_silence - 0.2, (answer, end)
        assert not [d for d in scripted.decodes if d[0] and d[2] > answer[2]]
        assert turn.ended_by == "decode"
        # the caller goes on after a pause: its whole decode is not the answer
        scripted.decodes.clear()
        y = np.concatenate([x[: int((last_loud_s(x) + 0.5) * 8000)], recording("digits/2"),
                            quiet(1.5)])
        turn = new_turn(scripted, hub, spec)
        t0 = time.monotonic()
        await speak(turn, y)
        got = await asyncio.wait_for(turn.result, 5)
        longest = max(d[1] for d in scripted.decodes if d[0])
        assert got is not None and got.confidence == longest, (got, scripted.decodes)
        assert [d for d in scripted.decodes if d[0] and d[2] > t0 + last_loud_s(y)]
    finally:
        hub.stop()


# -- barge-in ---------------------------------------------------------------------------------
def _prompt(cache: Path) -> np.ndarray:
    samples, _ = read_any_wav(render(cache, "Welcome to the bank. For your balance say balance. "
                                     "For cards say cards. To speak to an agent say agent.",
                                     lead=0.0, tail=0.0))
    return samples.astype(np.int16)


def _echo(prompt: np.ndarray, db: float, delay: float = 0.06) -> np.ndarray:
    return np.concatenate([quiet(delay), prompt * 10 ** (db / 20)]).astype(np.int16)


async def test_the_prompts_own_echo_at_minus_20db_does_not_barge_in(
        engine: PocketSphinxEngine, hub: SpeechHub, cache: Path) -> None:
    prompt = _prompt(cache)
    started: list[float] = []
    turn = new_turn(engine, hub, None, started)  # a barge-in prompt plays; no listen yet
    turn.playing(level_envelope(prompt, 8000))
    await speak(turn, np.concatenate([_echo(prompt, -20.0), quiet(0.5)]))
    assert not started and not turn.speech_started
    turn.cancel()
    # the control: the same prompt as loud as a caller (0 dB) does cut it
    louder = new_turn(engine, hub, None, started)
    louder.playing(level_envelope(prompt, 8000))
    await speak(louder, _echo(prompt, 0.0)[: 8000 * 2])
    assert started
    louder.cancel()


async def test_a_caller_speaking_over_the_echo_barges_in_and_is_heard(
        engine: PocketSphinxEngine, hub: SpeechHub, cache: Path) -> None:
    prompt = _prompt(cache)
    echo = _echo(prompt, -20.0)[: int(1.85 * 8000)]  # the prompt stops once barged into
    words = render_words(cache, "agent")
    at = int(1.5 * 8000)
    echo = np.concatenate([echo, quiet(len(words) / 8000)])
    mix = echo.astype(np.int32)
    mix[at:at + len(words)] += words
    x = np.concatenate([np.clip(mix, -32768, 32767).astype(np.int16), quiet(1.5)])
    started: list[float] = []
    t0 = time.monotonic()
    turn = new_turn(engine, hub, None, started)
    turn.playing(level_envelope(prompt, 8000))
    turn.listen(ListenSpec(timeout=5.0, phrases=MENU))
    await speak(turn, x)
    got = await asyncio.wait_for(turn.result, 5)
    assert started, "speech over the echo did not barge in"
    onset = 1.5 + float(np.flatnonzero(np.abs(words) > 600)[0]) / 8000
    print(f"barge-in {1000 * (started[0] - t0 - onset):.0f} ms after the caller's onset")
    assert started[0] - t0 - onset <= 0.3
    # the echo still overlaps the word until the prompt's stop comes back (~300 ms): PocketSphinx
    # hears "agent", or is unsure (a known limit: no echo canceller subtracts the prompt)
    assert got is not None and (got.value in ("agent", "") or got.confidence < 0.6), got


def render_words(cache: Path, text: str) -> np.ndarray:
    samples, _ = read_any_wav(render(cache, text, lead=0.0, tail=0.0))
    return samples.astype(np.int16)


async def test_a_cough_or_a_click_over_a_prompt_does_not_barge_in(
        engine: PocketSphinxEngine, hub: SpeechHub, cache: Path) -> None:
    prompt = _prompt(cache)
    rng = np.random.default_rng(3)
    t = np.arange(int(0.12 * 8000)) / 8000
    cough = (rng.normal(0, 6000, len(t)) * np.exp(-t / 0.04)).astype(np.int16)  # 120 ms burst
    click = np.zeros(80, dtype=np.int16)
    click[:8] = 20000
    x = _echo(prompt, -20.0).astype(np.int32)
    for at, burst in ((0.8, cough), (1.6, click), (2.4, cough)):
        i = int(at * 8000)
        x[i:i + len(burst)] += burst
    started: list[float] = []
    turn = new_turn(engine, hub, None, started)
    turn.playing(level_envelope(prompt, 8000))
    await speak(turn, np.clip(x, -32768, 32767).astype(np.int16)[: 8000 * 3])
    assert not started
    turn.cancel()


# -- faults -----------------------------------------------------------------------------------
class StallingEngine(Engine):
    name = "stalling"

    def __init__(self) -> None:
        self.release = threading.Event()

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        engine = self

        class Stuck(Recognizer):
            def accept(self, pcm: bytes) -> None:
                pass

            def finalize(self) -> Result | None:
                engine.release.wait(30)
                return Result("balance", 1.0)

            def reset(self) -> None:
                pass

        return Stuck()


async def test_a_stalled_decoder_is_a_nomatch_within_the_bound(cache: Path) -> None:
    stalling = StallingEngine()
    hub = SpeechHub(timing=TurnSettings(decode_timeout=1.0))
    try:
        turn = new_turn(stalling, hub, ListenSpec(timeout=5.0, phrases=MENU))
        x = np.concatenate([quiet(0.3), render_words(cache, "balance"), quiet(0.9)])
        t0 = time.monotonic()
        await speak(turn, x)
        got = await asyncio.wait_for(turn.result, 5)
        took = time.monotonic() - t0 - last_loud_s(x)
        assert got is not None and got.value == "" and got.confidence == 0.0
        assert took <= 0.7 + 1.0 + 0.5, took
        # the next turn on the same (stuck) pool is bounded too
        again = new_turn(stalling, hub, ListenSpec(timeout=5.0, phrases=MENU))
        await speak(again, x)
        assert (await asyncio.wait_for(again.result, 5)) == Input("speech", "", 0.0)
    finally:
        stalling.release.set()
        hub.stop()


def test_a_decode_does_not_depend_on_the_call_before(engine: PocketSphinxEngine) -> None:
    """A pooled decoder keeps no front-end state from its last call: the same audio gets the same
    text and confidence whatever was decoded before it."""
    g = Grammar((), "digits", "en-US", 4, 4)
    code = digit_string("4719", 0.25).astype("<i2").tobytes()
    other = digit_string("6631", 0.1).astype("<i2").tobytes()
    noise = np.random.default_rng(1).normal(0, 8000, 16000).astype("<i2").tobytes()

    def decode(pcm: bytes) -> Result | None:
        rec = engine.new_recognizer(g, 8000)
        try:
            rec.accept(pcm)
            return rec.finalize()
        finally:
            rec.close()

    first = decode(code)
    decode(noise)
    after_noise = decode(code)
    decode(other)
    after_other = decode(code)
    assert first == after_noise == after_other


async def test_forty_silent_callers_under_cpu_load_hear_nothing(
        engine: PocketSphinxEngine, hub: SpeechHub) -> None:
    """Line noise, comfort-noise-level hiss and digital silence on 40 turns at once while a
    busy thread and a busy process load the CPU: every turn is a noinput, nothing decoded."""
    import multiprocessing

    stop = multiprocessing.Event()
    burner = multiprocessing.Process(target=_burn, args=(stop,), daemon=True)
    burner.start()
    try:
        rng = np.random.default_rng(5)
        feeds = []
        for i in range(40):
            level = (0.0, 4.0, 30.0, 120.0)[i % 4]  # silence, CN-like hiss, line noise, -48 dBFS
            feeds.append(rng.normal(0, level, 8000 * 3).astype(np.int16))
        turns = [new_turn(engine, hub, ListenSpec(timeout=2.0, phrases=MENU)) for _ in feeds]
        await asyncio.gather(*(speak(t, x) for t, x in zip(turns, feeds, strict=True)))
        results = await asyncio.wait_for(asyncio.gather(*(t.result for t in turns)), 10)
    finally:
        stop.set()
        burner.join(5)
    assert results == [None] * 40
    assert not any(t.speech_started for t in turns)


def _burn(stop: object) -> None:
    x = 0
    while not stop.is_set():  # type: ignore[attr-defined]
        x = (x * 7 + 1) % 1000003
