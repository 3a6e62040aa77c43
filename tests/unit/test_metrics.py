"""The metrics module: bounded labels, where counts land, the scrape-time state, the multiprocess
sums across worker processes, and the ACD's queue counters."""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import Harness, steps
from prometheus_client import REGISTRY
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from ivr import call_position, metrics, metrics_dir
from ivr.acd.counts import QueueCounts
from ivr.acd.engine import Engine
from ivr.acd.model import Agent, CallClosed, QueuePolicy
from ivr.flow.context import CallContext
from ivr.flow.interpreter import Interpreter
from ivr.flow.scripted import ScriptedChannel
from ivr.front.rpc import REJECT_REASONS, parse_rejects
from ivr.metrics_state import Snapshot, exposition

REPO = Path(__file__).resolve().parents[2]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def families(text: bytes) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {sorted labels: value}} of an exposition."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


@pytest.mark.parametrize(("reason", "label"), [
    ("caller hangup", "caller_hangup"), ("ivr hangup", "ivr_hangup"),
    ("media timeout", "media_timeout"), ("internal error", "internal_error"),
    ("error: transfer to sip:+15551234567@carrier refused", "error"),
    ("caller said 4111 1111", "other"), ("", "other"), ("inputs_exhausted", "inputs_exhausted"),
])
def test_end_reasons_are_a_bounded_set_of_words(reason: str, label: str) -> None:
    assert metrics.end_reason(reason) == label


def test_an_input_event_counts_at_the_node_the_call_is_at() -> None:
    before = sample("ivr_input_events_total", flow="bank", node="account", event="barge_in")

    def at_node() -> None:
        call_position.current.set(("bank", "account"))
        metrics.input_event("barge_in")

    contextvars.copy_context().run(at_node)
    metrics.input_event("barge_in")  # outside any call: not counted against the node
    assert sample("ivr_input_events_total", flow="bank", node="account",
                  event="barge_in") == before + 1
    assert sample("ivr_input_events_total", flow="-", node="-", event="barge_in") >= 1


MENU = """
    flow: m
    defaults: {retries: 3}
    start: main
    nodes:
      main:
        menu:
          prompt: "Press 1."
          options: [{dtmf: "1", goto: done}]
        on_fail: done
      done: {say: "bye", hangup: true}
"""


async def test_the_flow_reports_noinput_and_nomatch_of_its_node(harness: Harness) -> None:
    flows = harness.load(MENU)
    seen: list[tuple[str, tuple[str, str]]] = []
    channel = ScriptedChannel(steps=steps("silence", "dtmf:7", "dtmf:1"))
    ctx = CallContext(channel=channel, config=harness.config, flows=flows, flow=flows["m"],
                      on_input_event=lambda kind: seen.append((kind,
                                                               call_position.current.get())))
    result = await Interpreter(ctx).run()
    assert result.ctx.path == ["main", "done"]
    assert seen == [("noinput", ("m", "main")), ("nomatch", ("m", "main"))]


def test_the_state_collector_shows_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics_dir.ENV, raising=False)
    snap = Snapshot(
        workers=[{"id": "1", "alive": True, "calls": 3, "limit": 4, "restarts": 0},
                 {"id": "2", "alive": False, "calls": 2, "limit": 4, "restarts": 2}],
        speech_ready=True, front_up=True,
        queues=[{"name": "general", "waiting": 2, "callbacks": 1, "longest_wait_s": 42.5,
                 "service_level": 20.0, "agents": {"ready": 1, "on_call": 2}}],
        agents=[{"name": "bob", "state": "on_call"}, {"name": "eve", "state": "on_call"},
                {"name": "ann", "state": "ready"}],
        outboxes={"acd": 0, "worker-1": 7}, bus={"acd": True, "worker-1": False},
        front_rejects={"acl": 3, "pike": 1})
    text = exposition(snap)
    got = families(text)
    assert got["ivr_calls_active"][()] == 3  # the dead worker's last status is not counted
    assert got["ivr_capacity_calls"][()] == 4
    assert got["ivr_workers_alive"][()] == 1 and got["ivr_workers"][()] == 2
    assert got["ivr_worker_restarts_total"][(("worker", "2"),)] == 2
    assert got["ivr_worker_calls"][(("worker", "2"),)] == 0
    assert got["ivr_queue_waiting_calls"][(("queue", "general"),)] == 2
    assert got["ivr_queue_callbacks_waiting"][(("queue", "general"),)] == 1
    assert got["ivr_queue_longest_wait_seconds"][(("queue", "general"),)] == 42.5
    assert got["ivr_queue_agents"][(("queue", "general"), ("state", "on_call"))] == 2
    assert got["ivr_agents"][(("state", "on_call"),)] == 2
    assert got["ivr_bus_outbox_messages"][(("process", "worker-1"),)] == 7
    assert got["ivr_bus_connected"][(("process", "worker-1"),)] == 0
    assert got["ivr_front_rejects_total"][(("reason", "acl"),)] == 3
    assert got["ivr_speech_ready"][()] == 1
    assert b"# HELP ivr_queue_waiting_calls " in text
    assert b"# TYPE ivr_dtmf_to_prompt_seconds histogram" in text  # the counted ones too


def test_the_front_rejects_are_left_out_when_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics_dir.ENV, raising=False)
    assert "ivr_front_rejects_total" not in families(exposition(Snapshot()))


WORKER = """
import sys
from ivr import metrics
metrics.CALLS_STARTED.labels("quick").inc()
metrics.DTMF_TO_PROMPT.observe(0.05)
metrics.SIP_RESPONSES.labels(sys.argv[1]).inc()
"""


def test_the_processes_samples_are_summed_and_a_dead_workers_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics_dir.ENV, raising=False)  # undone at the end: prepare() sets it
    path = metrics_dir.prepare(tmp_path / "var")
    assert path == (tmp_path / "var" / "metrics").resolve() and os.environ[metrics_dir.ENV]
    (path / "stale.db").write_bytes(b"from a previous run")
    assert metrics_dir.prepare(tmp_path / "var") == path and not (path / "stale.db").exists()
    for code in ("200", "503"):
        proc = subprocess.run([sys.executable, "-c", WORKER, code], cwd=REPO, check=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 0
    got = families(exposition(Snapshot()))
    assert got["ivr_calls_started_total"][(("flow", "quick"),)] == 2
    assert got["ivr_dtmf_to_prompt_seconds_count"][()] == 2
    assert got["ivr_sip_responses_total"][(("code", "503"),)] == 1
    for f in path.glob("counter_*.db"):
        mark_process_dead(int(f.stem.split("_")[1]), str(path))  # type: ignore[no-untyped-call]
    after = families(exposition(Snapshot()))
    assert after["ivr_calls_started_total"][(("flow", "quick"),)] == 2  # counters are history


def _engine(service_level: float = 20.0) -> tuple[Engine, list[float]]:
    now = [1_000_000.0]
    engine = Engine({"q": QueuePolicy(service_level=service_level)},
                    [Agent("alice", uri="sip:alice@127.0.0.1", queues=["q"])],
                    clock=lambda: now[0])
    engine.agent_action("alice", "login")
    return engine, now


def test_queue_counters_follow_the_engine_once_per_event() -> None:
    engine, now = _engine()
    counts = QueueCounts(engine)
    before = {k: sample(k, queue="q") for k in (
        "ivr_queue_entered_total", "ivr_queue_answered_total",
        "ivr_queue_answered_within_target_total", "ivr_queue_answer_wait_seconds_count")}
    abandoned = sample("ivr_queue_outcomes_total", queue="q", outcome="abandoned")
    other = sample("ivr_queue_outcomes_total", queue="q", outcome="other")
    counts.entered("q")
    counts.entered("no-such-queue")  # not a label: unknown queues are not counted
    counts.apply(engine.enqueue("c1", "q"))
    counts.apply(engine.tick())  # offered to alice
    now[0] += 5
    counts.apply(engine.answered("c1", "alice", engine.waiting["c1"].attempt))
    counts.apply(engine.enqueue("c1", "q"))  # a worker resyncs: Connected again, counted once
    counts.apply(engine.ended("c1", "caller said 0712 345"))  # a free-text outcome
    counts.entered("q")
    counts.apply(engine.enqueue("c2", "q"))
    counts.apply(engine.caller_gone("c2"))
    assert sample("ivr_queue_entered_total", queue="q") == before["ivr_queue_entered_total"] + 2
    assert sample("ivr_queue_answered_total", queue="q") == before["ivr_queue_answered_total"] + 1
    assert sample("ivr_queue_answered_within_target_total", queue="q") == \
        before["ivr_queue_answered_within_target_total"] + 1
    assert sample("ivr_queue_answer_wait_seconds_count", queue="q") == \
        before["ivr_queue_answer_wait_seconds_count"] + 1
    assert sample("ivr_queue_outcomes_total", queue="q", outcome="abandoned") == abandoned + 1
    assert sample("ivr_queue_outcomes_total", queue="q", outcome="other") == other + 1
    assert REGISTRY.get_sample_value("ivr_queue_entered_total", {"queue": "no-such-queue"}) is None


def test_an_answer_after_the_service_level_is_not_in_target() -> None:
    engine, now = _engine(service_level=10.0)
    counts = QueueCounts(engine)
    within = sample("ivr_queue_answered_within_target_total", queue="q")
    answered = sample("ivr_queue_answered_total", queue="q")
    counts.apply(engine.enqueue("late", "q"))
    counts.apply(engine.tick())
    now[0] += 30
    counts.apply(engine.answered("late", "alice", engine.waiting["late"].attempt))
    assert sample("ivr_queue_answered_total", queue="q") == answered + 1
    assert sample("ivr_queue_answered_within_target_total", queue="q") == within


def test_a_closed_call_keeps_its_queue_out_of_equality() -> None:
    assert CallClosed("c", "abandoned", None, "q") == CallClosed("c", "abandoned")
    assert CallClosed("c", "abandoned", None, "q").queue == "q"


def test_the_fronts_reject_statistics_are_read_by_reason() -> None:
    text = ("script:ivr_reject_acl = 3\nscript:ivr_reject_scanner = 12\n"
            "script:other_stat = 9\nscript:ivr_reject_unknown = 4\n")
    got = parse_rejects(text)
    assert got["acl"] == 3 and got["scanner"] == 12 and got["pike"] == 0
    assert set(got) == set(REJECT_REASONS)  # every reason, and only ours


def test_the_front_config_counts_every_reject_reason() -> None:
    from ivr.front.render import _ENV, TEMPLATE_NAME

    source = _ENV.loader.get_source(_ENV, TEMPLATE_NAME)[0]  # type: ignore[union-attr]
    for reason in REJECT_REASONS:
        assert f'update_stat("ivr_reject_{reason}", "+1")' in source, reason


def test_a_process_started_without_the_directory_counts_in_memory(tmp_path: Path) -> None:
    """A process with the directory in its environment from the start shares its samples (the
    workers, the supervisor under `ivr serve`); one without counts in memory (serve() warns)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), metrics_dir.ENV: str(tmp_path)}
    probe = "from ivr.metrics_state import shared; print(shared())"
    got = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         check=True)
    assert got.stdout.strip() == "True"
    env.pop(metrics_dir.ENV)
    got = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         check=True)
    assert got.stdout.strip() == "False"
