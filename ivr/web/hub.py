"""Live events for the pages: numbered, kept briefly, handed to each subscriber it concerns.

An event concerns one agent (its offers, cancels, state) or only supervisors (queue changes,
the wallboard). `Principal.can_read` tokens (admin, read) see everything; an agent token sees
only events naming that agent. Each subscriber has a bounded queue: one that falls behind (a
burst of hundreds of events, a slow page) is not allowed to grow without end, it is marked
`lagged` and its stream sends a fresh snapshot instead, so no page is ever stale or frozen.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from ivr.access.tokens import Principal, Role

QUEUE_LIMIT = 256
"""Events a subscriber may have pending; past it, it gets a snapshot instead."""


@dataclass(frozen=True)
class Event:
    id: str
    """`<boot>-<n>`: a page that sees another boot knows the server restarted."""
    kind: str
    data: dict[str, Any]
    agent: str | None = None
    """The agent it concerns; None: supervisors only."""

    def visible_to(self, who: Principal) -> bool:
        if who.can_read:
            return True
        return who.role is Role.agent and self.agent is not None and self.agent == who.agent


RESYNC = Event("", "resync", {})
"""Put in place of a backlog that overflowed: the stream sends a snapshot."""


@dataclass(eq=False)
class Subscriber:
    who: Principal
    queue: asyncio.Queue[Event | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    lagged: bool = False
    """Events were dropped for this one: the stream must resync with a snapshot."""

    def offer(self, event: Event | None) -> None:
        if event is None:  # the end: make room for it
            while self.queue.full():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return
        if self.lagged:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True
            while not self.queue.empty():  # a snapshot replaces them all
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)

    def resynced(self) -> None:
        self.lagged = False


class EventHub:
    def __init__(self) -> None:
        self.boot = secrets.token_hex(4)
        self._n = itertools.count(1)
        self.subscribers: set[Subscriber] = set()
        self.closed = False

    def next_id(self) -> str:
        return f"{self.boot}-{next(self._n)}"

    def publish(self, kind: str, data: dict[str, Any], agent: str | None = None) -> Event:
        event = Event(self.next_id(), kind, data, agent)
        for sub in list(self.subscribers):
            if event.visible_to(sub.who):
                sub.offer(event)
        return event

    def subscribe(self, who: Principal) -> Subscriber:
        sub = Subscriber(who)
        if self.closed:
            sub.offer(None)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def close(self) -> None:
        """Server shutdown: every stream ends (pages show disconnected, then reconnect)."""
        self.closed = True
        for sub in list(self.subscribers):
            sub.offer(None)
