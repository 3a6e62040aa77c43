"""The flow's Channel over a real SIP call (DTMF today; speech arrives with the ASR engines).

Prompts are files from the shared prompt cache: static text was rendered when the flow loaded,
dynamic text is rendered in a subprocess now. DTMF typed while a prompt plays cuts it (barge-in)
and stays buffered for the next `listen` (type-ahead), as callers expect from any IVR.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.errors import CallerHangup
from ivr.flow.channel import (
    Channel,
    Input,
    ListenSpec,
    Prompt,
    QueueRequest,
    QueueResult,
    RecordRequest,
    TransferRequest,
)
from ivr.sip.session import CallSession
from ivr.speech.tts import PromptCache, TtsError

log = logging.getLogger("ivr.sip")


@dataclass
class SipChannel(Channel):
    session: CallSession
    cache: PromptCache
    account: Any
    recordings: Path
    beep: Path | None = None

    def _check(self) -> None:
        if self.session.gone.is_set():
            raise CallerHangup()

    async def _files(self, prompts: Sequence[Prompt]) -> list[str]:
        out = []
        for p in prompts:
            try:
                if p.audio is not None:
                    path = await asyncio.to_thread(self.cache.prepare_audio, Path(p.audio))
                else:
                    path = await self.cache.render(p.text or "", p.language)
            except (TtsError, OSError, ValueError) as exc:
                # a prompt that cannot be rendered is skipped, not a dropped call
                log.error("prompt %r unavailable: %s", p.describe()[:80], exc)
                continue
            out.append(str(path))
        return out

    def _speaking(self) -> bool:
        speech = self.session.speech
        return speech is not None and speech.turn is not None and speech.turn.speech_started

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = True) -> None:
        self._check()
        if barge_in and (self.session.digits or self._speaking()):
            return  # type-ahead: the caller already answered
        if barge_in and self.session.speech is not None:
            self.session.speech.begin()  # speech may cut this prompt
        files = await self._files(prompts)
        self._check()
        if not barge_in:
            before = len(self.session.digits)
        await self.session.play_files(files, barge_in=barge_in)
        if not barge_in:
            del self.session.digits[before:]  # input over a no-barge-in prompt is ignored
        self._check()

    async def listen(self, spec: ListenSpec) -> Input | None:
        self._check()
        s = self.session
        speech = s.speech if spec.speech else None
        if speech is None:
            if s.speech is not None:
                s.speech.end_turn()
            first = await s.wait_digit(spec.timeout)
        else:
            try:
                got, first = await self._speech_or_digit(speech, spec)
            finally:
                speech.end_turn()
            if got is not None or first is None:
                self._check()
                return got
        self._check()
        if first is None:
            return None
        entry = first
        while True:
            if spec.terminator and entry.endswith(spec.terminator):
                return Input("dtmf", entry[: -len(spec.terminator)])
            if entry in spec.dtmf_keys and not any(
                len(k) > len(entry) and k.startswith(entry) for k in spec.dtmf_keys
            ):
                return Input("dtmf", entry)
            if not entry.isdigit() and entry in spec.dtmf_keys:
                return Input("dtmf", entry)
            if len(entry) >= spec.max_digits and not spec.terminator:
                return Input("dtmf", entry)
            if len(entry) > spec.max_digits:
                return Input("dtmf", entry)
            nxt = await s.wait_digit(spec.interdigit_timeout)
            self._check()
            if nxt is None:
                return Input("dtmf", entry)
            entry += nxt

    async def _speech_or_digit(self, speech: Any, spec: ListenSpec) -> tuple[Input | None, str | None]:
        """Whichever comes first: an utterance (or noinput) or a DTMF digit."""
        s = self.session
        turn = speech.begin()
        turn.listen(spec)
        while True:
            if s.digits:
                return None, s.digits.pop(0)
            if turn.result.done():
                return turn.result.result(), None
            if s.gone.is_set():
                return None, None
            s.digit_event.clear()
            digit = asyncio.ensure_future(s.digit_event.wait())
            try:
                await asyncio.wait([digit, turn.result], timeout=spec.timeout + 20,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                digit.cancel()
            if not s.digits and not turn.result.done() and not s.gone.is_set():
                return None, None  # bounded: a stalled turn is a noinput

    async def enqueue(self, request: QueueRequest) -> QueueResult:
        self._check()
        return QueueResult("error", detail="no agent queue service is connected to this worker")

    async def transfer(self, request: TransferRequest) -> bool:
        self._check()
        headers = dict(request.headers)
        for name, value in request.context.items():
            if value is not None:
                headers.setdefault(f"X-IVR-{name.replace('.', '-').title()}", str(value))
        if request.mode == "bridge":
            return await self.session.bridge(self.account, request.to, headers)
        return await self.session.refer(request.to, headers)

    async def record(self, request: RecordRequest) -> str | None:
        self._check()
        if request.beep and self.beep is not None:
            await self.session.play_files([str(self.beep)], barge_in=False)
            self._check()
        self.recordings.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        path = self.recordings / f"{self.session.call_id}-{request.name}-{stamp}.wav"
        seconds = await self.session.record(str(path), request.max_seconds)
        return str(path) if seconds > 0 and path.exists() else None

    async def hangup(self) -> None:
        self.session.hangup()
