"""The flow's Channel over a real SIP call (DTMF today; speech arrives with the ASR engines).

Prompts are files from the shared prompt cache: static text was rendered when the flow loaded,
dynamic text is rendered in a subprocess now. DTMF typed while a prompt plays cuts it (barge-in)
and stays buffered for the next `listen` (type-ahead), as callers expect from any IVR.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.acd.client import AcdEvent
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

REFER_TIMEOUT = 25.0
"""How long the caller's phone may take to report the agent's answer (a ring + set-up)."""
CALLBACK_OFFER = "To keep your place and be called back, press {key}."
SPOKEN_KEYS = {"*": "star", "#": "pound"}
CALLBACK_CONFIRM = "You keep your place in the queue. We will call you back. Goodbye."


def failure_reason(code: int) -> str:
    """An agent leg's final status as the ACD's reason: busy and reject put the agent back to
    ready; no answer (timeout, 408/480, unreachable) puts them away, as at an empty desk."""
    if code in (486, 600):
        return "busy"
    if 400 <= code < 700 and code not in (404, 408, 480, 487, 503):
        return "reject"
    return "no_answer"


def handoff_headers(call_id: str, context: Any) -> dict[str, str]:
    """User-to-User (RFC 7433) carries the context id; X-IVR-* carry the values (masked)."""
    headers = {"User-to-User": f"{call_id.encode().hex()};encoding=hex;purpose=call-context",
               "X-IVR-Call-Id": call_id}
    for name, value in dict(context).items():
        if value is not None:
            headers[f"X-IVR-{name.replace('.', '-').replace('_', '-').title()}"] = str(value)[:200]
    return headers


@dataclass
class SipChannel(Channel):
    session: CallSession
    cache: PromptCache
    account: Any
    recordings: Path
    beep: Path | None = None
    acd: Any = None
    """`ivr.acd.client.AcdClient` of the worker, None when no bus is configured."""
    handoff: Callable[[], dict[str, Any]] | None = None
    front: str = "127.0.0.1:5060"
    audio_dir: str = "audio"
    acd_calls: int = 0

    @property
    def speech_available(self) -> bool:
        return self.session.speech is not None

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
        if self.acd is None:
            return QueueResult("error", detail="no agent queue service is connected to this worker")
        s = self.session
        info = self.handoff() if self.handoff else {}
        caller = {k: s.info.get(k) for k in ("number", "name", "dialed")}
        hold = self._hold()
        callback_key = (request.callback or {}).get("dtmf")
        callback_after = float((request.callback or {}).get("offer_after", 0) or 0)
        started = time.monotonic()
        legs: dict[str, asyncio.Task[Any]] = {}
        answered: dict[str, Any] = {}
        announce = dict(request.announce or {})
        self.acd_calls += 1
        try:
            if hold:
                s.start_hold(hold)
            events = self.acd.enqueue(
                s.call_id, request.name, priority=request.priority, skills=dict(request.skills),
                max_wait=request.max_wait, announce_every=announce.get("every"),
                caller=caller, flow=info.get("flow"), path=info.get("path", ()),
                variables=info.get("variables"), transcript=info.get("transcript", ()),
                context=dict(request.context), sensitive=info.get("sensitive", ()))
            offered = not callback_key

            def wake() -> float | None:
                """Seconds until the callback is offered (None: nothing to wake up for)."""
                return None if offered else max(0.0, callback_after - (time.monotonic() - started))

            async for ev in self._with_hangup(events, wake):
                if not offered and time.monotonic() - started >= callback_after:
                    offered = True
                    await self._offer_callback(str(callback_key), hold)
                if ev.kind == "position" and (announce.get("position") or announce.get("wait_time")):
                    await self._announce(ev.data, announce, hold)
                elif ev.kind == "offer" and ev.agent and request.mode == "refer":
                    if await self._refer(ev.agent, ev.agent_uri, ev.attempt, request, hold):
                        return QueueResult("connected", agent=ev.agent)
                elif ev.kind == "offer" and ev.agent:
                    legs[ev.agent] = asyncio.ensure_future(
                        self._ring(ev.agent, ev.agent_uri, ev.attempt, request, answered))
                elif ev.kind == "cancel" and ev.agent in legs:
                    legs.pop(ev.agent).cancel()
                elif ev.kind == "connected" and ev.agent:
                    leg = answered.pop(ev.agent, None)
                    if leg is None and ev.agent in legs:
                        await legs[ev.agent]
                        leg = answered.pop(ev.agent, None)
                    for other in answered.values():
                        await s.drop_leg(other)
                    if leg is None:
                        return QueueResult("error", agent=ev.agent, detail="agent leg lost")
                    s.stop_hold()
                    if request.whisper:
                        await s.whisper(leg, str(await self.cache.render(request.whisper)))
                    await s.connect(leg)
                    self.acd.call_ended(s.call_id)
                    return QueueResult("connected", agent=ev.agent)
                elif ev.kind in ("timeout", "error"):
                    return QueueResult(ev.kind, detail=str(ev.data.get("reason", "")))
                elif ev.kind == "callback":
                    s.stop_hold()
                    await self.play([Prompt(text=CALLBACK_CONFIRM)], barge_in=False)
                    return QueueResult("callback")
                elif ev.kind == "digit":
                    if (callback_key and callback_key in s.digits
                            and time.monotonic() - started >= callback_after):
                        # the caller keeps the place and may hang up; the ACD calls back the
                        # contact they called from (their number for the records)
                        self.acd.callback(s.call_id, str(s.info.get("number", "")),
                                          uri=str(s.info.get("contact") or "") or None)
                    s.digits.clear()  # other keys mean nothing while waiting
            return QueueResult("error", detail="the queue service ended the wait")
        except CallerHangup:
            self.acd.caller_gone(s.call_id)
            raise
        finally:
            for task in legs.values():
                task.cancel()
            s.stop_hold()

    async def _with_hangup(self, events: Any,
                           wake: Callable[[], float | None] = lambda: None) -> Any:
        """ACD events until the caller hangs up (then CallerHangup); a key press yields a
        `digit` event at once (the callback key must not wait for the next ACD message), and
        `wake()` seconds without either yield a `tick`.

        The pending `__anext__` is never cancelled for a digit: cancelling it would close the
        client's generator (and its reply queue) mid-wait."""
        s = self.session
        it = events.__aiter__()
        gone = asyncio.ensure_future(s.gone.wait())
        nxt: asyncio.Future[Any] | None = None
        try:
            while True:
                if nxt is None:
                    nxt = asyncio.ensure_future(it.__anext__())
                if not s.digits:
                    s.digit_event.clear()
                digit = asyncio.ensure_future(s.digit_event.wait())
                try:
                    await asyncio.wait([nxt, gone, digit], timeout=wake(),
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    digit.cancel()
                if nxt.done():
                    done, nxt = nxt, None
                    try:
                        ev = done.result()
                    except StopAsyncIteration:
                        return
                    yield ev
                elif gone.done():
                    raise CallerHangup()
                elif s.digits:
                    yield AcdEvent("digit", s.call_id)
                else:
                    yield AcdEvent("tick", s.call_id)
        finally:
            gone.cancel()
            if nxt is not None:
                nxt.cancel()

    async def _offer_callback(self, key: str, hold: str | None) -> None:
        """Tell the waiting caller about the callback key (once, when `offer_after` is reached);
        a key pressed over it stays buffered for the wait loop."""
        self.session.stop_hold()
        await self.play([Prompt(text=CALLBACK_OFFER.format(key=SPOKEN_KEYS.get(key, key)))])
        if hold:
            self.session.start_hold(hold)

    def _hold(self) -> str | None:
        path = Path(self.audio_dir) / "hold.wav"
        return str(self.cache.prepare_audio(path)) if path.is_file() else None

    async def _announce(self, data: dict[str, Any], announce: dict[str, Any], hold: str | None) -> None:
        parts = []
        if announce.get("position") and data.get("position"):
            parts.append(f"You are number {int(data['position'])} in the queue.")
        if announce.get("wait_time") and data.get("eta_s") is not None:
            minutes = max(1, round(float(data["eta_s"]) / 60))
            parts.append(f"Your expected wait is about {minutes} minute{'s' * (minutes != 1)}.")
        if not parts:
            return
        self.session.stop_hold()
        await self.play([Prompt(text=" ".join(parts))], barge_in=False)
        if hold:
            self.session.start_hold(hold)

    async def _ring(self, agent: str, uri: str | None, attempt: int, request: QueueRequest,
                    answered: dict[str, Any]) -> None:
        """Call one offered agent with the handoff headers; report how it went."""
        assert self.acd is not None
        s = self.session
        target = uri or f"sip:{agent}@{self.front}"
        headers = handoff_headers(s.call_id, request.context)
        leg, code = await s.dial_status(self.account, target, headers)
        if leg is None:
            if not s.gone.is_set():
                self.acd.agent_failed(s.call_id, agent, attempt, failure_reason(code))
            return
        answered[agent] = leg
        self.acd.agent_answered(s.call_id, agent, attempt)

    async def _refer(self, agent: str, uri: str | None, attempt: int, request: QueueRequest,
                     hold: str | None) -> bool:
        """`mode: refer`: send the caller to the agent's phone with the context headers.

        The agent counts as answering when the caller's side reports the new call's 2xx (the
        REFER's final NOTIFY); the IVR then leaves the call, so it cannot see the talk time: the
        agent goes to wrap-up at once. A refused or failed REFER puts the caller back on hold
        with their place kept, and the ACD offers the next agent.
        """
        assert self.acd is not None
        s = self.session
        target = uri or f"sip:{agent}@{self.front}"
        s.stop_hold()
        ok = await s.refer(target, handoff_headers(s.call_id, request.context),
                           timeout=REFER_TIMEOUT)
        if not ok:
            self.acd.agent_failed(s.call_id, agent, attempt, "reject")
            if hold and not s.gone.is_set():
                s.start_hold(hold)
            return False
        self.acd.agent_answered(s.call_id, agent, attempt)
        self.acd.call_ended(s.call_id)
        return True

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
