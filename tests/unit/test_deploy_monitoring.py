"""deploy/prometheus and deploy/grafana: promtool accepts the rules, their unit tests and the
scrape config, and the dashboard and rules ask only for metrics the engine exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import Counter, Histogram

from ivr import metrics
from ivr.metrics_state import Snapshot, StateCollector

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "ivr.json"
PROMTOOL = "/usr/bin/promtool"
_NAME = re.compile(r"\b(ivr_[a-z0-9_]+|ivr:[a-z0-9_:]+)")


def promtool(*args: str, cwd: Path = PROM) -> str:
    proc = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def exported() -> set[str]:
    """Every sample name /metrics can carry."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            names.add(value._name + "_total")
        elif isinstance(value, Histogram):
            names |= {value._name + s for s in ("_bucket", "_count", "_sum")}
    for family in StateCollector(Snapshot(front_rejects={})).collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def recorded() -> set[str]:
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def test_promtool_checks_the_alert_rules() -> None:
    assert "SUCCESS" in promtool("check", "rules", "alerts.yml")


def test_the_alerts_fire_as_their_unit_tests_expect() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")


def test_the_alerts_cover_what_on_call_needs() -> None:
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert {"IvrWorkersRestarting", "IvrSpeechNotReady", "IvrServiceLevelBelowTarget",
            "IvrOutboxGrowing", "IvrSip5xxRising"} <= alerts


def test_the_scrape_config_is_valid_and_sends_a_token(tmp_path: Path) -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "ivr")
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer" and job["authorization"]["credentials_file"]
    token = tmp_path / "token"
    token.write_text("a-read-token-of-at-least-16\n")
    job["authorization"]["credentials_file"] = str(token)
    config["rule_files"] = [str(PROM / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    assert "SUCCESS" in promtool("check", "config", str(tmp_path / "prometheus.yml"))


@pytest.mark.parametrize("path", [DASHBOARD, PROM / "alerts.yml"], ids=["dashboard", "alerts"])
def test_every_metric_asked_for_is_exported(path: Path) -> None:
    text = path.read_text()
    asked = set(_NAME.findall(text))
    assert asked, "no ivr metric in the file"
    unknown = asked - exported() - recorded()
    assert not unknown, f"{path.name} asks for metrics /metrics does not have: {sorted(unknown)}"


def test_the_dashboard_has_a_panel_per_topic() -> None:
    doc = json.loads(DASHBOARD.read_text())
    rows = {p["title"] for p in doc["panels"] if p["type"] == "row"}
    assert rows == {"Calls", "Latency callers hear", "Speech", "Queues", "Bus and store"}
    exprs = " ".join(t["expr"] for p in doc["panels"] for t in p.get("targets", []))
    for needed in ("ivr_dtmf_to_prompt_seconds_bucket", "ivr_queue_waiting_calls",
                   "ivr_bus_outbox_messages", "ivr_sip_responses_total",
                   "ivr_input_events_total", "ivr:queue_service_level:ratio30m"):
        assert needed in exprs, needed
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))


def test_promtool_accepts_the_exposition_of_a_busy_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    from ivr import metrics_dir
    from ivr.metrics_state import exposition

    monkeypatch.delenv(metrics_dir.ENV, raising=False)
    metrics.CALLS_ENDED.labels("caller_hangup").inc()
    metrics.INPUT_EVENTS.labels("bank", "main", "nomatch").inc()
    metrics.QUEUE_ANSWER_WAIT.labels("general").observe(12.0)
    snap = Snapshot(
        workers=[{"id": "1", "alive": True, "calls": 2, "limit": 4, "restarts": 1}],
        speech_ready=True, front_up=True,
        queues=[{"name": "general", "waiting": 1, "callbacks": 0, "longest_wait_s": 3.0,
                 "service_level": 20.0, "agents": {"ready": 1}}],
        agents=[{"state": "ready"}], outboxes={"acd": 0}, bus={"acd": True},
        front_rejects={"acl": 1})
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition(snap),
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()
