"""The worker's side of the ACD protocol (`ivr.acd.protocol`).

    async with AcdClient(broker_url, worker.outbox, node=f"worker-{id}") as acd:
        async for ev in acd.enqueue(call_id, "general", priority=2, caller={...}, ...):
            if ev.kind == "offer":        # dial ev.agent_uri (or the agent's registered contact)
                ...                       # answered: acd.agent_answered(call_id, ev.agent, ev.attempt)
                                          # failed:   acd.agent_failed(call_id, ev.agent, ev.attempt, "busy")
            elif ev.kind == "cancel":     # stop ringing / hang up the leg to ev.agent
            elif ev.kind == "connected":  # bridge to ev.agent; hang up any other leg still ringing
            elif ev.kind == "timeout":    # ev.data["reason"], ev.data["overflow"] -> the node's on_timeout
            elif ev.kind == "position":   # announce ev.data["position"], ev.data["eta_s"]
        # the generator ends after connected, timeout, callback or error
        acd.caller_gone(call_id)  /  acd.call_ended(call_id)  /  acd.callback(call_id, number)

Requests go through the worker's durable outbox (the worker's `send_forever` delivers them);
replies arrive on `ivr/acd/reply/<node>` over a persistent MQTT session, so a broker restart
loses nothing, and duplicates are dropped by their `key`. While waiting, the client re-sends
`enqueue` (with the original `since`) every `resync_every` seconds: a restarted supervisor that
lost a waiting call takes it back at its old place.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from ivr import tracing
from ivr.acd import protocol as p
from ivr.bus.auth import ANONYMOUS, BusAuth
from ivr.bus.drain import every_message
from ivr.bus.outbox import Outbox, send_forever

log = logging.getLogger("ivr.acd.client")


@dataclass(frozen=True)
class AcdEvent:
    kind: str
    call_id: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def agent(self) -> str | None:
        agent = self.data.get("agent")
        if isinstance(agent, dict):
            return str(agent.get("name"))
        return None if agent is None else str(agent)

    @property
    def agent_uri(self) -> str | None:
        agent = self.data.get("agent")
        return agent.get("uri") if isinstance(agent, dict) else None

    @property
    def attempt(self) -> int:
        return int(self.data.get("attempt") or 0)

    @property
    def context(self) -> dict[str, Any]:
        ctx = self.data.get("context")
        return dict(ctx) if isinstance(ctx, dict) else {}


class AcdClient:
    def __init__(self, broker_url: str, outbox: Outbox, node: str, *, resync_every: float = 30.0,
                 own_sender: bool = False, auth: BusAuth = ANONYMOUS,
                 clock: Callable[[], float] = time.time) -> None:
        self.broker_url = broker_url
        self.auth = auth
        self.outbox = outbox
        self.node = node
        self.reply_to = p.reply_topic(node)
        self.resync_every = resync_every
        self.clock = clock
        """This node's wall clock (`since`, `at`); the ACD relies only on differences of it."""
        self.own_sender = own_sender
        self._calls: dict[str, asyncio.Queue[AcdEvent]] = {}
        self._seq: dict[str, int] = {}
        self._boot = uuid.uuid4().hex[:8]
        """Keys are unique per process: another worker reporting on the same call (a callback)
        or this worker restarted must never reuse a key the ACD has seen."""
        self.on_callback: Callable[[AcdEvent], None] | None = None
        """Set before entering: this client then takes its share of callback offers."""
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()

    async def __aenter__(self) -> AcdClient:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._receive()))
        self._tasks.append(loop.create_task(self._roll_call()))
        if self.on_callback is not None:
            self._tasks.append(loop.create_task(self._receive_callbacks()))
        if self.own_sender:
            self._tasks.append(loop.create_task(
                send_forever(self.outbox, self.broker_url, f"acd-send-{self.node}", self.auth)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _receive(self) -> None:
        delay = 0.2
        while True:
            try:
                async with self.auth.client(self.broker_url, identifier=f"acd-client-{self.node}",
                                            clean_session=False, timeout=5) as client:
                    await client.subscribe(self.reply_to, qos=1)
                    self.subscribed.set()
                    delay = 0.2
                    async for message in every_message(client):
                        self._deliver(bytes(message.payload))
            except aiomqtt.MqttError as exc:
                log.warning("ACD client: bus unavailable (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _roll_call(self) -> None:
        """Every `resync_every`, the calls this worker holds with the ACD (a request sequence
        still open: enqueued, or bridged to an agent, and not yet reported gone or ended), so
        the ACD ends a call with an agent whose end report was lost (ivr.acd.protocol)."""
        rounds = 0
        while True:
            await asyncio.sleep(self.resync_every)
            rounds += 1
            key = f"acd:{self._boot}:holding:{rounds}"
            self.outbox.put(p.REQUEST_TOPIC, {"op": "holding", "call_id": "-",
                                              "reply_to": self.reply_to, "key": key,
                                              "calls": sorted(self._seq)}, key=key)

    async def _receive_callbacks(self) -> None:
        """This worker's share of callback offers, on a clean session of its own: a worker that
        is gone must not stay in the share group holding offers no one will dial."""
        delay = 0.2
        while True:
            try:
                async with self.auth.client(self.broker_url, identifier=f"acd-callbacks-{self.node}",
                                            clean_session=True, timeout=5) as client:
                    await client.subscribe(p.CALLBACK_SHARED, qos=1)
                    delay = 0.2
                    async for message in client.messages:
                        self._callback_offer(bytes(message.payload))
            except aiomqtt.MqttError as exc:
                log.warning("ACD client: bus unavailable for callbacks (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _first_time(self, key: object) -> bool:
        """Drop redeliveries (QoS 1 is at least once): the last 20000 keys are remembered."""
        if not key:
            return True
        key = str(key)
        if key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > 20000:
            self._seen.popitem(last=False)
        return True

    def _callback_offer(self, payload: bytes) -> None:
        try:
            data = json.loads(payload)
            event = AcdEvent(str(data["kind"]), str(data["call_id"]), data)
        except (ValueError, KeyError, TypeError):
            log.error("ACD client: bad callback offer %r", payload[:200])
            return
        if not self._first_time(data.get("key")):
            return
        if self.on_callback is not None:
            self.on_callback(event)

    def _deliver(self, payload: bytes) -> None:
        try:
            data = json.loads(payload)
            call_id, kind = str(data["call_id"]), str(data["kind"])
        except (ValueError, KeyError, TypeError):
            log.error("ACD client: bad reply %r", payload[:200])
            return
        if not self._first_time(data.get("key")):
            return
        queue = self._calls.get(call_id)
        if queue is not None:
            queue.put_nowait(AcdEvent(kind, call_id, data))

    # -- requests ----------------------------------------------------------------------------
    def report(self, call_id: str, op: str, **data: Any) -> None:
        """Send one request (through the durable outbox)."""
        n = self._seq.get(call_id, 0) + 1
        self._seq[call_id] = n
        key = f"acd:{self._boot}:{call_id}:{n}"
        self.outbox.put(p.REQUEST_TOPIC, {"op": op, "call_id": call_id, "reply_to": self.reply_to,
                                          "key": key, **tracing.carrier(), **data}, key=key)

    def agent_answered(self, call_id: str, agent: str, attempt: int) -> None:
        self.report(call_id, "agent_answered", agent=agent, attempt=attempt)

    def agent_failed(self, call_id: str, agent: str, attempt: int, reason: str = "no_answer") -> None:
        self.report(call_id, "agent_failed", agent=agent, attempt=attempt, reason=reason)

    def caller_gone(self, call_id: str) -> None:
        self.report(call_id, "caller_gone")
        self._seq.pop(call_id, None)

    def call_ended(self, call_id: str, outcome: str | None = None) -> None:
        self.report(call_id, "call_ended", **({"outcome": outcome} if outcome else {}))
        self._seq.pop(call_id, None)

    def callback(self, call_id: str, number: str, uri: str | None = None) -> None:
        """Turn the wait into a callback; `uri` is where to call (the caller's contact)."""
        self.report(call_id, "callback", number=number, uri=uri)

    def listen(self, call_id: str) -> asyncio.Queue[AcdEvent]:
        """Receive replies for a call without enqueueing it (e.g. a callback this node dials)."""
        return self._calls.setdefault(call_id, asyncio.Queue())

    def forget(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    async def enqueue(self, call_id: str, queue: str, *, priority: int = 0,
                      skills: dict[str, int] | None = None, max_wait: float | None = None,
                      announce_every: float | None = None, caller: Any = None,
                      flow: str | None = None, path: Sequence[str] = (),
                      variables: dict[str, Any] | None = None, transcript: Sequence[Any] = (),
                      context: dict[str, Any] | None = None, sensitive: Sequence[str] = (),
                      ) -> AsyncIterator[AcdEvent]:
        """Join a queue; yields events until connected, timeout, callback or error."""
        request = {"queue": queue, "priority": priority, "skills": dict(skills or {}),
                   "max_wait": max_wait, "announce_every": announce_every, "caller": caller,
                   "flow": flow, "path": list(path), "variables": dict(variables or {}),
                   "transcript": list(transcript), "context": dict(context or {}),
                   "sensitive": list(sensitive), "since": self.clock()}
        events = self.listen(call_id)
        await self.subscribed.wait()
        self.report(call_id, "enqueue", **request, at=self.clock())
        loop = asyncio.get_running_loop()
        resync_at = loop.time() + self.resync_every
        try:
            while True:
                try:
                    ev = await asyncio.wait_for(events.get(), max(0.0, resync_at - loop.time()))
                except asyncio.TimeoutError:
                    # resync (also a heartbeat): same call, same place, even after a restart
                    self.report(call_id, "enqueue", **request, at=self.clock())
                    resync_at = loop.time() + self.resync_every
                    continue
                yield ev
                if ev.kind in p.TERMINAL:
                    return
        finally:
            with contextlib.suppress(KeyError):
                del self._calls[call_id]
