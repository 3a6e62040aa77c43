"""Many calls' turns on one hub: each hears its own utterance, noinput and cancel still work,
and decodes run on the hub's small pool (a burst of callers never holds a decoder each)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from asr_audio import render

from ivr.flow.channel import ListenSpec
from ivr.sip.speech import SpeechHub, Turn
from ivr.speech.asr.base import Engine, Grammar, Recognizer, Result
from ivr.speech.audio import read_wav

FRAME = 320  # 20 ms at 8 kHz, 16-bit


class CountingRecognizer(Recognizer):
    def __init__(self, engine: CountingEngine, grammar: Grammar) -> None:
        self.engine, self.grammar, self.pcm = engine, grammar, b""

    def accept(self, pcm: bytes) -> None:
        self.pcm += pcm

    def finalize(self) -> Result | None:
        with self.engine.lock:
            self.engine.running += 1
            self.engine.peak = max(self.engine.peak, self.engine.running)
        time.sleep(0.03)  # a decode's worth of work
        with self.engine.lock:
            self.engine.running -= 1
            self.engine.decodes += 1
        return Result(self.grammar.phrases[0], 0.9, []) if self.pcm else None

    def reset(self) -> None:
        self.pcm = b""


class CountingEngine(Engine):
    name = "counting"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = self.peak = self.decodes = 0

    def new_recognizer(self, grammar: Grammar, sample_rate: int = 8000) -> Recognizer:
        return CountingRecognizer(self, grammar)


def _pcm(tmp_path: Path) -> bytes:
    wav = render(tmp_path, "check my balance please", lead=0.4, tail=1.2)
    samples, rate = read_wav(wav)
    assert rate == 8000
    return samples.astype("<i2").tobytes()


async def _feed(turn: Turn, pcm: bytes) -> None:
    """Real time, 20 ms frames, as the media clock delivers them."""
    for i in range(0, len(pcm) - FRAME + 1, FRAME):
        turn.push(pcm[i:i + FRAME])
        await asyncio.sleep(0.02)


async def test_forty_turns_on_one_hub_each_answered_on_two_decoders(tmp_path: Path) -> None:
    pcm = _pcm(tmp_path)
    engine, hub = CountingEngine(), SpeechHub(decoders=2)
    loop = asyncio.get_running_loop()
    started: list[int] = []
    try:
        turns = [Turn(engine, loop, lambda i=i: started.append(i), hub) for i in range(40)]
        spec = ListenSpec(timeout=5.0, phrases=("balance", "cards"))
        for turn in turns:
            turn.listen(spec)
        await asyncio.gather(*(_feed(t, pcm) for t in turns))
        results = await asyncio.wait_for(asyncio.gather(*(t.result for t in turns)), 10)
    finally:
        hub.stop()
    assert all(r is not None and r.mode == "speech" and r.value for r in results), results
    assert sorted(started) == list(range(40))  # every caller's onset reached the loop (barge-in)
    assert engine.peak <= 2 and engine.decodes >= 40
    assert hub.active() == 0


async def test_noinput_and_cancel_end_turns_without_a_decode(tmp_path: Path) -> None:
    engine, hub = CountingEngine(), SpeechHub(decoders=2)
    loop = asyncio.get_running_loop()
    try:
        quiet, cancelled = Turn(engine, loop, lambda: None, hub), Turn(engine, loop, lambda: None, hub)
        quiet.listen(ListenSpec(timeout=0.5))
        cancelled.listen(ListenSpec(timeout=5.0))
        silence = b"\x00\x00" * 160
        for _ in range(40):  # 0.8 s of silence
            quiet.push(silence)
            cancelled.push(silence)
            await asyncio.sleep(0.005)
        cancelled.cancel()
        assert await asyncio.wait_for(quiet.result, 5) is None
        assert await asyncio.wait_for(cancelled.result, 5) is None
    finally:
        hub.stop()
    assert engine.decodes == 0


@pytest.fixture(autouse=True)
def _no_leaked_hub_threads() -> object:
    before = {t.name for t in threading.enumerate()}
    yield None
    time.sleep(0.1)
    assert "asr-hub" not in {t.name for t in threading.enumerate()} - before


class _Aud:
    """A call's audio media as CallSpeech uses it: counts connections to the receive port."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def startTransmit(self, port: object) -> None:
        self.log.append("connect")

    def stopTransmit(self, port: object) -> None:
        self.log.append("disconnect")


class _Pool:
    def acquire(self, sink: object) -> object:
        return object()

    def release(self, port: object) -> None:
        pass


async def test_the_callers_audio_reaches_the_recogniser_only_during_a_turn() -> None:
    from ivr.sip.speech import CallSpeech

    hub = SpeechHub(decoders=1)
    try:
        speech = CallSpeech(CountingEngine(), asyncio.get_running_loop(), lambda: None,
                            _Pool(), hub)  # type: ignore[arg-type]
        aud = _Aud()
        speech.attach(aud)            # answered: no turn yet, nothing flows
        assert aud.log == []
        speech.begin()                # a barge-in prompt or a listen
        speech.begin()                # the same turn goes on
        assert aud.log == ["connect"]
        again = _Aud()
        speech.attach(again)          # a re-INVITE during the turn: the new media is connected
        assert again.log == ["connect"]
        speech.end_turn()             # a key, or the node is done
        assert again.log == ["connect", "disconnect"]
        speech.begin()
        speech.release(again, call_alive=False)  # hung up: the call's port is already gone
        assert again.log == ["connect", "disconnect", "connect"]
    finally:
        hub.stop()
