"""What a page is shown: an agent's own state and offer, the supervisors' wallboard.

Built from the ACD's live engine (the same numbers `GET /queues` and `GET /agents` return) and,
for service level, ASA and abandonment, from the ACD log (`ivr.acd.report`, since midnight UTC).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ivr.acd.model import AgentState
from ivr.acd.report import queue_figures
from ivr.acd.service import AcdService
from ivr.store.backend import Backend

DAY = 86400.0


def since_midnight(now: float) -> float:
    return now - now % DAY


def agent_view(acd: AcdService, name: str) -> dict[str, Any]:
    """The agent's state, the offer ringing it now (with its context) or the call it is on or
    wrapping up."""
    engine = acd.engine
    agent = engine.agents.get(name)
    if agent is None:
        return {"agent": None, "offer": None, "call": None}
    out: dict[str, Any] = {"agent": agent.as_json(engine.clock()), "offer": None, "call": None}
    if agent.call_id:
        ctx = acd.context(agent.call_id) or {"call_id": agent.call_id}
        if agent.state is AgentState.ringing:
            call = engine.waiting.get(agent.call_id)
            out["offer"] = {**ctx, "attempt": call.attempt if call else 0}
        else:
            out["call"] = ctx
    return out


def self_service(workers: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Calls still in the IVR, by flow and node, summed over the workers' status lines."""
    counts: Counter[tuple[str, str]] = Counter()
    for w in workers:
        for key, n in (w.get("nodes") or {}).items():
            flow, _, node = str(key).partition(":")
            counts[(flow, node)] += int(n)
    return [{"flow": f, "node": n, "calls": c} for (f, n), c in sorted(counts.items()) if c]


def wallboard(acd: AcdService, store: Path | Backend, workers: Iterable[dict[str, Any]],
              now: float | None = None) -> dict[str, Any]:
    """Per queue: GET /queues' live figures plus today's service level, ASA, abandonment."""
    now = time.time() if now is None else now
    engine = acd.engine
    thresholds = {n: q.service_level for n, q in engine.queues.items()}
    figures = queue_figures(store, since_midnight(now), thresholds)
    queues = []
    for q in engine.queues_view():
        name = q["name"]
        queues.append({**q, "service_level_s": thresholds.get(name, 20.0),
                       "today": figures.get(name, {})})
    return {"at": now, "queues": queues, "agents": engine.agents_view(),
            "self_service": self_service(workers)}


def sample(board: dict[str, Any]) -> dict[str, Any]:
    """One point of the last-hour chart."""
    return {"t": board["at"], "queues": {
        q["name"]: {"waiting": q["waiting"], "service_level": q["today"].get("service_level")}
        for q in board["queues"]}}
