"""The desktop's live side: ACD decisions become page events, and the wallboard is refreshed.

`Desktop.on_actions` is an ACD observer (`AcdService.observers`): offers, cancels and state
changes go to the agent they name (and to supervisors); anything marks the wallboard dirty.
`Desktop.run` (owned by the HTTP app, ended on its cleanup) publishes the wallboard at most
every half second when something changed, at least every heartbeat, and samples the
last-hour chart; publishing is skipped while no supervisor page is open.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ivr.acd.model import Action, AgentChanged, CallClosed, Cancel, Connected, Offer
from ivr.acd.service import AcdService
from ivr.config import DesktopSettings
from ivr.store.backend import Backend
from ivr.web import views
from ivr.web.hub import EventHub

log = logging.getLogger("ivr.web")

PUBLISH_EVERY = 0.5


class Desktop:
    def __init__(self, settings: DesktopSettings, acd: Callable[[], AcdService | None],
                 store: Path | Backend, workers: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.settings = settings
        self.acd = acd
        self.store = store
        self.workers = workers
        self.hub = EventHub()
        self.history: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=int(3600 / settings.history_every) + 1)
        self._dirty = True

    # -- the ACD's decisions -----------------------------------------------------------------
    def on_actions(self, actions: list[Action]) -> None:
        acd = self.acd()
        self._dirty = True
        if acd is None:
            return
        now = acd.engine.clock()
        for a in actions:
            if isinstance(a, Offer):
                ctx = acd.context(a.call_id) or {"call_id": a.call_id}
                self.hub.publish("offer", {**ctx, "attempt": a.attempt,
                                           "wait_s": round(a.waited, 1)}, a.agent)
            elif isinstance(a, Cancel):
                self.hub.publish("cancel", {"call_id": a.call_id, "reason": a.reason}, a.agent)
            elif isinstance(a, Connected):
                self.hub.publish("connected", {"call_id": a.call_id, "agent": a.agent,
                                               "wait_s": round(a.waited, 1)}, a.agent)
            elif isinstance(a, AgentChanged):
                agent = acd.engine.agents.get(a.agent)
                if agent is not None:
                    self.hub.publish("agent", agent.as_json(now), a.agent)
            elif isinstance(a, CallClosed):
                self.hub.publish("closed", {"call_id": a.call_id, "outcome": a.outcome}, a.agent)

    # -- who may act on a call (ivr.access.policy) ----------------------------------------------
    def ringing(self, call_id: str, agent: str) -> bool:
        acd = self.acd()
        return acd is not None and acd.engine.ringing_for(call_id, agent)

    def had(self, call_id: str, agent: str) -> bool:
        acd = self.acd()
        return acd is not None and acd.agent_of(call_id) == agent

    # -- views -------------------------------------------------------------------------------
    def wallboard(self) -> dict[str, Any] | None:
        acd = self.acd()
        return None if acd is None else views.wallboard(acd, self.store, self.workers())

    def snapshot(self, agent: str | None, supervisor: bool) -> dict[str, Any]:
        """Everything a page shows, sent first on every (re)connect."""
        acd = self.acd()
        out: dict[str, Any] = {"boot": self.hub.boot, "at": time.time(), "acd": acd is not None,
                               "dispositions": list(self.settings.dispositions),
                               "heartbeat_s": self.settings.heartbeat,
                               "history_every_s": self.settings.history_every}
        if acd is not None and agent is not None:
            out["desk"] = views.agent_view(acd, agent)
        if supervisor:
            out["wallboard"] = self.wallboard()
            out["history"] = list(self.history)
        return out

    def _supervisors(self) -> bool:
        return any(s.who.can_read for s in self.hub.subscribers)

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        last_publish = last_sample = 0.0
        while not self.hub.closed:
            now = time.monotonic()
            try:
                due_sample = now - last_sample >= self.settings.history_every
                due_publish = self._supervisors() and (
                    self._dirty or now - last_publish >= self.settings.heartbeat / 2)
                if due_sample or due_publish:
                    board = self.wallboard()
                    if board is not None:
                        if due_sample:
                            self.history.append(views.sample(board))
                            last_sample = now
                        if due_publish:
                            self._dirty = False
                            last_publish = now
                            self.hub.publish("wallboard", board)
                            if due_sample:
                                self.hub.publish("sample", self.history[-1])
            except Exception:  # the wallboard must never take the API down
                log.exception("wallboard refresh failed")
            await asyncio.sleep(PUBLISH_EVERY)
