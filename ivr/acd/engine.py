"""The ACD's decisions: pure, single-threaded, clock-injected, no I/O but an optional persistence hook.

Every method takes an event (a call arrives, an agent answers, time passes) and returns the
actions that follow (ring this agent, stop ringing that one, the call timed out, ...). The
service calls `tick()` after every event and every half second; `tick` ends wrap-ups, expires
rings and waits, and hands ready agents to the best waiting calls. Because one loop owns the
engine and an agent is marked ringing in the same step that offers it, two calls never get the
same agent, and of two answers for one call only the first counts.

See `ivr.acd.model` for the priority/aging, skills-relax and estimated-wait rules, and
`ivr.acd.routing` for which ready agents ring for a call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ivr.acd.model import (
    Action,
    Agent,
    AgentChanged,
    AgentState,
    CallbackScheduled,
    CallClosed,
    Cancel,
    Connected,
    Error,
    Offer,
    Queued,
    QueuedCall,
    QueuePolicy,
    Timeout,
    eta_for,
)
from ivr.acd.routing import Router, eligible
from ivr.config import EngineConfig

EWMA_ALPHA = 0.3


class StateError(ValueError):
    """An agent state change that is not allowed now (e.g. logout while on a call)."""


class Persistence(Protocol):
    def save_call(self, call: QueuedCall) -> None: ...
    def delete_call(self, call_id: str) -> None: ...
    def load_calls(self) -> list[QueuedCall]: ...
    def save_agent(self, agent: Agent) -> None: ...
    def load_agents(self) -> dict[str, dict[str, Any]]: ...


class Engine:
    def __init__(self, queues: dict[str, QueuePolicy], agents: Iterable[Agent], *,
                 clock: Callable[[], float] = time.time, store: Persistence | None = None,
                 stale_after: float | None = None) -> None:
        self.clock = clock
        self.store = store
        self.stale_after = stale_after
        """Drop a waiting (non-callback) call whose worker has not resynced for this long."""
        self.queues: dict[str, QueuePolicy] = dict(queues)
        self.agents: dict[str, Agent] = {a.name: a for a in agents}
        self.waiting: dict[str, QueuedCall] = {}
        self.active: dict[str, QueuedCall] = {}
        self.handle_time: dict[str, float] = {}
        self._router = Router()
        self._touched: dict[str, float] = {}
        now = clock()
        for a in self.agents.values():
            a.since = a.idle_since = now
        if store is not None:
            self._restore(store, now)

    @classmethod
    def from_config(cls, config: EngineConfig, **kw: Any) -> Engine:
        return cls({n: QueuePolicy.from_settings(q) for n, q in config.queues.items()},
                   [Agent.from_settings(n, a) for n, a in config.agents.items()], **kw)

    def _restore(self, store: Persistence, now: float) -> None:
        for name, row in store.load_agents().items():
            agent = self.agents.get(name)
            if agent is None:
                agent = self.agents[name] = Agent(name=name, uri=row.get("uri"),
                                                  queues=list(row.get("queues") or []),
                                                  skills=dict(row.get("skills") or {}))
            state = AgentState(row.get("state", "logged_out"))
            agent.calls = int(row.get("calls") or 0)
            agent.idle_since = float(row.get("idle_since") or now)
            agent.since = now
            if state is AgentState.on_call:
                agent.state, agent.call_id = state, row.get("call_id")
            elif state in (AgentState.ringing, AgentState.wrap_up):
                agent.state = AgentState.ready  # wrap-up is over; a live ring: see below
            else:
                agent.state = state
        for call in store.load_calls():
            if call.agent is not None:
                # with an agent when the last ACD stopped: a worker that missed `connected`
                # and resyncs is told again, not queued anew (nor offered to anyone again)
                self.active[call.call_id] = call
            elif call.queue in self.queues:
                self.waiting[call.call_id] = call
                self._touched[call.call_id] = now
                self._restore_ring(call)

    def _restore_ring(self, call: QueuedCall) -> None:
        """An offer that was out when the last ACD stopped may still ring (a failover, or a
        supervisor killed while its workers live): the agents stay ringing for it until the
        answer, a failure or the ring timeout, so nobody is offered it, or them, twice."""
        for name in sorted(call.ringing):
            agent = self.agents.get(name)
            if agent is not None and agent.state is AgentState.ready:
                agent.state, agent.call_id = AgentState.ringing, call.call_id
            else:
                call.ringing.discard(name)

    # -- run-time set-up ---------------------------------------------------------------------
    def add_queue(self, name: str, policy: QueuePolicy) -> None:
        self.queues[name] = policy

    def add_agent(self, agent: Agent) -> None:
        if agent.name in self.agents:
            raise StateError(f"agent {agent.name} exists")
        agent.since = agent.idle_since = self.clock()
        self.agents[agent.name] = agent
        self._save_agent(agent)

    # -- helpers -----------------------------------------------------------------------------
    def _save_agent(self, agent: Agent) -> None:
        if self.store is not None:
            self.store.save_agent(agent)

    def _save_call(self, call: QueuedCall) -> None:
        if self.store is not None:
            self.store.save_call(call)

    def _set(self, agent: Agent, state: AgentState, out: list[Action],
             call_id: str | None = None) -> None:
        now = self.clock()
        if state is AgentState.ready and agent.state is not AgentState.ready:
            agent.idle_since = now
        agent.state, agent.since, agent.call_id = state, now, call_id
        self._save_agent(agent)
        out.append(AgentChanged(agent.name, state.value, call_id))

    def staffed(self, queue: str) -> int:
        return sum(1 for a in self.agents.values() if queue in a.queues and a.logged_in)

    def _ordered(self, queue: str | None = None) -> list[QueuedCall]:
        now = self.clock()
        calls = [c for c in self.waiting.values() if queue is None or c.queue == queue]
        return sorted(calls, key=lambda c: (-c.rank(now, self.queues[c.queue]), c.enqueued_at,
                                            c.call_id))

    def position(self, call_id: str) -> tuple[int, float] | None:
        """(1-based position in its queue, estimated seconds to an agent)."""
        call = self.waiting.get(call_id)
        if call is None:
            return None
        order = self._ordered(call.queue)
        pos = next(i for i, c in enumerate(order, 1) if c.call_id == call_id)
        policy = self.queues[call.queue]
        aht = self.handle_time.get(call.queue, policy.default_handle_time)
        return pos, eta_for(pos, aht, self.staffed(call.queue))

    def _close(self, call: QueuedCall, outcome: str, out: list[Action],
               agent: str | None = None) -> None:
        self.waiting.pop(call.call_id, None)
        self.active.pop(call.call_id, None)
        self._touched.pop(call.call_id, None)
        if self.store is not None:
            self.store.delete_call(call.call_id)
        out.append(CallClosed(call.call_id, outcome, agent, call.queue))

    def _release_ringing(self, call: QueuedCall, reason: str, out: list[Action],
                         keep: str | None = None) -> None:
        for name in sorted(call.ringing):
            if name == keep:
                continue
            out.append(Cancel(call.call_id, name, reason))
            agent = self.agents.get(name)
            if agent is not None and agent.state is AgentState.ringing and \
                    agent.call_id == call.call_id:
                idle = agent.idle_since
                self._set(agent, AgentState.ready, out)
                agent.idle_since = idle  # not their fault: keep their place in longest idle
        call.ringing = {keep} if keep and keep in call.ringing else set()

    # -- calls -------------------------------------------------------------------------------
    def enqueue(self, call_id: str, queue: str, *, priority: int = 0,
                skills: dict[str, int] | None = None, max_wait: float | None = None,
                reply_to: str | None = None, handoff: dict[str, Any] | None = None,
                since: float | None = None) -> list[Action]:
        """A caller joins `queue` (or, when already known, resyncs: same place, fresh reply_to)."""
        now = self.clock()
        out: list[Action] = []
        known = self.waiting.get(call_id)
        if known is not None:
            if reply_to:
                known.reply_to = reply_to
            self._touched[call_id] = now
            self._save_call(known)
            out.append(self._queued(known))
            return out
        if call_id in self.active:
            call = self.active[call_id]
            if reply_to:
                call.reply_to = reply_to
            out.append(Connected(call_id, call.agent or "", call.waited(now)))
            return out
        policy = self.queues.get(queue)
        if policy is None:
            return [Error(call_id, f"unknown queue {queue!r}")]
        call = QueuedCall(call_id=call_id, queue=queue, enqueued_at=since if since else now,
                          priority=priority, skills=dict(skills or {}), max_wait=max_wait,
                          reply_to=reply_to, handoff=dict(handoff or {}))
        if self.staffed(queue) == 0:
            out.append(Timeout(call_id, "empty", policy.overflow))
            out.append(CallClosed(call_id, "overflow", queue=queue))
            return out
        if policy.max_length is not None and \
                sum(1 for c in self.waiting.values() if c.queue == queue) >= policy.max_length:
            out.append(Timeout(call_id, "full", policy.overflow))
            out.append(CallClosed(call_id, "overflow", queue=queue))
            return out
        self.waiting[call_id] = call
        self._touched[call_id] = now
        self._save_call(call)
        out.append(self._queued(call))
        return out

    def _queued(self, call: QueuedCall) -> Action:
        pos = self.position(call.call_id)
        assert pos is not None
        if call.callback:
            return CallbackScheduled(call.call_id, pos[0])
        return Queued(call.call_id, pos[0], pos[1])

    def to_callback(self, call_id: str, number: str) -> list[Action]:
        """The caller asked to be called back: they keep their place and may hang up."""
        out: list[Action] = []
        call = self.waiting.get(call_id)
        if call is None:
            return [Error(call_id, "the call is not waiting")]
        self._release_ringing(call, "callback", out)
        call.callback = number
        self._save_call(call)
        pos = self.position(call_id)
        out.append(CallbackScheduled(call_id, pos[0] if pos else 0))
        return out

    def answered(self, call_id: str, agent_name: str, attempt: int) -> list[Action]:
        """The agent picked up. The first valid answer wins; any other leg gets a Cancel."""
        now = self.clock()
        out: list[Action] = []
        call = self.waiting.get(call_id)
        agent = self.agents.get(agent_name)
        if call is None or agent is None or agent_name not in call.ringing or \
                attempt != call.attempt:
            out.append(Cancel(call_id, agent_name, "taken"))
            if agent is not None and agent.state is AgentState.ringing and \
                    agent.call_id == call_id:
                self._set(agent, AgentState.ready, out)
            return out
        self._release_ringing(call, "answered_elsewhere", out, keep=agent_name)
        self.waiting.pop(call_id)
        self._touched.pop(call_id, None)
        call.agent = agent_name
        call.ringing = set()
        self.active[call_id] = call
        self._save_call(call)  # kept (as connected) until it ends: see _restore
        agent.calls += 1
        agent.answered_at = now
        self._set(agent, AgentState.on_call, out, call_id)
        out.append(Connected(call_id, agent_name, call.waited(now)))
        return out

    def failed(self, call_id: str, agent_name: str, attempt: int | None,
               reason: str = "no_answer") -> list[Action]:
        """No answer, busy or reject: the agent is released, the call keeps its place.

        `no_answer` puts the agent `away` (ring-no-answer: they are probably not at the desk);
        busy, reject and anything else puts them back to ready at the end of the idle line.
        """
        out: list[Action] = []
        now = self.clock()
        agent = self.agents.get(agent_name)
        call = self.waiting.get(call_id)
        if call is not None and agent_name in call.ringing and \
                (attempt is None or attempt == call.attempt):
            call.ringing.discard(agent_name)
            call.tried[agent_name] = now
        if agent is not None and agent.state is AgentState.ringing and agent.call_id == call_id:
            self._set(agent, AgentState.away if reason == "no_answer" else AgentState.ready, out)
        return out

    def accept(self, call_id: str, agent_name: str) -> list[Action]:
        """The agent took the offer on their desktop: any other agent ringing for it stops, so
        the call waits for this agent's phone alone (the answer still comes from the phone)."""
        out: list[Action] = []
        call = self.waiting.get(call_id)
        if call is None or agent_name not in call.ringing:
            raise StateError(f"{call_id} is not ringing {agent_name}")
        self._release_ringing(call, "accepted_elsewhere", out, keep=agent_name)
        return out

    def ringing_for(self, call_id: str, agent_name: str) -> bool:
        """Whether `agent_name` is being offered `call_id` right now."""
        agent = self.agents.get(agent_name)
        return agent is not None and agent.state is AgentState.ringing and \
            agent.call_id == call_id

    def caller_gone(self, call_id: str) -> list[Action]:
        """The caller hung up while waiting or while an agent rang: the agents are released."""
        out: list[Action] = []
        call = self.waiting.get(call_id)
        if call is not None:
            self._release_ringing(call, "caller_gone", out)
            self._close(call, "callback_failed" if call.callback else "abandoned", out)
            return out
        if call_id in self.active:
            return self.ended(call_id)
        return out

    def ended(self, call_id: str, outcome: str = "answered") -> list[Action]:
        """The agent's call ended: wrap-up (then ready on its own). `outcome` is for reports,
        e.g. `callback_unanswered` when the agent took a callback the caller did not pick up."""
        now = self.clock()
        out: list[Action] = []
        call = self.active.get(call_id)
        agent = next((a for a in self.agents.values()
                      if a.call_id == call_id and a.state is AgentState.on_call), None)
        if agent is not None:
            queue = call.queue if call is not None else (agent.queues[0] if agent.queues else "")
            policy = self.queues.get(queue, QueuePolicy())
            handled = max(0.0, now - agent.answered_at) + policy.wrap_up if agent.answered_at \
                else None
            if handled is not None and queue:
                old = self.handle_time.get(queue)
                self.handle_time[queue] = handled if old is None else \
                    EWMA_ALPHA * handled + (1 - EWMA_ALPHA) * old
            if policy.wrap_up > 0:
                agent.wrap_until = now + policy.wrap_up
                self._set(agent, AgentState.wrap_up, out, call_id)
            else:
                self._set(agent, AgentState.ready, out)
        if call is not None:
            self._close(call, outcome, out, call.agent)
        return out

    # -- agents ------------------------------------------------------------------------------
    def agent_action(self, name: str, action: str) -> list[Action]:
        """login | logout | ready | away (also the state names logged_out and ready/away)."""
        agent = self.agents.get(name)
        if agent is None:
            raise KeyError(name)
        out: list[Action] = []
        busy = agent.state in (AgentState.on_call,)
        if action in ("login", "ready"):
            if busy or agent.state is AgentState.ringing:
                raise StateError(f"{name} is {agent.state.value}")
            if agent.state is AgentState.logged_out:
                agent.calls = 0
            if agent.state is not AgentState.ready:
                self._set(agent, AgentState.ready, out)
        elif action in ("logout", "logged_out", "away"):
            if busy:
                raise StateError(f"{name} is on a call; try again after it ends")
            if agent.state is AgentState.ringing and agent.call_id:
                call = self.waiting.get(agent.call_id)
                out.append(Cancel(agent.call_id, name, "agent_" + action))
                if call is not None:
                    call.ringing.discard(name)
            target = AgentState.away if action == "away" else AgentState.logged_out
            if agent.state is not target:
                self._set(agent, target, out)
        else:
            raise StateError(f"unknown agent action {action!r}; login, logout, ready or away")
        return out

    # -- time --------------------------------------------------------------------------------
    def tick(self) -> list[Action]:
        now = self.clock()
        out: list[Action] = []
        for agent in self.agents.values():
            if agent.state is AgentState.wrap_up and now >= agent.wrap_until:
                self._set(agent, AgentState.ready, out)
        for call in list(self.waiting.values()):
            policy = self.queues[call.queue]
            if call.ringing and call.offered_at is not None and \
                    now - call.offered_at >= policy.ring_timeout:
                for name in sorted(call.ringing):
                    out.append(Cancel(call.call_id, name, "no_answer"))
                    out.extend(self.failed(call.call_id, name, call.attempt, "no_answer"))
            if call.callback or call.ringing:
                continue
            if self.staffed(call.queue) == 0:
                out.append(Timeout(call.call_id, "empty", policy.overflow))
                self._close(call, "overflow", out)
                continue
            limits = [w for w in (policy.max_wait, call.max_wait) if w]
            if limits and call.waited(now) >= min(limits):
                out.append(Timeout(call.call_id, "max_wait", policy.overflow))
                self._close(call, "timeout", out)
                continue
            if self.stale_after and now - self._touched.get(call.call_id, now) > self.stale_after:
                self._close(call, "lost", out)
        self._dispatch(now, out)
        return out

    def _dispatch(self, now: float, out: list[Action]) -> None:
        for call in self._ordered():
            if call.ringing:
                continue
            policy = self.queues[call.queue]
            pool = eligible(call, policy, self.agents.values(), now)
            if not pool:
                continue
            chosen = self._router.pick(call, policy, pool, self.agents.values())
            call.attempt += 1
            call.offered_at = now
            for agent in chosen:
                call.ringing.add(agent.name)
                self._set(agent, AgentState.ringing, out, call.call_id)
                out.append(Offer(call.call_id, agent.name, call.attempt, call.waited(now),
                                 callback=call.callback is not None))
            self._save_call(call)

    # -- views -------------------------------------------------------------------------------
    def context(self, call_id: str) -> dict[str, Any] | None:
        call = self.waiting.get(call_id) or self.active.get(call_id)
        if call is None:
            return None
        return self.handoff(call)

    def handoff(self, call: QueuedCall) -> dict[str, Any]:
        """What the agent is handed (CLI.md): call id, caller, flow, path, variables, transcript,
        wait time; plus queue, priority and the flow's named context values."""
        h = call.handoff
        return {"call_id": call.call_id, "queue": call.queue, "priority": call.priority,
                "caller": h.get("caller"), "flow": h.get("flow"), "path": h.get("path", []),
                "variables": h.get("variables", {}), "transcript": h.get("transcript", []),
                "context": h.get("context", {}), "wait_s": round(call.waited(self.clock()), 1),
                "callback": call.callback, "agent": call.agent}

    def queues_view(self) -> list[dict[str, Any]]:
        now = self.clock()
        out = []
        for name, policy in self.queues.items():
            calls = self._ordered(name)
            members = [a for a in self.agents.values() if name in a.queues]
            aht = self.handle_time.get(name, policy.default_handle_time)
            out.append({
                "name": name, **policy.as_json(),
                "waiting": len([c for c in calls if not c.callback]),
                "callbacks": len([c for c in calls if c.callback]),
                "longest_wait_s": round(max((c.waited(now) for c in calls), default=0.0), 1),
                "agents": {s.value: sum(1 for a in members if a.state is s) for s in AgentState},
                "handle_time_s": round(aht, 1),
                "calls": [{"call_id": c.call_id, "position": i, "priority": c.priority,
                           "rank": c.rank(now, policy), "wait_s": round(c.waited(now), 1),
                           "ringing": sorted(c.ringing), "callback": c.callback is not None}
                          for i, c in enumerate(calls, 1)],
            })
        return out

    def agents_view(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [a.as_json(now) for a in self.agents.values()]
