"""Structured logs: one JSON object a line when not on a terminal, call id on every line."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

from ivr.lang import secret

call_id: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")


class _CallIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = call_id.get()
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
            "msg": record.getMessage(),
        }
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
