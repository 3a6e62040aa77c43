"""Caller speech on a SIP call: frames from the media clock thread to VAD and a recognizer.

One `Turn` per prompt-and-listen: it starts when a barge-in prompt starts (so speech can cut the
prompt) or when listening starts, and ends with one utterance, a noinput, or a cancel (a DTMF
digit, a hangup). The media clock thread only appends frames to a deque; the VAD and the decoder
run on the turn's own thread; results reach the loop with `call_soon_threadsafe`. The decoder
never sees more than `max_speech` seconds of audio.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

from ivr.flow.channel import Input, ListenSpec
from ivr.flow.grammar import speech_grammar
from ivr.sip.pj import audio_format, guard, vec_bytes
from ivr.speech.asr.base import Engine, Grammar
from ivr.speech.asr.vad import COMPLETE_CONFIDENCE, COMPLETE_SILENCE, Endpointer

log = logging.getLogger("ivr.sip")

RATE = 8000
DECODE_BOUND = 10.0
GRAMMAR_WAIT = 5.0


class RxPort(pj.AudioMediaPort):  # type: ignore[misc]
    """A conference port that only receives: hands caller audio to its sink (clock thread).

    Ports are pooled per worker and never freed while the bridge runs: freeing a Python port
    races the clock thread, which may be inside `onFrameReceived` of the object being torn down
    (seen as an AttributeError, then a segfault, at call teardown under load).
    """

    def __init__(self) -> None:
        super().__init__()
        self.sink: Callable[[bytes], None] | None = None

    @guard
    def onFrameRequested(self, frame: Any) -> None:
        frame.type = pj.PJMEDIA_FRAME_TYPE_NONE
        frame.size = 0

    @guard
    def onFrameReceived(self, frame: Any) -> None:
        sink = self.sink
        if sink is not None and frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
            sink(vec_bytes(frame.buf))


class RxPortPool:
    """Receive ports of one worker, reused call after call (see RxPort)."""

    def __init__(self) -> None:
        self.free: list[RxPort] = []
        self.all: list[RxPort] = []

    def acquire(self, sink: Callable[[bytes], None]) -> RxPort:
        if self.free:
            port = self.free.pop()
        else:
            port = RxPort()
            port.createPort(f"asr{len(self.all)}", audio_format(RATE))
            self.all.append(port)
        port.sink = sink
        return port

    def release(self, port: RxPort) -> None:
        port.sink = None
        if port not in self.free:
            self.free.append(port)

    def in_use(self) -> int:
        return len(self.all) - len(self.free)


class Turn:
    """One utterance (or none) from the caller, decoded off the loop."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop,
                 on_speech: Callable[[], None], max_speech: float = 15.0) -> None:
        self.engine = engine
        self.loop = loop
        self.on_speech = on_speech
        self.frames: collections.deque[bytes] = collections.deque(maxlen=int(max_speech * 50) + 100)
        self.wake = threading.Event()
        self.cancelled = threading.Event()
        self.grammar_ready = threading.Event()
        self.grammar: Grammar | None = None
        self.timeout: float | None = None
        self._armed = False
        self.speech_started = False
        self.result: asyncio.Future[Input | None] = loop.create_future()
        self.max_speech = max_speech
        # the call's context (its call id) follows the turn's log lines and decode requests
        self.thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run,),
                                       name="asr-turn", daemon=True)
        self.thread.start()

    def push(self, pcm: bytes) -> None:
        """Clock thread: keep the frame, wake the decoder thread."""
        self.frames.append(pcm)
        self.wake.set()

    def listen(self, spec: ListenSpec) -> None:
        """Loop: the node now waits for input; its grammar and noinput clock apply from here."""
        self.grammar = speech_grammar(spec)
        self.timeout = spec.timeout
        self._armed = True
        self.grammar_ready.set()

    def cancel(self) -> None:
        self.cancelled.set()
        self.grammar_ready.set()
        self.wake.set()

    def _post(self, value: Input | None) -> None:
        def settle() -> None:
            if not self.result.done():
                self.result.set_result(value)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self.loop.call_soon_threadsafe(settle)

    def _run(self) -> None:
        try:
            self._post(self._utterance())
        except Exception:
            log.warning("speech turn failed; treated as a nomatch", exc_info=True)
            self._post(Input("speech", "", 0.0))

    def _utterance(self) -> Input | None:
        ep = Endpointer(RATE, timeout=None, max_speech=self.max_speech,
                        complete_silence=COMPLETE_SILENCE)
        armed = False
        while not self.cancelled.is_set():
            self.wake.wait(0.05)
            self.wake.clear()
            if self._armed and not armed:
                armed = True
                ep.timeout = self.timeout
                ep.arm_timeout()
            chunks = []
            while self.frames:
                chunks.append(self.frames.popleft())
            if not chunks:
                continue
            for ev in ep.feed(b"".join(chunks)):
                if ev.kind == "start" and not self.speech_started:
                    self.speech_started = True
                    self.loop.call_soon_threadsafe(self.on_speech)
                elif ev.kind == "noinput":
                    return None
                elif ev.kind == "pause" and self.grammar_ready.is_set():
                    early = self._decode(ep.peek_audio())
                    if early is not None and early.value and early.confidence >= COMPLETE_CONFIDENCE:
                        return early
                elif ev.kind in ("end", "max_speech"):
                    return self._decode(ep.take_audio())
        return None

    def _decode(self, audio: bytes) -> Input | None:
        if not self.grammar_ready.wait(GRAMMAR_WAIT) or self.grammar is None:
            return None
        if self.grammar.empty:
            return Input("speech", "", 0.0)
        started = time.monotonic()
        rec = self.engine.new_recognizer(self.grammar, RATE)
        try:
            rec.accept(audio)
            result = rec.finalize()
        finally:
            rec.close()
        log.debug("decoded %.1fs of speech in %.0f ms", len(audio) / (2 * RATE),
                  (time.monotonic() - started) * 1000)
        if result is None:
            return Input("speech", "", 0.0)
        return Input("speech", result.text, round(result.confidence, 3), result.alternatives)


class CallSpeech:
    """Speech input of one call: its receive port and the current turn."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop,
                 on_speech: Callable[[], None], pool: RxPortPool) -> None:
        self.engine = engine
        self.loop = loop
        self.on_speech = on_speech
        self.pool = pool
        self.port: RxPort | None = None
        self.turn: Turn | None = None

    def _sink(self, pcm: bytes) -> None:
        turn = self.turn
        if turn is not None:
            turn.push(pcm)

    def attach(self, aud: Any) -> None:
        """Connect the caller's audio to our port (again after a re-INVITE)."""
        if self.port is None:
            self.port = self.pool.acquire(self._sink)
        aud.startTransmit(self.port)

    def begin(self) -> Turn:
        """A turn for the next utterance (kept if one is already running)."""
        if self.turn is None or self.turn.result.done():
            self.turn = Turn(self.engine, self.loop, self.on_speech)
        return self.turn

    def end_turn(self) -> None:
        if self.turn is not None:
            self.turn.cancel()
            self.turn = None

    def release(self, aud: Any, call_alive: bool) -> None:
        self.end_turn()
        if self.port is not None:
            if call_alive and aud is not None:
                with contextlib.suppress(pj.Error):
                    aud.stopTransmit(self.port)
            self.pool.release(self.port)
            self.port = None
