"""One SIP call as the flow and the queue wait drive it: prompts, keys, hold music, agent legs.

`SipCallControl` is the SIP side of `ivr.acd.wait.CallControl`, and the prompt player of
`ivr.sip.channel.SipChannel` too, so a prompt plays the same way in a menu and in a queue.
Prompts are files from a recorded prompt pack when it holds them (`PromptCache.pack_files`), else
from the shared prompt cache: static text (the wait's words included) was
rendered when the flow loaded, dynamic text is rendered in a subprocess now; the hold file is
hashed and resampled in a thread. A prompt that carries a sensitive value is rendered privately
(`PromptCache.render_private`) and its file deleted as soon as it has played or been cut.
DTMF typed while a barge-in prompt plays cuts it and stays buffered (type-ahead); over a
no-barge-in prompt it is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.errors import CallerHangup
from ivr.flow.channel import Prompt
from ivr.sip.legs import OutboundLeg, failure_reason, handoff_headers
from ivr.sip.session import CallSession
from ivr.speech.tts import PromptCache, TtsError

log = logging.getLogger("ivr.sip")


def discard(files: Sequence[str]) -> None:
    """Delete the private renderings among played files (cached ones stay)."""
    for f in files:
        PromptCache.discard(Path(f))


@dataclass
class SipCallControl:
    session: CallSession
    cache: PromptCache
    account: Any
    hold_file: str | None = None
    _holding: bool = False

    @property
    def call_id(self) -> str:
        return self.session.call_id

    @property
    def gone(self) -> bool:
        return self.session.gone.is_set()

    def check(self) -> None:
        if self.session.gone.is_set():
            raise CallerHangup()

    # -- prompts ------------------------------------------------------------------------------
    async def files(self, prompts: Sequence[Prompt]) -> list[str]:
        out = []
        for p in prompts:
            try:
                if p.audio is None and self.cache.pack is not None:
                    recorded = await asyncio.to_thread(self.cache.pack_files, p)
                    if recorded is not None:  # the recorded pack says it: no TTS
                        out += [str(f) for f in recorded]
                        continue
                if p.audio is not None:
                    path = await asyncio.to_thread(self.cache.prepare_audio, Path(p.audio))
                elif p.sensitive:
                    path = await self.cache.render_private(p.text or "", p.language)
                else:
                    path = await self.cache.render(p.text or "", p.language)
            except (TtsError, OSError, ValueError) as exc:
                # a prompt that cannot be rendered is skipped, not a dropped call
                log.error("prompt %r unavailable: %s", p.describe()[:80], exc)
                continue
            out.append(str(path))
        return out

    def speaking(self) -> bool:
        speech = self.session.speech
        return speech is not None and speech.turn is not None and speech.turn.speech_started

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool = True) -> None:
        """Play prompts; hold music, if on, pauses for them (rendered first, so no gap)."""
        self.check()
        s = self.session
        if barge_in and (s.digits or self.speaking()):
            return  # type-ahead: the caller already answered
        if barge_in and s.speech is not None:
            s.speech.begin()  # speech may cut this prompt
        files = await self.files(prompts)
        try:
            self.check()
            before = len(s.digits)
            if self._holding:
                s.stop_hold()
            await s.play_files(files, barge_in=barge_in)
            if not barge_in:
                del s.digits[before:]  # input over a no-barge-in prompt is ignored
        finally:
            discard(files)
        if self._holding and self.hold_file is not None:
            s.start_hold(self.hold_file)
        self.check()

    # -- keys and hangup -----------------------------------------------------------------------
    async def hung_up(self) -> None:
        await self.session.gone.wait()

    async def key_pressed(self) -> None:
        s = self.session
        if not s.digits:
            s.digit_event.clear()
        await s.digit_event.wait()

    def take_key(self, wanted: str) -> str | None:
        keys = list(self.session.digits)
        self.session.digits.clear()
        return next((k for k in keys if k in wanted), None)

    # -- hold music -------------------------------------------------------------------------
    async def prepare_hold(self, path: Path) -> None:
        """The hold file at the call rate; read whole and hashed, so in a thread."""
        def prepare() -> str | None:
            return str(self.cache.prepare_audio(path)) if path.is_file() else None

        if self.hold_file is None:
            try:
                self.hold_file = await asyncio.to_thread(prepare)
            except (OSError, ValueError) as exc:
                log.error("hold music %s unavailable: %s", path, exc)

    def hold(self, on: bool) -> None:
        self._holding = on and self.hold_file is not None
        if self._holding and self.hold_file is not None:
            self.session.start_hold(self.hold_file)
        else:
            self.session.stop_hold()

    # -- agents -------------------------------------------------------------------------------
    async def dial(self, target: str, context: Mapping[str, Any]) -> tuple[OutboundLeg | None, str]:
        s = self.session
        leg, code = await s.dial_status(self.account, target, handoff_headers(s.call_id, context))
        return leg, "" if leg is not None else failure_reason(code)

    async def drop(self, leg: OutboundLeg) -> None:
        await self.session.drop_leg(leg)

    async def whisper(self, leg: OutboundLeg, prompt: Prompt) -> None:
        files = await self.files([prompt])
        try:
            for path in files:
                await self.session.whisper(leg, path)
        finally:
            discard(files)

    async def connect(self, leg: OutboundLeg) -> None:
        await self.session.connect(leg)

    async def refer(self, target: str, context: Mapping[str, Any], timeout: float) -> bool:
        s = self.session
        return await s.refer(target, handoff_headers(s.call_id, context), timeout=timeout)
