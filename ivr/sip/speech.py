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
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

from ivr import metrics, tracing
from ivr.config import TurnSettings
from ivr.flow.channel import Input, ListenSpec
from ivr.flow.grammar import speech_grammar
from ivr.sip.decode_pool import FINAL, PAUSE, DecodePool
from ivr.sip.pj import audio_format, guard, vec_bytes
from ivr.speech.asr.base import Engine, Grammar
from ivr.speech.asr.expect import (
    Expectation,
    counts_digits,
    digits_heard,
    expectation,
    needs_more_digits,
    partial_grammar,
    said_double,
)
from ivr.speech.asr.vad import COMPLETE_CONFIDENCE, Endpointer, level_envelope
from ivr.speech.audio import read_wav

log = logging.getLogger("ivr.sip")

RATE = 8000
DIGIT_S = 0.2
"""Speech a spoken digit takes at least (a fast caller's "six"): a digits collect decodes at a
pause only once the utterance is long enough to hold its `min` digits; before that the pause is
a caller between digits whatever a decode would say."""
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
    each on a decoder of its own (~30 MB). The hub wakes every TICK (and when a decode is done),
    runs each turn's endpointer over the frames that came in meanwhile (the clock thread only
    appends them), and decodes on `decoders` threads, so a burst of callers queues for the cores
    instead of fighting for them. It also keeps the level envelopes of the prompts it has seen
    (echo-aware barge-in), a few hundred numbers per file.
    """

    TICK = 0.02
    ENVELOPES = 512

    def __init__(self, decoders: int = 2, timing: TurnSettings | None = None) -> None:
        self.timing = timing or TurnSettings()
        self._turns: list[Turn] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._work = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.decode_pool = DecodePool(decoders)
        self._envelopes: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()

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

    def wake(self) -> None:
        """Run the turns now (a decode finished): its answer need not wait for the next tick."""
        self._wake.set()

    def envelope(self, paths: Sequence[str]) -> np.ndarray:
        """The level envelope of prompt files played back to back (unreadable ones count as
        silence of unknown length: no echo reference from them)."""
        parts = []
        for path in paths:
            env = self._envelopes.get(path)
            if env is None:
                try:
                    samples, rate = read_wav(Path(path))
                    env = level_envelope(samples, rate)
                except Exception:  # a prompt we cannot read still plays; no echo reference
                    log.debug("no level envelope for %s", path, exc_info=True)
                    env = np.zeros(0, dtype=np.float32)
                self._envelopes[path] = env
                if len(self._envelopes) > self.ENVELOPES:
                    self._envelopes.popitem(last=False)
            else:
                self._envelopes.move_to_end(path)
            parts.append(env)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._work.wait()  # no turn anywhere: no ticks (an idle worker stays idle)
            self._wake.wait(self.TICK)
            self._wake.clear()
            if self._stop.is_set():
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
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.decode_pool.shutdown()


class Turn:
    """One utterance (or none) from the caller: endpointed by the worker's hub, decoded on its
    pool; the result reaches the loop with `call_soon_threadsafe`.

    Turn-taking (README: Turn-taking): at every short pause (`timing.pause`) the words so far
    are decoded (a digits collect with a partial grammar, ivr.speech.asr.expect), and what the
    grammar expects next decides the wait: a confident phrase nothing extends ends the turn at
    once; one that could go on (or all of a collect's digits) waits `complete_silence`; digits
    short of the collect's min wait `digit_gap`; anything else `incomplete_silence`, then the
    whole utterance is decoded under the node's grammar. A decode that takes over
    `decode_timeout` is a nomatch.
    """

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop,
                 on_speech: Callable[[], None], hub: SpeechHub, max_speech: float = 15.0) -> None:
        self.engine = engine
        self.loop = loop
        self.on_speech = on_speech
        self.hub = hub
        self.timing = hub.timing
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
                              trailing_silence=self.timing.incomplete_silence,
                              complete_silence=self.timing.pause,
                              barge_ms=int(self.timing.barge_in_speech * 1000),
                              echo_margin_db=self.timing.echo_margin_db)
        self._pushed = 0
        """Bytes the clock thread appended (the stream position of a prompt's start)."""
        self._reference: collections.deque[tuple[np.ndarray | None, int]] = collections.deque()
        self._pause = 0
        self._spec: Future[Input | None] | None = None
        self._spec_pause = 0
        self._spec_started = 0.0
        self._heard: tuple[int, Input | None] | None = None
        self._decoding: Future[Input | None] | None = None
        self._decode_started = 0.0
        self._final = False
        self._final_audio: bytes | None = None
        self._early: tuple[int, Future[Input | None], float] | None = None
        """(pause, decode, started): the whole utterance under the node's grammar, submitted at
        a pause whose decode reached the collect's min digits unsure. The turn then waits
        `incomplete_silence` and decodes exactly that; started at the pause, it is ready when
        the wait is over instead of after it (the caller's words are all in)."""
        self._final_at = 0.0
        self._resumed = 0
        """Times the caller went on after a pause (a pause decode queued before is moot)."""
        self._paused_at = 0.0
        """When the caller last paused (end of speech->result is timed from there)."""
        self.ended_by = ""
        """What ended the turn (bench and logs): final (a pause's decode nothing extends),
        pause (the hold after a pause's decode), decode (the whole utterance decoded at the
        end), noinput, cancel, stalled, error."""
        self.verdict = ""
        """The last pause decode's standing in the grammar (incomplete, complete, final)."""
        self.decodes: list[tuple[bool, float, float, float]] = []
        """(at a pause, submitted, started, finished) per decode that ran, monotonic: where a
        turn's time went (queue wait against decode), for the bench and the logs."""
        # the call's context (its call id) follows the turn's log lines and decode requests
        self._ctx = contextvars.copy_context()
        hub.add(self)

    def push(self, pcm: bytes) -> None:
        """Clock thread: keep the frame; the hub takes it on its next tick."""
        self._pushed += len(pcm)
        self.frames.append(pcm)

    def playing(self, levels: np.ndarray | None) -> None:
        """Loop: a barge-in prompt starts now at these levels (None: it stopped)."""
        self._reference.append((levels, self._pushed))

    def listen(self, spec: ListenSpec) -> None:
        """Loop: the node now waits for input; its grammar and noinput clock apply from here."""
        self.grammar = speech_grammar(spec)
        self.timeout = spec.timeout
        self._ep.max_speech = spec.max_speech  # the flow's `max_speech` (defaults)
        # decodes from now on belong to the node's listen (its span), not the prompt before it
        self._ctx = contextvars.copy_context()
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
            self.ended_by = "error"
        if over:
            stopped = self._paused_at or self._final_at
            if stopped and value is not None:
                metrics.SPEECH_TO_RESULT.observe(time.monotonic() - stopped)
            self._post(value)
        return over

    # -- decisions ------------------------------------------------------------------------
    def _verdict(self, value: Input | None) -> Expectation:
        """Where the words so far stand in the node's grammar; a match the decoder is not sure
        of is never `final` (it waits `complete_silence` instead of ending the turn at once)."""
        if self.grammar is None or value is None or not value.value:
            return "incomplete"
        verdict = expectation(self.grammar, value.value)
        if verdict == "final" and value.confidence < COMPLETE_CONFIDENCE:
            return "complete"
        return verdict

    def _hold(self, value: Input | None, verdict: Expectation) -> float:
        """How long the pause after `value` must last to end the turn."""
        assert self.grammar is not None
        digits = self.grammar.builtin == "digits"
        if verdict == "final":
            # all of a collect's digits, surely heard, still wait the complete silence, and the
            # incomplete one when a "double" made up the count: at a short pause mid-string a
            # decoder may make two digits of one, and the caller's next digit must not be lost
            return self.timing.incomplete_silence if said_double(value.value if value else None) \
                else self.timing.complete_silence
        if verdict == "complete" and (not digits or value is None
                                      or value.confidence >= COMPLETE_CONFIDENCE):
            full = digits and value is not None and self.grammar.max_words > 0 and \
                (digits_heard(self.grammar, value.value) or 0) >= self.grammar.max_words
            # digits short of the max may go on (a caller reading a number in groups)
            return self.timing.complete_silence if full or not digits \
                else self.timing.incomplete_silence
        if needs_more_digits(self.grammar, value.value if value else None) or (
                digits and self.grammar.min_words > 1 and not counts_digits(self.grammar)
                and (value is None or value.confidence < COMPLETE_CONFIDENCE)):
            # short of the min, or a count from an unsure loop decode (a loop inserts digits)
            return max(self.timing.digit_gap, self.timing.incomplete_silence)
        return self.timing.incomplete_silence

    def _advance(self) -> tuple[bool, Input | None]:
        if self.cancelled.is_set():
            self.ended_by = "cancel"
            return True, None
        if self._final:
            self.frames.clear()
            return self._finishing()
        if self._spec is not None and self._spec.done():
            over, value = self._heard_pause()
            if over:
                return True, value
            end = self._ep.check_end()
            if end is not None:
                return self._end()
        if self._armed and not self._armed_seen:
            self._armed_seen = True
            self._ep.timeout = self.timeout
            self._ep.arm_timeout()
            hold = self._hold(None, "incomplete")  # a digits collect: wait for its min digits
            if self._ep.trailing_silence == self._ep.base_trailing:
                self._ep.trailing_silence = hold
            self._ep.base_trailing = hold
        while self._reference:
            levels, at = self._reference.popleft()
            if levels is None:
                self._ep.end_reference(at // (2 * RATE // 1000))
            else:
                self._ep.set_reference(levels, at // (2 * RATE // 1000))
        chunks = []
        while self.frames:
            chunks.append(self.frames.popleft())
        for ev in self._ep.feed(b"".join(chunks)) if chunks else []:
            if ev.kind == "start" and not self.speech_started:
                self.speech_started = True
                self.loop.call_soon_threadsafe(self.on_speech)
            elif ev.kind == "noinput":
                self.ended_by = "noinput"
                return True, None
            elif ev.kind == "resume":
                self._resumed += 1
            elif ev.kind == "pause":
                self._pause += 1
                self._paused_at = time.monotonic()  # the caller stopped: the wait starts
            elif ev.kind in ("end", "max_speech"):
                return self._end(cut=ev.kind == "max_speech")
        if self._ep.paused and self.grammar_ready.is_set() and self._spec is None \
                and (self._heard is None or self._heard[0] != self._pause) \
                and self._could_hold_min():
            self._spec, self._spec_pause = self._submit(self._ep.peek_audio(), partial=True), \
                self._pause
            self._spec_started = time.monotonic()
        return False, None

    def _could_hold_min(self) -> bool:
        """Whether the words so far are long enough for the collect's `min` digits (DIGIT_S
        each): a decode at a pause before that costs a decoder's time (GIL held) for nothing."""
        g = self.grammar
        if g is None or g.builtin != "digits" or g.min_words <= 1:
            return True
        return self._ep.spoken_ms >= g.min_words * DIGIT_S * 1000

    def _answers(self, value: Input | None) -> bool:
        """A pause's decode stands for the whole utterance: a confident whole match, or a decode
        under the node's own grammar (the final decode would repeat it)."""
        assert self.grammar is not None
        if partial_grammar(self.grammar) == self.grammar:
            return True
        # a digits collect decoded with its partial grammar: only a sure, whole answer stands
        # (the node's min..max grammar scores the same words higher)
        return value is not None and value.confidence >= COMPLETE_CONFIDENCE \
            and self._verdict(value) != "incomplete"

    def _take_spec(self) -> Input | None:
        assert self._spec is not None
        try:
            value = self._spec.result()
        except CancelledError:
            value = None  # skipped: the caller had gone on
        except Exception:
            log.warning("speech decode failed", exc_info=True)
            value = None
        self._spec = None
        return value

    def _heard_pause(self) -> tuple[bool, Input | None]:
        """A pause's decode is in: end the turn, or set how long the pause must last."""
        pause = self._spec_pause
        value = self._take_spec()
        if pause != self._pause or not self._ep.paused:
            return False, None  # the caller went on: a later pause decodes the longer utterance
        self._heard = (pause, value)
        verdict = self.verdict = self._verdict(value)
        assert self.grammar is not None
        if verdict == "final" and (self.grammar.builtin != "digits"
                                   or self.grammar.max_words == 1):
            # a whole phrase, or the one digit of a one-digit collect (nothing can follow it,
            # as its DTMF ends at the first key): longer digit strings wait (see _hold)
            self.ended_by = "final"
            return True, value
        self._ep.trailing_silence = self._hold(value, verdict)
        if self._needs_whole(value):
            self._early = (pause, self._submit(self._ep.peek_audio(), early=True),
                           time.monotonic())
        return False, None

    def _needs_whole(self, value: Input | None) -> bool:
        """A digits collect's pause decode (its 1..max grammar) that heard the min digits but
        cannot answer for the utterance: the end of the turn will decode it all."""
        g = self.grammar
        return g is not None and g.builtin == "digits" and partial_grammar(g) != g \
            and not needs_more_digits(g, value.value if value else None) \
            and not self._answers(value)

    def _end(self, cut: bool = False) -> tuple[bool, Input | None]:
        """The endpointer ended the utterance: answer from the last pause's decode when it holds
        for the whole utterance, else decode it all under the node's grammar."""
        self._final, self._final_at = True, time.monotonic()
        self._final_audio = self._ep.take_audio()
        if cut:  # max_speech: the pause decodes had less than the whole utterance
            self._spec = self._heard = self._early = None
        elif self._heard is not None and self._heard[0] == self._pause \
                and self._answers(self._heard[1]):
            self.ended_by = "pause"
            return True, self._heard[1]
        return self._finishing()

    def _finishing(self) -> tuple[bool, Input | None]:
        if self._spec is not None:
            if self._spec_pause != self._pause:
                self._spec = None  # from before the caller went on
            elif not self._spec.done():
                if time.monotonic() - self._spec_started > self.timing.decode_timeout:
                    return self._stalled(self._spec)
                return False, None  # the last pause's decode may answer for the utterance
            else:
                value = self._take_spec()
                if self._answers(value):
                    self.ended_by = "pause"
                    return True, value
        early = self._early
        if self._decoding is None and early is not None and early[0] == self._pause \
                and not early[1].cancelled():
            # the caller said nothing after that pause: its decode is the utterance's
            self._decoding, self._decode_started = early[1], early[2]
            self._final_audio = None
        if self._decoding is None:
            if self._final_audio is None:
                return True, None
            if self.grammar_ready.is_set():
                self._decoding = self._submit(self._final_audio)
                self._decode_started = time.monotonic()
                self._final_audio = None
            elif time.monotonic() - self._final_at > GRAMMAR_WAIT:
                return True, None
            return False, None
        if self._decoding.done():
            self.ended_by = "decode"
            return True, self._decoding.result()
        if time.monotonic() - self._decode_started > self.timing.decode_timeout:
            return self._stalled(self._decoding)
        return False, None

    def _stalled(self, decode: Future[Input | None]) -> tuple[bool, Input | None]:
        log.warning("speech decode took over %.1fs; treated as a nomatch",
                    self.timing.decode_timeout)
        decode.cancel()
        self.ended_by = "stalled"
        return True, Input("speech", "", 0.0)

    def _submit(self, audio: bytes, partial: bool = False,
                early: bool = False) -> Future[Input | None]:
        """Decode on the hub's pool: the whole utterance ahead of any pause's guess, shorter
        audio first, and a pause's guess (or an `early` whole decode) only while the caller is
        still quiet at that pause when its turn comes."""
        ctx = self._ctx.copy()
        still_wanted = None
        if partial or early:
            pause, resumed = self._pause, self._resumed
            still_wanted = lambda: (  # noqa: E731 - read by the decode thread
                not self.cancelled.is_set() and self._pause == pause
                and self._resumed == resumed)
        submitted = time.monotonic()

        def work() -> Input | None:
            started = time.monotonic()
            try:
                return ctx.run(self._decode, audio, partial)
            finally:
                self.decodes.append((partial, submitted, started, time.monotonic()))

        fut = self.hub.decode_pool.submit(work, PAUSE if partial else FINAL, len(audio),
                                          still_wanted)
        fut.add_done_callback(lambda _: self.hub.wake())
        return fut

    def _decode(self, audio: bytes, partial: bool = False) -> Input | None:
        grammar = self.grammar
        if grammar is None or self.cancelled.is_set():
            return None
        if grammar.empty:
            return Input("speech", "", 0.0)
        node = grammar
        if partial:
            grammar = partial_grammar(grammar)
        started = time.monotonic()
        with tracing.span("recognition", audio_s=round(len(audio) / (2 * RATE), 2),
                          partial=partial):
            rec = self.engine.new_recognizer(grammar, RATE)
            try:
                rec.accept(audio)
                # at a pause a digits collect needs its min digits before a score matters
                short_ok = partial and grammar.builtin == "digits" and grammar != node
                result = rec.finalize_partial(node.min_words) if short_ok \
                    else rec.finalize()
            finally:
                rec.close()
        metrics.ASR_DECODE.observe(time.monotonic() - started)
        log.debug("decoded %.1fs of speech in %.0f ms%s", len(audio) / (2 * RATE),
                  (time.monotonic() - started) * 1000, " (at a pause)" if partial else "")
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

    def playing(self, paths: Sequence[str]) -> None:
        """A barge-in prompt starts: its levels are the echo reference of the current turn."""
        if self.turn is not None and not self.turn.result.done():
            self.turn.playing(self.hub.envelope(paths))

    def played(self) -> None:
        """The prompt stopped (its end, a digit, speech)."""
        if self.turn is not None and not self.turn.result.done():
            self.turn.playing(None)

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
