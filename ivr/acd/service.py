"""The ACD as a bus service inside the supervisor (protocol: `ivr.acd.protocol`).

One asyncio loop owns the engine: requests from workers and agents' state changes arrive over
MQTT (persistent session, QoS 1), are applied to the engine, and the resulting decisions leave
through the supervisor's durable outbox, each with an idempotency key. A half-second tick ends
wrap-ups, expires rings and waits, dispatches, and sends position updates.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

from ivr import log as logs
from ivr import tracing
from ivr.acd import protocol as p
from ivr.acd.counts import QueueCounts
from ivr.acd.engine import Engine
from ivr.acd.model import (
    Action,
    AgentChanged,
    CallbackScheduled,
    CallClosed,
    Cancel,
    Connected,
    Error,
    Offer,
    Queued,
    Timeout,
)
from ivr.acd.store import AcdStore
from ivr.bus.auth import ANONYMOUS, BusAuth
from ivr.bus.drain import every_message
from ivr.bus.outbox import Outbox, send_forever
from ivr.config import EngineConfig
from ivr.lang.masking import mask
from ivr.store.backend import Backend, StoreError

log = logging.getLogger("ivr.acd")


def _eta(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 1)


def arrival(data: dict[str, Any], now: float | None = None) -> float | None:
    """When the caller joined the queue, on this ACD's clock. A worker sends `since` (its
    first enqueue) and `at` (this request), both by its own clock, which may be off: only their
    difference, the time already waited, is used. Without `at` (an older worker), `since` as
    is, but never in the future."""
    if not data.get("since"):
        return None
    now = time.time() if now is None else now
    since = float(data["since"])
    if data.get("at"):
        return now - max(0.0, float(data["at"]) - since)
    return min(since, now)


def _masked(values: dict[str, Any], sensitive: list[str]) -> dict[str, Any]:
    """Mask again what the worker marked sensitive (a dict or list value leaf by leaf)."""
    out = {}
    for k, v in values.items():
        hidden = k in sensitive or k.split(".")[0] in sensitive
        out[k] = _hide(v) if hidden else v
    return out


def _hide(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _hide(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide(v) for v in value]
    return value if value is None or str(value).startswith("****") else mask(value)


class AcdService:
    def __init__(self, engine: Engine, store: AcdStore, outbox: Outbox, broker_url: str, *,
                 client_id: str = "ivr-acd", position_every: float = 15.0,
                 tick_every: float = 0.5, auth: BusAuth = ANONYMOUS,
                 sender_id: str | None = None, lost_after: float = p.LOST_AFTER) -> None:
        self.engine = engine
        self.store = store
        self.outbox = outbox
        self.broker_url = broker_url
        self.auth = auth
        self.client_id = client_id
        self.sender_id = sender_id or client_id + "-out"
        """The outbox sender's own session: per node even when `client_id` is the site's."""
        self.may_act: Callable[[], bool] = lambda: True
        """False once a failover lease lapsed (ivr/acd/failover.py): input is dropped (the
        next active gets it from the broker) and the tick does nothing."""
        self.position_every = position_every
        self.tick_every = tick_every
        self._reply: dict[str, str] = {c.call_id: c.reply_to for c in engine.waiting.values()
                                       if c.reply_to}
        self._every: dict[str, float] = {}
        self._last_position: dict[str, float] = {}
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._traces: dict[str, dict[str, str]] = {}
        """Each live call's trace context, from its last request: the parent of its offers."""
        self.connected = asyncio.Event()
        self.observers: list[Callable[[list[Action]], None]] = []
        """Called with every batch of decisions after it was sent (the desktop's live feed)."""
        self.counts = QueueCounts(engine)
        self.lost_after = lost_after
        """A call with an agent that its worker has not said it holds for this long (while the
        bus was up) is over: its end report was lost, or its worker with it."""
        now = time.monotonic()
        self._held: dict[str, float] = dict.fromkeys(engine.active, now)
        self._bus_up: float | None = None

    @classmethod
    def create(cls, config: EngineConfig, store: Path | Backend, outbox_path: Path,
               broker_url: str, **kw: Any) -> AcdService:
        """`store`: the ACD's database (a SQLite path, or a backend from ivr/store/open.py)."""
        acd_store = AcdStore(store)
        engine = Engine.from_config(config, store=acd_store, stale_after=120.0)
        return cls(engine, acd_store, Outbox(outbox_path), broker_url, **kw)

    def close(self) -> None:
        self.outbox.close()
        self.store.close()

    # -- loops -------------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(send_forever(self.outbox, self.broker_url, self.sender_id,
                                                  self.auth)),
                 loop.create_task(self._consume()), loop.create_task(self._ticker())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _ticker(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # a bad state must not stop the ACD
                log.exception("ACD tick failed")
            await asyncio.sleep(self.tick_every)

    async def _consume(self) -> None:
        delay = 0.2
        while True:
            try:
                async with self.auth.client(self.broker_url, identifier=self.client_id,
                                            clean_session=False, timeout=5) as client:
                    await client.subscribe(p.REQUEST_TOPIC, qos=1)
                    await client.subscribe(p.AGENT_STATE_SUB, qos=1)
                    self.connected.set()
                    self._bus_up = time.monotonic()
                    delay = 0.2
                    async for message in every_message(client):
                        self.on_message(str(message.topic), bytes(message.payload))
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self._bus_up = None
                log.warning("ACD: bus unavailable (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- input -------------------------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes) -> None:
        if not self.may_act():
            log.warning("ACD: not active (lease lapsed); %s left to the active ACD", topic)
            return
        try:
            data = json.loads(payload)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            if topic.startswith("ivr/agents/") and topic.endswith("/state"):
                self.agent_message(topic.split("/")[2], data)
            else:
                self.request(data)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("ACD: bad message on %s: %s", topic, exc)
        except StoreError as exc:  # the database stayed away past store.retry: keep serving
            log.error("ACD: message on %s not applied, store unavailable: %s", topic, exc)

    def agent_message(self, name: str, data: dict[str, Any]) -> None:
        action = str(data.get("state") or data.get("action") or "")
        try:
            if name not in self.engine.agents and action in ("login", "ready"):
                self.add_agent(name, data)
            self.apply(self.engine.agent_action(name, action))
        except (KeyError, ValueError) as exc:
            log.warning("ACD: agent %s %s refused: %s", name, action, exc)
        self.tick()

    def add_agent(self, name: str, data: dict[str, Any]) -> None:
        from ivr.acd.model import Agent

        queues = data.get("queues") or []
        if not queues:
            raise KeyError(f"unknown agent {name}; a new agent needs its queues")
        self.engine.add_agent(Agent(name=name, uri=data.get("uri"), queues=list(queues),
                                    skills={str(k): int(v) for k, v in
                                            (data.get("skills") or {}).items()}))

    def agent_action(self, name: str, action: str) -> list[Action]:
        """For HTTP: raises KeyError (unknown agent) or StateError (not allowed now)."""
        actions = self.engine.agent_action(name, action)
        self.apply(actions)
        self.tick()
        return actions

    def reject(self, call_id: str, agent: str) -> None:
        """The agent declined the offer on their desktop: their leg is cancelled and the call
        keeps its place for the next agent (as a rejected INVITE would)."""
        call = self.engine.waiting.get(call_id)
        actions: list[Action] = [Cancel(call_id, agent, "rejected")]
        actions += self.engine.failed(call_id, agent, call.attempt if call else None, "reject")
        self.apply(actions)
        self.tick()

    def worker_lost(self, bus_id: str) -> int:
        """A worker died (its bus will): its callers, waiting or with an agent, are gone with it
        (abandoned, or ended and the agent in wrap-up), so no agent is offered a call no one
        can bridge. Callbacks are the ACD's own and stay. Returns how many calls went."""
        reply = p.reply_topic(bus_id)
        e = self.engine
        calls = [c for c in (*e.waiting.values(), *e.active.values())
                 if (c.reply_to or self._reply.get(c.call_id)) == reply and not c.callback]
        for call in calls:
            self.apply(e.caller_gone(call.call_id))
        if calls:
            self.tick()
        return len(calls)

    def _holding(self, reply_to: str, calls: list[str]) -> None:
        """A worker's roll call (every `resync_every`): the calls it still holds with us. One of
        its calls with an agent that it no longer names ended without its end report reaching
        us (the requests of one worker arrive in the order it wrote them)."""
        now = time.monotonic()
        held = set(calls)
        for call_id in held & set(self.engine.active):
            self._held[call_id] = now
        gone = [c.call_id for c in self.engine.active.values()
                if (c.reply_to or self._reply.get(c.call_id)) == reply_to
                and c.call_id not in held]
        for call_id in gone:
            log.warning("call %s with agent %s: its worker no longer holds it; ended",
                        call_id, self.engine.active[call_id].agent)
            self.apply(self.engine.ended(call_id, "lost"))
            self._held.pop(call_id, None)

    def _lost_active(self) -> None:
        """Calls with an agent whose worker has not named them for `lost_after` while the bus
        was up (the worker died unseen, e.g. between two ACDs): ended, the agent freed."""
        if self._bus_up is None:
            return
        now = time.monotonic()
        for call_id in list(self.engine.active):
            since = max(self._held.setdefault(call_id, now), self._bus_up)
            if now - since > self.lost_after:
                log.warning("call %s with agent %s: no word from its worker for %.0f s; ended",
                            call_id, self.engine.active[call_id].agent, now - since)
                self.apply(self.engine.ended(call_id, "lost"))
                self._held.pop(call_id, None)

    def accept(self, call_id: str, agent: str) -> None:
        """The agent took the offer on their desktop (StateError when it is not theirs now)."""
        self.apply(self.engine.accept(call_id, agent))

    def request(self, data: dict[str, Any]) -> None:
        """One worker request, in its call's log context and trace (its `traceparent`)."""
        call_id = str(data.get("call_id", "-"))
        token = logs.call_id.set(call_id)
        if data.get("traceparent"):
            self._traces[call_id] = {k: str(data[k]) for k in ("traceparent", "tracestate")
                                     if data.get(k)}
        try:
            with tracing.remote(data), tracing.span(f"acd {data.get('op')}", call_id=call_id,
                                                     queue=str(data["queue"]) if data.get("queue") else None):
                self._request(data)
        finally:
            logs.call_id.reset(token)

    def _request(self, data: dict[str, Any]) -> None:
        key = data.get("key")
        if key:
            if key in self._seen:
                return
            self._seen[key] = None
            while len(self._seen) > 20000:
                self._seen.popitem(last=False)
        op, call_id = str(data["op"]), str(data["call_id"])
        reply_to = data.get("reply_to")
        if reply_to and not p.is_reply_topic(str(reply_to)):
            # the ACD may write any ivr/ topic: a request must not make it post an agent's offer
            raise ValueError(f"reply_to {str(reply_to)[:80]!r} is not an ivr/acd/reply/<node> topic")
        if op == "holding":
            self._holding(str(reply_to or ""), [str(c) for c in data.get("calls") or []])
            return
        if call_id in self.engine.active:
            self._held[call_id] = time.monotonic()
        if reply_to:
            self._reply[call_id] = str(reply_to)
            call = self.engine.waiting.get(call_id) or self.engine.active.get(call_id)
            if call is not None:
                call.reply_to = str(reply_to)
        e = self.engine
        if op == "enqueue":
            if call_id not in e.waiting and call_id not in e.active:
                self.counts.entered(str(data["queue"]))
            sensitive = [str(s) for s in data.get("sensitive") or []]
            handoff = {
                "caller": data.get("caller"), "flow": data.get("flow"),
                "path": list(data.get("path") or []),
                "variables": _masked(dict(data.get("variables") or {}), sensitive),
                "transcript": list(data.get("transcript") or []),
                "context": _masked(dict(data.get("context") or {}), sensitive),
            }
            if data.get("announce_every"):
                self._every[call_id] = float(data["announce_every"])
            actions = e.enqueue(
                call_id, str(data["queue"]), priority=int(data.get("priority") or 0),
                skills={str(k): int(v) for k, v in (data.get("skills") or {}).items()},
                max_wait=float(data["max_wait"]) if data.get("max_wait") else None,
                reply_to=reply_to, handoff=handoff,
                since=arrival(data))
            if call_id in e.waiting:
                self.store.log(call_id, queue=data["queue"], flow=data.get("flow"),
                               caller=(data.get("caller") or {}).get("number")
                               if isinstance(data.get("caller"), dict) else data.get("caller"),
                               priority=int(data.get("priority") or 0),
                               enqueued_at=e.waiting[call_id].enqueued_at,
                               context=e.context(call_id))
            elif any(isinstance(a, Timeout) for a in actions):
                self.store.log(call_id, queue=data["queue"], flow=data.get("flow"),
                               enqueued_at=time.time(), context=handoff)
        elif op == "agent_answered":
            actions = e.answered(call_id, str(data["agent"]), int(data.get("attempt") or 0))
        elif op == "agent_failed":
            attempt = data.get("attempt")
            actions = e.failed(call_id, str(data["agent"]),
                               int(attempt) if attempt is not None else None,
                               str(data.get("reason") or "no_answer"))
        elif op == "caller_gone":
            actions = e.caller_gone(call_id)
        elif op == "call_ended":
            actions = e.ended(call_id, str(data.get("outcome") or "answered"))
        elif op == "callback":
            actions = e.to_callback(call_id, str(data.get("number") or ""))
            call = e.waiting.get(call_id)
            if call is not None and data.get("uri"):
                call.handoff["callback_uri"] = str(data["uri"])  # kept with the call (SQLite)
                self.store.save_call(call)
        else:
            actions = [Error(call_id, f"unknown op {op!r}")]
        self.apply(actions)
        self.tick()

    # -- output ------------------------------------------------------------------------------
    def tick(self) -> None:
        if not self.may_act():
            return
        self.apply(self.engine.tick())
        self._lost_active()
        now = time.time()
        for call in list(self.engine.waiting.values()):
            if call.callback or call.ringing:
                continue
            every = self._every.get(call.call_id, self.position_every)
            last = self._last_position.setdefault(call.call_id, now)
            if now - last >= every:
                self._last_position[call.call_id] = now
                pos = self.engine.position(call.call_id)
                if pos is not None:
                    self._reply_msg(call.call_id, "position", position=pos[0], eta_s=_eta(pos[1]))

    def _put(self, topic: str, call_id: str, payload: dict[str, Any]) -> None:
        key = f"{call_id}:{self.store.next_seq()}"
        self.outbox.put(topic, {**payload, "key": key}, key=key)

    def _reply_msg(self, call_id: str, kind: str, **data: Any) -> None:
        topic = self._reply.get(call_id)
        if topic:
            self._put(topic, call_id, {"kind": kind, "call_id": call_id, "at": time.time(), **data})

    def apply(self, actions: list[Action]) -> None:
        e = self.engine
        self.counts.apply(actions)
        for a in actions:
            if isinstance(a, Queued):
                self._reply_msg(a.call_id, "queued", position=a.position, eta_s=_eta(a.eta))
            elif isinstance(a, Offer):
                self._offer(a)
            elif isinstance(a, Cancel):
                self._reply_msg(a.call_id, "cancel", agent=a.agent, reason=a.reason)
                self._put(p.agent_topic(a.agent, "cancel"), a.call_id,
                          {"call_id": a.call_id, "reason": a.reason, "at": time.time()})
            elif isinstance(a, Connected):
                self._held[a.call_id] = time.monotonic()
                self._reply_msg(a.call_id, "connected", agent=a.agent, wait_s=round(a.waited, 1))
                self.store.log(a.call_id, answered_at=time.time(), agent=a.agent,
                               context=e.context(a.call_id))
            elif isinstance(a, Timeout):
                self._reply_msg(a.call_id, "timeout", reason=a.reason, overflow=a.overflow)
            elif isinstance(a, CallbackScheduled):
                self._reply_msg(a.call_id, "callback", position=a.position)
                self.store.log(a.call_id, callback=1, context=e.context(a.call_id))
            elif isinstance(a, Error):
                self._reply_msg(a.call_id, "error", message=a.message)
            elif isinstance(a, AgentChanged):
                self._put(p.agent_topic(a.agent, "status"), f"agent-{a.agent}",
                          {"agent": a.agent, "state": a.state, "call_id": a.call_id,
                           "at": time.time()})
            elif isinstance(a, CallClosed):
                self._held.pop(a.call_id, None)
                self.store.log(a.call_id, outcome=a.outcome, ended_at=time.time(), agent=a.agent)
                self._reply.pop(a.call_id, None)
                self._traces.pop(a.call_id, None)
                self._every.pop(a.call_id, None)
                self._last_position.pop(a.call_id, None)
        if actions:
            for observe in self.observers:
                try:
                    observe(actions)
                except Exception:  # a page's feed must never stop the ACD
                    log.exception("ACD observer failed")


    def _offer(self, a: Offer) -> None:
        """Offer the call to an agent (the worker rings them), a span of the call's trace:
        the ACD's choice, whether a request or the tick made it."""
        e = self.engine
        ctx = e.context(a.call_id) or {"call_id": a.call_id}
        with tracing.remote(self._traces.get(a.call_id, {})), \
                tracing.span("acd offer", call_id=a.call_id, agent=a.agent, attempt=a.attempt):
            agent = e.agents[a.agent]
            offer = {"agent": {"name": agent.name, "uri": agent.uri}, "attempt": a.attempt,
                     "context": ctx}
            if a.callback:
                call = e.waiting.get(a.call_id)
                uri = call.handoff.get("callback_uri") if call is not None else None
                self._put(p.CALLBACK_TOPIC, a.call_id,
                          {"kind": "offer", "call_id": a.call_id, "callback": ctx["callback"],
                           "callback_uri": uri, "at": time.time(), **offer})
            else:
                self._reply_msg(a.call_id, "offer", **offer)
            self._put(p.agent_topic(a.agent, "offer"), a.call_id,
                      {**ctx, "agent": a.agent, "attempt": a.attempt, "at": time.time()})
            self.store.log(a.call_id, offered_at=time.time())
            self.store.bump_attempts(a.call_id)
            self.store.add_offer(a.call_id, a.agent)

    # -- views -------------------------------------------------------------------------------
    def context(self, call_id: str) -> dict[str, Any] | None:
        live = self.engine.context(call_id)
        if live is not None:
            return live
        return self.store.logged_context(call_id)

    def agent_of(self, call_id: str) -> str | None:
        """The agent who answered the call (live or logged), else None."""
        call = self.engine.active.get(call_id)
        if call is not None and call.agent:
            return call.agent
        return self.store.agent_of(call_id)

    def offered_to(self, call_id: str, agent: str) -> bool:
        """Whether the call was ever offered to `agent` (an agent's token may read its context)."""
        return self.store.was_offered(call_id, agent)

    async def wait_sent(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.outbox.drained(), timeout)
