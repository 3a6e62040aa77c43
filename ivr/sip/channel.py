"""The flow's Channel over a real SIP call: prompts, DTMF and speech, queue, transfer, record.

Prompts play through the call's `SipCallControl` (ivr/sip/control.py), which the queue wait
(ivr/acd/wait.py) drives too. DTMF typed while a prompt plays cuts it (barge-in) and stays
buffered for the next `listen` (type-ahead), as callers expect from any IVR.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.acd.wait import AcdLink, Handoff, QueueRequest, QueueResult, QueueWait
from ivr.errors import CallerHangup
from ivr.flow.channel import (
    Channel,
    Input,
    ListenSpec,
    Prompt,
    RecordRequest,
    TransferRequest,
)
from ivr.sip.control import SipCallControl
from ivr.sip.legs import handoff_headers
from ivr.sip.session import CallSession
from ivr.speech.tts import PromptCache


@dataclass
class SipChannel(Channel):
    session: CallSession
    cache: PromptCache
    account: Any
    recordings: Path
    beep: Path | None = None
    acd: AcdLink | None = None
    """`ivr.acd.client.AcdClient` of the worker, None when no bus is configured."""
    handoff: Callable[[], dict[str, Any]] | None = None
    """What the flow learned so far (flow, path, masked variables, transcript, sensitive)."""
    front: str = "127.0.0.1:5060"
    audio_dir: str = "audio"
    recognises: Callable[[str], bool] = field(default=lambda _language: True)
    """Whether the configured engines recognise a language (`AsrSettings.recognises`)."""
    control: SipCallControl = field(init=False)

    def __post_init__(self) -> None:
        self.control = SipCallControl(self.session, self.cache, self.account)

    @property
    def speech_available(self) -> bool:
        return self.session.speech is not None

    def speech_for(self, language: str) -> bool:
        return self.speech_available and self.recognises(language)

    def _check(self) -> None:
        if self.session.gone.is_set():
            raise CallerHangup()

    def private(self, node: str) -> contextlib.AbstractAsyncContextManager[None]:
        recording = self.session.recording
        return recording.pauses.span(node) if recording is not None else contextlib.nullcontext()

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = True) -> None:
        await self.control.play(prompts, barge_in=barge_in)

    async def listen(self, spec: ListenSpec) -> Input | None:
        self._check()
        s = self.session
        speech = s.speech if spec.speech and self.speech_for(spec.language) else None
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
        if self.acd is None:
            return QueueResult("error", detail="no agent queue service is connected to this worker")
        await self.control.prepare_hold(Path(self.audio_dir) / "hold.wav")
        wait = QueueWait(self.control, self.acd, request, self._handoff(), front=self.front)
        return await wait.run()

    def _handoff(self) -> Handoff:
        info = self.handoff() if self.handoff else {}
        caller = self.session.info
        return Handoff(caller={k: caller.get(k) for k in ("number", "name", "dialed")},
                       contact=str(caller.get("contact") or "") or None, flow=info.get("flow"),
                       path=tuple(info.get("path", ())), variables=dict(info.get("variables") or {}),
                       transcript=tuple(info.get("transcript", ())),
                       sensitive=tuple(info.get("sensitive", ())))

    async def transfer(self, request: TransferRequest) -> bool:
        self._check()
        headers = {**handoff_headers(self.session.call_id, request.context), **request.headers}
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
