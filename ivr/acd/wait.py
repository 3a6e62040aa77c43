"""The caller's half of a queue wait, in one place: hold music, position and wait announcements,
the callback offer and its key, ringing agents (several at once for ring_all), the whisper, and
the hand-over (bridge or REFER).

The ACD in the supervisor decides who waits where and which agent rings; `QueueWait` carries its
decisions out on one call and holds no queue state. It acts on the call only through
`CallControl` (the SIP call: `ivr.sip.control`; the scripted caller of `ivr test`:
`ivr.flow.scripted`; fakes in unit tests), so every branch of the wait runs without a network.
The words it says are the queue node's (`ivr.flow.nodes.queue`), which puts them in the prompt
catalogue so they are rendered when the flow loads, not while a caller waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from ivr import tracing
from ivr.acd.client import AcdEvent
from ivr.errors import CallerHangup
from ivr.lang import messages
from ivr.prompt import Prompt

REFER_TIMEOUT = 25.0
"""How long the caller's phone may take to report the agent's answer (a ring + set-up)."""
RING_STOP_BOUND = 2.0
"""How long the end of a wait waits for cancelled rings to hang up their legs."""


# -- what the queue node asks for ----------------------------------------------------------
@dataclass(frozen=True)
class Announcements:
    """What a waiting caller is told, every `every` seconds (the ACD's position updates)."""

    position: bool = False
    wait_time: bool = False
    every: float = 30.0


@dataclass(frozen=True)
class CallbackOffer:
    """After `offer_after` seconds of waiting, pressing `dtmf` keeps the place for a callback."""

    offer_after: float = 60.0
    dtmf: str = "1"


@dataclass(frozen=True)
class WaitWords:
    """The wait's sentences in the call's language, as the queue node words them (its message
    catalogue's templates): `position` takes `position`, `wait_time` takes `minutes`."""

    language: str = "en-US"
    position: str = ""
    wait_time: str = ""
    callback_offer: str = ""
    callback_confirm: str = ""

    def position_text(self, position: int) -> str:
        return messages.fill(self.position, position=position)

    def wait_time_text(self, minutes: int) -> str:
        return messages.fill(self.wait_time, minutes=minutes)

    def prompts(self, *texts: str) -> list[Prompt]:
        return [Prompt(text=t, language=self.language) for t in texts if t]


@dataclass(frozen=True)
class QueueRequest:
    name: str
    priority: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    announce: Announcements = field(default_factory=Announcements)
    max_wait: float | None = None
    callback: CallbackOffer | None = None
    mode: Literal["bridge", "refer"] = "bridge"
    whisper: str | None = None
    """Said to the agent alone before the caller is connected ("Gold customer, card services")."""
    words: WaitWords = field(default_factory=WaitWords)


@dataclass(frozen=True)
class QueueResult:
    """How waiting ended: an agent took the call, the wait ran out, or the queue failed."""

    status: Literal["connected", "timeout", "error", "callback"]
    agent: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Handoff:
    """Who waits and what the flow learned, for the agent (values already masked)."""

    caller: Mapping[str, Any] = field(default_factory=dict)
    """number, name, dialed"""
    contact: str | None = None
    """Where the caller called from: a callback dials it."""
    flow: str | None = None
    path: Sequence[str] = ()
    variables: Mapping[str, Any] = field(default_factory=dict)
    transcript: Sequence[Any] = ()
    sensitive: Sequence[str] = ()


# -- what the wait needs of the call and of the ACD ----------------------------------------
Leg = TypeVar("Leg")


class CallControl(Protocol[Leg]):
    """The caller's call as a queue wait drives it; `Leg` is an answered agent's call."""

    @property
    def call_id(self) -> str: ...

    @property
    def gone(self) -> bool:
        """The caller has hung up."""

    async def hung_up(self) -> None:
        """Returns once the caller has hung up."""

    async def key_pressed(self) -> None:
        """Returns once a key is buffered (at once if one is)."""

    def take_key(self, wanted: str) -> str | None:
        """The first buffered key in `wanted`, or None; other buffered keys are dropped, as keys
        mean nothing else while waiting."""

    async def play(self, prompts: Sequence[Prompt], *, barge_in: bool) -> None:
        """Play to the caller (hold music pauses meanwhile); CallerHangup once they are gone."""

    def hold(self, on: bool) -> None:
        """Hold music on or off."""

    async def dial(self, target: str, context: Mapping[str, Any]) -> tuple[Leg | None, str]:
        """Ring an agent with the handoff context: the answered leg, or None and the ACD's
        reason (busy, reject, no_answer). Cancelling it hangs the ring up."""

    async def drop(self, leg: Leg) -> None:
        """Hang up an answered agent who is not taking this caller."""

    async def whisper(self, leg: Leg, prompt: Prompt) -> None:
        """Play to the agent alone."""

    async def connect(self, leg: Leg) -> None:
        """Bridge the caller and the agent until either hangs up."""

    async def refer(self, target: str, context: Mapping[str, Any], timeout: float) -> bool:
        """Send the caller to `target`; True once the caller's side reports the answer."""


class AcdLink(Protocol):
    """The ACD as a worker reaches it (`ivr.acd.client.AcdClient`)."""

    def enqueue(self, call_id: str, queue: str, *, priority: int = 0,
                skills: dict[str, int] | None = None, max_wait: float | None = None,
                announce_every: float | None = None, caller: Any = None,
                flow: str | None = None, path: Sequence[str] = (),
                variables: dict[str, Any] | None = None, transcript: Sequence[Any] = (),
                context: dict[str, Any] | None = None, sensitive: Sequence[str] = (),
                ) -> AsyncIterator[AcdEvent]: ...

    def agent_answered(self, call_id: str, agent: str, attempt: int) -> None: ...

    def agent_failed(self, call_id: str, agent: str, attempt: int,
                     reason: str = "no_answer") -> None: ...

    def caller_gone(self, call_id: str) -> None: ...

    def call_ended(self, call_id: str, outcome: str | None = None) -> None: ...

    def callback(self, call_id: str, number: str, uri: str | None = None) -> None: ...


# -- the wait --------------------------------------------------------------------------------
class QueueWait(Generic[Leg]):
    """One caller's wait in one queue, from enqueue to an agent, a timeout or a callback."""

    def __init__(self, call: CallControl[Leg], acd: AcdLink, request: QueueRequest,
                 handoff: Handoff, *, front: str = "127.0.0.1:5060",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.call = call
        self.acd = acd
        self.request = request
        self.handoff = handoff
        self.front = front
        """Where an agent without a URI is reached (their phone registers at the front)."""
        self.clock = clock
        self._started = 0.0
        self._offered = request.callback is None
        self._rings: dict[str, asyncio.Task[None]] = {}
        """Agents ringing now, by name."""
        self._ring_tasks: set[asyncio.Task[None]] = set()
        """Every ring this wait started: cancelled and awaited (bounded) when it ends."""
        self._answered: dict[str, Leg] = {}

    async def run(self) -> QueueResult:
        """Wait for the outcome; CallerHangup (after telling the ACD) if the caller leaves."""
        with tracing.span("queue wait", queue=self.request.name, mode=self.request.mode):
            return await self._run()

    async def _run(self) -> QueueResult:
        call, request, h = self.call, self.request, self.handoff
        if call.gone:
            raise CallerHangup()
        self._started = self.clock()
        events = self.acd.enqueue(
            call.call_id, request.name, priority=request.priority, skills=dict(request.skills),
            max_wait=request.max_wait, announce_every=request.announce.every,
            caller=dict(h.caller), flow=h.flow, path=h.path, variables=dict(h.variables),
            transcript=h.transcript, context=dict(request.context), sensitive=h.sensitive)
        try:
            call.hold(True)
            async with contextlib.aclosing(self._events(events)) as stream:
                async for ev in stream:
                    result = await self._handle(ev)
                    if result is not None:
                        return result
            return QueueResult("error", detail="the queue service ended the wait")
        except CallerHangup:
            self.acd.caller_gone(call.call_id)
            raise
        finally:
            for task in self._ring_tasks:
                task.cancel()
            if self._ring_tasks:
                await asyncio.wait(self._ring_tasks, timeout=RING_STOP_BOUND)
            call.hold(False)

    async def _events(self, events: AsyncIterator[AcdEvent]) -> AsyncGenerator[AcdEvent, None]:
        """The ACD's events, with the caller's turn before each is handled: the callback offer
        when it is due and its key at once (control before data); a hangup ends the wait.

        The pending `__anext__` is never cancelled for a key: cancelling it would close the
        client's generator (and its reply queue) mid-wait."""
        call = self.call
        it = events.__aiter__()
        gone = asyncio.ensure_future(call.hung_up())
        nxt: asyncio.Future[AcdEvent] | None = None
        try:
            while True:
                if nxt is None:  # first, so the enqueue goes out before any offer is played
                    nxt = asyncio.ensure_future(it.__anext__())
                await self._caller_turn()
                key = asyncio.ensure_future(call.key_pressed())
                waits: list[asyncio.Future[Any]] = [nxt, gone, key]
                try:
                    await asyncio.wait(waits, timeout=self._until_offer(),
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    key.cancel()
                if nxt.done():
                    done, nxt = nxt, None
                    try:
                        ev = done.result()
                    except StopAsyncIteration:
                        return
                    yield ev
                elif gone.done():
                    raise CallerHangup()
        finally:
            gone.cancel()
            if nxt is not None:
                nxt.cancel()

    def _until_offer(self) -> float | None:
        """Seconds until the callback is offered (None: nothing to wake up for)."""
        offer = self.request.callback
        if offer is None or self._offered:
            return None
        return max(0.0, offer.offer_after - (self.clock() - self._started))

    async def _caller_turn(self) -> None:
        """Offer the callback once `offer_after` is reached (a key over the offer stays
        buffered); then its key, if pressed, turns the wait into a callback: the caller keeps
        the place and may hang up, and the ACD calls back the contact they called from."""
        offer, words = self.request.callback, self.request.words
        if offer is not None and not self._offered and \
                self.clock() - self._started >= offer.offer_after:
            self._offered = True
            await self.call.play(words.prompts(words.callback_offer), barge_in=True)
        wanted = offer.dtmf if offer is not None and self._offered else ""
        if self.call.take_key(wanted):
            h = self.handoff
            self.acd.callback(self.call.call_id, str(h.caller.get("number") or ""),
                              uri=h.contact or None)

    async def _handle(self, ev: AcdEvent) -> QueueResult | None:
        """Carry out one ACD event; the result once the wait is over."""
        call, request, agent = self.call, self.request, ev.agent
        if ev.kind == "position":
            await self._announce(ev.data)
        elif ev.kind == "offer" and agent and request.mode == "refer":
            if await self._refer(agent, ev.agent_uri, ev.attempt):
                return QueueResult("connected", agent=agent)
        elif ev.kind == "offer" and agent:
            task = asyncio.ensure_future(self._ring(agent, ev.agent_uri, ev.attempt))
            self._rings[agent] = task
            self._ring_tasks.add(task)
        elif ev.kind == "cancel" and agent is not None and agent in self._rings:
            self._rings.pop(agent).cancel()
        elif ev.kind == "connected" and agent:
            return await self._connect(agent)
        elif ev.kind in ("timeout", "error"):
            return QueueResult("timeout" if ev.kind == "timeout" else "error",
                               detail=str(ev.data.get("reason", "")))
        elif ev.kind == "callback":
            call.hold(False)
            await call.play(request.words.prompts(request.words.callback_confirm), barge_in=False)
            return QueueResult("callback")
        return None

    async def _announce(self, data: Mapping[str, Any]) -> None:
        announce, words = self.request.announce, self.request.words
        texts = []
        if announce.position and data.get("position"):
            texts.append(words.position_text(int(data["position"])))
        if announce.wait_time and data.get("eta_s") is not None:
            texts.append(words.wait_time_text(max(1, round(float(data["eta_s"]) / 60))))
        if texts:
            await self.call.play(words.prompts(*texts), barge_in=False)

    def _target(self, agent: str, uri: str | None) -> str:
        return uri or f"sip:{agent}@{self.front}"

    async def _ring(self, agent: str, uri: str | None, attempt: int) -> None:
        """Call one offered agent with the handoff context; report how it went."""
        call = self.call
        with tracing.span("agent leg", agent=agent, attempt=attempt):
            leg, reason = await call.dial(self._target(agent, uri), self.request.context)
        if leg is None:
            if not call.gone:
                self.acd.agent_failed(call.call_id, agent, attempt, reason)
            return
        self._answered[agent] = leg
        self.acd.agent_answered(call.call_id, agent, attempt)

    async def _connect(self, agent: str) -> QueueResult:
        """The ACD picked `agent`: hang up other answered agents, whisper, bridge."""
        call = self.call
        leg = self._answered.pop(agent, None)
        if leg is None and agent in self._rings:
            await self._rings[agent]
            leg = self._answered.pop(agent, None)
        for other in self._answered.values():
            await call.drop(other)
        if leg is None:
            return QueueResult("error", agent=agent, detail="agent leg lost")
        call.hold(False)
        if self.request.whisper:
            await call.whisper(leg, Prompt(text=self.request.whisper,
                                           language=self.request.words.language))
        await call.connect(leg)
        self.acd.call_ended(call.call_id)
        return QueueResult("connected", agent=agent)

    async def _refer(self, agent: str, uri: str | None, attempt: int) -> bool:
        """`mode: refer`: send the caller to the agent's phone with the context headers.

        The agent counts as answering when the caller's side reports the new call's 2xx (the
        REFER's final NOTIFY); the IVR then leaves the call, so it cannot see the talk time: the
        agent goes to wrap-up at once. A refused or failed REFER puts the caller back on hold
        with their place kept, and the ACD offers the next agent.
        """
        call = self.call
        call.hold(False)
        with tracing.span("agent leg", agent=agent, attempt=attempt, refer=True):
            referred = await call.refer(self._target(agent, uri), self.request.context,
                                        REFER_TIMEOUT)
        if not referred:
            self.acd.agent_failed(call.call_id, agent, attempt, "reject")
            if not call.gone:
                call.hold(True)
            return False
        self.acd.agent_answered(call.call_id, agent, attempt)
        self.acd.call_ended(call.call_id)
        return True
