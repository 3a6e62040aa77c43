"""Per-call traces (OpenTelemetry), off by default: the only place the engine touches the SDK.

Every hook here is a no-op until `setup` ran, and `setup` imports the SDK only when
`tracing.enabled` is set, so a venv without the `ivr[tracing]` extra runs untraced. A call's
trace crosses processes as a W3C `traceparent` carried in the bus messages (the worker's requests
to the ACD, its call events to the supervisor): `carrier()` on the way out, `remote()` on the way
in. Every span carries the call id (`ivr.call_id`) of the log context it starts in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr import log as logs
from ivr.errors import CallerHangup, ConfigError, InputsExhausted
from ivr.lang import secret

if TYPE_CHECKING:
    from ivr.config import TracingSettings

Attr = str | int | float | bool

_tracer: Any = None
_provider: Any = None

QUIET = (CallerHangup, InputsExhausted, asyncio.CancelledError, GeneratorExit)
"""Ways a span may end early that are not errors (the caller hung up, a test ran out of input)."""


def enabled() -> bool:
    return _tracer is not None


def setup(settings: TracingSettings, process: str) -> None:
    """Install the tracer of this process (`supervisor`, `worker-3`); nothing when disabled.

    Raises ConfigError when tracing is enabled but the SDK is not installed."""
    global _tracer, _provider
    if not settings.enabled or _tracer is not None:
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise ConfigError("tracing.enabled needs the OpenTelemetry SDK: pip install 'ivr[tracing]' "
                          f"({exc})") from None
    resource = Resource.create({"service.name": settings.service_name,
                                "service.instance.id": process, "ivr.process": process})
    provider = TracerProvider(resource=resource)
    exporter = _exporter(settings)
    # the file and console exporters write at once (nothing lost when a worker is killed);
    # OTLP batches (OTEL_BSP_* variables tune it)
    provider.add_span_processor(BatchSpanProcessor(exporter) if settings.exporter == "otlp"
                                else SimpleSpanProcessor(exporter))
    _provider = provider
    _tracer = provider.get_tracer("ivr")
    logs.trace_id = current_trace_id


def _exporter(settings: TracingSettings) -> Any:
    if settings.exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ConfigError("tracing.exporter otlp needs opentelemetry-exporter-otlp-proto-http: "
                              f"pip install 'ivr[tracing]' ({exc})") from None
        return OTLPSpanExporter(endpoint=settings.otlp_endpoint)
    return JsonLinesExporter(Path(settings.file) if settings.exporter == "file" else None)


class JsonLinesExporter:
    """Spans as one JSON object a line, appended with one write each (processes share the file),
    or to stderr (`console`). For sites without a collector, and for tests."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        else:
            self.fd = sys.stderr.fileno()
        self.own = path is not None

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        for span in spans:
            os.write(self.fd, (json.dumps(json.loads(span.to_json()), separators=(",", ":"))
                               + "\n").encode())
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self.own:
            with contextlib.suppress(OSError):
                os.close(self.fd)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def shutdown() -> None:
    """Export what is pending (a worker ends with os._exit: this must run before)."""
    global _tracer, _provider
    if _provider is not None:
        with contextlib.suppress(Exception):  # a collector that is gone must not stop the exit
            _provider.shutdown()
    _tracer = _provider = None
    logs.trace_id = None


def use(provider: Any) -> None:
    """Trace into `provider` (tests: an SDK provider with an in-memory exporter); None: off."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("ivr") if provider is not None else None
    logs.trace_id = current_trace_id if provider is not None else None


@contextlib.contextmanager
def span(name: str, **attributes: Attr | None) -> Iterator[None]:
    """A span around a block, child of the current one, with the call id of the log context."""
    if _tracer is None:
        yield
        return
    attrs = {f"ivr.{k}": v for k, v in attributes.items() if v is not None}
    call_id = logs.call_id.get()
    if call_id != "-":
        attrs.setdefault("ivr.call_id", call_id)
    with _tracer.start_as_current_span(name, attributes=attrs, record_exception=False,
                                       set_status_on_exception=False) as current:
        try:
            yield
        except QUIET:
            raise
        except Exception as exc:
            from opentelemetry.trace import Status, StatusCode

            # no stack trace: the message alone, scrubbed of the call's secrets like a log line
            current.add_event("exception", {"exception.type": type(exc).__name__,
                                            "exception.message": secret.scrub_current(str(exc))})
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


@contextlib.contextmanager
def call_span(call_id: str, **attributes: Attr | None) -> Iterator[None]:
    """The root span of one call's trace (a new trace, whatever span is current); the spans
    under it, and the log lines, carry `call_id`."""
    if _tracer is None:
        yield
        return
    from opentelemetry import context

    token = context.attach(context.Context())
    named = logs.call_id.set(call_id)
    try:
        with span("call", call_id=call_id, **attributes):
            yield
    finally:
        logs.call_id.reset(named)
        context.detach(token)


@contextlib.contextmanager
def node(flow: str, node_id: str, kind: str) -> Iterator[None]:
    """Around one node's run (the interpreter calls this for every node, whatever its kind):
    the log context names the flow and node, and the node gets a span."""
    logs.flow.set(flow)
    logs.node.set(node_id)
    with span(f"node {kind}", flow=flow, node=node_id, node_kind=kind):
        yield


def carrier() -> dict[str, str]:
    """The current span as W3C trace context (`traceparent`), for a message leaving the process."""
    if _tracer is None:
        return {}
    from opentelemetry.propagate import inject

    out: dict[str, str] = {}
    inject(out)
    return out


@contextlib.contextmanager
def remote(message: Mapping[str, Any]) -> Iterator[None]:
    """Make a message's `traceparent` the parent of the spans started in this block."""
    if _tracer is None or not isinstance(message.get("traceparent"), str):
        yield
        return
    from opentelemetry import context
    from opentelemetry.propagate import extract

    token = context.attach(extract({k: str(message[k]) for k in ("traceparent", "tracestate")
                                    if isinstance(message.get(k), str)}))
    try:
        yield
    finally:
        context.detach(token)


def current_trace_id() -> str | None:
    """The trace id of the current span (for log lines), None outside one."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
