"""Caller speech on a SIP call: frames from the media clock thread to VAD and a recognizer.

One `Turn` per prompt-and-listen: it starts when a barge-in prompt starts (so speech can cut the
prompt) or when listening starts, and ends with one utterance, a noinput, or a cancel (a DTMF
digit, a hangup). The media clock thread only appends frames to a deque; the worker's
`SpeechHub` thread runs every turn's VAD, and a small pool decodes; results reach the loop with
`call_soon_threadsafe`. The decoder never sees more than `max_speech` seconds of audio.
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
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pjsua2 as pj

from ivr.flow.channel import Input, ListenSpec
from ivr.flow.grammar import speech_grammar
from ivr.sip.pj import audio_format, guard, vec_bytes
from ivr.speech.asr.base import Engine, Grammar
from ivr.speech.asr.vad import COMPLETE_CONFIDENCE, COMPLETE_SILENCE, Endpointer

log = logging.getLogger("ivr.sip")

RATE = 8000
GRAMMAR_WAIT = 5.0
"""An utterance that ended before its node listened (spoken over a prompt) waits this long for
the grammar, then counts as no input."""


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


class SpeechHub:
    """Every turn of one worker on one thread, decodes on a small pool.

    A thread per turn, woken per 20 ms frame, cost a worker about 6 millicores per listening
    call at 100 calls (thousands of GIL hand-offs a second) and let every call decode at once,
    each on a decoder of its own (~30 MB). The hub wakes every TICK, runs each turn's endpointer
    over the frames that came in meanwhile (the clock thread only appends them), and decodes on
    `decoders` threads, so a burst of callers queues for the cores instead of fighting for them.
    """

    TICK = 0.04

    def __init__(self, decoders: int = 2) -> None:
        self._turns: list[Turn] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._work = threading.Event()
        self._thread: threading.Thread | None = None
        self.decode_pool = ThreadPoolExecutor(max_workers=decoders, thread_name_prefix="asr-decode")

    def add(self, turn: Turn) -> None:
        with self._lock:
            self._turns.append(turn)
            self._work.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="asr-hub", daemon=True)
                self._thread.start()

    def active(self) -> int:
        with self._lock:
            return len(self._turns)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._work.wait()  # no turn anywhere: no ticks (an idle worker stays idle)
            if self._stop.wait(self.TICK):
                break
            with self._lock:
                turns = list(self._turns)
            done = [turn for turn in turns if turn.step()]
            with self._lock:
                if done:
                    self._turns = [t for t in self._turns if t not in done]
                if not self._turns:
                    self._work.clear()

    def stop(self) -> None:
        self._stop.set()
        self._work.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.decode_pool.shutdown(wait=False, cancel_futures=True)


class Turn:
    """One utterance (or none) from the caller: endpointed by the worker's hub, decoded on its
    pool; the result reaches the loop with `call_soon_threadsafe`."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop,
                 on_speech: Callable[[], None], hub: SpeechHub, max_speech: float = 15.0) -> None:
        self.engine = engine
        self.loop = loop
        self.on_speech = on_speech
        self.hub = hub
        self.frames: collections.deque[bytes] = collections.deque(maxlen=int(max_speech * 50) + 100)
        self.cancelled = threading.Event()
        self.grammar_ready = threading.Event()
        self.grammar: Grammar | None = None
        self.timeout: float | None = None
        self._armed = False
        self._armed_seen = False
        self.speech_started = False
        self.result: asyncio.Future[Input | None] = loop.create_future()
        self.max_speech = max_speech
        self._ep = Endpointer(RATE, timeout=None, max_speech=max_speech,
                              complete_silence=COMPLETE_SILENCE)
        self._decoding: Future[Input | None] | None = None
        self._final = False
        self._final_audio: bytes | None = None
        self._final_at = 0.0
        # the call's context (its call id) follows the turn's log lines and decode requests
        self._ctx = contextvars.copy_context()
        hub.add(self)

    def push(self, pcm: bytes) -> None:
        """Clock thread: keep the frame; the hub takes it on its next tick."""
        self.frames.append(pcm)

    def listen(self, spec: ListenSpec) -> None:
        """Loop: the node now waits for input; its grammar and noinput clock apply from here."""
        self.grammar = speech_grammar(spec)
        self.timeout = spec.timeout
        self._armed = True
        self.grammar_ready.set()

    def cancel(self) -> None:
        self.cancelled.set()
        self.grammar_ready.set()

    def _post(self, value: Input | None) -> None:
        def settle() -> None:
            if not self.result.done():
                self.result.set_result(value)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self.loop.call_soon_threadsafe(settle)

    def step(self) -> bool:
        """Hub thread: take the frames that arrived, act on the endpointer's events; True once
        the turn has posted its result (or was cancelled)."""
        try:
            over, value = self._ctx.run(self._advance)
        except Exception:
            log.warning("speech turn failed; treated as a nomatch", exc_info=True)
            over, value = True, Input("speech", "", 0.0)
        if over:
            self._post(value)
        return over

    def _advance(self) -> tuple[bool, Input | None]:
        if self.cancelled.is_set():
            return True, None
        if self._decoding is not None and self._decoding.done():
            value = self._decoding.result()
            self._decoding = None
            if self._final:
                return True, value
            if value is not None and value.value and value.confidence >= COMPLETE_CONFIDENCE:
                return True, value  # a whole, confident match at the first pause: answer now
        if self._final:
            if self._decoding is None and self._final_audio is not None:
                if self.grammar_ready.is_set():
                    self._decoding = self._submit(self._final_audio)
                    self._final_audio = None
                elif time.monotonic() - self._final_at > GRAMMAR_WAIT:
                    return True, None
            self.frames.clear()
            return False, None
        if self._armed and not self._armed_seen:
            self._armed_seen = True
            self._ep.timeout = self.timeout
            self._ep.arm_timeout()
        chunks = []
        while self.frames:
            chunks.append(self.frames.popleft())
        if not chunks:
            return False, None
        for ev in self._ep.feed(b"".join(chunks)):
            if ev.kind == "start" and not self.speech_started:
                self.speech_started = True
                self.loop.call_soon_threadsafe(self.on_speech)
            elif ev.kind == "noinput":
                return True, None
            elif ev.kind == "pause" and self.grammar_ready.is_set() and self._decoding is None:
                self._decoding = self._submit(self._ep.peek_audio())
            elif ev.kind in ("end", "max_speech"):
                self._final, self._final_at = True, time.monotonic()
                self._final_audio = self._ep.take_audio()
                self._decoding = None  # an early decode still running is superseded
                return self._advance()
        return False, None

    def _submit(self, audio: bytes) -> Future[Input | None]:
        return self.hub.decode_pool.submit(self._ctx.copy().run, self._decode, audio)

    def _decode(self, audio: bytes) -> Input | None:
        if self.grammar is None or self.cancelled.is_set():
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
    """Speech input of one call: its receive port and the current turn.

    The caller's audio reaches the port only during a turn: a call on hold music, in a bridge
    with an agent or hearing a prompt nobody may interrupt costs no Python call per 20 ms frame
    on the media clock thread (50 a second per call otherwise, whatever the call is doing).
    """

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop,
                 on_speech: Callable[[], None], pool: RxPortPool, hub: SpeechHub) -> None:
        self.engine = engine
        self.loop = loop
        self.on_speech = on_speech
        self.pool = pool
        self.hub = hub
        self.port: RxPort | None = None
        self.turn: Turn | None = None
        self._aud: Any = None
        self._connected = False

    def _sink(self, pcm: bytes) -> None:
        turn = self.turn
        if turn is not None:
            turn.push(pcm)

    def attach(self, aud: Any) -> None:
        """The caller's audio (again after a re-INVITE): connected now if a turn is running."""
        if self.port is None:
            self.port = self.pool.acquire(self._sink)
        self._aud, self._connected = aud, False
        if self.turn is not None and not self.turn.result.done():
            self._connect()

    def _connect(self) -> None:
        if self._connected or self._aud is None or self.port is None:
            return
        try:
            self._aud.startTransmit(self.port)
            self._connected = True
        except pj.Error as exc:
            log.error("speech input unavailable for this turn: %s", exc.info())

    def _disconnect(self) -> None:
        if self._connected and self._aud is not None and self.port is not None:
            with contextlib.suppress(pj.Error):
                self._aud.stopTransmit(self.port)
        self._connected = False

    def begin(self) -> Turn:
        """A turn for the next utterance (kept if one is already running)."""
        if self.turn is None or self.turn.result.done():
            self.turn = Turn(self.engine, self.loop, self.on_speech, self.hub)
        self._connect()
        return self.turn

    def end_turn(self) -> None:
        if self.turn is not None:
            self.turn.cancel()
            self.turn = None
        self._disconnect()

    def release(self, aud: Any, call_alive: bool) -> None:
        if not call_alive:
            self._connected = False  # the call's port is gone with it: nothing to disconnect
        self.end_turn()
        if self.port is not None:
            self.pool.release(self.port)
            self.port = None
        self._aud = None
