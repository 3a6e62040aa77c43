"""Endpointing with webrtcvad: speech start (barge-in), end of utterance, noinput, max speech.

A pure state machine over PCM (no threads, no clocks): the SIP layer feeds it whatever its media
buffer holds, at 8/16/32/48 kHz, and gets events back with their time in the audio (ms since the
first sample fed). Audio for the decoder is handed out by `take_audio()`: the pre-roll before the
detected onset plus the speech, never more than `max_speech` seconds of it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import webrtcvad

VAD_RATES = (8000, 16000, 32000, 48000)
COMPLETE_SILENCE = 0.35
"""Quiet after speech at which a complete, confident grammar match ends a turn (VoiceXML's
completetimeout); anything less waits for the full trailing silence (incompletetimeout)."""
COMPLETE_CONFIDENCE = 0.6
"""Above the PocketSphinx fallback for partial paths (0.5): early answers are whole matches."""
EventKind = Literal["start", "pause", "end", "noinput", "max_speech"]


@dataclass(frozen=True)
class VadEvent:
    kind: EventKind
    at_ms: int
    """start: when speech began (onset, before the detection delay); end: end of the last speech
    frame; noinput / max_speech: when the limit was hit."""
    detected_ms: int = 0
    """when the event was reported (end of the frame that decided it)"""


class Endpointer:
    """Cuts one utterance out of a stream of PCM frames.

    - `start`: `onset_ms` of voiced frames (within a sliding window of 2x that) -> reported at most
      `onset_ms` + one frame after the onset (default 60 + 20 ms, well inside 300 ms for barge-in).
    - `pause`: `complete_silence` seconds without voice after speech (once per pause): the caller
      may be done; a recogniser whose grammar is already complete can answer now (VoiceXML's
      completetimeout), else `end` waits the full `trailing_silence` (incompletetimeout).
    - `end`: `trailing_silence` seconds without voice after speech.
    - `noinput`: `timeout` seconds without speech (counted from `arm_timeout()`, or the start).
    - `max_speech`: the utterance is cut at `max_speech` seconds of speech.
    """

    def __init__(self, sample_rate: int = 8000, *, frame_ms: int = 20, aggressiveness: int = 2,
                 timeout: float | None = 5.0, trailing_silence: float = 0.7,
                 max_speech: float = 15.0, onset_ms: int = 60, preroll_ms: int = 300,
                 complete_silence: float | None = None) -> None:
        if sample_rate not in VAD_RATES:
            raise ValueError(f"webrtcvad needs 8/16/32/48 kHz audio, not {sample_rate}")
        if frame_ms not in (10, 20, 30):
            raise ValueError("frames are 10, 20 or 30 ms")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_bytes = sample_rate * frame_ms // 1000 * 2
        self.timeout = timeout
        self.trailing_silence = trailing_silence
        self.max_speech = max_speech
        self.complete_silence = complete_silence
        self._vad = webrtcvad.Vad(aggressiveness)
        self._onset_frames = max(1, onset_ms // frame_ms)
        self._window = deque[bool](maxlen=max(self._onset_frames * 2, 2))
        self._preroll = deque[bytes](maxlen=max(1, preroll_ms // frame_ms))
        self.reset()

    def reset(self) -> None:
        self._pending = b""
        self._out: list[bytes] = []
        self._window.clear()
        self._preroll.clear()
        self.pos_ms = 0
        self._armed_at = 0
        self.in_speech = False
        self.done = False
        self.started_ms: int | None = None
        self.ended_ms: int | None = None
        self._last_voice_ms = 0
        self._speech_frames = 0
        self._paused = False

    def arm_timeout(self) -> None:
        """Start the noinput clock now (e.g. when the prompt finished playing)."""
        self._armed_at = self.pos_ms

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

    def _frame(self, frame: bytes) -> VadEvent | None:
        voiced = self._vad.is_speech(frame, self.sample_rate)
        self.pos_ms += self.frame_ms
        now = self.pos_ms
        if not self.in_speech:
            self._preroll.append(frame)
            self._window.append(voiced)
            if sum(self._window) >= self._onset_frames:
                self.in_speech = True
                # onset: the first voiced frame of the window
                first = list(self._window).index(True)
                onset = now - (len(self._window) - first) * self.frame_ms
                self.started_ms = onset
                self._last_voice_ms = now
                self._speech_frames = (now - onset) // self.frame_ms
                self._out.extend(self._preroll)
                self._preroll.clear()
                return VadEvent("start", onset, now)
            if self.timeout is not None and now - self._armed_at >= self.timeout * 1000:
                self.done = True
                return VadEvent("noinput", now, now)
            return None
        self._out.append(frame)
        self._speech_frames += 1
        if voiced:
            self._last_voice_ms = now
            self._paused = False
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
        return None
