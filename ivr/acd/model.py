"""ACD data: agents, queue policies, waiting calls and the decisions the engine hands back.

Everything here is plain data; `ivr.acd.engine` decides, `ivr.acd.service` carries the decisions
over the bus. Times are seconds on the engine's injected clock (wall time in the supervisor).

Rules (documented here because operators ask about them):

- Priority with aging: a waiting call ranks by `priority + floor(waited / aging_every)`, ties by
  the earlier arrival. With the default `aging_every` of 60 s a priority-0 caller who has waited
  two minutes ranks with a priority-2 caller who just arrived, so VIPs jump ahead but nobody
  starves. `aging_every: 0` turns aging off.
- Skills that relax: a call's required levels drop by one for every full `relax_after` waited; a
  requirement that reaches 0 is dropped. A call asking `{banking: 3}` takes a level-3 agent at
  once, a level-2 agent after `relax_after`, any agent after 3 x `relax_after`.
  `relax_after: 0` never relaxes.
- Skills filter every strategy (an agent must cover the call's current requirements); the
  `skills` strategy also ranks by them: highest sum of the agent's levels in the required skills,
  then longest idle.
- Estimated wait: `position x handle_time / staffed`, where handle_time is an EWMA (alpha 0.3) of
  recent talk + wrap-up times in that queue (a default until the first call ends) and staffed the
  agents logged in to the queue (ready, ringing, on call, wrap-up or away).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ivr.config import AgentSettings, QueueSettings


class AgentState(str, enum.Enum):
    logged_out = "logged_out"
    ready = "ready"
    ringing = "ringing"
    on_call = "on_call"
    wrap_up = "wrap_up"
    away = "away"


Strategy = Literal["longest_idle", "round_robin", "ring_all", "fewest_calls", "skills"]
STRATEGIES: tuple[str, ...] = ("longest_idle", "round_robin", "ring_all", "fewest_calls", "skills")


@dataclass
class QueuePolicy:
    strategy: Strategy = "longest_idle"
    wrap_up: float = 10.0
    overflow: str | None = None
    max_wait: float | None = None
    max_length: int | None = None
    aging_every: float = 60.0
    relax_after: float = 30.0
    ring_timeout: float = 20.0
    service_level: float = 20.0
    """Seconds within which an answer counts toward the service level (reports)."""
    default_handle_time: float = 120.0

    @classmethod
    def from_settings(cls, s: QueueSettings) -> QueuePolicy:
        """From the config; optional tuning fields are used when the config grows them."""
        out = cls(strategy=s.strategy, wrap_up=float(s.wrap_up), overflow=s.overflow,
                  max_wait=None if s.max_wait is None else float(s.max_wait),
                  max_length=s.max_length)
        for name in ("aging_every", "relax_after", "ring_timeout", "service_level",
                     "default_handle_time"):
            value = getattr(s, name, None)
            if value is not None:
                setattr(out, name, float(value))
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueuePolicy:
        from ivr.durations import parse_duration

        out = cls()
        strategy = data.get("strategy", out.strategy)
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
        out.strategy = strategy
        for name in ("wrap_up", "max_wait", "aging_every", "relax_after", "ring_timeout",
                     "service_level", "default_handle_time"):
            if data.get(name) is not None:
                setattr(out, name, parse_duration(data[name]))
        if data.get("max_length") is not None:
            out.max_length = int(data["max_length"])
        if data.get("overflow") is not None:
            out.overflow = str(data["overflow"])
        return out

    def as_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "wrap_up": self.wrap_up, "overflow": self.overflow,
                "max_wait": self.max_wait, "max_length": self.max_length,
                "aging_every": self.aging_every, "relax_after": self.relax_after,
                "ring_timeout": self.ring_timeout}


@dataclass
class Agent:
    name: str
    uri: str | None = None
    queues: list[str] = field(default_factory=list)
    skills: dict[str, int] = field(default_factory=dict)
    state: AgentState = AgentState.logged_out
    since: float = 0.0
    """When the current state began."""
    idle_since: float = 0.0
    """When the agent last became ready (longest idle = smallest)."""
    calls: int = 0
    """Calls answered since login (fewest_calls)."""
    call_id: str | None = None
    """The call the agent rings for, talks on or wraps up."""
    wrap_until: float = 0.0
    answered_at: float = 0.0

    @classmethod
    def from_settings(cls, name: str, s: AgentSettings) -> Agent:
        return cls(name=name, uri=s.uri, queues=list(s.queues), skills=dict(s.skills))

    @property
    def logged_in(self) -> bool:
        return self.state is not AgentState.logged_out

    def as_json(self, now: float) -> dict[str, Any]:
        return {"name": self.name, "state": self.state.value, "uri": self.uri,
                "queues": self.queues, "skills": self.skills, "calls": self.calls,
                "call_id": self.call_id, "in_state_s": round(max(0.0, now - self.since), 1),
                "wrap_up_left_s": round(max(0.0, self.wrap_until - now), 1)
                if self.state is AgentState.wrap_up else None}


@dataclass
class QueuedCall:
    """A caller waiting (or, once `callback` is set, a callback request) in one queue."""

    call_id: str
    queue: str
    enqueued_at: float
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    max_wait: float | None = None
    reply_to: str | None = None
    handoff: dict[str, Any] = field(default_factory=dict)
    """What the agent is handed: caller, flow, path, variables (masked), transcript, context."""
    callback: str | None = None
    """The number to call back; set when the caller chose a callback and hung up."""
    attempt: int = 0
    ringing: set[str] = field(default_factory=set)
    tried: dict[str, float] = field(default_factory=dict)
    """Agents who failed this call; skipped while anyone else could take it."""
    agent: str | None = None
    """Set once an agent answered."""
    offered_at: float | None = None

    def waited(self, now: float) -> float:
        return max(0.0, now - self.enqueued_at)

    def rank(self, now: float, policy: QueuePolicy) -> int:
        aging = int(self.waited(now) // policy.aging_every) if policy.aging_every > 0 else 0
        return self.priority + aging

    def required(self, now: float, policy: QueuePolicy) -> dict[str, int]:
        steps = int(self.waited(now) // policy.relax_after) if policy.relax_after > 0 else 0
        return {k: v - steps for k, v in self.skills.items() if v - steps > 0}

    def to_row(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "queue": self.queue, "enqueued_at": self.enqueued_at,
                "priority": self.priority, "skills": self.skills, "max_wait": self.max_wait,
                "reply_to": self.reply_to, "handoff": self.handoff, "callback": self.callback,
                "attempt": self.attempt, "ringing": sorted(self.ringing),
                "offered_at": self.offered_at, "tried": self.tried, "agent": self.agent}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> QueuedCall:
        return cls(call_id=row["call_id"], queue=row["queue"], enqueued_at=float(row["enqueued_at"]),
                   priority=int(row.get("priority") or 0), skills=dict(row.get("skills") or {}),
                   max_wait=row.get("max_wait"), reply_to=row.get("reply_to"),
                   handoff=dict(row.get("handoff") or {}), callback=row.get("callback"),
                   attempt=int(row.get("attempt") or 0),
                   ringing={str(a) for a in row.get("ringing") or []},
                   offered_at=row.get("offered_at"), agent=row.get("agent"),
                   tried={str(k): float(v) for k, v in (row.get("tried") or {}).items()})


# -- decisions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Queued:
    call_id: str
    position: int
    eta: float


@dataclass(frozen=True)
class Offer:
    """Ring `agent` for `call_id`; reports must quote `attempt` (stale ones are ignored)."""

    call_id: str
    agent: str
    attempt: int
    waited: float
    callback: bool = False


@dataclass(frozen=True)
class Cancel:
    """Stop ringing `agent` for `call_id` (another agent won, the caller left, ring timeout)."""

    call_id: str
    agent: str
    reason: str


@dataclass(frozen=True)
class Connected:
    call_id: str
    agent: str
    waited: float


@dataclass(frozen=True)
class Timeout:
    """The call leaves the queue without an agent: `reason` is empty, full or max_wait."""

    call_id: str
    reason: str
    overflow: str | None


@dataclass(frozen=True)
class CallbackScheduled:
    call_id: str
    position: int


@dataclass(frozen=True)
class Error:
    call_id: str
    message: str


@dataclass(frozen=True)
class AgentChanged:
    agent: str
    state: str
    call_id: str | None = None


@dataclass(frozen=True)
class CallClosed:
    """Bookkeeping: the call is out of the ACD (`outcome` for reports)."""

    call_id: str
    outcome: str
    agent: str | None = None
    queue: str = field(default="", compare=False)
    """For the per-queue counters (ivr/acd/counts.py); not part of what the action decides."""


Action = (Queued | Offer | Cancel | Connected | Timeout | CallbackScheduled | Error | AgentChanged
          | CallClosed)


def eta_for(position: int, handle_time: float, staffed: int) -> float:
    """Estimated seconds until an agent takes the caller at `position` (1-based)."""
    if staffed <= 0:
        return math.inf
    return position * handle_time / staffed
