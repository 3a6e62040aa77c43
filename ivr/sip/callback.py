"""A queued callback, dialled by whichever worker takes the ACD's offer: the agent first, then
the caller.

Agent first because the ACD reserved that agent for this callback (they ring now and must answer
within the queue's ring timeout); the agent then hears who is being called back while the worker
dials the caller's contact, and the two legs are bridged. The job reports to the ACD with this
worker's reply topic: `agent_answered` / `agent_failed`, then `call_ended` when the talk is over
(the agent goes to wrap-up). Every leg and player is counted in the worker's registry and hung up
and awaited before `run` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ivr import log as logs
from ivr import tracing
from ivr.acd.client import AcdClient, AcdEvent
from ivr.sip.legs import OutboundLeg, failure_reason, forget_leg, handoff_headers, start_leg
from ivr.sip.media import MediaRegistry, first_of, play_once
from ivr.speech.tts import PromptCache, TtsError

log = logging.getLogger("ivr.sip.callback")

Emit = Callable[..., None]
"""`Worker.emit(call_id, kind, **data)`: an event for the CDRs, through the worker's outbox."""

AGENT_RING = 20.0
CALLER_RING = 30.0
DECISION_WAIT = 10.0


@dataclass
class CallbackJob:
    loop: asyncio.AbstractEventLoop
    registry: MediaRegistry
    account: Any
    acd: AcdClient
    cache: PromptCache
    offer: AcdEvent
    front: str
    legs: list[OutboundLeg] = field(default_factory=list)
    last_code: int = 0
    """The final status of the last leg that failed (for the ACD's failure reason)."""

    @property
    def number(self) -> str:
        return str(self.offer.data.get("callback") or "")

    def caller_uri(self) -> str | None:
        """The contact the caller called from; else their number at the front (a registered
        phone, or a route the front knows)."""
        uri = self.offer.data.get("callback_uri")
        if uri:
            return str(uri)
        if self.number.startswith("sip:"):
            return self.number
        return f"sip:{self.number}@{self.front}" if self.number else None

    @property
    def cdr_id(self) -> str:
        """The callback is a call of its own in the CDRs (the queued call's events are the first
        worker's, and event keys are per call id + sequence)."""
        return f"{self.offer.call_id}-callback-{self.offer.attempt}"

    async def run_recorded(self, emit: Emit) -> str:
        """`run` between the callback's own call.start and call.end events; never raises."""
        offer = self.offer
        logs.call_id.set(offer.call_id)
        emit(self.cdr_id, "call.start", caller=offer.data.get("callback"), dialed=offer.agent,
             callback_of=offer.call_id)
        outcome = "error"
        try:
            outcome = await self.run()
        except Exception:
            log.exception("callback failed")
        finally:
            emit(self.cdr_id, "call.end", reason=outcome, hung_up_by="ivr",
                 end={"kind": "callback", "queue": offer.context.get("queue")})
        return outcome

    async def run(self) -> str:
        """Dial, bridge, report; the outcome (for the log and the CDR event)."""
        ev = self.offer
        call_id, agent, attempt = ev.call_id, ev.agent or "", ev.attempt
        events = self.acd.listen(call_id)
        try:
            target = ev.agent_uri or f"sip:{agent}@{self.front}"
            context = dict(ev.context.get("context") or {})
            headers = {**handoff_headers(call_id, context), "X-IVR-Callback": self.number}
            with tracing.span("agent leg", agent=agent, attempt=attempt):
                agent_leg = await self._dial(target, headers, AGENT_RING)
            if agent_leg is None:
                self.acd.agent_failed(call_id, agent, attempt, failure_reason(self.last_code))
                return "agent_no_answer"
            self.acd.agent_answered(call_id, agent, attempt)
            decision = await self._decision(events)
            if decision is None or decision.kind != "connected":
                return "taken"  # another answer won (or the ACD is away): not ours to bridge
            await self._say(agent_leg, f"Callback. Calling the customer at {self.number} now.")
            uri = self.caller_uri()
            with tracing.span("caller leg"):
                caller_leg = await self._dial(uri, {"X-IVR-Call-Id": call_id}, CALLER_RING) \
                    if uri and not agent_leg.gone.is_set() else None
            if caller_leg is None:
                if not agent_leg.gone.is_set():
                    await self._say(agent_leg, "The customer did not answer.")
                self.acd.call_ended(call_id, "callback_unanswered")
                return "caller_no_answer"
            if agent_leg.aud is not None and caller_leg.aud is not None:
                agent_leg.aud.startTransmit(caller_leg.aud)
                caller_leg.aud.startTransmit(agent_leg.aud)
                await first_of(agent_leg.gone, caller_leg.gone)
            self.acd.call_ended(call_id)
            return "connected"
        finally:
            await self._hangup_all()
            self.acd.forget(call_id)

    async def _decision(self, events: asyncio.Queue[AcdEvent]) -> AcdEvent | None:
        """The ACD's answer to our `agent_answered`: connected (ours) or cancel (taken)."""
        loop = self.loop
        deadline = loop.time() + DECISION_WAIT
        while (left := deadline - loop.time()) > 0:
            try:
                ev = await asyncio.wait_for(events.get(), left)
            except asyncio.TimeoutError:
                return None
            if ev.kind in ("connected", "cancel", "error"):
                return ev
        return None

    async def _dial(self, target: str, headers: dict[str, str], ring: float) -> OutboundLeg | None:
        leg = start_leg(self.loop, self.account, self.registry, self.legs, target, headers)
        if leg is None:
            return None
        await first_of(leg.media_ready, leg.gone, timeout=ring)
        if leg.media_ready.is_set() and not leg.gone.is_set():
            return leg
        self.last_code = leg.end_code if leg.gone.is_set() else 408
        leg.hangup()
        return None

    async def _say(self, leg: OutboundLeg, text: str) -> None:
        try:
            path = await self.cache.render(text)
        except TtsError as exc:
            log.error("callback announcement unavailable: %s", exc)
            return
        await play_once(self.loop, self.registry, leg, str(path))

    def _forget(self, leg: OutboundLeg) -> None:
        forget_leg(self.registry, self.legs, leg)

    async def _hangup_all(self) -> None:
        for leg in list(self.legs):
            leg.hangup()
        for leg in list(self.legs):
            await leg.closed(3.0)
            with contextlib.suppress(ValueError):
                self._forget(leg)
