"""The ACD's Prometheus counters, kept from the actions the engine decides (ivr/metrics.py).

Service level and abandonment are ratios of these counters over a window, which Prometheus
computes (deploy/prometheus/alerts.yml): answered within the queue's `service_level` seconds over
answered, abandoned over entered.
"""

from __future__ import annotations

from ivr import metrics
from ivr.acd.engine import Engine
from ivr.acd.model import Action, CallbackScheduled, CallClosed, Connected

OUTCOMES = frozenset({"answered", "abandoned", "timeout", "overflow", "lost", "callback_failed",
                      "callback_unanswered"})
"""Outcome labels; what a worker reports beyond these is `other` (labels stay bounded)."""


class QueueCounts:
    """Counts each queued call once per event, though the engine repeats Connected to a worker
    that resyncs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._answered: set[str] = set()

    def entered(self, queue: str) -> None:
        if queue in self.engine.queues:
            metrics.QUEUE_ENTERED.labels(queue).inc()

    def apply(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, Connected) and a.call_id not in self._answered:
                call = self.engine.active.get(a.call_id)
                if call is None:
                    continue
                self._answered.add(a.call_id)
                policy = self.engine.queues.get(call.queue)
                metrics.QUEUE_ANSWERED.labels(call.queue).inc()
                metrics.QUEUE_ANSWER_WAIT.labels(call.queue).observe(a.waited)
                if policy is not None and a.waited <= policy.service_level:
                    metrics.QUEUE_ANSWERED_IN_TARGET.labels(call.queue).inc()
            elif isinstance(a, CallbackScheduled):
                call = self.engine.waiting.get(a.call_id)
                if call is not None:
                    metrics.QUEUE_CALLBACKS.labels(call.queue).inc()
            elif isinstance(a, CallClosed):
                self._answered.discard(a.call_id)
                if a.queue:
                    outcome = a.outcome if a.outcome in OUTCOMES else "other"
                    metrics.QUEUE_OUTCOMES.labels(a.queue, outcome).inc()
