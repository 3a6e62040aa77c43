"""Whole-call recording: one WAV per call, mixed by the conference bridge.

Whatever the caller hears or says reaches the recorder: the caller's audio, every prompt and
hold player, and a bridged agent leg. A private span (`ivr.flow.pauses`) mutes the recorder's
input as a whole (the bridge's transmit level towards it goes to 0), so the file keeps running
time with digital silence: neither the caller's speech or in-band tones nor a prompt that reads a
value back reach it, and the CDR's pause offsets line up with the audio. A recorder nobody
transmits to would get no frames at all (time would collapse), which is why the pause mutes
instead of disconnecting. The recorder resumes `resume_after` after the flow leaves the span
(`PauseLog.tail_ms`): the caller's audio from just before is still in the jitter buffer.

The pjsua2 recorder is counted in the worker's `MediaRegistry` as `call_recorder` and released
like the call's other media: stop transmitting while the call is up, then drop the reference
(the WAV header is written when the port is destroyed).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Any

import pjsua2 as pj

from ivr.flow.pauses import PauseLog
from ivr.sip.media import MediaRegistry

log = logging.getLogger("ivr.sip")

KIND = "call_recorder"
"""Registry kind of the pjsua2 recorder of a whole-call recording."""


def recording_path(root: Path, call_id: str, when: dt.datetime | None = None) -> Path:
    """<root>/<YYYY-MM-DD>/<call id>.wav: a day per directory, so retention can find old ones."""
    day = (when or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d")
    return root / day / f"{call_id}.wav"


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 (its directories 0700) before pjmedia opens it: the
    writer opens an existing file without changing its mode, so no moment is world-readable."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


class CallRecorder:
    """The recording of one call; owned by its `CallSession` on the worker's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, registry: MediaRegistry, path: Path,
                 resume_after: float = 0.3) -> None:
        self.loop = loop
        self.registry = registry
        self.path = path
        self.resume_after = resume_after
        self.started: float | None = None
        self.pauses = PauseLog(clock_ms=self.elapsed_ms, on_change=self._pause,
                               tail_ms=int(resume_after * 1000))
        self._rec: Any = None
        self._resume: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        return self._rec is not None

    def elapsed_ms(self) -> int:
        """Milliseconds since the recording started (the WAV's time axis)."""
        return 0 if self.started is None else int((time.monotonic() - self.started) * 1000)

    def start(self, caller: Any) -> bool:
        """Start recording with the caller's audio as the first source; False when pjmedia
        would not create the file (the call goes on unrecorded)."""
        try:
            private_file(self.path)
            rec = pj.AudioMediaRecorder()
            rec.createRecorder(str(self.path))
        except (OSError, pj.Error) as exc:
            detail = exc.info() if isinstance(exc, pj.Error) else str(exc)
            log.error("call recording not started (%s): %s", self.path, detail)
            return False
        self._rec = rec
        self.registry.add(KIND)
        self.started = time.monotonic()
        self.listen_to(caller)
        return True

    def listen_to(self, source: Any) -> None:
        """Mix `source` (the caller's media, a player, an agent leg) into the recording."""
        if self._rec is None or source is None:
            return
        try:
            source.startTransmit(self._rec)
        except pj.Error as exc:
            log.warning("call recording misses a source: %s", exc.info())

    def forget(self, source: Any) -> None:
        """Stop mixing `source` (before the caller's side drops it, while the call is up)."""
        if self._rec is not None and source is not None:
            with contextlib.suppress(pj.Error):
                source.stopTransmit(self._rec)

    def _pause(self, on: bool) -> None:
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if on:
            self._mute(True)
        else:
            self._resume = self.loop.call_later(self.resume_after, self._mute, False)

    def _mute(self, on: bool) -> None:
        self._resume = None
        if self._rec is not None:
            try:
                self._rec.adjustRxLevel(0.0 if on else 1.0)
            except pj.Error as exc:  # a pause that cannot mute must not go unnoticed
                log.error("call recording could not %s: %s", "pause" if on else "resume",
                          exc.info())

    def stop(self, caller: Any = None) -> None:
        """End the recording: close an open pause, disconnect (while the call is up), drop."""
        self.pauses.close()
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._rec is None:
            return
        self.forget(caller)
        self._rec = None  # the last reference: pjmedia writes the WAV header and removes the port
        self.registry.remove(KIND)

    def cdr(self) -> dict[str, Any]:
        """What the CDR says about the recording."""
        return {"recording": str(self.path), "recording_pauses": self.pauses.as_json()}
