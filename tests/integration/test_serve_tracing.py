"""Per-call traces from a real `ivr serve` into a real OTLP/HTTP receiver (tests/integration/
otlp_receiver.py decodes the protobuf a collector would get): one trace per call, with spans from
the worker (call, nodes, prompts, listens, recognition, queue wait, agent leg), the ACD and the
supervisor's CDR store, parented across the processes by the traceparent on the bus. The same
calls check the JSON log lines (call, flow, node, worker, trace) and `ivr log-level` reaching the
workers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from otlp_receiver import OtlpReceiver, ReceivedSpan
from phones import Softphone
from server import IVR_BIN, Server, ivr_call, start_server

TRACED = """\
flow: traced
defaults: {timeout: 4s, retries: 0}
start: hello
nodes:
  hello: {say: "Hello.", next: pick}
  pick:
    menu:
      prompt: "Say balance, or press 1."
      options: [{dtmf: "1", speech: [balance], goto: bye}]
    on_fail: bye
  bye: {say: "Goodbye.", hangup: true}
"""


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("traced")
    (root / "flows").mkdir()
    (root / "flows" / "traced.yaml").write_text(TRACED)
    routes = {"1000": "acme-bank", "3100": "traced", "4000": "handoff", "default": "acme-bank"}
    srv = start_server(root, max_calls=8, extra={
        "routes": routes,
        "agents": {"bob": {"queues": ["general"]}},
        "tracing": {"enabled": True, "exporter": "otlp", "otlp_endpoint": otlp.endpoint,
                    "service_name": "ivr-test"}},
        env={"OTEL_BSP_SCHEDULE_DELAY": "200"})  # the batch goes out 0.2 s after a span ends
    try:
        yield srv
    finally:
        srv.stop()


def trace_of(otlp: OtlpReceiver, server: Server, call_id: str, *,
             wanted: tuple[str, ...]) -> list[ReceivedSpan]:
    """The spans of one call's trace once the names in `wanted` have all arrived."""
    def arrived() -> list[ReceivedSpan] | None:
        spans = otlp.snapshot()
        roots = [s for s in spans if s.name == "call" and s.call_id == call_id]
        if not roots:
            return None
        trace = [s for s in spans if s.trace_id == roots[0].trace_id]
        return trace if set(wanted) <= {s.name for s in trace} else None
    return list(server.wait(arrived, 20, f"the spans {wanted} of call {call_id}"))


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, found)
    return found[0]


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_id == parent.span_id]


def log_lines(server: Server) -> list[dict[str, Any]]:
    out = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def ivr_admin(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(IVR_BIN), *args, "--server", f"http://127.0.0.1:{server.http_port}",
         "--token", server.token], capture_output=True, text=True, timeout=30, check=False)


def test_a_speech_call_is_one_trace_and_its_log_lines_name_it(server: Server,
                                                             otlp: OtlpReceiver) -> None:
    assert not [r for r in log_lines(server) if r["logger"] == "ivr.sip"
                and r["level"] == "debug"]  # INFO by default
    done = ivr_admin(server, "log-level", "DEBUG", "--logger", "ivr.sip")
    assert done.returncode == 0, done.stderr
    assert "ivr.sip: DEBUG" in done.stdout.splitlines(), done.stdout

    before = len(server.calls())
    code, _, err = ivr_call(server, f"sip:3100@{server.uri_host}", "--say", "balance",
                            call_timeout=30)
    (cdr,) = server.wait_cdrs(before + 1)[before:]
    call_id = cdr["call_id"]
    spans = trace_of(otlp, server, call_id, wanted=(
        "call", "node say", "node menu", "prompt", "listen", "recognition", "cdr call.end"))

    # one trace for the call, every span of it carrying the call id
    assert {s.trace_id for s in otlp.snapshot() if s.call_id == call_id} == {spans[0].trace_id}
    assert all(s.call_id == call_id for s in spans)
    call = one(spans, "call")
    assert call.parent_id == "" and call.process.startswith("worker-")
    assert call.resource["service.name"] == "ivr-test"
    assert call.attributes["ivr.flow"] == "traced"
    nodes = [s for s in spans if s.name.startswith("node ")]
    assert [s.attributes["ivr.node"] for s in nodes if s.parent_id == call.span_id] == \
        [s.attributes["ivr.node"] for s in nodes]
    assert {s.attributes["ivr.node"] for s in nodes} >= {"hello", "pick"}
    menu = one(spans, "node menu")
    assert {s.name for s in children(spans, menu)} == {"prompt", "listen"}
    listens = [s for s in spans if s.name == "listen"]
    assert any(r.parent_id in {s.span_id for s in listens}
               for r in spans if r.name == "recognition")
    assert all(s.process == call.process for s in spans if not s.name.startswith("cdr "))
    # the supervisor stored the call's events as children of the call span
    for kind in ("cdr call.start", "cdr call.end"):
        cdr_span = one(spans, kind)
        assert cdr_span.process == "supervisor" and cdr_span.parent_id == call.span_id

    # the worker's log lines of the call: JSON with the call, flow, node, worker and trace
    decoded = [r for r in log_lines(server) if r["logger"] == "ivr.sip"
               and r["level"] == "debug" and r["msg"].startswith("decoded")]
    assert decoded, server.log_tail()
    line = decoded[-1]
    assert (line["call_id"], line["flow"], line["node"]) == (call_id, "traced", "pick"), line
    assert line["worker"] == call.process.removeprefix("worker-")
    assert line["trace_id"] == call.trace_id
    started = [r for r in log_lines(server) if r["call_id"] == call_id]
    assert started and all(r["worker"] != "-" or r["logger"].startswith("ivr.acd")
                           for r in started)
    assert code in (0, 1), err[-2000:]
    server.wait_idle()


def test_a_queued_call_traces_the_wait_the_acd_and_the_agent_leg(server: Server,
                                                                otlp: OtlpReceiver,
                                                                tmp_path: Path) -> None:
    bob = Softphone("--name", "bob", "--register", server.uri_host, "--incoming", "answer",
                    "--duration", "40", cwd=tmp_path)
    caller = None
    try:
        bob.wait(10, "bob registered at the front", ev="registered", code=200)
        status, _ = server.request("POST", "/agents/bob/login")
        assert status == 200
        before = len(server.calls())
        caller = Softphone("--name", "carol", "--call", f"sip:4000@{server.uri_host}",
                           "--play", "tone", "--hangup-after", "10", "--duration", "30",
                           cwd=tmp_path)  # its tone file goes there
        bob.wait(20, "the agent's INVITE", ev="incoming")
        caller.wait(20, "the caller's call to end", ev="state", leg="out", state="DISCONNECTED")
    finally:
        bob.stop()
        if caller is not None:
            caller.stop()
    (cdr,) = server.wait_cdrs(before + 1)[before:]
    spans = trace_of(otlp, server, cdr["call_id"], wanted=(
        "call", "node queue", "queue wait", "agent leg", "acd enqueue", "acd offer",
        "acd agent_answered", "cdr call.end"))
    call = one(spans, "call")
    node = one(spans, "node queue")
    assert node.parent_id == call.span_id
    wait = one(spans, "queue wait")
    assert wait.parent_id == node.span_id and wait.attributes["ivr.queue"] == "general"
    leg = one(spans, "agent leg")
    assert leg.parent_id == wait.span_id and leg.attributes["ivr.agent"] == "bob"
    assert {call.process, node.process, wait.process, leg.process} == {call.process}
    # the ACD (in the supervisor) handled the worker's requests as children of the wait
    acd = [s for s in spans if s.name.startswith("acd ")]
    assert {s.process for s in acd} == {"supervisor"}
    assert {s.parent_id for s in acd} == {wait.span_id}
    assert one(spans, "acd enqueue").attributes["ivr.queue"] == "general"
    assert one(spans, "acd offer").attributes["ivr.agent"] == "bob"
    assert {s.trace_id for s in otlp.snapshot() if s.call_id == cdr["call_id"]} == \
        {call.trace_id}
    server.wait_idle()
