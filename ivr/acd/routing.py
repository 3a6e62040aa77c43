"""Which ready agents ring for a waiting call: the skills it needs, no quick re-ring of an agent
that just missed it, and the queue's strategy.

Pure like the engine that calls it: no clock of its own, no I/O. The only state is round robin's
last agent per queue, kept here so a strategy's memory lives with the strategy.
"""

from __future__ import annotations

from collections.abc import Iterable

from ivr.acd.model import Agent, AgentState, QueuedCall, QueuePolicy


def eligible(call: QueuedCall, policy: QueuePolicy, agents: Iterable[Agent], now: float) -> list[Agent]:
    """Ready members of the call's queue with the skills it needs now (they relax as it waits).

    Agents not tried for this call come first; one that was tried rings again only after a ring
    timeout has passed, so a call does not bounce straight back to the agent who let it ring out.
    """
    need = call.required(now, policy)
    candidates = [a for a in agents
                  if a.state is AgentState.ready and call.queue in a.queues
                  and all(a.skills.get(k, 0) >= v for k, v in need.items())]
    fresh = [a for a in candidates if a.name not in call.tried]
    return fresh or [a for a in candidates if now - call.tried[a.name] >= policy.ring_timeout]


class Router:
    """Picks the agents to ring from an eligible pool by the queue's strategy."""

    def __init__(self) -> None:
        self._rr_last: dict[str, str] = {}

    def pick(self, call: QueuedCall, policy: QueuePolicy, pool: list[Agent],
             agents: Iterable[Agent]) -> list[Agent]:
        """`agents` are all agents in their configured order (round robin walks its queue's
        members in that order); ties always break on longest idle, then name."""
        strategy = policy.strategy
        if strategy == "ring_all":
            return sorted(pool, key=lambda a: (a.idle_since, a.name))
        if strategy == "fewest_calls":
            return [min(pool, key=lambda a: (a.calls, a.idle_since, a.name))]
        if strategy == "skills":
            return [min(pool, key=lambda a: (-sum(a.skills.get(k, 0) for k in call.skills),
                                             a.idle_since, a.name))]
        if strategy == "round_robin":
            members = [a.name for a in agents if call.queue in a.queues]
            last = self._rr_last.get(call.queue)
            start = members.index(last) + 1 if last in members else 0
            by_name = {a.name: a for a in pool}
            for i in range(len(members)):
                name = members[(start + i) % len(members)]
                if name in by_name:
                    self._rr_last[call.queue] = name
                    return [by_name[name]]
        return [min(pool, key=lambda a: (a.idle_since, a.name))]
