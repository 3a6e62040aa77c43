"""Structured logs: one JSON object a line when not on a terminal; a call's lines say which call,
flow, node and worker they belong to (context variables, set where a call's task runs)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from ivr.lang import secret

call_id: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")
flow: contextvars.ContextVar[str] = contextvars.ContextVar("flow", default="-")
node: contextvars.ContextVar[str] = contextvars.ContextVar("node", default="-")
worker = "-"
"""This process's worker id (set once by the worker's main)."""
trace_id: Callable[[], str | None] | None = None
"""The current trace id, when tracing is on (ivr.tracing installs it)."""


class _CallIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = call_id.get()
        record.flow = flow.get()
        record.node = node.get()
        record.worker = worker
        record.trace_id = trace_id() if trace_id is not None else None
        return True


class _ScrubFilter(logging.Filter):
    """A line logged while a call runs is scrubbed of that call's sensitive values (a message or
    an exception that echoes one shows it masked): the last guard behind the taint."""

    def filter(self, record: logging.LogRecord) -> bool:
        if secret.call_secrets.get():
            record.msg = secret.scrub_current(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = secret.scrub_current(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "call_id": getattr(record, "call_id", "-"),
            "flow": getattr(record, "flow", "-"),
            "node": getattr(record, "node", "-"),
            "worker": getattr(record, "worker", "-"),
            "msg": record.getMessage(),
        }
        trace = getattr(record, "trace_id", None)
        if trace:
            out["trace_id"] = trace
        if record.exc_text:
            out["exc"] = record.exc_text
        elif record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup(level: str = "INFO", *, json_lines: bool | None = None) -> None:
    """Configure the root logger once; JSON unless stderr is a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler.setFormatter(
        JsonFormatter() if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s [%(call_id)s] %(name)s: %(message)s")
    )
    handler.addFilter(_CallIdFilter())
    handler.addFilter(_ScrubFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
