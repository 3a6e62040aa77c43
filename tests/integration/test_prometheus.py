"""A real Prometheus scrapes a real `ivr serve` through a few real calls (README: Operate it).

Prometheus (Debian's /usr/bin/prometheus) runs on a free port with its own storage, scraping
/metrics every second with a `read` token from a credentials file, as deploy/prometheus does;
everything is asserted through Prometheus's query API, so names, labels and the multiprocess
sums are what an operator's dashboards would see.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from phones import Softphone
from server import REPO, Server, free_port, ivr_call, start_server
from udp_peer import UdpPeer

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
ADMIN = "admin-token-for-the-prometheus-test"
READ = "read-token-for-the-prometheus-test"
QUICK = "3000"  # tests/integration/flows/quick.yaml: "Hello.", then a menu (1 -> "You pressed one.")
HANDOFF = "4000"  # tests/integration/flows/handoff.yaml: queue general


class Prometheus:
    """One Prometheus process and its HTTP query API."""

    def __init__(self, root: Path, target: str, token: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        scrape = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
        job = scrape["scrape_configs"][0]
        (root / "token").write_text(token + "\n")
        (root / "token").chmod(0o600)
        job["authorization"]["credentials_file"] = str(root / "token")
        job["static_configs"] = [{"targets": [target]}]
        job["scrape_interval"] = "1s"
        scrape["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        scrape["rule_files"] = [str(REPO / "deploy" / "prometheus" / "alerts.yml")]
        (root / "prometheus.yml").write_text(yaml.safe_dump(scrape))
        self.port = free_port()
        self.log = (root / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={root / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.root = root

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())

    def query(self, expr: str) -> list[dict[str, Any]]:
        doc = self.get("/api/v1/query", query=expr)
        assert doc["status"] == "success", doc
        return list(doc["data"]["result"])

    def value(self, expr: str) -> float | None:
        """The expression's one value now, None when it has no sample."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait(self, what: str, predicate: Any, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except (OSError, ValueError, KeyError):
                last = None
            if last:
                return last
            assert self.proc.poll() is None, self.log_tail()
            time.sleep(0.5)
        raise AssertionError(f"Prometheus: timed out waiting for {what}; last {last!r}\n"
                             f"{self.log_tail()}")

    def log_tail(self) -> str:
        return (self.root / "prometheus.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Prometheus]]:
    root = tmp_path_factory.mktemp("prom")
    server = start_server(root / "srv", max_calls=8,
                          extra={"agents": {"bob": {"queues": ["general"]}}},
                          env={"IVR_TOKENS": f"admin={ADMIN},read={READ}"}, api_token=ADMIN)
    prom = None
    try:
        prom = Prometheus(root / "prom", f"127.0.0.1:{server.http_port}", READ)
        prom.wait("its first scrape of ivr", lambda: prom.value('up{job="ivr"}') == 1)
        yield server, prom
    finally:
        if prom is not None:
            prom.stop()
        server.stop()


def _metrics_text(server: Server, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_prometheus_sees_calls_dtmf_latency_and_queue_gauges(served: tuple[Server, Prometheus],
                                                              tmp_path: Path) -> None:
    server, prom = served
    status, _ = server.request("POST", "/agents/bob/login")
    assert status == 200
    status, _ = server.request("POST", "/agents/bob/away")  # staffed, so callers wait
    assert status == 200
    # two DTMF calls through the quick flow: "1" answers the menu, "You pressed one." follows
    for _ in range(2):
        code, doc, err = ivr_call(server, f"sip:{QUICK}@{server.uri_host}", "--dtmf", "1")
        assert code == 0, err[-2000:]
        assert doc["sent"][0]["dtmf"] == "1"  # type: ignore[index]
    server.wait_cdrs(2)
    # a third caller waits in the queue while Prometheus looks
    waiter = Softphone("--call", f"sip:{HANDOFF}@{server.uri_host}", "--hangup-after", "10",
                       "--duration", "40")
    try:
        waiter.wait(10, "the IVR's answer", ev="state", leg="out", state="CONFIRMED")
        prom.wait("one caller waiting in general",
                  lambda: prom.value('ivr_queue_waiting_calls{queue="general"}') == 1)
        assert prom.value('ivr_queue_agents{queue="general",state="away"}') == 1
        assert prom.value('ivr_agents{state="away"}') == 1
        assert prom.value('ivr_calls_active') == 1
        longest = prom.wait("the longest wait to grow", lambda: (
            prom.value('ivr_queue_longest_wait_seconds{queue="general"}') or 0) >= 1)
        assert longest
        waiter.wait(15, "the caller to give up", ev="state", leg="out", state="DISCONNECTED")
    finally:
        waiter.stop()
    prom.wait("the queue to empty",
              lambda: prom.value('ivr_queue_waiting_calls{queue="general"}') == 0)
    prom.wait("three calls started",
              lambda: prom.value("sum(ivr_calls_started_total)") == 3)
    assert prom.value('ivr_calls_started_total{flow="quick"}') == 2
    assert prom.value('ivr_calls_started_total{flow="handoff"}') == 1
    prom.wait("the abandoned caller counted", lambda: prom.value(
        'ivr_queue_outcomes_total{queue="general",outcome="abandoned"}') == 1)
    assert prom.value('ivr_queue_entered_total{queue="general"}') == 1
    # each DTMF call: the digit, then "You pressed one." -> one DTMF->prompt sample each
    count = prom.wait("DTMF->prompt samples", lambda: prom.value(
        "sum(ivr_dtmf_to_prompt_seconds_count)"))
    assert count >= 2
    p99 = prom.value("histogram_quantile(0.99, sum by (le) (ivr_dtmf_to_prompt_seconds_bucket))")
    assert p99 is not None and 0 < p99 < 5, p99
    assert (prom.value('sum(ivr_sip_responses_total{code="200"})') or 0) >= 3
    assert (prom.value("sum(ivr_ack_to_first_prompt_seconds_count)") or 0) >= 3
    assert (prom.value("sum(ivr_invite_to_200_seconds_count)") or 0) >= 3
    workers = prom.value("ivr_workers")
    assert workers and prom.value("ivr_workers_alive") == workers
    assert (prom.value("sum(ivr_store_write_seconds_count)") or 0) > 0
    ended = prom.wait("three calls ended", lambda: prom.value("sum(ivr_calls_ended_total)") == 3)
    assert ended
    # the labels are bounded words: no caller number or call id reached a label
    labels = prom.get("/api/v1/labels")["data"]
    assert not {"caller", "call_id", "number"} & set(labels), labels


def test_a_spoken_choice_times_recognition(served: tuple[Server, Prometheus]) -> None:
    server, prom = served
    before = prom.value("sum(ivr_speech_end_to_result_seconds_count)") or 0
    calls = len(server.calls())
    # the caller knows the prompts from the flows (no transcription: quick on a loaded machine)
    # and hangs up 30 s in; a slow `ivr call` exit under load (seen on main too) is not ours
    with contextlib.suppress(subprocess.TimeoutExpired):
        ivr_call(server, f"sip:1000@{server.uri_host}", "--say", "balance", "--asr", "none",
                 call_timeout=30, timeout=90)
    (cdr,) = server.wait_cdrs(calls + 1, timeout=30)[calls:]
    assert "main" in cdr["path"], cdr["path"]  # the bank's main menu listened for speech
    # the caller's words ended, were decoded, and gave the node a result (matched or not)
    prom.wait("an end of speech->result sample", lambda: (prom.value(
        "sum(ivr_speech_end_to_result_seconds_count)") or 0) > before)
    assert (prom.value("sum(ivr_asr_decode_seconds_count)") or 0) > 0
    assert prom.value("ivr_speech_ready") == 1


def _options(src: tuple[str, int], port: int, ua: str) -> bytes:
    branch, tag, call_id = (secrets.token_hex(6) for _ in range(3))
    return ("\r\n".join([
        f"OPTIONS sip:100@127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {src[0]}:{src[1]};branch=z9hG4bK{branch}",
        f"From: <sip:tester@{src[0]}:{src[1]}>;tag={tag}", f"To: <sip:100@127.0.0.1:{port}>",
        f"Call-ID: {call_id}@{src[0]}", "CSeq: 1 OPTIONS", "Max-Forwards: 70",
        f"User-Agent: {ua}", "Content-Length: 0"]) + "\r\n\r\n").encode()


def test_front_rejects_reach_prometheus_by_reason(served: tuple[Server, Prometheus]) -> None:
    server, prom = served
    before = prom.value('ivr_front_rejects_total{reason="scanner"}')
    assert before is not None  # exported (as 0) before anything was refused
    peer = UdpPeer()
    try:
        for _ in range(3):
            peer.send(_options(peer.addr, server.sip_port, "friendly-scanner"), server.sip_port)
        assert peer.replies(0.5) == []  # scanners learn nothing
        peer.send(_options(peer.addr, server.sip_port, "Linphone/5.0"), server.sip_port)
        assert peer.replies(2.0, expect=1)  # an ordinary phone is answered, and not counted
    finally:
        peer.close()
    prom.wait("three scanner rejects", lambda: prom.value(
        'ivr_front_rejects_total{reason="scanner"}') == before + 3)
    assert prom.value('ivr_front_rejects_total{reason="acl"}') == 0


def test_promtool_accepts_our_exposition(served: tuple[Server, Prometheus]) -> None:
    server, _ = served
    status, text = _metrics_text(server, READ)
    assert status == 200
    for name in ("ivr_calls_active", "ivr_dtmf_to_prompt_seconds", "ivr_queue_waiting_calls"):
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text, name
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30, check=False)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()[-3000:]


def test_metrics_need_a_read_token(served: tuple[Server, Prometheus]) -> None:
    server, _ = served
    assert _metrics_text(server, None)[0] == 401
    assert _metrics_text(server, "not-a-token-at-all-000")[0] == 401
    assert _metrics_text(server, ADMIN)[0] == 200


def test_a_dead_worker_is_counted_and_its_calls_stay_counted(
        served: tuple[Server, Prometheus]) -> None:
    """Last in this file: it kills a worker of the shared server."""
    server, prom = served
    started = prom.value("sum(ivr_calls_started_total)")
    restarts = prom.value("sum(ivr_worker_restarts_total)")
    served_by = [c["worker"] for c in server.calls()]
    busiest = max(set(served_by), key=served_by.count)  # it counted calls of its own
    victim = next(w for w in server.health()["workers"] if w["id"] == busiest)
    assert started is not None and started >= served_by.count(busiest) > 0
    os.kill(int(victim["pid"]), signal.SIGKILL)
    prom.wait("the restart counted", lambda: prom.value(
        f'ivr_worker_restarts_total{{worker="{victim["id"]}"}}') == (restarts or 0) + 1)
    prom.wait("the pool whole again", lambda: prom.value("ivr_workers_alive") ==
              prom.value("ivr_workers"))
    # the killed worker's samples stay in the sums: counters never go back
    assert prom.value("sum(ivr_calls_started_total)") == started
    assert prom.value("sum(resets(ivr_calls_started_total[5m]))") == 0


def test_a_dead_broker_shows_as_disconnected_and_a_growing_outbox(
        served: tuple[Server, Prometheus]) -> None:
    """Last in this file: it kills the shared server's broker. Calls go on; their events wait."""
    from ivr.bus.broker import find_ours

    server, prom = served
    prom.wait("every worker on the bus (the restarted one too)", lambda: prom.value(
        'min(ivr_bus_connected{process=~"worker-.*"})') == 1)
    pid = find_ours(server.root / "var" / "mosquitto")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    code, _, err = ivr_call(server, f"sip:{QUICK}@{server.uri_host}", "--dtmf", "1")
    assert code == 0, err[-2000:]  # a dead broker degrades, never drops a call
    prom.wait("a worker's outbox holding the call's events", lambda: (prom.value(
        'max(ivr_bus_outbox_messages{process=~"worker-.*"})') or 0) > 0)
    prom.wait("the workers' broker connection down", lambda: prom.value(
        'min(ivr_bus_connected{process=~"worker-.*"})') == 0)
    prom.wait("the supervisor's too", lambda: prom.value(
        'ivr_bus_connected{process="supervisor"}') == 0)
