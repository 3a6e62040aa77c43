"""Endpointing with webrtcvad: speech start (barge-in), pauses, end of utterance, noinput, max speech.

A pure state machine over PCM (no threads, no clocks): the SIP layer feeds it whatever its media
buffer holds, at 8/16/32/48 kHz, and gets events back with their time in the audio (ms since the
first sample fed). Audio for the decoder is handed out by `take_audio()`: the pre-roll before the
detected onset plus the speech, never more than `max_speech` seconds of it.

Two things beyond webrtcvad's voiced/unvoiced:
- The end of speech is the last *loud* voiced frame (within TAIL_DB of the utterance's peak and
  over the line's noise): webrtcvad keeps calling 100-280 ms of a word's decaying tail voice,
  which every pause and end would otherwise wait out.
- While a prompt plays (`set_reference`), an onset needs `barge_ms` of voiced frames, over half of
  them tonal (voiced speech, not a cough's or a click's noise) and within `echo_margin_db` of
  what the prompt plays at that moment (the loudest of the last ECHO_WINDOW_MS, the echo path's
  delay): the prompt's own echo (-20 dB) never is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import webrtcvad

VAD_RATES = (8000, 16000, 32000, 48000)
COMPLETE_SILENCE = 0.35
"""Quiet after speech at which a complete, confident grammar match ends a turn (VoiceXML's
completetimeout); anything less waits for the full trailing silence (incompletetimeout)."""
COMPLETE_CONFIDENCE = 0.6
"""Above the PocketSphinx fallback for partial paths (0.5): early answers are whole matches."""
TAIL_DB = 30.0
"""A voiced frame this far below the utterance's loudest frame is a word's tail, not speech."""
QUIET_RMS = 100.0
"""About -50 dBFS: never speech, whatever webrtcvad says."""
NOISE_MS = 1000
"""The line's noise level is a low percentile of the frames before speech over this long."""
TONAL_FLATNESS = 0.3
"""Voiced speech measures 0.01-0.2 (harmonics), a cough or line noise 0.4-0.7."""
ENVELOPE_MS = 20
"""Resolution of a prompt's level envelope (`set_reference`)."""
ECHO_WINDOW_MS = 300
"""How late a prompt's echo may come back (network both ways + jitter buffers)."""
ECHO_PREROLL_MS = 60
"""Audio kept before a barge-in onset (the usual pre-roll would be mostly the prompt's echo)."""
EventKind = Literal["start", "pause", "resume", "end", "noinput", "max_speech"]


def frame_rms(frame: bytes) -> float:
    x = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def flatness(frame: bytes) -> float:
    """Spectral flatness (geometric over arithmetic mean power), 0 for a pure tone, ~0.6 for
    white noise: voiced speech is tonal, a cough or a click is not."""
    x = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2 + 1e-3
    return float(np.exp(np.mean(np.log(power))) / np.mean(power))


def level_envelope(samples: np.ndarray, rate: int) -> np.ndarray:
    """RMS per ENVELOPE_MS of int16 samples: how loud a prompt plays, frame by frame."""
    n = max(1, rate * ENVELOPE_MS // 1000)
    x = samples[: len(samples) // n * n].astype(np.float32).reshape(-1, n)
    return np.asarray(np.sqrt((x * x).mean(axis=1)), dtype=np.float32)


@dataclass(frozen=True)
class VadEvent:
    kind: EventKind
    at_ms: int
    """start: when speech began (onset, before the detection delay); end / pause: end of the last
    speech frame; resume: when voice came back; noinput / max_speech: when the limit was hit."""
    detected_ms: int = 0
    """when the event was reported (end of the frame that decided it)"""


class Endpointer:
    """Cuts one utterance out of a stream of PCM frames.

    - `start`: `onset_ms` of voiced frames (within a sliding window of 2x that) -> reported at most
      `onset_ms` + one frame after the onset (default 60 + 20 ms, well inside 300 ms for barge-in);
      while a prompt plays, `barge_ms` of loud-enough voiced frames (see the module doc).
    - `pause`: `complete_silence` seconds without loud voice after speech (once per pause): the
      utterance so far can be decoded, and a grammar it completes may end the turn early.
    - `resume`: voice again after a `pause`; `trailing_silence` is back to its configured value.
    - `end`: `trailing_silence` seconds without voice after speech. The owner may change
      `trailing_silence` during a pause (a digit string still short of its minimum waits longer,
      a complete match less); it returns to the configured value when the caller goes on.
    - `noinput`: `timeout` seconds without speech (counted from `arm_timeout()`, or the start).
    - `max_speech`: the utterance is cut at `max_speech` seconds of speech.
    """

    def __init__(self, sample_rate: int = 8000, *, frame_ms: int = 20, aggressiveness: int = 2,
                 timeout: float | None = 5.0, trailing_silence: float = 0.7,
                 max_speech: float = 15.0, onset_ms: int = 60, preroll_ms: int = 300,
                 complete_silence: float | None = None, barge_ms: int = 140,
                 echo_margin_db: float = 14.0) -> None:
        if sample_rate not in VAD_RATES:
            raise ValueError(f"webrtcvad needs 8/16/32/48 kHz audio, not {sample_rate}")
        if frame_ms not in (10, 20, 30):
            raise ValueError("frames are 10, 20 or 30 ms")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_bytes = sample_rate * frame_ms // 1000 * 2
        self.timeout = timeout
        self.base_trailing = trailing_silence
        self.trailing_silence = trailing_silence
        self.max_speech = max_speech
        self.complete_silence = complete_silence
        self.echo_gain = float(10 ** (-echo_margin_db / 20))
        self._vad = webrtcvad.Vad(aggressiveness)
        self._onset_frames = max(1, onset_ms // frame_ms)
        self._barge_frames = max(1, barge_ms // frame_ms)
        self._window = deque[tuple[bool, bool]](
            maxlen=max(self._onset_frames * 2, self._barge_frames * 3 // 2, 2))
        self._preroll = deque[bytes](maxlen=max(1, preroll_ms // frame_ms))
        self._quiet = deque[float](maxlen=max(1, NOISE_MS // frame_ms))
        self._reference: np.ndarray | None = None
        self._reference_at = 0
        self.reset()

    def reset(self) -> None:
        self._pending = b""
        self._out: list[bytes] = []
        self._window.clear()
        self._preroll.clear()
        self._quiet.clear()
        self.pos_ms = 0
        self._armed_at = 0
        self.in_speech = False
        self.done = False
        self.started_ms: int | None = None
        self.ended_ms: int | None = None
        self._last_voice_ms = 0
        self._speech_frames = 0
        self._paused = False
        self._peak = 0.0
        self._noise = 0.0
        self.trailing_silence = self.base_trailing

    @property
    def paused(self) -> bool:
        """In speech, and quiet for at least `complete_silence` (a `pause` was reported)."""
        return self.in_speech and self._paused and not self.done

    @property
    def spoken_ms(self) -> int:
        """From the onset to the last loud voice (0 before speech): the utterance's length,
        pauses inside it included, the quiet after it not."""
        return 0 if self.started_ms is None else max(0, self._last_voice_ms - self.started_ms)

    def arm_timeout(self) -> None:
        """Start the noinput clock now (e.g. when the prompt finished playing)."""
        self._armed_at = self.pos_ms

    def set_reference(self, levels: Sequence[float] | np.ndarray | None,
                      at_ms: int | None = None) -> None:
        """A prompt starts playing at stream position `at_ms` (default: now), at these levels
        (RMS per ENVELOPE_MS); None: nothing plays."""
        self._reference = None if levels is None else np.asarray(levels, dtype=np.float32)
        self._reference_at = self.pos_ms if at_ms is None else at_ms

    def end_reference(self, at_ms: int | None = None) -> None:
        """The prompt stopped at stream position `at_ms` (default: now): its echo fades within
        ECHO_WINDOW_MS."""
        if self._reference is not None:
            stop = (self.pos_ms if at_ms is None else at_ms) - self._reference_at
            self._reference = self._reference[: max(0, stop // ENVELOPE_MS)]

    def _echo_level(self, now: int) -> float | None:
        """The loudest the prompt played over the echo window before `now`; None when no prompt
        can echo at `now` (none playing, or its echo window is over)."""
        ref = self._reference
        if ref is None:
            return None
        hi = (now - self._reference_at) // ENVELOPE_MS
        lo = (now - self._reference_at - ECHO_WINDOW_MS) // ENVELOPE_MS
        if hi < 0 or lo >= len(ref):
            if lo >= len(ref):
                self._reference = None
            return None
        return float(ref[max(0, lo): min(len(ref), hi + 1)].max(initial=0.0))

    def peek_audio(self) -> bytes:
        """The utterance so far (pre-roll + speech), left in place for take_audio()."""
        return b"".join(self._out)

    def take_audio(self) -> bytes:
        """Utterance audio gathered since the last call (pre-roll + speech), for the decoder."""
        out = b"".join(self._out)
        self._out = []
        return out

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Process any amount of 16-bit mono PCM; the events it caused, in order."""
        events: list[VadEvent] = []
        if self.done:
            return events
        data = self._pending + pcm
        n = len(data) // self.frame_bytes * self.frame_bytes
        self._pending = data[n:]
        for i in range(0, n, self.frame_bytes):
            ev = self._frame(data[i:i + self.frame_bytes])
            if ev is not None:
                events.append(ev)
                if self.done:
                    self._pending = b""
                    break
        return events

    def _onset(self, now: int) -> int | None:
        """The onset's position when the window holds one, else None."""
        window = list(self._window)
        if self._reference is not None and self._echo_level(now) is not None:
            recent = window[-(self._barge_frames * 3 // 2):]
            if sum(v for v, _ in recent) < self._barge_frames \
                    or sum(q for _, q in recent) < self._barge_frames // 2 + 1:
                return None
            first = next(i for i, (v, _) in enumerate(recent) if v)
            return now - (len(recent) - first) * self.frame_ms
        recent = window[-self._onset_frames * 2:]
        if sum(v for v, _ in recent) < self._onset_frames:
            return None
        first = next(i for i, (v, _) in enumerate(recent) if v)
        return now - (len(recent) - first) * self.frame_ms

    def _frame(self, frame: bytes) -> VadEvent | None:
        voiced = self._vad.is_speech(frame, self.sample_rate)
        rms = frame_rms(frame)
        self.pos_ms += self.frame_ms
        now = self.pos_ms
        if not self.in_speech:
            self._preroll.append(frame)
            loud = barge = False
            if voiced and rms >= QUIET_RMS:
                loud = rms >= 2.0 * self._noise_floor()  # over steady line noise
                if loud and self._reference is not None:
                    echo = self._echo_level(now)
                    barge = (echo is None or rms >= echo * self.echo_gain) \
                        and flatness(frame) <= TONAL_FLATNESS
            self._window.append((loud, barge))
            onset = self._onset(now)
            if onset is not None:
                self.in_speech = True
                self.started_ms = onset
                self._last_voice_ms = now
                self._speech_frames = (now - onset) // self.frame_ms
                self._noise = self._noise_floor()
                self._peak = rms
                pre = list(self._preroll)
                if self._reference is not None:  # over a prompt: not its echo before the onset
                    pre = pre[-((now - onset) // self.frame_ms + ECHO_PREROLL_MS // self.frame_ms):]
                self._out.extend(pre)
                self._preroll.clear()
                return VadEvent("start", onset, now)
            self._quiet.append(rms)
            if self.timeout is not None and now - self._armed_at >= self.timeout * 1000:
                self.done = True
                return VadEvent("noinput", now, now)
            return None
        self._out.append(frame)
        self._speech_frames += 1
        self._peak = max(self._peak, rms) if voiced else self._peak
        gate = max(QUIET_RMS, 2.0 * self._noise, self._peak * 10 ** (-TAIL_DB / 20))
        event: VadEvent | None = None
        if voiced and rms >= gate:
            self._last_voice_ms = now
            if self._paused:
                self._paused = False
                self.trailing_silence = self.base_trailing
                event = VadEvent("resume", now - self.frame_ms, now)
        assert self.started_ms is not None
        if now - self.started_ms >= self.max_speech * 1000:
            self.done = True
            self.ended_ms = now
            return VadEvent("max_speech", now, now)
        if now - self._last_voice_ms >= self.trailing_silence * 1000:
            self.done = True
            self.ended_ms = self._last_voice_ms
            return VadEvent("end", self._last_voice_ms, now)
        if (self.complete_silence is not None and not self._paused
                and now - self._last_voice_ms >= self.complete_silence * 1000):
            self._paused = True
            return VadEvent("pause", self._last_voice_ms, now)
        return event

    def _noise_floor(self) -> float:
        """The line's level without speech: a low percentile of the frames before it (the
        onset's own frames are among them, hence not the median)."""
        return float(np.percentile(np.asarray(self._quiet), 20)) if self._quiet else 0.0

    def check_end(self) -> VadEvent | None:
        """After `trailing_silence` was shortened: the `end` it implies now, if any."""
        if self.in_speech and not self.done and \
                self.pos_ms - self._last_voice_ms >= self.trailing_silence * 1000:
            self.done = True
            self.ended_ms = self._last_voice_ms
            return VadEvent("end", self._last_voice_ms, self.pos_ms)
        return None
