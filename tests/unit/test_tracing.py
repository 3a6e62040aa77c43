"""Per-call tracing (ivr/tracing.py) with the SDK's in-memory exporter: the span tree of one
interpreted call, a trace crossing a process boundary (a bus message's traceparent into the ACD),
the file exporter, and what happens when tracing is off or the SDK is missing."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import Harness, steps
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ivr import tracing
from ivr.acd.service import AcdService
from ivr.config import EngineConfig, TracingSettings
from ivr.errors import ConfigError
from ivr.flow.context import CallContext
from ivr.flow.interpreter import Interpreter, Result
from ivr.flow.model import Flow
from ivr.flow.scripted import ScriptedChannel

MENU = """
    flow: bank
    start: main
    nodes:
      main:
        menu:
          prompt: "Press 1 for an agent."
          options: [{dtmf: "1", goto: agent}]
        on_fail: bye
      agent:
        queue: {name: general}
        on_timeout: bye
        on_error: bye
      bye: {say: "Goodbye.", hangup: true}
"""


async def run(harness: Harness, flows: dict[str, Flow], call_id: str, *script: str,
              http_client: httpx.AsyncClient | None = None) -> Result:
    """One call as a worker runs it: the interpreter under the call's id."""
    ctx = CallContext(channel=ScriptedChannel(steps=steps(*script)), config=harness.config,
                      flows=flows, flow=flows["bank"], call_id=call_id, http_client=http_client)
    return await Interpreter(ctx).run()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)


def attrs(span: ReadableSpan) -> Mapping[str, Any]:
    return span.attributes or {}


def by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


def parent_of(span: ReadableSpan, finished: tuple[ReadableSpan, ...]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next(s for s in finished if s.context.span_id == span.parent.span_id)


async def test_one_call_is_one_trace_with_spans_per_node_prompt_listen_queue_and_agent(
        harness: Harness, spans: InMemorySpanExporter) -> None:
    flows = harness.load(MENU)
    for call_id in ("call-a", "call-b"):
        with tracing.call_span(call_id, flow="bank"):
            result = await run(harness, flows, call_id, "dtmf:1")
        assert result.end.kind == "queue"
    finished = spans.get_finished_spans()
    roots = by_name(finished, "call")
    assert [attrs(r)["ivr.call_id"] for r in roots] == ["call-a", "call-b"]
    assert all(r.parent is None for r in roots)
    assert len({s.context.trace_id for s in finished}) == 2  # one trace per call

    for root in roots:
        trace = [s for s in finished if s.context.trace_id == root.context.trace_id]
        assert {attrs(s)["ivr.call_id"] for s in trace} == {attrs(root)["ivr.call_id"]}
        nodes = [s for s in trace if s.name.startswith("node ")]
        assert [(s.name, attrs(s)["ivr.node"]) for s in nodes] == \
            [("node menu", "main"), ("node queue", "agent")]
        assert all(parent_of(n, finished) is root for n in nodes)
        menu, queue = nodes
        assert {s.name for s in trace if parent_of(s, finished) is menu} == {"prompt", "listen"}
        (wait,) = by_name(tuple(trace), "queue wait")
        assert parent_of(wait, finished) is queue
        assert attrs(wait)["ivr.queue"] == "general"
        (leg,) = by_name(tuple(trace), "agent leg")
        assert parent_of(leg, finished) is wait
        assert attrs(leg)["ivr.attempt"] == 1


async def test_a_caller_hangup_is_not_an_error_span(harness: Harness,
                                                    spans: InMemorySpanExporter) -> None:
    with tracing.call_span("c1"):
        result = await run(harness, harness.load(MENU), "c1", "hangup")
    assert result.end.by == "caller"
    from opentelemetry.trace import StatusCode

    assert all(s.status.status_code is not StatusCode.ERROR
               for s in spans.get_finished_spans())


def test_a_bus_message_carries_the_trace_into_the_acd(tmp_path: Path, config: EngineConfig,
                                                      spans: InMemorySpanExporter) -> None:
    """The worker's request (as it goes over MQTT: JSON) is handled by the ACD as a child of the
    span that sent it."""
    acd = AcdService.create(config, tmp_path / "acd.sqlite", tmp_path / "outbox.sqlite",
                            "mqtt://127.0.0.1:1")
    try:
        acd.agent_message("bob", {"state": "login", "queues": ["general"]})
        acd.agent_message("bob", {"state": "ready"})
        with tracing.call_span("c9"), tracing.span("queue wait"):
            message = json.dumps({"op": "enqueue", "call_id": "c9", "queue": "general",
                                  "reply_to": "ivr/acd/reply/worker-1", "key": "k1",
                                  **tracing.carrier()})
        assert "traceparent" in json.loads(message)
        acd.on_message("ivr/acd/request", message.encode())
    finally:
        acd.close()
    finished = spans.get_finished_spans()
    (wait,) = by_name(finished, "queue wait")
    (handled,) = by_name(finished, "acd enqueue")
    assert handled.parent is not None and handled.parent.is_remote
    assert handled.parent.span_id == wait.context.span_id
    assert handled.context.trace_id == wait.context.trace_id
    assert attrs(handled)["ivr.call_id"] == "c9"
    assert attrs(handled)["ivr.queue"] == "general"
    (offer,) = by_name(finished, "acd offer")  # bob was ready: offered at once
    assert offer.parent is not None and offer.parent.span_id == wait.context.span_id
    assert (attrs(offer)["ivr.agent"], attrs(offer)["ivr.call_id"]) == ("bob", "c9")


def test_a_message_without_traceparent_starts_nothing_remote(spans: InMemorySpanExporter) -> None:
    with tracing.remote({"op": "x"}), tracing.span("alone"):
        pass
    (alone,) = spans.get_finished_spans()
    assert alone.parent is None


def test_off_by_default_every_hook_is_a_no_op() -> None:
    assert not TracingSettings().enabled
    tracing.setup(TracingSettings(), "worker-1")
    assert not tracing.enabled()
    with tracing.call_span("c1"), tracing.span("prompt"):
        assert tracing.carrier() == {}


def test_enabled_without_the_sdk_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(ConfigError, match=r"pip install 'ivr\[tracing\]'"):
        tracing.setup(TracingSettings(enabled=True), "supervisor")
    assert not tracing.enabled()


def test_the_file_exporter_writes_one_span_a_line(tmp_path: Path) -> None:
    out = tmp_path / "traces" / "spans.jsonl"
    tracing.setup(TracingSettings(enabled=True, exporter="file", file=str(out),
                                  service_name="acme-ivr"), "worker-2")
    try:
        with tracing.call_span("c7", flow="bank"), tracing.span("prompt"):
            pass
    finally:
        tracing.shutdown()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["name"] for s in lines] == ["prompt", "call"]
    assert all(s["attributes"]["ivr.call_id"] == "c7" for s in lines)
    assert lines[0]["parent_id"] == lines[1]["context"]["span_id"]
    resource: dict[str, Any] = lines[0]["resource"]["attributes"]
    assert resource["service.name"] == "acme-ivr" and resource["ivr.process"] == "worker-2"
    assert not tracing.enabled()


async def test_an_http_node_hands_the_trace_to_the_back_end(harness: Harness,
                                                           spans: InMemorySpanExporter) -> None:
    seen: list[httpx.Request] = []

    def backend(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    flows = harness.load("""
        flow: bank
        start: fetch
        nodes:
          fetch: {http: {url: "http://backend/x", headers: {X-Site: acme}}, next: bye,
                  on_error: bye}
          bye: {say: "Goodbye."}
    """)
    async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
        with tracing.call_span("c5"):
            ctx = CallContext(channel=ScriptedChannel(steps=steps()), config=harness.config,
                              flows=flows, flow=flows["bank"], call_id="c5", http_client=client)
            await Interpreter(ctx).run()
    (request,) = seen
    node = next(s for s in spans.get_finished_spans() if s.name == "node http")
    _, trace_id, span_id, _ = request.headers["traceparent"].split("-")
    assert (int(trace_id, 16), int(span_id, 16)) == (node.context.trace_id, node.context.span_id)
    assert request.headers["X-Site"] == "acme"


async def test_without_tracing_an_http_node_sends_no_traceparent(harness: Harness) -> None:
    seen: list[httpx.Request] = []
    flows = harness.load("""
        flow: bank
        start: fetch
        nodes:
          fetch: {http: {url: "http://backend/x"}, next: bye, on_error: bye}
          bye: {say: "Goodbye."}
    """)
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(204))
    async with httpx.AsyncClient(transport=transport) as client:
        await run(harness, flows, "c6", http_client=client)
    assert seen and "traceparent" not in seen[0].headers


def test_an_error_span_says_what_failed_without_the_calls_secrets(
        spans: InMemorySpanExporter) -> None:
    from opentelemetry.trace import StatusCode

    from ivr.lang.secret import call_secrets, taint

    card = taint("4111111111111111")
    call_secrets.set([card])
    try:
        with pytest.raises(RuntimeError), tracing.span("node http"):
            raise RuntimeError("backend refused 4111111111111111")
    finally:
        call_secrets.set([])
    (failed,) = spans.get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR
    (event,) = failed.events
    message = str(attrs_of(event)["exception.message"])
    assert "4111111111111111" not in message and message.startswith("backend refused")
    assert attrs_of(event)["exception.type"] == "RuntimeError"


def attrs_of(event: Any) -> Mapping[str, Any]:
    return event.attributes or {}
