"""The supervisor's /metrics: what the processes counted, plus the live state read at scrape time.

Counters and histograms come from every process's samples (multiprocess mode, ivr/metrics_dir.py;
in one process, from the default registry). Gauges for state the supervisor already keeps (worker
status lines, the ACD's queues and agents, outboxes, the front) are not mirrored into gauge
objects that could go stale: a collector reads a `Snapshot` of them on each scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import REGISTRY, generate_latest, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from ivr import metrics_dir

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Snapshot:
    """The supervisor's live state, as the collector needs it (plain data: easy to test)."""

    workers: list[dict[str, Any]] = field(default_factory=list)
    """WorkerProc.as_json() of each worker (id, alive, calls, limit, restarts, outbox, bus)."""
    speech_ready: bool = False
    front_up: bool = False
    queues: list[dict[str, Any]] = field(default_factory=list)
    """Engine.queues_view(): name, waiting, callbacks, longest_wait_s, agents, service_level."""
    agents: list[dict[str, Any]] = field(default_factory=list)
    """Engine.agents_view(): each agent's state."""
    outboxes: dict[str, int] = field(default_factory=dict)
    """Messages waiting to be published, by process (supervisor's ACD, worker-N)."""
    bus: dict[str, bool] = field(default_factory=dict)
    """Whether each process's bus connection is up."""
    front_rejects: dict[str, int] | None = None
    """The front's refused requests by reason (acl, pike, scanner, max_calls), when known."""


class Source(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class StateCollector:
    """Gauges (and the front's and pool's counters) from a Snapshot taken at scrape time."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        alive = [w for w in s.workers if w.get("alive")]
        yield _gauge("ivr_calls_active", "Calls the workers carry now (a callback counts two).",
                     sum(int(w.get("calls", 0)) for w in alive))
        yield _gauge("ivr_capacity_calls", "Calls the live workers may carry.",
                     sum(int(w.get("limit", 0)) for w in alive))
        yield _gauge("ivr_workers_alive", "Worker processes running.", len(alive))
        yield _gauge("ivr_workers", "Worker processes the pool should run.", len(s.workers))
        restarts = CounterMetricFamily("ivr_worker_restarts", "Worker processes restarted after "
                                       "they died.", labels=["worker"])
        calls = GaugeMetricFamily("ivr_worker_calls", "Calls each worker carries now.",
                                  labels=["worker"])
        for w in s.workers:
            restarts.add_metric([str(w["id"])], float(w.get("restarts", 0)))
            calls.add_metric([str(w["id"])], float(w.get("calls", 0) if w.get("alive") else 0))
        yield restarts
        yield calls
        yield _gauge("ivr_speech_ready", "1 when every live worker's recognizer is ready.",
                     int(s.speech_ready))
        yield _gauge("ivr_front_up", "1 when the SIP front (Kamailio) runs.", int(s.front_up))
        yield from self._queues(s)
        yield from self._bus(s)
        if s.front_rejects is not None:
            rejects = CounterMetricFamily("ivr_front_rejects", "Requests the front refused, by "
                                          "reason.", labels=["reason"])
            for reason, n in sorted(s.front_rejects.items()):
                rejects.add_metric([reason], float(n))
            yield rejects

    @staticmethod
    def _queues(s: Snapshot) -> Iterator[Metric]:
        waiting = GaugeMetricFamily("ivr_queue_waiting_calls", "Callers waiting in the queue "
                                    "(callbacks not counted).", labels=["queue"])
        callbacks = GaugeMetricFamily("ivr_queue_callbacks_waiting", "Callbacks waiting for an "
                                      "agent.", labels=["queue"])
        longest = GaugeMetricFamily("ivr_queue_longest_wait_seconds", "How long the longest "
                                    "waiting caller has waited.", labels=["queue"])
        target = GaugeMetricFamily("ivr_queue_service_level_target_seconds", "The queue's "
                                   "service_level: answered within this counts as in target.",
                                   labels=["queue"])
        agents = GaugeMetricFamily("ivr_queue_agents", "Agents of the queue by state.",
                                   labels=["queue", "state"])
        for q in s.queues:
            name = str(q["name"])
            waiting.add_metric([name], float(q.get("waiting", 0)))
            callbacks.add_metric([name], float(q.get("callbacks", 0)))
            longest.add_metric([name], float(q.get("longest_wait_s", 0.0)))
            target.add_metric([name], float(q.get("service_level", 0.0)))
            for state, n in sorted((q.get("agents") or {}).items()):
                agents.add_metric([name, str(state)], float(n))
        yield from (waiting, callbacks, longest, target, agents)
        by_state: dict[str, int] = {}
        for a in s.agents:
            state = str(a.get("state", "unknown"))
            by_state[state] = by_state.get(state, 0) + 1
        total = GaugeMetricFamily("ivr_agents", "Agents by state.", labels=["state"])
        for state, n in sorted(by_state.items()):
            total.add_metric([state], float(n))
        yield total

    @staticmethod
    def _bus(s: Snapshot) -> Iterator[Metric]:
        depth = GaugeMetricFamily("ivr_bus_outbox_messages", "Messages waiting in a process's "
                                  "durable outbox for the broker.", labels=["process"])
        for process, n in sorted(s.outboxes.items()):
            depth.add_metric([process], float(n))
        connected = GaugeMetricFamily("ivr_bus_connected", "1 when the process's connection to "
                                      "the broker is up.", labels=["process"])
        for process, up in sorted(s.bus.items()):
            connected.add_metric([process], float(up))
        yield depth
        yield connected


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


class _Together:
    """Several collectors exposed as one (generate_latest takes anything with collect())."""

    def __init__(self, *sources: Source) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def shared() -> bool:
    """Whether this process writes its samples to the multiprocess directory (it must have been
    set before prometheus_client was imported: ivr/metrics_dir.py)."""
    return metrics_dir.current() is not None and \
        values.ValueClass is not values.MutexValue


def exposition(snapshot: Snapshot) -> bytes:
    """The text format of every process's samples and the live state. Reads the sample files:
    call it off the event loop, with a snapshot taken on it."""
    path = metrics_dir.current()
    counted: Source = REGISTRY
    if path is not None:
        counted = MultiProcessCollector(None, path=str(path))  # type: ignore[no-untyped-call]
    return generate_latest(_Together(counted, StateCollector(snapshot)))
