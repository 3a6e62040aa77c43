"""Log lines (ivr/log.py): one JSON object a line naming the call, flow, node and worker; and the
run-time levels (ivr/log_levels.py) the supervisor publishes to its workers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import Harness, steps

from ivr import log as logs
from ivr import tracing
from ivr.flow.context import CallContext
from ivr.flow.interpreter import Interpreter
from ivr.flow.scripted import ScriptedChannel
from ivr.log_levels import LevelsFile, check_level, check_logger, stepped


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The root logger writing JSON lines into a buffer (restored after)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    logs.setup("DEBUG", json_lines=True)
    try:
        yield out
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def parsed(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_a_calls_lines_name_the_call_flow_node_and_worker(
        harness: Harness, lines: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "worker", "3")
    flows = harness.load("""
        flow: lookup
        start: fetch
        nodes:
          fetch: {http: {url: "http://backend/accounts"}, next: bye, on_error: bye}
          bye: {say: "Goodbye."}
    """)
    async with httpx.AsyncClient(transport=httpx.MockTransport(
            lambda _: httpx.Response(500))) as client:
        ctx = CallContext(channel=ScriptedChannel(steps=steps()), config=harness.config,
                          flows=flows, flow=flows["lookup"], call_id="c42", http_client=client)
        await Interpreter(ctx).run()
    logging.getLogger("ivr.test").info("outside any call")
    records = parsed(lines)
    failed = next(r for r in records if "http node fetch failed" in r["msg"])
    assert (failed["call_id"], failed["flow"], failed["node"], failed["worker"]) == \
        ("c42", "lookup", "fetch", "3")
    assert failed["level"] == "warning" and failed["logger"] == "ivr.flow.nodes.http"


def test_lines_outside_a_call_have_the_same_keys(lines: io.StringIO) -> None:
    logging.getLogger("ivr.serve").warning("flows ready")
    (record,) = parsed(lines)
    assert {k: record[k] for k in ("call_id", "flow", "node", "worker")} == \
        {"call_id": "-", "flow": "-", "node": "-", "worker": "-"}
    assert "trace_id" not in record


def test_a_traced_line_carries_its_trace_id(lines: io.StringIO) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracing.use(TracerProvider())
    try:
        with tracing.call_span("c1"):
            logging.getLogger("ivr.worker").info("in the call")
            trace = tracing.current_trace_id()
    finally:
        tracing.use(None)
    (record,) = parsed(lines)
    assert trace and record["trace_id"] == trace and record["call_id"] == "c1"


def test_levels_published_by_the_supervisor_reach_a_worker(tmp_path: Path) -> None:
    path = tmp_path / "log-levels.json"
    supervisor, worker = LevelsFile(path), LevelsFile(path)
    try:
        assert not worker.poll()  # no file yet
        supervisor.write({"": "INFO"})
        assert worker.poll() and worker.seq == 1
        assert not worker.poll()  # unchanged
        logging.getLogger("ivr.sip").setLevel("WARNING")
        supervisor.set("DEBUG", "ivr.sip")
        assert worker.poll() and worker.seq == 2
        assert logging.getLogger("ivr.sip").level == logging.DEBUG
        supervisor.step(-1)  # SIGUSR1: the root one step more verbose
        assert worker.poll() and worker.levels == {"": "DEBUG", "ivr.sip": "DEBUG"}
        assert logging.getLogger().level == logging.DEBUG
        path.write_text("{not json")
        assert not worker.poll() and worker.seq == 3  # a broken file keeps the levels
    finally:
        logging.getLogger("ivr.sip").setLevel(logging.NOTSET)
        logging.getLogger().setLevel(logging.WARNING)


def test_levels_step_within_debug_and_error() -> None:
    assert stepped("INFO", -1) == "DEBUG" and stepped("DEBUG", -1) == "DEBUG"
    assert stepped("WARNING", 1) == "ERROR" and stepped("ERROR", 1) == "ERROR"


@pytest.mark.parametrize("bad", ["LOUD", "", "10"])
def test_an_unknown_level_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not one of DEBUG, INFO, WARNING, ERROR"):
        check_level(bad)


@pytest.mark.parametrize("bad", ["ivr..sip", "ivr/sip", "a b"])
def test_a_malformed_logger_name_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not dotted words"):
        check_logger(bad)


def test_a_pjsua2_callback_of_a_call_logs_with_its_call_id(lines: io.StringIO) -> None:
    from types import SimpleNamespace

    from ivr.sip.pj import guard

    class Director:
        session = SimpleNamespace(call_id="c77")

        @guard
        def onCallTransferRequest(self, prm: Any) -> None:
            logging.getLogger("ivr.sip").warning("refused a REFER")

    Director().onCallTransferRequest(None)
    logging.getLogger("ivr.sip").warning("after the callback")
    first, after = parsed(lines)
    assert first["call_id"] == "c77" and after["call_id"] == "-"
